/**
 * Theory of operation: TCP NAT between guests and host sockets. The gateway
 * terminates every guest TCP connection with its own endpoint (src/tcp/conn.ts,
 * RFC 9293) and relays the byte stream to a host socket; nothing is rewritten
 * in flight, so each side gets a proper TCP peer.
 *
 * Guest → outside ("dial first", as gvisor-tap-vsock and passt do): a SYN
 * for an unknown flow makes the gateway connect to the real destination
 * (policy: `route`, e.g. 10.0.2.2 → 127.0.0.1). Retransmitted SYNs while the
 * dial is under way are absorbed. Connected → the SYN is answered with
 * SYN-ACK; refused or unreachable → RST, so the guest sees "connection
 * refused" at once; timeout → nothing, as a silent host would. Segments that
 * match no flow get the RFC 9293 §3.10.7.1 RST.
 *
 * Host → guest (port forwards): an accepted host socket, paused, becomes an
 * active open toward the guest; the guest's SYN-ACK resumes the socket, its
 * RST resets the host client (a client of a port where nothing listens gets
 * a reset, not a hang). A probe (SYN, then RST) answers "is the guest really
 * listening?" without disturbing anything.
 *
 * Relay and backpressure, both ways bounded: host bytes go into the
 * connection's send buffer; when it is full the host socket is paused until
 * the guest acknowledges enough (onWritable). Guest bytes are read out of the
 * receive buffer only while the host socket accepts them (write() true or
 * 'drain'); unread bytes keep the advertised window closed, so a slow host
 * reader slows the guest. The guest segments of one batch (one read from
 * the link) reach the host in one write per flow and are acknowledged by one
 * ACK per flow at the batch's end (pumpSoon; the connections run with
 * `ackBatch`): the every-second-segment ACKs would be as many frames back
 * as half the data frames, each costing the link, the guest and us a frame.
 * FIN travels each way on its own (half-close), and
 * only after every byte before it: the guest's FIN becomes the host socket's
 * end() once the receive buffer is empty; the host's 'end' becomes our FIN
 * once its bytes are in the send buffer (shutdownWrite queues the FIN after
 * them). Resets travel both ways.
 *
 * Teardown never truncates silently (issue 11). Bytes the connection has
 * acknowledged to the guest are ours to deliver: a connection that reaches
 * CLOSED without a reset (end of TIME-WAIT, ACK in LAST-ACK, or a RST in
 * LAST-ACK/CLOSING/TIME-WAIT — in each the guest's FIN was received, so its
 * stream is complete) may still hold bytes the host has not taken (a slow
 * reader, a small socket buffer). Such a flow *drains*: it leaves the flow
 * table (the 4-tuple is free for a new connection) but keeps its host half,
 * its receive buffer and its place in the per-guest count, and goes on
 * writing to the host socket; once everything is written, end() sends the
 * FIN, and the flow is gone when the socket has taken that too. A drain that
 * makes no progress for `drainIdleMs` is given up with a reset (RST, so the
 * host sees an error, never a clean EOF on a truncated stream), counted in
 * `drainResets`. A draining flow reads nothing more from its host: bytes
 * it still sends have nowhere to go, and left unread they make the kernel
 * reset the host when the socket closes rather than vanish silently. Every
 * other teardown is a reset both ways: a guest or host RST, retransmissions
 * or probes unanswered, the idle timeout. Gateway shutdown (closeAll) and a
 * guest's link closing (closeGuest) reset the live flows, except those whose
 * guest stream is complete (its FIN came) with nothing of the host's still
 * owed to the guest: those drain. closeAll gives the draining flows a grace
 * period to finish, then resets what is left: progress does not extend the
 * grace, and a drain that begins later gets only what is left of it (when
 * nothing is, as for the links closing at the very end, it is reset at once:
 * no timer would end it).
 *
 * Limits: at most `maxPerGuest` flows per guest — a link, as `guestOf` says,
 * not an address a guest can pick (beyond: RST, counted) — and `maxDialing`
 * dials in flight, at most `maxDialingPerGuest` of them for one guest
 * (beyond: the SYN is dropped and the guest retries), shared fairly
 * (../fair-slots.ts): when every dial slot is taken, a guest with fewer
 * dials in flight than the busiest takes the slot of that guest's oldest
 * dial, which is abandoned and its guest refused (RST, `dialsEvicted`). When a guest's link
 * closes, its live flows are reset toward their hosts or drain (closeGuest,
 * see "Teardown"). All timers of all connections share one deadline heap; the edge
 * calls runTimers() when asked through `schedule`.
 */
