/**
 * Byte-ring helpers shared by the send and receive buffers: how a lazily
 * allocated ring grows, and copying bytes that may wrap around its end.
 */

/** Smallest ring allocated (the first byte of a connection allocates this). */
export const MIN_RING = 4096;

/**
 * The capacity a ring of `current` bytes (null: none yet) must grow to so
 * that `need` bytes fit: doubling from MIN_RING, capped at `max` (or at
 * `need` when that is larger).
 * @returns the new capacity, or -1 when the current ring already suffices
 */
export function grownCapacity(current: Uint8Array | null, need: number, max: number): number {
  let cap = current === null ? MIN_RING : current.length;
  while (cap < need) cap *= 2;
  if (cap > max) cap = Math.max(max, need);
  return current !== null && cap <= current.length ? -1 : cap;
}

/**
 * Copies `len` bytes starting `offset` bytes after `head` in ring `b`.
 * @param b the ring storage
 * @param head index of the ring's first byte
 * @param offset bytes after `head` to start at
 * @param len bytes to copy (the caller guarantees they are held)
 * @param dst destination
 * @param dstOff offset in `dst`
 */
export function ringCopyOut(b: Uint8Array, head: number, offset: number, len: number, dst: Uint8Array, dstOff: number): void {
  if (len <= 0) return;
  const cap = b.length;
  let s = head + offset;
  if (s >= cap) s -= cap;
  const first = Math.min(len, cap - s);
  dst.set(b.subarray(s, s + first), dstOff);
  if (first < len) dst.set(b.subarray(0, len - first), dstOff + first);
}
