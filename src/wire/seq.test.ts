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

  it('adds and subtracts modulo 2^32 and stays unsigned', () => {
    expect(seq.add(0xffffffff, 1)).toBe(0);
    expect(seq.add(0xfffffff0, 0x20)).toBe(0x10);
    expect(seq.add(5, -10)).toBe(0xfffffffb);
    expect(seq.sub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seq.sub(0xfffffff0, 0x10)).toBe(0xffffffe0);
    expect(seq.diff(0x10, 0xfffffff0)).toBe(0x20);
    expect(seq.diff(0xfffffff0, 0x10)).toBe(-0x20);
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
