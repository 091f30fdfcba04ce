import { describe, expect, it } from 'vitest';
import { macrotaskClock } from './clock.js';

describe('macrotaskClock', () => {
  it('reads the clock once per macrotask: calls in one callback share the reading, the next callback gets a fresh one', async () => {
    let reads = 0;
    const clock = macrotaskClock(() => ++reads * 10);
    expect([clock(), clock(), clock()]).toEqual([10, 10, 10]);
    expect(reads).toBe(1);
    await new Promise((r) => setTimeout(r, 0)); // a later macrotask
    expect([clock(), clock()]).toEqual([20, 20]);
    await Promise.resolve(); // a promise continuation: queued after the microtask that forgot the reading
    expect(clock()).toBe(30);
    expect(reads).toBe(3);
  });
});
