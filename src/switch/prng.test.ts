import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';

describe('Prng', () => {
  it('is reproducible: the same seed gives the same sequence, another seed another one', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const sa = Array.from({ length: 50 }, () => a.u32());
    expect(Array.from({ length: 50 }, () => b.u32())).toEqual(sa);
    expect(Array.from({ length: 50 }, () => c.u32())).not.toEqual(sa);
  });

  it('gives numbers in [0, 1) spread evenly (chi-square over 16 bins within the 99.9% bound)', () => {
    const r = new Prng(7);
    const n = 160_000;
    const bins = new Array<number>(16).fill(0);
    for (let i = 0; i < n; i++) {
      const x = r.next();
      expect(x >= 0 && x < 1).toBe(true);
      bins[Math.floor(x * 16)]!++;
    }
    const e = n / 16;
    const chi2 = bins.reduce((s, o) => s + ((o - e) * (o - e)) / e, 0);
    expect(chi2).toBeLessThan(37.7); // chi-square, 15 degrees of freedom, p = 0.001
  });
});
