/**
 * Theory of operation: the Internet checksum (RFC 1071) as unfolded,
 * combinable sums, with a WebAssembly SIMD kernel for long runs.
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
 * - `sum` takes one of two paths behind the same contract, chosen by length
 *   (thresholds measured with bench/checksum.ts, see wasm/README.md):
 *   - Short runs take a JS loop (`sumJs`) that reads 32-bit words with
 *     `getUint32` (the fastest DataView read measured) and adds both halves,
 *     `(w >>> 16) + (w & 0xffff)`: each word adds at most 0x1fffe. Numbers
 *     are exact up to 2^53, so no periodic folding is needed for any buffer
 *     that fits in memory; `fold` copes with sums above 32 bits.
 *   - Longer runs take the 128-bit SIMD kernel of wasm/checksum.wat
 *     (`sumWasm`, about 10x the JS loop on long runs), which returns the
 *     *folded* sum of the bytes; that is added to `acc`. The kernel reads
 *     only its own memory. Bytes already there (a `simdBuffer`, where the
 *     gateway builds its frames) are summed in place from
 *     {@link WASM_MIN_IN_PLACE} bytes on; other buffers are copied, 64 KiB
 *     at a time, into a scratch region at the start of that memory, which
 *     pays from {@link WASM_MIN_COPY} bytes on.
 *   So a returned sum is exact, or congruent to the exact one modulo 0xffff
 *   and zero only when it is: `fold`, `finish` and `ok` cannot tell them
 *   apart, but never compare or subtract unfolded sums.
 * - Byte order is handled by words: every chunk is summed as if it began on an
 *   even offset of the checksummed message, so **only the final chunk may have
 *   odd length** (its last byte is padded with a zero byte on the right, RFC
 *   1071 §4.1). A chunk after an odd-length one would be misaligned by a byte.
 *   The copy path's 64 KiB pieces are even, so they keep the alignment.
 * - `fold` reduces a sum to 16 bits with end-around carries; `finish` returns
 *   the value to store in a checksum field. A received message verifies when
 *   the sum over it, checksum field included, folds to 0xffff (`ok`).
 * - `update16` / `update32` patch a stored checksum after rewriting a field
 *   without re-summing the message (RFC 1624 §3, eqn. 3:
 *   HC' = ~(~HC + ~m + m')), as used for NAT address/port rewrites.
 *
 * The wasm memory is a fixed 16 MiB that can never grow (its maximum is its
 * size): growing would detach every view handed out by `simdBuffer`. It holds
 * the copy scratch, then a bump-allocated pool of long-lived regions; the
 * pool's cursor is this module's only mutable state, kept on purpose (one
 * memory per process, like the kernel itself). Untouched pages cost no
 * resident memory. Without WebAssembly SIMD (e.g. `node --jitless`), or with
 * the kill switch VMNET_NO_WASM set to any non-empty value (read once, at
 * load), every sum takes the JS loop and `simdBuffer` returns plain arrays.
 *
 * Pure: no I/O, no Node runtime imports; the data path allocates nothing
 * except one small view per copied chunk on the copy path.
 */
import type { Ip4, Ip6 } from './addr.js';
import { KERNEL_BASE64 } from './checksum-kernel.js';

/**
 * Smallest run that {@link sum} hands to the wasm kernel when the bytes are
 * already in its memory (a {@link simdBuffer}). A call into wasm costs about
 * 10 ns, as much as the JS loop takes for 24 bytes (bench/checksum.ts,
 * wasm/README.md).
 */
export const WASM_MIN_IN_PLACE = 32;

/**
 * Smallest run that {@link sum} copies into the wasm memory to sum there.
 * The copy's view and `set` add about 50 ns, which the kernel wins back from
 * the JS loop at about 160 bytes (bench/checksum.ts, wasm/README.md).
 */
export const WASM_MIN_COPY = 160;

/** Bytes at the start of the wasm memory used to copy foreign buffers into; even (see the file comment). */
const SCRATCH_LEN = 64 * 1024;

/** Alignment of `simdBuffer` regions: a cache line. */
const POOL_ALIGN = 64;

/** The kernel's exports (wasm/checksum.wat). */
interface Kernel {
  readonly memory: { readonly buffer: ArrayBuffer };
  /** The folded, big-endian one's-complement sum of memory[ptr, ptr+len). */
  sum(ptr: number, len: number): number;
}