import * as tcp from '../../wire/tcp.js';
import type { Ip4 } from '../../wire/addr.js';
import {
  CLOSING,
  LAST_ACK,
  PROBE_CLOSED,
  PROBE_OPEN,
  ROLE_PASSIVE,
  TcpConn,
  TIME_WAIT,
  rstFor,
  type TcpConfig,
  type TcpEvents,
  type TcpOutput,
} from '../../tcp/conn.js';
import type { SendBuffer } from '../../tcp/send-buffer.js';
import type { BudgetAccount } from '../../tcp/budget.js';
import { OFF } from '../../tcp/deadline.js';
import { HOST_READ_MAX, type HostStream, type HostStreamEvents } from './host-stream.js';
import { TimerHeap } from './timer-heap.js';
import { FairSlots, type Slot } from '../fair-slots.js';
import { Flow, type HostHandlers, type ProbeResult } from './flow.js';

/** Where a guest connection goes. */
export type TcpRoute = { host: string; port: number } | { local: LocalService } | { refuse: true } | { drop: true };

/** Services the gateway answers in process (no host socket): DNS over TCP, the cloud-init seed. */
export type LocalService = 'dns' | 'seed';

export interface TcpNatDeps {
  now(): number;
  /** A random 32-bit number (initial sequence numbers). */
  random32(): number;
  /** Sends a segment to a guest; `data` holds the payload at `dataOffset` (null: none). */
  /** @returns false when the guest's link is now congested (see linkDrained) */
  transmit(guestIp: Ip4, remoteIp: Ip4, h: tcp.Header, data: SendBuffer | null, dataOffset: number): boolean;
  route(dstIp: Ip4, dstPort: number): TcpRoute;
  dial(host: string, port: number, timeoutMs: number, ev: HostStreamEvents): HostStream;
  /**
   * The in-process stream of a local service for a guest's connection
   * (`guest`: its key, see guestOf; `guestIp`: its address; `account`: the
   * connection's TCP budget account, which replies held for the guest are
   * charged to).
   */
  local(service: LocalService, ev: HostStreamEvents, guest: number, guestIp: Ip4, account: BudgetAccount | null): HostStream;
  /** Ask to have runTimers() called at (or soon after) `at` (ms, same clock as now()). */
  schedule(at: number): void;
  /** The guest (link) an address belongs to, the key of maxPerGuest; default: the address itself. */
  guestOf?(guestIp: Ip4): number;
  /**
   * The TCP tunables for connections of a guest address, when they differ
   * from the NAT's own (IPv6: 20 header bytes more, so an MSS 20 smaller);
   * default: the NAT's.
   */
  configOf?(guestIp: Ip4): TcpConfig;
}

export interface TcpNatLimits {
  /** Concurrent flows per guest (see TcpNatDeps.guestOf), draining ones included (default 4096). */
  maxPerGuest: number;
  /** Host dials in flight (default 512). */
  maxDialing: number;
  /** Of those, at most this many for one guest (default a quarter of maxDialing), so one guest's SYN flood to silent addresses cannot block the others' connects. */
  maxDialingPerGuest: number;
  /** Give up a host dial after this long, silently (default 10 s). */
  dialTimeoutMs: number;
  /**
   * A closed connection still writing acknowledged bytes to its host socket
   * is reset after this long without progress (default 60 s; see "Teardown").
   */
  drainIdleMs: number;
}

export const DEFAULT_LIMITS: TcpNatLimits = { maxPerGuest: 4096, maxDialing: 512, maxDialingPerGuest: 128, dialTimeoutMs: 10_000, drainIdleMs: 60_000 };

export interface TcpNatCounters {
  /** Flows that reached the guest-side handshake. */
  opened: number;
  /** Guest SYNs refused because the destination refused or was unreachable. */
  refused: number;
  /** Guest SYNs refused by policy (isolated, no host loopback). */
  prohibited: number;
  /** Guest SYNs refused because the guest hit maxPerGuest. */
  capped: number;
  /** Dials that timed out (guest left unanswered). */
  dialTimeouts: number;
  /** SYNs dropped because too many dials were in flight. */
  dialQueueFull: number;
  /** Dials abandoned (guest refused with RST) to give their slot to a guest with fewer in flight. */
  dialsEvicted: number;
  /** RSTs sent for segments matching no flow. */
  strayRsts: number;
  /** Forwarded host connections. */
  forwarded: number;
  /** Closed connections whose bytes were all written to the host after the guest side closed. */
  drained: number;
  /** Drains given up (no progress for drainIdleMs, or gateway shutdown): the host got a RST. */
  drainResets: number;
  /** Flows reset because their host stream went on delivering while paused (PENDING_MAX). */
  hostOverruns: number;
}

