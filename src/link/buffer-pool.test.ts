import { describe, expect, it } from 'vitest';
import { boundedPool } from './buffer-pool.js';

describe('boundedPool', () => {
  it('hands given-back buffers out again by size, and keeps at most maxBytes of them idle', () => {
    const pool = boundedPool(3 * 1024);
    const a = pool.take(1024);
    const b = pool.take(1024);
    const c = pool.take(2048);
    expect([a.length, b.length, c.length]).toEqual([1024, 1024, 2048]);
    expect(new Set([a, b, c]).size).toBe(3);
    pool.give(a);
    pool.give(c);
    expect(pool.idleBytes).toBe(3072);
    pool.give(b); // past the bound: left to the garbage collector
    expect(pool.idleBytes).toBe(3072);
    expect(pool.take(2048)).toBe(c);
    expect(pool.take(1024)).toBe(a);
    expect(pool.take(1024)).not.toBe(b); // b was not kept: a fresh one
    expect(pool.idleBytes).toBe(0);
  });
});
