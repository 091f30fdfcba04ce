/**
 * Theory of operation: everything about a launch that can be checked
 * before anything starts. resolveLaunch() validates the user's options
 * (image readable and its format read from the file, or an image URL with
 * its digest and disk size well-formed, kernel files, memory,
 * CPUs, QEMU binary, accelerator, NICs, forwards, DNS records, network
 * settings) and has no side effects; buildQemuSpec() then lays the VM out in
 * its directory: the gateway's stream socket per `user` NIC, QMP, the serial
 * socket. planLaunch() does both for `vmnet run --dry-run`, picking the name
 * a launch would claim without creating anything.
 *
 * QEMU starts paused (-S): the launcher connects the serial socket and QMP
 * first, so no boot output and no event is missed, then sends `cont`.
 */
import { access, constants } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VmnetError } from '../errors.js';
import { formatForward, parseForward, type ForwardSpec } from '../config/forward.js';
import { checkExtraArgs, qemuArgs, macFromName, type QemuSpec } from '../qemu/args.js';
import { chooseAccel, findQemu, type Accel } from '../qemu/binary.js';
import type { ImageFormat } from '../qemu/image.js';
import { resolveDiskFormat } from '../images/format-rules.js';
import { isImageUrl, parseDigest, parseImageUrl, urlFileName } from '../images/source.js';
import { parseDiskSize } from '../images/size.js';
import { readDiskMeta, vmDiskPath } from '../images/vm-disk.js';
import { resolveGatewayConfig, type GatewayOptions } from '../gateway/config.js';
import { parseDnsRecord, type DnsRecord } from '../services/dns/local.js';
import { formatIp4, parseMac } from '../wire/addr.js';
import { parseMemory } from './run.js';
import { formatRole, normaliseRole, parseVlanList, type PortRole } from '../switch/vlan.js';
import { resolveCloudInit, type CloudInitOptions, type CloudInitPlan } from './seeding.js';
import { readKvmVerdict } from './accel-verdict.js';
import { FILES, claimVmDir, ensureRuntimeRoot, nameFromPath, peekName, runtimeRoot, validateName, type VmState } from './state.js';

/**
 * One guest NIC. `user` is vmnet's own gateway, in-process. A switch NIC is
 * an access port of `vlan` (default 1), or a trunk of `trunk` (tagged) and
 * `native` (untagged) when `trunk` is given.
 */
export type NetSpec =
  | { kind: 'user'; mac?: string }
  | { kind: 'switch'; switch: string; vlan?: number; trunk?: number[]; native?: number; mac?: string };

/** The switch port role of a switch NIC. */
export function nicRole(n: Extract<NetSpec, { kind: 'switch' }>): PortRole {
  if (n.trunk !== undefined) return n.native !== undefined ? { trunk: n.trunk, native: n.native } : { trunk: n.trunk };
  return { vlan: n.vlan ?? 1 };
}