const endpoint = (ip: Ip4, port: number) => ip * 65536 + port;

/**
 * Smallest send-buffer region a host socket reads into in place; below it the
 * socket reads into the shared buffer and the bytes are copied. Invariant
 * that makes lending safe: a flow with `pending` bytes is never lent a
 * region, and only `pending` is ever written into the buffer by copying.
 */

/**
 * Most host bytes held outside the send buffer for one flow, unless its send
 * buffer is larger (one read into a lent region can bring that much). Host
 * streams stop delivering on pause(), so this holds at most about one read; a
 * stream that ignores pause() is reset when it passes the bound (counted:
 * hostOverruns).
 */
const PENDING_MAX = 1024 * 1024;
const LEND_MIN = 16 * 1024;

/** Timer entries are never pushed further ahead than this (ms); see reschedule. */
const TIMER_HORIZON = 60_000;

/** Largest chunk handed to a host socket at once. */
const MAX_READ = 256 * 1024;

export class TcpNat {
  readonly counters: TcpNatCounters = {
    opened: 0,
    refused: 0,
    prohibited: 0,
    capped: 0,
    dialTimeouts: 0,
    dialQueueFull: 0,
    dialsEvicted: 0,
    strayRsts: 0,
    forwarded: 0,
    drained: 0,
    drainResets: 0,
    hostOverruns: 0,
  };
  /**
   * Flows by guest endpoint, then remote endpoint. A guest endpoint with one
   * flow (the usual case: every connection a guest opens has a port of its
   * own) holds it directly rather than in a Map of its own.
   */
  private readonly flows = new Map<number, Flow | Map<number, Flow>>();
  /** Flows whose connection closed while their host half still writes. */
  private readonly draining = new Set<Flow>();
  /** Resolves closeAll's promise (`drainsOver`) once `draining` is empty. */
  private drainWaiter: (() => void) | null = null;
  private drainsOver: Promise<void> | null = null;
  /** When gateway shutdown's grace ends (closeAll): no drain outlives it, progress or not. */
  private graceEnd = Infinity;
  private readonly perGuest = new Map<number, number>();
  private readonly timers = new TimerHeap<Flow>();
  /**
   * Guests whose link reported congestion, each with the connections that
   * held new data back since, in that order: linkDrained resumes just those.
   */
  private readonly congested = new Map<Ip4, Flow[]>();
  /** Dials in flight, shared fairly between guests. */
  private readonly dials: FairSlots<Flow>;
  private count = 0;
  private readonly rst = tcp.blank();
  private readonly output: TcpOutput;
  private readonly events: TcpEvents;
  private readonly limits: TcpNatLimits;
  private readonly handlers = this.hostHandlers();

  constructor(
    private readonly cfg: TcpConfig,
    private readonly deps: TcpNatDeps,
    limits: Partial<TcpNatLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.dials = new FairSlots<Flow>({ total: this.limits.maxDialing, perGuest: this.limits.maxDialingPerGuest, onEvict: (f) => this.evictDial(f) });
    this.output = {
      segment: (conn, h, data, dataOffset) => {
        const f = conn.tag as Flow;
        if (!this.deps.transmit(f.guestIp, f.remoteIp, h, h.payloadLength > 0 ? data : null, dataOffset) && !this.congested.has(f.guestIp))
          this.congested.set(f.guestIp, []);
      },
      linkBlocked: (conn) => {
        if (this.congested.size === 0) return false;
        const f = conn.tag as Flow;
        const waiting = this.congested.get(f.guestIp);
        if (waiting === undefined) return false;
        if (!f.linkWait) {
          f.linkWait = true;
          waiting.push(f);
        }
        return true;
      },
    };
    this.events = {
      onEstablished: (conn) => this.onEstablished(conn.tag as Flow),
      onData: (conn) => this.pumpSoon(conn.tag as Flow),
      onRemoteFin: (conn) => {
        const f = conn.tag as Flow;
        f.finToHost = true;
        this.pumpToHost(f);
      },
      onWritable: (conn) => this.pumpToGuest(conn.tag as Flow),
      onReset: (conn) => {
        const f = conn.tag as Flow;
        f.host?.reset();
        f.host = null;
      },
      onClosed: (conn) => this.connClosed(conn.tag as Flow),
      onProbe: (conn, result) => {
        const f = conn.tag as Flow;
        f.probe?.(result === PROBE_OPEN ? 'open' : result === PROBE_CLOSED ? 'closed' : 'timeout');
        f.probe = null;
      },
    };
  }

