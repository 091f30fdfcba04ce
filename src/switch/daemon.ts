/**
 * Theory of operation: switches as background processes owned by the user.
 *
 * Starting. {@link ensureSwitch} (and `vmnet switch create`) validate the
 * options in the calling process, create the switch directory (runtime.ts),
 * open `daemon.log` there and spawn `node BIN switch serve NAME [flags]`
 * detached, in its own session, stdin closed and stdout/stderr to the log,
 * then unref it. The child ({@link serveSwitch}) starts the segment
 * (segment.ts: switch + optional gateway), opens the control socket and
 * writes state.json last. The parent polls the control socket until it
 * answers with the child's pid (or the child exits, or a timeout). Two
 * callers racing to start the same switch both spawn; the second child
 * finds the role socket live and exits without touching anything, and its
 * parent then finds the first one serving.
 *
 * Control socket (`ctl.sock`, 0600 in the 0700 switch directory). One JSON
 * object per line each way, one answer per request, in order:
 *   {"op":"status"}                       → {"ok":true,"name","pid","state","snapshot"}
 *   {"op":"socket","role":{"vlan":10}}    → {"ok":true,"path"}   (opens the role socket)
 *   {"op":"socket","role":…,"owner":"web:0"} → {"ok":true,"path"} (a socket of that VM NIC's own)
 *   {"op":"link-set","owner":"web:0"|"port":4,"patch":{set,dir,clear}} → {"ok":true,"links":[…]}
 *   {"op":"link-show","owner":"web:0"|"port":4} → {"ok":true,"links":[{port,owner,link}…]}
 *       (link faults, impair-port.ts; config/link.ts checks the patch. A VM's
 *       port by its owner or id; a link to another switch by its port id:
 *       egress is from this switch to the peer, ingress from the peer)
 *   {"op":"name","mac":"52:…","name":"db"} → {"ok":true}          (vmnet name for DNS)
 *   {"op":"unname","mac":"52:…"}          → {"ok":true}
 *   {"op":"forward-add","spec":{"proto","bindAddress","hostPort","guestPort","guest"}} → {"ok":true}
 *       (guest: a VM name or IPv4 address, resolved per connection/datagram)
 *   {"op":"forward-rm","proto":"tcp","hostPort":8080,"bindAddress"?} → {"ok":true,"removed":bool}
 *   {"op":"forward-ls"}                   → {"ok":true,"forwards":[spec…]}
 *   {"op":"probe","guest":"db","port":22,"timeoutMs"?} → {"ok":true,"result":"open"|"closed"|"timeout"|"no-guest"}
 *   {"op":"unblock","port":4}            → {"ok":true,"unblocked":bool} (lifts a loop-protection block)
 *   {"op":"link-socket","name":"a","role":{"trunk":[10,20]}} → {"ok":true,"path"}
 *       (the socket switch a's link connects to: server.ts, "Links between switches")
 *   {"op":"link","name":"b","path":"…/link-a.sock","role":{"trunk":[10,20]}} → {"ok":true,"made":bool}
 *       (cables this switch to that socket of switch b)
 *   {"op":"unlink","name":"b"}           → {"ok":true,"removed":bool} (either end)
 *   {"op":"stop"}                         → {"ok":true}, then the switch shuts down
 * Errors: {"ok":false,"code":"E_USAGE","message":"…"}. Lines over 1 MiB
 * close the connection. Access control is the file system: only the owner
 * can reach the socket.
 *
 * Log. daemon.log gets a line when the switch starts and stops, and each
 * loop-protection event: a MAC flapping between two ports, a port blocked
 * (with the command that unblocks it), a port unblocked, storm-limit drops
 * (at most one line per port per 10 s).
 *
 * Stopping. `stop` (or SIGTERM/SIGINT) closes the control socket, every
 * port and the gateway, then removes the switch directory. {@link
 * removeSwitch} refuses while VM ports are attached unless forced, asks for
 * `stop`, waits for the pid to go, escalates to SIGTERM then SIGKILL, and
 * removes whatever is left. A dead switch's directory is cleaned up by
 * whoever next looks at it (runtime.ts, "stale").
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { listenPrivate } from '../link/unix-listen.js';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmnetError } from '../errors.js';
import { resolveGatewayConfig } from '../gateway/config.js';
import { formatForward, parseForward, type ForwardSpec } from '../config/forward.js';
import { probeUnix, removeStaleSocket } from '../link/stream-port.js';
import type { Upstream } from '../services/dns/forwarder.js';
import type { DnsRecord } from '../services/dns/local.js';
import {
  ensureSwitchDir,
  listSwitchNames,
  pidIsSwitch,
  readState,
  removeSwitchDir,
  runtimeDir,
  STARTING_GRACE_MS,
  switchDirAge,
  switchPaths,
  writeState,
  type SwitchPaths,
  type SwitchState,
  validateSwitchName,
} from './runtime.js';
import { startSegment, type SegmentSnapshot } from './segment.js';
import { roleSocketName, type PortSnapshot } from './server.js';
import type { LinkSnapshot } from './impair-port.js';
import { linkPatchFromJson, type LinkPatch } from '../config/link.js';
import { bindVtep } from './vxlan-socket.js';
import { formatRole, normaliseRole, type PortRole } from './vlan.js';
import { checkVxlan, defaultVxlanMtu, formatVxlanEndpoint, formatVxlanLocal, type VxlanConfig } from '../config/vxlan.js';

/** Options of a background switch; they apply when it is created. */
export interface SwitchCreateOptions {
  /** Gateway network; implies a gateway unless `gateway: false`. */
  subnet?: string;
  /** Put a gateway on the switch (default: true when `subnet` is given). */
  gateway?: boolean;
  /** Gateway lets nothing out (no NAT, no DNS forwarding, no host access). */
  isolated?: boolean;
  /** The gateway address reaches the host's 127.0.0.1 (default true). */
  hostLoopback?: boolean;
  /** NAT reaches the host's own addresses (default true; false: `--no-host`). */
  hostAccess?: boolean;
  /** Capture every frame to this file. */
  pcap?: string;
  mtu?: number;
  /** The gateway serves IPv6 (default true). */
  ipv6?: boolean;
  /** The gateway's IPv6 /64 (default fd0d:b4b8:6ba1::/64). */
  subnet6?: string;
  /** Storm limit: group frames per second each port may send; 0 turns it off. Default 1000. */
  stormRate?: number;
  /** Join a VXLAN segment (switch/vxlan-socket.ts); the MTU then defaults to the underlay's − 50. */
  vxlan?: VxlanConfig;
  dnsUpstreams?: Upstream[];
  dnsRecords?: DnsRecord[];
  /** Runtime directory (default runtimeDir()). */
  runtimeDir?: string;
  /** How long to wait for the switch to serve; default 10 s. */
  timeoutMs?: number;
  /** The CLI entry to run as `node BIN switch serve` (default: dist/cli/bin.js). */
  bin?: string;
}

