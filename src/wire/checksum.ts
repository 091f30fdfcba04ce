/**
 * Theory of operation: the Internet checksum (RFC 1071) as unfolded,
 * combinable sums.
 *
 * The checksum is the 16-bit one's-complement of the one's-complement sum of
 * the data taken as big-endian 16-bit words (RFC 1071 §1). One's-complement
 * addition is associative and commutative and the end-around carries can be
 * deferred (RFC 1071 §2(A), §2(B), §2(C)), so vmnet keeps sums *unfolded*: a
 * plain non-negative JS number that may exceed 16 bits. Partial sums over
 * separate pieces (a pseudo-header, a header, a payload already in place) are
 * simply added together and folded once at the end:
 *
 *   finish(sum(v, payOff, payLen, sum(v, hdrOff, hdrLen, pseudo4(src, dst, proto, len))))
 *
 * - `sum` reads 32-bit words with `getUint32` (the fastest DataView read
 *   measured) and adds both halves, `(w >>> 16) + (w & 0xffff)`: each word adds
 *   at most 0x1fffe. Numbers are exact up to 2^53, so no periodic folding is
 *   needed for any buffer that fits in memory; `fold` copes with sums above 32
 *   bits.
 * - Byte order is handled by words: every chunk is summed as if it began on an
 *   even offset of the checksummed message, so **only the final chunk may have
 *   odd length** (its last byte is padded with a zero byte on the right, RFC
 *   1071 §4.1). A chunk after an odd-length one would be misaligned by a byte.
 * - `fold` reduces a sum to 16 bits with end-around carries; `finish` returns
 *   the value to store in a checksum field. A received message verifies when
 *   the sum over it, checksum field included, folds to 0xffff (`ok`).
 * - `update16` / `update32` patch a stored checksum after rewriting a field
 *   without re-summing the message (RFC 1624 §3, eqn. 3:
 *   HC' = ~(~HC + ~m + m')), as used for NAT address/port rewrites.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */
import type { Ip4 } from './addr.js';

/**
 * Adds the bytes `v[o .. o+len)` as big-endian 16-bit words to an unfolded sum
 * (RFC 1071 §4.1). An odd trailing byte is padded with zero on the right, so
 * only the final chunk of a message may have odd length.
 * @param v the buffer's DataView
 * @param o offset of the first byte (any alignment)
 * @param len number of bytes, >= 0
 * @param acc an unfolded sum to add to (default 0)
 * @returns the unfolded sum (non-negative, exact; may exceed 16 or 32 bits)
 */
export function sum(v: DataView, o: number, len: number, acc = 0): number {
  let s = acc;
  const end4 = o + (len & ~3);
  let i = o;
  for (; i < end4; i += 4) {
    const w = v.getUint32(i);
    s += (w >>> 16) + (w & 0xffff);
  }
  const rest = len & 3;
  if (rest >= 2) {
    s += v.getUint16(i);
    i += 2;
  }
  if (rest & 1) s += v.getUint8(i) << 8;
  return s;
}

/**
 * Folds the carries of an unfolded sum into 16 bits (end-around carry,
 * RFC 1071 §2(C)).
 * @param s an unfolded sum, 0 <= s < 2^53
 * @returns the one's-complement sum, 0..0xffff (0 only when s is 0)
 */
export function fold(s: number): number {
  while (s > 0xffffffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  s = (s >>> 16) + (s & 0xffff);
  return (s >>> 16) + (s & 0xffff);
}

/**
 * The value to store in a checksum field: the one's complement of the folded
 * sum (RFC 1071 §1).
 * @param s an unfolded sum over the message with its checksum field zeroed
 * @returns the checksum, 0..0xffff
 */
export function finish(s: number): number {
  return ~fold(s) & 0xffff;
}

/**
 * True when an unfolded sum taken over a whole message, *including* its
 * checksum field, verifies (folds to 0xffff, RFC 1071 §1).
 * @param s the unfolded sum
 */
export function ok(s: number): boolean {
  return fold(s) === 0xffff;
}

/**
 * The unfolded sum of the IPv4 pseudo-header used by UDP and TCP
 * (RFC 768 "Fields", RFC 793 §3.1): source, destination, zero, protocol,
 * transport length. Cache it per flow; it only changes with `len`.
 * @param src source address
 * @param dst destination address
 * @param proto IP protocol number (6 TCP, 17 UDP)
 * @param len transport header + payload length in bytes
 * @returns the unfolded sum
 */
export function pseudo4(src: Ip4, dst: Ip4, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/**
 * Incrementally updates a stored checksum after a 16-bit field changed from
 * `old` to `now` (RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m')).
 * @param check the checksum currently stored in the packet
 * @param old the field's previous value
 * @param now the field's new value
 * @returns the checksum to store
 */
export function update16(check: number, old: number, now: number): number {
  return ~fold((~check & 0xffff) + (~old & 0xffff) + (now & 0xffff)) & 0xffff;
}

/**
 * Incrementally updates a stored checksum after a 32-bit field (e.g. an IPv4
 * address) changed from `old` to `now` (RFC 1624 §3, applied to both halves).
 * @param check the checksum currently stored in the packet
 * @param old the field's previous value (u32)
 * @param now the field's new value (u32)
 * @returns the checksum to store
 */
export function update32(check: number, old: number, now: number): number {
  return (
    ~fold(
      (~check & 0xffff) + (~old >>> 16) + (~old & 0xffff) + (now >>> 16) + (now & 0xffff),
    ) & 0xffff
  );
}
