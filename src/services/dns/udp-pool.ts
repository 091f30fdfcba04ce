/**
 * Theory of operation: the UDP sockets the DNS forwarder asks its upstream
 * servers from. Opening, connecting and closing a socket for every query
 * cost a quarter of the forwarder's CPU time at 13k queries/s, so each
 * upstream (address and port) gets a small pool of sockets that many
 * queries share, replaced often enough that their ports stay unpredictable.
 *
 * Spoofing resistance (RFC 5452): an off-path attacker has to guess the
 * source port and the 16-bit ID of a query in flight (§9.2), and answers are
 * accepted only from the address and port queried (§4.1).
 *  - Ports: each socket is `connect()`ed to its upstream, so the kernel gives
 *    it a random ephemeral port (Linux draws it at random) and drops
 *    datagrams from any other source address or port before they reach us;
 *    an ICMP port unreachable surfaces as ECONNREFUSED, so a dead loopback
 *    resolver fails in microseconds instead of timing out. A query goes to a
 *    socket drawn at random among the upstream's `size` slots. A socket is
 *    replaced by a fresh one (a new random port) once it has carried
 *    `maxUses` queries or lived `maxAgeMs` (§9.2's advice against reusing
 *    ports for long); the old one closes when its last query settles.
 *  - IDs: the forwarder draws a random ID per attempt; here a reply is routed
 *    to the query waiting on that socket under that ID, and the query's own
 *    filter then checks QR, OPCODE and the question (§4.1, forwarder.ts).
 *    Two queries in flight on one socket never share an ID: a query whose ID
 *    is taken on the drawn socket tries the upstream's other sockets, and if
 *    every one has it, gets a socket of its own (closed after it).
 *    Datagrams that match no waiting query, or that its filter refuses, are
 *    dropped and counted (`stray`).
 *
 * Bounds: at most `size` live sockets per upstream, plus retired ones that
 * still have queries in flight and one-off sockets (both bounded by the
 * caller's in-flight limit). An unref'd sweep every `maxAgeMs` retires
 * expired sockets, so an idle gateway does not keep old ports open and pools
 * of upstreams no longer asked (resolv.conf changed) go away. Every query
 * settles within its timeout (E_TIMEOUT), at once when its {@link Cancel}
 * fires (E_INTERRUPTED: its waiter and timer go, a late reply counts as
 * stray), and {@link UdpPool.close} fails those in flight (E_CLOSED) and
 * closes every socket.
 *
 * This is an I/O edge file (node:dgram); randomness and the clock are
 * injected.
 */

import * as dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { VmnetError } from '../../errors.js';
import type { Cancel, ReplyFilter } from './forwarder.js';

/** Options of {@link UdpPool}. */
export interface UdpPoolOptions {
  /** Uniform random 32-bit values (slot choice). */
  random32: () => number;
  /** Monotonic clock in ms (socket age). */
  now: () => number;
  /** Sockets per upstream (default 8). */
  size?: number | undefined;
  /** Queries a socket carries before it is replaced (default 100). */
  maxUses?: number | undefined;
  /** Longest a socket is used for new queries, ms (default 10,000). */
  maxAgeMs?: number | undefined;
  /** Called for every datagram dropped because no query took it. */
  onStray?: (() => void) | undefined;
}

/** Errors a connected UDP socket reports for an ICMP message about an earlier datagram. */
const ICMP_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** One query waiting on a socket. */
interface Waiter {
  accept: ReplyFilter;
  settle: (err: Error | null, reply?: Uint8Array) => void;
}

/** One pooled socket. */
interface Member {
  sock: dgram.Socket;
  /** Queries waiting on this socket, by the ID they were sent with. */
  waiting: Map<number, Waiter>;
  /** Queries sent before the connect completed. */
  queued: Uint8Array[] | null;
  uses: number;
  born: number;
  /** No new queries: it closes when the last one settles. */
  retired: boolean;
}

/** A pool of connected UDP sockets per upstream; see the module comment. */
export class UdpPool {
  /** Sockets opened and closed, stray datagrams, and picks that found the ID taken on a socket, so far. */
  readonly counters = { opened: 0, closed: 0, stray: 0, collisions: 0 };
  readonly #random32: () => number;
  readonly #now: () => number;
  readonly #size: number;
  readonly #maxUses: number;
  readonly #maxAgeMs: number;
  readonly #onStray: () => void;
  /** Slots per upstream key (`host|port`). */
  readonly #slots = new Map<string, (Member | null)[]>();
  readonly #all = new Set<Member>();
  #sweep: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  /** @param opts randomness, clock and sizes; see {@link UdpPoolOptions} */
  constructor(opts: UdpPoolOptions) {
    this.#random32 = opts.random32;
    this.#now = opts.now;
    this.#size = Math.max(1, opts.size ?? 8);
    this.#maxUses = Math.max(1, opts.maxUses ?? 100);
    this.#maxAgeMs = opts.maxAgeMs ?? 10_000;
    this.#onStray = opts.onStray ?? (() => {});
  }

  /** Sockets open now. */
  get open(): number {
    return this.#all.size;
  }