  /** Calls `fn` with the addresses of every flow, draining ones included (the gateway keeps those IPv6 ids alive). */
  forEachAddress(fn: (guestIp: Ip4, remoteIp: Ip4) => void): void {
    for (const f of this.liveFlows()) fn(f.guestIp, f.remoteIp);
    for (const f of this.draining) fn(f.guestIp, f.remoteIp);
  }

  /** The connections of the flows in the lookup table (draining ones are not): diagnostics, tests, the bench. */
  connections(): TcpConn[] {
    return this.liveFlows().map((f) => f.conn);
  }

  /** Open flows, draining ones included. */
  get size(): number {
    return this.count;
  }

  /** Flows of the guest that `guestIp` belongs to. */
  flowsOf(guestIp: Ip4): number {
    return this.perGuest.get(this.guestOf(guestIp)) ?? 0;
  }

  private guestOf(guestIp: Ip4): number {
    return this.deps.guestOf?.(guestIp) ?? guestIp;
  }

  /**
   * Handles a TCP segment from a guest (already validated: parse + checksum).
   * @param guestIp the segment's source address
   * @param dstIp its destination address
   * @param h the parsed header (payload at h.payloadOffset of `bytes`)
   * @param bytes the buffer holding the segment
   */
  fromGuest(guestIp: Ip4, dstIp: Ip4, h: tcp.Header, bytes: Uint8Array): void {
    const now = this.deps.now();
    const f = this.find(endpoint(guestIp, h.srcPort), endpoint(dstIp, h.dstPort));
    if (f) {
      if (f.dialing) return; // SYN retransmissions while we dial
      f.conn.onSegment(h, bytes, now);
      this.reschedule(f);
      return;
    }
    const syn = (h.flags & (tcp.SYN | tcp.ACK | tcp.RST | tcp.FIN)) === tcp.SYN;
    if (!syn) return this.strayRst(guestIp, dstIp, h);
    const route = this.deps.route(dstIp, h.dstPort);
    if ('drop' in route) return;
    if ('refuse' in route) {
      this.counters.prohibited++;
      return this.strayRst(guestIp, dstIp, h);
    }
    const guest = this.guestOf(guestIp);
    if ((this.perGuest.get(guest) ?? 0) >= this.limits.maxPerGuest) {
      this.counters.capped++;
      return this.strayRst(guestIp, dstIp, h);
    }
    if ('host' in route && this.dials.makeRoom(guest) !== null) {
      this.counters.dialQueueFull++;
      return;
    }
    const flow = this.add(guestIp, h.srcPort, dstIp, h.dstPort);
    flow.conn.openPassive(h, this.deps.random32() >>> 0, now);
    flow.dialing = true;
    if ('host' in route) flow.dial = this.dials.admit(guest, flow) as Slot<Flow>; // room was made above
    flow.host =
      'local' in route ? this.deps.local(route.local, flow, flow.guest, guestIp, flow.conn.account) : this.deps.dial(route.host, route.port, this.limits.dialTimeoutMs, flow);
  }

  /**
   * Opens a connection to a guest for an accepted host socket (port forward).
   * @param srcIp, srcPort the client as the guest will see it (a taken port is moved)
   * @param makeHost adopts the host socket with the events it is given
   * @returns false when the guest is at its flow cap (the caller resets the client)
   */
  connectToGuest(guestIp: Ip4, guestPort: number, srcIp: Ip4, srcPort: number, makeHost: (ev: HostStreamEvents) => HostStream): boolean {
    if (this.flowsOf(guestIp) >= this.limits.maxPerGuest) {
      this.counters.capped++;
      return false;
    }
    let port = srcPort;
    while (this.find(endpoint(guestIp, guestPort), endpoint(srcIp, port))) port = 1024 + ((port + 1 - 1024) % (65536 - 1024));
    const flow = this.add(guestIp, guestPort, srcIp, port);
    flow.host = makeHost(flow);
    flow.host.pause();
    this.counters.forwarded++;
    flow.conn.connect(this.deps.random32() >>> 0, this.deps.now());
    this.reschedule(flow);
    return true;
  }

