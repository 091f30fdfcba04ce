/**
 * Theory of operation: whether and how a launch seeds cloud-init, and the
 * seed's delivery.
 *
 * When (`cloudInit`): `auto` (the default) seeds every VM booted from a disk
 * image and none booted with `--kernel` (vmnet cannot tell a cloud image
 * from its bytes without mounting it, and a seed costs a guest without
 * cloud-init nothing: an SMBIOS serial string nobody reads and an HTTP
 * service nobody asks); `on` seeds a `--kernel` boot too; `off` seeds
 * nothing (and a cloud image then boots without a user or a key, and, since
 * its cloud-init disables itself, without a network).
 *
 * How (`cloudInitSeed`): `net` (the default with a `--net user` NIC) serves
 * the seed from the VM's own gateway (services/metadata: the DNS address,
 * port 80, a URL with a token, to the VM's MAC only) and names it in the
 * SMBIOS system serial; `disk` (the default without one, and for images
 * whose cloud-init cannot take a network seed) attaches a CIDATA disk
 * (cidata.ts) made in the VM's runtime directory.
 *
 * resolveCloudInit() checks everything the user gave (the login user, the
 * `--ssh-key` files, the `--user-data` files) before anything starts, and
 * reads the files once; prepareSeed() makes the keys (ssh-keys.ts), the
 * documents (cloud-init.ts) and delivers them once the VM's name is claimed
 * and its gateway runs.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { VmnetError } from '../errors.js';
import type { RunningGateway } from '../gateway/server.js';
import { guestUser, nocloudSerial, seedDocuments, userDataType, type UserDataPart } from './cloud-init.js';
import { writeCidataDisk } from './cidata.js';
import { clientKey, hostKey, readPublicKeys, type KeyPair } from './ssh-keys.js';

/** What a launch seeds, checked. */
export interface CloudInitPlan {
  seed: 'net' | 'disk';
  user: string;
  /** Why the user is not the host user's name, when it is not. */
  userNote: string | null;
  /** Public key lines beyond vmnet's own. */
  keys: string[];
  userData: UserDataPart[];
}

export interface CloudInitOptions {
  cloudInit?: 'auto' | 'on' | 'off';
  cloudInitSeed?: 'net' | 'disk';
  user?: string;
  sshKeys?: string[];
  sshKeyFiles?: string[];
  userData?: string | string[];
  userDataFiles?: string[];
}

/** Largest --user-data file read (the seed service serves at most 4 MiB in all). */
const MAX_USER_DATA = 4 * 1024 * 1024;

/**
 * Decides and checks the seeding of a launch.
 * @param hasUserNic the VM has a `--net user` NIC (its gateway can serve a network seed)
 * @returns the plan, or null: no seeding
 * @throws VmnetError E_USAGE / E_NO_FILE for bad options or files
 */
