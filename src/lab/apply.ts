/**
 * Theory of operation: the I/O edge of labs. `up`, `down` and `status`
 * observe what runs (switch daemons, VM supervisors, the link ports of
 * switches), ask plan.ts what to do, and do it with the same library calls
 * the single-object commands use — createSwitch / removeSwitch /
 * linkSwitches (switch/daemon.ts), startDetached / stopVm / addForward /
 * removeForward (vm/) — so a lab's switch or VM is the same thing
 * `vmnet switch create` or `vmnet run --detach` makes, and `vmnet ls`,
 * `vmnet switch ls`, `vmnet console` work on it.
 *
 * What an action starts is recorded (state.ts) before it runs, so an up
 * that is interrupted half-way still owns what it started, and the next up
 * or down finds it; what an action stops is struck from the record once it
 * has stopped. The lab's lock keeps two ups (or an up and a down) of the same
 * lab from interleaving. An action that fails stops the up: what ran stays
 * (and recorded), and the error names the action; running up again
 * continues from there.
 *
 * `down` stops the VMs (ACPI power-down, then quit, as `vmnet stop`), then
 * removes the switches (their links go with them), then the lab's
 * directory: nothing of the lab is left in the runtime directory.
 *
 * Link faults (`impair` actions) go on the running port with the calls of
 * `vmnet link set` (switch/vm-link.ts), as a cleared port plus the file's
 * words, so the port has exactly what the file says: a VM's NIC by its
 * owner `VM:NIC` (waiting, up to {@link PORT_WAIT_MS}, for a VM just
 * started to connect: until it has, and while it boots, its link is
 * perfect), a link by switch `a`'s end of it (egress: from `a` to `b`).
 *
 * The bundled test guest (`guest: test`) boots from ensureBundledGuest()'s
 * kernel and initramfs with `vmnet.hostname=NAME vmnet.acpi=1`: its
 * hostname is the VM's name and it powers off on the ACPI button, so
 * `down` is quick.
 */
import { access, constants, readFile, stat } from 'node:fs/promises';
import { VmnetError } from '../errors.js';
import { ensureBundledGuest } from '../guest/bundled.js';
import { parseDnsRecord } from '../services/dns/local.js';
import { createSwitch, linkSwitches, listSwitches, removeSwitch, unlinkSwitches, type SwitchListing } from '../switch/daemon.js';
import type { LinkSnapshot } from '../switch/impair-port.js';
import { setLink, setSwitchLink } from '../switch/vm-link.js';
import { parseLinkWords, type LinkPatch } from '../config/link.js';
import { runtimeRoot } from '../config/runtime-dir.js';
import { addForward, listVms, removeForward, stopVm, type VmListing } from '../vm/manage.js';
import type { LaunchOptions, NetSpec } from '../vm/plan.js';
import { startDetached } from '../vm/supervisor.js';
import { linkKey, type LabSpec, type LabVm } from './model.js';
import { actionGoal, actionText, planDown, planUp, pruneRecord, recordAction, type Action, type LabRecord, type Observed } from './plan.js';
import { lockLab, readRecord, removeLabDir, writeRecord } from './state.js';
import { fieldText, LabInvalid, labLocator, parseLab, type LabIssue } from './validate.js';
import { isImageUrl } from '../images/source.js';
import { resolveGatewayConfig } from '../gateway/config.js';
import { formatIp4, isLinkLocal6, parseIp6 } from '../wire/addr.js';

/** Options of {@link labUp}, {@link labDown} and {@link labStatus}. */
export interface LabOptions {
  /** Environment: the runtime directory (VMNET_RUNTIME_DIR, XDG_RUNTIME_DIR), PATH. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Told each action as it is done (`started VM web (new)`). */
  onAction?: (line: string, action: Action) => void;
  /** How long a VM gets to power off when stopped (ms); default 10 000. */
  stopTimeoutMs?: number;
  /** Progress lines while the bundled test guest is built (the first `guest: test` VM on a machine without it). */
  onGuestBuild?: (line: string) => void;
}

