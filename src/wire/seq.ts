/**
 * Theory of operation: TCP sequence-number arithmetic modulo 2^32
 * (RFC 9293 §3.4 "Sequence Numbers"; RFC 1982 serial-number arithmetic).
 *
 * A sequence number is a 32-bit integer modulo 2^32. `add` returns it as a
 * signed 32-bit integer (`| 0`, -2^31..2^31-1), the form the TCP engine keeps
 * in its fields: V8 stores such a number in place (a Smi), while an unsigned
 * one at or above 2^31 would take a 16-byte heap box in every field holding
 * it (see src/tcp/conn.ts, Memory). The wire form (`wire/tcp` Header, parse
 * and emit) is unsigned; every function here accepts either form, since they
 * are equal modulo 2^32 — but `===` between the two forms of one number is
 * false, so convert first (`x | 0`). Comparisons look at the signed 32-bit difference
 * `(a - b) | 0`: `a` is "before" `b` when that difference is negative. This is
 * well defined while the two numbers are less than 2^31 apart, which TCP
 * guarantees (windows are at most 2^30, RFC 7323 §2.3). The same trick is used
 * by gVisor's `seqnum` and the kernel's `before()/after()`.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */

/** A sequence number: a 32-bit integer, signed (engine) or unsigned (wire). */
export type Seq = number;

/** a < b (mod 2^32). */
export const lt = (a: Seq, b: Seq): boolean => ((a - b) | 0) < 0;
/** a <= b (mod 2^32). */
export const le = (a: Seq, b: Seq): boolean => ((a - b) | 0) <= 0;
/** a > b (mod 2^32). */
export const gt = (a: Seq, b: Seq): boolean => ((a - b) | 0) > 0;
/** a >= b (mod 2^32). */
export const ge = (a: Seq, b: Seq): boolean => ((a - b) | 0) >= 0;
/** a + n (mod 2^32), n may be negative. @returns a signed 32-bit sequence number */
export const add = (a: Seq, n: number): Seq => (a + n) | 0;
/** a - b as an unsigned distance (mod 2^32), 0..2^32-1. */
export const sub = (a: Seq, b: Seq): number => (a - b) >>> 0;
/** a - b as a signed 32-bit difference (negative when a is before b). */
export const diff = (a: Seq, b: Seq): number => (a - b) | 0;
/** The later of a and b. */
export const max = (a: Seq, b: Seq): Seq => (((a - b) | 0) >= 0 ? a : b);
/** The earlier of a and b. */
export const min = (a: Seq, b: Seq): Seq => (((a - b) | 0) <= 0 ? a : b);

/**
 * True when start <= x < start + len (mod 2^32). An empty window (len 0)
 * contains nothing.
 * @param x the sequence number tested
 * @param start first sequence number of the window
 * @param len window length in bytes, 0..2^31
 */
export const inWindow = (x: Seq, start: Seq, len: number): boolean => (x - start) >>> 0 < len;
