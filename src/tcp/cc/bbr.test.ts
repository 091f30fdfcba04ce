import { describe, expect, it } from 'vitest';
import * as tcp from '../../wire/tcp.js';
import { established, feed, pattern } from '../../../test/helpers/tcp-harness.js';
import type { Recovery } from '../recovery.js';
import { Scoreboard } from '../scoreboard.js';
import { Bbr, DRAIN, MIN_CWND_SEGS, PROBE_BW, PROBE_RTT, STARTUP } from './bbr.js';

const SEG = 1000;

/**
 * A sender on a path with one bottleneck (FIFO, `rate` bytes/ms) and `oneWay`
 * ms of propagation each way, on a fake clock: BBR sets cwnd, the sender
 * fills it, every segment's ACK comes back in order. `appRate` (bytes/ms)
 * makes the application the limit.
 */
class Path {
  readonly sb = new Scoreboard(4096, true);
  readonly bbr = new Bbr(0x1234567);
  readonly r = { c: { smss: SEG }, sb: this.sb, cwnd: 10 * SEG, inRecovery: false, inLoss: false };
  now = 0;
  #nxt = 0;
  #busyUntil = 0;
  readonly #acks: { at: number; end: number }[] = [];
  appRate: number | null = null;
  #appCredit = 0;
  #appAt = 0;
  /** States seen, in order (consecutive repeats folded). */
  readonly states: number[] = [STARTUP];
  readonly phases = new Set<number>();

  constructor(
    readonly rate: number,
    readonly oneWay: number,
  ) {
    this.#send();
  }

  get rec(): Recovery {
    return this.r as unknown as Recovery;
  }

