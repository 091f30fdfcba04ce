/**
 * Theory of operation: a QEMU stream connection as a frame port.
 *
 * QEMU reaches the gateway over a byte stream: `-netdev stream,server=off,
 * addr.type=unix,addr.path=SOCK` (QEMU ≥ 7.2, net/stream.c), or the older
 * `-netdev socket,connect=127.0.0.1:PORT` / `fd=N` (net/socket.c). Both use
 * the same framing, a 4-byte big-endian length before each Ethernet frame
 * (see stream-framer.ts). {@link StreamPort} is the I/O edge around the
 * sans-IO {@link StreamFramer}: it owns one `net.Socket` and nothing else.
 *
 * Receive. Ports read with `net.Socket`'s `onread` option into one
 * preallocated buffer per port (from the `pool` option when given); the
 * framer caches its DataView, so receiving allocates nothing per frame or per
 * read. Accepted connections get there through `takeOver` (Node 20's
 * `net.Server` has no `onread`); a socket handed in directly uses `'data'`
 * events (one Buffer + one DataView per read, still nothing per frame).
 * Frames reach {@link StreamPort.onFrame} synchronously and are lent, valid
 * only during the call.
 *
 * Send. Two paths, both keep stream order:
 * - {@link StreamPort.sendFrame} copies prefix + frame into a staging chunk
 *   (64 KiB, preallocated and recycled) and returns; the caller may reuse its
 *   buffer at once. All frames sent during one turn of the event loop go out
 *   in a single `socket.write` from a `setImmediate` (or sooner, when a chunk
 *   fills): the check phase runs right after the poll phase has run every I/O
 *   callback that was ready, so a frame with nothing else pending leaves as
 *   soon as its callback returns, and the frames of all the callbacks of one
 *   poll (a DNS answer from each of many upstream sockets, a connect
 *   completing beside another socket's EOF, several host sockets' reads)
 *   share one write. A microtask flush wrote once per callback instead: in a
 *   DNS run at 10,900 queries/s that was one write per answer and 41% of the
 *   gateway's busy time. This is the default and suits the control plane and
 *   small frames.
 * - {@link StreamPort.reserveFrame} … {@link StreamPort.commitFrame} build a
 *   frame in place in the staging chunk (the gateway's TCP segments), which
 *   saves sendFrame's copy.
 *
 * Backpressure. {@link StreamPort.isCongested} turns true when the socket's
 * queued bytes reach `highWaterMark` (default 256 KiB); the port emits
 * `'drain'` once they fall below it again. Sends are still accepted while
 * congested; upper layers that can wait (the TCP NAT) hold new data back
 * until `'drain'`. What cannot wait (ICMP and UDP replies, ARP, DHCP, TCP
 * ACKs and retransmissions) is bounded instead: the bytes queued toward the
 * peer (Node's write queue plus the staging chunk, {@link StreamPort.queuedBytes})
 * never exceed `maxQueued` (default {@link DEFAULT_MAX_QUEUED}); a frame that
 * would pass it is dropped and counted in `tx.overflow`, as a switch drops
 * at a full egress queue. So a peer that stops reading (a hung guest, a
 * hostile client) costs at most `maxQueued` bytes, however much it makes the
 * gateway answer. In the other direction {@link StreamPort.pauseReading}
 * stops reading from QEMU.
 *
 * Close. The port closes once, with a reason: `'peer-closed'` (EOF at a frame
 * boundary), `'mid-frame'` (EOF inside a prefix or a frame, counted in
 * `rx.truncatedAtClose`), `'oversize'` (a length prefix above QEMU's own
 * limit of 69,632 bytes, which no honest peer sends: the stream cannot be
 * trusted to be in sync, so QEMU and passt drop the connection too; an
 * honest frame longer than `maxFrame` is skipped and counted in
 * `rx.tooLong`, see stream-framer.ts), `'error'` (socket error, or a frame
 * handler that threw), or `'local'`
 * ({@link StreamPort.close}). A failure closes that port only; listeners and
 * other ports carry on.
 *
 * Listening. {@link listenStream} serves unix sockets (created 0600; a stale
 * socket file is removed only after a connect attempt is refused) or TCP on a
 * loopback address; {@link connectStream} dials; {@link portFromFd} adopts an
 * inherited descriptor.
 */

