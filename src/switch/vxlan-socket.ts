/**
 * Theory of operation: the VXLAN port's I/O edge. {@link startVtep} opens
 * one UDP socket (udp4, no privileges needed: 4789 is above 1023), puts a
 * sans-IO {@link Vtep} (vxlan.ts) on the switch as an internal port and
 * feeds it every datagram the socket receives.
 *
 * Local address. `--vxlan-local ADDR[:PORT]` names it. Without it the
 * socket binds the address the routing table picks as the source toward the
 * remotes (what `ip route get REMOTE` prints as `src`), found with a
 * connected UDP socket that sends nothing, on port 4789. So the port is open
 * on the one interface that faces the remotes, not on every interface as
 * 0.0.0.0 would; remotes reached from different source addresses need
 * `--vxlan-local` (0.0.0.0 is accepted there for those who want it). Only
 * configured remotes are heard either way (vxlan.ts, "Ingress").
 *
 * Sending. The engine builds each datagram once in a slot of a ring of
 * preallocated slots (512, fewer for jumbo frames: 8 MiB at most) and the
 * socket sends it to each target; a slot holds the largest datagram the
 * underlay carries;
 * a slot is reused only after every send of it has called back (Node's
 * dgram keeps the bytes until then). When the next slot is still in flight
 * the port is congested: the switch drops frames for it (`txDropped`) or
 * holds the gateway back, and when the slot frees, the switch is told the
 * port drained. Send errors are counted (`txErrors`), never thrown.
 *
 * Receiving. Node's dgram hands over a fresh Buffer per datagram (there is
 * no `onread` for UDP); its DataView is made there too. The sender's
 * address comes as text and is parsed to a u32 for the remote lookup.
 *
 * Remotes on this host. A remote whose address is one of this host's
 * (127.0.0.0/8 or an interface's) is heard from its own port only
 * (`strictPort`, vxlan.ts): any local user can send from such an address,
 * but not from the port another switch holds.
 *
 * Host names given as remotes are resolved once, at start, to IPv4.
 */
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { VmnetError } from '../errors.js';
import type { VxlanConfig } from '../config/vxlan.js';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import * as vxlan from '../wire/vxlan.js';
import { macrotaskClock } from './clock.js';
import type { InternalPort, RunningSwitch } from './server.js';
import { Vtep, type DatagramSink, type Remote, type RemoteCounters, type VtepCounters } from './vxlan.js';
import { MAX_VID } from './vlan.js';

/** Datagrams in flight at most (each slot holds one, sent to one or every remote). */
export const RING_SLOTS = 512;
/** Bytes of ring at most (jumbo underlays get fewer slots, at least 16). */
const RING_BYTES = 8 << 20;

/** Options of {@link startVtep} besides the segment's {@link VxlanConfig}. */
export interface VtepServerOptions {
  /** Learned remote MACs: default 1024 per remote and 2048 overall. */
  maxMacsPerRemote?: number;
  maxMacs?: number;
  ageingMs?: number;
}

/** JSON-ready state of the VXLAN port. */
export interface VtepSnapshot {
  vni: number;
  /** The bound address, `ADDR:PORT`. */
  local: string;
  underlayMtu: number;
  /** Largest inner frame carried (underlay MTU − 36). */
  maxInnerFrame: number;
  /** The switch port id. */
  port: number;
  remotes: Array<{ remote: string; macs: number; counters: RemoteCounters }>;
  macs: Array<{ mac: string; remote: string; ageMs: number }>;
  counters: VtepCounters;
}

/** A running VXLAN port. */
export interface RunningVtep {
  readonly vtep: Vtep;
  readonly port: InternalPort;
  /** `ADDR:PORT` bound. */
  readonly local: string;
  snapshot(): VtepSnapshot;
  close(): Promise<void>;
}

/** The ring of datagrams in flight (see Theory of operation); exported for its tests. */
export class DatagramRing implements DatagramSink {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #pending: Uint16Array;
  readonly #slots: number;
  #next = 0;
  #wasFull = false;
  onDrain: () => void = () => {};
  onError: () => void = () => {};