  /**
   * Asks whether something listens on guestIp:port, by SYN and (on SYN-ACK) RST.
   */
  probe(guestIp: Ip4, port: number, fromIp: Ip4, timeoutMs: number): Promise<ProbeResult> {
    return new Promise((resolve) => {
      let src = 49152 + (this.deps.random32() % 16384);
      for (let tries = 1; this.find(endpoint(guestIp, port), endpoint(fromIp, src)); tries++) {
        if (tries >= 16384) return resolve('timeout'); // every probe source port busy: give up at once
        src = 49152 + ((src + 1) % 16384);
      }
      const flow = this.add(guestIp, port, fromIp, src);
      flow.probe = resolve;
      flow.conn.probe(this.deps.random32() >>> 0, this.deps.now(), timeoutMs);
      this.reschedule(flow);
    });
  }

  /** Runs due connection timers. */
  runTimers(): void {
    const now = this.deps.now();
    for (let at = this.timers.peek(); at <= now; at = this.timers.peek()) {
      const f = this.timers.popDue(now)!;
      // An entry is current only if it is the flow's latest push; older ones
      // (left behind when the deadline moved earlier) are dropped here. Re-pushing
      // them instead kept every stale entry cycling forever: with deadlines moving
      // earlier on every ACK (the tail loss probe), that loop took a quarter of
      // the gateway's time in a host→guest iperf3 run.
      if (f.closed || at !== f.scheduledAt) continue;
      f.scheduledAt = OFF;
      if (f.draining) {
        if (now >= f.drainAt) this.abandonDrain(f);
      } else if (f.conn.nextTimeout() <= now) f.conn.onTimer(now);
      this.reschedule(f);
    }
    if (this.timers.size) this.deps.schedule(this.timers.peek());
  }

  /**
   * The link to `guestIp` has drained (or is gone): connections that held new
   * data back while it was congested send again.
   */
  linkDrained(guestIp: Ip4): void {
    const waiting = this.congested.get(guestIp);
    if (waiting === undefined) return;
    this.congested.delete(guestIp);
    const now = this.deps.now();
    for (let i = 0; i < waiting.length; i++) {
      const f = waiting[i]!;
      f.linkWait = false;
      if (f.closed) continue;
      f.conn.flush(now);
      this.reschedule(f);
      const again = this.congested.get(guestIp);
      if (again !== undefined) {
        // Full again: the connections not yet resumed go first next time, so a
        // bulk transfer that refills the link cannot starve the others.
        this.congested.set(guestIp, waiting.slice(i + 1).concat(again));
        return;
      }
    }
  }

  /**
   * Gateway shutdown: resets every live flow both ways at once, except those
   * whose guest stream is complete (its FIN came) and that owe the guest
   * nothing (TIME-WAIT, LAST-ACK, CLOSING; CLOSE-WAIT with no host bytes
   * unacknowledged), which join the draining flows; those get
   * `graceMs` to finish writing to their hosts, then what is left is reset
   * (see "Teardown"). The caller keeps the timers running (runTimers) until
   * the promise resolves.
   */
  closeAll(graceMs = 0): Promise<void> {
    this.closeFlows(() => true);
    const now = this.deps.now();
    this.graceEnd = Math.min(this.graceEnd, now + graceMs);
    if (this.draining.size === 0) return Promise.resolve();
    for (const f of this.draining) {
      f.drainAt = Math.ceil(Math.min(f.drainAt, this.graceEnd));
      this.reschedule(f);
    }
    return (this.drainsOver ??= new Promise((resolve) => (this.drainWaiter = resolve)));
  }

  /**
   * A guest's link is gone: its live flows are reset toward their hosts (the
   * guest cannot answer any more, and a link that later takes its address
   * must not inherit its connections); flows whose guest stream is complete
   * drain their acknowledged bytes to the host (see "Teardown").
   * @param guest the guest's key (see TcpNatDeps.guestOf)
   * @param addresses the addresses the link held: flows on them go too, even
   *   those opened toward the guest before its link was known (key 0)
   */
  closeGuest(guest: number, addresses: readonly Ip4[] = []): void {
    this.closeFlows((f) => f.guest === guest || addresses.includes(f.guestIp));
  }

