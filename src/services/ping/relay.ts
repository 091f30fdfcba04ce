/**
 * Theory of operation: ICMP echo from guests to the outside through the
 * host's unprivileged ping sockets, sans-IO. The sockets live in the ping
 * helper (native/ping-helper.c), reached through an injected PingBackend
 * (helper-backend.ts in production, a fake in tests); the gateway decides
 * policy first (which destinations may be pinged at all) and builds the
 * frames, for IPv4 now and IPv6 later: everything here works on address
 * bytes of either family.
 *
 * Flows. One ping socket per (guest link, guest address, echo identifier,
 * destination): a guest's `ping HOST` is one flow. Linux replaces the
 * identifier of every request with the socket's own number and delivers to
 * the socket only replies carrying that number (RFC 792 allows any
 * identifier; the outside sees the host's), so a reply is known by the
 * socket it arrived on: its identifier is set back to the guest's, and the
 * sequence number and payload go back as they came (the kernel keeps both).
 * A reply from any address other than the flow's destination is dropped
 * (`foreign`): a connected ping socket is not filtered by the kernel.
 * Requests keep the guest's TTL or hop limit less one (the gateway is a
 * router, RFC 1812 §5.3.1), so a traceroute-style probe expires where it
 * would have.
 *
 * ICMP errors about a flow's requests (destination unreachable, time
 * exceeded, parameter problem, ICMPv6 packet too big: RFC 792, RFC 4443)
 * reach the socket's error queue (IP_RECVERR) and go to the guest from the
 * router that sent them, quoting the guest's own request header (identifier
 * restored, checksum adjusted by RFC 1624). An error the host raised about
 * itself (its offender is the socket's own source address, e.g. no ARP
 * answer for an on-link destination) comes from the gateway's address
 * instead. No route at all (ENETUNREACH, EHOSTUNREACH on open or send)
 * becomes net/host unreachable from the gateway. Errors the kernel raised
 * without an ICMP message (origin local) are counted, not relayed.
 *
 * Refusal. When the host does not allow ping sockets (socket() fails with
 * EACCES: net.ipv4.ping_group_range excludes the gateway's groups), the
 * guest gets nothing at all — never a made-up reply — the request is
 * counted (`denied`), `warn('denied')` fires once for the relay's life, and
 * sockets are tried again 10 s later (the sysctl may change). When the
 * helper cannot run (not built and no compiler, or it died), requests are
 * counted as `unavailable` for as long as the backend says, and the reason
 * is warned once.
 *
 * Bounds (counted when hit): `maxFlows` sockets in all (default 1024, at
 * most the helper's 4096) and `maxFlowsPerGuest` per link (default 256); a
 * guest at its share closes its own least recently used flow to open
 * another, and a full table closes the least recently used flow of the
 * guest holding the most, as the UDP NAT does. Flows idle for `idleMs`
 * (default 60 s: an ICMP query session timer MUST NOT expire sooner,
 * RFC 5508 §3.2 REQ-2) are closed by sweep(); a later request simply opens
 * a new socket (a new host identifier, the same one for the guest).
 * Flow ids carry a generation above the slot, so a late message about a
 * closed flow is never taken for the flow that reuses its slot (`stale`).
 */
import { update16 } from '../../wire/checksum.js';
import { GuestFlows } from '../guest-flows.js';
import { EACCES, EBADF, EHOSTUNREACH, ENETUNREACH, MAX_SLOTS, ORIGIN_ICMP, ORIGIN_ICMP6, type Family, type HelperMessage } from './protocol.js';

/** The ping helper as the relay sees it. */
export interface PingBackend {
  /** Opens a ping socket for `flow` connected to `dst` (4 or 16 bytes). */
  open(flow: number, family: Family, dst: Uint8Array, ttl: number): void;
  /**
   * Sends one echo request (ICMP header and payload, copied) on `flow`.
   * @returns false when it was dropped (the helper's input is full)
   */
  send(flow: number, ttl: number, message: Uint8Array): boolean;
  /** Closes the flow's socket. */
  close(flow: number): void;
  /** Stops the helper. */
  shutdown(): void;
}

/** What a backend reports to the relay. */
export interface PingBackendEvents {
  /** A message from the helper. */
  message(m: HelperMessage): void;
  /** The helper cannot run or stopped: every flow is gone; try again after `retryMs`. */
  down(detail: string, retryMs: number): void;
}

/** Makes the backend once the relay exists (it needs the relay's events). */
export type PingBackendFactory = (events: PingBackendEvents) => PingBackend;

