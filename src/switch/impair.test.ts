import { describe, expect, it } from 'vitest';
import { Impairment, PERFECT, type ImpairSettings } from './impair.js';

const MAX_FRAME = 1522;

/** A frame of `len` bytes whose payload starts with its sequence number. */
function frame(seq: number, len = 100): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(len);
  const view = new DataView(buf.buffer);
  view.setUint32(14, seq);
  return { buf, view };
}

/** An impairment on a fake clock that records what leaves and when. */
function rig(s: Partial<ImpairSettings>) {
  const imp = new Impairment(MAX_FRAME, { ...PERFECT, ...s });
  const out: Array<{ seq: number; at: number; bytes: Uint8Array }> = [];
  let now = 0;
  const deliver = (buf: Uint8Array, view: DataView, off: number, len: number) => out.push({ seq: view.getUint32(off + 14), at: now, bytes: buf.slice(off, off + len) });
  return {
    imp,
    out,
    send(seq: number, len = 100) {
      const f = frame(seq, len);
      imp.offer(f.buf, f.view, 0, len, now, deliver);
    },
    /** Advances the fake clock to `t`, releasing due frames at their due times. */
    runTo(t: number) {
      for (;;) {
        const d = imp.nextDue();
        if (d > t) break;
        now = Math.max(now, d);
        imp.poll(now, deliver);
      }
      now = t;
    },
    get now() {
      return now;
    },
  };
}