/** A running background switch. */
export interface SwitchInfo {
  name: string;
  pid: number;
  dir: string;
  /** Default (access VLAN 1) socket. */
  socket: string;
  control: string;
  subnet: string | null;
  gateway: boolean;
  isolated: boolean;
  created: string;
  /** True when this call started it. */
  started: boolean;
  /** The VXLAN port's settings as bound, or null. */
  vxlan: { vni: number; local: string; remotes: Array<{ remote: string }>; maxInnerFrame: number } | null;
}

/** One switch as {@link listSwitches} sees it. */
export type SwitchListing =
  | { name: string; state: 'running'; info: SwitchInfo; snapshot: SegmentSnapshot }
  | { name: string; state: 'starting' | 'unresponsive'; pid: number | null };

type Probe =
  | { state: 'running'; st: SwitchState; snapshot: SegmentSnapshot }
  | { state: 'absent' }
  | { state: 'starting' | 'unresponsive'; pid: number | null };

/** One port's link faults, as the link ops answer. */
export interface PortLink {
  port: number;
  owner: string | null;
  /** null: the port never had faults set (a perfect link). */
  link: LinkSnapshot | null;
}

const DEFAULT_SUBNET = '10.0.2.0/24';
const MAX_LINE = 1 << 20;

// ------------------------------------------------------------ control socket

interface ControlRequest {
  op: string;
  role?: PortRole;
  mac?: string;
  name?: string;
  spec?: ForwardSpec;
  proto?: string;
  hostPort?: number;
  bindAddress?: string;
  /** socket, link-set, link-show: the VM NIC (`VM:NIC`) a port belongs to. */
  owner?: string;
  /** link-set: the change (config/link.ts LinkPatch). */
  patch?: unknown;
  /** probe: the VM name or address, the port and the timeout. */
  guest?: string;
  port?: number;
  timeoutMs?: number;
  /** link: the peer socket to connect to. */
  path?: string;
}

/** Checks a forward spec that came as JSON (by formatting and parsing it again). */
function forwardFromJson(raw: unknown): ForwardSpec {
  const r = raw as Partial<ForwardSpec> | null;
  if (typeof r !== 'object' || r === null || typeof r.bindAddress !== 'string') throw new VmnetError('E_USAGE', 'bad forward: expected {proto, bindAddress, hostPort, guestPort, guest?}');
  const spec = parseForward(formatForward(r as ForwardSpec));
  if (r.guest !== undefined) {
    if (typeof r.guest !== 'string' || r.guest === '') throw new VmnetError('E_USAGE', 'bad forward: guest must be a VM name or an IPv4 address');
    spec.guest = r.guest;
  }
  return spec;
}