/** Options of `launch()` (and of `vmnet run`). */
export interface LaunchOptions extends CloudInitOptions {
  /**
   * Disk image, qcow2 or raw: a local file (written in place unless
   * `snapshot`), or an http(s) URL, downloaded once into the image cache
   * and never written: the VM gets a qcow2 overlay kept under its name
   * (`$XDG_DATA_HOME/vmnet/vms/NAME/disk.qcow2`) until `vmnet rm NAME`.
   */
  image?: string;
  /**
   * The image's format (of the downloaded base, for a URL). Default: read
   * from the file, and then a qcow2 that names a backing or data file is
   * refused (a guest can write such a header into a raw disk). 'qcow2'
   * vouches for the image; 'raw' boots its bytes as they are.
   */
  format?: ImageFormat;
  /** `sha256:HEX` the bytes downloaded from an image URL must have. */
  digest?: string;
  /** Grow the kept disk of an image URL to this size (`20G`, or bytes); never shrinks. */
  diskSize?: string | number;
  /** Discard writes to the image (for an image URL: to its kept disk). */
  snapshot?: boolean;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** e.g. '1G', '512M', or MiB as a number. Default 1G. */
  memory?: string | number;
  /** Default 2. */
  cpus?: number;
  /** Default: from the image (or kernel) file name, made unique. */
  name?: string;
  accel?: Accel | 'auto';
  /** QEMU binary (default qemu-system-<host arch> on PATH). */
  qemu?: string;
  /** NICs: 'user', 'user,mac=MAC', 'switch:NAME[,vlan=N][,mac=MAC]', or 'none'. Default ['user']. */
  net?: Array<NetSpec | string>;
  /** Port forwards to the guest (first `user` NIC): specs or `[BIND:]HOST:GUEST[/tcp|/udp]` strings. */
  forwards?: Array<ForwardSpec | string>;
  /** Nothing leaves the guest network: no NAT, no DNS forwarding, no host access. */
  isolated?: boolean;
  /** Local DNS records: `NAME=IP` strings or records. */
  dnsRecords?: Array<DnsRecord | string>;
  /** Write every frame of the `user` NIC to this pcap file. */
  pcap?: string;
  /** Link MTU of the `user` network. */
  mtu?: number;
  /** More gateway settings (subnet, addresses, DNS upstreams, …). */
  network?: Omit<GatewayOptions, 'isolated' | 'dnsRecords' | 'pcap' | 'mtu'>;
  /** Also copy the serial console to this file (the VM directory always keeps serial.log). */
  consoleFile?: string;
  /** QEMU arguments appended verbatim (-daemonize, -no-shutdown and -action shutdown=pause are refused: qemu/args.ts). */
  extraArgs?: string[];
  /** Default budget of `stop()` for the guest to power off after the ACPI button, ms. Default 30000. */
  stopTimeoutMs?: number;
  /**
   * An SSH forward on a free 127.0.0.1 port to the guest's port 22, for
   * `vmnet ssh`/`exec`/`cp` and `vm.exec()` (default: on when the VM has a
   * `--net user` NIC and boots a disk image, or is seeded).
   */
  ssh?: boolean;
  /** launch() resolves only once this is ready: 'ssh' (a command runs in the guest over SSH). */
  waitFor?: 'ssh';
  /** How long `waitFor` may take, ms (default 300 s); the VM is stopped when it runs out. */
  waitTimeoutMs?: number;
  /** Environment: XDG_RUNTIME_DIR (where VM directories live) and PATH (QEMU). Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Options after validation. */
export interface ResolvedLaunch {
  baseName: string;
  explicitName: boolean;
  binary: string;
  accel: Accel;
  /** `auto` chose KVM: launch() may start QEMU again with TCG when KVM fails at start. */
  accelAuto: boolean;
  notes: string[];
  memoryMiB: number;
  cpus: number;
  drive?: { path: string; format: ImageFormat; snapshot: boolean };
  /** An image URL: downloaded and given its kept disk by launch(), which then sets `drive`. */
  remote?: RemoteImage;
  kernel?: string;
  initrd?: string;
  append?: string;
  nets: NetSpec[];
  forwards: ForwardSpec[];
  gateway: GatewayOptions;
  consoleFile: string | null;
  extra: string[];
  stopTimeoutMs: number;
  env: NodeJS.ProcessEnv;
  /** What cloud-init is seeded with, or null (seeding.ts). */
  cloudInit: CloudInitPlan | null;
  /** An SSH forward on a free 127.0.0.1 port. */
  sshForward: boolean;
  /** The seed as QEMU gets it (set by launch() once the seed is made). */
  seedQemu?: { serial?: string; disk?: string };
  waitFor: 'ssh' | null;
  waitTimeoutMs: number;
}

/** An image URL, checked. */
export interface RemoteImage {
  url: string;
  /** The SHA-256 (hex) its bytes must have. */
  digest: string | null;
  /** --disk-size in bytes. */
  diskSize: number | null;
  /** --format, of the downloaded base. */
  format?: ImageFormat;
  snapshot: boolean;
}

/** A NIC as laid out in the VM directory. */
export interface PlannedNic {
  index: number;
  mac: string;
  net: NetSpec;
  /** The stream socket QEMU connects to. */
  socket: string;
}

export interface LaunchPlan {
  name: string;
  dir: string;
  binary: string;
  args: string[];
  spec: QemuSpec;
  nics: PlannedNic[];
  forwards: ForwardSpec[];
  /** One-line remarks (accelerator fallback, …). */
  notes: string[];
  /** Human-readable network plan, one line per item. */
  network: string[];
}

/**
 * Parses one --net value.
 * @returns the NIC, or null for 'none'
 * @throws VmnetError E_USAGE
 */
export function parseNet(text: string): NetSpec | null {
  const t = text.trim();
  if (t === 'none') return null;
  const bad = (why: string) => new VmnetError('E_USAGE', `bad --net ${text}: ${why} (use user, none, or switch:NAME[,vlan=N|,trunk=N+M[,native=N]][,mac=MAC])`);
  const [head, ...opts] = t.split(',');
  let mac: string | undefined;
  let vlan: number | undefined;
  let trunk: number[] | undefined;
  let native: number | undefined;
  const vid = (v: string, k: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 4094) throw bad(`${k} must be 1-4094`);
    return Number(v);
  };
  for (const o of opts) {
    const [k, v] = o.split('=', 2);
    if (k === 'mac' && v !== undefined) {
      if (!parseMac(v) || (parseMac(v)![0]! & 1) === 1) throw bad(`${v} is not a unicast MAC address`);
      mac = v.toLowerCase();
    } else if (k === 'vlan' && v !== undefined && head !== 'user') {
      vlan = vid(v, 'vlan');
    } else if (k === 'trunk' && v !== undefined && head !== 'user') {
      try {
        trunk = parseVlanList(v, 'trunk');
      } catch {
        throw bad('trunk takes VLAN ids 1-4094 joined by + (10+20-22)');
      }
    } else if (k === 'native' && v !== undefined && head !== 'user') {
      native = vid(v, 'native');
    } else {
      throw bad(`unknown option ${o}`);
    }
  }
  if (vlan !== undefined && (trunk !== undefined || native !== undefined)) throw bad('a NIC is an access port (vlan=) or a trunk (trunk=, native=), not both');
  if (native !== undefined && trunk === undefined) throw bad('native= goes with trunk=');
  if (head === 'user') return { kind: 'user', ...(mac ? { mac } : {}) };
  if (head?.startsWith('switch:')) {
    const sw = head.slice('switch:'.length);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(sw)) throw bad('a switch name uses letters, digits, ., _ and -');
    return { kind: 'switch', switch: sw, ...(vlan ? { vlan } : {}), ...(trunk ? { trunk } : {}), ...(native ? { native } : {}), ...(mac ? { mac } : {}) };
  }
  throw bad(`unknown network ${head}`);
}

