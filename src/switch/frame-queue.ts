/**
 * Theory of operation: the switch's reentrant queue (switch.ts,
 * "Reentrancy"), a FIFO of frames copied into one arena allocated once.
 *
 * Frames are appended at increasing offsets and worked off in order; the
 * queue only ever empties all at once (the switch works it off before it
 * returns), so there is no wrap-around: {@link FrameQueue.clear} rewinds.
 * Both bounds, bytes and frames, are fixed at construction; a frame that
 * does not fit is refused and the caller counts it. Nothing is allocated per
 * frame.
 *
 * A frame can also be built in place: {@link FrameQueue.room} says where the
 * next one would go, the sender writes it there, and {@link
 * FrameQueue.commit} queues it without a copy, or {@link FrameQueue.claim}
 * takes its bytes out of the way for a frame processed at once (so frames it
 * sets off queue behind it). The arena may come from a pool (the checksum
 * kernel's memory: a frame built there is summed in place).
 *
 * Pure: no I/O.
 */
import { copyBytes, type BufferPool } from '../link/stream-framer.js';

/** A bounded FIFO of frames in one preallocated arena. */
export class FrameQueue<P> {
  /** The arena every queued frame lives in, and a view over it. */
  readonly arena: Uint8Array;
  readonly view: DataView;
  #used = 0;
  #n = 0;
  readonly #ports: Array<P | null>;
  readonly #offs: Int32Array;
  readonly #lens: Int32Array;

  readonly #pool: BufferPool | undefined;

  /**
   * @param bytes arena size
   * @param frames most frames queued at once
   * @param pool where the arena comes from (default a plain array); see {@link release}
   */
  constructor(bytes: number, frames: number, pool?: BufferPool) {
    this.#pool = pool;
    this.arena = pool?.take(bytes) ?? new Uint8Array(bytes);
    this.view = new DataView(this.arena.buffer, this.arena.byteOffset, this.arena.byteLength);
    this.#ports = new Array<P | null>(frames).fill(null);
    this.#offs = new Int32Array(frames);
    this.#lens = new Int32Array(frames);
  }

  /** Frames queued. */
  get length(): number {
    return this.#n;
  }

  /** Arena bytes in use. */
  get used(): number {
    return this.#used;
  }

  /**
   * Copies a frame in.
   * @returns false when it does not fit (or the range is not inside `buf`)
   */
  push(port: P, buf: Uint8Array, off: number, len: number): boolean {
    const at = this.#used;
    const i = this.#n;
    if (len < 0 || off < 0 || off + len > buf.length || i >= this.#ports.length || at + len > this.arena.length) return false;
    copyBytes(this.arena, at, buf, off, len);
    this.#used = at + len;
    this.#ports[i] = port;
    this.#offs[i] = at;
    this.#lens[i] = len;
    this.#n = i + 1;
    return true;
  }

  /**
   * Where a frame of up to `maxLen` bytes would be built next.
   * @returns its offset in the arena, or -1 when it would not fit
   */
  room(maxLen: number): number {
    return this.#n < this.#ports.length && this.#used + maxLen <= this.arena.length ? this.#used : -1;
  }

  /** Queues the frame of `len` bytes built at {@link room}'s offset (`len` at most what was asked). */
  commit(port: P, len: number): void {
    const i = this.#n;
    this.#ports[i] = port;
    this.#offs[i] = this.#used;
    this.#lens[i] = len;
    this.#used += len;
    this.#n = i + 1;
  }

  /** Takes the `len` bytes built at {@link room}'s offset out of the way without queueing them. */
  claim(len: number): void {
    this.#used += len;
  }

  /** Gives a pooled arena back; the queue must not be used afterwards. */
  release(): void {
    this.#pool?.give(this.arena);
  }

  /** The port of frame `i`. */
  port(i: number): P {
    return this.#ports[i]!;
  }

  /** Where frame `i` starts in the arena. */
  offset(i: number): number {
    return this.#offs[i]!;
  }

  /** Length of frame `i`. */
  size(i: number): number {
    return this.#lens[i]!;
  }

  /** Empties the queue (and lets go of the ports). */
  clear(): void {
    for (let i = 0; i < this.#n; i++) this.#ports[i] = null;
    this.#n = 0;
    this.#used = 0;
  }
}