import { EventEmitter } from 'node:events';
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { VmnetError } from '../errors.js';
import { copyBytes, PREFIX_LEN, QEMU_MAX_FRAME, StreamFramer } from './stream-framer.js';
import type { BufferPool, FrameHandler, FramerCounters } from './stream-framer.js';

/** Why a {@link StreamPort} closed (see Theory of operation). */
export type CloseReason = 'peer-closed' | 'mid-frame' | 'oversize' | 'error' | 'local';

/** Events of a {@link StreamPort}. */
export interface StreamPortEvents {
  /** Emitted once, on a later tick than the cause. `error` is set for `'error'`. */
  close: [reason: CloseReason, error: Error | undefined];
  /** The port was congested and its queue has fallen below `highWaterMark`. */
  drain: [];
}

/** Options shared by every way of making a {@link StreamPort}. */
export interface StreamPortOptions {
  /** Largest frame accepted or sent, excluding the prefix. Default {@link QEMU_MAX_FRAME}. */
  maxFrame?: number;
  /** Queued bytes at which the port reports congestion. Default 256 KiB. */
  highWaterMark?: number;
  /**
   * Most bytes queued toward the peer; frames beyond are dropped and counted
   * in `tx.overflow`. Default {@link DEFAULT_MAX_QUEUED}; never less than the
   * high-water mark plus one largest frame.
   */
  maxQueued?: number;
  /** Frame handler; may also be set later through {@link StreamPort.onFrame}. */
  onFrame?: FrameHandler;
  /**
   * Where the port's long-lived buffers come from and go back to: the
   * reassembly buffer and the staging chunks (default: plain allocations).
   * The gateway passes the checksum kernel's memory, so frames are verified
   * and built where their checksums are summed in place.
   */
  pool?: BufferPool;
}

/** Transmit totals of one port. Plain numbers, updated in place. */
export interface TxCounters {
  /** Frames accepted for sending. */
  frames: number;
  /** Frame bytes accepted (excluding prefixes). */
  bytes: number;
  /** Frames dropped: port closed, or longer than `maxFrame`. */
  dropped: number;
  /** Frames dropped because `maxQueued` bytes were already queued (the peer is not reading). */
  overflow: number;
}

/**
 * Makes the socket for a port that reads through `onread` (see
 * {@link StreamPort}'s constructor). Must return a new, not yet reading socket
 * constructed with the given `onread`.
 */
export type SocketFactory = (onread: net.OnReadOpts) => net.Socket;


const TX_CHUNK = 64 * 1024;
/** A staging chunk holds at least this many largest frames (one 64 KiB frame per chunk meant one allocation per frame). */
const CHUNK_FRAMES = 4;
const RX_BUFFER = 128 * 1024;
const DEFAULT_HIGH_WATER_MARK = 256 * 1024;
/** Default bound of the bytes queued toward one peer (see Backpressure). */
export const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;
/** The high-water mark holds at least this many largest frames (a 64 KiB-frame link needs more than 256 KiB in the pipe). */
const HWM_FRAMES = 4;
const LOCAL_CLOSE_GRACE_MS = 1000;

interface TxChunk {
  readonly buf: Uint8Array;
  readonly view: DataView;
  /** Write callback, made once per chunk: returns the chunk to the pool. */
  readonly done: (err?: Error | null) => void;
}

const noFrame: FrameHandler = () => {};

/**
 * One QEMU stream connection as a port that sends and receives whole frames.
 * Make it with {@link listenStream}, {@link connectStream} or
 * {@link portFromFd}, or wrap a connected socket directly.
 */