/** `access vlan 10`, `trunk 10,20 native 1`: a switch NIC's role in the plan's words. */
const roleText = (n: Extract<NetSpec, { kind: 'switch' }>): string => (n.trunk === undefined ? `access vlan ${n.vlan ?? 1}` : formatRole(normaliseRole(nicRole(n))));

async function readable(path: string, what: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new VmnetError('E_NO_FILE', `${what} ${path} does not exist or is not readable; check the path`);
  }
}

/**
 * Validates launch options without starting or creating anything.
 * @throws VmnetError for anything the user must fix (usage errors exit 2 in the CLI)
 */
export async function resolveLaunch(o: LaunchOptions): Promise<ResolvedLaunch> {
  if (!o.image && !o.kernel) throw new VmnetError('E_USAGE', 'nothing to boot: give a disk IMAGE or --kernel');
  if ((o.initrd || o.append !== undefined) && !o.kernel) throw new VmnetError('E_USAGE', '--initrd and --append need --kernel');
  const env = o.env ?? process.env;
  const notes: string[] = [];
  const url = o.image && isImageUrl(o.image) ? parseImageUrl(o.image) : null;
  const image = o.image && !url ? resolve(o.image) : undefined;
  if (o.format !== undefined && o.format !== 'raw' && o.format !== 'qcow2') throw new VmnetError('E_USAGE', `bad format ${String(o.format)}: raw or qcow2`);
  if (o.format !== undefined && !image && !url) throw new VmnetError('E_USAGE', '--format needs a disk IMAGE');
  if (o.digest !== undefined && !url) throw new VmnetError('E_USAGE', '--digest checks an image downloaded from a URL; give an http:// or https:// IMAGE');
  if (o.diskSize !== undefined && !url) throw new VmnetError('E_USAGE', '--disk-size grows the disk vmnet keeps for an image URL; a local image is used as it is (qemu-img resize it yourself)');
  const remote: RemoteImage | undefined = url
    ? { url: url.href, digest: o.digest !== undefined ? parseDigest(o.digest) : null, diskSize: o.diskSize !== undefined ? parseDiskSize(o.diskSize) : null, snapshot: o.snapshot ?? false, ...(o.format ? { format: o.format } : {}) }
    : undefined;
  const format = image ? await resolveDiskFormat(image, o.format, env) : undefined;
  const kernel = o.kernel ? resolve(o.kernel) : undefined;
  const initrd = o.initrd ? resolve(o.initrd) : undefined;
  if (kernel) await readable(kernel, 'kernel');
  if (initrd) await readable(initrd, 'initrd');
  const memoryMiB = typeof o.memory === 'number' ? parseMemory(String(o.memory)) : parseMemory(o.memory ?? '1G');
  const cpus = o.cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 256) throw new VmnetError('E_USAGE', `bad --cpus ${o.cpus}: give a whole number from 1 to 256`);
  const explicitName = o.name !== undefined;
  const baseName = explicitName ? validateName(o.name!) : nameFromPath(url ? urlFileName(url) : (image ?? kernel!));

  const nets: NetSpec[] = [];
  const netTexts = o.net ?? ['user'];
  let none = false;
  for (const n of netTexts) {
    const spec = typeof n === 'string' ? parseNet(n) : n;
    if (spec === null) none = true;
    else nets.push(spec);
  }
  if (none && nets.length > 0) throw new VmnetError('E_USAGE', '--net none cannot be combined with other --net values');
  if (nets.filter((n) => n.kind === 'user').length > 1) throw new VmnetError('E_USAGE', 'only one --net user per VM: its gateway is the VM\'s way out; add more NICs with --net switch:NAME');
  for (const n of nets) if (n.kind === 'switch') normaliseRole(nicRole(n)); // a bad role is a usage error now
  const macs = nets.map((n) => n.mac).filter((m): m is string => m !== undefined);
  if (new Set(macs).size !== macs.length) throw new VmnetError('E_USAGE', 'two NICs have the same mac=');

  const forwards = (o.forwards ?? []).map((f) => (typeof f === 'string' ? parseForward(f) : f));
  const hasUser = nets.some((n) => n.kind === 'user');
  const hasSwitch = nets.some((n) => n.kind === 'switch');
  if (!hasUser && ((forwards.length && !hasSwitch) || o.isolated || o.dnsRecords?.length || o.pcap || o.mtu !== undefined)) {
    throw new VmnetError('E_USAGE', '--isolated, --dns-record, --pcap and --mtu need --net user; --forward needs --net user or --net switch:NAME');
  }
  const seen = new Set<string>();
  for (const f of forwards) {
    const k = `${f.proto}:${f.bindAddress}:${f.hostPort}`;
    if (seen.has(k)) throw new VmnetError('E_USAGE', `--forward ${formatForward(f)} is given twice`);
    seen.add(k);
  }
  const gateway: GatewayOptions = {
    ...o.network,
    ...(o.isolated !== undefined ? { isolated: o.isolated } : {}),
    ...(o.dnsRecords ? { dnsRecords: o.dnsRecords.map((r) => (typeof r === 'string' ? parseDnsRecord(r) : r)) } : {}),
    ...(o.pcap !== undefined ? { pcap: resolve(o.pcap) } : {}),
    ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
  };
  resolveGatewayConfig(gateway); // throws one-line usage errors now, not after QEMU started

  const binary = findQemu(o.qemu, env);
  const requested = o.accel ?? 'auto';
  let { accel, note } = chooseAccel(requested);
  if (requested === 'auto' && accel === 'kvm') {
    const verdict = readKvmVerdict(runtimeRoot(env), binary);
    if (verdict) {
      accel = 'tcg';
      note = `using TCG: KVM failed when QEMU started earlier in this boot of the host (${verdict.reason}); remove ${verdict.file} or pass --accel kvm to try KVM again`;
    }
  }
  if (note) notes.push(note);
  const extra = o.extraArgs ?? [];
  if (!Array.isArray(extra) || extra.some((x) => typeof x !== 'string')) throw new VmnetError('E_USAGE', 'extraArgs must be strings (QEMU arguments, passed verbatim)');
  checkExtraArgs(extra);
  const stopTimeoutMs = o.stopTimeoutMs ?? 30_000;
  if (!(stopTimeoutMs >= 0)) throw new VmnetError('E_USAGE', `bad stop timeout ${stopTimeoutMs}`);
  // A login user other than the host user's name is said in the plan (--dry-run), not on every run.
  const cloudInit = await resolveCloudInit(o, { image: Boolean(image || url), kernel: Boolean(kernel) }, hasUser);
  if (o.ssh === true && !hasUser) throw new VmnetError('E_USAGE', 'the SSH forward goes through the VM\'s own gateway, which needs --net user');
  // Every seeded VM, and every disk image even unseeded (it may bring its own keys), gets its SSH forward; --kernel boots only when seeded.
  const sshForward = o.ssh ?? (hasUser && (cloudInit !== null || Boolean((image || url) && !kernel)));
  if (o.waitFor !== undefined && o.waitFor !== 'ssh') throw new VmnetError('E_USAGE', `bad waitFor ${String(o.waitFor)}: 'ssh'`);
  if (o.waitFor === 'ssh' && (cloudInit === null || !sshForward)) throw new VmnetError('E_USAGE', "waitFor: 'ssh' needs a seeded VM with its SSH forward (cloud-init not off, ssh not false, --net user)");
  const waitTimeoutMs = o.waitTimeoutMs ?? 300_000;
  if (!(waitTimeoutMs > 0)) throw new VmnetError('E_USAGE', `bad waitTimeoutMs ${o.waitTimeoutMs}`);
  return {
    baseName,
    explicitName,
    binary,
    accel,
    accelAuto: requested === 'auto' && accel === 'kvm',
    notes,
    memoryMiB,
    cpus,
    ...(image ? { drive: { path: image, format: format!, snapshot: o.snapshot ?? false } } : {}),
    ...(remote ? { remote } : {}),
    ...(kernel ? { kernel } : {}),
    ...(initrd ? { initrd } : {}),
    ...(o.append !== undefined ? { append: o.append } : {}),
    nets,
    forwards,
    gateway,
    consoleFile: o.consoleFile ? resolve(o.consoleFile) : null,
    extra,
    stopTimeoutMs,
    env,
    cloudInit,
    sshForward,
    waitFor: o.waitFor ?? null,
    waitTimeoutMs,
  };
}

