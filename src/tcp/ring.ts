/**
 * Byte-ring helper shared by the send and receive buffers: copies bytes that
 * may wrap around the end of a ring into a flat destination.
 */

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
