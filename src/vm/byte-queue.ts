/**
 * Theory of operation: a bounded byte queue for console output, which
 * arrives a few bytes per read. Bytes are copied into 64 KiB slabs, so the
 * number of objects held is bytes / 64 KiB however small the writes (a
 * list of the reads themselves would hold millions of tiny Buffers, whose
 * per-object overhead dwarfs the bytes counted). Past `cap` bytes the
 * oldest are dropped (counted): the queue keeps the most recent output.
 *
 * `take()` hands out the queued bytes as views of the slabs and empties the
 * queue; a slab region once handed out is never written again (new bytes go
 * after it, or into a new slab), so the views stay valid for as long as
 * their holder wants.
 */

const SLAB = 64 * 1024;

export class ByteQueue {
  #slabs: Buffer[] = [];
  /** Read offset in the first slab. */
  #head = 0;
  /** Write offset in the last slab (SLAB: full, or no slab yet). */
  #tail = SLAB;
  /** Bytes queued. */
  length = 0;
  /** Bytes dropped (oldest first) to stay within the cap. */
  dropped = 0;

  /** @param cap most bytes held */
  constructor(readonly cap: number) {}

  /** Appends a copy of `b`, dropping the oldest bytes past the cap. */
  push(b: Uint8Array): void {
    let off = b.length > this.cap ? b.length - this.cap : 0;
    this.dropped += off;
    while (off < b.length) {
      if (this.#tail === SLAB) {
        this.#slabs.push(Buffer.allocUnsafe(SLAB));
        this.#tail = 0;
        if (this.#slabs.length === 1) this.#head = 0;
      }
      const n = Math.min(b.length - off, SLAB - this.#tail);
      this.#slabs[this.#slabs.length - 1]!.set(b.subarray(off, off + n), this.#tail);
      this.#tail += n;
      off += n;
      this.length += n;
    }
    while (this.length > this.cap) {
      const end = this.#slabs.length === 1 ? this.#tail : SLAB;
      const drop = Math.min(end - this.#head, this.length - this.cap);
      this.#head += drop;
      this.length -= drop;
      this.dropped += drop;
      if (this.#head === end && this.#slabs.length > 1) {
        this.#slabs.shift();
        this.#head = 0;
      }
    }
  }

  /** The queued bytes as views, oldest first; the queue is empty afterwards. */
  take(): Buffer[] {
    const out: Buffer[] = [];
    this.#slabs.forEach((s, i) => {
      const from = i === 0 ? this.#head : 0;
      const to = i === this.#slabs.length - 1 ? this.#tail : SLAB;
      if (to > from) out.push(s.subarray(from, to));
    });
    // Keep a partly filled last slab: new bytes go after the region just handed out.
    const last = this.#slabs[this.#slabs.length - 1];
    this.#slabs = last && this.#tail < SLAB ? [last] : [];
    this.#head = this.#tail;
    if (!this.#slabs.length) this.#tail = SLAB;
    this.length = 0;
    return out;
  }

  /** A copy of the queued bytes (the queue is unchanged). */
  peek(): Buffer {
    const parts: Buffer[] = [];
    this.#slabs.forEach((s, i) => parts.push(s.subarray(i === 0 ? this.#head : 0, i === this.#slabs.length - 1 ? this.#tail : SLAB)));
    return Buffer.concat(parts, this.length);
  }
}
