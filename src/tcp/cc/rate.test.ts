import { describe, expect, it } from 'vitest';
import { APP_LIMITED, Scoreboard } from '../scoreboard.js';
import { RateSampler } from './rate.js';

/** A flight of fixed-size segments on a scoreboard with rate snapshots, driven on a fake clock. */
function flight(seg = 1000) {
  const sb = new Scoreboard(64, true);
  const rs = new RateSampler();
  let nxt = 0;
  let una = 0;
  const sink = { now: 0, delivered: (ts: number, end: number, flags: number, i: number) => rs.onDelivered(sb, i, ts, end, flags, sink.now) };
  return {
    sb,
    rs,
    send(now: number, n = 1): void {
      for (let k = 0; k < n; k++) {
        const empty = sb.count === 0;
        sb.append(nxt, nxt + seg, now);
        rs.onSent(sb, sb.count - 1, now, empty);
        nxt += seg;
      }
    },
    /** A cumulative ACK of `segs` more segments at `now`, then the sample. */
    ack(now: number, segs: number): boolean {
      sink.now = now;
      rs.beginAck();
      una += segs * seg;
      sb.advance(una, sink);
      return rs.sample(now);
    },
    /** A SACK of segment k (0-based from the start of the connection) at `now`, then the sample. */
    sack(now: number, k: number): boolean {
      sink.now = now;
      rs.beginAck();
      sb.sack(k * seg, (k + 1) * seg, sink);
      return rs.sample(now);
    },
  };
}

describe('delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation)', () => {
  it('a flight sent at once: delivered bytes over the ACK interval, with the RTT of the newest segment', () => {
    const f = flight();
    f.send(0, 10);
    expect(f.ack(10, 5)).toBe(true);
    expect(f.rs.delivered).toBe(5000);
    expect(f.rs.rate).toBeCloseTo(500); // 5000 bytes / 10 ms
    expect(f.rs.rtt).toBe(10);
    expect(f.rs.priorDelivered).toBe(0);
    // the next ACK measures from the snapshot the segments took when sent (delivered 0 at t=0)
    f.ack(12, 5);
    expect(f.rs.rate).toBeCloseTo(10000 / 12);
  });

  it('takes the longer of the send and ACK intervals, so compressed ACKs do not inflate the rate (§3.4)', () => {
    const f = flight();
    f.send(0, 4); // a flight begins at t=0
    f.ack(10, 1); // one delivered at t=10: the next sends snapshot delivered 1000 at t=10, flight begun at t=0
    f.send(10, 1); // segment 4
    // segment 4 SACKed 1 ms later: the ACK interval says 1 ms, but its flight took 10 ms to send
    expect(f.sack(11, 4)).toBe(true);
    expect(f.rs.rate).toBeCloseTo(1000 / 10);
    expect(f.rs.priorDelivered).toBe(1000);
  });

  it('discards a sample over less than the minimum RTT, and gives no RTT for a retransmitted segment', () => {
    const f = flight();
    f.send(0, 1);
    f.ack(10, 1);
    expect(f.rs.minRtt).toBe(10);
    f.send(10, 1); // a new flight: segment 1
    // sent again at t=10.5 and delivered at 11 (the ACK may be for either copy): no RTT, and the
    // intervals (0.5 ms sending, 1 ms of ACKs) span less than a round trip: no rate either
    f.sb.retransmitted(0, 10.5);
    f.rs.onSent(f.sb, 0, 10.5, false);
    expect(f.ack(11, 1)).toBe(true);
    expect(f.rs.rtt).toBe(-1);
    expect(f.rs.rate).toBe(-1);
    expect(f.rs.delivered).toBe(2000);
    // an ACK that delivers nothing gives no sample at all
    expect(f.ack(12, 0)).toBe(false);
  });

  it('marks what is sent while the application has too little to send (§3.1), until that flight is delivered', () => {
    const f = flight();
    f.send(0, 2);
    f.ack(5, 2);
    // nothing in flight, less than a segment to send, room in cwnd: app-limited up to delivered + pipe
    f.rs.checkAppLimited(100, 1000, 0, 10000, 0);
    expect(f.rs.appLimited).toBe(2000);
    f.send(5, 2);
    expect(f.sb.flags(0) & APP_LIMITED).toBe(APP_LIMITED);
    f.ack(10, 1);
    expect(f.rs.isAppLimited).toBe(true);
    expect(f.rs.appLimited).toBe(0); // delivered (3000) passed the mark
    f.send(10, 1);
    expect(f.sb.flags(f.sb.count - 1) & APP_LIMITED).toBe(0);
    // a sender with data waiting, or lost segments to repair, is not app-limited
    f.rs.checkAppLimited(5000, 1000, 0, 10000, 0);
    f.rs.checkAppLimited(0, 1000, 0, 10000, 1000);
    f.rs.checkAppLimited(0, 1000, 10000, 10000, 0);
    expect(f.rs.appLimited).toBe(0);
  });
});