  #send(): void {
    if (this.appRate !== null) {
      this.#appCredit = Math.min(this.#appCredit + (this.now - this.#appAt) * this.appRate, 4 * SEG);
      this.#appAt = this.now;
    }
    while (this.sb.pipe + SEG <= this.r.cwnd && (this.appRate === null || this.#appCredit >= SEG)) {
      const empty = this.sb.count === 0;
      this.sb.append(this.#nxt, this.#nxt + SEG, this.now);
      this.bbr.rate.onSent(this.sb, this.sb.count - 1, this.now, empty);
      this.#nxt += SEG;
      if (this.appRate !== null) this.#appCredit -= SEG;
      this.#busyUntil = Math.max(this.now + this.oneWay, this.#busyUntil) + SEG / this.rate;
      this.#acks.push({ at: this.#busyUntil + this.oneWay, end: this.#nxt });
    }
    if (this.appRate !== null) this.bbr.rate.checkAppLimited(0, SEG, this.sb.pipe, this.r.cwnd, this.sb.lost);
  }

  /** Processes ACKs until `until` ms (an idle app-limited sender wakes every ms). */
  run(until: number): void {
    const sink = { delivered: (ts: number, end: number, flags: number, i: number) => this.bbr.rate.onDelivered(this.sb, i, ts, end, flags, this.now) };
    while (this.now < until) {
      const a = this.#acks.shift();
      const at = a === undefined ? this.now + 1 : Math.min(a.at, this.appRate === null ? Infinity : this.now + 1);
      if (a !== undefined && at < a.at) this.#acks.unshift(a);
      this.now = at;
      if (a !== undefined && at === a.at) {
        this.bbr.rate.beginAck();
        this.sb.advance(a.end, sink);
        this.bbr.onAck(this.rec, this.bbr.rate.newlyDelivered, this.now);
        if (this.states[this.states.length - 1] !== this.bbr.state) this.states.push(this.bbr.state);
        if (this.bbr.state === PROBE_BW) this.phases.add(this.bbr.cycleIndex);
      }
      this.#send();
    }
  }

  /** The path's BDP, bytes (RTprop × rate; RTprop includes one segment's serialization). */
  get bdp(): number {
    return this.rate * (2 * this.oneWay + SEG / this.rate);
  }
}

describe('BBR (draft-cardwell-iccrg-bbr-congestion-control), on a fake clock', () => {
  it('Startup finds the bottleneck, Drain empties the queue, ProbeBW cycles its gains with cwnd near 2 BDP', () => {
    const p = new Path(1000, 10); // 8 Mbit/s, RTprop 21 ms, BDP 21 segments
    p.run(150);
    expect(p.bbr.state).toBe(STARTUP);
    expect(p.r.cwnd).toBeGreaterThan(20 * SEG); // grew from 10 segments by what each ACK delivered
    p.run(1000);
    expect(p.states.slice(0, 3)).toEqual([STARTUP, DRAIN, PROBE_BW]);
    expect(p.bbr.filledPipe).toBe(true);
    expect(p.bbr.bw).toBeGreaterThan(0.9 * p.rate);
    expect(p.bbr.bw).toBeLessThan(1.1 * p.rate);
    expect(p.bbr.minRtt).toBeCloseTo(21, 0);
    p.run(3000);
    expect(p.bbr.state).toBe(PROBE_BW);
    expect(p.phases).toContain(0); // probed up (gain 1.25)
    expect(p.phases).toContain(1); // and drained (0.75)
    expect(p.r.cwnd).toBeGreaterThan(1.7 * p.bdp);
    expect(p.r.cwnd).toBeLessThan(3.2 * p.bdp);
  });

  it('ProbeRTT after 10 s without a lower RTT: 4 segments for at least 200 ms and a round, then ProbeBW again', () => {
    const p = new Path(1000, 10);
    p.run(9000);
    expect(p.bbr.state).toBe(PROBE_BW);
    let entered = -1;
    let left = -1;
    let minCwnd = Infinity;
    while (p.now < 12_000 && left < 0) {
      p.run(p.now + 1);
      if (p.bbr.state === PROBE_RTT) {
        if (entered < 0) entered = p.now;
        minCwnd = Math.min(minCwnd, p.r.cwnd);
      } else if (entered >= 0) left = p.now;
    }
    expect(entered).toBeGreaterThan(10_000);
    expect(minCwnd).toBe(MIN_CWND_SEGS * SEG);
    expect(left - entered).toBeGreaterThanOrEqual(200);
    expect(p.bbr.state).toBe(PROBE_BW);
    expect(p.r.cwnd).toBeGreaterThan(1.7 * p.bdp); // the cwnd from before ProbeRTT is back
  });

  it('a loss episode: packet conservation for a round, then the model again, and at least the old cwnd at its end', () => {
    const p = new Path(1000, 10);
    p.run(2000);
    const before = p.r.cwnd;
    p.bbr.onRecoveryStart(p.rec);
    p.r.inRecovery = true;
    p.run(p.now + 0.5);
    p.run(p.now + 1); // the first ACK of the episode: cwnd = in flight + delivered
    expect(p.r.cwnd).toBeLessThanOrEqual(p.sb.pipe + 2 * SEG);
    p.run(p.now + 200); // rounds later the model's target is back
    expect(p.r.cwnd).toBeGreaterThan(1.7 * p.bdp);
    p.r.cwnd = 5 * SEG; // say PRR-like cuts happened meanwhile
    p.r.inRecovery = false;
    p.bbr.onRecoveryEnd(p.rec);
    expect(p.r.cwnd).toBeGreaterThanOrEqual(before);
  });

  it('a loss does not lower the bandwidth estimate (rate samples count what was delivered)', () => {
    const p = new Path(1000, 10);
    p.run(2000);
    const bw = p.bbr.bw;
    p.bbr.onRecoveryStart(p.rec);
    p.r.inRecovery = true;
    p.run(2300);
    p.r.inRecovery = false;
    p.bbr.onRecoveryEnd(p.rec);
    p.run(2600);
    expect(p.bbr.bw).toBeGreaterThan(0.9 * bw);
  });

  it('application-limited samples do not lower the estimate (they only raise it)', () => {
    const p = new Path(1000, 10);
    p.run(2000);
    const bw = p.bbr.bw;
    p.appRate = 200; // a fifth of the path's rate, for far longer than the 10-round window
    p.run(6000);
    expect(p.bbr.bw).toBeGreaterThan(0.9 * bw);
    expect(p.bbr.rate.appLimited).toBeGreaterThan(0);
  });

  it('an RTO: the loss window grows back by what is delivered, and the cwnd from before returns when the episode ends', () => {
    const p = new Path(1000, 10);
    p.run(2000);
    const before = p.r.cwnd;
    p.bbr.onRto(p.rec);
    p.r.inLoss = true;
    p.r.cwnd = SEG; // recovery.ts's loss window
    p.run(p.now + 1);
    expect(p.r.cwnd).toBeGreaterThanOrEqual(MIN_CWND_SEGS * SEG);
    expect(p.r.cwnd).toBeLessThan(before);
    p.r.inLoss = false;
    p.bbr.onRecoveryEnd(p.rec);
    expect(p.r.cwnd).toBeGreaterThanOrEqual(before);
  });
});

describe('BBR in the connection (recovery.ts), lazily', () => {
  const A = tcp.ACK;
  const w = (x: number): number => x >>> 0;
  const M = 1460;

  it('an idle connection has no BBR state; a sending one makes it, and it goes when the flight empties and the buffers trim', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0, cc: 'bbr' }, { sack: true, synRtt: 1 });
    expect(conn.rec.bbr).toBe(null);
    conn.write(pattern(4 * M), 1);
    rec.take();
    expect(conn.rec.bbr).not.toBe(null);
    expect(conn.rec.sb.rate).toBe(true);
    feed(conn, { seq: gseq, ack: w(iss + 4 * M), flags: A }, 2);
    expect(conn.rec.bbr!.rate.delivered).toBe(4 * M);
    expect(conn.rec.bbr!.minRtt).toBe(1);
    conn.onTimer(conn.nextTimeout()); // bufferLinger later: the trim
    conn.onTimer(conn.nextTimeout());
    expect(conn.sndBuf.capacity).toBe(0);
    expect(conn.rec.bbr).toBe(null);
  });

  it('without SACK, or with cc reno, there is no BBR: NewReno / Reno as before', () => {
    for (const [over, sack] of [[{ cc: 'bbr' as const }, false], [{ cc: 'reno' as const }, true]] as const) {
      const { conn, rec } = established({ ackDelay: 0, ...over }, { sack, synRtt: 1 });
      conn.write(pattern(4 * M), 1);
      rec.take();
      expect(conn.rec.bbr).toBe(null);
    }
  });

  it('a loss found by RACK does not halve cwnd: in flight + delivered on the first ACK, the old cwnd back at the end', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0, cc: 'bbr' }, { sack: true, synRtt: 10 });
    conn.write(pattern(10 * M), 0);
    rec.take();
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    const before = conn.cwnd;
    // segment 0 lost: three SACKed segments make it lost at once (RFC 8985 DupThresh)
    feed(conn, { seq: gseq, ack: w(iss), flags: A, sack: sack(1, 4) }, 10);
    expect(conn.inRecovery).toBe(true);
    expect(rec.take().map((s) => w(s.h.seq - iss) / M)).toContain(0); // the hole again
    expect(conn.cwnd).toBeGreaterThanOrEqual(conn.rec.sb.pipe); // in flight + delivered, no halving
    feed(conn, { seq: gseq, ack: w(iss + 10 * M), flags: A }, 12);
    expect(conn.inRecovery).toBe(false);
    expect(conn.cwnd).toBeGreaterThanOrEqual(before);
    expect(conn.ssthresh).toBe(0x3fffffff); // BBR sets none
  });
});
