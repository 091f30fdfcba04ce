import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { established, feed, pattern } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const w = (x: number): number => x >>> 0;

describe('retransmission timeout (RFC 6298)', () => {
  it('retransmits the first unacked segment with exponential backoff, go-back-N after', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.write(pattern(4000), 0);
    expect(rec.take().length).toBe(3);
    expect(conn.srtt).toBe(0); // the handshake took 0 ms
    expect(conn.nextTimeout()).toBe(200); // min RTO
    conn.onTimer(200);
    let r = rec.one();
    expect(r.h.seq).toBe(iss);
    expect(r.payload).toEqual(pattern(1460));
    expect(conn.cwnd).toBe(1460); // loss window
    expect(conn.ssthresh).toBe(2 * 1460); // max(flight/2 = 2000, 2 SMSS)
    expect(conn.nextTimeout()).toBe(600); // backed off ×2
    conn.onTimer(600);
    r = rec.one();
    expect(r.h.seq).toBe(iss);
    expect(conn.nextTimeout()).toBe(1400);
    expect(conn.rto).toBe(800);
    // the ACK covers the first segment: go-back-N continues with the rest (slow start: cwnd 2 SMSS)
    feed(conn, { seq: gseq, ack: iss + 1460, flags: A }, 700);
    const segs = rec.take();
    expect(segs.map((s) => [w(s.h.seq - iss), s.payload.length])).toEqual([
      [1460, 1460],
      [2920, 1080],
    ]);
    expect(conn.srtt).toBe(0); // Karn: the retransmitted segment is not timed
    expect(conn.rto).toBe(800); // backoff kept until a valid sample
    expect(conn.nextTimeout()).toBe(700 + 800);
    // an ACK beyond what go-back-N resent (the receiver had it) moves SND.NXT forward
    feed(conn, { seq: gseq, ack: iss + 4000, flags: A }, 800);
    expect(conn.sndUna >>> 0).toBe(w(iss + 4000));
    expect(conn.nextTimeout()).toBe(800 + 1000); // only buffer trim left
  });

  it('measures RTT on a fresh segment (Karn) and adapts RTO, clamped at 200 ms', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { synRtt: 20, now: 1000 });
    expect(conn.srtt).toBe(20); // first sample: the SYN-ACK
    expect(conn.rttvar).toBe(10);
    expect(conn.rto).toBe(200); // 20 + 4*10 = 60 → min 200
    conn.write(pattern(100), 1100);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 100, flags: A }, 1120);
    expect(conn.srtt).toBe(20);
    expect(conn.rttvar).toBe(7.5);
    conn.write(pattern(100), 1200);
    conn.write(pattern(100), 1210); // not timed: one measurement at a time
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 200, flags: A }, 1600);
    expect(conn.srtt).toBe(67.5);
    expect(conn.rttvar).toBe(100.625);
    expect(conn.rto).toBe(470);
  });

  it('uses timestamps for RTT when negotiated', () => {
    const { conn, rec, iss, gseq, ts } = established({ ackDelay: 0 }, { ts: true });
    conn.write(pattern(100), 1000);
    const s = rec.one();
    expect(s.h.hasTimestamps).toBe(true);
    feed(conn, { seq: gseq, ack: iss + 100, flags: A, ts: [50, s.h.tsVal] }, 1030);
    expect(conn.srtt).toBe(3.75); // samples 0 (handshake) then 30
    expect(conn.rttvar).toBe(7.5);
    void ts;
  });

  it('resets the connection after maxRetries timeouts', () => {
    const { conn, rec } = established({ maxRetries: 3 });
    conn.write(pattern(10), 0);
    rec.take();
    const times: number[] = [];
    while (conn.state !== C.CLOSED) {
      const t = conn.nextTimeout();
      times.push(t);
      conn.onTimer(t);
    }
    expect(times).toEqual([200, 600, 1400, 3000]);
    const segs = rec.take();
    expect(segs.length).toBe(4);
    expect(segs[3]!.h.flags & tcp.RST).toBe(tcp.RST);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
    expect(rec.log).toEqual(['reset', 'closed']);
  });

  it('caps the RTO at maxRto', () => {
    const { conn } = established({ maxRetries: 20 });
    conn.write(pattern(10), 0);
    for (let i = 0; i < 10; i++) conn.onTimer(conn.nextTimeout());
    expect(conn.rto).toBe(60000);
  });
});