  constructor(
    readonly socket: Pick<Socket, 'send'>,
    readonly slotSize: number,
    /** Address text per remote id. */
    readonly hosts: readonly string[],
  ) {
    this.#slots = Math.max(16, Math.min(RING_SLOTS, Math.floor(RING_BYTES / slotSize)));
    this.#pending = new Uint16Array(this.#slots);
    this.#buf = Buffer.alloc(this.#slots * slotSize);
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  }
  reserve(len: number): boolean {
    if (len <= this.slotSize && this.#pending[this.#next] === 0) return true;
    this.#wasFull = true;
    return false;
  }
  buffer(): Uint8Array {
    return this.#buf;
  }
  view(): DataView {
    return this.#view;
  }
  offset(): number {
    return this.#next * this.slotSize;
  }
  commit(len: number, to: readonly Remote[]): void {
    const slot = this.#next;
    const o = slot * this.slotSize;
    this.#next = (slot + 1) % this.#slots;
    this.#pending[slot] = to.length;
    const done = (err: Error | null): void => {
      this.#pending[slot]!--;
      if (err) this.onError();
      if (this.#wasFull && this.#pending[this.#next] === 0) {
        this.#wasFull = false;
        this.onDrain();
      }
    };
    for (const r of to) {
      try {
        this.socket.send(this.#buf, o, len, r.port, this.hosts[r.id]!, done);
      } catch {
        done(new Error('send failed'));
      }
    }
  }
  congested(): boolean {
    if (this.#pending[this.#next] === 0) return false;
    this.#wasFull = true;
    return true;
  }
}

/** This host's IPv4 addresses: 127.0.0.0/8 and every interface's. */
function ownAddresses(): { has(a: number): boolean } {
  const set = new Set<number>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) if (i.family === 'IPv4') set.add(parseIp4(i.address) >>> 0);
  return { has: (a) => a >>> 24 === 127 || set.has(a >>> 0) };
}

/** The source address the routing table picks toward `host:port` (a connected UDP socket that sends nothing). */
function sourceToward(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.connect(port, host, () => {
      const a = s.address().address;
      s.close();
      resolve(a);
    });
  });
}

/**
 * Resolves the remotes and binds the UDP socket (see Theory of operation,
 * "Local address"). `vmnet switch create` calls it once and closes the
 * socket before starting the background switch, so a taken port is
 * reported at once and not in daemon.log.
 * @throws VmnetError E_USAGE for a remote that does not resolve or cannot be
 *   routed to, or remotes needing different local addresses; E_PORT_IN_USE
 *   when the UDP port is taken
 */
export async function bindVtep(cfg: VxlanConfig): Promise<{ socket: Socket; host: string; remotes: Array<{ addr: number; port: number }> }> {
  const remotes: Array<{ addr: number; port: number }> = [];
  for (const r of cfg.remotes) {
    let addr = parseIp4(r.host);
    if (addr === -1) {
      try {
        addr = parseIp4((await lookup(r.host, { family: 4 })).address);
      } catch (e) {
        throw new VmnetError('E_USAGE', `--vxlan-remote ${r.host} does not resolve to an IPv4 address: ${(e as Error).message}`, { cause: e });
      }
    }
    remotes.push({ addr, port: r.port });
  }
  let host = cfg.local?.host;
  if (host === undefined) {
    const sources = new Set<string>();
    for (const r of remotes) {
      try {
        sources.add(await sourceToward(formatIp4(r.addr), r.port));
      } catch (e) {
        throw new VmnetError('E_USAGE', `no route to --vxlan-remote ${formatIp4(r.addr)}: ${(e as Error).message}`, { cause: e });
      }
    }
    if (sources.size !== 1) throw new VmnetError('E_USAGE', `the remotes are reached from different local addresses (${[...sources].join(', ')}): give --vxlan-local ADDR`);
    host = [...sources][0]!;
  }
  const localPort = cfg.local?.port ?? vxlan.PORT;
  const socket = createSocket({ type: 'udp4' });
  const bound = host;
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: bound, port: localPort, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((e: NodeJS.ErrnoException) => {
    socket.close();
    const where = `${bound}:${localPort}`;
    if (e.code === 'EADDRINUSE') throw new VmnetError('E_PORT_IN_USE', `VXLAN port ${where} is in use (another switch?): give --vxlan-local ADDR:PORT`, { cause: e });
    throw new VmnetError('E_USAGE', `cannot bind VXLAN to ${where}: ${e.message}`, { cause: e });
  });
  const self = parseIp4(host);
  if (remotes.some((r) => r.port === localPort && (r.addr === self || (self === 0 && r.addr >>> 24 === 127)))) {
    socket.close();
    throw new VmnetError('E_USAGE', `a --vxlan-remote is this switch's own address ${host}:${localPort}: list the other hosts' VTEPs`);
  }
  return { socket, host, remotes };
}

