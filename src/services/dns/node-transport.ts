/**
 * Theory of operation: the real {@link Transport} for the forwarder, on
 * node:dgram and node:net. This is the DNS service's only socket I/O.
 *
 * UDP (RFC 1035 §4.2.1): queries go out from a pool of connected sockets
 * per upstream (udp-pool.ts: random ports, replaced after some uses or
 * seconds, replies routed by source and ID, ICMP unreachable surfacing as
 * ECONNREFUSED). Datagrams no query takes are dropped and reported through
 * `onStray`.
 *
 * TCP (RFC 7766 §8): one connection per exchange, the query sent with a
 * two-byte length prefix, replies reassembled from the byte stream and
 * offered to `accept` until one is accepted.
 *
 * Every exchange settles within its timeout (VmnetError E_TIMEOUT), or at
 * once when its Cancel fires (E_INTERRUPTED), and releases its timer (and,
 * for TCP, its socket) whatever happens;
 * {@link NodeTransport.close} closes the UDP pool and the TCP connections in
 * flight (the gateway's shutdown must not wait on an upstream's timeout).
 */

import * as net from 'node:net';
import { VmnetError } from '../../errors.js';
import type { Cancel, ReplyFilter, Transport } from './forwarder.js';
import { bulkRandom32 } from './random.js';
import { UdpPool, type UdpPoolOptions } from './udp-pool.js';

/** Largest DNS message (the TCP length prefix is 16 bits). */
const MAX_MESSAGE = 65535;

/** Options of {@link NodeTransport}: the UDP pool's, all optional. */
export type NodeTransportOptions = Partial<UdpPoolOptions>;

/** The node:dgram / node:net {@link Transport}. */
export class NodeTransport implements Transport {
  readonly #pool: UdpPool;
  /** TCP exchanges in flight, each by the function that ends it. */
  readonly #tcp = new Set<(err: Error) => void>();
  #closed = false;

  /** @param opts the UDP pool's randomness (default {@link bulkRandom32}), clock, sizes and stray hook */
  constructor(opts: NodeTransportOptions = {}) {
    this.#pool = new UdpPool({ ...opts, random32: opts.random32 ?? bulkRandom32(), now: opts.now ?? (() => performance.now()) });
  }

  /**
   * Sends `query` over UDP from one of host:port's pooled sockets.
   * @returns the first datagram from host:port that `accept` takes
   * @throws VmnetError E_TIMEOUT after `timeoutMs`, E_CLOSED after close, E_INTERRUPTED when `cancel` fires;
   *   socket errors (e.g. ECONNREFUSED) as they come
   */
  udpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter, cancel?: Cancel): Promise<Uint8Array> {
    return this.#pool.query(host, port, query, timeoutMs, accept, cancel);
  }

  /** Closes the UDP sockets and the TCP connections; exchanges in flight fail with E_CLOSED, later ones at once. */
  close(): void {
    this.#closed = true;
    this.#pool.close();
    for (const end of [...this.#tcp]) end(new VmnetError('E_CLOSED', 'DNS forwarder closed'));
  }

  /**
   * Sends `query` over a fresh TCP connection with RFC 7766 §8 framing.
   * @returns the first framed message that `accept` takes
   * @throws VmnetError E_TIMEOUT after `timeoutMs`, E_CLOSED after close, E_INTERRUPTED
   *   when `cancel` fires (the connection is destroyed); socket errors as they
   *   come; an Error when the server closes before an accepted reply
   */
  tcpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter, cancel?: Cancel): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.#closed) {
        reject(new VmnetError('E_CLOSED', 'DNS forwarder closed'));
        return;
      }
      if (cancel?.cancelled) {
        reject(new VmnetError('E_INTERRUPTED', 'DNS query cancelled'));
        return;
      }
      if (query.length > MAX_MESSAGE) {
        reject(new VmnetError('E_USAGE', 'DNS message too long for TCP'));
        return;
      }
      const sock = net.connect({ host, port });
      let done = false;
      let buf: Buffer = Buffer.alloc(0);
      const finish = (err: Error | null, reply?: Uint8Array) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#tcp.delete(finish);
        cancel?.unbind(finish);
        sock.destroy();
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => finish(new VmnetError('E_TIMEOUT', `no DNS reply over TCP from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      this.#tcp.add(finish);
      cancel?.bind(finish);
      sock.on('error', (e) => finish(e));
      sock.on('close', () => finish(new Error(`TCP connection to ${host}:${port} closed before a reply`)));
      sock.on('connect', () => {
        const framed = Buffer.allocUnsafe(2 + query.length);
        framed.writeUInt16BE(query.length, 0);
        framed.set(query, 2);
        // No half-close: some servers drop a connection whose client sent FIN first.
        sock.write(framed);
      });
      sock.on('data', (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const m = new Uint8Array(buf.subarray(2, 2 + len));
          buf = buf.subarray(2 + len);
          if (accept(m)) {
            finish(null, m);
            return;
          }
        }
      });
    });
  }
}