/**
 * Lays a resolved VM out in its directory.
 * @param r resolved options
 * @param name the VM's name
 * @param dir its directory
 */
export function buildPlan(r: ResolvedLaunch, name: string, dir: string, switchSockets: Array<string | undefined> = []): LaunchPlan {
  const nics: PlannedNic[] = r.nets.map((net, index) => ({
    index,
    net,
    mac: net.mac ?? macFromName(name, index),
    // A switch port's socket is known once the switch runs (launch() starts it on demand).
    socket: net.kind === 'user' ? join(dir, FILES.net(index)) : (switchSockets[index] ?? `<switch ${net.switch} ${roleText(net)} port>`),
  }));
  const spec: QemuSpec = {
    accel: r.accel,
    memoryMiB: r.memoryMiB,
    cpus: r.cpus,
    name,
    serial: { kind: 'socket', path: join(dir, FILES.serial) },
    qmpSocket: join(dir, FILES.qmp),
    nics: nics.map((n) => ({ mac: n.mac, backend: { kind: 'stream', path: n.socket } })),
    extra: ['-S', ...r.extra],
    ...(r.drive ? { drive: r.drive } : {}),
    ...(r.seedQemu?.serial !== undefined ? { smbiosSerial: r.seedQemu.serial } : {}),
    ...(r.seedQemu?.disk !== undefined ? { seedDisk: r.seedQemu.disk } : {}),
    ...(r.kernel ? { kernel: r.kernel } : {}),
    ...(r.initrd ? { initrd: r.initrd } : {}),
    ...(r.append !== undefined ? { append: r.append } : {}),
  };
  const network: string[] = [];
  if (nics.length === 0) network.push('network: none (no NIC)');
  for (const n of nics) {
    if (n.net.kind === 'user') {
      const c = resolveGatewayConfig(r.gateway);
      const net = `${formatIp4(c.subnet.net)}/${c.subnet.prefix}`;
      network.push(
        `nic ${n.index} ${n.mac}: vmnet gateway (user, in-process) on ${n.socket}: network ${net}, gateway ${formatIp4(c.gatewayIp)}, DNS ${formatIp4(c.dnsIp)}, mtu ${c.mtu}${c.isolated ? ', isolated' : ''}${c.pcap ? `, pcap ${c.pcap}` : ''}`,
      );
      for (const f of r.forwards) network.push(`forward ${formatForward(f)} -> guest port ${f.guestPort}/${f.proto}`);
      for (const d of c.dnsRecords) network.push(`dns-record ${d.name}`);
    } else {
      network.push(`nic ${n.index} ${n.mac}: switch ${n.net.switch} (${roleText(n.net)}; started on demand) on ${n.socket}`);
    }
  }
  if (r.cloudInit) {
    const c = r.cloudInit;
    const gw = nics.some((n) => n.net.kind === 'user') ? resolveGatewayConfig(r.gateway) : null;
    const how = c.seed === 'net' && gw ? `served at http://${formatIp4(gw.dnsIp)}/vmnet/TOKEN/ to this VM's MAC only, named by the SMBIOS serial` : `on a CIDATA disk (${join(dir, 'seed.img')})`;
    network.push(`cloud-init: user ${c.user}${c.userNote ? ` (${c.userNote})` : ''} with vmnet's key${c.keys.length ? ` and ${c.keys.length} more` : ''}${c.userData.length ? `, ${c.userData.length} user-data part(s)` : ''}; seed ${how}`);
  }
  if (r.sshForward) network.push('ssh: a forward from a free 127.0.0.1 port to guest port 22 (vmnet ssh, exec, cp)');
  return { name, dir, binary: r.binary, args: qemuArgs(spec), spec, nics, forwards: r.forwards, notes: [...r.notes], network };
}

