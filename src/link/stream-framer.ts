/**
 * Theory of operation: QEMU's stream framing, sans-IO.
 *
 * QEMU's stream netdevs (`-netdev stream,...` since 7.2, net/stream.c, and the
 * older `-netdev socket,connect=|listen=|fd=`, net/socket.c) carry Ethernet
 * frames over a byte stream. Each frame is preceded by its length as a 4-byte
 * big-endian unsigned integer and nothing else: no vnet header, no padding,
 * no checksum. QEMU sends `htonl(len)` and the frame as one iovec pair
 * (`net_stream_receive`) and reassembles received frames with
 * `net_fill_rstate()` (net/net.c) into a buffer of NET_BUFSIZE = 4096 + 65536
 * bytes, dropping the connection ("oversized packet received") when a length
 * is larger than that. So a frame on the stream may be cut anywhere by the
 * kernel: inside the 4-byte prefix, inside the frame, or several frames may
 * arrive in one read.
 *
 * {@link StreamFramer} is the receive half. It owns no socket: the caller
 * pushes whatever bytes a read returned and gets whole frames back through a
 * callback, synchronously, in stream order. It is a small numeric state
 * machine (prefix bytes → frame bytes), in the spirit of ws's Receiver and
 * passt's `tap_passt_input`:
 *
 * - The length prefix is accumulated in a number, one byte at a time when it
 *   straddles chunks and with one `getUint32` when all four bytes are in the
 *   chunk. No buffer is needed for it.
 * - A frame that lies wholly inside the pushed chunk is delivered in place:
 *   the callback gets the chunk itself, a DataView over it and the offset.
 *   The DataView is cached per chunk object, so a caller that reads into one
 *   reused buffer (`net.Socket`'s `onread`) causes no allocation at all; a
 *   caller that pushes a fresh Buffer per read pays one DataView per read, not
 *   per frame.
 * - A frame that straddles chunks is copied into one preallocated reassembly
 *   buffer of `maxFrame` bytes (with its own DataView, made once) and
 *   delivered from there when its last byte arrives.
 * - A frame longer than `maxFrame` but within what QEMU itself sends
 *   (`maxPrefix`, default {@link QEMU_MAX_FRAME}) is honest: its prefix is
 *   right, the stream stays in step, the frame is just too big for this
 *   port (a guest with a larger MTU, a Q-in-Q frame on an access port). It is
 *   skipped without being copied, counted in `counters.tooLong`, and the
 *   stream continues with the next prefix.
 * - A prefix larger than `maxPrefix` cannot come from QEMU (which drops the
 *   connection itself above NET_BUFSIZE): it is a lie or a broken peer, and
 *   nothing after it can be trusted to be a prefix. The framer stops and
 *   `push` returns `'oversize'`; the caller closes that connection (as QEMU
 *   and passt do). There is no way to resynchronise a length-prefixed stream.
 * - A zero-length frame is legal on the wire (QEMU would pass it on) but is
 *   never produced by QEMU and carries nothing: it is dropped and counted in
 *   `counters.empty`, and the stream continues.
 * - At end of stream the caller asks {@link StreamFramer.end}: a hang-up
 *   inside a prefix or a frame is counted in `counters.truncatedAtClose`.
 *
 * The framer does not look inside frames: Ethernet validation (runts,
 * ethertypes) is the next layer's job.
 *
 * The send half is {@link writeLengthPrefix}: the data path builds a frame
 * with {@link PREFIX_LEN} bytes of headroom in front and writes the prefix
 * there, so a frame goes to the socket without concatenation.
 *
 * Pure: no I/O, no timers, no Node runtime imports.
 */

/** Bytes of the length prefix in front of every frame. */
export const PREFIX_LEN = 4;

/**
 * QEMU's receive buffer size, NET_BUFSIZE (include/net/net.h: 4096 + 65536):
 * the largest frame QEMU accepts from the stream and so the default
 * `maxFrame`.
 */
export const QEMU_MAX_FRAME = 4096 + 65536;