/**
 * Sends one request to a control socket and returns the answer.
 * @throws VmnetError E_TIMEOUT, or the error the switch answered with;
 *   connect errors (ENOENT, ECONNREFUSED) pass through
 */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 3000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new VmnetError('E_TIMEOUT', `switch control socket ${path} did not answer in ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify(req) + '\n'));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      s.destroy();
      try {
        const ans = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        if (ans.ok === true) resolve(ans);
        else reject(new VmnetError((ans.code as 'E_USAGE') ?? 'E_USAGE', String(ans.message ?? 'switch refused the request')));
      } catch (e) {
        reject(e);
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      reject(new VmnetError('E_TIMEOUT', `switch control socket ${path} closed without answering`));
    });
  });
}

async function listenControl(path: string, handle: (req: ControlRequest) => Promise<Record<string, unknown>>): Promise<Server> {
  await removeStaleSocket(path);
  const server = createServer((s) => {
    let buf = '';
    let chain = Promise.resolve();
    s.setEncoding('utf8');
    s.on('error', () => {});
    s.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE) return void s.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        chain = chain.then(async () => {
          let ans: Record<string, unknown>;
          try {
            const req = JSON.parse(line) as ControlRequest;
            if (typeof req !== 'object' || req === null || typeof req.op !== 'string') throw new VmnetError('E_USAGE', 'bad request: expected {"op":…}');
            ans = await handle(req);
          } catch (e) {
            ans = { ok: false, code: (e as VmnetError).code ?? 'E_USAGE', message: (e as Error).message };
          }
          if (!s.destroyed) s.write(JSON.stringify(ans) + '\n');
        });
      }
    });
  });
  try {
    await listenPrivate(server, path);
  } catch (e) {
    throw new VmnetError('E_PORT_IN_USE', `cannot listen on ${path}: ${(e as Error).message}`, { cause: e });
  }
  return server;
}

/** The stream ports a link request names (by owner or id); E_USAGE when none. */
function linkPorts(ports: PortSnapshot[], req: ControlRequest): PortSnapshot[] {
  const found = ports.filter((p) => p.kind !== 'internal' && (req.owner !== undefined ? p.owner === req.owner : p.id === req.port));
  if (found.length === 0) throw new VmnetError('E_USAGE', req.owner !== undefined ? `no port of ${req.owner} on this switch` : `no VM or link port ${req.port} on this switch`);
  return found;
}

const linkOf = (p: PortSnapshot): PortLink => ({ port: p.id, owner: p.owner, link: p.link });

// ------------------------------------------------------------ the background process

/** Options of {@link serveSwitch} (the hidden `vmnet switch serve`). */
export interface ServeOptions extends Omit<SwitchCreateOptions, 'timeoutMs' | 'bin'> {
  /** Registers the shutdown signal handler; returns its remover. */
  onSignal?: (handler: () => void) => () => void;
  /** Log lines (the daemon's stdout, i.e. daemon.log). */
  log?: (line: string) => void;
}

/**
 * Runs switch `name` in this process until `stop` or a signal: segment,
 * control socket, state.json; at the end removes the switch directory.
 * @throws VmnetError when the switch cannot start (e.g. E_PORT_IN_USE when
 *   another process already serves it); nothing is removed then
 */
export async function serveSwitch(name: string, opts: ServeOptions = {}): Promise<void> {
  const log = opts.log ?? (() => {});
  const p = switchPaths(name, opts.runtimeDir);
  ensureSwitchDir(p);
  const withGateway = opts.gateway ?? opts.subnet !== undefined;
  const subnet = withGateway ? (opts.subnet ?? DEFAULT_SUBNET) : null;
  const seg = await startSegment({
    dir: p.dir,
    name,
    log: (line) => log(`vmnet switch ${name}: ${line}`),
    pcap: opts.pcap,
    mtu: opts.mtu,
    stormRate: opts.stormRate,
    vxlan: opts.vxlan,
    gateway: withGateway ? { subnet: subnet!, ipv6: opts.ipv6, subnet6: opts.subnet6, isolated: opts.isolated, hostLoopback: opts.hostLoopback, hostAccess: opts.hostAccess, dnsUpstreams: opts.dnsUpstreams, dnsRecords: opts.dnsRecords } : false,
  });
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const st: SwitchState = {
    version: 1,
    name,
    pid: process.pid,
    subnet,
    gateway: withGateway,
    isolated: withGateway && (opts.isolated ?? false),
    mtu: seg.switch.switch.mtu,
    pcap: opts.pcap ?? null,
    created: new Date().toISOString(),
    socket: seg.socket,
    control: p.control,
  };
  let ctl: Server;
  try {
    ctl = await listenControl(p.control, async (req) => {
      switch (req.op) {
        case 'status':
          return { ok: true, name, pid: process.pid, state: st, snapshot: seg.snapshot() };
        case 'socket':
          if (req.owner !== undefined) return { ok: true, path: await seg.switch.ownerSocket(req.role ?? { vlan: 1 }, req.owner) };
          return { ok: true, path: await seg.socketFor(req.role ?? { vlan: 1 }) };
        case 'link-set': {
          const patch = linkPatchFromJson(req.patch);
          const ports = linkPorts(seg.switch.snapshot().ports, req);
          for (const p of ports) seg.switch.setLink(p.id, patch);
          return { ok: true, links: linkPorts(seg.switch.snapshot().ports, req).map(linkOf) };
        }
        case 'link-show':
          return { ok: true, links: linkPorts(seg.switch.snapshot().ports, req).map(linkOf) };
        case 'name':
          seg.setName(String(req.mac), String(req.name));
          return { ok: true };
        case 'unname':
          seg.removeName(String(req.mac));
          return { ok: true };
        case 'forward-add': {
          if (seg.gateway === null) throw new VmnetError('E_USAGE', `switch ${name} has no gateway to forward ports through`);
          await seg.gateway.forwards.add(forwardFromJson(req.spec));
          return { ok: true };
        }
        case 'forward-rm': {
          if (seg.gateway === null) throw new VmnetError('E_USAGE', `switch ${name} has no gateway to forward ports through`);
          if ((req.proto !== 'tcp' && req.proto !== 'udp') || typeof req.hostPort !== 'number') throw new VmnetError('E_USAGE', 'bad forward-rm: expected {proto, hostPort, bindAddress?}');
          const removed = await seg.gateway.forwards.remove({ proto: req.proto, hostPort: req.hostPort, bindAddress: req.bindAddress });
          return { ok: true, removed };
        }
        case 'forward-ls':
          return { ok: true, forwards: seg.gateway?.forwards.list() ?? [] };
        case 'probe': {
          if (seg.gateway === null) throw new VmnetError('E_USAGE', `switch ${name} has no gateway to probe through`);
          if (typeof req.guest !== 'string' || typeof req.port !== 'number') throw new VmnetError('E_USAGE', 'bad probe: expected {guest, port, timeoutMs?}');
          const result = await seg.gateway.probeGuestPort(req.port, typeof req.timeoutMs === 'number' ? req.timeoutMs : 1000, req.guest);
          return { ok: true, result };
        }
        case 'unblock':
          if (typeof req.port !== 'number') throw new VmnetError('E_USAGE', 'bad unblock: expected {port}');
          return { ok: true, unblocked: seg.switch.unblock(req.port) };
        case 'link': {
          if (typeof req.name !== 'string' || typeof req.path !== 'string' || req.role === undefined) throw new VmnetError('E_USAGE', 'bad link: expected {name, path, role}');
          validateSwitchName(req.name);
          const made = await seg.switch.link(req.name, req.path, req.role);
          if (made) log(`vmnet switch ${name}: linked to ${req.name} (${formatRole(normaliseRole(req.role))}) through ${req.path}`);
          return { ok: true, made };
        }
        case 'link-socket':
          if (typeof req.name !== 'string' || req.role === undefined) throw new VmnetError('E_USAGE', 'bad link-socket: expected {name, role}');
          validateSwitchName(req.name);
          return { ok: true, path: await seg.switch.linkSocket(req.name, req.role) };
        case 'unlink':
          if (typeof req.name !== 'string') throw new VmnetError('E_USAGE', 'bad unlink: expected {name}');
          return { ok: true, removed: await seg.switch.unlink(req.name) };
        case 'stop':
          setImmediate(stop);
          return { ok: true };
        default:
          throw new VmnetError('E_USAGE', `unknown control request ${JSON.stringify(req.op)}`);
      }
    });
  } catch (e) {
    await seg.close();
    throw e;
  }
  await writeState(p, st);
  log(`vmnet switch ${name}: serving (pid ${process.pid}) on ${seg.socket}${subnet ? `, gateway on ${subnet}` : ', no gateway'}`);
  const off = opts.onSignal?.(() => stop());
  process.on('SIGHUP', () => {});
  await stopped;
  off?.();
  log(`vmnet switch ${name}: stopping`);
  await new Promise<void>((r) => ctl.close(() => r()));
  await seg.close();
  // Only remove the directory if it is still ours.
  const now = await readState(p);
  if (now === null || now.pid === process.pid) await removeSwitchDir(p);
}

// ------------------------------------------------------------ the library side

async function probe(p: SwitchPaths): Promise<Probe> {
  const st = await readState(p);
  if (st !== null) {
    try {
      const ans = await controlRequest(st.control, { op: 'status' }, 2000);
      if (ans.pid === st.pid && ans.name === p.name) return { state: 'running', st, snapshot: ans.snapshot as SegmentSnapshot };
    } catch {
      // fall through to the pid checks
    }
    if (!pidIsSwitch(st.pid, p.name)) {
      await removeSwitchDir(p);
      return { state: 'absent' };
    }
    return { state: 'unresponsive', pid: st.pid };
  }
  const age = await switchDirAge(p);
  if (age === null) return { state: 'absent' };
  if (age > STARTING_GRACE_MS) {
    await removeSwitchDir(p);
    return { state: 'absent' };
  }
  return { state: 'starting', pid: null };
}

const infoOf = (st: SwitchState, p: SwitchPaths, started: boolean, snap: SegmentSnapshot): SwitchInfo => ({
  name: st.name,
  pid: st.pid,
  dir: p.dir,
  socket: st.socket,
  control: st.control,
  subnet: st.subnet,
  gateway: st.gateway,
  isolated: st.isolated,
  created: st.created,
  started,
  vxlan: snap.vxlan ? { vni: snap.vxlan.vni, local: snap.vxlan.local, remotes: snap.vxlan.remotes.map((r) => ({ remote: r.remote })), maxInnerFrame: snap.vxlan.maxInnerFrame } : null,
});

/** The CLI entry point to spawn: dist/cli/bin.js (also when running from src/ under a test runner). */
function defaultBin(): string {
  const here = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
  if (!import.meta.url.endsWith('.ts') && existsSync(here)) return here;
  const dist = fileURLToPath(new URL('../../dist/cli/bin.js', import.meta.url));
  if (existsSync(dist)) return dist;
  throw new VmnetError('E_NO_FILE', `cannot find vmnet's dist/cli/bin.js to start a switch (run npm run build)`);
}