export class StreamPort extends EventEmitter<StreamPortEvents> {
  /**
   * Called synchronously for each received frame; bytes are lent until it
   * returns (see {@link FrameHandler}). A handler that throws closes the port
   * with reason `'error'`. Defaults to dropping frames.
   */
  onFrame: FrameHandler;
  /** Receive totals (the framer's counters object). */
  readonly rx: FramerCounters;
  /** Transmit totals. */
  readonly tx: TxCounters = { frames: 0, bytes: 0, dropped: 0, overflow: 0 };
  /** Largest frame accepted or sent, excluding the prefix. */
  readonly maxFrame: number;
  /** The underlying socket, for addresses and diagnostics. Do not read or write it. */
  readonly socket: net.Socket;

  readonly #framer: StreamFramer;
  readonly #hwm: number;
  readonly #maxQueued: number;
  readonly #chunkSize: number;
  /** Idle staging chunks kept for reuse: enough to cover the high-water mark, so a busy port does not allocate. */
  readonly #maxFree: number;
  #closeReason: CloseReason | null = null;
  #congested = false;
  #stage: TxChunk | null = null;
  #stageUsed = 0;
  #flushQueued = false;
  readonly #free: TxChunk[] = [];
  readonly #pool: BufferPool | undefined;

  /**
   * @param source a connected (or connecting) socket, read through `'data'`
   *   events; or a {@link SocketFactory}, called once with an `onread` option
   *   that reads into a buffer preallocated here (allocation-free receive)
   * @param options see {@link StreamPortOptions}
   */
  constructor(source: net.Socket | SocketFactory, options: StreamPortOptions = {}) {
    super();
    this.maxFrame = options.maxFrame ?? QEMU_MAX_FRAME;
    this.#hwm = options.highWaterMark ?? Math.max(DEFAULT_HIGH_WATER_MARK, HWM_FRAMES * (this.maxFrame + PREFIX_LEN));
    this.#chunkSize = Math.max(TX_CHUNK, CHUNK_FRAMES * (this.maxFrame + PREFIX_LEN));
    this.#maxQueued = Math.max(options.maxQueued ?? DEFAULT_MAX_QUEUED, this.#hwm + this.maxFrame + PREFIX_LEN);
    this.#maxFree = Math.ceil(this.#hwm / this.#chunkSize) + 2;
    this.onFrame = options.onFrame ?? noFrame;
    this.#pool = options.pool;
    this.#framer = new StreamFramer(this.maxFrame, (buf, view, off, len) => this.onFrame(buf, view, off, len), this.#pool);
    this.rx = this.#framer.counters;
    let socket: net.Socket;
    let rxBuffer: Uint8Array | null = null;
    if (typeof source === 'function') {
      const buffer = this.#pool?.take(RX_BUFFER) ?? Buffer.allocUnsafe(RX_BUFFER);
      rxBuffer = buffer;
      socket = source({
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.#ingest(buf, 0, n);
          return true;
        },
      });
    } else {
      socket = source;
      socket.on('data', (chunk: Buffer) => this.#ingest(chunk, 0, chunk.length));
    }
    this.socket = socket;
    const pool = this.#pool;
    if (rxBuffer !== null && pool !== undefined) {
      // Reads may land in it until the handle closes: only then back to the pool.
      const rx = rxBuffer;
      socket.once('close', () => pool.give(rx));
    }
    socket.setNoDelay(true); // TCP only; we batch ourselves. A no-op on unix sockets.
    socket.on('end', () => this.#finish(this.#framer.end() ? 'mid-frame' : 'peer-closed'));
    socket.on('error', (err: Error) => this.#finish('error', err));
    socket.on('close', () => this.#finish('peer-closed'));
    socket.on('drain', this.#checkDrain);
  }

  /** True once the port has closed (or started closing locally). */
  get closed(): boolean {
    return this.#closeReason !== null;
  }

  /** Why the port closed, or null while open. */
  get closeReason(): CloseReason | null {
    return this.#closeReason;
  }

  /**
   * Sends one frame by copying it (with its prefix) into the port's staging
   * buffer. The caller keeps ownership of `buf` and may reuse it at once.
   * @param buf holds the frame
   * @param off frame start in `buf`
   * @param len frame length (excluding the prefix); at most `maxFrame`
   * @returns false when the frame was dropped (port closed, frame too long)
   *   or the port is now congested (the frame is queued; wait for `'drain'`);
   *   true otherwise
   */
  sendFrame(buf: Uint8Array, off: number, len: number): boolean {
    if (this.#closeReason !== null || len > this.maxFrame) {
      this.tx.dropped++;
      return false;
    }
    if (!this.#fits(len)) {
      this.tx.overflow++;
      return false;
    }
    const st = this.#room(len);
    copyBytes(st.buf, this.#stageUsed + PREFIX_LEN, buf, off, len);
    return this.commitFrame(len);
  }

  /**
   * Room for one frame of up to `maxLen` bytes in the staging chunk, to be
   * built in place (saving sendFrame's copy): the frame goes at
   * `frameBuffer()[frameOffset() ...]` (same bytes through `frameView()`), then
   * {@link commitFrame} sends it. Nothing else may be sent in between.
   * @returns false when the port is closed, `maxLen` exceeds `maxFrame`, or
   *   the output queue is at its bound (use sendFrame, which counts the drop)
   */
  reserveFrame(maxLen: number): boolean {
    if (this.#closeReason !== null || maxLen > this.maxFrame || !this.#fits(maxLen)) return false;
    this.#room(maxLen);
    return true;
  }

  /** The buffer a reserved frame is built in. */
  frameBuffer(): Uint8Array {
    return this.#stage!.buf;
  }

  /** The same bytes as a DataView. */
  frameView(): DataView {
    return this.#stage!.view;
  }

  /** Where the reserved frame starts in frameBuffer(). */
  frameOffset(): number {
    return this.#stageUsed + PREFIX_LEN;
  }

  /**
   * Sends the frame built at frameOffset() (after reserveFrame, or by sendFrame).
   * @param len its length, at most what was reserved
   * @returns as {@link sendFrame}
   */
  commitFrame(len: number): boolean {
    const at = this.#stageUsed;
    this.#stage!.view.setUint32(at, len);
    this.#stageUsed = at + PREFIX_LEN + len;
    this.tx.frames++;
    this.tx.bytes += len;
    return !this.#congested;
  }

  /** Bytes queued toward the peer and not yet taken by the kernel: Node's write queue plus the staging chunk. */
  get queuedBytes(): number {
    return this.socket.writableLength + this.#stageUsed;
  }

  /** Whether a frame of `len` bytes stays within maxQueued. */
  #fits(len: number): boolean {
    return this.socket.writableLength + this.#stageUsed + PREFIX_LEN + len <= this.#maxQueued;
  }

  /** Makes the staging chunk hold room for a frame of `len` bytes. */
  #room(len: number): TxChunk {
    let st = this.#stage;
    if (st !== null && this.#stageUsed + PREFIX_LEN + len > st.buf.length) {
      this.#flush();
      st = null;
    }
    if (st === null) {
      st = this.#takeChunk();
      this.#stage = st;
      this.#stageUsed = 0;
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        setImmediate(this.#flushTask);
      }
    }
    return st;
  }

  /** True while queued output is at or above `highWaterMark`; `'drain'` follows. */
  isCongested(): boolean {
    return this.#congested;
  }

  /** Stops reading frames from the peer (its sends then block in the kernel). */
  pauseReading(): void {
    if (this.#closeReason === null) this.socket.pause();
  }

  /** Resumes reading after {@link pauseReading}. */
  resumeReading(): void {
    if (this.#closeReason === null) this.socket.resume();
  }

  /**
   * Closes the port with reason `'local'`: stops delivering frames, writes
   * out what was already sent, half-closes, and releases the socket once the
   * output is flushed (at most about a second later). Idempotent.
   */
  close(): void {
    if (this.#closeReason !== null) return;
    this.#flush();
    this.#finish('local');
  }

  #takeChunk(): TxChunk {
    const reuse = this.#free.pop();
    if (reuse !== undefined) return reuse;
    const buf = this.#pool?.take(this.#chunkSize) ?? Buffer.allocUnsafeSlow(this.#chunkSize);
    const chunk: TxChunk = {
      buf,
      view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
      done: () => {
        this.#recycle(chunk);
        this.#checkDrain();
      },
    };
    return chunk;
  }

  /** Keeps an idle chunk for reuse, or lets it go (back to the pool) beyond what the port keeps or once closed. */
  #recycle(chunk: TxChunk): void {
    if (this.#closeReason === null && this.#free.length < this.#maxFree) this.#free.push(chunk);
    else this.#pool?.give(chunk.buf);
  }

  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  #flush(): void {
    const st = this.#stage;
    if (st === null) return;
    const used = this.#stageUsed;
    this.#stage = null;
    this.#stageUsed = 0;
    if (used === 0 || this.socket.destroyed || this.socket.writableEnded) {
      this.#recycle(st);
      return;
    }
    this.socket.write(st.buf.subarray(0, used), st.done);
    this.#noteQueued();
  }

  #noteQueued(): void {
    if (!this.#congested && this.socket.writableLength >= this.#hwm) this.#congested = true;
  }

  readonly #checkDrain = (): void => {
    if (this.#congested && this.socket.writableLength < this.#hwm) {
      this.#congested = false;
      if (this.#closeReason === null) this.emit('drain');
    }
  };

  #ingest(buf: Uint8Array, start: number, end: number): void {
    if (this.#closeReason !== null) return;
    let status;
    try {
      status = this.#framer.push(buf, start, end);
    } catch (e) {
      this.#finish('error', e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (status === 'oversize') this.#finish('oversize');
  }

  #finish(reason: CloseReason, error?: Error): void {
    if (this.#closeReason !== null) return;
    this.#closeReason = reason;
    this.#framer.close();
    const st = this.#stage;
    this.#stage = null;
    this.#stageUsed = 0;
    if (st !== null && reason !== 'local') this.#recycle(st); // 'local' flushed it first: the socket owns it
    for (const c of this.#free.splice(0)) this.#recycle(c);
    const socket = this.socket;
    if (reason === 'local') {
      // Let queued output reach the peer, then let go of the descriptor.
      const timer = setTimeout(() => socket.destroy(), LOCAL_CLOSE_GRACE_MS);
      timer.unref();
      socket.end(() => {
        clearTimeout(timer);
        socket.destroy();
      });
    } else {
      socket.destroy();
    }
    process.nextTick(() => this.emit('close', reason, error));
  }
}

/**
 * Lets an accepted connection read through `onread` like the sockets this
 * module makes itself (Node 20's `net.Server` has no `onread` option): the
 * accepted socket, still paused (`pauseOnConnect`), hands its handle to a
 * new socket made with `onread`, then is destroyed without it, which also
 * settles the server's connection count. Measured: with `'data'` events,
 * one fresh 64 KiB Buffer per read kept the garbage collector at ~15% of the
 * gateway's time in a guest→host run at MTU 65520. This relies on
 * `Socket#_handle`, which Node does not document; where it is missing the
 * accepted socket is used as it is.
 */
function takeOver(socket: net.Socket): net.Socket | SocketFactory {
  const s = socket as net.Socket & { _handle?: { useUserBuffer?: unknown } | null };
  const handle = s._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') {
    socket.resume();
    return socket;
  }
  return (onread) => {
    s._handle = null;
    socket.destroy();
    const taken = new net.Socket({ handle, onread, readable: true, writable: true } as net.SocketConstructorOpts);
    taken.resume();
    return taken;
  };
}

/** Where a {@link StreamListener} listens. */
export type StreamAddress = { path: string } | { host: string; port: number };

/** Options of {@link listenStream} and {@link connectStream}. */
export interface StreamEndpoint {
  /** Unix socket path (exclusive with `port`). */
  path?: string;
  /** TCP host; default `127.0.0.1`. */
  host?: string;
  /** TCP port; 0 picks a free one (listen only). */
  port?: number;
}

/** A listening stream endpoint from {@link listenStream}. */
export interface StreamListener {
  /** The bound address (the real port when 0 was asked for). */
  address(): StreamAddress;
  /** Ports accepted and not yet closed. */
  readonly ports: ReadonlySet<StreamPort>;
  /**
   * Stops listening, closes every open port (reason `'local'`) and, for unix
   * sockets, removes the socket file. Idempotent.
   */
  close(): Promise<void>;
}

function endpointOf(opts: StreamEndpoint): StreamAddress {
  if (opts.path !== undefined) {
    if (opts.port !== undefined || opts.host !== undefined) {
      throw new VmnetError('E_USAGE', 'give either a unix socket path or a TCP host/port, not both');
    }
    if (opts.path === '') throw new VmnetError('E_USAGE', 'empty unix socket path');
    return { path: opts.path };
  }
  const port = opts.port;
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new VmnetError('E_USAGE', `a unix socket path or a TCP port 0..65535 is required, got ${String(port)}`);
  }
  return { host: opts.host ?? '127.0.0.1', port };
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/**
 * Resolves true if something listens on the unix socket `path` (it accepts,
 * or does not answer within 1 s); false when refused or absent.
 */
export function probeUnix(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true); // a listener too busy to accept is still a listener
    }, 1000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      s.destroy();
      const code = errno(err);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
      else if (code === 'EAGAIN') resolve(true);
      else reject(err);
    });
  });
}

