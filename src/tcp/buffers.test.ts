import { describe, expect, it } from 'vitest';
import { RangeSet } from './ranges.js';
import { RecvBuffer } from './recv-buffer.js';
import { RtoEstimator } from './rto.js';
import { SendBuffer } from './send-buffer.js';
import { pattern, prng } from '../../test/helpers/tcp-harness.js';

/** Fast byte equality (expect().toEqual on typed arrays is slow in loops). */
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

describe('SendBuffer', () => {
  it('lends its free tail once grown to max, takes what was read into it, and refuses stale regions', () => {
    const sb = new SendBuffer(8192);
    expect(sb.lendTail(1)).toBeNull(); // no storage yet: idle connections stay small
    sb.write(pattern(8192), 0, 8192); // grows to max
    sb.drop(3000);
    const r = sb.lendTail(1000)!; // tail at the ring's end... wrapped: [0, 3000) is free
    expect(r.length).toBe(3000);
    r.set(pattern(2000, 8192));
    expect(sb.commitLent(r, 2000)).toBe(true);
    expect(sb.length).toBe(5192 + 2000);
    const out = new Uint8Array(sb.length);
    sb.copyOut(0, sb.length, out, 0);
    expect(out).toEqual(pattern(7192, 3000));
    expect(sb.lendTail(1001)).toBeNull(); // only 1000 free
    const r2 = sb.lendTail(500)!;
    sb.drop(sb.length); // everything acknowledged: the tail moves to the start
    expect(sb.commitLent(r2, 10)).toBe(false); // stale: the caller writes the bytes instead
    expect(sb.commitLent(new Uint8Array(10), 10)).toBe(false); // not ours
    const r3 = sb.lendTail(1)!;
    expect(r3.length).toBe(8192);
    expect(sb.commitLent(r3, 8193)).toBe(false); // more than it lent
    sb.release();
    expect(sb.commitLent(r3, 5)).toBe(false); // storage released meanwhile
  });

  it('is lazy, bounded, wraps around and copies out at offsets', () => {
    const b = new SendBuffer(10000);
    expect(b.capacity).toBe(0);
    expect(b.write(pattern(3000), 0, 3000)).toBe(3000);
    expect(b.capacity).toBe(4096);
    b.drop(2500);
    expect(b.write(pattern(3000, 3000), 0, 3000)).toBe(3000); // wraps in the 4 KiB ring
    expect(b.capacity).toBe(4096);
    const out = new Uint8Array(3500);
    b.copyOut(0, 3500, out, 0);
    expect(out).toEqual(pattern(3500, 2500));
    expect(b.write(pattern(20000, 6000), 0, 20000)).toBe(10000 - 3500); // bounded
    expect(b.free).toBe(0);
    expect(b.capacity).toBe(10000);
    const mid = new Uint8Array(100);
    b.copyOut(4000, 100, mid, 0);
    expect(mid).toEqual(pattern(100, 6500));
    expect(b.release()).toBe(false);
    b.drop(b.length);
    expect(b.release()).toBe(true);
    expect(b.capacity).toBe(0);
  });

  it('survives random write/drop/copy sequences', () => {
    const r = prng(9);
    const b = new SendBuffer(50000);
    let head = 0;
    let tail = 0;
    for (let i = 0; i < 2000; i++) {
      const n = Math.floor(r() * 9000);
      tail += b.write(pattern(n, tail), 0, n);
      const d = Math.floor(r() * (tail - head + 1));
      b.drop(d);
      head += d;
      expect(b.length).toBe(tail - head);
      if (b.length > 0) {
        const off = Math.floor(r() * b.length);
        const len = Math.min(b.length - off, 1500);
        const out = new Uint8Array(len);
        b.copyOut(off, len, out, 0);
        expect(same(out, pattern(len, head + off))).toBe(true);
      }
    }
  });
});

