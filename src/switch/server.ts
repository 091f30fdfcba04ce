/**
 * Theory of operation: the switch's I/O edge. {@link startSwitch} builds a
 * sans-IO {@link Switch} and serves QEMU stream connections as its ports.
 *
 * Choosing a VLAN. QEMU's stream netdev sends nothing but frames, so a
 * connection cannot say which VLAN it wants. The socket path says it
 * instead: one listening unix socket per port role, all in one private
 * directory,
 *
 *   DIR/                         the switch directory (created 0700)
 *   DIR/ports/                   role sockets (0700 directory, 0600 sockets)
 *   DIR/ports/access-1.sock      access VLAN 1: the untagged network (default)
 *   DIR/ports/access-10.sock     access VLAN 10
 *   DIR/ports/trunk-10_20-22.sock            trunk carrying 10, 20, 21, 22 tagged
 *   DIR/ports/trunk-10-native-1.sock         trunk 10 tagged, VLAN 1 untagged
 *   DIR/ports/trunk-h<12 hex>.sock           a trunk whose name would not fit
 *
 * Every connection to a role socket becomes a new port with that role
 * (`-netdev stream,server=off,addr.type=unix,addr.path=DIR/ports/access-10.sock`).
 * The default role's socket (access VLAN 1) is opened at start, at
 * `options.socket` if given, else `DIR/ports/access-1.sock`. Other role
 * sockets are opened on demand by {@link RunningSwitch.socketFor}, which is
 * idempotent (same role → same path and listener) and returns the path to
 * hand to QEMU. Names are canonical: trunk VLANs sorted and merged into
 * ranges joined by `_` (no commas: QEMU would need them doubled); when the
 * path would exceed the 107-byte `sun_path` limit, the trunk name becomes a
 * hash of the canonical one. A role socket is never shared between roles,
 * so the file name is the role; `snapshot()` lists them all.
 *
 * Per-NIC sockets. {@link RunningSwitch.ownerSocket} opens a socket for one
 * VM NIC (`DIR/ports/nic-<16 hex of sha256(owner)>.sock`, owner `VM:NIC`)
 * with a role: the port that connects there carries the owner in snapshots,
 * which is how `vmnet link set VM:NIC` finds it (a MAC would not do: a
 * guest's bond moves its MAC between its NICs). The socket closes when its
 * port does, or when the owner asks again (the VM started anew); at most
 * 1024 are open.
 *
 * Link faults. {@link RunningSwitch.setLink} gives a stream port (a VM's,
 * or a link to another switch: both are byte streams) delay, loss, rate limits and the rest (impair-port.ts, impair.ts); a port that
 * never had any keeps the plain path.
 *
 * In-process ports (the gateway) join with {@link RunningSwitch.addInternalPort}:
 * the switch calls the peer's `sendFrame`; the returned handle's `sendFrame`
 * feeds the peer's frames into the switch, so it can be given to the peer as
 * its output port.
 *
 * Buffers. With `pool` (a segment with a gateway passes the checksum
 * kernel's memory), the stream ports' read and reassembly buffers and the
 * engine's reentrant arena come from it: frames guests send reach the
 * gateway where their checksums are verified in place, and the gateway's
 * segments are built where they are summed, as on its own socket. Without
 * it, the stream ports share a bounded pool (link/buffer-pool.ts, 4 MiB of
 * idle buffers at most): the output chunks a congested port queues past its
 * own few are reused instead of allocated and collected by the thousand.
 *
 * Backpressure. Each stream port's 'drain' goes to the engine
 * (`portDrained`), which calls back the in-process senders it told to hold
 * back (switch.ts, "Congestion and backpressure"); an internal port's
 * `sendFrame` returns the engine's answer. So the gateway on a segment sees
 * a guest's port fill and drain as it sees its own QEMU socket on
 * `--net user`. Ordinary senders (VMs, links) may hand a congested stream
 * port 3 MiB more before the tail drop (`queueBytes`, switch.ts): with
 * the drop at StreamPort's 256 KiB high-water mark itself, one iperf3 TCP
 * stream between two namespaces through the switch lost 16,000-25,000
 * frames per 3 s on a loaded 2-core machine whenever the receiving relay
 * was off the CPU for a few ms (bench/switch.ts, "switch counters during
 * TCP"; two relays spliced by a socket pair buffer 4 MiB and lose none). So
 * a peer that stops reading costs the switch at most about 3.3 MiB from
 * ordinary senders; an in-process gateway keeps its own 1 MiB allowance on
 * top (switch.ts), and StreamPort's `maxQueued` (4 MiB) bounds the sum. The price is queueing delay:
 * a port saturated by a bulk stream holds up to about 28 ms at 1 Gbit/s
 * ahead of other frames to it.
 *
 * Failures stay local: a connection with a length prefix no QEMU sends
 * (above its 69,632-byte buffer), a hang-up mid-frame or a socket error
 * closes that port alone (see stream-port.ts); its MACs are forgotten at
 * once. An honest frame longer than the max frame (mtu + 22) is skipped and
 * counted (`framer.tooLong` in the port's snapshot); the port stays. A 1 s
 * unref'd timer sweeps aged MACs. With `pcap`, every frame entering the
 * switch is captured once in its tagged form (see switch.ts, "Tap"). The
 * engine's clock is read once per macrotask (clock.ts), not per frame.
 *
 * Links between switches. {@link RunningSwitch.link} connects this switch,
 * as a client, to a role socket of another switch (normally a trunk) and
 * makes the connection a port of its own with the given role: the two
 * switches are then cabled, each seeing the other as one port (IEEE
 * 802.1Q §6.7: a trunk carries its VLANs tagged, its native VLAN
 * untagged). A link has a name (the lab names it after the peer switch);
 * linking again under a name that is up is a no-op, and when the peer goes
 * away the port closes and the link is gone (nothing reconnects by itself:
 * `vmnet up` cables it again). The far end listens on a socket of its own
 * for that link ({@link RunningSwitch.linkSocket}, `ports/link-NAME.sock`,
 * NAME the switch that connects), so on both switches the link's port is
 * kind `link` in snapshots, named after the other switch: a caller (and
 * `vmnet switch rm`, which counts VM ports) tells VM ports from cables.
 *
 * Loops. The engine's events (loop-guard.ts) become log lines through
 * `log`, naming the MAC, the VLAN and both ports; {@link
 * RunningSwitch.unblock} lifts a block. Link ports (both ends) are added
 * `shared` (loop-guard.ts, "Shared ports"): loop protection blocks a local
 * guest's MAC on them rather than the link, and limits group frames per
 * source MAC; vxlan-socket.ts adds the VXLAN port the same way.
 */

