/**
 * Theory of operation: a guest TCP connection terminated in process and
 * handed to Node code that speaks streams (node:http's server takes any
 * Duplex as a connection: `server.emit('connection', socket)`). The TCP NAT
 * sees a HostStream (host-stream.ts); the service sees a Duplex. Nothing
 * leaves the process.
 *
 * Guest → service. `write(chunk, done)` lends bytes that are views of the
 * connection's receive buffer until `done`; they are copied into the Duplex's
 * readable side (a service may keep what it reads, as node:http keeps body
 * slices) and `done` runs in a microtask, never inside `write`. The readable
 * side holds at most its high-water mark (16 KiB) plus one chunk: when push()
 * says it is full, `write` returns false and the NAT stops handing over bytes
 * (they stay in the receive buffer and close the guest's window) until the
 * service reads again (`_read` → `drain`). The guest's FIN ends the readable
 * side.
 *
 * Service → guest. Each `_write` is handed to the NAT in slices of at most
 * SLICE bytes (`data`, lent for the call); when the NAT pauses the stream
 * (its send buffer is full), the rest of the chunk and the write's callback
 * wait for `resume`, so the service's own writes see backpressure (a
 * response larger than the send buffer is streamed as the guest
 * acknowledges). `end()` of the Duplex (`_final`, after every write) is our
 * FIN.
 *
 * Teardown. A guest RST or the NAT letting go (`reset`, `destroy`) destroys
 * the Duplex without a word back. The service destroying the Duplex before
 * its FIN went out (an error, a timeout) resets the guest's connection; after
 * the FIN it is a quiet close (the NAT finishes TCP's close on its own, and
 * guest bytes that still come are taken and dropped).
 *
 * Bounds of time: a connection with no byte either way for `idleMs`, or open
 * longer than `lifetimeMs`, is destroyed and the guest's connection reset
 * (also after our FIN, while the guest has not sent its own): a guest cannot
 * keep a service connection, or its flow in the NAT, by sending nothing or a
 * byte a minute.
 */
import { Duplex } from 'node:stream';
import type { HostStream, HostStreamEvents } from './host-stream.js';

/** Most bytes handed to the NAT in one `data` call (it takes them or copies them). */
export const SLICE = 64 * 1024;

export interface DuplexStreamOptions {
  /** Destroy the connection after this long without a byte either way (ms). */
  idleMs: number;
  /** Destroy it after this long in all (ms). */
  lifetimeMs: number;
}

/** A held service write: the rest of its chunk and its callback, until the NAT resumes us. */
interface HeldWrite {
  chunk: Uint8Array;
  pos: number;
  cb: (err?: Error | null) => void;
}

/**
 * Makes the pair: the HostStream the TCP NAT drives and the Duplex the service reads and writes.
 * @param ev the TCP NAT's events for this flow
 * @param opts idle and lifetime bounds
 */
export function duplexStream(ev: HostStreamEvents, opts: DuplexStreamOptions): { host: HostStream; socket: Duplex } {
  /** The NAT let go, or the Duplex was destroyed: nothing more is reported either way. */
  let closed = false;
  let paused = false;
  let wantDrain = false;
  /** Our FIN was reported (the service ended its side). */
  let finSent = false;
  /** The guest's FIN ended the readable side. */
  let guestEnded = false;
  let held: HeldWrite | null = null;
  let lastActivity = Date.now();

  /** Hands `w`'s chunk to the NAT from its position until done or paused; true when all of it went. */
  const deliver = (w: HeldWrite): boolean => {
    while (!closed && !paused && w.pos < w.chunk.length) {
      const end = Math.min(w.chunk.length, w.pos + SLICE);
      const slice = w.chunk.subarray(w.pos, end);
      w.pos = end;
      lastActivity = Date.now();
      ev.data(slice); // may pause or reset us from inside
    }
    return closed || w.pos >= w.chunk.length;
  };

  const socket = new Duplex({
    allowHalfOpen: true,
    read() {
      if (!wantDrain || closed) return;
      wantDrain = false;
      ev.drain();
    },
    write(chunk: Buffer, _enc, cb) {
      const w: HeldWrite = { chunk, pos: 0, cb };
      if (deliver(w)) cb();
      else held = w;
    },
    final(cb) {
      if (!closed) {
        finSent = true;
        ev.end();
      }
      cb();
    },
    destroy(err, cb) {
      clearTimeout(idle);
      clearTimeout(lifetime);
      const w = held;
      held = null;
      if (!closed) {
        closed = true;
        if (!finSent) ev.reset(); // the service gave up mid-way: the guest sees a reset, not a clean end
      }
      w?.cb(err ?? null);
      cb(err);
    },
  });
  // A service that does not listen for errors must not crash the process.
  socket.on('error', () => undefined);

  /** A time bound ran out: the guest's connection is reset unless both sides had ended (not only ours). */
  const expire = (): void => {
    if (!closed && !guestEnded) {
      closed = true;
      ev.reset();
    }
    socket.destroy();
  };
  const lifetime = setTimeout(expire, opts.lifetimeMs);
  lifetime.unref();
  const checkIdle = (): void => {
    const left = lastActivity + opts.idleMs - Date.now();
    if (left <= 0) expire();
    else idle = setTimeout(checkIdle, left).unref();
  };
  let idle = setTimeout(checkIdle, opts.idleMs).unref();

  queueMicrotask(() => {
    if (!closed) ev.connected();
  });

  const host: HostStream = {
    write(chunk, done) {
      queueMicrotask(done); // copied below (or dropped): never inside write()
      if (closed || guestEnded || chunk.length === 0) return true;
      lastActivity = Date.now();
      if (socket.push(Buffer.from(chunk))) return true;
      wantDrain = true;
      return false;
    },
    end(finished) {
      if (finished) queueMicrotask(finished);
      if (closed || guestEnded) return;
      guestEnded = true;
      socket.push(null);
    },
    reset() {
      if (closed) return;
      closed = true;
      socket.destroy();
    },
    destroy() {
      if (closed) return;
      closed = true;
      socket.destroy();
    },
    pause() {
      paused = true;
    },
    resume() {
      if (!paused) return;
      paused = false;
      const w = held;
      if (w === null || !deliver(w)) return;
      held = null;
      w.cb();
    },
  };
  return { host, socket };
}
