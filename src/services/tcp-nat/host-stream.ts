/**
 * Theory of operation: the host end of a relayed TCP connection, as the TCP
 * NAT sees it — a byte stream that can be written with backpressure, paused,
 * half-closed, reset. Production streams are node:net sockets (dialed for
 * guest connections, or accepted by a port forward); the DNS service's TCP
 * listener at 10.0.2.3:53 is an in-process stream (dns-stream.ts). Sockets
 * are opened with allowHalfOpen so each direction closes on its own, and a
 * reset is a real RST (socket.resetAndDestroy), so the far end sees what the
 * guest did; a dial still in flight has no far end yet and is just closed.
 *
 * Received bytes are lent: `data(chunk)` must take what it needs before it
 * returns. Sockets this module dials read through `net.Socket`'s `onread`,
 * into the region `readInto()` offers (the TCP send buffer's free tail, so
 * host bytes land where they are sent from, uncopied) or else into one buffer
 * shared by all of them (reads are delivered one at a time on the event
 * loop), so a busy download allocates nothing per read — measured:
 * with a fresh 64 KiB Buffer per read, garbage collection took a quarter of
 * the gateway's time in a host→guest iperf3 run at MTU 65520. Sockets
 * accepted by a port forward's `net.Server` cannot take `onread` in Node 20
 * and use `'data'` events.
 *
 * Memory: an idle connection's socket holds one SocketStream and, when
 * dialed, the `onread` buffer closure; methods and listeners are shared by
 * all sockets. What Node itself holds per socket is measured by
 * bench/socket-floor.ts.
 *
 * Dialing costs what the kernel calls need and little more: TCP_NODELAY is
 * given to the socket at construction (one setsockopt when the connect
 * completes, where setNoDelay() on the new socket made two), and the dial
 * timeout is one entry in a table shared by every dial, checked by one
 * timer armed for the earliest deadline (`pendingDials`), instead of a timer
 * made, armed and cleared per dial. An entry leaves the table when the dial
 * connects, fails, or is closed.
 */
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** What a host stream reports. */
export interface HostStreamEvents {
  /** The dial completed. */
  connected(): void;
  /** The destination refused (RST) or is unreachable: answer the guest's SYN with RST. */
  refused(): void;
  /** The dial failed silently (timeout): the guest's SYN goes unanswered. */
  failed(): void;
  /** Bytes from the host; lent, valid only during the call. */
  data(chunk: Uint8Array): void;
  /**
   * Where a dialed socket should read next (asked after every read): a region
   * to fill in place, e.g. the connection's send buffer, so the bytes are not
   * copied; null for the shared read buffer. `data` then gets a prefix of it.
   */
  readInto?(): Uint8Array | null;
  /** The host side closed its sending direction (FIN). */
  end(): void;
  /** The host side reset or broke the connection. */
  reset(): void;
  /** Writes queued after write() returned false have drained. */
  drain(): void;
}

export interface HostStream {
  /**
   * Queues bytes; false means "stop until drain" (the bytes are taken anyway).
   * The bytes are the caller's until `done` runs (always later, never inside
   * `write`): sockets write them in place, without a copy.
   */
  write(chunk: Uint8Array, done: () => void): boolean;
  /**
   * Half-close: FIN after the queued bytes. `done` runs once those bytes and
   * the FIN are handed to the kernel (or the stream broke: `reset` follows),
   * so the stream may then be destroyed without losing any of them.
   */
  end(done?: () => void): void;
  /** Abortive close: RST. */
  reset(): void;
  /** Quiet close after both directions ended. */
  destroy(): void;
  pause(): void;
  resume(): void;
}

const REFUSED = new Set(['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL', 'EACCES', 'EPERM']);

/** The most bytes one read of a dialed socket delivers. */
export const HOST_READ_MAX = 128 * 1024;
/** Read buffer shared by every dialed socket (see the file comment). */
const READ_BUFFER = Buffer.allocUnsafeSlow(HOST_READ_MAX);

/** The HostStream a socket belongs to (a property of the socket, so its listeners can be shared functions). */
const kStream = Symbol('vmnet host stream');
type OwnedSocket = Socket & { [kStream]: SocketStream };

/**
 * A node:net socket as a HostStream. Methods and socket listeners are shared
 * (prototype methods, module-level functions that find the stream through
 * the socket), not closures made per socket: an idle connection holds this
 * object and nothing else of ours besides the socket.
 */
class SocketStream implements HostStream {
  connected: boolean;
  /** No more events to report (an error was reported, or we reset/destroyed it). */
  done = false;

  constructor(
    readonly sock: Socket,
    readonly ev: HostStreamEvents,
    connected: boolean,
  ) {
    this.connected = connected;
  }