function serveArgs(name: string, o: SwitchCreateOptions): string[] {
  const a = ['switch', 'serve', name];
  if (o.subnet !== undefined) a.push('--subnet', o.subnet);
  if (o.gateway !== undefined) a.push(o.gateway ? '--gateway' : '--no-gateway');
  if (o.isolated) a.push('--isolated');
  if (o.hostLoopback === false) a.push('--no-host-loopback');
  if (o.hostAccess === false) a.push('--no-host');
  if (o.pcap !== undefined) a.push('--pcap', o.pcap);
  if (o.mtu !== undefined) a.push('--mtu', String(o.mtu));
  if (o.ipv6 === false) a.push('--no-ipv6');
  if (o.subnet6 !== undefined) a.push('--subnet6', o.subnet6);
  if (o.stormRate !== undefined) a.push('--storm-limit', String(o.stormRate));
  if (o.vxlan !== undefined) {
    a.push('--vxlan', String(o.vxlan.vni));
    for (const r of o.vxlan.remotes) a.push('--vxlan-remote', formatVxlanEndpoint(r));
    const l = o.vxlan.local;
    if (l !== undefined && (l.host !== undefined || l.port !== undefined)) a.push('--vxlan-local', formatVxlanLocal(l));
    if (o.vxlan.underlayMtu !== undefined) a.push('--vxlan-underlay-mtu', String(o.vxlan.underlayMtu));
  }
  for (const u of o.dnsUpstreams ?? []) a.push('--dns-upstream', `${u.host}:${u.port}`);
  for (const r of o.dnsRecords ?? []) a.push('--dns-record', `${r.name}=${r.type === 'A' ? formatIp(r.address) : r.address}`);
  return a;
}

