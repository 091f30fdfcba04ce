/**
 * Theory of operation: a VXLAN tunnel end point (VTEP, RFC 7348 §4) as one
 * port of the switch engine, sans-IO. The UDP socket lives in the edge
 * (vxlan-socket.ts); this core only encapsulates, decapsulates, learns and
 * counts, with time and the datagram sink injected.
 *
 * One port for every remote. All configured remote VTEPs sit behind a single
 * switch port (a trunk carrying every VLAN, native VLAN 1), as a Linux
 * `vxlan` device is one bridge port: the switch never sends a frame back out
 * of the port it came in on, so a frame from one remote is never relayed to
 * another (split horizon; each VTEP of a full mesh replicates its own
 * frames, §4.2), and loops through the overlay cannot form.
 *
 * Egress (switch → overlay). The switch hands this port a frame (its
 * `sendFrame`). A unicast destination learned from a remote goes to that
 * remote alone; a group destination (broadcast, multicast) or an unknown
 * unicast one goes to every remote ("head-end replication": unicast copies
 * instead of an underlay multicast group, §4.2's alternative that needs no
 * multicast routing). The frame is written once behind a VXLAN header
 * (wire/vxlan.ts) into a datagram the sink sends to each target. 802.1Q
 * tags inside the frame are carried as they are (§6.1: a VTEP may carry
 * tagged frames; the switch tags frames of VLANs other than the native one
 * on this trunk port).
 *
 * MTU (§4.3: "VTEPs MUST NOT fragment VXLAN packets"). An inner frame whose
 * underlay IP datagram (20 + 8 + 8 + frame) would exceed `underlayMtu` is
 * dropped and counted (`tooBig`); the IPv4 don't-fragment bit cannot be set
 * on a Node UDP socket, so the check here is what keeps the kernel from
 * fragmenting. The segment keeps frames within bounds in the first place: a
 * switch with a VXLAN port defaults its MTU to `underlayMtu` − 50 (1450) and
 * its gateway announces that in DHCP option 26 (segment.ts).
 *
 * Ingress (overlay → switch), each drop counted and nothing thrown:
 * - from an address that is no configured remote (`unknownRemote`): VXLAN
 *   has no authentication, so anyone who can reach the UDP port could
 *   otherwise inject frames onto the segment, with any source MAC. A remote
 *   matches by address and port, or by address alone when exactly one remote
 *   has that address (the Linux kernel sends from a per-flow source port,
 *   §5 "Outer UDP Header", so the source port cannot be required). A remote
 *   marked `strictPort` matches by address and port only: the edge marks
 *   remotes whose address is this host's own (a lab on one machine), where
 *   any local user could send from that address;
 * - not valid VXLAN: too short, or the I flag clear (`malformed`);
 * - a VNI other than this segment's (`badVni`).
 * The inner frame then enters the switch like any port's, under the switch's
 * own checks (runt, oversize, VLAN rules, bad source, storm limit).
 *
 * Learning (§4.1). The inner source MAC is learned against the remote it
 * came from, in a filtering database of its own (fdb.ts, one table keyed by
 * MAC as a Linux vxlan device's is), aged like the switch's. It is bounded
 * per remote (`maxMacsPerRemote`, default 1024) and overall (`maxMacs`,
 * default 2048; the switch port itself may learn at most half the switch's
 * table, so remote hosts cannot crowd local guests out); at a bound the MAC is not learned (counted on the remote,
 * `learnRefused`) and frames to it are flooded to every remote. A MAC that
 * shows up behind another remote moves there (`moves`).
 *
 * Backpressure. The sink reports congestion when it has no room for another
 * datagram (the edge's ring of datagrams in flight); the switch then drops
 * frames for this port and counts them (`txDropped`), or holds back an aware
 * sender (the gateway) until the edge reports the ring drained.
 */
import { VmnetError } from '../errors.js';
import { formatIp4, macKey } from '../wire/addr.js';
import * as vxlan from '../wire/vxlan.js';
import { Fdb, type FdbCounters, type FdbPort } from './fdb.js';
import type { FramePort } from './types.js';

/** A remote VTEP. */
export interface Remote extends FdbPort {
  /** IPv4 address (a u32). */
  readonly addr: number;
  readonly port: number;
  /** "ADDR:PORT", for snapshots and logs. */
  readonly text: string;
  /** This remote alone, as a target list (no allocation per frame). */
  readonly only: readonly Remote[];
  readonly counters: RemoteCounters;
}

/** Per-remote counters. */
export interface RemoteCounters {
  rxDatagrams: number;
  rxBytes: number;
  txDatagrams: number;
  txBytes: number;
  learnRefused: number;
  moves: number;
}

