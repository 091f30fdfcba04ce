/**
 * Theory of operation: the HTTP side of the gateway's cloud-init seed
 * service. A guest's TCP connection to the DNS address, port 80, is
 * terminated by the gateway's TCP NAT as any other (so the NAT's per-guest
 * connection cap and TCP buffer budget apply), and its host end is an
 * in-process stream (tcp-nat/duplex-stream.ts) handed to Node's own HTTP/1.1
 * server as a connection (`server.emit('connection', duplex)`): no listening
 * socket, no host port, no HTTP parser of ours. seeds.ts decides what each
 * request gets.
 *
 * Bounds, beyond the NAT's:
 *  - connections: at most `perGuest` open per guest (its link) and `total`
 *    in all; more are refused (RST, counted);
 *  - request head: `maxHeaderBytes` (8 KiB; Node answers 431 and closes);
 *  - methods: GET and HEAD (405 otherwise); no request body (a
 *    Content-Length above 0 or a Transfer-Encoding gets 400): every answer
 *    that refuses closes the connection;
 *  - requests per connection: `requestsPerConnection`, the last answered
 *    with `Connection: close`;
 *  - time: no byte either way for `idleMs`, or open for `lifetimeMs`: reset.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HostStream, HostStreamEvents } from '../tcp-nat/host-stream.js';
import { duplexStream } from '../tcp-nat/duplex-stream.js';
import type { SeedRegistry } from './seeds.js';

export interface SeedHttpLimits {
  perGuest: number;
  total: number;
  maxHeaderBytes: number;
  requestsPerConnection: number;
  idleMs: number;
  lifetimeMs: number;
}

export const DEFAULT_SEED_HTTP_LIMITS: SeedHttpLimits = { perGuest: 8, total: 128, maxHeaderBytes: 8192, requestsPerConnection: 32, idleMs: 10_000, lifetimeMs: 60_000 };

/** Who opened a connection, as the gateway knows it when the SYN came. */
export interface SeedRequester {
  /** The guest's key (its link), for the per-guest bound. */
  guest: number;
  /** Whether this guest holds `mac` (its link holds it and it sends with it), asked at each request. */
  owns(mac: string): boolean;
}

interface Conn {
  requester: SeedRequester;
  requests: number;
}

export class SeedHttp {
  readonly counters = { connections: 0, refusedConnections: 0, badRequests: 0 };
  readonly #conns = new Map<Duplex, Conn>();
  readonly #perGuest = new Map<number, number>();
  readonly #limits: SeedHttpLimits;
  readonly #server: Server;

  constructor(
    private readonly registry: SeedRegistry,
    limits: Partial<SeedHttpLimits> = {},
  ) {
    this.#limits = { ...DEFAULT_SEED_HTTP_LIMITS, ...limits };
    this.#server = createServer({ maxHeaderSize: this.#limits.maxHeaderBytes }, (req, res) => this.#handle(req, res));
    // A pipelined request past the bound gets Node's 503 instead of an answer.
    this.#server.maxRequestsPerSocket = this.#limits.requestsPerConnection;
    this.#server.on('clientError', (_err, socket) => {
      this.counters.badRequests++;
      socket.destroy();
    });
  }

  /** Open connections. */
  get size(): number {
    return this.#conns.size;
  }

  /**
   * The in-process host end of a guest's connection to the seed address.
   * @param ev the TCP NAT's events for the flow
   * @param requester the guest it comes from
   */
  stream(ev: HostStreamEvents, requester: SeedRequester): HostStream {
    const n = this.#perGuest.get(requester.guest) ?? 0;
    if (n >= this.#limits.perGuest || this.#conns.size >= this.#limits.total) {
      this.counters.refusedConnections++;
      return refusedStream(ev);
    }
    const { host, socket } = duplexStream(ev, { idleMs: this.#limits.idleMs, lifetimeMs: this.#limits.lifetimeMs });
    this.counters.connections++;
    this.#conns.set(socket, { requester, requests: 0 });
    this.#perGuest.set(requester.guest, n + 1);
    socket.once('close', () => {
      this.#conns.delete(socket);
      const left = (this.#perGuest.get(requester.guest) ?? 1) - 1;
      if (left > 0) this.#perGuest.set(requester.guest, left);
      else this.#perGuest.delete(requester.guest);
    });
    this.#server.emit('connection', socket);
    return host;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.#conns.get(req.socket);
    if (conn === undefined) {
      req.socket.destroy();
      return;
    }
    conn.requests++;
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' };
    if (conn.requests >= this.#limits.requestsPerConnection) headers.connection = 'close';
    const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (hasBody) {
      this.counters.badRequests++;
      res.writeHead(400, { ...headers, connection: 'close' }).end();
      return;
    }
    const a = this.registry.answer(req.method ?? '', req.url ?? '', (mac) => conn.requester.owns(mac));
    if (a.status === 405) headers.allow = 'GET, HEAD';
    if (a.status !== 200) headers.connection = 'close';
    const body = a.body ?? new Uint8Array(0);
    res.writeHead(a.status, { ...headers, 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/** A host end that refuses the connection (the guest's SYN gets RST). */
function refusedStream(ev: HostStreamEvents): HostStream {
  queueMicrotask(() => ev.refused());
  const nothing = () => undefined;
  return { write: (_c, done) => (queueMicrotask(done), true), end: (done) => done && queueMicrotask(done), reset: nothing, destroy: nothing, pause: nothing, resume: nothing };
}