/**
 * Writes the 4-byte big-endian length prefix for a frame of `len` bytes.
 * Call it with `off` = frame offset − {@link PREFIX_LEN} to fill headroom
 * reserved in front of a frame.
 * @param view DataView over the output buffer
 * @param off where the prefix starts (relative to the view)
 * @param len frame length in bytes, excluding the prefix
 * @returns {@link PREFIX_LEN}, the bytes written
 */
export function writeLengthPrefix(view: DataView, off: number, len: number): number {
  view.setUint32(off, len);
  return PREFIX_LEN;
}

/**
 * Reads a 4-byte big-endian length prefix.
 * @param view DataView over the input buffer
 * @param off where the prefix starts
 * @returns the frame length that follows the prefix
 */
export function readLengthPrefix(view: DataView, off: number): number {
  return view.getUint32(off);
}

/**
 * Copies `len` bytes from `src[srcOff..]` to `dst[dstOff..]` without making a
 * `subarray` for short runs (a byte loop below 64 bytes, `set` above, where
 * one view per copy is amortised over the bytes). Ranges must be in bounds.
 * @returns `len`
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number {
  if (len < 64) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i] as number;
  } else {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  }
  return len;
}

/**
 * Receives one frame. `buf` and `view` cover the same bytes (`buf[off]` is
 * `view.getUint8(off)`); the frame is `[off, off + len)`.
 *
 * The bytes are lent, not given: they are valid only until the callback
 * returns (they may be the caller's read buffer or the framer's reassembly
 * buffer, both reused). Copy whatever must outlive the call. The callback may
 * modify the frame's own bytes in place, but nothing outside them.
 */
export type FrameHandler = (buf: Uint8Array, view: DataView, off: number, len: number) => void;

/**
 * Where long-lived buffers come from, e.g. the checksum kernel's memory, so
 * that frames reassembled there are verified in place (wire/checksum.ts).
 */
export interface BufferPool {
  take(size: number): Uint8Array;
  give(b: Uint8Array): void;
}

/**
 * What {@link StreamFramer.push} found:
 * - `'ok'`: all bytes consumed; any complete frames were delivered.
 * - `'oversize'`: a length prefix exceeded `maxPrefix`; the framer has stopped
 *   (now and for every later push) and the connection must be closed.
 * - `'closed'`: the framer was closed by {@link StreamFramer.close} (possibly
 *   from inside the frame callback); remaining bytes were ignored.
 */
export type PushStatus = 'ok' | 'oversize' | 'closed';

/** Running totals of one framer. Plain numbers, updated in place. */
export interface FramerCounters {
  /** Frames delivered to the callback. */
  frames: number;
  /** Frame bytes delivered (excluding length prefixes). */
  bytes: number;
  /** Zero-length frames dropped. */
  empty: number;
  /** Frames longer than `maxFrame` (and at most `maxPrefix`) skipped. */
  tooLong: number;
  /** Length prefixes over `maxPrefix` (each one stops the framer). */
  oversize: number;
  /** Streams that ended inside a prefix or a frame ({@link StreamFramer.end}). */
  truncatedAtClose: number;
}

// Numeric states (STYLE §2: numbers, not strings).
const S_PREFIX = 0; // collecting the 4-byte length (#have bytes so far)
const S_BODY = 1; // copying a straddling frame into #reasm (#have bytes so far)
const S_OVERSIZE = 2; // stopped: a prefix exceeded maxPrefix
const S_CLOSED = 3; // stopped by close()
const S_SKIP = 4; // skipping a frame longer than maxFrame (#have bytes of #len so far)

/**
 * Sans-IO reassembler for QEMU's length-prefixed stream framing.
 *
 * ```ts
 * const framer = new StreamFramer(QEMU_MAX_FRAME, (buf, view, off, len) => gateway.input(view, off, len));
 * socket.on('data', (chunk) => { if (framer.push(chunk) !== 'ok') socket.destroy(); });
 * socket.on('end', () => { if (framer.end()) log('peer hung up mid-frame'); });
 * ```
 */
