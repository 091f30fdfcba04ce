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
 * reader slows the guest. FIN travels each way on its own (half-close);
 * resets travel both ways.
 *
 * Limits: at most `maxPerGuest` flows per guest address (beyond: RST, counted)
 * and `maxDialing` dials in flight (beyond: the SYN is dropped and the guest
 * retries). All timers of all connections share one deadline heap; the edge
 * calls runTimers() when asked through `schedule`.
 */
import * as tcp from '../../wire/tcp.js';
import type { Ip4 } from '../../wire/addr.js';
import {
  PROBE_CLOSED,
  PROBE_OPEN,
  ROLE_PASSIVE,
  TcpConn,
  rstFor,
  type TcpConfig,
  type TcpEvents,
  type TcpOutput,
} from '../../tcp/conn.js';
import type { SendBuffer } from '../../tcp/send-buffer.js';
import { HOST_READ_MAX, type HostStream, type HostStreamEvents } from './host-stream.js';
import { TimerHeap } from './timer-heap.js';

/** Where a guest connection goes. */
export type TcpRoute = { host: string; port: number } | { local: 'dns' } | { refuse: true } | { drop: true };

export interface TcpNatDeps {
  now(): number;
  /** A random 32-bit number (initial sequence numbers). */
  random32(): number;
  /** Sends a segment to a guest; `data` holds the payload at `dataOffset` (null: none). */
  /** @returns false when the guest's link is now congested (see linkDrained) */
  transmit(guestIp: Ip4, remoteIp: Ip4, h: tcp.Header, data: SendBuffer | null, dataOffset: number): boolean;
  route(dstIp: Ip4, dstPort: number): TcpRoute;
  dial(host: string, port: number, timeoutMs: number, ev: HostStreamEvents): HostStream;
  localDns(ev: HostStreamEvents): HostStream;
  /** Ask to have runTimers() called at (or soon after) `at` (ms, same clock as now()). */
  schedule(at: number): void;
}

export interface TcpNatLimits {
  /** Concurrent flows per guest address (default 4096). */
  maxPerGuest: number;
  /** Host dials in flight (default 512). */
  maxDialing: number;
  /** Give up a host dial after this long, silently (default 10 s). */
  dialTimeoutMs: number;
}

export const DEFAULT_LIMITS: TcpNatLimits = { maxPerGuest: 4096, maxDialing: 512, dialTimeoutMs: 10_000 };

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
  /** RSTs sent for segments matching no flow. */
  strayRsts: number;
  /** Forwarded host connections. */
  forwarded: number;
}

export type ProbeResult = 'open' | 'closed' | 'timeout';

class Flow {
  host: HostStream | null = null;
  /** Host bytes the connection's send buffer has not taken yet. */
  pending: Uint8Array | null = null;
  /** The host end asked us to stop writing (write() returned false). */
  hostBlocked = false;
  /** The guest's FIN is to be passed on once its data is written. */
  finToHost = false;
  /** The host's FIN is to be passed on once `pending` is taken. */
  finToGuest = false;
  dialing = false;
  closed = false;
  /** A guest → host pump is queued for this microtask checkpoint. */
  pumpQueued = false;
  /** The host socket is paused for lack of room in the send buffer. */
  hostPaused = false;
  /** Waiting in TcpNat.congested for the guest's link to drain. */
  linkWait = false;
  /** Bytes lent to the host socket and not yet written (consumed when they are). */
  toHost = 0;
  scheduledAt = Infinity;
  probe: ((r: ProbeResult) => void) | null = null;
  constructor(
    readonly conn: TcpConn,
    readonly guestIp: Ip4,
    readonly guestPort: number,
    readonly remoteIp: Ip4,
    readonly remotePort: number,
  ) {}
}

const endpoint = (ip: Ip4, port: number) => ip * 65536 + port;

/**
 * Smallest send-buffer region a host socket reads into in place; below it the
 * socket reads into the shared buffer and the bytes are copied. Invariant
 * that makes lending safe: a flow with `pending` bytes is never lent a
 * region, and only `pending` is ever written into the buffer by copying.
 */
const LEND_MIN = 16 * 1024;

/** Timer entries are never pushed further ahead than this (ms); see reschedule. */
const TIMER_HORIZON = 60_000;

/** Largest chunk handed to a host socket at once. */
const MAX_READ = 256 * 1024;

