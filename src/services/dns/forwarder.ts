/**
 * Theory of operation: forwarding one guest query to the host's resolvers.
 *
 * The guest's bytes go upstream unchanged except for the 16-bit ID: every
 * attempt (each server, each retry, each TCP fallback) gets a fresh random ID
 * and, through the {@link Transport}, a random source port (udp-pool.ts: a
 * socket drawn from a small pool of connected sockets with kernel-chosen
 * random ports, each replaced after a few seconds or uses), so an off-path
 * attacker must guess ~31 bits: 16 of ID and ~15 of port in Linux's default
 * ephemeral range (RFC 5452 §9.2). A reply is accepted only when it comes
 * from the server asked (the pooled sockets are connected, so the kernel
 * drops datagrams from anyone else), carries the attempt's ID, has QR set,
 * the same OPCODE, and echoes the same question (RFC 5452 §4.1, compared
 * case-insensitively). Anything else is ignored and the attempt keeps
 * waiting.
 *
 * Servers are tried in order (RFC 1035 §7.2), each with a per-try timeout of
 * `min(tryTimeoutMs, remaining / serversLeft)` so that every server gets a
 * turn inside the overall deadline, then a second pass over the servers that
 * stayed silent, while time remains. An upstream SERVFAIL, NOTIMP or REFUSED
 * moves on to the next server like a stub resolver does; if nobody does
 * better, the last such reply is passed on. A UDP reply with TC set is
 * retried over TCP on the same server (RFC 7766 §5, 2-byte length framing
 * §8); if TCP fails the truncated reply is kept as a fallback (the guest can
 * retry over TCP itself). When the deadline passes, or every server failed,
 * the guest gets SERVFAIL: forwarding never hangs.
 *
 * A forward can be ended early through a {@link Cancel} (the DNS service
 * does so when the query's slot goes to another guest, ../fair-slots.ts): the
 * exchange in flight fails at once (E_INTERRUPTED, releasing its timer and
 * socket waiter), no further one starts, and the result is SERVFAIL.
 *
 * Upstream answers are never re-encoded: only the ID is restored to the
 * guest's. I/O is behind {@link Transport}; node-transport.ts has the real
 * one (node:dgram, node:net) and tests can inject their own.
 */

import { VmnetError } from '../../errors.js';
import * as msg from './message.js';
import { bulkRandom32 } from './random.js';

/** One upstream DNS server; `host` is an IP address literal (IPv6 may carry a `%zone`). */
export interface Upstream {
  host: string;
  port: number;
}

/** Where the forwarder gets its servers, asked once per query (static list or resolv.conf watcher). */
export interface UpstreamSource {
  servers(): readonly Upstream[];
}

/** Minimal logger the DNS modules accept. */
export interface DnsLogger {
  debug(message: string): void;
  warn(message: string): void;
}

/** Decides whether a received message is the reply to the attempt (see theory of operation). */
export type ReplyFilter = (reply: Uint8Array) => boolean;

/**
 * Ends one forward early: {@link Cancel.cancel} fails the exchange in flight
 * (the transport registered how with {@link Cancel.bind}) and marks the
 * forward so that it starts no other. One per query; no timer, no listener list.
 */
export class Cancel {
  #cancelled = false;
  #end: ((err: Error) => void) | null = null;

  /** True once {@link cancel} ran. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** For transports: `end` fails the exchange now in flight (called at most once, on cancel). */
  bind(end: (err: Error) => void): void {
    this.#end = end;
  }

  /** For transports: the exchange ended by `end` settled. */
  unbind(end: (err: Error) => void): void {
    if (this.#end === end) this.#end = null;
  }

  /** Fails the exchange in flight with VmnetError E_INTERRUPTED; later ones are not started. Idempotent. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    const end = this.#end;
    this.#end = null;
    end?.(new VmnetError('E_INTERRUPTED', 'DNS query cancelled'));
  }
}

/**
 * The I/O the forwarder needs. Both calls must settle within `timeoutMs`:
 * resolve with the first message `accept` returns true for, or reject
 * (timeout → VmnetError E_TIMEOUT; `cancel` → E_INTERRUPTED at once, also
 * when it was cancelled before the call; network errors as they come).
 */
export interface Transport {
  /**
   * One UDP exchange from an unpredictable source port; messages from other
   * sources than host:port, or with another ID than the query's, must never
   * reach `accept`, and two exchanges in flight with the same ID must not
   * share a socket.
   */
  udpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter, cancel?: Cancel): Promise<Uint8Array>;
  /** One TCP exchange (RFC 7766 §8 two-byte length framing is the transport's business). */
  tcpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter, cancel?: Cancel): Promise<Uint8Array>;
  /** Releases what the transport holds (its sockets); exchanges in flight fail. */
  close?(): void;
}