const formatIp = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');

/** Checks options in the caller, so usage errors are reported here and not in a log. */
function checkOptions(name: string, o: SwitchCreateOptions): void {
  switchPaths(name, o.runtimeDir ?? runtimeDir());
  const withGateway = o.gateway ?? o.subnet !== undefined;
  if (o.gateway === false && o.subnet !== undefined) throw new VmnetError('E_USAGE', '--subnet is the gateway\'s network and --no-gateway asks for none: drop one of them');
  if (!withGateway && o.isolated) throw new VmnetError('E_USAGE', '--isolated needs a gateway (give --subnet or --gateway)');
  if (!withGateway && (o.hostLoopback === false || o.hostAccess === false)) throw new VmnetError('E_USAGE', '--no-host-loopback and --no-host need a gateway (give --subnet or --gateway)');
  if (o.vxlan !== undefined) checkVxlan(o.vxlan);
  if (!withGateway && (o.ipv6 === false || o.subnet6 !== undefined)) throw new VmnetError('E_USAGE', '--no-ipv6 and --subnet6 need a gateway (give --subnet or --gateway)');
  if (withGateway) resolveGatewayConfig({ subnet: o.subnet ?? DEFAULT_SUBNET, mtu: o.mtu ?? (o.vxlan && defaultVxlanMtu(o.vxlan)), ipv6: o.ipv6, subnet6: o.subnet6 });
  else if (o.mtu !== undefined && !(Number.isInteger(o.mtu) && o.mtu >= 68 && o.mtu <= 65535)) throw new VmnetError('E_USAGE', `bad --mtu ${o.mtu}: give 68-65535`);
  if (o.stormRate !== undefined && !(Number.isInteger(o.stormRate) && o.stormRate >= 0)) throw new VmnetError('E_USAGE', `bad --storm-limit ${o.stormRate}: give a number of frames per second, 0 for none`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Returns switch `name`, starting it in the background when it is not
 * running (`vmnet run --net switch:NAME`). Options only apply to a switch
 * this call starts.
 * @throws VmnetError E_USAGE for a bad name or options, E_TIMEOUT when the
 *   switch does not come up, E_CLOSED when its process exits first (the
 *   message quotes the end of daemon.log)
 */
export async function ensureSwitch(name: string, opts: SwitchCreateOptions = {}): Promise<SwitchInfo> {
  return startOrFind(name, opts, false);
}

/**
 * Starts switch `name` in the background.
 * @throws VmnetError E_USAGE when it already runs, else as {@link ensureSwitch}
 */
export async function createSwitch(name: string, opts: SwitchCreateOptions = {}): Promise<SwitchInfo> {
  return startOrFind(name, opts, true);
}

async function startOrFind(name: string, opts: SwitchCreateOptions, mustCreate: boolean): Promise<SwitchInfo> {
  checkOptions(name, opts);
  const rt = opts.runtimeDir ?? runtimeDir();
  const p = switchPaths(name, rt);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let spawned = false;
  for (;;) {
    const pr = await probe(p);
    if (pr.state === 'running') {
      if (mustCreate && !spawned) throw new VmnetError('E_USAGE', `switch ${name} already exists (pid ${pr.st.pid}); remove it with vmnet switch rm ${name}`);
      return infoOf(pr.st, p, spawned, pr.snapshot);
    }
    if (pr.state === 'unresponsive') throw new VmnetError('E_TIMEOUT', `switch ${name} (pid ${pr.pid}) does not answer on ${p.control}`);
    if (pr.state === 'absent' && !spawned) {
      if (opts.vxlan !== undefined) (await bindVtep(opts.vxlan)).socket.close(); // a taken UDP port is told here, not in daemon.log
      await spawnDaemon(name, p, rt, opts, deadline);
      spawned = true;
      continue;
    }
    if (Date.now() > deadline) throw new VmnetError('E_TIMEOUT', `switch ${name} did not start within ${timeoutMs} ms (see ${p.log})`);
    await sleep(100);
  }
}

/** Spawns the background process and waits until it serves, exits or times out. */
async function spawnDaemon(name: string, p: SwitchPaths, rt: string, opts: SwitchCreateOptions, deadline: number): Promise<void> {
  ensureSwitchDir(p);
  const fd = openSync(p.log, 'a', 0o600);
  let exited: { code: number | null; signal: string | null } | null = null;
  try {
    const child = spawn(process.execPath, [opts.bin ?? defaultBin(), ...serveArgs(name, opts)], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, VMNET_RUNTIME_DIR: rt },
    });
    child.on('exit', (code, signal) => (exited = { code, signal }));
    child.on('error', () => (exited = { code: -1, signal: null }));
    child.unref();
    while (Date.now() < deadline) {
      const st = await readState(p);
      if (st !== null && st.pid === child.pid) {
        try {
          await controlRequest(st.control, { op: 'status' }, 2000);
          return;
        } catch {
          // not yet
        }
      }
      if (exited !== null) {
        const e = exited as { code: number | null; signal: string | null };
        // Lost a race to another starter? Then that one serves, or listens on
        // the default role's socket already (what made this child exit).
        const pr = await probe(p);
        if (pr.state === 'running' || (pr.state === 'starting' && (await probeUnix(join(p.ports, roleSocketName(normaliseRole({ vlan: 1 })))).catch(() => false)))) return;
        const tail = logTail(p.log);
        throw new VmnetError(e.code === 2 ? 'E_USAGE' : 'E_CLOSED', `switch ${name} exited (${e.signal ?? `code ${e.code}`}) before serving: ${tail}`);
      }
      await sleep(50);
    }
  } finally {
    closeSync(fd);
  }
}

