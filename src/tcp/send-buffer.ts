/**
 * Theory of operation: the send buffer of one connection (RFC 9293 §3.8.6:
 * the bytes the application handed us that the peer has not acknowledged).
 *
 * A byte ring whose first byte is always the byte at SND.UNA (once the SYN is
 * acknowledged). Three operations matter:
 * - `write` accepts at most `free` bytes (the bound, `max`) and reports how
 *   many it took: that is the application's backpressure signal;
 * - `copyOut(offset, len, dst, dstOff)` copies bytes `offset..offset+len`
 *   (relative to SND.UNA) straight into an output frame: the connection never
 *   builds payload objects, the gateway asks for the bytes when it writes the
 *   frame, so each payload byte is copied exactly once (ring → frame);
 * - `drop(n)` discards bytes the peer acknowledged.
 *
 * Memory is lazy: no storage until the first write, then a power-of-two ring
 * (from 4 KiB) that doubles as needed up to `max`; `release()` (called by the
 * connection once the buffer has stayed empty for a while) frees it, so an
 * idle connection holds no payload memory.
 *
 * Budget (budget.ts): the storage is charged to the guest's account, and the
 * ring grows only into what the account allows (`limit`; always to 4 KiB).
 * `free` is measured against `limit`, so when the budget is spent the buffer
 * takes less and the relay pauses the host socket instead of it growing.
 */
import type { BudgetAccount } from './budget.js';
import { grownCapacity, MIN_RING, ringCopyOut } from './ring.js';

/** A bounded, lazily allocated byte ring. */
export class SendBuffer {
  #buf: Uint8Array | null = null;
  #head = 0;
  /** Bytes held (unacknowledged or unsent). */
  length = 0;

  /**
   * @param max the most bytes ever held
   * @param account the budget account storage is charged to (null: unlimited)
   */
  constructor(
    readonly max: number,
    readonly account: BudgetAccount | null = null,
  ) {}

  /**
   * The most bytes the buffer may hold now: `max`, or less when the budget
   * does not let the ring grow that far (never less than its storage or 4 KiB).
   */
  get limit(): number {
    if (this.account === null) return this.max;
    return Math.min(this.max, Math.max(this.capacity, MIN_RING) + this.account.available());
  }

  /** Bytes `write` would accept now. */
  get free(): number {
    return Math.max(0, this.limit - this.length);
  }

  /** Bytes of storage currently allocated (for memory accounting). */
  get capacity(): number {
    return this.#buf === null ? 0 : this.#buf.length;
  }

  #grow(need: number): void {
    const old = this.capacity;
    const cap = grownCapacity(this.#buf, need, this.limit);
    if (cap < 0) return;
    const nb = new Uint8Array(cap);
    if (this.#buf !== null && this.length > 0) this.copyOut(0, this.length, nb, 0);
    this.#buf = nb;
    this.#head = 0;
    this.account?.charge(cap - old);
  }

  /** Where the next byte goes in storage `b`: just after the held bytes, wrapped. */
  #tail(b: Uint8Array): number {
    const t = this.#head + this.length;
    return t >= b.length ? t - b.length : t;
  }

  /**
   * Appends up to `free` bytes of `src[off .. off+len)`.
   * @returns bytes taken (0..len)
   */
  write(src: Uint8Array, off: number, len: number): number {
    const n = Math.min(len, this.free);
    if (n < len && this.account !== null && this.length + len <= this.max) this.account.budget.counters.limited++;
    if (n <= 0) return 0;
    if (this.#buf === null || this.#buf.length < this.length + n) this.#grow(this.length + n);
    const b = this.#buf!;
    const cap = b.length;
    const tail = this.#tail(b);
    const first = Math.min(n, cap - tail);
    b.set(first === src.length && off === 0 ? src : src.subarray(off, off + first), tail);
    if (first < n) b.set(src.subarray(off + first, off + n), 0);
    this.length += n;
    return n;
  }

  /**
   * Lends the free space after the held bytes, for a reader to fill in place
   * (a host socket's `onread` buffer): the contiguous region at the tail, up
   * to the ring's end or the held data. Only once storage has grown to `max`
   * (a busy connection; idle ones keep their small lazy buffers), so the
   * region never moves. Nothing else may be written while the lend is
   * outstanding: settle it with {@link commitLent}, or `write` the bytes.
   * @param min the smallest region worth lending
   * @returns the region, or null when less than `min` bytes are contiguous
   */
  lendTail(min: number): Uint8Array | null {
    const b = this.#buf;
    if (b === null || b.length < this.max || this.free < min) return null;
    const tail = this.#tail(b);
    const n = Math.min(this.free, tail >= this.#head && this.length < b.length ? b.length - tail : this.#head - tail);
    return n < min ? null : b.subarray(tail, tail + n);
  }

  /**
   * Takes `n` bytes read into a region from {@link lendTail}, if it still is
   * the free space at the tail (held bytes acknowledged to empty move the
   * tail, and idle storage may have been released).
   * @returns false when it no longer is: then `write` the bytes instead
   */
  commitLent(region: Uint8Array, n: number): boolean {
    const b = this.#buf;
    if (b === null || region.buffer !== b.buffer || n > this.free || n > region.length) return false;
    if (region.byteOffset !== b.byteOffset + this.#tail(b)) return false;
    this.length += n;
    return true;
  }

  /**
   * Copies `len` bytes starting `offset` bytes after the first held byte
   * (SND.UNA) into `dst` at `dstOff`. Requires offset + len <= length.
   */
  copyOut(offset: number, len: number, dst: Uint8Array, dstOff: number): void {
    if (len > 0) ringCopyOut(this.#buf!, this.#head, offset, len, dst, dstOff);
  }

  /** Discards the first n held bytes (acknowledged). */
  drop(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.length = 0;
      this.#head = 0;
      return;
    }
    this.length -= n;
    this.#head += n;
    if (this.#buf !== null && this.#head >= this.#buf.length) this.#head -= this.#buf.length;
  }

  /** Frees the storage when empty. @returns true when something was freed */
  release(): boolean {
    if (this.length !== 0 || this.#buf === null) return false;
    this.account?.credit(this.#buf.length);
    this.#buf = null;
    this.#head = 0;
    return true;
  }
}