/**
 * What `launch(o)` would do, without doing it: the exact QEMU command line
 * and the network plan (`vmnet run --dry-run`). Creates nothing; the runtime
 * root is only read.
 */
export async function planLaunch(o: LaunchOptions): Promise<LaunchPlan> {
  const resolved = await resolveLaunch(o);
  const root = runtimeRoot(resolved.env);
  const name = await peekName(root, resolved.baseName, resolved.explicitName);
  // What QEMU would be given for the seed; its token is made when the VM starts.
  const c = resolved.cloudInit;
  const seedQemu = c === null ? undefined : c.seed === 'net' ? { serial: `ds=nocloud-net;s=http://${formatIp4(resolveGatewayConfig(resolved.gateway).dnsIp)}/vmnet/TOKEN/` } : { disk: join(root, name, 'seed.img') };
  const r: ResolvedLaunch = seedQemu ? { ...resolved, seedQemu } : resolved;
  if (!r.remote) return buildPlan(r, name, join(root, name));
  // The disk an image URL would get, and where its base comes from.
  const disk = vmDiskPath(name, r.env);
  const kept = await readDiskMeta(name, r.env);
  const plan = buildPlan({ ...r, drive: { path: disk, format: 'qcow2', snapshot: r.remote.snapshot } }, name, join(root, name));
  plan.notes.push(kept ? `disk: ${disk}, kept from an earlier run (over sha256:${kept.sha256})` : `disk: ${disk}, a new qcow2 overlay over ${r.remote.url} (downloaded into the image cache unless it is there)`);
  return plan;
}

/**
 * Claims the VM's directory (creating the runtime root if needed), its
 * state.json written from the first moment, and plans the launch in it.
 * @param owner the state naming this process as the owner, for a name
 */
export async function claimPlan(r: ResolvedLaunch, owner: (name: string) => VmState): Promise<LaunchPlan> {
  const root = await ensureRuntimeRoot(r.env);
  const { name, dir } = await claimVmDir(root, r.baseName, r.explicitName, owner);
  return buildPlan(r, name, dir);
}