function logTail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    return lines.slice(-2).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

/**
 * The socket path for a role on running switch `name` (opened on demand).
 * @param role access `{ vlan: N }` or `{ trunk: [...], native? }`; default access VLAN 1
 * @param opts.owner a VM NIC (`VM:NIC`): a socket of its own, so its port can be found by it (link faults)
 * @throws VmnetError E_USAGE when the switch does not run or the role is bad
 */
export async function switchSocketFor(name: string, role: PortRole = { vlan: 1 }, opts: { runtimeDir?: string; owner?: string } = {}): Promise<string> {
  const p = switchPaths(name, opts.runtimeDir);
  const pr = await probe(p);
  if (pr.state !== 'running') throw new VmnetError('E_USAGE', `no running switch ${name}; create it with vmnet switch create ${name}`);
  const ans = await controlRequest(pr.st.control, { op: 'socket', role, ...(opts.owner !== undefined ? { owner: opts.owner } : {}) });
  return String(ans.path);
}

/**
 * Registers a VM's vmnet name for its MAC with switch `name`'s gateway DNS
 * (the launcher calls this for `vmnet run --name web --net switch:lab`).
 */
export async function registerSwitchName(name: string, mac: string, vmName: string, opts: { runtimeDir?: string } = {}): Promise<void> {
  const p = switchPaths(name, opts.runtimeDir);
  const st = await readState(p);
  if (st === null) throw new VmnetError('E_USAGE', `no running switch ${name}`);
  await controlRequest(st.control, { op: 'name', mac, name: vmName });
}