import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { VmnetError } from '../errors.js';
import { openPcap, type PcapCounters, type PcapWriter } from '../link/pcap-writer.js';
import { boundedPool } from '../link/buffer-pool.js';
import { connectStream, listenStream, type CloseReason, type StreamListener, type StreamPort } from '../link/stream-port.js';
import type { PortCounters, SwitchCounters } from './counters.js';
import type { FramerCounters } from '../link/stream-framer.js';
import { macrotaskClock } from './clock.js';
import { ImpairedPort, type LinkSnapshot } from './impair-port.js';
import type { LinkPatch } from '../config/link.js';
import type { MacBlockRow } from './fdb.js';
import type { BlockInfo, LoopGuard } from './loop-guard.js';
import { Switch } from './switch.js';
import type { FramePort, PortConfig, SwitchEvent, SwitchOptions, SwitchPort } from './types.js';
import { formatRole, normaliseRole, type NormalRole, type PortRole } from './vlan.js';

/** Options of {@link startSwitch}. */
export interface SwitchServerOptions extends Omit<SwitchOptions, 'tap' | 'now' | 'wallNow' | 'onEvent' | 'random'> {
  /** The switch's name, for log lines (default: its directory). */
  name?: string;
  /** Where log lines go (loops found, ports blocked, storms); default nowhere. */
  log?: (line: string) => void;
  /** Switch directory; role sockets go in `DIR/ports/`. Default: the directory of `socket`. */
  dir?: string;
  /** Path of the default role's (access VLAN 1) socket. Default `DIR/ports/access-1.sock`. */
  socket?: string;
  /** Capture every frame entering the switch to this pcap file (0600). */
  pcap?: string;
  /** MAC ageing sweep interval; default 1000 ms. */
  sweepIntervalMs?: number;
}