/** Options of {@link Forwarder}. */
export interface ForwarderOptions {
  transport: Transport;
  /** Overall budget per guest query, ms (default 4000, below glibc's 5 s so the guest sees our SERVFAIL). */
  deadlineMs?: number | undefined;
  /** Upper bound of one UDP try, ms (default 1500). */
  tryTimeoutMs?: number | undefined;
  /** Upper bound of one TCP fallback, ms (default 2000, always within the deadline). */
  tcpTimeoutMs?: number | undefined;
  /** Monotonic clock in ms (default performance.now). */
  now?: (() => number) | undefined;
  /** Source of query IDs, 0..65535 (default {@link bulkRandom32}'s low 16 bits). */
  random16?: (() => number) | undefined;
  logger?: DnsLogger | null | undefined;
}

/** What {@link Forwarder.forward} did. */
export interface ForwardResult {
  /** The reply for the guest, with the guest's ID. */
  reply: Uint8Array;
  /** 'answered': an upstream reply is passed on (any RCODE); 'servfail': vmnet made a SERVFAIL. */
  outcome: 'answered' | 'servfail';
  /** The server whose reply is passed on, or null. */
  server: Upstream | null;
  /** True when the reply came over TCP. */
  tcp: boolean;
  /** UDP tries that timed out or failed. */
  failures: number;
  /** TCP fallbacks started because of TC. */
  tcpRetries: number;
}

const MIN_TRY_MS = 20;

/**
 * Forwards guest queries to upstream servers; see the module comment.
 * Stateless between queries, so one instance serves all concurrently.
 */
export class Forwarder {
  private readonly transport: Transport;
  private readonly deadlineMs: number;
  private readonly tryTimeoutMs: number;
  private readonly tcpTimeoutMs: number;
  private readonly now: () => number;
  private readonly random16: () => number;
  private readonly logger: DnsLogger | null;

  /** @param opts transport, timing and randomness; see {@link ForwarderOptions} */
  constructor(opts: ForwarderOptions) {
    this.transport = opts.transport;
    this.deadlineMs = opts.deadlineMs ?? 4000;
    this.tryTimeoutMs = opts.tryTimeoutMs ?? 1500;
    this.tcpTimeoutMs = opts.tcpTimeoutMs ?? 2000;
    this.now = opts.now ?? (() => performance.now());
    this.random16 = opts.random16 ?? bulkRandom32();
    this.logger = opts.logger ?? null;
  }