/** A guest's echo request, already allowed by the gateway's policy. */
export interface EchoRequest {
  /** The guest's link (never an address it can pick). */
  guest: number;
  family: Family;
  /** The guest's address (4 or 16 bytes). */
  src: Uint8Array;
  /** The destination (same family). */
  dst: Uint8Array;
  /** TTL or hop limit to send with: the guest's, less one. */
  ttl: number;
  /** The whole ICMP echo request, checksum verified (header and payload). */
  message: Uint8Array;
}

/** A flow as the gateway needs it to address the guest. */
export interface PingFlowInfo {
  readonly guest: number;
  readonly family: Family;
  /** The guest's address. */
  readonly src: Uint8Array;
  /** The remote address the guest pings. */
  readonly dst: Uint8Array;
  /** The guest's echo identifier. */
  readonly id: number;
}

export interface PingRelayEvents {
  /** An echo reply for the guest from `flow.dst`: the guest's identifier, `seq`, `payload`; `ttl` as it reached the host (0: unknown). */
  reply(flow: PingFlowInfo, seq: number, payload: Uint8Array, ttl: number): void;
  /**
   * An ICMP error for the guest about its request, whose first 8 bytes
   * (type, code, checksum, identifier, sequence, as the guest sent them) are
   * `request`; from the router `from`, or from the gateway itself when null.
   * `info` is the next-hop MTU for "fragmentation needed" / "packet too big".
   * `ttl` is the TTL the request was sent with (for the quoted header).
   */
  error(flow: PingFlowInfo, from: Uint8Array | null, type: number, code: number, info: number, request: Uint8Array, ttl: number): void;
  /** Said once per relay for 'denied', once per distinct detail for 'unavailable'. */
  warn(kind: 'denied' | 'unavailable', detail: string): void;
}

export interface PingRelayOptions {
  backend: PingBackendFactory;
  events: PingRelayEvents;
  /** Monotonic clock (ms). */
  now: () => number;
  /** Most flows at once (default 1024, at most 4096). */
  maxFlows?: number;
  /** Most flows of one guest (default a quarter of maxFlows). */
  maxFlowsPerGuest?: number;
  /** Idle time before a flow's socket is closed (default 60 s). */
  idleMs?: number;
  /** After EACCES, how long before sockets are tried again (default 10 s). */
  deniedRetryMs?: number;
}

export interface PingRelayCounters {
  flowsOpened: number;
  flowsExpired: number;
  flowsEvicted: number;
  /** Echo requests handed to the helper. */
  requests: number;
  /** Echo replies relayed to guests. */
  replies: number;
  /** ICMP errors relayed to guests (from routers, or no route from the gateway). */
  errors: number;
  /** Requests dropped because ping sockets are not allowed (EACCES). */
  denied: number;
  /** Requests dropped because the helper could not run. */
  unavailable: number;
  /** Requests dropped by a full queue (the helper's input, or the socket: EAGAIN). */
  sendDropped: number;
  /** Sockets that could not be opened for another reason (no route, EMFILE…). */
  openFailed: number;
  /** Replies from an address other than the flow's destination. */
  foreign: number;
  /** Helper messages about flows already closed. */
  stale: number;
  /** Errors the host raised without an ICMP message (not relayed). */
  localErrors: number;
}

/** Per family: echo types, the ICMP error types relayed, "unreachable" codes. */
const KINDS = {
  // RFC 792: echo 8/0; destination unreachable 3 (net 0, host 1), time exceeded 11, parameter problem 12.
  4: { request: 8, reply: 0, errors: new Set([3, 11, 12]), unreach: 3, noNet: 0, noHost: 1 },
  // RFC 4443: echo 128/129; destination unreachable 1 (no route 0, address unreachable 3), packet too big 2, time exceeded 3, parameter problem 4.
  6: { request: 128, reply: 129, errors: new Set([1, 2, 3, 4]), unreach: 1, noNet: 0, noHost: 3 },
} as const;

const GEN_LIMIT = 0x100000; // generations above the 12 slot bits keep ids within u32