  /**
   * Sends `query` to host:port from one of the upstream's sockets.
   * @param query the message, its ID already the attempt's (bytes 0-1)
   * @param accept the attempt's reply filter; only datagrams from host:port
   *   carrying the query's ID reach it
   * @param cancel fails the query at once when it fires
   * @returns the first datagram `accept` takes
   * @throws VmnetError E_TIMEOUT after `timeoutMs`, E_CLOSED when the pool
   *   closes, E_INTERRUPTED when `cancel` fires; socket errors (e.g.
   *   ECONNREFUSED) as they come
   */
  query(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter, cancel?: Cancel): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new VmnetError('E_CLOSED', 'DNS forwarder closed'));
    if (cancel?.cancelled) return Promise.reject(new VmnetError('E_INTERRUPTED', 'DNS query cancelled'));
    const id = (query[0]! << 8) | query[1]!;
    const m = this.#pick(host, port, id);
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const settle = (err: Error | null, reply?: Uint8Array) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        cancel?.unbind(settle);
        m.waiting.delete(id);
        if (m.retired && m.waiting.size === 0) this.#close(m);
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => settle(new VmnetError('E_TIMEOUT', `no DNS reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      m.waiting.set(id, { accept, settle });
      cancel?.bind(settle);
      if (m.queued) m.queued.push(query);
      else this.#send(m, query, settle);
    });
  }

  /** Fails every query in flight (E_CLOSED) and closes every socket; later queries fail at once. */
  close(): void {
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
    for (const m of [...this.#all]) this.#fail(m, new VmnetError('E_CLOSED', 'DNS forwarder closed'));
    this.#slots.clear();
  }

  /** A socket of host:port's pool on which `id` is free (see the module comment). */
  #pick(host: string, port: number, id: number): Member {
    const key = `${host}|${port}`;
    let slots = this.#slots.get(key);
    if (!slots) {
      slots = new Array<Member | null>(this.#size).fill(null);
      this.#slots.set(key, slots);
    }
    const now = this.#now();
    const start = this.#random32() % this.#size;
    for (let i = 0; i < this.#size; i++) {
      const k = (start + i) % this.#size;
      let m = slots[k] ?? null;
      if (m !== null && (m.uses >= this.#maxUses || now - m.born >= this.#maxAgeMs)) {
        this.#retire(m);
        m = null;
      }
      if (m === null) {
        m = this.#open(host, port, now);
        slots[k] = m;
      }
      if (!m.waiting.has(id)) {
        m.uses++;
        return m;
      }
      this.counters.collisions++;
    }
    const once = this.#open(host, port, now);
    once.retired = true;
    once.uses++;
    return once;
  }

  #open(host: string, port: number, now: number): Member {
    const sock = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    const m: Member = { sock, waiting: new Map(), queued: [], uses: 0, born: now, retired: false };
    this.#all.add(m);
    this.counters.opened++;
    sock.unref();
    sock.on('error', (e) => this.#fail(m, e));
    sock.on('message', (msg) => {
      const w = msg.length >= 2 ? m.waiting.get((msg[0]! << 8) | msg[1]!) : undefined;
      const reply = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      if (w && w.accept(reply)) w.settle(null, reply);
      else {
        this.counters.stray++;
        this.#onStray();
      }
    });
    sock.connect(port, host, (err?: Error) => {
      if (err) return this.#fail(m, err);
      const q = m.queued ?? [];
      m.queued = null;
      for (const query of q) {
        const w = m.waiting.get((query[0]! << 8) | query[1]!);
        if (w) this.#send(m, query, w.settle);
      }
    });
    if (this.#sweep === null) {
      this.#sweep = setInterval(() => this.#expire(), Math.max(1, this.#maxAgeMs));
      this.#sweep.unref();
    }
    return m;
  }

  #send(m: Member, query: Uint8Array, settle: Waiter['settle']): void {
    try {
      m.sock.send(query, (e) => {
        // An ICMP error for any datagram of the socket is reported once, to
        // whichever call comes next: it concerns every query on the socket.
        if (e) (ICMP_ERRORS.has((e as NodeJS.ErrnoException).code ?? '') ? this.#fail(m, e) : settle(e));
      });
    } catch (e) {
      settle(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Takes `m` out of its slot; it closes now if idle, else when its last query settles. */
  #retire(m: Member): void {
    if (!m.retired) {
      m.retired = true;
      for (const slots of this.#slots.values()) {
        const k = slots.indexOf(m);
        if (k === -1) continue;
        slots[k] = null;
        break;
      }
    }
    if (m.waiting.size === 0) this.#close(m);
  }

  /** A socket error (ICMP unreachable, connect failure): every query on it fails, the socket goes. */
  #fail(m: Member, err: Error): void {
    this.#retire(m);
    for (const w of [...m.waiting.values()]) w.settle(err);
    this.#close(m);
  }

  #close(m: Member): void {
    if (!this.#all.delete(m)) return;
    this.counters.closed++;
    try {
      m.sock.close();
    } catch {
      // already closed
    }
    if (this.#all.size === 0 && this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  #expire(): void {
    const now = this.#now();
    for (const m of [...this.#all]) if (!m.retired && now - m.born >= this.#maxAgeMs) this.#retire(m);
    for (const [key, slots] of this.#slots) if (slots.every((s) => s === null)) this.#slots.delete(key);
  }
}