describe('fast retransmit and NewReno recovery (RFC 5681, 6582)', () => {
  it('retransmits on the third duplicate ACK, inflates, handles a partial then a full ACK', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.write(pattern(10 * 1460), 0);
    expect(rec.take().length).toBe(10);
    // segments 0 and 3 lost; the guest acks 1 segment... no: seg 0 lost → dup ACKs at iss
    for (let i = 0; i < 2; i++) feed(conn, { seq: gseq, ack: iss, flags: A }, 10 + i);
    expect(rec.take()).toEqual([]);
    expect(conn.dupAcks).toBe(2);
    feed(conn, { seq: gseq, ack: iss, flags: A }, 12);
    const rx = rec.one();
    expect(rx.h.seq).toBe(iss);
    expect(rx.payload).toEqual(pattern(1460));
    expect(conn.inRecovery).toBe(true);
    expect(conn.ssthresh).toBe(5 * 1460);
    expect(conn.cwnd).toBe(8 * 1460); // ssthresh + 3 SMSS
    expect(conn.recover).toBe(w(iss + 14600));
    // more dup ACKs inflate cwnd; new data may go out once cwnd exceeds flight
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A }, 13 + i);
    expect(conn.cwnd).toBe(11 * 1460);
    // partial ACK up to segment 3 (which was also lost): retransmit it at once
    conn.write(pattern(0), 16);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 3 * 1460, flags: A }, 20);
    const p = rec.take();
    expect(p[0]!.h.seq).toBe(w(iss + 3 * 1460));
    expect(conn.inRecovery).toBe(true);
    // full ACK: leave recovery, cwnd = min(ssthresh, FlightSize + SMSS) (RFC 6582 §3.2 step 3 option 1)
    feed(conn, { seq: gseq, ack: iss + 10 * 1460, flags: A }, 30);
    expect(conn.inRecovery).toBe(false);
    expect(conn.cwnd).toBe(2 * 1460);
  });

  it('does not count ACKs with data, a window change or nothing outstanding as duplicates', () => {
    const { conn, iss, gseq } = established({ ackDelay: 0 });
    feed(conn, { seq: gseq, ack: iss, flags: A }, 1);
    expect(conn.dupAcks).toBe(0);
    conn.write(pattern(3000), 2);
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(10) }, 3);
    feed(conn, { seq: gseq + 10, ack: iss, flags: A, window: 1000 }, 4);
    expect(conn.dupAcks).toBe(0);
  });

  it('uses SACK to retransmit only the holes (RACK: DupThresh SACKed segments end the reordering window, RFC 8985 §6.2 step 4)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const M = 1460;
    conn.write(pattern(10 * M), 0);
    rec.take();
    // segments 0 and 4 lost; the guest SACKs 1..3 then 5..9
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 2) }, 10);
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 3) }, 11);
    expect(rec.take()).toEqual([]); // one or two SACKed: reo_wnd = min_RTT/4 = 2.5 ms, segment 0 not yet lost
    expect(conn.nextTimeout()).toBe(14); // RACK's reordering timer: sent at 0 + RACK.rtt 11 (segment 2's) + 2.5 = 13.5, rounded up to a whole ms (deadline.ts)
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 4) }, 12);
    expect(rec.one().h.seq).toBe(iss); // the third SACKed segment: reo_wnd 0, hole 0 lost and sent again
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: [...sack(5, 6), ...sack(1, 4)] }, 13);
    // segment 4 is lost too (segment 5, sent after it, arrived), but PRR holds it back: the pipe
    // (segments 0, 6..9) is at ssthresh (5 segments) and the SSRB bound adds nothing yet (RFC 6937 §3)
    expect(rec.take()).toEqual([]);
    expect(conn.rec.sb.lost).toBe(M);
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: [...sack(5, 7), ...sack(1, 4)] }, 14);
    // one more delivered: the hole (segment 4) goes out, not segments 1..3
    const r = rec.take();
    expect(r.map((s) => w(s.h.seq - iss) / M)).toEqual([4]);
    // ACK of hole 0 (partial): retransmission skips SACKed 1..3 and sent 4
    feed(conn, { seq: gseq, ack: iss + 4 * M, flags: A, sack: sack(5, 10) }, 20);
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A }, 21);
    expect(conn.inRecovery).toBe(false);
    expect(conn.sndBuf.length).toBe(0);
  });

  // A repair ending at sequence number 2^32 - 1 (-1 in the engine's signed form) is still a repair:
  // marked retransmitted once, not sent again on every ACK.
  it.each([
    ['anywhere', 0xfffff000],
    ['ending at 2^32 - 1', 2 ** 32 - 2 - 1460],
  ])('a SACK repair %s is sent once and leaves the lost count', (_name, isn) => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10, isn });
    const M = 1460;
    conn.write(pattern(10 * M), 0);
    rec.take();
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 4) }, 12);
    const r = rec.take();
    expect(r.map((s) => [w(s.h.seq - iss), s.payload.length])).toEqual([[0, M]]);
    expect(conn.rec.sb.lost).toBe(0);
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 5) }, 13);
    expect(rec.take().filter((s) => s.h.seq === iss)).toEqual([]); // not again
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A }, 22);
    expect(conn.sndBuf.length).toBe(0);
  });

  it('never retransmits past SND.MAX when segment sizes changed since the first transmission', () => {
    // Regression: segments first sent carrying a SACK block (12 bytes of options) are shorter; a
    // retransmission of the last one sized without options reached 12 bytes beyond SND.MAX, the
    // peer ACKed them, and every such ACK was dropped as acknowledging unsent data (a deadlock).
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, window: 3 * 1448 });
    const M = 1448; // 1460 minus one SACK block
    feed(conn, { seq: gseq + 100, ack: iss, flags: A, payload: pattern(10), window: 3 * M }, 1); // a hole on our receive side
    rec.take();
    conn.write(pattern(10 * M), 2);
    const first = rec.take();
    expect(first.map((x) => x.payload.length)).toEqual([M, M, M]);
    // segment 0 lost: three duplicate ACKs SACKing segment 1 → fast retransmit of segment 0
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: [w(iss + M), w(iss + 2 * M)], window: 3 * M }, 3 + i);
    expect(rec.take().map((x) => [w(x.h.seq - iss), x.payload.length])).toEqual([[0, M]]);
    // the guest fills our receive hole: our segments may be 1460 bytes again
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(100), window: 3 * M }, 6);
    rec.take();
    // partial ACK (segment 2 lost too): its retransmission keeps the size it was sent with
    feed(conn, { seq: gseq + 110, ack: iss + 2 * M, flags: A, window: 3 * M }, 7);
    const out = rec.take();
    expect(out[0]!.h.seq).toBe(w(iss + 2 * M));
    expect(out[0]!.payload.length).toBe(M);
    for (const x of out) expect(w(conn.sndMax - x.h.seq)).toBeGreaterThanOrEqual(x.payload.length);
  });
});