/**
 * Puts a VXLAN port on a running switch: binds the UDP socket ({@link
 * bindVtep}), adds the port (a trunk of every VLAN, native VLAN 1; see
 * vxlan.ts) and serves until {@link RunningVtep.close}.
 * @throws VmnetError as {@link bindVtep}
 */
export async function startVtep(sw: RunningSwitch, cfg: VxlanConfig, opts: VtepServerOptions = {}): Promise<RunningVtep> {
  const { socket, host, remotes: found } = await bindVtep(cfg);
  const own = ownAddresses();
  const remotes = found.map((r) => ({ ...r, strictPort: own.has(r.addr) }));
  socket.on('error', () => {}); // send errors arrive in callbacks; nothing else may kill the process
  try {
    socket.setRecvBufferSize(1 << 21); // capped by net.core.rmem_max; a burst of flooded frames should not be lost here
  } catch {
    /* best effort */
  }

  const underlayMtu = cfg.underlayMtu ?? 1500;
  const hosts: string[] = [''];
  const ring = new DatagramRing(socket, vxlan.HEADER_LEN + Math.min(sw.switch.maxFrame, underlayMtu - vxlan.ENCAP_IP4), hosts);
  const vtep = new Vtep({ vni: cfg.vni, remotes, underlayMtu, maxMacsPerRemote: opts.maxMacsPerRemote, maxMacs: opts.maxMacs, ageingMs: opts.ageingMs ?? sw.switch.ageingMs, now: macrotaskClock() }, ring);
  for (const r of vtep.remotes) hosts[r.id] = formatIp4(r.addr);
  const trunk: number[] = [];
  for (let v = 1; v <= MAX_VID; v++) trunk.push(v);
  // Remote MACs may fill at most half of the switch's table: local guests keep the other half.
  const port = sw.addInternalPort(vtep, { name: 'vxlan', role: { trunk, native: 1 }, shared: true, maxMacs: Math.max(1, Math.min(vtep.maxMacs, Math.floor(sw.switch.maxEntries / 2))) });
  vtep.deliver = (buf, off, len, view) => port.sendFrame(buf, off, len, view);
  ring.onDrain = () => sw.switch.portDrained(port.port);
  ring.onError = () => void vtep.counters.txErrors++;
  socket.on('message', (msg, rinfo) => {
    const a = parseIp4(rinfo.address);
    if (a === -1) return void vtep.counters.unknownRemote++;
    vtep.receive(msg, new DataView(msg.buffer, msg.byteOffset, msg.byteLength), 0, msg.length, a, rinfo.port);
  });
  const timer = setInterval(() => vtep.sweep(), 1000);
  timer.unref();
  const local = `${host}:${socket.address().port}`;
  let closing: Promise<void> | null = null;
  return {
    vtep,
    port,
    local,
    snapshot: () => ({
      vni: vtep.vni,
      local,
      underlayMtu,
      maxInnerFrame: vtep.maxInnerFrame,
      port: port.port.id,
      remotes: vtep.remotes.map((r) => ({ remote: r.text, macs: r.macCount, counters: { ...r.counters } })),
      macs: vtep.table(),
      counters: { ...vtep.counters },
    }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        ring.onDrain = () => {}; // sends still in flight must not call into a switch that is going away
        port.remove();
        socket.close(() => resolve());
      });
      return closing;
    },
  };
}