/** An in-process port from {@link RunningSwitch.addInternalPort}. */
export interface InternalPort extends FramePort {
  /** The switch's handle of this port (id, counters). */
  readonly port: SwitchPort;
  /**
   * Feeds one frame from the peer into the switch (bytes lent during the
   * call). A DataView is made once per distinct buffer, so a peer that
   * reuses its output buffer costs no allocation.
   * @returns false when a peer with `drained()` should hold back until it is called
   */
  sendFrame(buf: Uint8Array, off: number, len: number, view?: DataView): boolean;
  /**
   * Building in place, as StreamPort's: room for a frame of up to `maxLen`
   * bytes, built at `frameBuffer()[frameOffset()]`, then `commitFrame(len)`
   * (same answer as sendFrame). Nothing else may be sent in between.
   * @param dst the destination MAC the frame will carry, if known: the switch
   *   may then have it built straight into the guest port's output
   *   (switch.ts, "Cut-through")
   * @returns false when there is no room (use sendFrame)
   */
  reserveFrame(maxLen: number, dst?: Uint8Array): boolean;
  frameBuffer(): Uint8Array;
  frameView(): DataView;
  frameOffset(): number;
  commitFrame(len: number): boolean;
  /** Detaches the port; later frames are ignored. */
  remove(): void;
}

/** One role socket in a {@link SwitchSnapshot}. */
export interface SocketSnapshot {
  role: NormalRole;
  roleText: string;
  path: string;
  /** Open connections. */
  ports: number;
}

/** One port in a {@link SwitchSnapshot}. */
export interface PortSnapshot {
  id: number;
  name: string;
  kind: 'stream' | 'internal' | 'link';
  role: NormalRole;
  roleText: string;
  /** The role socket it came in on (for a link: the peer's socket it connected to); null for internal ports. */
  socket: string | null;
  /** For kind `link`: the switch at the other end; else null. */
  peer: string | null;
  /** MACs on it (live entries; static ones with ageMs 0). */
  macs: Array<{ vlan: number; mac: string; ageMs: number; static: boolean }>;
  counters: PortCounters;
  /** Why loop protection blocked it, or null. */
  blocked: BlockInfo | null;
  /** MACs loop protection blocked on it (a shared port: a link, the VXLAN port), with the port each lives on. */
  macBlocks: Array<Omit<MacBlockRow, 'port'>>;
  /** The stream framer's receive counters (frames skipped as too long among them); null for internal ports. */
  framer: FramerCounters | null;
  /** Who the port belongs to (`VM:NIC`, given when its socket was asked for), or null. */
  owner: string | null;
  /** Its link faults (settings and counters per direction), or null when it never had any. */
  link: LinkSnapshot | null;
}

/** JSON-ready state, e.g. for `vmnet switch ls --json`. */
export interface SwitchSnapshot {
  dir: string;
  socket: string;
  mtu: number;
  maxFrame: number;
  ageingMs: number;
  maxEntries: number;
  maxMacsPerPort: number;
  /** Entries in the MAC table. */
  macs: number;
  /** Storm limit per port (group frames per second, 0 = off) and flap detection settings. */
  loopGuard: { stormRate: number; stormBurst: number; sharedStormRate: number; maxStormSources: number; maxMacBlocks: number; flapMoves: number; flapWindowMs: number; blockJitterMs: number; remoteDeferMs: number };
  sockets: SocketSnapshot[];
  ports: PortSnapshot[];
  counters: SwitchCounters;
  /** Connections closed so far, by close reason. */
  connectionsClosed: Partial<Record<CloseReason, number>>;
  pcap: (PcapCounters & { path: string }) | null;
}