/** The VTEP's counters. */
export interface VtepCounters extends FdbCounters {
  /** Datagrams received, valid or not. */
  rxDatagrams: number;
  rxBytes: number;
  /** Inner frames passed to the switch. */
  rxFrames: number;
  /** Frames the switch handed over. */
  txFrames: number;
  /** Datagrams sent (a flooded frame counts once per remote). */
  txDatagrams: number;
  txBytes: number;
  /** Frames sent to every remote (group or unknown destination). */
  flooded: number;
  /** Dropped: from an address that is no configured remote. */
  unknownRemote: number;
  /** Dropped: not VXLAN (too short, I flag clear). */
  malformed: number;
  /** Dropped: another VNI. */
  badVni: number;
  /** Dropped: too big for the underlay MTU once encapsulated. */
  tooBig: number;
  /** Dropped: no room in the sink (datagrams in flight). */
  txBusy: number;
  /** The socket refused a send (counted by the edge). */
  txErrors: number;
}

/** Where datagrams go: the edge's ring of datagrams in flight (vxlan-socket.ts). */
export interface DatagramSink {
  /** Room for one datagram of `len` bytes at `buffer()[offset()]`; false when there is none. */
  reserve(len: number): boolean;
  buffer(): Uint8Array;
  view(): DataView;
  offset(): number;
  /** Sends the reserved datagram (UDP payload of `len` bytes) to each of `to`. */
  commit(len: number, to: readonly Remote[]): void;
  /** True while there is no room for another datagram. */
  congested(): boolean;
}

/** Options of {@link Vtep}. */
export interface VtepOptions {
  /** The segment's VXLAN network identifier, 0..16777215. */
  vni: number;
  /** Remote VTEPs: IPv4 address (u32) and UDP port. */
  remotes: ReadonlyArray<{ addr: number; port: number; strictPort?: boolean }>;
  /** IP MTU of the underlay; default 1500. */
  underlayMtu?: number;
  maxMacsPerRemote?: number;
  maxMacs?: number;
  /** Ageing of learned remote MACs; default 300 000 ms (the switch's). */
  ageingMs?: number;
  /** Monotonic milliseconds. */
  now: () => number;
}

/** The VTEP: a {@link FramePort} for the switch, fed datagrams by the edge. */
export class Vtep implements FramePort {
  readonly vni: number;
  readonly underlayMtu: number;
  readonly remotes: readonly Remote[];
  readonly maxMacs: number;
  readonly maxMacsPerRemote: number;
  readonly counters: VtepCounters = {
    rxDatagrams: 0,
    rxBytes: 0,
    rxFrames: 0,
    txFrames: 0,
    txDatagrams: 0,
    txBytes: 0,
    flooded: 0,
    unknownRemote: 0,
    malformed: 0,
    badVni: 0,
    tooBig: 0,
    txBusy: 0,
    txErrors: 0,
    learned: 0,
    moves: 0,
    aged: 0,
    tableFull: 0,
    portLimit: 0,
  };
  /** Where decapsulated frames go (the switch port's input); set by the edge. */
  deliver: (buf: Uint8Array, off: number, len: number, view: DataView) => unknown = () => {};
  readonly #fdb: Fdb<Remote>;
  readonly #sink: DatagramSink;
  readonly #now: () => number;
  /** Remotes by "addr:port", and by address when it is unique (else null). */
  readonly #byAddrPort = new Map<number, Remote>();
  readonly #byAddr = new Map<number, Remote | null>();
  readonly #hdr = vxlan.blank();