export class StreamFramer {
  /** Running totals; read freely, never replaced. */
  readonly counters: FramerCounters = { frames: 0, bytes: 0, empty: 0, tooLong: 0, oversize: 0, truncatedAtClose: 0 };
  /** The largest frame delivered, in bytes (excluding the prefix). */
  readonly maxFrame: number;
  /** The largest prefix believed; longer frames up to it are skipped. */
  readonly maxPrefix: number;

  readonly #onFrame: FrameHandler;
  readonly #reasm: Uint8Array;
  readonly #pool: BufferPool | undefined;
  readonly #reasmView: DataView;
  #state = S_PREFIX;
  /** Bytes of the current prefix (S_PREFIX) or frame (S_BODY) received so far. */
  #have = 0;
  /** The prefix value being accumulated (S_PREFIX) or the frame length (S_BODY). */
  #len = 0;
  // One-entry DataView cache keyed by chunk identity (see Theory of operation).
  #lastChunk: Uint8Array | null = null;
  #lastView: DataView | null = null;

  /**
   * @param maxFrame the largest frame delivered, in bytes (1 ..= 2^32 − 1);
   *   also the size of the reassembly buffer allocated here, once
   * @param onFrame called synchronously for each complete, non-empty frame
   * @param pool where the reassembly buffer comes from and goes back to on
   *   close (default: a plain array)
   * @param maxPrefix the largest length prefix believed (default the larger
   *   of `maxFrame` and {@link QEMU_MAX_FRAME}); frames between `maxFrame`
   *   and it are skipped and counted, longer prefixes stop the framer
   */
  constructor(maxFrame: number, onFrame: FrameHandler, pool?: BufferPool, maxPrefix = Math.max(maxFrame, QEMU_MAX_FRAME)) {
    if (!Number.isInteger(maxFrame) || maxFrame < 1 || maxFrame > 0xffffffff) {
      throw new RangeError(`maxFrame must be an integer in 1..2^32-1, got ${maxFrame}`);
    }
    if (!Number.isInteger(maxPrefix) || maxPrefix < maxFrame || maxPrefix > 0xffffffff) {
      throw new RangeError(`maxPrefix must be an integer in maxFrame..2^32-1, got ${maxPrefix}`);
    }
    this.maxFrame = maxFrame;
    this.maxPrefix = maxPrefix;
    this.#onFrame = onFrame;
    this.#pool = pool;
    this.#reasm = pool?.take(maxFrame) ?? new Uint8Array(maxFrame);
    this.#reasmView = new DataView(this.#reasm.buffer, this.#reasm.byteOffset, this.#reasm.byteLength);
  }