/** A running switch from {@link startSwitch}. */
export interface RunningSwitch {
  /** The engine (counters, table, lookup). */
  readonly switch: Switch;
  /** The switch directory. */
  readonly dir: string;
  /** The default role's socket (access VLAN 1). */
  readonly socket: string;
  /**
   * Opens (or finds) the socket for a role and returns its path.
   * @throws VmnetError E_USAGE for a bad role or a path too long for a unix
   *   socket, E_PORT_IN_USE when another process listens there, E_CLOSED after close
   */
  socketFor(role: PortRole): Promise<string>;
  /**
   * Opens a socket of its own for one NIC (`owner`, e.g. `web:0`) with a
   * role, and returns its path: the port that connects there carries the
   * owner's name, so link faults can find it (`vmnet link set web:0 ...`).
   * Asking again for the same owner replaces the socket; it closes when its
   * port does. At most 1024 such sockets are open.
   * @throws VmnetError as {@link socketFor}, E_USAGE for a bad owner or too many
   */
  ownerSocket(role: PortRole, owner: string): Promise<string>;
  /**
   * Changes the link faults of a stream port (impair-port.ts).
   * @returns the port's link state afterwards
   * @throws VmnetError E_USAGE when there is no such stream port or the settings do not go together
   */
  setLink(portId: number, patch: LinkPatch): LinkSnapshot;
  /** The owner (`VM:NIC`) of a port that came in on a per-NIC socket, else null. */
  ownerOf(port: SwitchPort): string | null;
  /**
   * Attaches an in-process peer (e.g. the gateway) as a port.
   * @param peer receives the frames the switch sends to this port
   * @param config role (default access VLAN 1) and name
   * @throws VmnetError E_USAGE for a bad role, E_CLOSED after close
   */
  addInternalPort(peer: FramePort, config?: PortConfig): InternalPort;
  /**
   * Cables this switch to another switch's role socket (see "Links between
   * switches"): connects to `path` and makes the connection a port with
   * `role`. Idempotent per name while the link is up.
   * @returns true when this call made the link, false when it was up already
   * @throws VmnetError E_USAGE for a bad role, E_NO_FILE when nothing listens
   *   at `path`, E_CLOSED after close
   */
  link(name: string, path: string, role: PortRole): Promise<boolean>;
  /**
   * Opens (or finds) the socket another switch's link named `name` connects
   * to (`DIR/ports/link-NAME.sock`): its connections are ports of kind
   * `link`, so this end knows them from VM ports too. Asked again with
   * another role, the old socket and its port go first.
   * @throws VmnetError E_USAGE for a bad role or a path too long, E_CLOSED after close
   */
  linkSocket(name: string, role: PortRole): Promise<string>;
  /**
   * Cuts the link `name`: the one this switch made ({@link RunningSwitch.link}),
   * and the socket (with its port) another switch's link of that name came in on.
   * @returns false when there was neither
   */
  unlink(name: string): Promise<boolean>;
  /**
   * Lifts a loop-protection block.
   * @returns false when the port was not blocked
   * @throws VmnetError E_USAGE when there is no port with that id
   */
  unblock(portId: number): boolean;
  /** QEMU arguments that connect a NIC to a role socket path. */
  qemuNetdevArgs(path: string, id?: string): string[];
  snapshot(): SwitchSnapshot;
  /** Closes every listener and port, then the pcap file. Idempotent. */
  close(): Promise<void>;
}

/** Longest unix socket path (sun_path is 108 bytes with the NUL). */
const MAX_SUN_PATH = 107;

/** `10_20-22`: sorted VLANs with runs merged into ranges. */
function rangesText(vlans: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < vlans.length; ) {
    let j = i;
    while (j + 1 < vlans.length && vlans[j + 1] === vlans[j]! + 1) j++;
    parts.push(j === i ? `${vlans[i]}` : `${vlans[i]}-${vlans[j]}`);
    i = j + 1;
  }
  return parts.join('_');
}

/**
 * The canonical socket file name of a role, e.g. `access-10.sock`,
 * `trunk-10_20-22-native-1.sock`, `trunk-native-5.sock`.
 */
export function roleSocketName(role: NormalRole): string {
  if ('vlan' in role) return `access-${role.vlan}.sock`;
  const parts = ['trunk'];
  if (role.trunk.length > 0) parts.push(rangesText(role.trunk));
  if (role.native !== undefined) parts.push('native', String(role.native));
  return `${parts.join('-')}.sock`;
}

interface RoleListener {
  role: NormalRole;
  path: string;
  listener: StreamListener;
}

interface PortInfo {
  kind: 'stream' | 'internal' | 'link';
  socket: string | null;
  framer: FramerCounters | null;
  owner: string | null;
  /** Made on the first setLink (stream ports only). */
  impair: ImpairedPort | null;
  /** The stream port and its onFrame without faults (stream ports only). */
  stream: StreamPort | null;
  direct: StreamPort['onFrame'] | null;
  /** For kind `link`: the switch at the other end. */
  peer: string | null;
}

/** Most per-NIC (owner) sockets open at once. */
const MAX_OWNER_SOCKETS = 1024;
/** Bytes ordinary senders may hand a congested stream port before the tail drop (see Backpressure): with its 256 KiB high-water mark, within StreamPort's maxQueued (4 MiB). */
const STREAM_QUEUE_BYTES = 3 * 1024 * 1024;
/** Idle I/O buffers the ports of a switch without `pool` keep between bursts (see Buffers). */
const IDLE_POOL_BYTES = 4 * 1024 * 1024;
const OWNER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:\d{1,3}$/;