  /**
   * A guest address changed hands: the live flows on it are reset (as in
   * closeGuest), so its next holder inherits none of them.
   */
  closeAddress(guestIp: Ip4): void {
    this.closeFlows((f) => f.guestIp === guestIp);
  }

  /** Resets the live flows `which` selects, and lets those whose guest stream is complete drain. */
  private closeFlows(which: (f: Flow) => boolean): void {
    const now = this.deps.now();
    for (const f of this.liveFlows()) {
      if (!which(f)) continue;
      const st = f.conn.state;
      // The guest's stream is complete (its FIN came) and nothing of the host's is stuck toward it: flush, don't reset.
      const guestDone = st === TIME_WAIT || st === LAST_ACK || st === CLOSING || (f.conn.remoteFinished && f.conn.sndBuf.length === 0 && f.pendingBytes === 0);
      if (f.host !== null && guestDone) {
        f.conn.abort(now); // closes the guest side (RST unless in TIME-WAIT); connClosed drains the host side
        continue;
      }
      f.host?.reset();
      f.host = null;
      f.conn.abort(now);
      this.remove(f);
    }
  }

  // ------------------------------------------------------------------ internals

  /** The flow between a guest endpoint and a remote one (see `flows`). */
  private find(g: number, r: number): Flow | undefined {
    const e = this.flows.get(g);
    if (e instanceof Flow) return endpoint(e.remoteIp, e.remotePort) === r ? e : undefined;
    return e?.get(r);
  }

  /** Every flow in the lookup table (draining ones are not), as a list: the caller may remove them as it goes. */
  private liveFlows(): Flow[] {
    const all: Flow[] = [];
    for (const e of this.flows.values()) {
      if (e instanceof Flow) all.push(e);
      else for (const f of e.values()) all.push(f);
    }
    return all;
  }

  private add(guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number): Flow {
    const guest = this.guestOf(guestIp);
    const conn = new TcpConn(this.deps.configOf?.(guestIp) ?? this.cfg, this.output, this.events, remotePort, guestPort, guest); // guest: its budget account
    const f = new Flow(conn, guestIp, guestPort, remoteIp, remotePort, guest, this.handlers);
    conn.tag = f;
    const g = endpoint(guestIp, guestPort);
    const r = endpoint(remoteIp, remotePort);
    const e = this.flows.get(g);
    if (e === undefined) this.flows.set(g, f);
    else if (e instanceof Flow)
      this.flows.set(
        g,
        new Map([
          [endpoint(e.remoteIp, e.remotePort), e],
          [r, f],
        ]),
      );
    else e.set(r, f);
    this.perGuest.set(guest, (this.perGuest.get(guest) ?? 0) + 1);
    this.count++;
    return f;
  }

  /** The connection reached CLOSED: the flow goes, or drains when it was not reset (see "Teardown"). */
  private connClosed(f: Flow): void {
    if (f.closed || f.draining) return;
    if (f.host === null || f.probe !== null) return this.remove(f);
    // No reset: the guest's FIN came (its stream is complete), bytes may still be unwritten.
    this.unlink(f);
    f.draining = true;
    this.draining.add(f);
    // Host bytes have nowhere to go now: leave them unread, so that closing the socket resets a host that still sends.
    f.host.pause();
    f.drainAt = this.drainDeadline(this.deps.now());
    if (f.drainAt <= this.deps.now()) return this.abandonDrain(f); // shutdown's grace is over: nothing would end this drain
    this.pumpToHost(f);
  }

  /** When a drain that made progress at `now` is given up: drainIdleMs later, and never past shutdown's grace. */
  private drainDeadline(now: number): number {
    return Math.ceil(Math.min(now + this.limits.drainIdleMs, this.graceEnd));
  }

  /** A drain without progress for too long (or cut by shutdown): reset the host, never a clean EOF. */
  private abandonDrain(f: Flow): void {
    this.counters.drainResets++;
    f.host?.reset();
    f.host = null;
    this.remove(f);
  }

  /** Takes the flow out of the lookup table (its 4-tuple may be used again). */
  private unlink(f: Flow): void {
    const g = endpoint(f.guestIp, f.guestPort);
    const e = this.flows.get(g);
    if (e === f) this.flows.delete(g);
    else if (e instanceof Map) {
      const r = endpoint(f.remoteIp, f.remotePort);
      if (e.get(r) === f) e.delete(r);
      if (e.size === 1) this.flows.set(g, e.values().next().value!); // one flow left: held directly again
      else if (e.size === 0) this.flows.delete(g);
    }
  }

