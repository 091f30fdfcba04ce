import { describe, expect, it } from 'vitest';
import { after, due, earlier, OFF } from './deadline.js';

describe('deadline', () => {
  it('rounds a deadline up to a whole ms, and a non-finite delay to OFF', () => {
    expect(after(1000.25, 200)).toBe(1201);
    expect(after(1000, 200)).toBe(1200);
    expect(after(5, 0.1)).toBe(6);
    expect(after(5, Infinity)).toBe(OFF);
  });

  it('OFF is never due and never the earlier of two', () => {
    expect(due(OFF, 1e12)).toBe(false);
    expect(due(0, 0)).toBe(true);
    expect(due(10, 9.99)).toBe(false);
    expect(due(10, 10)).toBe(true);
    expect(earlier(OFF, 7)).toBe(7);
    expect(earlier(7, OFF)).toBe(7);
    expect(earlier(OFF, OFF)).toBe(OFF);
    expect(earlier(3, 7)).toBe(3);
    expect(earlier(7, 3)).toBe(3);
  });
});