/** The slice of the WebAssembly JS API used here (neither lib ES2022 nor @types/node 20 declares it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => unknown;
  Instance: new (module: unknown) => { readonly exports: Kernel };
};

/** Instantiates the kernel synchronously (a few hundred bytes), or null when wasm SIMD is unavailable or switched off. */
function instantiate(): Kernel | null {
  if (globalThis.process?.env.VMNET_NO_WASM) return null;
  try {
    const bytes = Uint8Array.from(atob(KERNEL_BASE64), (c) => c.charCodeAt(0));
    return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
  } catch {
    return null;
  }
}

const kernel = instantiate();
const memory = kernel === null ? new ArrayBuffer(0) : kernel.memory.buffer;
const scratch = new Uint8Array(memory, 0, kernel === null ? 0 : SCRATCH_LEN);
let poolNext = SCRATCH_LEN;

/** True when the wasm SIMD kernel is in use (false without WebAssembly SIMD or with VMNET_NO_WASM set). */
export const accelerated = kernel !== null;

/**
 * Adds the bytes `v[o .. o+len)` as big-endian 16-bit words to an unfolded sum
 * (RFC 1071 §4.1). An odd trailing byte is padded with zero on the right, so
 * only the final chunk of a message may have odd length. Runs of at least
 * {@link WASM_MIN_IN_PLACE} bytes in a {@link simdBuffer}, or at least
 * {@link WASM_MIN_COPY} bytes elsewhere, go to the wasm kernel (`sumWasm`);
 * the rest to the JS loop (`sumJs`).
 * @param v the buffer's DataView
 * @param o offset of the first byte (any alignment)
 * @param len number of bytes, >= 0; `o + len` must lie within `v`
 * @param acc an unfolded sum to add to (default 0)
 * @returns an unfolded sum (non-negative; may exceed 16 or 32 bits), exact or
 *   congruent to the exact sum modulo 0xffff (see the file comment)
 */
export function sum(v: DataView, o: number, len: number, acc = 0): number {
  if (len >= WASM_MIN_IN_PLACE && kernel !== null && (len >= WASM_MIN_COPY || v.buffer === memory)) return sumWasm(v, o, len, acc);
  return sumJs(v, o, len, acc);
}

/**
 * The JS loop behind {@link sum}, whatever the length: 32-bit DataView reads.
 * @param v the buffer's DataView
 * @param o offset of the first byte (any alignment)
 * @param len number of bytes, >= 0
 * @param acc an unfolded sum to add to (default 0)
 * @returns the exact unfolded sum (non-negative; may exceed 16 or 32 bits)
 */
