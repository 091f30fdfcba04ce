import { describe, expect, it } from 'vitest';
import { hex, viewOf } from '../../test/helpers/round-trip.js';
import { finish, fold, ok, pseudo4, sum, update16, update32 } from './checksum.js';

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

  it('stays exact on buffers whose sum exceeds 32 bits', () => {
    const n = 1 << 20;
    const b = new Uint8Array(n).fill(0xff);
    const s = sum(viewOf(b), 0, n);
    expect(s).toBe((n / 2) * 0xffff);
    expect(s).toBeGreaterThan(0xffffffff);
    expect(fold(s)).toBe(0xffff);
    expect(finish(s)).toBe(0);
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