export class TcpNat {
  readonly counters: TcpNatCounters = { opened: 0, refused: 0, prohibited: 0, capped: 0, dialTimeouts: 0, dialQueueFull: 0, strayRsts: 0, forwarded: 0 };
  private readonly flows = new Map<number, Map<number, Flow>>();
  private readonly perGuest = new Map<Ip4, number>();
  private readonly timers = new TimerHeap<Flow>();
  /**
   * Guests whose link reported congestion, each with the connections that
   * held new data back since, in that order: linkDrained resumes just those.
   */
  private readonly congested = new Map<Ip4, Flow[]>();
  private dialing = 0;
  private count = 0;
  private readonly rst = tcp.blank();
  private readonly output: TcpOutput;
  private readonly events: TcpEvents;
  private readonly limits: TcpNatLimits;

  constructor(
    private readonly cfg: TcpConfig,
    private readonly deps: TcpNatDeps,
    limits: Partial<TcpNatLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
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
      onClosed: (conn) => this.remove(conn.tag as Flow),
      onProbe: (conn, result) => {
        const f = conn.tag as Flow;
        f.probe?.(result === PROBE_OPEN ? 'open' : result === PROBE_CLOSED ? 'closed' : 'timeout');
        f.probe = null;
      },
    };
  }

  /** Open flows. */
  get size(): number {
    return this.count;
  }

  /** Flows of one guest address. */
  flowsOf(guestIp: Ip4): number {
    return this.perGuest.get(guestIp) ?? 0;
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
    const f = this.flows.get(endpoint(guestIp, h.srcPort))?.get(endpoint(dstIp, h.dstPort));
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
    if ((this.perGuest.get(guestIp) ?? 0) >= this.limits.maxPerGuest) {
      this.counters.capped++;
      return this.strayRst(guestIp, dstIp, h);
    }
    if ('host' in route && this.dialing >= this.limits.maxDialing) {
      this.counters.dialQueueFull++;
      return;
    }
    const flow = this.add(guestIp, h.srcPort, dstIp, h.dstPort);
    flow.conn.openPassive(h, this.deps.random32() >>> 0, now);
    flow.dialing = true;
    this.dialing++;
    const ev = this.hostEvents(flow);
    flow.host = 'local' in route ? this.deps.localDns(ev) : this.deps.dial(route.host, route.port, this.limits.dialTimeoutMs, ev);
  }

  /**
   * Opens a connection to a guest for an accepted host socket (port forward).
   * @param srcIp, srcPort the client as the guest will see it (a taken port is moved)
   * @param makeHost adopts the host socket with the events it is given
   * @returns false when the guest is at its flow cap (the caller resets the client)
   */
  connectToGuest(guestIp: Ip4, guestPort: number, srcIp: Ip4, srcPort: number, makeHost: (ev: HostStreamEvents) => HostStream): boolean {
    if ((this.perGuest.get(guestIp) ?? 0) >= this.limits.maxPerGuest) {
      this.counters.capped++;
      return false;
    }
    let port = srcPort;
    while (this.flows.get(endpoint(guestIp, guestPort))?.has(endpoint(srcIp, port))) port = 1024 + ((port + 1 - 1024) % (65536 - 1024));
    const flow = this.add(guestIp, guestPort, srcIp, port);
    flow.host = makeHost(this.hostEvents(flow));
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
      while (this.flows.get(endpoint(guestIp, port))?.has(endpoint(fromIp, src))) src = 49152 + ((src + 1) % 16384);
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
      f.scheduledAt = Infinity;
      if (f.conn.nextTimeout() <= now) f.conn.onTimer(now);
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

  /** Resets every flow (gateway shutdown). */
  closeAll(): void {
    const now = this.deps.now();
    for (const byRemote of [...this.flows.values()]) {
      for (const f of [...byRemote.values()]) {
        f.host?.reset();
        f.host = null;
        f.conn.abort(now);
        this.remove(f);
      }
    }
  }

  // ------------------------------------------------------------------ internals

  private add(guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number): Flow {
    const conn = new TcpConn(this.cfg, this.output, this.events, remotePort, guestPort, guestIp); // guestIp: its budget account
    const f = new Flow(conn, guestIp, guestPort, remoteIp, remotePort);
    conn.tag = f;
    const g = endpoint(guestIp, guestPort);
    let byRemote = this.flows.get(g);
    if (!byRemote) this.flows.set(g, (byRemote = new Map()));
    byRemote.set(endpoint(remoteIp, remotePort), f);
    this.perGuest.set(guestIp, (this.perGuest.get(guestIp) ?? 0) + 1);
    this.count++;
    return f;
  }

  private remove(f: Flow): void {
    if (f.closed) return;
    f.closed = true;
    if (f.dialing) {
      f.dialing = false;
      this.dialing--;
    }
    const g = endpoint(f.guestIp, f.guestPort);
    const byRemote = this.flows.get(g);
    byRemote?.delete(endpoint(f.remoteIp, f.remotePort));
    if (byRemote?.size === 0) this.flows.delete(g);
    const n = (this.perGuest.get(f.guestIp) ?? 1) - 1;
    if (n > 0) this.perGuest.set(f.guestIp, n);
    else this.perGuest.delete(f.guestIp);
    this.count--;
    f.host?.destroy();
    f.host = null;
    f.probe?.('timeout');
    f.probe = null;
    f.conn.dispose(); // buffers and their budget back
  }

  private reschedule(f: Flow): void {
    if (f.closed) return;
    // Far deadlines (the idle timeout) are visited every TIMER_HORIZON ms instead,
    // so an entry left stale when a deadline moved earlier is popped (and dropped)
    // within that time rather than lingering for hours.
    const at = Math.min(f.conn.nextTimeout(), this.deps.now() + TIMER_HORIZON);
    if (at < f.scheduledAt) {
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

  private hostEvents(f: Flow): HostStreamEvents {
    return {
      connected: () => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.opened++;
        f.conn.accept(this.deps.now());
        this.reschedule(f);
      },
      refused: () => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.refused++;
        f.host = null;
        if (f.conn.role === ROLE_PASSIVE) f.conn.refuse();
        else f.conn.abort(this.deps.now());
        this.remove(f);
      },
      failed: () => {
        if (f.closed) return;
        this.endDial(f);
        this.counters.dialTimeouts++;
        f.host = null;
        // Silence toward the guest: forget the half-open flow without a RST.
        this.remove(f);
      },
      readInto: () => (f.closed || f.pending !== null ? null : f.conn.lendWriteRegion(LEND_MIN)),
      data: (chunk) => {
        // `chunk` is lent (host-stream.ts): what the send buffer does not take now is copied.
        if (f.closed) return;
        if (f.pending === null && f.conn.commitLent(chunk, chunk.length, this.deps.now())) {
          this.pumpToGuest(f); // read in place into the send buffer (readInto): only the pause check is left
          return;
        }
        if (f.pending) {
          const both = new Uint8Array(f.pending.length + chunk.length);
          both.set(f.pending);
          both.set(chunk, f.pending.length);
          f.pending = both;
          this.pumpToGuest(f);
          return;
        }
        f.pending = chunk;
        this.pumpToGuest(f);
        if (f.pending !== null) f.pending = f.pending.slice(); // the untaken tail of `chunk`
      },
      end: () => {
        if (f.closed) return;
        f.finToGuest = true;
        this.pumpToGuest(f);
      },
      reset: () => {
        if (f.closed) return;
        f.host = null;
        f.conn.abort(this.deps.now());
        this.remove(f);
      },
      drain: () => {
        if (f.closed) return;
        f.hostBlocked = false;
        this.pumpToHost(f);
      },
    };
  }

  private endDial(f: Flow): void {
    if (!f.dialing) return;
    f.dialing = false;
    this.dialing--;
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
    if (f.closed) return;
    const now = this.deps.now();
    if (f.pending) {
      const n = f.conn.write(f.pending, now);
      f.pending = n >= f.pending.length ? null : f.pending.subarray(n);
    }
    if (f.pending || f.conn.writable < Math.min(HOST_READ_MAX, f.conn.sndBuf.limit >>> 1)) {
      if (!f.hostPaused && f.host) {
        f.hostPaused = true;
        f.conn.notifyWritable();
        f.host.pause();
      }
    } else if (f.hostPaused) {
      f.hostPaused = false;
      f.host?.resume();
    }
    if (!f.pending && f.finToGuest) {
      f.finToGuest = false;
      f.conn.shutdownWrite(now);
    }
    this.reschedule(f);
  }

  /** The host socket wrote `n` lent bytes: consume them (a window update may follow). */
  private hostWrote(f: Flow, n: number): void {
    f.toHost -= n;
    if (f.closed) return;
    f.conn.consume(n, this.deps.now());
    this.pumpToHost(f);
  }

  /**
   * Defers the guest → host pump to a microtask: every segment of one batch of
   * frames (one read from the QEMU socket) is then written to the host socket
   * in a single write instead of one write (and one syscall) per segment.
   */
  private pumpSoon(f: Flow): void {
    if (f.pumpQueued) return;
    f.pumpQueued = true;
    queueMicrotask(() => {
      f.pumpQueued = false;
      this.pumpToHost(f);
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
      f.host.end();
    }
    this.reschedule(f);
  }
}

