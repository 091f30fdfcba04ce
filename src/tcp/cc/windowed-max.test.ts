import { describe, expect, it } from 'vitest';
import { WindowedMax } from './windowed-max.js';

describe('WindowedMax (BBR BtlBw filter)', () => {
  it('keeps the largest sample of the window and falls back to the next best as the best ages out', () => {
    const f = new WindowedMax(10);
    expect(f.update(0, 5)).toBe(5);
    expect(f.update(1, 9)).toBe(9); // a new best replaces all
    expect(f.update(2, 7)).toBe(9);
    expect(f.update(6, 6)).toBe(9);
    expect(f.update(11, 4)).toBe(9); // 9 is from t=1: still within 10
    // t=12: 9 (t=1) ages out; the second best since it takes over
    const v = f.update(12, 3);
    expect(v).toBeLessThan(9);
    expect(v).toBeGreaterThanOrEqual(6);
    // nothing in the window any more: the new sample is all there is
    expect(f.update(40, 2)).toBe(2);
  });

  it('a decreasing series tracks the maximum of the last window only', () => {
    const f = new WindowedMax(10);
    for (let t = 0; t <= 100; t++) {
      const v = f.update(t, 1000 - t);
      // the true windowed max is the sample 10 rounds ago; the three-sample filter may lag by at most the window
      expect(v).toBeLessThanOrEqual(1000 - Math.max(0, t - 20));
      expect(v).toBeGreaterThanOrEqual(1000 - t);
    }
    expect(f.value).toBeLessThan(1000 - 80);
  });
});
