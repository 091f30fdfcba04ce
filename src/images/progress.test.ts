import { describe, expect, it } from 'vitest';
import { formatProgress, ProgressMeter } from './progress.js';

const MiB = 2 ** 20;

describe('ProgressMeter (fake clock)', () => {
  it('reports at most once per interval, with the rate over the window and the ETA', () => {
    const m = new ProgressMeter(100 * MiB, 0, 0, { intervalMs: 500, windowMs: 5000 });
    expect(m.update(1 * MiB, 100)).toBe(true); // the first update reports
    expect(m.update(2 * MiB, 300)).toBe(false);
    expect(m.update(5 * MiB, 600)).toBe(true);
    // 10 MiB/s steady for 10 s
    let due = 0;
    for (let t = 700; t <= 10_000; t += 100) if (m.update(t * 10 * 1024 * 1.024, t)) due++;
    expect(due).toBe(18); // 1100, 1600, … 9600
    const s = m.snapshot(10_000);
    expect(s.rateBps / MiB).toBeCloseTo(10, 0);
    expect(s.etaS).toBe(Math.ceil((100 * MiB - s.bytes) / s.rateBps));
  });
  it('a stall shows in the rate once the window has passed; no total, no ETA', () => {
    const m = new ProgressMeter(null, 0, 0, { intervalMs: 500, windowMs: 2000 });
    for (let t = 500; t <= 2000; t += 500) m.update(t * 1000, t);
    expect(m.snapshot(2000).rateBps).toBe(1_000_000);
    for (let t = 2500; t <= 6000; t += 500) m.update(2_000_000, t);
    expect(m.snapshot(6000)).toEqual({ bytes: 2_000_000, total: null, rateBps: 0, etaS: null });
  });
  it('no rate (nor ETA) from under a second of data', () => {
    const m = new ProgressMeter(100 * MiB, 0, 0);
    m.update(MiB, 50);
    expect(m.snapshot(50)).toEqual({ bytes: MiB, total: 100 * MiB, rateBps: 0, etaS: null });
  });
  it('a resumed download counts the bytes it had, but not in the rate', () => {
    const m = new ProgressMeter(10 * MiB, 8 * MiB, 0);
    m.update(9 * MiB, 1000);
    expect(m.snapshot(1000)).toMatchObject({ bytes: 9 * MiB, rateBps: MiB, etaS: 1 });
    m.reset(10 * MiB, 0, 2000);
    expect(m.snapshot(2000)).toMatchObject({ bytes: 0, rateBps: 0, etaS: null });
  });
});

describe('formatProgress', () => {
  it('size, percentage, rate, ETA', () => {
    expect(formatProgress({ bytes: 12.3 * MiB, total: 300 * MiB, rateBps: 5.1 * MiB, etaS: 56 })).toBe('12.3 MiB / 300 MiB (4%), 5.1 MiB/s, ETA 0:56');
    expect(formatProgress({ bytes: 3 * MiB, total: null, rateBps: 0, etaS: null })).toBe('3.0 MiB');
    expect(formatProgress({ bytes: 0, total: 0, rateBps: 0, etaS: 3725 })).toBe('0 B / 0 B (100%), ETA 1:02:05');
  });
});