describe('Impairment', () => {
  it('passes frames at once on a perfect link', () => {
    const r = rig({});
    for (let i = 0; i < 5; i++) r.send(i);
    expect(r.out.map((o) => o.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(r.imp.counters).toMatchObject({ offered: 5, delivered: 5, held: 0 });
  });

  it('delays every frame by delayMs and keeps order', () => {
    const r = rig({ delayMs: 50 });
    r.send(1);
    r.runTo(10);
    r.send(2);
    r.runTo(49);
    expect(r.out).toEqual([]);
    r.runTo(200);
    expect(r.out.map((o) => [o.seq, o.at])).toEqual([
      [1, 50],
      [2, 60],
    ]);
  });

  it('jitters within ±jitterMs around the delay and never reorders', () => {
    const r = rig({ delayMs: 50, jitterMs: 10, seed: 3 });
    const sent: number[] = [];
    for (let i = 0; i < 500; i++) {
      sent.push(r.now);
      r.send(i);
      r.runTo(r.now + 1);
    }
    r.runTo(10_000);
    expect(r.out.map((o) => o.seq)).toEqual(sent.map((_, i) => i));
    const delays = r.out.map((o) => o.at - sent[o.seq]!);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(40);
    expect(Math.max(...delays)).toBeLessThanOrEqual(60);
    expect(new Set(delays.map(Math.round)).size).toBeGreaterThan(10); // really jittered
  });

  it('paces frames at the rate: 1000-byte frames at 8 Mbit/s leave 1 ms apart, whatever the burst', () => {
    const r = rig({ rateBps: 8_000_000 });
    for (let i = 0; i < 10; i++) r.send(i, 1000);
    r.runTo(100);
    expect(r.out.map((o) => o.at)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps the rate when the timer fires late: frames are batched, not slowed', () => {
    const r = rig({ rateBps: 8_000_000 });
    for (let i = 0; i < 100; i++) r.send(i, 1000);
    // Poll only every 7 ms (a late timer): 100 frames still take 100 ms.
    let t = 0;
    while (r.imp.queued > 0) {
      t += 7;
      r.imp.poll(t, () => {});
    }
    expect(t).toBe(105);
  });

  it('drops what does not fit in the hold queue (limit) and counts it', () => {
    const r = rig({ rateBps: 8_000_000, limit: 5 });
    for (let i = 0; i < 8; i++) r.send(i, 1000);
    expect(r.imp.counters.queueFull).toBe(3);
    r.runTo(100);
    expect(r.out.map((o) => o.seq)).toEqual([0, 1, 2, 3, 4]);
  });

  it('holds frames in a ring that wraps around its arena, bytes intact', () => {
    // limit 2 frames → an arena of 2 × 1522 bytes; frames of 700..1100 bytes wrap around it.
    const r = rig({ delayMs: 10, limit: 2 });
    r.send(0, 1000);
    r.send(1, 1000);
    r.send(2, 1000);
    expect(r.imp.counters.queueFull).toBe(1);
    r.runTo(10);
    for (let i = 3; i < 40; i++) {
      r.send(i, 700 + (i % 5) * 100);
      r.runTo(r.now + 10);
    }
    expect(r.out.map((o) => o.seq)).toEqual([0, 1, ...Array.from({ length: 37 }, (_, i) => i + 3)]);
    for (const o of r.out) expect(new DataView(o.bytes.buffer).getUint32(14)).toBe(o.seq);
  });

  it('loses frames at the set rate (independent losses)', () => {
    const r = rig({ loss: 0.1, seed: 11 });
    const n = 20_000;
    for (let i = 0; i < n; i++) r.send(i);
    const lost = r.imp.counters.lost;
    // binomial: mean 2000, sd ~42; 4.5 sd
    expect(Math.abs(lost - 2000)).toBeLessThan(4.5 * Math.sqrt(n * 0.1 * 0.9));
    expect(r.out.length).toBe(n - lost);
  });

  it('loses in bursts with lossBurst (Gilbert-Elliott): same mean loss, runs of the set mean length', () => {
    const r = rig({ loss: 0.1, lossBurst: 5, seed: 5 });
    const n = 100_000;
    for (let i = 0; i < n; i++) r.send(i);
    const got = new Set(r.out.map((o) => o.seq));
    const runs: number[] = [];
    let run = 0;
    for (let i = 0; i < n; i++) {
      if (!got.has(i)) run++;
      else if (run > 0) {
        runs.push(run);
        run = 0;
      }
    }
    const lossRate = r.imp.counters.lost / n;
    const meanRun = runs.reduce((a, b) => a + b, 0) / runs.length;
    expect(lossRate).toBeGreaterThan(0.085);
    expect(lossRate).toBeLessThan(0.115);
    expect(meanRun).toBeGreaterThan(4.5);
    expect(meanRun).toBeLessThan(5.5);
    expect(r.imp.counters.lossBursts).toBe(runs.length + (run > 0 ? 1 : 0));
  });

  it('duplicates and corrupts (one bit past the Ethernet header) at the set rates', () => {
    const r = rig({ dup: 0.05, corrupt: 0.05, seed: 9 });
    const n = 10_000;
    for (let i = 0; i < n; i++) r.send(i);
    const c = r.imp.counters;
    const bound = 4.5 * Math.sqrt(n * 0.05 * 0.95);
    expect(Math.abs(c.duplicated - 500)).toBeLessThan(bound);
    expect(Math.abs(c.corrupted - 500)).toBeLessThan(bound);
    expect(r.out.length).toBe(n + c.duplicated);
    let flipped = 0;
    for (const o of r.out) {
      const want = frame(o.seq).buf;
      let bits = 0;
      for (let i = 0; i < want.length; i++) {
        let x = want[i]! ^ o.bytes[i]!;
        if (x !== 0) expect(i).toBeGreaterThanOrEqual(14);
        while (x) {
          bits += x & 1;
          x >>= 1;
        }
      }
      expect(bits).toBeLessThanOrEqual(1);
      flipped += bits;
    }
    // A flip in the sequence field itself hides (about 32 of 688 bits).
    expect(flipped).toBeGreaterThanOrEqual(c.corrupted * 0.85);
  });

  it('reorders: a frame that skips the delay goes ahead of held ones', () => {
    const r = rig({ delayMs: 20, reorder: 0.25, seed: 2 });
    for (let i = 0; i < 400; i++) {
      r.send(i);
      r.runTo(r.now + 1);
    }
    r.runTo(1000);
    const seqs = r.out.map((o) => o.seq);
    expect(seqs.length).toBe(400);
    let inversions = 0;
    for (let i = 1; i < seqs.length; i++) if (seqs[i]! < seqs[i - 1]!) inversions++;
    expect(inversions).toBeGreaterThan(50);
    expect(r.imp.counters.reordered).toBeGreaterThan(60);
    expect(r.imp.counters.reordered).toBeLessThan(140);
  });

  it('down loses everything, flushes held frames; up passes again', () => {
    const r = rig({ delayMs: 10 });
    r.send(1);
    r.send(2);
    r.imp.configure({ ...PERFECT, delayMs: 10, down: true }, false);
    r.send(3);
    r.runTo(100);
    expect(r.out).toEqual([]);
    expect(r.imp.counters).toMatchObject({ down: 1, flushed: 2 });
    r.imp.configure({ ...PERFECT }, false);
    r.send(4);
    expect(r.out.map((o) => o.seq)).toEqual([4]);
  });

  it('is reproducible: the same seed loses, duplicates and delays the same frames', () => {
    const run = () => {
      const r = rig({ loss: 0.2, dup: 0.1, corrupt: 0.1, delayMs: 5, jitterMs: 4, reorder: 0.1, seed: 1234 });
      for (let i = 0; i < 2000; i++) {
        r.send(i);
        r.runTo(r.now + 0.5);
      }
      r.runTo(1e6);
      return r.out.map((o) => `${o.seq}@${o.at}:${Buffer.from(o.bytes).toString('hex').slice(28, 60)}`);
    };
    const a = run();
    expect(run()).toEqual(a);
  });
});