  constructor(opts: VtepOptions, sink: DatagramSink) {
    if (!(Number.isInteger(opts.vni) && opts.vni >= 0 && opts.vni <= vxlan.MAX_VNI)) throw new VmnetError('E_USAGE', `bad VXLAN VNI ${opts.vni}: give 0-${vxlan.MAX_VNI}`);
    this.vni = opts.vni;
    this.underlayMtu = opts.underlayMtu ?? 1500;
    this.maxMacsPerRemote = opts.maxMacsPerRemote ?? 1024;
    this.maxMacs = opts.maxMacs ?? 2048;
    this.#now = opts.now;
    this.#sink = sink;
    this.#fdb = new Fdb<Remote>(opts.ageingMs ?? 300_000, this.maxMacs, this.counters);
    const remotes: Remote[] = [];
    for (const r of opts.remotes) {
      const key = r.addr * 65536 + r.port;
      if (this.#byAddrPort.has(key)) continue; // the same remote twice: once is enough
      const remote: Remote = {
        id: remotes.length + 1,
        addr: r.addr >>> 0,
        port: r.port,
        text: `${formatIp4(r.addr)}:${r.port}`,
        only: [],
        macCount: 0,
        maxMacs: this.maxMacsPerRemote,
        counters: { rxDatagrams: 0, rxBytes: 0, txDatagrams: 0, txBytes: 0, learnRefused: 0, moves: 0 },
      };
      (remote.only as Remote[]).push(remote);
      remotes.push(remote);
      this.#byAddrPort.set(key, remote);
      if (r.strictPort === true) continue; // heard from its own port only
      this.#byAddr.set(remote.addr, this.#byAddr.has(remote.addr) ? null : remote);
    }
    this.remotes = remotes;
  }

  /** Largest inner frame the underlay carries unfragmented. */
  get maxInnerFrame(): number {
    return this.underlayMtu - vxlan.ENCAP_IP4;
  }

  /**
   * Switch → overlay: encapsulates one frame and sends it to the remote its
   * destination was learned behind, or to every remote (see Theory).
   */
  sendFrame(buf: Uint8Array, off: number, len: number): boolean {
    const c = this.counters;
    c.txFrames++;
    if (len > this.maxInnerFrame) {
      c.tooBig++;
      return true;
    }
    const n = this.remotes.length;
    if (n === 0) return true;
    let to: readonly Remote[] = this.remotes;
    if ((buf[off]! & 1) === 0) {
      const r = this.#fdb.lookup(1, macKey(buf, off), this.#now());
      if (r !== null) to = r.only;
    }
    if (to === this.remotes) c.flooded++;
    const s = this.#sink;
    const dlen = vxlan.HEADER_LEN + len;
    if (!s.reserve(dlen)) {
      c.txBusy++;
      return false;
    }
    const out = s.buffer();
    const o = s.offset();
    this.#hdr.vni = this.vni;
    vxlan.emit(this.#hdr, s.view(), o);
    out.set(buf.subarray(off, off + len), o + vxlan.HEADER_LEN);
    for (const r of to) {
      r.counters.txDatagrams++;
      r.counters.txBytes += dlen;
    }
    c.txDatagrams += to.length;
    c.txBytes += dlen * to.length;
    s.commit(dlen, to);
    return !s.congested();
  }

  /** True while the sink has no room (the switch then drops frames for this port, or holds back the gateway). */
  isCongested(): boolean {
    return this.#sink.congested();
  }

  /**
   * Overlay → switch: one UDP datagram from `srcAddr:srcPort`. Checks its
   * sender, header and VNI, learns the inner source MAC against its remote
   * and hands the inner frame to {@link deliver}; anything else is counted
   * and dropped.
   * @param v a DataView over `buf`
   * @param off offset of the UDP payload (the VXLAN header)
   * @param len bytes of UDP payload
   */
  receive(buf: Uint8Array, v: DataView, off: number, len: number, srcAddr: number, srcPort: number): void {
    const c = this.counters;
    c.rxDatagrams++;
    c.rxBytes += len;
    const r = this.#byAddrPort.get((srcAddr >>> 0) * 65536 + srcPort) ?? this.#byAddr.get(srcAddr >>> 0) ?? null;
    if (r === null) {
      c.unknownRemote++;
      return;
    }
    r.counters.rxDatagrams++;
    r.counters.rxBytes += len;
    if (!vxlan.parse(v, off, len, this.#hdr)) {
      c.malformed++;
      return;
    }
    if (this.#hdr.vni !== this.vni) {
      c.badVni++;
      return;
    }
    const f = off + vxlan.HEADER_LEN;
    // A group source is no station (the switch drops the frame, `badSource`): never learned.
    if ((buf[f + 6]! & 1) === 0) this.#fdb.learn(r, 1, macKey(buf, f + 6), this.#now());
    c.rxFrames++;
    this.deliver(buf, f, len - vxlan.HEADER_LEN, v);
  }

  /**
   * The remote `mac` was learned behind, or null.
   * @param off offset of the MAC in `mac`
   */
  remoteOf(mac: Uint8Array, off = 0): Remote | null {
    return this.#fdb.peek(1, macKey(mac, off), this.#now());
  }

  /** Whether the MAC of `macKey` (wire/addr.ts) is learned behind some remote now. */
  knows(key: number): boolean {
    return this.#fdb.peek(1, key, this.#now()) !== null;
  }

  /** Learned remote MACs (live or not yet swept). */
  get size(): number {
    return this.#fdb.size;
  }

  /** Forgets learned MACs older than the ageing time; returns how many. */
  sweep(): number {
    return this.#fdb.sweep(this.#now());
  }

  /** Live learned MACs with their remote. */
  table(): Array<{ mac: string; remote: string; ageMs: number }> {
    const byId = new Map(this.remotes.map((r) => [r.id, r.text]));
    return this.#fdb.table(this.#now()).map((e) => ({ mac: e.mac, remote: byId.get(e.port) ?? '?', ageMs: Math.round(e.ageMs) }));
  }
}