async function controlOf(name: string, opts: { runtimeDir?: string }): Promise<string> {
  const st = await readState(switchPaths(name, opts.runtimeDir));
  if (st === null) throw new VmnetError('E_USAGE', `no running switch ${name}`);
  return st.control;
}

/**
 * Adds a port forward on switch `name`'s gateway; `spec.guest` (a VM name
 * or IPv4 address) picks the VM, resolved to its lease per connection.
 * @throws VmnetError E_USAGE (no switch, no gateway, already forwarded), E_PORT_IN_USE, E_PORT_PRIVILEGED
 */
export async function switchForwardAdd(name: string, spec: ForwardSpec, opts: { runtimeDir?: string } = {}): Promise<void> {
  await controlRequest(await controlOf(name, opts), { op: 'forward-add', spec });
}

/** Removes a port forward from switch `name`'s gateway; false when there was none. */
export async function switchForwardRemove(name: string, which: Pick<ForwardSpec, 'proto' | 'hostPort'> & { bindAddress?: string }, opts: { runtimeDir?: string } = {}): Promise<boolean> {
  const ans = await controlRequest(await controlOf(name, opts), { op: 'forward-rm', ...which });
  return ans.removed === true;
}

/**
 * Lifts a loop-protection block on a port of switch `name` (`vmnet switch
 * unblock NAME PORT`; port ids are in `vmnet switch ls`).
 * @returns false when the port was not blocked
 * @throws VmnetError E_USAGE when there is no such switch or port
 */
export async function unblockSwitchPort(name: string, port: number, opts: { runtimeDir?: string } = {}): Promise<boolean> {
  const ans = await controlRequest(await controlOf(name, opts), { op: 'unblock', port });
  return ans.unblocked === true;
}

/**
 * Changes (or, with no patch, shows) the link faults of the ports of switch
 * `name` that belong to `owner` (`VM:NIC`) or have id `port` (a VM's port,
 * or a link to another switch: egress is from `name` to the peer).
 * @throws VmnetError E_USAGE (no switch, no such port, bad settings)
 */
export async function switchLink(name: string, which: { owner: string } | { port: number }, patch?: LinkPatch, opts: { runtimeDir?: string } = {}): Promise<PortLink[]> {
  const req: ControlRequest = patch === undefined ? { op: 'link-show', ...which } : { op: 'link-set', ...which, patch };
  const ans = await controlRequest(await controlOf(name, opts), req);
  return ans.links as PortLink[];
}

/** Asks the switch's gateway whether VM `guest` listens on `port` (its own SYN; see probeGuestPort). */
export async function switchProbe(name: string, guest: string, port: number, timeoutMs: number, opts: { runtimeDir?: string } = {}): Promise<string> {
  const ans = await controlRequest(await controlOf(name, opts), { op: 'probe', guest, port, timeoutMs });
  return String(ans.result);
}

/**
 * Cables running switch `name` to running switch `peer` with a link whose
 * two ends both have `role` (normally a trunk: `{ trunk: [10, 20], native: 1 }`
 * carries VLANs 10 and 20 tagged and VLAN 1 untagged between them). `name`
 * connects to the socket `peer` opens for it (server.ts, "Links between
 * switches"). Idempotent while the link is up.
 * @returns true when this call made the link
 * @throws VmnetError E_USAGE when either switch does not run or the role is bad
 */