  private remove(f: Flow): void {
    if (f.closed) return;
    f.closed = true;
    this.endDial(f);
    this.unlink(f);
    if (f.draining) {
      f.draining = false;
      this.draining.delete(f);
      if (this.draining.size === 0 && this.drainWaiter !== null) {
        const w = this.drainWaiter;
        this.drainWaiter = null;
        this.drainsOver = null;
        w();
      }
    }
    const n = (this.perGuest.get(f.guest) ?? 1) - 1;
    if (n > 0) this.perGuest.set(f.guest, n);
    else this.perGuest.delete(f.guest);
    this.count--;
    f.host?.destroy();
    f.host = null;
    f.probe?.('timeout');
    f.probe = null;
    f.conn.dispose(); // buffers and their budget back
  }

  private reschedule(f: Flow): void {
    if (f.closed) return;
    const due = f.draining ? f.drainAt : f.conn.nextTimeout();
    // An entry at or before `due` is already in the heap: nothing to push. (Its
    // time is at most an earlier now() + TIMER_HORIZON, never later than this
    // call's, so the clock need not be read: this runs for every segment, and
    // performance.now() costs 0.1-0.2 µs here.)
    if (f.scheduledAt !== OFF && f.scheduledAt <= due) return;
    // Far deadlines (the idle timeout) are visited every TIMER_HORIZON ms instead,
    // so an entry left stale when a deadline moved earlier is popped (and dropped)
    // within that time rather than lingering for hours.
    const at = Math.ceil(Math.min(due, this.deps.now() + TIMER_HORIZON));
    if (f.scheduledAt === OFF || at < f.scheduledAt) {
      f.scheduledAt = at;
      const first = this.timers.peek();
      this.timers.push(at, f);
      if (at < first) this.deps.schedule(at);
    }
  }

  private strayRst(guestIp: Ip4, dstIp: Ip4, h: tcp.Header): void {
    if (!rstFor(h, this.rst)) return;
    this.counters.strayRsts++;
    this.deps.transmit(guestIp, dstIp, this.rst, null, 0);
  }