  /**
   * True when the framer holds part of a prefix or part of a frame, i.e. the
   * stream is not at a frame boundary.
   */
  isMidFrame(): boolean {
    return (this.#state === S_PREFIX && this.#have > 0) || this.#state === S_BODY || this.#state === S_SKIP;
  }

  /**
   * Consumes bytes read from the stream and delivers every frame they
   * complete, in order, before returning.
   * @param chunk bytes read; only `[start, end)` is consumed
   * @param start first byte to consume (default 0)
   * @param end one past the last byte (default `chunk.length`), so a reused
   *   read buffer can be pushed without `subarray`
   * @returns `'ok'`, or why the framer stopped ({@link PushStatus})
   * @throws whatever the frame callback throws; the framer is then closed
   *   (the rest of the chunk is lost, so the stream cannot be resumed)
   */
  push(chunk: Uint8Array, start = 0, end: number = chunk.length): PushStatus {
    if (this.#state === S_OVERSIZE) return 'oversize';
    if (this.#state === S_CLOSED) return 'closed';
    try {
      return this.#consume(chunk, start, end);
    } catch (e) {
      this.#state = S_CLOSED;
      throw e;
    }
  }

  /**
   * Marks the end of the stream. Returns the framer to a frame boundary so it
   * could be reused for a new stream (unless it was closed or stopped on an
   * oversize prefix).
   * @returns true if the stream ended mid-frame (counted in
   *   `counters.truncatedAtClose`; the partial frame is discarded)
   */
  end(): boolean {
    const mid = this.isMidFrame();
    if (mid) this.counters.truncatedAtClose++;
    if (this.#state === S_BODY || this.#state === S_SKIP) this.#state = S_PREFIX;
    this.#have = 0;
    this.#len = 0;
    this.#lastChunk = null;
    this.#lastView = null;
    return mid;
  }

  /**
   * Stops the framer: the current and every later {@link push} returns
   * `'closed'` without delivering more frames. Safe to call from inside the
   * frame callback.
   */
  close(): void {
    if (this.#state !== S_CLOSED && this.#pool !== undefined) {
      const pool = this.#pool;
      const b = this.#reasm;
      queueMicrotask(() => pool.give(b)); // not during a frame callback that may still read it
    }
    this.#state = S_CLOSED;
    this.#lastChunk = null;
    this.#lastView = null;
  }

  #viewOf(chunk: Uint8Array): DataView {
    if (chunk === this.#lastChunk && this.#lastView !== null) return this.#lastView;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#lastChunk = chunk;
    this.#lastView = view;
    return view;
  }

  #consume(chunk: Uint8Array, start: number, end: number): PushStatus {
    let pos = start;
    const c = this.counters;
    while (pos < end) {
      const state = this.#state;
      if (state === S_PREFIX) {
        let len: number;
        if (this.#have === 0 && end - pos >= PREFIX_LEN) {
          len = this.#viewOf(chunk).getUint32(pos);
          pos += PREFIX_LEN;
        } else {
          // The prefix straddles chunks: accumulate byte by byte.
          let acc = this.#len;
          let have = this.#have;
          while (have < PREFIX_LEN && pos < end) {
            acc = acc * 256 + (chunk[pos++] as number);
            have++;
          }
          if (have < PREFIX_LEN) {
            this.#len = acc;
            this.#have = have;
            return 'ok';
          }
          len = acc;
          this.#have = 0;
          this.#len = 0;
        }
        if (len > this.maxFrame) {
          if (len > this.maxPrefix) {
            this.#state = S_OVERSIZE;
            c.oversize++;
            return 'oversize';
          }
          // Honest but too long for this port: skip its bytes, keep the stream.
          c.tooLong++;
          this.#state = S_SKIP;
          this.#have = 0;
          this.#len = len;
          continue;
        }
        if (len === 0) {
          c.empty++;
          continue;
        }
        if (end - pos >= len) {
          // Wholly inside the chunk: deliver in place.
          const off = pos;
          pos += len;
          c.frames++;
          c.bytes += len;
          this.#onFrame(chunk, this.#viewOf(chunk), off, len);
          if (this.#state !== S_PREFIX) return this.#state === S_CLOSED ? 'closed' : 'oversize';
          continue;
        }
        // Straddles the end of the chunk: start reassembly.
        const n = end - pos;
        copyBytes(this.#reasm, 0, chunk, pos, n);
        this.#state = S_BODY;
        this.#have = n;
        this.#len = len;
        return 'ok';
      }
      if (state === S_BODY) {
        const want = this.#len - this.#have;
        const n = end - pos < want ? end - pos : want;
        copyBytes(this.#reasm, this.#have, chunk, pos, n);
        pos += n;
        this.#have += n;
        if (this.#have < this.#len) return 'ok';
        const len = this.#len;
        this.#state = S_PREFIX;
        this.#have = 0;
        this.#len = 0;
        c.frames++;
        c.bytes += len;
        this.#onFrame(this.#reasm, this.#reasmView, 0, len);
        if (this.#state !== S_PREFIX) return this.#state === S_CLOSED ? 'closed' : 'oversize';
        continue;
      }
      if (state === S_SKIP) {
        const want = this.#len - this.#have;
        const n = end - pos < want ? end - pos : want;
        pos += n;
        this.#have += n;
        if (this.#have < this.#len) return 'ok';
        this.#state = S_PREFIX;
        this.#have = 0;
        this.#len = 0;
        continue;
      }
      return state === S_CLOSED ? 'closed' : 'oversize';
    }
    return 'ok';
  }
}