describe('RecvBuffer', () => {
  it('filling the last hole retires every out-of-order page, the one RCV.NXT stops inside too, so an idle buffer frees all', () => {
    const b = new RecvBuffer(65536);
    expect(b.write(100, new Uint8Array(50).fill(2), 0, 50)).toBe(0); // out of order: a page and the slot array
    expect(b.capacity).toBe(4096 + 18 * 8);
    expect(b.write(0, new Uint8Array(100).fill(1), 0, 100)).toBe(150); // the hole filled: RCV.NXT 150, inside that page
    const out = new Uint8Array(150);
    expect(b.peek(out, 0, 150)).toBe(150);
    expect(out.slice(99, 101)).toEqual(new Uint8Array([1, 2]));
    b.consume(150);
    expect(b.release()).toBe(true);
    expect(b.capacity).toBe(0); // the page (and its slot array) went too: it held nothing beyond RCV.NXT
  });

  it('lends readable bytes as views, split at the ring end, valid until consumed', () => {
    const r = new RecvBuffer(8192);
    r.write(0, pattern(4096), 0, 4096); // storage starts at 4 KiB
    r.consume(3000);
    r.write(0, pattern(2000, 4096), 0, 2000); // wraps: 1096 at the end, 904 at the start
    expect(r.readable).toBe(3096);
    const a = r.view(0, 10_000);
    expect(a.length).toBe(1096); // up to the ring's end only
    expect(a).toEqual(pattern(1096, 3000));
    const b = r.view(a.length, 10_000);
    expect(b).toEqual(pattern(2000, 4096));
    expect(r.view(3096, 10)).toHaveLength(0);
    r.write(0, pattern(3000, 6096), 0, 3000); // grows: old views keep their bytes
    expect(a).toEqual(pattern(1096, 3000));
    expect(r.view(0, 10_000)).toEqual(pattern(6096, 3000));
  });

  it('keeps out-of-order data in place and promotes it when the hole fills', () => {
    const b = new RecvBuffer(10000);
    const d = pattern(6000);
    expect(b.write(2000, d, 2000, 1000)).toBe(0);
    expect(b.write(4000, d, 4000, 2000)).toBe(0);
    expect(b.ooo.count).toBe(2);
    expect(b.readable).toBe(0);
    expect(b.write(0, d, 0, 2500)).toBe(3000); // reaches the first run
    expect(b.readable).toBe(3000);
    expect(b.ooo.count).toBe(1);
    expect([b.ooo.start(0), b.ooo.end(0)]).toEqual([1000, 3000]); // relative to the new RCV.NXT
    expect(b.write(0, d, 3000, 1000)).toBe(3000);
    const out = new Uint8Array(6000);
    expect(b.peek(out, 0, 6000)).toBe(6000);
    expect(out).toEqual(d);
    expect(b.consume(6000)).toBe(6000);
    expect(b.empty).toBe(true);
    expect(b.release()).toBe(true);
  });

  it('one write can bridge several runs', () => {
    const b = new RecvBuffer(10000);
    const d = pattern(1000);
    b.write(100, d, 100, 100);
    b.write(300, d, 300, 100);
    b.write(600, d, 600, 100);
    expect(b.write(0, d, 0, 350)).toBe(400);
    expect(b.ooo.count).toBe(1);
  });

  it('refuses a run beyond MAX_HOLES', () => {
    const b = new RecvBuffer(100000);
    const d = pattern(100000);
    for (let i = 0; i < 8; i++) expect(b.write(1000 * (i + 1), d, 0, 10)).toBe(0);
    expect(b.write(20000, d, 0, 10)).toBe(-1);
    expect(b.write(1005, d, 0, 10)).toBe(0); // extends an existing run: fine
  });

  it('matches a reference model under random segments (with growth and wrap)', () => {
    const r = prng(4);
    const b = new RecvBuffer(30000);
    const total = 400000;
    const d = pattern(total);
    let nxt = 0;
    let read = 0;
    const out = new Uint8Array(30000);
    while (read < total) {
      const rel = Math.floor(r() * Math.min(b.free, 20000));
      const len = Math.min(1 + Math.floor(r() * 3000), b.free - rel, total - nxt - rel);
      if (len > 0) {
        const adv = b.write(rel, d, nxt + rel, len);
        if (adv > 0) nxt += adv;
      }
      if (r() < 0.3) {
        const n = b.peek(out, 0, Math.floor(r() * 20000));
        expect(same(out.subarray(0, n), d.subarray(read, read + n))).toBe(true);
        read += b.consume(n);
      }
      if (r() < 0.2 && nxt < total) {
        const adv = b.write(0, d, nxt, Math.min(1460, b.free, total - nxt)); // in-order segment
        if (adv > 0) nxt += adv;
      }
      expect(b.readable).toBe(nxt - read);
    }
  });
});

describe('RangeSet', () => {
  it('merges, shifts and reports', () => {
    const s = new RangeSet(3);
    expect(s.add(10, 20)).toBe(true);
    expect(s.add(30, 40)).toBe(true);
    expect(s.add(20, 30)).toBe(true); // bridges both
    expect(s.count).toBe(1);
    expect([s.start(0), s.end(0)]).toEqual([10, 40]);
    s.add(50, 60);
    s.add(70, 80);
    expect(s.add(90, 95)).toBe(false); // full
    expect(s.endOf(55)).toBe(60);
    expect(s.endOf(45)).toBe(-1);
    expect(s.nextStart(45)).toBe(50);
    expect(s.highest()).toBe(80);
    expect(s.indexOfLast()).toBe(2); // 70..80 was added last
    s.shift(55);
    expect([s.count, s.start(0), s.end(0), s.start(1)]).toEqual([2, 0, 5, 15]);
    s.clear();
    s.release();
    expect(s.count).toBe(0);
  });
});

describe('RtoEstimator (RFC 6298)', () => {
  it('initialises, smooths, clamps and backs off', () => {
    const e = new RtoEstimator(1000, 200, 60000);
    expect(e.rto).toBe(1000);
    e.sample(100);
    expect([e.srtt, e.rttvar, e.rto]).toEqual([100, 50, 300]);
    e.sample(100);
    expect([e.srtt, e.rttvar, e.rto]).toEqual([100, 37.5, 250]);
    e.sample(1);
    expect(e.rto).toBeCloseTo(87.625 + 4 * 52.875, 6);
    for (let i = 0; i < 50; i++) e.sample(1);
    expect(e.rto).toBe(200); // min clamp
    e.backoff();
    expect(e.rto).toBe(400);
    for (let i = 0; i < 20; i++) e.backoff();
    expect(e.rto).toBe(60000);
    e.sample(1);
    expect(e.rto).toBe(200);
  });
});