/** How long an impair action waits for a VM's port to appear (its QEMU connecting to the switch), ms. */
const PORT_WAIT_MS = 20_000;

/** Largest topology file read (bytes): a lab is a page, not a data set. */
const MAX_FILE = 1 << 20;

/** What {@link observe} finds. */
interface Seen extends Observed {
  switchList: SwitchListing[];
  vmList: VmListing[];
}

/**
 * Reads and validates a topology file, and checks that the files it names exist.
 * @throws LabInvalid (every issue, file:line:col), VmnetError E_NO_FILE when the file cannot be read
 */
export async function loadLab(file: string): Promise<LabSpec> {
  let text: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    if (st.size > MAX_FILE) throw Object.assign(new Error('too big'), { code: `${st.size} bytes; a topology file may have ${MAX_FILE}` });
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new VmnetError('E_NO_FILE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const spec = parseLab(text, file);
  const missing: LabIssue[] = [];
  const at = labLocator(text);
  for (const v of spec.vms) {
    const b = v.boot;
    const paths: Array<[Array<string | number>, string | null]> = b.kind === 'kernel' ? [[['kernel'], b.kernel], [['initrd'], b.initrd]] : b.kind === 'image' && !isImageUrl(b.image) ? [[['image'], b.image]] : [];
    const many = v.userData.length > 1;
    v.userData.forEach((f, i) => paths.push([many ? ['user-data', i] : ['user-data'], f]));
    for (const [field, path] of paths) {
      if (path === null) continue;
      try {
        await access(path, constants.R_OK);
      } catch {
        const where = ['vms', v.name, ...field];
        missing.push({ file, ...at(where), field: fieldText(where), message: `${path} does not exist or is not readable` });
      }
    }
  }
  if (missing.length > 0) throw new LabInvalid(missing);
  return spec;
}

/** What runs now, as far as the lab's names go. */
async function observe(env: NodeJS.ProcessEnv): Promise<Seen> {
  const rt = runtimeRoot(env);
  const switchList = await listSwitches({ runtimeDir: rt });
  const vmList = await listVms(env);
  const links = new Set<string>();
  for (const s of switchList) {
    if (s.state !== 'running') continue;
    for (const p of s.snapshot.switch.ports) if (p.kind === 'link' && p.peer !== null) links.add(linkKey({ a: s.name, b: p.peer }));
  }
  return { switches: new Set(switchList.map((s) => s.name)), vms: new Set(vmList.map((v) => v.name)), links, switchList, vmList };
}

/** The launch options of a lab VM. */
async function launchOptions(v: LabVm, env: NodeJS.ProcessEnv, onGuestBuild?: (line: string) => void): Promise<LaunchOptions> {
  const net: Array<NetSpec | string> = v.nics.map((n) => ({
    kind: 'switch' as const,
    switch: n.switch,
    ...('vlan' in n.role ? { vlan: n.role.vlan } : { trunk: n.role.trunk, ...(n.role.native !== undefined ? { native: n.role.native } : {}) }),
    ...(n.mac !== null ? { mac: n.mac } : {}),
  }));
  const common: LaunchOptions = {
    name: v.name,
    memory: `${v.memoryMiB}M`,
    cpus: v.cpus,
    accel: v.accel,
    net: net.length ? net : ['none'],
    forwards: v.forwards,
    env,
    stopTimeoutMs: 10_000,
    ...(v.userData.length ? { userDataFiles: v.userData } : {}),
  };
  const b = v.boot;
  if (b.kind === 'image') return { ...common, image: b.image, snapshot: b.snapshot, ...(b.format !== null ? { format: b.format } : {}) };
  if (b.kind === 'kernel') return { ...common, kernel: b.kernel, ...(b.initrd !== null ? { initrd: b.initrd } : {}), ...(b.append !== null ? { append: b.append } : {}) };
  const g = await ensureBundledGuest({ env, ...(onGuestBuild ? { onProgress: onGuestBuild } : {}) });
  return { ...common, kernel: g.kernel, initrd: g.initrd, append: `${g.append} vmnet.hostname=${v.name} vmnet.acpi=1${b.append !== null ? ` ${b.append}` : ''}` };
}

/** Does one action. */
async function perform(a: Action, env: NodeJS.ProcessEnv, stopTimeoutMs: number, onGuestBuild?: (line: string) => void): Promise<void> {
  const runtimeDir = runtimeRoot(env);
  switch (a.op) {
    case 'stop-vm':
      await stopVm(a.name, { timeoutMs: stopTimeoutMs }, env).catch((e: unknown) => {
        if (!(e instanceof VmnetError && e.code === 'E_NO_VM')) throw e; // gone already: that is what was wanted
      });
      return;
    case 'unlink':
      await unlinkSwitches(a.link.a, a.link.b, { runtimeDir }).catch(() => false);
      return;
    case 'remove-switch':
      await removeSwitch(a.name, { force: true, runtimeDir }).catch((e: unknown) => {
        if (!(e instanceof VmnetError && e.code === 'E_USAGE' && /^no switch /.test(e.message))) throw e;
      });
      return;
    case 'create-switch': {
      const s = a.sw;
      await createSwitch(s.name, {
        runtimeDir,
        gateway: s.gateway,
        ...(s.subnet !== null ? { subnet: s.subnet } : {}),
        ...(s.gateway ? { isolated: s.isolated, hostAccess: s.hostAccess, hostLoopback: s.hostLoopback, dnsRecords: s.dns.map(parseDnsRecord) } : {}),
        ...(s.mtu !== null ? { mtu: s.mtu } : {}),
      });
      return;
    }
    case 'link':
      await linkSwitches(a.link.a, a.link.b, a.link.role, { runtimeDir });
      return;
    case 'start-vm':
      await startDetached(await launchOptions(a.vm, env, onGuestBuild));
      return;
    case 'impair': {
      // A cleared port plus the file's words: the port ends up with exactly what the file says.
      const patch: LinkPatch = a.impair === null ? { set: {}, dir: 'both', clear: true } : { ...parseLinkWords(a.impair.split(' ')), clear: true };
      const t = a.target;
      if ('link' in t) await setSwitchLink(t.link.a, t.link.b, patch, { runtimeDir });
      else await setLink(`${t.vm}:${t.nic}`, patch, { runtimeDir, waitMs: PORT_WAIT_MS });
      return;
    }
    case 'forward-add':
      await addForward(a.vm, a.spec, env);
      return;
    case 'forward-rm':
      await removeForward(a.vm, a.spec, env);
      return;
  }
}

/**
 * Brings a lab up, or to what its file now says: does what differs, in order, and nothing else.
 * @returns the actions done (none when the lab already matched its file)
 * @throws VmnetError E_NAME_IN_USE when a name of the file runs outside the
 *   lab or another vmnet is changing it; the error of the first action that
 *   failed (what was done before it stays, recorded)
 */
export async function labUp(spec: LabSpec, opts: LabOptions = {}): Promise<Action[]> {
  const env = opts.env ?? process.env;
  const rt = runtimeRoot(env);
  const release = await lockLab(rt, spec.name);
  try {
    let rec = await readRecord(rt, spec.name);
    const seen = await observe(env);
    const plan = planUp(spec, rec, seen);
    if (plan.conflicts.length > 0) throw new VmnetError('E_NAME_IN_USE', plan.conflicts.join('; '));
    rec ??= { version: 1, name: spec.name, file: spec.file, switches: {}, vms: {}, links: {} };
    for (const a of plan.actions) {
      // What starts is recorded before it starts (an interrupted start is still the lab's); what stops, after it stopped.
      const starts = a.op === 'create-switch' || a.op === 'link' || a.op === 'start-vm' || a.op === 'forward-add';
      if (starts) await writeRecord(rt, (rec = recordAction(rec, a)));
      try {
        await perform(a, env, opts.stopTimeoutMs ?? 10_000, opts.onGuestBuild);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new VmnetError(e instanceof VmnetError ? e.code : 'E_QEMU_FAILED', `lab ${spec.name}: could not ${actionGoal(a)}: ${why}`, { cause: e });
      }
      if (!starts) await writeRecord(rt, (rec = recordAction(rec, a)));
      opts.onAction?.(actionText(a), a);
    }
    await writeRecord(rt, pruneRecord(rec, spec));
    return plan.actions;
  } finally {
    await release();
  }
}

/**
 * Takes a lab down: stops its VMs, removes its switches (and with them its
 * links), then its directory in the runtime directory.
 * @param name the lab's name (the file's `name`, else its file name)
 * @returns the actions done; null when the lab was not up
 */
export async function labDown(name: string, opts: LabOptions = {}): Promise<Action[] | null> {
  const env = opts.env ?? process.env;
  const rt = runtimeRoot(env);
  const rec = await readRecord(rt, name);
  if (rec === null) {
    await removeLabDir(rt, name); // a lock or temp file left by a killed up
    return null;
  }
  const release = await lockLab(rt, name);
  let done = false;
  try {
    const seen = await observe(env);
    const actions = planDown(rec, seen);
    // VMs stop in parallel (each waits for its guest to power off); then the switches go.
    const stops = actions.filter((a) => a.op === 'stop-vm');
    await Promise.all(stops.map(async (a) => {
      await perform(a, env, opts.stopTimeoutMs ?? 10_000);
      opts.onAction?.(actionText(a), a);
    }));
    for (const a of actions.filter((x) => x.op !== 'stop-vm')) {
      await perform(a, env, opts.stopTimeoutMs ?? 10_000);
      opts.onAction?.(actionText(a), a);
    }
    done = true;
    return actions;
  } finally {
    if (done) await removeLabDir(rt, name);
    else await release();
  }
}

/** A switch of a lab, as {@link labStatus} reports it. */
export interface LabSwitchStatus {
  name: string;
  state: 'running' | 'stopped' | 'starting' | 'unresponsive';
  pid: number | null;
  gateway: { subnet: string; address: string; isolated: boolean } | null;
  vlans: number[];
  /** Links up from this switch (the peer's name). */
  links: string[];
  /** VM ports and link ports attached now. */
  ports: number;
  /** DNS names the gateway answers (VM names and DHCP host names). */
  names: Array<{ name: string; ip: string | null }>;
}

/** A VM of a lab, as {@link labStatus} reports it. */
export interface LabVmStatus {
  name: string;
  state: 'running' | 'stopping' | 'starting' | 'unresponsive' | 'stopped';
  pid: number | null;
  accel: string | null;
  memoryMiB: number;
  cpus: number;
  nics: Array<{
    switch: string;
    role: string;
    mac: string | null;
    ip: string | null;
    /** Its IPv6 addresses the segment's gateway has seen in use (SLAAC in the gateway's /64; link-local left out). */
    ip6: string[];
    /** The faults the file asks for (`loss=5% delay=50ms`), or null. */
    impair: string | null;
    /** The port's faults as the switch has them (settings and counters per direction; egress is to the VM), or null while it never had any. */
    link: LinkSnapshot | null;
  }>;
  forwards: string[];
}

/** What `vmnet status lab.yaml` shows. */
export interface LabStatus {
  name: string;
  file: string;
  /** True when the lab has a record (it was brought up and not taken down). */
  up: boolean;
  switches: LabSwitchStatus[];
  vms: LabVmStatus[];
  /** `link` is the faults at `a`'s end (egress: from `a` to `b`), as the switch has them. */
  links: Array<{ a: string; b: string; role: string; up: boolean; impair: string | null; link: LinkSnapshot | null }>;
}

/**
 * The state of a lab as its file describes it: each switch, VM and link, running or not.
 */
export async function labStatus(spec: LabSpec, opts: LabOptions = {}): Promise<LabStatus> {
  const env = opts.env ?? process.env;
  const rt = runtimeRoot(env);
  const rec = await readRecord(rt, spec.name);
  const seen = await observe(env);
  const { formatRole } = await import('../switch/vlan.js');
  const sws = new Map(seen.switchList.map((s) => [s.name, s]));
  const vms = new Map(seen.vmList.map((v) => [v.name, v]));
  const leases = new Map<string, string>(); // switch/mac → ip
  const neighbors6 = new Map<string, string[]>(); // switch/mac → global IPv6 addresses
  for (const s of seen.switchList) {
    if (s.state !== 'running') continue;
    for (const l of s.snapshot.gateway?.leases ?? []) leases.set(`${s.name}/${l.mac}`, l.ip);
    for (const n of s.snapshot.gateway?.neighbors6 ?? []) {
      const a = parseIp6(n.ip);
      if (a === null || isLinkLocal6(a)) continue;
      const k = `${s.name}/${n.mac}`;
      neighbors6.set(k, [...(neighbors6.get(k) ?? []), n.ip]);
    }
  }
  const owned = (kind: 'switches' | 'vms', name: string) => rec !== null && rec[kind][name] !== undefined;
  const ports = (sw: string) => {
    const s = owned('switches', sw) ? sws.get(sw) : undefined;
    return s?.state === 'running' ? s.snapshot.switch.ports : [];
  };
  const portLink = (sw: string, f: (p: { owner: string | null; kind: string; peer: string | null }) => boolean): LinkSnapshot | null => ports(sw).find(f)?.link ?? null;
  return {
    name: spec.name,
    file: spec.file,
    up: rec !== null,
    switches: spec.switches.map((sw): LabSwitchStatus => {
      const s = owned('switches', sw.name) ? sws.get(sw.name) : undefined;
      const running = s?.state === 'running' ? s : null;
      const gw = running?.snapshot.gateway ?? null;
      const vlans = new Set<number>(sw.vlans);
      for (const v of spec.vms) for (const n of v.nics) if (n.switch === sw.name) for (const id of 'vlan' in n.role ? [n.role.vlan] : [...n.role.trunk, ...(n.role.native !== undefined ? [n.role.native] : [])]) vlans.add(id);
      return {
        name: sw.name,
        state: s === undefined ? 'stopped' : s.state,
        pid: s === undefined ? null : s.state === 'running' ? s.info.pid : s.pid,
        gateway: gw !== null ? { subnet: gw.subnet, address: gw.gatewayIp, isolated: gw.isolated } : sw.subnet !== null ? { subnet: sw.subnet, address: formatIp4(resolveGatewayConfig({ subnet: sw.subnet }).gatewayIp), isolated: sw.isolated } : null,
        vlans: [...vlans].sort((a, b) => a - b),
        links: running?.snapshot.switch.ports.filter((p) => p.kind === 'link' && p.peer !== null).map((p) => p.peer!) ?? [],
        ports: running?.snapshot.switch.ports.filter((p) => p.kind !== 'internal').length ?? 0,
        names: running?.snapshot.names.map((n) => ({ name: n.name, ip: n.ip })) ?? [],
      };
    }),
    vms: spec.vms.map((v): LabVmStatus => {
      const l = owned('vms', v.name) ? vms.get(v.name) : undefined;
      return {
        name: v.name,
        state: l === undefined ? 'stopped' : l.state,
        pid: l?.pid ?? null,
        accel: l?.accel || null,
        memoryMiB: v.memoryMiB,
        cpus: v.cpus,
        nics: v.nics.map((n, i) => {
          const mac = n.mac ?? l?.macs[i] ?? null;
          const link = l === undefined ? null : portLink(n.switch, (p) => p.owner === `${v.name}:${i}`);
          return { switch: n.switch, role: formatRole(n.role), mac, ip: mac !== null ? (leases.get(`${n.switch}/${mac}`) ?? null) : null, ip6: mac !== null ? (neighbors6.get(`${n.switch}/${mac}`) ?? []) : [], impair: n.impair, link };
        }),
        forwards: l?.forwards ?? [],
      };
    }),
    links: spec.links.map((k) => ({ a: k.a, b: k.b, role: formatRole(k.role), up: seen.links.has(linkKey(k)), impair: k.impair, link: portLink(k.a, (p) => p.kind === 'link' && p.peer === k.b) })),
  };
}