  /** The host stream events of every flow (see HostHandlers). */
  private hostHandlers(): HostHandlers {
    return {
      connected: (f) => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.opened++;
        f.conn.accept(this.deps.now());
        this.reschedule(f);
      },
      refused: (f) => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.refused++;
        f.host = null;
        if (f.conn.role === ROLE_PASSIVE) f.conn.refuse();
        else f.conn.abort(this.deps.now());
        this.remove(f);
      },
      failed: (f) => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.dialTimeouts++;
        f.host = null;
        // Silence toward the guest: forget the half-open flow without a RST.
        this.remove(f);
      },
      readInto: (f) => (f.closed || f.pendingBytes > 0 ? null : f.conn.lendWriteRegion(LEND_MIN)),
      data: (f, chunk) => {
        // `chunk` is lent (host-stream.ts): what the send buffer does not take now is copied.
        if (f.closed || f.draining) return; // a draining flow's host has sent its FIN already
        const now = this.deps.now();
        if (f.pendingBytes === 0) {
          if (f.conn.commitLent(chunk, chunk.length, now)) {
            this.pumpToGuest(f); // read in place into the send buffer (readInto): only the pause check is left
            return;
          }
          // Read into the shared buffer, or into a lent region that moved (the tail went back
          // to the start when everything was acknowledged): copy what the send buffer takes now.
          const n = f.conn.write(chunk, now);
          if (n === chunk.length) {
            this.pumpToGuest(f);
            return;
          }
          chunk = chunk.subarray(n);
        }
        // A read can bring as much as a lent region holds (the send buffer's size): that much
        // may wait outside it; more means the stream went on delivering while paused.
        if (f.pendingBytes + chunk.length > Math.max(PENDING_MAX, f.conn.sndBuf.max)) {
          // Only a host stream that ignores pause() gets here: reset both ways rather than buffer without bound.
          this.counters.hostOverruns++;
          f.host?.reset();
          f.host = null;
          f.conn.abort(this.deps.now());
          this.remove(f);
          return;
        }
        f.pending.push(chunk);
        f.pendingBytes += chunk.length;
        this.pumpToGuest(f);
        const last = f.pending.length - 1;
        if (last >= 0 && f.pending[last]!.buffer === chunk.buffer) f.pending[last] = f.pending[last]!.slice(); // the untaken tail of `chunk`
      },
      end: (f) => {
        if (f.closed || f.draining) return;
        f.finToGuest = true;
        this.pumpToGuest(f);
      },
      reset: (f) => {
        if (f.closed) return;
        f.host = null;
        if (!f.draining) f.conn.abort(this.deps.now());
        this.remove(f);
      },
      drain: (f) => {
        if (f.closed) return;
        f.hostBlocked = false;
        this.pumpToHost(f);
      },
    };
  }

  private endDial(f: Flow): void {
    f.dialing = false;
    if (f.dial === null) return;
    this.dials.release(f.dial);
    f.dial = null;
  }

  /** A dial whose slot went to another guest: abandoned, its guest refused (RST to its SYN). */
  private evictDial(f: Flow): void {
    f.dialing = false;
    f.dial = null;
    this.counters.dialsEvicted++;
    f.host?.destroy();
    f.host = null;
    f.conn.refuse();
    this.remove(f);
  }

  private onEstablished(f: Flow): void {
    // Forwarded connection: the guest accepted; let the host client's bytes flow.
    f.host?.resume();
    this.pumpToGuest(f);
  }

  /**
   * Host → guest: move pending host bytes into the send buffer. The host is
   * paused while the buffer has less room than one read (HOST_READ_MAX), so a
   * read almost always fits whole and its lent bytes need no copy; it resumes
   * when the connection reports room again (onWritable).
   */
  private pumpToGuest(f: Flow): void {
    if (f.closed || f.draining) return;
    const now = this.deps.now();
    while (f.pending.length > 0) {
      const head = f.pending[0]!;
      const n = f.conn.write(head, now);
      f.pendingBytes -= n;
      if (n < head.length) {
        f.pending[0] = head.subarray(n);
        break;
      }
      f.pending.shift();
    }
    if (f.pendingBytes > 0 || f.conn.writable < Math.min(HOST_READ_MAX, f.conn.sndBuf.limit >>> 1)) {
      if (!f.hostPaused && f.host) {
        f.hostPaused = true;
        f.conn.notifyWritable();
        f.host.pause();
      }
    } else if (f.hostPaused) {
      f.hostPaused = false;
      f.host?.resume();
    }
    if (f.pendingBytes === 0 && f.finToGuest) {
      f.finToGuest = false;
      f.conn.shutdownWrite(now);
    }
    this.reschedule(f);
  }

  /** The host socket wrote `n` lent bytes: consume them (a window update may follow). */
  private hostWrote(f: Flow, n: number): void {
    f.toHost -= n;
    if (f.closed) return;
    const now = this.deps.now();
    f.conn.consume(n, now);
    if (f.draining) f.drainAt = this.drainDeadline(now); // progress
    this.pumpToHost(f);
  }

  /** The host socket took our FIN (and every byte before it). */
  private hostEnded(f: Flow): void {
    if (f.closed || !f.draining) return;
    this.counters.drained++;
    this.remove(f); // destroy() now loses nothing: the kernel holds the rest
  }

  /**
   * Defers the guest → host pump to a microtask: every segment of one batch of
   * frames (one read from the QEMU socket) is then written to the host socket
   * in a single write instead of one write (and one syscall) per segment, and
   * acknowledged by one ACK (`ackBatch`, conn.endBatch) instead of one every
   * second segment.
   */
  private pumpSoon(f: Flow): void {
    if (f.pumpQueued) return;
    f.pumpQueued = true;
    queueMicrotask(() => {
      f.pumpQueued = false;
      this.pumpToHost(f);
      if (!f.closed) f.conn.endBatch(this.deps.now());
    });
  }

  /**
   * Guest → host: hand the host socket views of the receive buffer (no copy);
   * each is consumed, opening the guest's window, once the socket has written
   * it. Unwritten bytes keep the window closed.
   */
  private pumpToHost(f: Flow): void {
    if (f.closed) return;
    while (!f.hostBlocked && f.host && f.conn.readable > f.toHost) {
      const v = f.conn.peekView(f.toHost, MAX_READ);
      const n = v.length;
      f.toHost += n;
      if (!f.host.write(v, () => this.hostWrote(f, n))) f.hostBlocked = true;
    }
    if (f.finToHost && f.conn.readable === 0 && f.host) {
      f.finToHost = false;
      f.host.end(() => {
        f.hostEnded = true;
        this.hostEnded(f);
      });
    } else if (f.draining && f.hostEnded) {
      this.hostEnded(f);
    }
    this.reschedule(f);
  }
}

