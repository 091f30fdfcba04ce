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
    expect(conn.sndUna).toBe(w(iss + 4000));
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

  it('uses SACK to retransmit only the holes', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true });
    const M = 1460;
    conn.write(pattern(10 * M), 0);
    rec.take();
    // segments 0 and 4 lost; the guest SACKs 1..3 then 5..9
    const sack = (l: number, r: number): number[] => [w(iss + l * M), w(iss + r * M)];
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 2) }, 10);
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 3) }, 11);
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: sack(1, 4) }, 12);
    expect(rec.one().h.seq).toBe(iss); // fast retransmit of hole 0
    feed(conn, { seq: gseq, ack: iss, flags: A, sack: [...sack(5, 6), ...sack(1, 4)] }, 13);
    // the next hole (segment 4) goes out on this dup ACK, not segments 1..3
    const r = rec.take();
    expect(r.map((s) => w(s.h.seq - iss) / M)).toContain(4);
    expect(r.map((s) => w(s.h.seq - iss) / M)).not.toContain(1);
    // ACK of hole 0 (partial): retransmission skips SACKed 1..3 and sent 4
    feed(conn, { seq: gseq, ack: iss + 4 * M, flags: A, sack: sack(5, 10) }, 20);
    feed(conn, { seq: gseq, ack: iss + 10 * M, flags: A }, 21);
    expect(conn.inRecovery).toBe(false);
    expect(conn.sndBuf.length).toBe(0);
  });
});