interface Flow extends PingFlowInfo {
  readonly flow: number;
  readonly slot: number;
  readonly key: string;
  /** The address the host sends from (OPENED), to tell the host's own errors. */
  local: Uint8Array | null;
  lastUsed: number;
  ttl: number;
  lastSeq: number;
  lastChecksum: number;
  open: boolean;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export class PingRelay {
  readonly counters: PingRelayCounters = {
    flowsOpened: 0,
    flowsExpired: 0,
    flowsEvicted: 0,
    requests: 0,
    replies: 0,
    errors: 0,
    denied: 0,
    unavailable: 0,
    sendDropped: 0,
    openFailed: 0,
    foreign: 0,
    stale: 0,
    localErrors: 0,
  };
  private readonly backend: PingBackend;
  private readonly events: PingRelayEvents;
  private readonly now: () => number;
  private readonly byId = new Map<number, Flow>();
  private readonly byKey = new Map<string, Flow>();
  /** Each guest's flows, least recently used first. */
  private readonly byGuest: GuestFlows<Flow>;
  private readonly freeSlots: number[];
  private readonly generation: Uint32Array;
  private readonly idleMs: number;
  private readonly deniedRetryMs: number;
  private deniedUntil = -Infinity;
  private downUntil = -Infinity;
  private deniedWarned = false;
  private readonly warned = new Set<string>();

  constructor(opts: PingRelayOptions) {
    const maxFlows = Math.min(opts.maxFlows ?? 1024, MAX_SLOTS);
    this.byGuest = new GuestFlows(maxFlows, opts.maxFlowsPerGuest ?? Math.max(1, Math.floor(maxFlows / 4)));
    this.idleMs = opts.idleMs ?? 60_000;
    this.deniedRetryMs = opts.deniedRetryMs ?? 10_000;
    this.now = opts.now;
    this.events = opts.events;
    this.freeSlots = Array.from({ length: maxFlows }, (_, i) => maxFlows - 1 - i);
    this.generation = new Uint32Array(maxFlows);
    this.backend = opts.backend({
      message: (m) => this.onMessage(m),
      down: (detail, retryMs) => this.onDown(detail, retryMs),
    });
  }

  /** Open flows. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Relays one echo request.
   * @returns 'sent'; 'denied' (ping sockets not allowed), 'unavailable' (no helper) or 'dropped' (queue full): nothing goes back to the guest
   */
  fromGuest(r: EchoRequest): 'sent' | 'denied' | 'unavailable' | 'dropped' {
    const now = this.now();
    if (now < this.deniedUntil) {
      this.counters.denied++;
      return 'denied';
    }
    if (now < this.downUntil) {
      this.counters.unavailable++;
      return 'unavailable';
    }
    const m = r.message;
    const id = (m[4]! << 8) | m[5]!;
    const key = `${r.guest}/${hex(r.src)}/${id}/${hex(r.dst)}`;
    let f = this.byKey.get(key);
    if (f === undefined) {
      const victim = this.byGuest.victim(r.guest);
      if (victim !== null) {
        this.counters.flowsEvicted++;
        this.close(victim, true);
      }
      f = this.openFlow(r, id, key, now);
      this.backend.open(f.flow, f.family, f.dst, r.ttl);
    } else {
      this.byGuest.touch(f, now);
    }
    f.ttl = r.ttl;
    f.lastSeq = (m[6]! << 8) | m[7]!;
    f.lastChecksum = (m[2]! << 8) | m[3]!;
    if (!this.backend.send(f.flow, r.ttl, m)) {
      this.counters.sendDropped++;
      return 'dropped';
    }
    this.counters.requests++;
    return 'sent';
  }

  /** Closes flows idle for longer than the idle timeout. Call periodically. */
  sweep(now: number): void {
    for (const f of this.byGuest.idle(now, this.idleMs)) {
      this.counters.flowsExpired++;
      this.close(f, true);
    }
  }

  /** Closes one guest's flows (its link went away). */
  closeGuest(guest: number): void {
    for (const f of this.byGuest.ofGuest(guest)) this.close(f, true);
  }

  /** Closes the flows from one guest address (it changed hands). */
  closeAddress(src: Uint8Array): void {
    for (const f of [...this.byId.values()]) if (sameBytes(f.src, src)) this.close(f, true);
  }

  /** Closes every flow and stops the helper. */
  closeAll(): void {
    for (const f of [...this.byId.values()]) this.close(f, false);
    this.backend.shutdown();
  }

  private onMessage(m: HelperMessage): void {
    if (m.type === 'hello') return;
    const f = this.byId.get(m.flow);
    if (f === undefined) {
      this.counters.stale++;
      return;
    }
    switch (m.type) {
      case 'opened':
        f.local = m.local;
        return;
      case 'open-failed':
        this.close(f, false); // the helper holds nothing for it
        if (m.errno === EACCES) return this.onDenied();
        this.counters.openFailed++;
        return this.noRoute(f, m.errno);
      case 'send-failed':
        if (m.errno === ENETUNREACH || m.errno === EHOSTUNREACH) return this.noRoute(f, m.errno);
        // EBADF follows a failed open (counted there); anything else (EAGAIN, ENOBUFS) lost the request.
        if (m.errno !== EBADF) this.counters.sendDropped++;
        return;
      case 'reply':
        return this.onReply(f, m.from, m.message, m.ttl);
      case 'icmp-error':
        return this.onError(f, m.origin, m.icmpType, m.code, m.info, m.offender, m.request);
    }
  }

  private onDenied(): void {
    this.counters.denied++;
    this.deniedUntil = this.now() + this.deniedRetryMs;
    if (this.deniedWarned) return;
    this.deniedWarned = true;
    this.events.warn('denied', '');
  }

  private onDown(detail: string, retryMs: number): void {
    for (const f of [...this.byId.values()]) this.close(f, false);
    this.downUntil = this.now() + retryMs;
    if (this.warned.has(detail)) return;
    this.warned.add(detail);
    this.events.warn('unavailable', detail);
  }

  private onReply(f: Flow, from: Uint8Array, msg: Uint8Array, ttl: number): void {
    if (msg.length < 8 || msg[0] !== KINDS[f.family].reply || msg[1] !== 0) return; // the kernel delivers only echo replies
    if (!sameBytes(from, f.dst)) {
      this.counters.foreign++;
      return;
    }
    this.byGuest.touch(f, this.now());
    this.counters.replies++;
    this.events.reply(f, (msg[6]! << 8) | msg[7]!, msg.subarray(8), ttl);
  }

  private onError(f: Flow, origin: number, type: number, code: number, info: number, offender: Uint8Array, sent: Uint8Array): void {
    const k = KINDS[f.family];
    if (origin !== (f.family === 4 ? ORIGIN_ICMP : ORIGIN_ICMP6) || !k.errors.has(type) || sent.length < 8) {
      this.counters.localErrors++;
      return;
    }
    const own = offender.every((b) => b === 0) || (f.local !== null && sameBytes(offender, f.local));
    this.counters.errors++;
    this.events.error(f, own ? null : offender, type, code, info, this.guestRequest(f, sent), f.ttl);
  }

  /** No route to the destination: net or host unreachable from the gateway, about the flow's last request. */
  private noRoute(f: Flow, errno: number): void {
    if (errno !== ENETUNREACH && errno !== EHOSTUNREACH) return;
    const k = KINDS[f.family];
    const q = new Uint8Array(8);
    q[0] = k.request;
    q[2] = f.lastChecksum >>> 8;
    q[3] = f.lastChecksum & 255;
    q[4] = f.id >>> 8;
    q[5] = f.id & 255;
    q[6] = f.lastSeq >>> 8;
    q[7] = f.lastSeq & 255;
    this.counters.errors++;
    this.events.error(f, null, k.unreach, errno === ENETUNREACH ? k.noNet : k.noHost, 0, q, f.ttl);
  }

  /**
   * The first 8 bytes of a request as the guest sent it, from what the host
   * sent: the guest's identifier back (and, for ICMPv6, whose checksum
   * covers the addresses, the guest's source instead of the host's), the
   * checksum adjusted to match (RFC 1624).
   */
  private guestRequest(f: Flow, sent: Uint8Array): Uint8Array {
    const q = sent.slice(0, 8);
    let c = (q[2]! << 8) | q[3]!;
    c = update16(c, (q[4]! << 8) | q[5]!, f.id);
    if (f.family === 6 && f.local !== null) {
      for (let i = 0; i < 16; i += 2) c = update16(c, (f.local[i]! << 8) | f.local[i + 1]!, (f.src[i]! << 8) | f.src[i + 1]!);
    }
    q[2] = c >>> 8;
    q[3] = c & 255;
    q[4] = f.id >>> 8;
    q[5] = f.id & 255;
    return q;
  }

  private openFlow(r: EchoRequest, id: number, key: string, now: number): Flow {
    const slot = this.freeSlots.pop()!;
    const gen = (this.generation[slot] = (this.generation[slot]! + 1) % GEN_LIMIT);
    const f: Flow = {
      flow: (gen * MAX_SLOTS + slot) >>> 0,
      slot,
      key,
      guest: r.guest,
      family: r.family,
      src: r.src.slice(),
      dst: r.dst.slice(),
      id,
      local: null,
      lastUsed: now,
      ttl: r.ttl,
      lastSeq: 0,
      lastChecksum: 0,
      open: true,
    };
    this.byId.set(f.flow, f);
    this.byKey.set(key, f);
    this.byGuest.add(f);
    this.counters.flowsOpened++;
    return f;
  }

  /** Forgets a flow; `tellHelper` sends CLOSE (not when the helper holds nothing for it). */
  private close(f: Flow, tellHelper: boolean): void {
    if (!f.open) return;
    f.open = false;
    this.byId.delete(f.flow);
    this.byKey.delete(f.key);
    this.byGuest.delete(f);
    this.freeSlots.push(f.slot);
    if (tellHelper) this.backend.close(f.flow);
  }
}