const ensurePrivateDir = async (path: string): Promise<void> => {
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
    const st = await lstat(path);
    if (!st.isDirectory()) throw new Error('not a directory');
    if ((st.mode & 0o077) !== 0) await chmod(path, 0o700);
  } catch (e) {
    throw new VmnetError('E_NO_FILE', `cannot use ${path} as a private switch directory: ${(e as Error).message}`, { cause: e });
  }
};

/**
 * Starts a switch: opens the default role socket (and the pcap file), then
 * serves connections until {@link RunningSwitch.close}.
 * @throws VmnetError E_USAGE for bad options, E_NO_FILE when the directory or
 *   pcap file cannot be created, E_PORT_IN_USE when the socket is taken
 */
export async function startSwitch(opts: SwitchServerOptions): Promise<RunningSwitch> {
  if (opts.dir === undefined && opts.socket === undefined) {
    throw new VmnetError('E_USAGE', 'a switch needs a directory or a socket path');
  }
  const dir = resolve(opts.dir ?? dirname(opts.socket!));
  const portsDir = join(dir, 'ports');
  const { pcap: pcapPath, sweepIntervalMs = 1000, dir: _dir, socket: _socket, name = dir, log, ...engineOpts } = opts;
  // Validate engine options before touching the file system.
  const probe = new Switch(engineOpts);
  await ensurePrivateDir(dir);
  await ensurePrivateDir(portsDir);
  const pcap: PcapWriter | null = pcapPath !== undefined ? await openPcap(pcapPath, { snaplen: probe.maxFrame }) : null;
  const onEvent = log === undefined ? undefined : (e: SwitchEvent) => log(eventLine(e, name, probe.loopGuard));
  const sw = new Switch({ ...engineOpts, now: macrotaskClock(), wallNow: () => Date.now(), tap: pcap, onEvent });
  const ioPool = engineOpts.pool ?? boundedPool(IDLE_POOL_BYTES);

  const roles = new Map<string, Promise<RoleListener>>();
  const info = new Map<SwitchPort, PortInfo>();
  const closedBy: Partial<Record<CloseReason, number>> = {};
  let closed = false;
  /** Listeners that finished opening, for synchronous snapshots. */
  const settled = new Set<RoleListener>();

  /**
   * Makes a connected stream a port of the switch, removed when it closes.
   * @param owner the `VM:NIC` the port's socket was opened for, or null
   * @param peer for a link: the switch at the other end
   */
  const attach = (sp: StreamPort, role: NormalRole, name: string, path: string, owner: string | null, peer: string | null): SwitchPort => {
    const port = sw.addPort(sp, { role, name, shared: peer !== null, queueBytes: STREAM_QUEUE_BYTES });
    const direct: StreamPort['onFrame'] = (buf, view, off, len) => void sw.input(port, buf, view, off, len);
    const pi: PortInfo = { kind: peer !== null ? 'link' : 'stream', socket: path, framer: sp.rx, owner, impair: null, stream: sp, direct, peer };
    info.set(port, pi);
    sp.onFrame = direct;
    sp.on('drain', () => sw.portDrained(port));
    sp.once('close', (reason) => {
      closedBy[reason] = (closedBy[reason] ?? 0) + 1;
      pi.impair?.close();
      sw.removePort(port);
      info.delete(port);
      if (owner !== null) ownerPortClosed(owner, path);
    });
    return port;
  };

  /** Opens a listener whose connections become ports of `role`: of `owner` (a VM's NIC), or links from `peer`. */
  const open = (role: NormalRole, path: string, owner: string | null = null, peer: string | null = null): Promise<RoleListener> => {
    const name = peer !== null ? `link-${peer}` : roleSocketName(role).replace(/\.sock$/, '');
    return listenStream({ path, maxFrame: sw.maxFrame, pool: ioPool }, (sp: StreamPort) => {
      if (closed) {
        sp.close();
        return;
      }
      attach(sp, role, name, path, owner, peer);
    }).then((listener) => {
      const l: RoleListener = { role, path, listener };
      settled.add(l);
      return l;
    });
  };

  const socketFor = async (r: PortRole): Promise<string> => {
    if (closed) throw new VmnetError('E_CLOSED', 'switch is closed');
    const role = normaliseRole(r);
    const base = roleSocketName(role);
    let got = roles.get(base);
    if (got === undefined) {
      let path = join(portsDir, base);
      if (Buffer.byteLength(path) > MAX_SUN_PATH && !('vlan' in role)) {
        path = join(portsDir, `trunk-h${createHash('sha256').update(base).digest('hex').slice(0, 12)}.sock`);
      }
      if (Buffer.byteLength(path) > MAX_SUN_PATH) {
        throw new VmnetError('E_USAGE', `socket path ${path} is longer than ${MAX_SUN_PATH} bytes; use a shorter switch directory`);
      }
      got = open(role, path);
      roles.set(base, got);
      got.catch(() => roles.delete(base));
    }
    return (await got).path;
  };

  /** Per-NIC sockets by owner. */
  const owners = new Map<string, Promise<RoleListener>>();
  const ownerPortClosed = (owner: string, path: string): void => {
    const l = owners.get(owner);
    if (l === undefined) return;
    void l.then((x) => {
      if (x.path !== path || owners.get(owner) !== l) return;
      for (const i of info.values()) if (i.socket === path) return; // another connection still there
      owners.delete(owner);
      settled.delete(x);
      void x.listener.close();
    });
  };
  const ownerSocket = async (r: PortRole, owner: string): Promise<string> => {
    if (closed) throw new VmnetError('E_CLOSED', 'switch is closed');
    if (typeof owner !== 'string' || !OWNER_RE.test(owner)) throw new VmnetError('E_USAGE', `bad port owner ${JSON.stringify(owner)}: expected VM:NIC, e.g. web:0`);
    const role = normaliseRole(r);
    const old = owners.get(owner);
    if (old === undefined && owners.size >= MAX_OWNER_SOCKETS) throw new VmnetError('E_USAGE', `switch has ${MAX_OWNER_SOCKETS} per-NIC sockets open; stop VMs first`);
    const path = join(portsDir, `nic-${createHash('sha256').update(owner).digest('hex').slice(0, 16)}.sock`);
    if (Buffer.byteLength(path) > MAX_SUN_PATH) throw new VmnetError('E_USAGE', `socket path ${path} is longer than ${MAX_SUN_PATH} bytes; use a shorter switch directory`);
    if (old !== undefined) {
      owners.delete(owner);
      const x = await old.catch(() => null);
      if (x !== null) {
        settled.delete(x);
        await x.listener.close();
      }
    }
    const got = open(role, path, owner);
    owners.set(owner, got);
    got.catch(() => owners.delete(owner));
    return (await got).path;
  };

  const setLink = (portId: number, patch: LinkPatch): LinkSnapshot => {
    const p = sw.ports().find((x) => x.id === portId);
    const i = p === undefined ? undefined : info.get(p);
    if (p === undefined || i === undefined || i.stream === null || i.direct === null) throw new VmnetError('E_USAGE', `switch ${name} has no VM or link port ${portId} (see vmnet switch ls)`);
    i.impair ??= new ImpairedPort(sw, p, i.stream, i.direct);
    i.impair.apply(patch);
    return i.impair.snapshot();
  };

  // The default role, possibly at a path of the caller's choosing.
  const defaultRole = normaliseRole({ vlan: 1 });
  let socket: string;
  if (opts.socket !== undefined) {
    socket = resolve(opts.socket);
    if (Buffer.byteLength(socket) > MAX_SUN_PATH) throw new VmnetError('E_USAGE', `socket path ${socket} is longer than ${MAX_SUN_PATH} bytes`);
    const first = open(defaultRole, socket);
    roles.set(roleSocketName(defaultRole), first);
    try {
      await first;
    } catch (e) {
      await pcap?.close();
      throw e;
    }
  } else {
    try {
      socket = await socketFor(defaultRole);
    } catch (e) {
      await pcap?.close();
      throw e;
    }
  }

  const timer = setInterval(() => sw.sweep(), sweepIntervalMs);
  timer.unref();

  const addInternalPort = (peer: FramePort, config: PortConfig = {}): InternalPort => {
    if (closed) throw new VmnetError('E_CLOSED', 'switch is closed');
    const port = sw.addPort(peer, { name: 'internal', ...config });
    info.set(port, { kind: 'internal', socket: null, framer: null, owner: null, impair: null, stream: null, direct: null, peer: null });
    let lastBuf: Uint8Array | null = null;
    let lastView: DataView | null = null;
    return {
      port,
      sendFrame(buf, off, len, view) {
        if (view === undefined) {
          if (buf !== lastBuf || lastView === null) {
            lastBuf = buf;
            lastView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
          }
          view = lastView;
        }
        return sw.input(port, buf, view, off, len);
      },
      reserveFrame: (maxLen, dst) => sw.reserveInput(port, maxLen, dst),
      frameBuffer: () => sw.inputBuffer(),
      frameView: () => sw.inputView(),
      frameOffset: () => sw.inputOffset(),
      commitFrame: (len) => sw.commitInput(len),
      remove() {
        sw.removePort(port);
        info.delete(port);
        lastBuf = null;
        lastView = null;
      },
    };
  };

  /** Links that are up (or connecting), by name. */
  const links = new Map<string, Promise<StreamPort>>();
  const link = async (linkName: string, path: string, r: PortRole): Promise<boolean> => {
    if (closed) throw new VmnetError('E_CLOSED', 'switch is closed');
    const role = normaliseRole(r);
    const up = links.get(linkName);
    if (up !== undefined) {
      await up;
      return false;
    }
    const connecting = connectStream({ path, maxFrame: sw.maxFrame, pool: ioPool, timeoutMs: 5000 });
    links.set(linkName, connecting);
    let sp: StreamPort;
    try {
      sp = await connecting;
    } catch (e) {
      links.delete(linkName);
      throw e;
    }
    if (closed) {
      sp.close();
      throw new VmnetError('E_CLOSED', 'switch is closed');
    }
    attach(sp, role, `link-${linkName}`, path, null, linkName);
    sp.once('close', () => {
      if (links.get(linkName) === connecting) links.delete(linkName);
    });
    return true;
  };
  /** Link sockets (the far end of another switch's link), by link name. */
  const linkSockets = new Map<string, Promise<RoleListener>>();
  const linkSocket = async (linkName: string, r: PortRole): Promise<string> => {
    if (closed) throw new VmnetError('E_CLOSED', 'switch is closed');
    const role = normaliseRole(r);
    const had = linkSockets.get(linkName);
    if (had !== undefined) {
      const l = await had.catch(() => null);
      if (l !== null && formatRole(l.role) === formatRole(role)) return l.path;
      await closeLinkSocket(linkName); // asked again with another role: the old one goes, with its port
    }
    const path = join(portsDir, `link-${linkName}.sock`);
    if (Buffer.byteLength(path) > MAX_SUN_PATH) throw new VmnetError('E_USAGE', `socket path ${path} is longer than ${MAX_SUN_PATH} bytes; use a shorter switch directory or name`);
    const got = open(role, path, null, linkName);
    linkSockets.set(linkName, got);
    got.catch(() => linkSockets.delete(linkName));
    return (await got).path;
  };
  const closeLinkSocket = async (linkName: string): Promise<boolean> => {
    const had = linkSockets.get(linkName);
    if (had === undefined) return false;
    linkSockets.delete(linkName);
    const l = await had.catch(() => null);
    if (l === null) return true;
    settled.delete(l);
    await l.listener.close();
    return true;
  };
  const unlink = async (linkName: string): Promise<boolean> => {
    const up = links.get(linkName);
    if (up !== undefined) {
      links.delete(linkName);
      void up.then((sp) => sp.close(), () => undefined);
    }
    return (await closeLinkSocket(linkName)) || up !== undefined;
  };

  const snapshot = (): SwitchSnapshot => {
    const byPort = new Map<number, PortSnapshot['macs']>();
    for (const e of sw.table()) {
      let list = byPort.get(e.port);
      if (list === undefined) byPort.set(e.port, (list = []));
      list.push({ vlan: e.vlan, mac: e.mac, ageMs: Math.round(e.ageMs), static: e.static });
    }
    const macBlocks = new Map<number, PortSnapshot['macBlocks']>();
    for (const { port, ...b } of sw.macBlocks()) macBlocks.set(port, [...(macBlocks.get(port) ?? []), b]);
    const sockets: SocketSnapshot[] = [];
    const perSocket = new Map<string, number>();
    const ports: PortSnapshot[] = sw.ports().map((p) => {
      const i = info.get(p) ?? { kind: 'internal', socket: null, framer: null, owner: null, impair: null, peer: null };
      if (i.socket !== null && i.kind === 'stream') perSocket.set(i.socket, (perSocket.get(i.socket) ?? 0) + 1);
      return {
        id: p.id,
        name: p.name,
        kind: i.kind,
        role: p.role,
        roleText: formatRole(p.role),
        socket: i.socket,
        peer: i.peer,
        macs: byPort.get(p.id) ?? [],
        counters: { ...p.counters, drops: { ...p.counters.drops } },
        blocked: p.blocked === null ? null : { ...p.blocked },
        macBlocks: macBlocks.get(p.id) ?? [],
        framer: i.framer === null ? null : { ...i.framer },
        owner: i.owner,
        link: i.impair?.snapshot() ?? null,
      };
    });
    for (const l of settled) sockets.push({ role: l.role, roleText: formatRole(l.role), path: l.path, ports: perSocket.get(l.path) ?? 0 });
    sockets.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      dir,
      socket,
      mtu: sw.mtu,
      maxFrame: sw.maxFrame,
      ageingMs: sw.ageingMs,
      maxEntries: sw.maxEntries,
      maxMacsPerPort: sw.maxMacsPerPort,
      macs: sw.size,
      loopGuard: (({ stormRate, stormBurst, sharedStormRate, maxStormSources, maxMacBlocks, flapMoves, flapWindowMs, blockJitterMs, remoteDeferMs }) => ({ stormRate, stormBurst, sharedStormRate, maxStormSources, maxMacBlocks, flapMoves, flapWindowMs, blockJitterMs, remoteDeferMs }))(sw.loopGuard),
      sockets,
      ports,
      counters: { ...sw.counters, drops: { ...sw.counters.drops } },
      connectionsClosed: { ...closedBy },
      pcap: pcap === null ? null : { ...pcap.counters, path: resolve(pcapPath!) },
    };
  };

  let closing: Promise<void> | null = null;
  return {
    switch: sw,
    dir,
    socket,
    socketFor,
    ownerSocket,
    setLink,
    ownerOf: (p) => info.get(p)?.owner ?? null,
    addInternalPort,
    link,
    linkSocket,
    unlink,
    qemuNetdevArgs: (path, id = 'net0') => [
      '-netdev',
      `stream,id=${id},server=off,addr.type=unix,addr.path=${path.replaceAll(',', ',,')}`,
      '-device',
      `virtio-net-pci,netdev=${id}`,
    ],
    snapshot,
    unblock(portId) {
      const p = sw.ports().find((x) => x.id === portId);
      if (p === undefined) throw new VmnetError('E_USAGE', `switch ${name} has no port ${portId} (see vmnet switch ls)`);
      return sw.unblock(p);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(timer);
        const listeners = await Promise.allSettled([...roles.values(), ...owners.values()]);
        await Promise.all(listeners.map((r) => (r.status === 'fulfilled' ? r.value.listener.close() : undefined)));
        for (const name of [...new Set([...links.keys(), ...linkSockets.keys()])]) await unlink(name);
        for (const p of sw.ports()) {
          info.get(p)?.impair?.close();
          sw.removePort(p);
        }
        info.clear();
        sw.close();
        await pcap?.close();
        await rmdir(portsDir).catch(() => {});
      })();
      return closing;
    },
  };
}

