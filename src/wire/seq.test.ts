import { describe, expect, it } from 'vitest';
import * as seq from './seq.js';

describe('seq', () => {
  it('compares across the 2^32 wrap', () => {
    const a = 0xfffffff0;
    const b = 0x10; // a + 0x20
    expect(seq.lt(a, b)).toBe(true);
    expect(seq.le(a, b)).toBe(true);
    expect(seq.gt(b, a)).toBe(true);
    expect(seq.ge(b, a)).toBe(true);
    expect(seq.lt(b, a)).toBe(false);
    expect(seq.le(a, a) && seq.ge(a, a)).toBe(true);
    expect(seq.lt(a, a) || seq.gt(a, a)).toBe(false);
    expect(seq.max(a, b)).toBe(b);
    expect(seq.min(a, b)).toBe(a);
  });

  it('adds modulo 2^32 into the signed 32-bit form; subtracts into an unsigned distance', () => {
    expect(seq.add(0xffffffff, 1)).toBe(0);
    expect(seq.add(0xfffffff0, 0x20)).toBe(0x10);
    expect(seq.add(5, -10)).toBe(-5);
    expect(seq.add(0x7fffffff, 1)).toBe(-0x80000000); // across 2^31
    expect(seq.add(0x7ffffff0, 0x20) >>> 0).toBe(0x80000010);
    expect(seq.add(0xfffffff0, 0) === (0xfffffff0 | 0)).toBe(true); // unsigned in, signed out
    expect(seq.sub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seq.sub(0xfffffff0, 0x10)).toBe(0xffffffe0);
    expect(seq.diff(0x10, 0xfffffff0)).toBe(0x20);
    expect(seq.diff(0xfffffff0, 0x10)).toBe(-0x20);
  });

  it('compares across 2^31 (where the signed form wraps), and mixes the two forms', () => {
    const a = 0x7ffffff0; // before 2^31
    const b = seq.add(a, 0x20); // -0x7ffffff0 after it, 0x80000010 unsigned
    expect(b).toBe(-0x7ffffff0);
    expect(seq.lt(a, b) && seq.le(a, b) && seq.gt(b, a) && seq.ge(b, a)).toBe(true);
    expect(seq.lt(b, a)).toBe(false);
    expect(seq.max(a, b)).toBe(b);
    expect(seq.min(b, a)).toBe(a);
    expect(seq.sub(b, a)).toBe(0x20);
    expect(seq.diff(a, b)).toBe(-0x20);
    expect(seq.lt(a, 0x80000010) && seq.ge(b, 0x80000010) && seq.le(b, 0x80000010)).toBe(true);
    expect(seq.inWindow(b, a, 0x21) && seq.inWindow(0x80000000, a, 0x20)).toBe(true);
    expect(seq.inWindow(b, a, 0x20)).toBe(false);
  });

  it('tests window membership with wrap', () => {
    expect(seq.inWindow(0xffffffff, 0xfffffff0, 0x20)).toBe(true);
    expect(seq.inWindow(0x0f, 0xfffffff0, 0x20)).toBe(true);
    expect(seq.inWindow(0x10, 0xfffffff0, 0x20)).toBe(false);
    expect(seq.inWindow(0xffffffef, 0xfffffff0, 0x20)).toBe(false);
    expect(seq.inWindow(5, 5, 0)).toBe(false);
    expect(seq.inWindow(5, 5, 1)).toBe(true);
  });
});
