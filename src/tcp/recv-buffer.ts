/**
 * Theory of operation: the receive buffer of one connection (RFC 9293 §3.8.6
 * "Managing the Window", §3.10.7.4 "seventh, process the segment text").
 *
 * One byte ring holds both the in-order bytes the application has not read
 * yet (`readable`, starting at the read head) and, after them, out-of-order
 * bytes placed at their final position: a segment starting `rel` bytes after
 * RCV.NXT is written `readable + rel` bytes after the read head. A `RangeSet`
 * (the "assembler") remembers which bytes beyond RCV.NXT are present. When a
 * segment fills the hole at RCV.NXT, the contiguous run is promoted to
 * readable in one step, with no copying (RFC 9293 §3.10.7.4: "segments with
 * higher beginning sequence numbers SHOULD be held for later processing").
 *
 * Bounds: everything lives within `max` bytes, and the connection only accepts
 * bytes inside [RCV.NXT, RCV.NXT + free) where free = max - readable, which is
 * never less than the window it advertised. So out-of-order data is bounded by
 * the window, and at most `MAX_HOLES` separate out-of-order runs are kept
 * (a segment that would need another is dropped; the peer retransmits it).
 * The ranges also give the SACK blocks we report (RFC 2018 §4).
 *
 * Memory is lazy: storage appears with the first byte, starts at 4 KiB and
 * doubles up to `max`; `release()` frees it when nothing is held.
 */
import { grownCapacity, ringCopyOut } from './ring.js';
import { RangeSet } from './ranges.js';

/** Most out-of-order runs kept beyond RCV.NXT. */
export const MAX_HOLES = 8;

/** In-order readable bytes + out-of-order segments, in one bounded ring. */
export class RecvBuffer {
  #buf: Uint8Array | null = null;
  #head = 0;
  /** In-order bytes ready for the application. */
  readable = 0;
  /** Out-of-order runs, offsets relative to the end of the readable bytes (RCV.NXT). */
  readonly ooo = new RangeSet(MAX_HOLES);

  /** @param max the most bytes held (readable + out-of-order window) */
  constructor(readonly max: number) {}

  /** Bytes that may still arrive beyond RCV.NXT: max - readable. */
  get free(): number {
    return this.max - this.readable;
  }

  /** Bytes of storage currently allocated. */
  get capacity(): number {
    return this.#buf === null ? 0 : this.#buf.length;
  }

  /** True when nothing (readable or out-of-order) is held. */
  get empty(): boolean {
    return this.readable === 0 && this.ooo.count === 0;
  }

  #grow(need: number): void {
    const cap = grownCapacity(this.#buf, need, this.max);
    if (cap < 0) return;
    const nb = new Uint8Array(cap);
    const span = this.readable + this.ooo.highest();
    if (this.#buf !== null && span > 0) this.#copy(0, span, nb, 0);
    this.#buf = nb;
    this.#head = 0;
  }

  #copy(offset: number, len: number, dst: Uint8Array, dstOff: number): void {
    if (len > 0) ringCopyOut(this.#buf!, this.#head, offset, len, dst, dstOff);
  }

  /**
   * Stores `len` bytes of `src` from `srcOff`, which belong `rel` bytes after
   * RCV.NXT. The caller has trimmed them to the window: rel + len <= free.
   * @returns bytes by which RCV.NXT advances (0 for out-of-order data, or when
   *   the segment was dropped because too many holes exist); -1 when dropped
   */
  write(rel: number, src: Uint8Array, srcOff: number, len: number): number {
    if (len <= 0) return 0;
    if (rel > 0 && !this.ooo.add(rel, rel + len)) return -1;
    const need = this.readable + rel + len;
    if (this.#buf === null || this.#buf.length < need) this.#grow(need);
    const b = this.#buf!;
    const cap = b.length;
    let pos = this.#head + this.readable + rel;
    if (pos >= cap) pos -= cap;
    const first = Math.min(len, cap - pos);
    b.set(src.subarray(srcOff, srcOff + first), pos);
    if (first < len) b.set(src.subarray(srcOff + first, srcOff + len), 0);
    if (rel > 0) return 0;
    // in order: advance past this segment and any out-of-order run it reaches
    let adv = len;
    for (let i = 0; i < this.ooo.count && this.ooo.start(i) <= adv; i++) adv = Math.max(adv, this.ooo.end(i));
    this.ooo.shift(adv);
    this.readable += adv;
    return adv;
  }

  /** Copies up to `len` readable bytes into dst without consuming them. @returns bytes copied */
  peek(dst: Uint8Array, dstOff: number, len: number): number {
    const n = Math.min(len, this.readable);
    this.#copy(0, n, dst, dstOff);
    return n;
  }

  /**
   * A view (no copy) of readable bytes from `offset` on: at most `len` bytes,
   * and only up to the end of the ring storage (call again for the rest). The
   * bytes stay valid until consumed: the ring only writes into free space, and
   * growing it copies into new storage, leaving old views intact.
   */
  view(offset: number, len: number): Uint8Array {
    const n = Math.min(len, this.readable - offset);
    if (n <= 0 || this.#buf === null) return new Uint8Array(0);
    const b = this.#buf;
    let pos = this.#head + offset;
    if (pos >= b.length) pos -= b.length;
    return b.subarray(pos, pos + Math.min(n, b.length - pos));
  }

  /** Discards up to n readable bytes. @returns bytes discarded */
  consume(n: number): number {
    const k = Math.min(n, this.readable);
    if (k <= 0) return 0;
    this.readable -= k;
    this.#head += k;
    const cap = this.#buf!.length;
    if (this.#head >= cap) this.#head -= cap;
    if (this.readable === 0 && this.ooo.count === 0) this.#head = 0;
    return k;
  }

  /** Frees the storage when nothing is held. @returns true when freed */
  release(): boolean {
    if (!this.empty || this.#buf === null) return false;
    this.#buf = null;
    this.#head = 0;
    this.ooo.release();
    return true;
  }
}