  write(chunk: Uint8Array, done: () => void): boolean {
    if (!this.sock.destroyed) return this.sock.write(chunk, () => done());
    queueMicrotask(done);
    return false;
  }

  end(finished?: () => void): void {
    if (this.sock.destroyed) {
      if (finished) queueMicrotask(finished);
      return;
    }
    this.sock.end(finished === undefined ? undefined : () => finished());
  }

  reset(): void {
    this.#finish();
    if (this.sock.destroyed) return;
    // A dial still in flight has no peer to reset: resetAndDestroy() would wait for 'connect'
    // to send its RST, keeping the socket (with the dial timer gone) until the kernel gives
    // up on the SYN, minutes later. Closed now, a late SYN-ACK gets the kernel's RST.
    if (this.sock.connecting) this.sock.destroy();
    else this.sock.resetAndDestroy();
  }

  destroy(): void {
    this.#finish();
    if (!this.sock.destroyed) this.sock.destroy();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  /** Nothing more to report: the dial's timeout goes too. */
  #finish(): void {
    this.done = true;
    this.settleDial();
  }

  /** The dial completed or failed: it leaves the timeout table. */
  settleDial(): void {
    pendingDials.delete(this.sock);
  }
}

function onData(this: OwnedSocket, b: Buffer): void {
  this[kStream].ev.data(b);
}

function onRead(this: OwnedSocket, n: number, buf: Uint8Array): boolean {
  this[kStream].ev.data(buf.subarray(0, n));
  return true;
}

function onEnd(this: OwnedSocket): void {
  const s = this[kStream];
  if (!s.done) s.ev.end();
}

function onDrain(this: OwnedSocket): void {
  this[kStream].ev.drain();
}

function onError(this: OwnedSocket, e: NodeJS.ErrnoException): void {
  const s = this[kStream];
  s.settleDial();
  if (s.done) return;
  s.done = true;
  if (!s.connected) {
    if (REFUSED.has(e.code ?? '')) s.ev.refused();
    else s.ev.failed();
  } else s.ev.reset();
}

function onConnect(this: OwnedSocket): void {
  const s = this[kStream];
  s.settleDial();
  s.connected = true;
  if (!s.done) s.ev.connected();
}

/** Dials not yet settled, with their deadlines (performance-clock ms): see the file comment. */
const pendingDials = new Map<Socket, number>();
let dialTimer: ReturnType<typeof setTimeout> | null = null;
let dialTimerAt = Infinity;

function armDialTimer(at: number): void {
  if (at >= dialTimerAt) return;
  if (dialTimer !== null) clearTimeout(dialTimer);
  dialTimerAt = at;
  dialTimer = setTimeout(expireDials, Math.max(0, Math.ceil(at - performance.now())));
  dialTimer.unref();
}

/** Times out the dials past their deadline (ETIMEDOUT: the `failed` event) and re-arms for the next. */
function expireDials(): void {
  dialTimer = null;
  dialTimerAt = Infinity;
  const now = performance.now();
  let next = Infinity;
  for (const [sock, at] of pendingDials) {
    if (at <= now) {
      pendingDials.delete(sock);
      if (sock.connecting) sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    } else if (at < next) next = at;
  }
  if (next !== Infinity) armDialTimer(next);
}

/** Dials whose timeout is pending (tests: every settled dial has left the table). */
export function pendingDialCount(): number {
  return pendingDials.size;
}

/**
 * Wraps a node:net socket. For an accepted (already connected) socket,
 * `connected` is not reported.
 * @param readsViaOnread the socket reads through `onread` (dialTcp), not `'data'` events
 */
export function adoptSocket(sock: Socket, ev: HostStreamEvents, alreadyConnected: boolean, readsViaOnread = false): HostStream {
  const s = new SocketStream(sock, ev, alreadyConnected);
  (sock as OwnedSocket)[kStream] = s;
  sock.setNoDelay(true); // a no-op for dialed sockets, made with noDelay
  if (!readsViaOnread) sock.on('data', onData);
  sock.on('end', onEnd);
  sock.on('drain', onDrain);
  sock.on('error', onError);
  if (!alreadyConnected) sock.once('connect', onConnect);
  return s;
}

/**
 * Dials host:port. A dial not answered within `timeoutMs` reports `failed`.
 */
export function dialTcp(host: string, port: number, timeoutMs: number, ev: HostStreamEvents): HostStream {
  // `buffer` is called without the socket as `this`: the one closure a dialed socket keeps.
  const onread: OnReadOpts = { buffer: () => ev.readInto?.() ?? READ_BUFFER, callback: onRead as OnReadOpts['callback'] };
  const sock = connect({ host, port, allowHalfOpen: true, noDelay: true, onread });
  const at = performance.now() + timeoutMs;
  pendingDials.set(sock, at);
  armDialTimer(at);
  return adoptSocket(sock, ev, false, true);
}
