import { describe, expect, it } from 'vitest';
import { ByteQueue } from './byte-queue.js';

const bytes = (n: number, from = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 255));

describe('ByteQueue', () => {
  it('keeps tiny writes in few slabs and hands them out in order', () => {
    const q = new ByteQueue(1 << 20);
    const all: Buffer[] = [];
    for (let i = 0; i < 100_000; i++) {
      const b = bytes(3, i);
      all.push(b);
      q.push(b);
    }
    const out = q.take();
    expect(out.length).toBeLessThanOrEqual(5); // 300,000 bytes in 64 KiB slabs
    expect(Buffer.concat(out).equals(Buffer.concat(all))).toBe(true);
    expect(q.length).toBe(0);
  });
  it('drops the oldest bytes past the cap, counted, across slabs and for one big write', () => {
    const q = new ByteQueue(100_000);
    const data = bytes(250_000);
    for (let o = 0; o < data.length; o += 7000) q.push(data.subarray(o, o + 7000));
    expect(q.length).toBe(100_000);
    expect(q.dropped).toBe(150_000);
    expect(q.peek().equals(data.subarray(150_000))).toBe(true);
    const big = new ByteQueue(10);
    big.push(bytes(25));
    expect(big.peek().equals(bytes(25).subarray(15))).toBe(true);
    expect(big.dropped).toBe(15);
  });
  it('never overwrites a region it handed out', () => {
    const q = new ByteQueue(1 << 20);
    q.push(Buffer.from('first'));
    const [a] = q.take();
    q.push(Buffer.from('second'));
    expect(a!.toString()).toBe('first');
    expect(Buffer.concat(q.take()).toString()).toBe('second');
    expect(a!.toString()).toBe('first');
    q.push(Buffer.from('x'));
    expect(q.peek().toString()).toBe('x');
  });
});