/**
 * Removes a stale unix socket file left by a process that died, but only if
 * nothing is listening on it.
 * @throws VmnetError E_PORT_IN_USE when a listener answers, or when `path` is
 *   not a socket (it is never removed then)
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (errno(e) === 'ENOENT') return;
    throw new VmnetError('E_NO_FILE', `cannot inspect ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!st.isSocket()) throw new VmnetError('E_PORT_IN_USE', `${path} exists and is not a socket; not removing it`);
  let live: boolean;
  try {
    live = await probeUnix(path);
  } catch (e) {
    throw new VmnetError('E_PORT_IN_USE', `cannot tell whether ${path} is in use: ${(e as Error).message}`, { cause: e });
  }
  if (live) throw new VmnetError('E_PORT_IN_USE', `${path} is in use by a running listener`);
  try {
    await unlink(path);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw new VmnetError('E_PORT_IN_USE', `cannot remove stale socket ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Listens for QEMU stream connections and makes a {@link StreamPort} for each.
 *
 * A unix socket file is chmod 0600 right after it is bound. Between bind and
 * chmod it briefly has the umask's mode, so put it in a 0700 directory (the
 * process umask is not touched: it is process-wide and affects concurrent
 * file creation). A stale socket file is replaced only if a connect attempt
 * is refused; note that the probe briefly connects to a live listener.
 *
 * @param opts `{ path }` for a unix socket, or `{ host?, port }` for TCP
 *   (host defaults to 127.0.0.1), plus port options for accepted ports
 * @param onPort called synchronously for each accepted port, before any of its
 *   frames; set `port.onFrame` there
 * @throws VmnetError E_USAGE for bad options, E_PORT_IN_USE when the address
 *   is taken, E_PORT_PRIVILEGED for EACCES on a TCP port, E_NO_FILE when the
 *   socket file cannot be created
 */