describe('SACK recovery right after a recovery (RFC 6675 §5)', () => {
  it('fast-retransmits a loss among segments sent during the previous recovery, without waiting for the RTO', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const M = 1460;
    conn.write(pattern(30 * M), 100);
    rec.take();
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    // episode 1: segment 0 lost
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 2 + i) }, 110 + i);
    expect(conn.inRecovery).toBe(true);
    const recover = conn.recover;
    feed(conn, { seq: gseq, ack: recover, flags: A }, 120); // full ACK, exactly `recover`: episode over
    expect(conn.inRecovery).toBe(false);
    rec.take();
    // episode 2: the segment at `recover` (sent during episode 1) is lost; SND.UNA has not passed `recover`
    const r = w(recover - iss) / M;
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: recover, flags: A, sack: sack(r + 1, r + 2 + i) }, 130 + i);
    expect(conn.inRecovery).toBe(true); // NewReno's guard would wait for the RTO here
    expect(rec.take().map((x) => x.h.seq)).toContain(recover);
    expect(conn.nRto).toBe(0);
    expect(conn.nFastRetransmit).toBe(2);
  });
});

describe('tail loss probe and time-based loss detection (RFC 8985)', () => {
  it('probes a lost tail after 2·SRTT, and the SACK it draws repairs the hole without the RTO (RFC 8985 §7.3, §6.2)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const M = 1460;
    conn.write(pattern(5 * M), 100);
    expect(rec.take().length).toBe(5);
    // segments 3 and 4 lost; the ACK of 0..2 re-arms the probe: PTO = 2·SRTT + 2 ms (two segments in flight)
    feed(conn, { seq: gseq, ack: iss + 3 * M, flags: A }, 110);
    expect(conn.nextTimeout()).toBe(110 + 2 * conn.srtt + 2);
    conn.onTimer(conn.nextTimeout());
    const probe = rec.one();
    expect([w(probe.h.seq - iss), probe.payload.length]).toEqual([4 * M, M]); // the last segment again
    expect(conn.nTlp).toBe(1);
    // its SACK, an RTT later, leaves segment 3 below a delivered segment sent after it, and segment 3
    // went out more than RACK.rtt + reo_wnd ago: lost, sent again at once
    const probeAt = 110 + 2 * conn.srtt + 2;
    feed(conn, { seq: gseq, ack: iss + 3 * M, flags: A, sack: [w(iss + 4 * M), w(iss + 5 * M)] }, probeAt + 10);
    const fix = rec.one();
    expect([w(fix.h.seq - iss), fix.payload.length]).toEqual([3 * M, M]);
    expect(conn.inRecovery).toBe(true);
    expect(conn.nRto).toBe(0);
    feed(conn, { seq: gseq, ack: iss + 5 * M, flags: A }, probeAt + 20);
    expect(conn.inRecovery).toBe(false);
    expect(conn.sndBuf.length).toBe(0);
  });

  it('sends a lost retransmission again once data sent after it is SACKed and an RTT has passed', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const M = 1460;
    conn.write(pattern(20 * M), 100);
    expect(rec.take().length).toBe(10);
    const sackTo = (n: number): number[] => [w(iss + M), w(iss + n * M)];
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sackTo(2 + i) }, 110 + i);
    expect(rec.take().map((x) => w(x.h.seq - iss) / M)).toContain(0); // fast retransmit of segment 0 at t=112
    // that retransmission is lost; SACKs keep coming, new data (sent after it) is SACKed
    let t = 113;
    for (let n = 5; n <= 10; n++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sackTo(n) }, t++);
    rec.take();
    expect(conn.nLostRetransmit).toBe(0); // nothing sent after it (limited transmit had sent 10 and 11 before) SACKed yet
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sackTo(13) }, 112 + conn.srtt + 3);
    const again = rec.take().filter((x) => x.h.seq === iss);
    expect(again.length).toBe(1);
    expect(conn.nLostRetransmit).toBe(1);
    expect(conn.nRto).toBe(0);
  });
});

