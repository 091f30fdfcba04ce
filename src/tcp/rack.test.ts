import { describe, expect, it } from 'vitest';
import { Rack, probeTimeout, sentAfter } from './rack.js';
import { LOST, Scoreboard } from './scoreboard.js';

const M = 1000;
/** TSval clock: ms + 1000 (integers). */
const clock = { tsNow: (ms: number) => (Math.floor(ms) + 1000) >>> 0 };

function board(times: number[]): Scoreboard {
  const sb = new Scoreboard(64);
  times.forEach((t, i) => sb.append(i * M, (i + 1) * M, t));
  return sb;
}

describe('RACK (RFC 8985 §6)', () => {
  it('RACK_sent_after breaks time ties by sequence (§6.2)', () => {
    expect(sentAfter(2, 100, 1, 500)).toBe(true);
    expect(sentAfter(1, 500, 1, 100)).toBe(true);
    expect(sentAfter(1, 100, 1, 500)).toBe(false);
    expect(sentAfter(1, 0x10, 1, 0xfffffff0)).toBe(true); // across 2^32
  });

  it('marks lost only what was sent before a delivered segment and waited RACK.rtt + reo_wnd (§6.2 step 5), and arms the timer for the rest', () => {
    const sb = board([0, 0, 1, 2, 3]); // five segments
    const rack = new Rack(clock);
    rack.beginAck(10, 0, false);
    sb.sack(3 * M, 4 * M, rack); // segment 3 (sent at 2) arrives first
    expect([rack.xmitTs, rack.endSeq, rack.rtt, rack.minRtt]).toEqual([2, 4 * M, 8, 8]);
    const reo = rack.reoWnd(false, sb.sackedRecords, 8);
    expect(reo).toBe(2); // min_RTT / 4, no reordering seen, one segment SACKed
    // segments 0..2 were sent before it; their deadlines are 0+8+2, 0+8+2, 1+8+2
    expect(rack.detectLoss(sb, 10, reo)).toBe(1); // segment 2 has 1 ms left
    expect([0, 1, 2, 4].map((i) => sb.flags(i))).toEqual([LOST, LOST, 0, 0]); // segment 4, sent after, is never judged
    expect(rack.detectLoss(sb, 11, reo)).toBe(0);
    expect(sb.flags(2)).toBe(LOST);
  });

  it('finds a lost retransmission once something sent after it is delivered (§6.2, the case duplicate ACKs miss)', () => {
    const sb = board([0, 0, 0]);
    const rack = new Rack(clock);
    sb.markLost(0);
    sb.retransmitted(0, 20); // sent again at 20
    sb.append(3 * M, 4 * M, 21); // new data after it
    rack.beginAck(31, 0, false);
    sb.sack(M, 2 * M, rack);
    expect(rack.detectLoss(sb, 31, 0)).toBe(0);
    expect(sb.flags(0) & LOST).toBe(0); // segment 1 was sent before the retransmission: no verdict
    sb.sack(3 * M, 4 * M, rack);
    expect(rack.detectLoss(sb, 31, 0)).toBe(0);
    expect(sb.flags(0) & LOST).toBe(LOST);
  });

  it('ignores a retransmitted segment whose ACK may be for the original (§6.2 step 2: TSecr, min_RTT)', () => {
    const sb = board([0, 1]);
    const rack = new Rack(clock);
    rack.beginAck(5, 0, false);
    sb.sack(M, 2 * M, rack); // min_RTT 4
    sb.markLost(0);
    sb.retransmitted(0, 10);
    // an ACK echoing the original's TSval (1000) delivers the retransmitted segment: no sample
    rack.beginAck(20, clock.tsNow(0), true);
    const before = [rack.xmitTs, rack.rtt];
    sb.advance(2 * M, rack);
    expect([rack.xmitTs, rack.rtt]).toEqual(before);
    // without timestamps, an RTT below min_RTT is as suspect
    const sb2 = board([0, 1]);
    const r2 = new Rack(clock);
    r2.beginAck(5, 0, false);
    sb2.sack(M, 2 * M, r2);
    sb2.markLost(0);
    sb2.retransmitted(0, 10);
    r2.beginAck(12, 0, false); // 2 ms after the retransmission, min_RTT is 4
    sb2.advance(2 * M, r2);
    expect(r2.xmitTs).toBe(1);
  });

  it('reo_wnd: 0 before reordering in recovery or with DupThresh SACKed; reordering seen, DSACK rounds widen it, bounded by SRTT (§6.2 steps 3-4)', () => {
    const rack = new Rack(clock);
    const sb = board([0, 1, 2, 3]);
    rack.beginAck(8, 0, false);
    sb.sack(2 * M, 3 * M, rack); // rtt 6
    expect(rack.reoWnd(true, 1, 10)).toBe(0);
    expect(rack.reoWnd(false, 3, 10)).toBe(0);
    expect(rack.reoWnd(false, 1, 10)).toBe(1.5);
    sb.sack(M, 2 * M, rack); // segment 1, below RACK.fack and never retransmitted: reordering
    expect(rack.reorderingSeen).toBe(true);
    expect(rack.reoWnd(true, 3, 10)).toBe(rack.minRtt / 4);
    rack.onDsack(0, 4 * M);
    rack.onDsack(0, 4 * M); // same round: once
    expect(rack.reoWndMult).toBe(2);
    expect(rack.reoWnd(true, 3, 10)).toBe((2 * rack.minRtt) / 4);
    expect(rack.reoWnd(true, 3, 1)).toBe(1); // at most SRTT
    for (let i = 0; i < 16; i++) rack.onRecoveryExit();
    expect(rack.reoWndMult).toBe(1);
  });

  it('probe timeout: 2·SRTT, plus the worst-case delayed ACK for a lone segment (§7.2)', () => {
    expect(probeTimeout(10, false)).toBe(22);
    expect(probeTimeout(10, true)).toBe(220);
  });
});