export async function listenStream(
  opts: StreamEndpoint & StreamPortOptions,
  onPort: (port: StreamPort) => void,
): Promise<StreamListener> {
  const ep = endpointOf(opts);
  const portOptions: StreamPortOptions = {};
  if (opts.maxFrame !== undefined) portOptions.maxFrame = opts.maxFrame;
  if (opts.highWaterMark !== undefined) portOptions.highWaterMark = opts.highWaterMark;
  if (opts.maxQueued !== undefined) portOptions.maxQueued = opts.maxQueued;
  if (opts.pool !== undefined) portOptions.pool = opts.pool;
  if ('path' in ep) await removeStaleSocket(ep.path);

  const ports = new Set<StreamPort>();
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const port = new StreamPort(takeOver(socket), portOptions);
    ports.add(port);
    port.once('close', () => ports.delete(port));
    onPort(port);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      const code = errno(err);
      const where = 'path' in ep ? ep.path : `${ep.host}:${ep.port}`;
      if (code === 'EADDRINUSE') reject(new VmnetError('E_PORT_IN_USE', `${where} is already in use`, { cause: err }));
      else if (code === 'EACCES' && !('path' in ep)) reject(new VmnetError('E_PORT_PRIVILEGED', `not allowed to listen on ${where}`, { cause: err }));
      else reject(new VmnetError('E_NO_FILE', `cannot listen on ${where}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    const listening = (): void => {
      server.off('error', onError);
      resolve();
    };
    if ('path' in ep) server.listen({ path: ep.path }, listening);
    else server.listen({ host: ep.host, port: ep.port }, listening);
  });
  if ('path' in ep) {
    try {
      await chmod(ep.path, 0o600);
    } catch (e) {
      server.close();
      throw new VmnetError('E_NO_FILE', `cannot chmod ${ep.path}: ${(e as Error).message}`, { cause: e });
    }
  }
  // Listener-level errors after listen (rare: EMFILE on accept) must not crash the process.
  server.on('error', () => {});

  let closing: Promise<void> | null = null;
  const bound: StreamAddress =
    'path' in ep ? ep : { host: ep.host, port: (server.address() as net.AddressInfo).port };
  return {
    address: () => bound,
    ports,
    close: () => {
      // libuv unlinks a bound unix socket file when the server handle closes.
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const p of ports) p.close();
      });
      return closing;
    },
  };
}

/**
 * Connects to a stream listener (e.g. QEMU started with `-netdev stream,server=on`
 * or `-netdev socket,listen=`), reading through `onread` into a preallocated buffer.
 * @param opts `{ path }` or `{ host?, port }`, plus port options and an
 *   optional connect timeout
 * @returns the connected port
 * @throws VmnetError E_USAGE for bad options, E_NO_FILE when the unix socket
 *   does not exist, E_TIMEOUT after `timeoutMs`; other connect failures
 *   (e.g. ECONNREFUSED) are passed through as Node system errors
 */
export function connectStream(opts: StreamEndpoint & StreamPortOptions & { timeoutMs?: number }): Promise<StreamPort> {
  let ep: StreamAddress;
  try {
    ep = endpointOf(opts);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise<StreamPort>((resolve, reject) => {
    const port = new StreamPort((onread) => net.connect({ ...ep, onread }), opts);
    let timer: NodeJS.Timeout | undefined;
    const onClose = (_reason: CloseReason, err: Error | undefined): void => {
      clearTimeout(timer);
      if ('path' in ep && errno(err) === 'ENOENT') {
        reject(new VmnetError('E_NO_FILE', `no socket at ${ep.path}`, { cause: err }));
      } else {
        reject(err ?? new Error('connection closed before it was established'));
      }
    };
    port.once('close', onClose);
    port.socket.once('connect', () => {
      clearTimeout(timer);
      port.off('close', onClose);
      resolve(port);
    });
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        port.off('close', onClose);
        port.close();
        port.socket.destroy();
        reject(new VmnetError('E_TIMEOUT', `connect timed out after ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
    }
  });
}

/**
 * Adopts an inherited, connected stream socket descriptor (QEMU's
 * `-netdev socket,fd=N` peer, or a descriptor passed by a supervisor).
 * Reads through `onread` into a preallocated buffer. Closing the port closes
 * the descriptor.
 * @param fd an open unix or TCP stream socket descriptor
 * @throws VmnetError E_USAGE when `fd` is not a non-negative integer or not a
 *   socket or pipe
 */
export function portFromFd(fd: number, options: StreamPortOptions = {}): StreamPort {
  if (!Number.isInteger(fd) || fd < 0) throw new VmnetError('E_USAGE', `bad file descriptor ${fd}`);
  try {
    // `onread` is honoured by the Socket constructor although @types/node only declares it on ConnectOpts.
    return new StreamPort(
      (onread) => new net.Socket({ fd, readable: true, writable: true, onread } as net.SocketConstructorOpts & net.ConnectOpts),
      options,
    );
  } catch (e) {
    throw new VmnetError('E_USAGE', `file descriptor ${fd} is not a stream socket: ${(e as Error).message}`, { cause: e });
  }
}