  /**
   * Resolves `query` through `servers`.
   * @param query a guest query (at least a header and one question; the
   *   caller validated it); not modified
   * @param servers tried in order; an empty list gives SERVFAIL at once
   * @param edns whether the guest sent an OPT record (for vmnet's own SERVFAIL)
   * @param cancel ends the forward early with SERVFAIL (see the module comment)
   * @returns the reply for the guest (never rejects, settles by the deadline
   *   plus the transport's timer slack)
   */
  async forward(query: Uint8Array, servers: readonly Upstream[], edns = false, cancel?: Cancel): Promise<ForwardResult> {
    const guestId = msg.id(query);
    const qEnd = msg.questionEnd(query);
    const result: ForwardResult = { reply: query, outcome: 'servfail', server: null, tcp: false, failures: 0, tcpRetries: 0 };
    if (qEnd === -1 || servers.length === 0) return this.servfail(query, result, edns);

    const deadline = this.now() + this.deadlineMs;
    const n = servers.length;
    const silent = new Set<number>(); // servers that did not answer in pass 1
    let fallback: { reply: Uint8Array; server: Upstream; tcp: boolean; rank: number } | null = null;
    const keep = (reply: Uint8Array, server: Upstream, tcp: boolean, rank: number) => {
      if (!fallback || rank >= fallback.rank) fallback = { reply, server, tcp, rank };
    };

    for (let i = 0; i < 2 * n; i++) {
      if (cancel?.cancelled) break;
      const k = i % n;
      if (i >= n && !silent.has(k)) continue;
      const server = servers[k]!;
      const remaining = deadline - this.now();
      if (remaining < MIN_TRY_MS) break;
      const left = i < n ? n - i : [...silent].filter((s) => s >= k).length;
      const timeout = Math.max(Math.min(this.tryTimeoutMs, remaining / Math.max(1, left)), Math.min(remaining, 250));

      let reply: Uint8Array;
      try {
        reply = await this.attempt('udp', server, query, qEnd, timeout, cancel);
      } catch (e) {
        if (cancel?.cancelled) break;
        result.failures++;
        silent.add(k);
        this.logger?.debug(`dns: ${fmt(server)} udp: ${reason(e)}`);
        continue;
      }
      let tcp = false;
      if (msg.isTruncated(reply)) {
        result.tcpRetries++;
        keep(reply, server, false, 1);
        const left2 = deadline - this.now();
        if (left2 < MIN_TRY_MS) break;
        try {
          reply = await this.attempt('tcp', server, query, qEnd, Math.min(this.tcpTimeoutMs, left2), cancel);
          tcp = true;
        } catch (e) {
          this.logger?.debug(`dns: ${fmt(server)} tcp: ${reason(e)}`);
          continue;
        }
      }
      const rc = msg.rcode(reply);
      if (rc === msg.SERVFAIL || rc === msg.NOTIMP || rc === msg.REFUSED) {
        keep(reply, server, tcp, 0);
        continue;
      }
      return this.answered(reply, guestId, server, tcp, result);
    }
    const fb = fallback as { reply: Uint8Array; server: Upstream; tcp: boolean } | null;
    if (fb && !cancel?.cancelled) return this.answered(fb.reply, guestId, fb.server, fb.tcp, result);
    return this.servfail(query, result, edns);
  }

  /** One exchange with a fresh random ID; rejects when nothing acceptable arrives in time. */
  private attempt(via: 'udp' | 'tcp', server: Upstream, query: Uint8Array, qEnd: number, timeoutMs: number, cancel: Cancel | undefined): Promise<Uint8Array> {
    const qid = this.random16() & 0xffff;
    const out = query.slice();
    msg.setId(out, qid);
    const op = msg.opcode(query);
    const accept: ReplyFilter = (r) =>
      r.length >= msg.HEADER_LEN &&
      msg.id(r) === qid &&
      msg.isResponse(r) &&
      msg.opcode(r) === op &&
      // Some servers omit the question in error replies.
      (msg.sameQuestion(r, out, qEnd) || (msg.qdcount(r) === 0 && msg.rcode(r) !== msg.NOERROR));
    const t = Math.max(1, Math.floor(timeoutMs));
    return via === 'udp'
      ? this.transport.udpQuery(server.host, server.port, out, t, accept, cancel)
      : this.transport.tcpQuery(server.host, server.port, out, t, accept, cancel);
  }

  private answered(reply: Uint8Array, guestId: number, server: Upstream, tcp: boolean, result: ForwardResult): ForwardResult {
    const r = reply.slice();
    msg.setId(r, guestId);
    result.reply = r;
    result.outcome = 'answered';
    result.server = server;
    result.tcp = tcp;
    return result;
  }

  private servfail(query: Uint8Array, result: ForwardResult, edns: boolean): ForwardResult {
    result.reply = msg.errorReply(query, msg.SERVFAIL, { ra: true, edns });
    result.outcome = 'servfail';
    return result;
  }
}

const fmt = (s: Upstream): string => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`);
const reason = (e: unknown): string => (e instanceof VmnetError ? e.code : e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e));

/** Formats an upstream as ADDR:PORT, bracketing IPv6 (for logs and messages). */
export const formatUpstream = fmt;
