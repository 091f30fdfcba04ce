/**
 * RTT samples (RFC 6298 §3 Karn, RFC 7323 §4): never from a segment sent
 * more than once unless a timestamp echo says which transmission was
 * answered, and never from an echo older than a retransmission of the data
 * it acknowledges.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { craft, established, feed, make, pattern } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const w = (x: number): number => x >>> 0;

/** A passive connection whose guest retransmits its SYN at `again` (before our RTO) and ACKs at `ackAt`. */
function synRetransmitted(ts: boolean, again: number, ackAt: number, echoFirst: boolean) {
  const m = make({ ackDelay: 0 });
  const giss = 5000;
  const syn = craft({ seq: giss, flags: tcp.SYN, mss: 1460, ...(ts ? { ts: [1, 0] as [number, number] } : {}) });
  m.conn.openPassive(syn.h, 77777, 0);
  m.conn.accept(0);
  const first = m.rec.one().h;
  m.conn.onSegment(syn.h, syn.bytes, again); // the guest's SYN again: our SYN-ACK again
  const second = m.rec.one().h;
  expect(second.flags).toBe(tcp.SYN | tcp.ACK);
  const echo = echoFirst ? first.tsVal : second.tsVal;
  feed(m.conn, { seq: giss + 1, ack: 77778, flags: A, ...(ts ? { ts: [2, echo] as [number, number] } : {}) }, ackAt);
  expect(m.conn.state).toBe(C.ESTABLISHED);
  return m.conn;
}

describe("Karn's rule for the handshake", () => {
  it('takes no sample from a SYN-ACK sent again for a retransmitted SYN', () => {
    const conn = synRetransmitted(false, 500, 520, false);
    expect(conn.srtt).toBe(-1); // ambiguous: 520 ms from the first SYN-ACK or 20 ms from the second
    expect(conn.rto).toBe(1000);
  });

  it('with timestamps, takes the sample the echo identifies, and none from an echo of the first SYN-ACK', () => {
    expect(synRetransmitted(true, 500, 520, false).srtt).toBe(20);
    expect(synRetransmitted(true, 500, 520, true).srtt).toBe(-1);
  });
});

describe('timestamp samples after a retransmission timeout (RFC 7323 §4)', () => {
  it('an ACK echoing a TSval older than our retransmission does not inflate SRTT', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0, maxRetries: 20 }, { ts: true, synRtt: 10 });
    expect(conn.srtt).toBe(10);
    conn.write(pattern(1000), 100);
    const original = rec.one();
    // The guest got the segment; its ACK was lost. Our RTO backs off for a minute.
    let t = 100;
    let last = original;
    for (let i = 0; i < 9; i++) {
      t = conn.nextTimeout();
      conn.onTimer(t);
      last = rec.one();
      expect(last.h.seq).toBe(iss);
    }
    expect(t).toBeGreaterThan(60_000);
    // Each retransmission is a duplicate to the guest: RFC 7323 §4.3 keeps TS.Recent at the TSval of the
    // last segment that advanced its window, so its duplicate ACK (which advances our SND.UNA) echoes the
    // original's TSval, a minute old.
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, ts: [500, original.h.tsVal] }, t + 10);
    expect(conn.sndUna >>> 0).toBe(w(iss + 1000));
    expect(conn.srtt).toBe(10);
    // a fresh segment and its ACK give a fresh sample, which ends the backoff
    conn.write(pattern(100), t + 20);
    const fresh = rec.one();
    feed(conn, { seq: gseq, ack: iss + 1100, flags: A, ts: [501, fresh.h.tsVal] }, t + 30);
    expect(conn.srtt).toBe(10);
    expect(conn.rto).toBe(200);
  });

  it('an ACK echoing the retransmission itself is a sample', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { ts: true, synRtt: 10 });
    conn.write(pattern(1000), 100);
    rec.take();
    const t = conn.nextTimeout();
    conn.onTimer(t);
    const rtx = rec.one();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, ts: [500, rtx.h.tsVal] }, t + 18);
    expect(conn.srtt).toBe(11); // 7/8 · 10 + 1/8 · 18
  });

  it('a duplicate ACK is never a sample', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { ts: true, synRtt: 10 });
    conn.write(pattern(3000), 100);
    const segs = rec.take();
    for (let i = 0; i < 2; i++) feed(conn, { seq: gseq, ack: iss, flags: A, ts: [500 + i, segs[0]!.h.tsVal - 50_000] }, 5000 + i);
    expect(conn.srtt).toBe(10);
  });
});
