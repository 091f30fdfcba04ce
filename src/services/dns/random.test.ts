import { describe, expect, it } from 'vitest';
import { bulkRandom32 } from './random.js';

describe('bulkRandom32', () => {
  it('refills its buffer once per `words` values and gives u32s', () => {
    const spy = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
    let calls = 0;
    const orig = globalThis.crypto.getRandomValues;
    globalThis.crypto.getRandomValues = ((a: Uint32Array) => (calls++, spy(a))) as typeof orig;
    try {
      const r = bulkRandom32(16);
      const seen = new Set<number>();
      for (let i = 0; i < 40; i++) {
        const v = r();
        expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true);
        seen.add(v);
      }
      expect(calls).toBe(3);
      expect(seen.size).toBeGreaterThan(35);
    } finally {
      globalThis.crypto.getRandomValues = orig;
    }
  });
});