/** `port 4 (access-1)` */
const portText = (p: SwitchPort): string => `port ${p.id} (${p.name})`;

/**
 * One log line for an engine event.
 * @param name the switch's name, for the unblock hint
 */
function eventLine(e: SwitchEvent, name: string, guard: Pick<LoopGuard<never>, 'stormRate' | 'flapWindowMs'>): string {
  switch (e.kind) {
    case 'flapping':
      return `loop suspected: MAC ${e.mac} on VLAN ${e.vlan} moved ${e.moves} times within ${guard.flapWindowMs} ms between ${portText(e.other)} and ${portText(e.port)}; blocking ${portText(e.port)} in ${Math.round(e.inMs)} ms if it goes on`;
    case 'blocked':
      return `${portText(e.port)} blocked: MAC ${e.info.mac} on VLAN ${e.info.vlan} kept moving between it and ${e.other === null ? `port ${e.info.otherPort}` : portText(e.other)} (a loop through these ports?); unblock with: vmnet switch unblock ${name} ${e.port.id}`;
    case 'macBlocked':
      return `${portText(e.port)}: MAC ${e.mac} on VLAN ${e.vlan} kept arriving here although it lives on ${portText(e.home)} (${e.moves} moves within ${guard.flapWindowMs} ms: a loop, or a peer sending with a local guest's MAC); frames with that source from any port but port ${e.home.id} are dropped, this port stays up; unblock with: vmnet switch unblock ${name} ${e.port.id}`;
    case 'unblocked':
      return `${portText(e.port)} unblocked${e.macs > 0 ? ` (${e.macs} MAC block(s) lifted)` : ''}`;
    case 'storm':
      return `${portText(e.port)}: storm limit (${guard.stormRate} group frames/s) dropped ${e.dropped} frame(s) since the last report`;
  }
}