export async function linkSwitches(name: string, peer: string, role: PortRole, opts: { runtimeDir?: string } = {}): Promise<boolean> {
  if (name === peer) throw new VmnetError('E_USAGE', `a link joins two switches; ${name} cannot be linked to itself`);
  const peerCtl = await controlOf(peer, opts);
  const ans0 = await controlRequest(peerCtl, { op: 'link-socket', name, role });
  const ans = await controlRequest(await controlOf(name, opts), { op: 'link', name: peer, path: String(ans0.path), role }, 8000);
  return ans.made === true;
}

/** Cuts the link from switch `name` to `peer` (at both ends; a peer that is gone is fine); false when there was none. */
export async function unlinkSwitches(name: string, peer: string, opts: { runtimeDir?: string } = {}): Promise<boolean> {
  const ans = await controlRequest(await controlOf(name, opts), { op: 'unlink', name: peer });
  const far = await controlOf(peer, opts)
    .then((ctl) => controlRequest(ctl, { op: 'unlink', name }))
    .catch(() => ({ removed: false }));
  return ans.removed === true || far.removed === true;
}

/** The port forwards of switch `name`'s gateway. */
export async function switchForwardList(name: string, opts: { runtimeDir?: string } = {}): Promise<ForwardSpec[]> {
  const ans = await controlRequest(await controlOf(name, opts), { op: 'forward-ls' });
  return ans.forwards as ForwardSpec[];
}

/** The state of running switch `name`, or null. */
export async function switchStatus(name: string, opts: { runtimeDir?: string } = {}): Promise<{ info: SwitchInfo; snapshot: SegmentSnapshot } | null> {
  const p = switchPaths(name, opts.runtimeDir);
  const pr = await probe(p);
  return pr.state === 'running' ? { info: infoOf(pr.st, p, false, pr.snapshot), snapshot: pr.snapshot } : null;
}

/** Every switch in the runtime directory; stale ones are cleaned up and left out. */
export async function listSwitches(opts: { runtimeDir?: string } = {}): Promise<SwitchListing[]> {
  const rt = opts.runtimeDir ?? runtimeDir();
  const out: SwitchListing[] = [];
  for (const name of await listSwitchNames(rt)) {
    const p = switchPaths(name, rt);
    const pr = await probe(p);
    if (pr.state === 'running') out.push({ name, state: 'running', info: infoOf(pr.st, p, false, pr.snapshot), snapshot: pr.snapshot });
    else if (pr.state !== 'absent') out.push({ name, state: pr.state, pid: pr.pid });
  }
  return out;
}

/**
 * Stops switch `name` and removes its directory.
 * @param opts.force stop it even with VM ports attached
 * @returns 'stopped', or 'stale' when only the remains of a dead switch were removed
 * @throws VmnetError E_USAGE when there is no such switch, or when VMs are
 *   attached and `force` is not set
 */
export async function removeSwitch(name: string, opts: { force?: boolean; runtimeDir?: string } = {}): Promise<'stopped' | 'stale'> {
  const p = switchPaths(name, opts.runtimeDir);
  const existed = (await switchDirAge(p)) !== null;
  const pr = await probe(p);
  if (pr.state === 'absent') {
    if (existed) return 'stale';
    throw new VmnetError('E_USAGE', `no switch ${name}`);
  }
  if (pr.state === 'running') {
    const vms = pr.snapshot.switch.ports.filter((x) => x.kind === 'stream');
    if (vms.length > 0 && !opts.force) {
      const what = vms.map((x) => `${x.roleText}${x.macs[0] ? ` ${x.macs[0].mac}` : ''}`).join(', ');
      throw new VmnetError('E_USAGE', `switch ${name} has ${vms.length} port(s) attached (${what}); stop those VMs or use --force`);
    }
    await controlRequest(pr.st.control, { op: 'stop' }).catch(() => undefined);
  }
  const pid = pr.state === 'running' ? pr.st.pid : pr.pid;
  if (pid !== null) {
    for (const [signal, waitMs] of [[null, 5000], ['SIGTERM', 2000], ['SIGKILL', 1000]] as const) {
      if (signal !== null && pidIsSwitch(pid, name)) process.kill(pid, signal);
      const until = Date.now() + waitMs;
      // pidIsSwitch, not pidAlive: an exited daemon may linger as a zombie until its parent reaps it.
      while (pidIsSwitch(pid, name) && Date.now() < until) await sleep(50);
      if (!pidIsSwitch(pid, name)) break;
    }
  }
  await removeSwitchDir(p);
  return 'stopped';
}