export async function resolveCloudInit(o: CloudInitOptions, boot: { image: boolean; kernel: boolean }, hasUserNic: boolean): Promise<CloudInitPlan | null> {
  const mode = o.cloudInit ?? 'auto';
  if (mode !== 'auto' && mode !== 'on' && mode !== 'off') throw new VmnetError('E_USAGE', `bad --cloud-init ${String(mode)}: auto, on or off`);
  if (o.cloudInitSeed !== undefined && o.cloudInitSeed !== 'net' && o.cloudInitSeed !== 'disk') throw new VmnetError('E_USAGE', `bad --cloud-init-seed ${String(o.cloudInitSeed)}: net or disk`);
  const given = o.user !== undefined || (o.sshKeys?.length ?? 0) > 0 || (o.sshKeyFiles?.length ?? 0) > 0 || o.userData !== undefined || (o.userDataFiles?.length ?? 0) > 0 || o.cloudInitSeed !== undefined;
  const on = mode === 'on' || (mode === 'auto' && boot.image && !boot.kernel);
  if (!on) {
    if (given) throw new VmnetError('E_USAGE', mode === 'off' ? '--cloud-init off and a seed option (--user, --ssh-key, --user-data, --cloud-init-seed) contradict each other: drop one' : 'seed options (--user, --ssh-key, --user-data, --cloud-init-seed) apply when cloud-init is seeded: a --kernel boot needs --cloud-init on');
    return null;
  }
  const seed = o.cloudInitSeed ?? (hasUserNic ? 'net' : 'disk');
  if (seed === 'net' && !hasUserNic) throw new VmnetError('E_USAGE', '--cloud-init-seed net is served by the VM\'s own gateway, which needs --net user; use --cloud-init-seed disk on a switch');
  const { user, note } = guestUser(o.user, safeUserName());
  const keys = [...(o.sshKeys ?? []).flatMap((k, i) => checkKeyLine(k, i)), ...(await readPublicKeys((o.sshKeyFiles ?? []).map((f) => resolve(f))))];
  const docs = o.userData === undefined ? [] : Array.isArray(o.userData) ? o.userData : [o.userData];
  const userData: UserDataPart[] = docs.map((d, i) => ({ name: `userData[${i}]`, bytes: new TextEncoder().encode(d) }));
  for (const f of o.userDataFiles ?? []) userData.push({ name: f, bytes: await readUserData(resolve(f)) });
  for (const p of userData) userDataType(p);
  return { seed, user, userNote: note, keys, userData };
}

/** The host user's name, or '' when the system has none for this uid. */
function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

/** A library `sshKeys` entry: one or more public key lines. */
function checkKeyLine(text: string, index: number): string[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0 || lines.some((l) => !/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/]+={0,2}( |$)/.test(l))) throw new VmnetError('E_USAGE', `sshKeys[${index}] is not an OpenSSH public key line (ssh-ed25519 AAAA… comment)`);
  return lines;
}

async function readUserData(path: string): Promise<Uint8Array> {
  let b: Buffer;
  try {
    b = await readFile(path);
  } catch {
    throw new VmnetError('E_NO_FILE', `--user-data ${path} does not exist or is not readable`);
  }
  if (b.length > MAX_USER_DATA) throw new VmnetError('E_USAGE', `--user-data ${path} is ${b.length} bytes; the seed holds at most 4 MiB`);
  return new Uint8Array(b);
}

/** A seed delivered: what QEMU is given, and how SSH reaches the guest. */
export interface PreparedSeed {
  qemu: { serial?: string; disk?: string };
  user: string;
  client: KeyPair;
  /** The guest's host public key (`ssh-ed25519 AAAA…`). */
  hostPublicKey: string;
  /** The gateway and MAC serving it (net seeds), to stop serving at the end. */
  served: { gateway: RunningGateway; mac: string } | null;
}

/**
 * Makes the keys and documents and delivers them: registered with the VM's
 * gateway (net) or written to `seed.img` in the VM directory (disk).
 * @param name the claimed VM name
 * @param dir its runtime directory
 * @param nic the user NIC's gateway and MAC (for a net seed)
 */
export async function prepareSeed(plan: CloudInitPlan, name: string, dir: string, nic: { gateway: RunningGateway; mac: string } | null, env: NodeJS.ProcessEnv): Promise<PreparedSeed> {
  const client = await clientKey(env);
  const host = await hostKey(name, env);
  const files = seedDocuments({ name, user: plan.user, authorizedKeys: [`${client.publicKey} vmnet`, ...plan.keys], hostKey: { privateKey: host.privateKey, publicKey: host.publicKey }, userData: plan.userData });
  const base = { user: plan.user, client, hostPublicKey: host.publicKey };
  if (plan.seed === 'disk') {
    const disk = join(dir, 'seed.img');
    await writeCidataDisk(disk, files, dir, env);
    return { ...base, qemu: { disk }, served: null };
  }
  if (nic === null) throw new VmnetError('E_USAGE', 'a network seed needs --net user');
  const url = nic.gateway.seeds.add(nic.mac, files);
  return { ...base, qemu: { serial: nocloudSerial(url) }, served: nic };
}

