import { readFile } from 'node:fs/promises';
import wabt from 'wabt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { hex, viewOf } from '../../test/helpers/round-trip.js';
import {
  WASM_MIN_COPY,
  WASM_MIN_IN_PLACE,
  accelerated,
  finish,
  fold,
  ok,
  fillWith,
  pseudo4,
  pseudo6,
  rewrite16,
  verifyWith,
  simdBuffer,
  sum,
  sumJs,
  sumWasm,
  update16,
  update32,
} from './checksum.js';
import { KERNEL_BASE64 } from './checksum-kernel.js';

/** Byte-at-a-time RFC 1071 reference, independent of the word loop. */
function reference(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Deterministic xorshift bytes. */
function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe('checksum', () => {
  it('matches the RFC 1071 §3 numerical example', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    const s = sum(viewOf(b), 0, b.length);
    expect(s).toBe(0x2ddf0);
    expect(fold(s)).toBe(0xddf2);
    expect(finish(s)).toBe(0x220d);
  });

  it('pads an odd trailing byte with zero on the right', () => {
    const b = hex('010203');
    expect(sum(viewOf(b), 0, 3)).toBe(0x0102 + 0x0300);
    expect(sum(viewOf(b), 0, 1)).toBe(0x0100);
    expect(sum(viewOf(b), 0, 0, 7)).toBe(7);
  });

  it('agrees with a byte-wise reference for every length 0..130 and offsets 0..5', () => {
    const b = bytes(200, 42);
    const v = viewOf(b);
    for (let o = 0; o < 6; o++)
      for (let n = 0; n <= 130; n++) expect(finish(sum(v, o, n)), `o=${o} n=${n}`).toBe(reference(b.subarray(o, o + n)));
  });

  it('reads through a DataView over a buffer at a non-zero byteOffset', () => {
    const backing = new Uint8Array(64);
    const data = hex('0001 f203 f4f5 f6f7 ab');
    backing.set(data, 5);
    const sub = backing.subarray(5, 5 + data.length); // byteOffset 5
    expect(sub.byteOffset).toBe(5);
    expect(finish(sum(viewOf(sub), 0, sub.length))).toBe(reference(data));
  });

  it('combines even-length chunks; only the last may be odd', () => {
    const b = bytes(101, 7);
    const v = viewOf(b);
    const whole = finish(sum(v, 0, 101));
    expect(finish(sum(v, 40, 61, sum(v, 10, 30, sum(v, 0, 10))))).toBe(whole);
    // A misaligned (odd) middle chunk gives a different answer: the documented restriction.
    expect(finish(sum(v, 41, 60, sum(v, 0, 41)))).not.toBe(whole);
  });

  it('stays exact on buffers whose sum exceeds 32 bits (JS loop)', () => {
    const n = 1 << 20;
    const b = new Uint8Array(n).fill(0xff);
    const s = sumJs(viewOf(b), 0, n);
    expect(s).toBe((n / 2) * 0xffff);
    expect(s).toBeGreaterThan(0xffffffff);
    expect(fold(s)).toBe(0xffff);
    expect(finish(s)).toBe(0);
    expect(finish(sum(viewOf(b), 0, n))).toBe(0);
    const c = bytes(n + 1, 99);
    expect(finish(sum(viewOf(c), 0, n + 1))).toBe(reference(c));
  });

  it('folds like arithmetic mod 0xffff for huge sums', () => {
    for (const x of [1, 0xffff, 0x10000, 0x1fffe, 0xffffffff, 0x100000000, 2 ** 40 + 12345, 2 ** 52 - 1]) {
      expect(fold(x), String(x)).toBe(((x - 1) % 0xffff) + 1);
    }
    expect(fold(0)).toBe(0);
  });

  it('verifies a message that includes its own checksum', () => {
    const b = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    expect(ok(sum(viewOf(b), 0, 20))).toBe(true);
    b[11] = 0x62;
    expect(ok(sum(viewOf(b), 0, 20))).toBe(false);
  });

  it('computes the IPv4 pseudo-header partial sum', () => {
    // 10.0.2.15 -> 10.0.2.3, UDP, 13 bytes: words 0a00 020f 0a00 0203 0011 000d
    const p = pseudo4(0x0a00020f, 0x0a000203, 17, 13);
    const b = hex('0a00020f 0a000203 0011 000d');
    expect(p).toBe(sum(viewOf(b), 0, b.length));
    expect(pseudo4(0xffffffff, 0xffffffff, 255, 0xffff)).toBe(4 * 0xffff + 255 + 0xffff);
  });

  it('computes the IPv6 pseudo-header partial sum (RFC 8200 §8.1)', () => {
    // src, dst, 32-bit length, 3 zero bytes, next header: summed as the 40 bytes they are on the wire
    const src = hex('fd0000766d6e0000505400fffe123456');
    const dst = hex('fd0000766d6e00000000000000000002');
    for (const len of [0, 13, 0xffff, 0x12345]) {
      const b = new Uint8Array(40);
      b.set(src);
      b.set(dst, 16);
      viewOf(b).setUint32(32, len);
      b[39] = 17;
      expect(fold(pseudo6(src, dst, 17, len)), `len ${len}`).toBe(fold(sum(viewOf(b), 0, 40)));
    }
    const ff = new Uint8Array(16).fill(0xff);
    expect(pseudo6(ff, ff, 255, 0xffff)).toBe(16 * 0xffff + 255 + 0xffff);
  });

  it('verifies and fills through one path for every pseudo-header', () => {
    const b = hex('9c40 0035 000d 1234 766d6e6574');
    const v = viewOf(b);
    const p = pseudo4(0x0a00020f, 0x0a000203, 17, 13);
    expect(fillWith(v, 0, 13, 6, p, 0xffff)).toBe(0xf279); // the udp.test.ts fixture
    expect(verifyWith(v, 0, 13, p)).toBe(true);
    expect(verifyWith(v, 0, 13, p + 1)).toBe(false);
    // a sum that folds to 0xffff stores 0, or the zeroAs value
    const z = hex('04d2 162e 000a 0000 ccc9');
    const pz = pseudo4(0x0a00020f, 0x0a000202, 17, 10);
    expect(fillWith(viewOf(z), 0, 10, 6, pz)).toBe(0);
    expect(fillWith(viewOf(z), 0, 10, 6, pz, 0xffff)).toBe(0xffff);
  });

  it('rewrites a field in place with an incremental patch equal to a recomputation', () => {
    for (let seed = 1; seed < 50; seed++) {
      const b = bytes(64, seed);
      const v = viewOf(b);
      v.setUint16(2, 0);
      v.setUint16(2, finish(sum(v, 0, 64)));
      rewrite16(v, 20, 2, (seed * 7919) & 0xffff);
      expect(ok(sum(v, 0, 64)), `seed ${seed}`).toBe(true);
    }
  });

  it('updates incrementally like a full recomputation (RFC 1624)', () => {
    for (let seed = 1; seed < 200; seed++) {
      const b = bytes(40, seed);
      const v = viewOf(b);
      v.setUint16(10, 0);
      v.setUint16(10, finish(sum(v, 0, 40)));
      const old16 = v.getUint16(20);
      const new16 = bytes(2, seed * 31 + 1).reduce((a, x) => (a << 8) | x, 0);
      v.setUint16(20, new16);
      const inc = update16(v.getUint16(10), old16, new16);
      v.setUint16(10, inc);
      expect(ok(sum(v, 0, 40)), `seed ${seed}`).toBe(true);

      const old32 = v.getUint32(12);
      const new32 = (old32 ^ (seed * 0x9e3779b1)) >>> 0;
      v.setUint32(12, new32);
      const inc32 = update32(v.getUint16(10), old32, new32);
      v.setUint16(10, inc32);
      expect(ok(sum(v, 0, 40)), `seed ${seed} u32`).toBe(true);
      v.setUint16(10, 0);
      expect(inc32).toBe(finish(sum(v, 0, 40)));
    }
  });

  it('update16 is the RFC 1624 §4 example', () => {
    // HC = 0xdd2f, m = 0x5555, m' = 0x3285 → HC' = 0x0000 (eqn. 3; eqn. 2 gives 0xffff)
    expect(update16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });
});

describe('checksum: wasm kernel', () => {
  const MAX_OFFSET = 40;
  const LENGTHS = [
    0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65,
    WASM_MIN_IN_PLACE - 1, WASM_MIN_IN_PLACE, WASM_MIN_IN_PLACE + 1,
    WASM_MIN_COPY - 1, WASM_MIN_COPY, WASM_MIN_COPY + 1,
    1460, 1461, 65535,
  ];
  const SIZE = MAX_OFFSET + 65536;
  const random = bytes(SIZE, 1234);
  const inPlace = simdBuffer(SIZE);
  inPlace.set(random);
  // A plain copy at byteOffset 3 of its backing store, so the copy path's source offset is not 0.
  const plain = new Uint8Array(SIZE + 3).subarray(3);
  plain.set(random);

  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('is in use, and simdBuffer hands out views of its memory', () => {
    expect(accelerated).toBe(true);
    expect(inPlace.byteOffset).toBeGreaterThan(0);
    expect(inPlace.byteOffset % 64).toBe(0);
    expect(inPlace.buffer.byteLength).toBe(16 << 20);
  });

  it('agrees with the JS loop in place and copied, every offset 0..40, lengths at every boundary', () => {
    const iv = viewOf(inPlace);
    const pv = viewOf(plain);
    for (let o = 0; o <= MAX_OFFSET; o++) {
      for (const n of LENGTHS) {
        const js = fold(sumJs(pv, o, n));
        const at = `o=${o} n=${n}`;
        expect(fold(sumWasm(iv, o, n)), `in place ${at}`).toBe(js);
        expect(fold(sumWasm(pv, o, n)), `copied ${at}`).toBe(js);
        expect(fold(sum(iv, o, n)), `sum in place ${at}`).toBe(js);
        expect(fold(sum(pv, o, n)), `sum copied ${at}`).toBe(js);
        expect(fold(sumWasm(iv, o, n, 0x12345)), `acc ${at}`).toBe(fold(sumJs(pv, o, n, 0x12345)));
      }
    }
  });

  it('agrees with a byte-wise reference for every length 0..130 at offsets 0..5', () => {
    for (let o = 0; o < 6; o++)
      for (let n = 0; n <= 130; n++) {
        const want = reference(random.subarray(o, o + n));
        expect(finish(sumWasm(viewOf(inPlace), o, n)), `in place o=${o} n=${n}`).toBe(want);
        expect(finish(sumWasm(viewOf(plain), o, n)), `copied o=${o} n=${n}`).toBe(want);
      }
  });

  it('keeps zero only for all-zero bytes, and never folds a non-zero sum to 0', () => {
    const z = viewOf(new Uint8Array(300));
    expect(sumWasm(z, 0, 300)).toBe(0);
    expect(sumWasm(z, 1, 299, 7)).toBe(7);
    const one = new Uint8Array(300);
    one[299] = 1; // the low byte of the last word
    expect(sumWasm(viewOf(one), 0, 300)).toBe(1);
    const ff = viewOf(new Uint8Array(300).fill(0xff));
    expect(sumWasm(ff, 0, 300)).toBe(0xffff);
  });

  it('combines even-length chunks summed in place', () => {
    const v = viewOf(inPlace);
    const whole = finish(sumJs(v, 5, 3001));
    expect(finish(sumWasm(v, 5 + 2000, 1001, sumWasm(v, 5 + 64, 1936, sumJs(v, 5, 64))))).toBe(whole);
  });

  it('does not overflow its lanes past 512 KiB per call (in place and copied)', () => {
    const big = (3 << 20) + 64;
    const region = simdBuffer(big);
    expect(region.buffer).toBe(inPlace.buffer);
    const plainBig = new Uint8Array(big);
    for (const [name, b] of [['in place', region], ['copied', plainBig]] as const) {
      b.fill(0xff); // the worst case: every lane gains 0x1fffe per turn
      const v = viewOf(b);
      for (const n of [(512 << 10) - 32, 512 << 10, (512 << 10) + 32, (1 << 20) + 1, 3 << 20, (3 << 20) + 33]) {
        expect(fold(sumWasm(v, 0, n)), `${name} n=${n}`).toBe(fold(sumJs(v, 0, n)));
        expect(fold(sumWasm(v, 1, n)), `${name} o=1 n=${n}`).toBe(fold(sumJs(v, 1, n)));
      }
      b.set(bytes(big, 77));
      for (const n of [(1 << 20) + 1, (3 << 20) + 33]) expect(fold(sumWasm(v, 3, n)), `${name} random n=${n}`).toBe(fold(sumJs(v, 3, n)));
    }
  });

  it('falls back to plain arrays once the pool is exhausted; earlier views stay valid', async () => {
    vi.resetModules();
    const fresh = await import('./checksum.js'); // its own kernel, memory and pool
    const wasm = fresh.simdBuffer(0).buffer;
    expect(wasm).not.toBe(inPlace.buffer);
    const views: Uint8Array[] = [];
    for (;;) {
      const b = fresh.simdBuffer(1 << 20);
      if (b.buffer !== wasm) {
        expect(b.byteLength).toBe(1 << 20);
        expect(b.byteOffset).toBe(0);
        expect(b.every((x) => x === 0)).toBe(true);
        b.set(random.subarray(0, 4000));
        expect(fresh.finish(fresh.sum(viewOf(b), 1, 3999))).toBe(reference(random.subarray(1, 4000)));
        break;
      }
      views.push(b);
    }
    expect(views.length).toBe(15); // 16 MiB less the 64 KiB scratch
    for (let i = 1; i < views.length; i++) expect(views[i]!.byteOffset).toBeGreaterThanOrEqual(views[i - 1]!.byteOffset + (1 << 20));
    expect(views.every((b) => b.byteLength === 1 << 20)).toBe(true); // not detached: the memory never grew
    const tail = fresh.simdBuffer(1000); // what is left is still handed out
    expect(tail.buffer).toBe(wasm);
  });

  it('hands a released region to the next request of its size, and ignores plain arrays', async () => {
    vi.resetModules();
    const fresh = await import('./checksum.js');
    const a = fresh.simdBuffer(3000);
    const b = fresh.simdBuffer(3000);
    fresh.releaseSimdBuffer(a);
    fresh.releaseSimdBuffer(new Uint8Array(3000)); // not from the pool: left alone
    expect(fresh.simdBuffer(2999)).not.toBe(a); // other sizes are not served from it
    expect(fresh.simdBuffer(3000)).toBe(a);
    const c = fresh.simdBuffer(3000);
    expect(c).not.toBe(a);
    expect(c.buffer).toBe(b.buffer); // a new region of the same memory
  });

  it('honours the VMNET_NO_WASM kill switch', async () => {
    vi.stubEnv('VMNET_NO_WASM', '1');
    vi.resetModules();
    const off = await import('./checksum.js');
    expect(off.accelerated).toBe(false);
    const b = off.simdBuffer(SIZE);
    expect(b.buffer).not.toBe(inPlace.buffer);
    b.set(random);
    expect(off.fold(off.sum(viewOf(b), 3, 1461))).toBe(fold(sumJs(viewOf(plain), 3, 1461)));
    expect(off.fold(off.sumWasm(viewOf(b), 3, 1461))).toBe(fold(sumJs(viewOf(plain), 3, 1461)));
  });

  it('embeds exactly the bytes wasm/checksum.wat compiles to (run `npm run wasm` after editing it)', async () => {
    const w = await wabt();
    const source = await readFile(new URL('../../wasm/checksum.wat', import.meta.url), 'utf8');
    const m = w.parseWat('checksum.wat', source, { simd: true }); // as wasm/build.mjs does
    try {
      m.validate();
      const compiled = m.toBinary({}).buffer;
      expect(Buffer.from(KERNEL_BASE64, 'base64').equals(Buffer.from(compiled))).toBe(true);
    } finally {
      m.destroy();
    }
    const embedded = w.readWasm(new Uint8Array(Buffer.from(KERNEL_BASE64, 'base64')), { simd: true });
    try {
      // Maximum = minimum: the memory can never grow, so simdBuffer views are never detached.
      expect(embedded.toText({})).toMatch(/\(memory \(;0;\) 256 256\)/);
    } finally {
      embedded.destroy();
    }
  });
});
