import { describe, expect, it } from 'vitest';
import { LOST, RETRANS, SACKED, Scoreboard, type DeliverySink } from './scoreboard.js';

const M = 1000;
class Sink implements DeliverySink {
  got: [number, number, number][] = [];
  delivered(ts: number, end: number, flags: number): void {
    this.got.push([ts, end, flags]);
  }
}

/** A scoreboard with `n` segments of M bytes from `base`, sent at t = 0, 1, 2, ... */
function board(n: number, base = 0xfffff000): Scoreboard {
  const sb = new Scoreboard(64);
  for (let i = 0; i < n; i++) expect(sb.append((base + i * M) >>> 0, (base + (i + 1) * M) >>> 0, i)).toBe(true);
  return sb;
}

describe('Scoreboard (RFC 6675 §3 pipe, RFC 8985 §5.2 per-segment state)', () => {
  it('keeps pipe = flight - SACKed - lost in step with the flags, across sequence wrap-around', () => {
    const base = 0xfffff000; // records straddle 2^32
    const sb = board(8, base);
    const sink = new Sink();
    expect(sb.flight).toBe(8 * M);
    expect(sb.pipe).toBe(8 * M);
    // SACK segments 2..4 (a block over whole records) and a block covering only half of segment 6
    expect(sb.sack((base + 2 * M) >>> 0, (base + 5 * M) >>> 0, sink)).toBe(3 * M);
    expect(sb.sack((base + 6 * M + 500) >>> 0, (base + 7 * M) >>> 0, sink)).toBe(0); // partial: not marked
    expect(sink.got.map((g) => g[0])).toEqual([2, 3, 4]);
    expect(sb.sackedRecords).toBe(3);
    expect(sb.pipe).toBe(5 * M);
    sb.markLost(0);
    sb.markLost(2); // SACKed: not lost
    expect(sb.lost).toBe(M);
    expect(sb.pipe).toBe(4 * M);
    sb.retransmitted(0, 100);
    expect(sb.flags(0)).toBe(RETRANS);
    expect(sb.ts(0)).toBe(100);
    expect(sb.pipe).toBe(5 * M);
    // the cumulative ACK passes 0..4: SACKed ones are not delivered twice
    sink.got = [];
    sb.advance((base + 5 * M) >>> 0, sink);
    expect(sink.got).toEqual([
      [100, (base + M) >>> 0, RETRANS],
      [1, (base + 2 * M) >>> 0, 0],
    ]);
    expect(sb.count).toBe(3);
    expect([sb.flight, sb.sacked, sb.lost, sb.sackedRecords]).toEqual([3 * M, 0, 0, 0]);
    // a partial cumulative ACK trims the head record
    sb.advance((base + 5 * M + 300) >>> 0, null);
    expect(sb.flight).toBe(3 * M - 300);
    expect(sb.len(0)).toBe(M - 300);
  });

  it('an RTO marks every record not SACKed lost; a SACKed record at SND.UNA means reneging: all marks go (RFC 2018 §8)', () => {
    const sb = board(4);
    sb.sack(sb.start(2), sb.end(2), null);
    sb.markAllLost();
    expect([0, 1, 2, 3].map((i) => sb.flags(i))).toEqual([LOST, LOST, SACKED, LOST]);
    expect(sb.pipe).toBe(0);
    expect(sb.nextLost(0)).toBe(0);
    expect(sb.nextLost(2)).toBe(3);
    sb.unmarkLost();
    expect(sb.lost).toBe(0);
    const r = board(3);
    r.sack(r.start(0), r.end(0), null); // the peer SACKed what it then does not ACK
    r.markAllLost();
    expect([0, 1, 2].map((i) => r.flags(i))).toEqual([LOST, LOST, LOST]);
    expect(r.sacked).toBe(0);
  });

  it('splits a record for a shorter retransmission, keeping flags and counters', () => {
    const sb = board(3);
    sb.markLost(1);
    expect(sb.split(1, 400)).toBe(true);
    expect(sb.count).toBe(4);
    expect([sb.len(1), sb.len(2)]).toEqual([400, 600]);
    expect([sb.flags(1), sb.flags(2)]).toEqual([LOST, LOST]);
    expect(sb.lost).toBe(M);
    expect(sb.end(1)).toBe(sb.start(2));
    sb.retransmitted(1, 50);
    expect(sb.lost).toBe(600);
  });

  it('is bounded: at `max` records a first transmission is refused and counted', () => {
    const sb = new Scoreboard(4);
    for (let i = 0; i < 4; i++) expect(sb.append(i * M, (i + 1) * M, i)).toBe(true);
    expect(sb.full).toBe(true);
    expect(sb.append(4 * M, 5 * M, 4)).toBe(false);
    expect(sb.split(0, 10)).toBe(false);
    expect(sb.nFull).toBe(2);
    sb.advance(4 * M, null);
    expect(sb.count).toBe(0);
    expect(sb.append(4 * M, 5 * M, 5)).toBe(true);
    expect(sb.flight).toBe(M);
  });

  it('grows its ring past the initial size with a moved head (wrap inside the ring)', () => {
    const sb = new Scoreboard(1000);
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++, next++) sb.append(next * M, (next + 1) * M, next);
      sb.advance((next - 3) * M, null); // keep 3 in flight
    }
    for (let i = 0; i < 40; i++, next++) sb.append(next * M, (next + 1) * M, next);
    expect(sb.count).toBe(43);
    for (let i = 0; i < sb.count; i++) expect(sb.ts(i)).toBe(next - 43 + i);
    expect(sb.flight).toBe(43 * M);
  });
});