export function sumJs(v: DataView, o: number, len: number, acc = 0): number {
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
 * The wasm path behind {@link sum}, whatever the length: in place when `v` is
 * over the kernel's memory (a {@link simdBuffer}), else through the scratch
 * region in even 64 KiB pieces. Falls back to {@link sumJs} when the kernel is
 * unavailable ({@link accelerated} false).
 * @param v the buffer's DataView
 * @param o offset of the first byte (any alignment)
 * @param len number of bytes, >= 0; `o + len` must lie within `v`
 * @param acc an unfolded sum to add to (default 0)
 * @returns `acc` plus the folded sum of each piece (see the file comment)
 */
export function sumWasm(v: DataView, o: number, len: number, acc = 0): number {
  if (kernel === null) return sumJs(v, o, len, acc);
  if (v.buffer === memory) return acc + kernel.sum(v.byteOffset + o, len);
  let s = acc;
  for (let done = 0; done < len; done += SCRATCH_LEN) {
    const n = Math.min(SCRATCH_LEN, len - done);
    scratch.set(new Uint8Array(v.buffer, v.byteOffset + o + done, n));
    s += kernel.sum(0, n);
  }
  return s;
}

/**
 * A buffer inside the wasm kernel's memory, so that {@link sum} over it runs
 * in place, without a copy: for long-lived buffers that frames are built or
 * reassembled in (one per gateway or per guest link), never per packet.
 * Regions are bump-allocated from a fixed pool; {@link releaseSimdBuffer}
 * returns one for reuse by a later request of the same size (a link that
 * closes gives its buffer to the next). The memory never grows, so the views
 * stay valid for the life of the process. When the pool is exhausted, or
 * wasm is unavailable, a plain `new Uint8Array(size)` is returned instead:
 * just as correct, only summed through the copy path.
 * @param size bytes, >= 0
 * @returns `size` bytes, zero-filled when new (a reused region keeps its old
 *   bytes); usually at a non-zero `byteOffset` of a shared buffer, so view it
 *   with `new DataView(b.buffer, b.byteOffset, b.byteLength)`
 */
export function simdBuffer(size: number): Uint8Array {
  const reuse = released.get(size)?.pop();
  if (reuse !== undefined) return reuse;
  if (kernel === null || size > memory.byteLength - poolNext) return new Uint8Array(size);
  const b = new Uint8Array(memory, poolNext, size);
  poolNext += (b.length + POOL_ALIGN - 1) & -POOL_ALIGN;
  return b;
}

/** Released pool regions by size, for simdBuffer to hand out again. */
const released = new Map<number, Uint8Array[]>();

/**
 * Gives a {@link simdBuffer} region back for reuse; the caller must not touch
 * it afterwards. Buffers from outside the pool are ignored (left to the GC).
 */
export function releaseSimdBuffer(b: Uint8Array): void {
  if (kernel === null || b.buffer !== memory) return;
  let list = released.get(b.length);
  if (list === undefined) released.set(b.length, (list = []));
  list.push(b);
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
 * The unfolded sum of the IPv6 pseudo-header used by every upper layer that
 * checksums over IPv6 (RFC 8200 §8.1: TCP, UDP, ICMPv6): source,
 * destination, 32-bit upper-layer length, three zero bytes, next header.
 * With a Routing header the destination is the final one (RFC 8200 §8.1).
 * Cache it per flow; it only changes with `len`.
 * @param src source address (16 bytes)
 * @param dst destination address (16 bytes)
 * @param proto upper-layer protocol number (6 TCP, 17 UDP, 58 ICMPv6)
 * @param len upper-layer header + payload length in bytes (u32)
 * @returns the unfolded sum
 */
export function pseudo6(src: Ip6, dst: Ip6, proto: number, len: number): number {
  let s = proto + (len >>> 16) + (len & 0xffff);
  for (let i = 0; i < 16; i += 2) s += ((src[i]! << 8) | src[i + 1]!) + ((dst[i]! << 8) | dst[i + 1]!);
  return s;
}

/**
 * True when a transport message verifies: the sum over `pseudo` plus the
 * whole message, checksum field included, folds to 0xffff (RFC 1071 §1).
 * The one check behind TCP, UDP and ICMPv6 over both IP versions.
 * @param v the buffer's DataView
 * @param o offset of the message
 * @param len message length (header + payload)
 * @param pseudo the pseudo-header sum (`pseudo4` or `pseudo6`)
 */
export function verifyWith(v: DataView, o: number, len: number, pseudo: number): boolean {
  return ok(sum(v, o, len, pseudo));
}

/**
 * Computes the checksum of a transport message over `pseudo` plus the
 * message and stores it at `o + field` (RFC 1071; RFC 768, RFC 9293 §3.1,
 * RFC 4443 §2.3). The field is zeroed first, so its old value does not count.
 * @param v the buffer's DataView
 * @param o offset of the message (payload already in place)
 * @param len message length (header + payload)
 * @param field offset of the checksum field within the message
 * @param pseudo the pseudo-header sum (`pseudo4` or `pseudo6`)
 * @param zeroAs the value stored when the checksum computes to 0: 0 (TCP,
 *   ICMPv6) or 0xffff (UDP, where 0 means "none", RFC 768)
 * @returns the checksum stored
 */
export function fillWith(v: DataView, o: number, len: number, field: number, pseudo: number, zeroAs = 0): number {
  v.setUint16(o + field, 0);
  const c = finish(sum(v, o, len, pseudo)) || zeroAs;
  v.setUint16(o + field, c);
  return c;
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
 * Rewrites a 16-bit field of a checksummed message in place and patches the
 * stored checksum with `update16` (RFC 1624 §3), so the rest of the message
 * is not summed again: e.g. an ICMP echo request's type/code word turned
 * into a reply's.
 * @param v the buffer's DataView
 * @param field offset of the 16-bit field (even distance from the message start)
 * @param checksum offset of the message's checksum field
 * @param now the field's new value
 */
export function rewrite16(v: DataView, field: number, checksum: number, now: number): void {
  const old = v.getUint16(field);
  v.setUint16(field, now);
  v.setUint16(checksum, update16(v.getUint16(checksum), old, now));
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