describe('probes during recovery, undo, RTO with SACK (RFC 8985 §6.3/§7, RFC 2883, RFC 3522, RFC 9002 §6.2)', () => {
  const M = 1460;

  it('a probe in recovery recovers the lost ACK of a repaired hole without the RTO', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    conn.write(pattern(10 * M), 100);
    rec.take();
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 2 + i) }, 110 + i);
    expect(rec.take().map((s) => w(s.h.seq - iss) / M)).toEqual([0]); // segment 0 repaired
    expect(conn.inRecovery).toBe(true);
    // The guest ACKs everything, and that one ACK is lost: nothing else is in flight to draw another.
    const pto = 112 + 2 * conn.srtt + 2;
    expect(conn.nextTimeout()).toBe(pto);
    conn.onTimer(pto);
    const probe = rec.one();
    expect(w(probe.h.seq - iss) / M).toBe(9); // the last segment not SACKed, again
    expect(conn.nTlp).toBe(1);
    // unanswered, the next probe waits twice as long, still before the RTO
    expect(conn.nextTimeout()).toBe(pto + 2 * (2 * conn.srtt + 2));
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A, sack: sack(9, 10) }, pto + 10); // its answer (a DSACK)
    expect(conn.inRecovery).toBe(false);
    expect(conn.nRto).toBe(0);
    expect(conn.sndBuf.length).toBe(0);
  });

  it('undoes a recovery whose retransmission a DSACK shows was spurious (RFC 2883 §4, RFC 3708), and widens RACK\'s window', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    conn.write(pattern(10 * M), 100);
    rec.take();
    const before = conn.cwnd;
    // segment 0 is only late: three SACKs, and RACK (no reordering seen yet) calls it lost
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 2 + i) }, 110 + i);
    expect(rec.take().map((s) => w(s.h.seq - iss) / M)).toEqual([0]);
    expect(conn.ssthresh).toBe(5 * M);
    // the original arrives: everything ACKed; then the retransmission: a DSACK below the cumulative ACK
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A }, 113);
    expect(conn.inRecovery).toBe(false);
    expect(conn.cwnd).toBe(5 * M);
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A, sack: sack(0, 1) }, 114);
    expect(conn.nUndo).toBe(1);
    expect(conn.cwnd).toBe(before);
    expect(conn.ssthresh).toBe(0x3fffffff);
    expect(conn.rec.rack.reoWndMult).toBe(2);
  });

  it('undoes a recovery whose ending ACK echoes a timestamp older than its retransmission (Eifel, RFC 3522 §3.2)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, ts: true, synRtt: 10 });
    const Mt = M - 12; // timestamps take 12 bytes
    const before = conn.cwnd;
    conn.write(pattern(10 * Mt), 100);
    const sent = rec.take();
    const tsOrig = sent[0]!.h.tsVal;
    const sk = (l: number, r: number): number[] => [w(iss + l * Mt), w(iss + r * Mt)];
    for (let i = 0; i < 3; i++) feed(conn, { seq: gseq, ack: iss, flags: A, sack: sk(1, 2 + i), ts: [10 + i, sent[1 + i]!.h.tsVal] }, 110 + i);
    const rtx = rec.take();
    expect(rtx.map((s) => w(s.h.seq - iss) / Mt)).toEqual([0]);
    expect(rtx[0]!.h.tsVal).toBeGreaterThan(tsOrig);
    expect(conn.cwnd).toBeLessThan(before);
    // the hole is filled by the late original: the ACK echoes its TSval
    feed(conn, { seq: gseq, ack: iss + 10 * Mt, flags: A, ts: [20, tsOrig] }, 113);
    expect(conn.inRecovery).toBe(false);
    expect(conn.nUndo).toBe(1);
    expect(conn.cwnd).toBe(before);
    expect(conn.ssthresh).toBe(0x3fffffff);
  });

  it('an RTO marks every segment not SACKed lost and repairs them from one segment in slow start, skipping the SACKed ones (RFC 8985 §6.3)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10 });
    conn.write(pattern(6 * M), 100);
    rec.take();
    // nothing comes back: the probes (backed off) and then the RTO
    let probes = 0;
    while (conn.nRto === 0) {
      const t = conn.nextTimeout();
      conn.onTimer(t);
      const out = rec.take();
      if (conn.nRto === 0) probes += out.length;
      else {
        expect(out.map((s) => w(s.h.seq - iss) / M)).toEqual([0]); // the first segment, one (loss window)
        expect(conn.cwnd).toBe(M);
      }
    }
    expect(probes).toBe(4); // MAX_TLPS
    expect(conn.rec.sb.lost).toBe(5 * M);
    // segment 0 arrives; the guest holds 2..5 (SACK): only segment 1 is missing
    feed(conn, { seq: gseq, ack: iss + M, flags: A, sack: [w(iss + 2 * M), w(iss + 6 * M)] }, conn.nextTimeout() - 100);
    expect(rec.take().map((s) => w(s.h.seq - iss) / M)).toEqual([1]);
    feed(conn, { seq: gseq, ack: iss + 6 * M, flags: A }, conn.now + 10);
    expect(conn.rec.inLoss).toBe(false);
    expect(conn.sndBuf.length).toBe(0);
    expect(conn.nRetransmit).toBe(4 + 2);
  });
});

describe('the scoreboard bound', () => {
  it('at 2048 segments in flight new data waits for an ACK (counted), then flows again', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10, window: 65535 });
    // One-byte writes are one-byte segments (no Nagle): the congestion window (bytes) would let
    // 14,600 of them out; the scoreboard keeps at most 2048 records.
    for (let i = 0; i < 2100; i++) conn.write(pattern(1, i), 100);
    expect(rec.take().length).toBe(2048);
    expect(conn.nScoreboardFull).toBeGreaterThan(0);
    expect(conn.rec.sb.count).toBe(2048);
    feed(conn, { seq: gseq, ack: iss + 100, flags: A }, 110);
    const more = rec.take();
    expect(more.map((x) => [w(x.h.seq - iss), x.payload.length])).toEqual([[2048, 52]]); // what waited, in one segment
    expect(w(conn.sndMax - iss)).toBe(2100);
  });
});
