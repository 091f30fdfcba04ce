/**
 * Nothing we send reaches past SND.MAX or past the peer's right window edge
 * (RFC 9293 §3.8.6: a receiver trims what lies beyond its window), and
 * segments without data carry a sequence number the peer accepts (Linux
 * tcp_acceptable_seq()), so the ACKs in them are not thrown away.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { Link, established, feed, make, pattern, type LinkOptions, type Seg } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const w = (x: number): number => x >>> 0;
const still: LinkOptions = { loss: 0, reorder: 0, delay: 1, jitter: 0, dup: 0 };

/** Two of our connections joined by a lossless link: `a` opens to `b`. */
function pair(cfgA: Partial<C.TcpConfig>, cfgB: Partial<C.TcpConfig>) {
  const a = make(cfgA);
  const b = make(cfgB);
  a.conn.connect(1000, 0);
  const syn = a.rec.take()[0]!;
  b.conn.openPassive(syn.h, 0x7ffff000, 0);
  const link = new Link(a, b, still, 1);
  b.conn.accept(0);
  expect(link.run(() => a.conn.state === C.ESTABLISHED && b.conn.state === C.ESTABLISHED, 100)).toBe(true);
  return { a: a.conn, b: b.conn, link };
}

describe('retransmission timeout against a small window', () => {
  it('retransmits only bytes already sent and inside the peer window', () => {
    // The guest offers 500 bytes; we send them, the app queues 4000 more, and the segment is lost.
    const { conn, rec, iss } = established({ ackDelay: 0 }, { window: 500 });
    conn.write(pattern(500), 0);
    expect(rec.one().payload.length).toBe(500);
    conn.write(pattern(4000, 500), 1);
    expect(rec.take()).toEqual([]); // the window is full
    conn.onTimer(conn.nextTimeout());
    const r = rec.one();
    expect([w(r.h.seq - iss), r.payload.length]).toEqual([0, 500]);
    expect(conn.sndMax >>> 0).toBe(w(iss + 500));
  });

  it('with a window shrunk to zero, probes instead of sending beyond the right edge', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 3000 });
    conn.write(pattern(3000), 0);
    expect(rec.take().length).toBe(3);
    // the guest takes 1000 bytes and shrinks its window to zero (its right edge moves back)
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, window: 0 }, 5);
    rec.take();
    conn.onTimer(conn.nextTimeout());
    const r = rec.one();
    expect(r.payload.length).toBe(0);
    expect(r.h.seq).toBe(w(iss + 1000 - 1)); // SND.UNA - 1: answered with an ACK carrying the window
    expect(conn.sndMax >>> 0).toBe(w(iss + 3000));
  });

  it('the retransmission of a tail loss probe stays inside the right edge', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true, synRtt: 10, window: 4 * 1460 });
    conn.write(pattern(4 * 1460), 100);
    expect(rec.take().length).toBe(4);
    // the guest ACKs one segment and shrinks its window to two segments from there (edge at 3 segments)
    feed(conn, { seq: gseq, ack: iss + 1460, flags: A, window: 2 * 1460 }, 110);
    rec.take();
    conn.onTimer(conn.nextTimeout()); // the tail loss probe
    for (const s of rec.take()) expect(w(s.h.seq - iss) + s.payload.length).toBeLessThanOrEqual(3 * 1460);
  });

  it('keeps the ACK path alive against a receiver that trims to its window (this stack)', () => {
    // b can hold 1000 bytes and its app does not read: a may send 1000 bytes, no more.
    const { a, b, link } = pair({ ackDelay: 0 }, { rcvBufMax: 1000, ackDelay: 0 });
    const beyond: string[] = [];
    let dropFirst = true;
    link.filter = (to, s: Seg) => {
      if (to === 1 && s.payload.length > 0) {
        // every data segment from a must end inside b's window as a knows it, and a retransmission
        // (one that starts below SND.MAX) at or below SND.MAX
        const end = w(s.h.seq - a.sndUna) + s.payload.length;
        const rtx = ((s.h.seq - a.sndMax) | 0) < 0;
        if (end > a.sndWnd || (rtx && ((s.h.seq + s.payload.length - a.sndMax) | 0) > 0)) beyond.push(`${w(s.h.seq - a.iss)}+${s.payload.length}`);
        if (dropFirst) {
          dropFirst = false;
          return false; // the first data segment is lost: an RTO follows
        }
      }
      return true;
    };
    a.write(pattern(20000), link.now);
    expect(link.run(() => a.nRto >= 1 && b.readable === 1000, 5000)).toBe(true);
    // b now sends to a: a's pure ACKs must be acceptable to b (whose window is closed) and end b's flight at once
    const t0 = link.now;
    b.write(pattern(3000), t0);
    link.run(() => b.sndUna === b.sndMax, t0 + 150);
    expect(w(b.sndMax - b.sndUna)).toBe(0);
    expect(b.nRto).toBe(0);
    expect(beyond).toEqual([]);
  });
});

describe('sequence numbers of segments without data', () => {
  it('a pure ACK carries min(SND.MAX, right edge) when the peer shrank its window (tcp_acceptable_seq)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 3000 });
    conn.write(pattern(3000), 0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, window: 200 }, 5); // right edge iss+1200 < SND.MAX iss+3000
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A | tcp.PSH, window: 200, payload: pattern(10) }, 6);
    const ack = rec.one();
    expect(ack.payload.length).toBe(0);
    expect(ack.h.seq).toBe(w(iss + 1200));
    expect(ack.h.ack).toBe(w(gseq + 10));
  });

  it('a pure ACK carries SND.MAX otherwise', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.write(pattern(3000), 0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss, flags: A | tcp.PSH, payload: pattern(10) }, 1);
    expect(rec.one().h.seq).toBe(w(iss + 3000));
  });

  it('a zero-window probe is SND.UNA - 1 without data, and the peer (this stack) answers it with its window', () => {
    const { a, b, link } = pair({ ackDelay: 0 }, { rcvBufMax: 3000, ackDelay: 0 });
    a.write(pattern(5000), link.now);
    expect(link.run(() => b.readable === 3000 && a.sndUna === a.sndMax, 1000)).toBe(true);
    expect(a.sndWnd).toBe(0);
    const probes: Seg[] = [];
    link.filter = (to, s) => {
      if (to === 1) probes.push(s);
      return true;
    };
    link.run(() => probes.length > 0, link.now + 5000);
    const p = probes[0]!;
    expect([p.payload.length, p.h.seq]).toEqual([0, w(a.sndUna - 1)]);
    // b's app reads; its window update reopens a's window
    const got = new Uint8Array(3000);
    b.read(got, 0, 3000, link.now);
    expect(got).toEqual(pattern(3000));
    link.run(() => a.sndBuf.length === 0, link.now + 5000);
    expect(a.sndBuf.length).toBe(0);
    expect(b.readable).toBe(2000);
  });

  it('answers an unacceptable segment with a SEQ its sender accepts: its ACK number (no ACK war between stale views)', () => {
    // The guest shrank its window to zero at iss+1000 but has everything up to SND.MAX = iss+3000 (its
    // ACK of it was lost). It sends an old segment carrying ack = iss+3000: our answer must not start at
    // the stale edge iss+1000, below its RCV.NXT, or it drops that too, answers, and so on forever.
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 3000 });
    conn.write(pattern(3000), 0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, window: 0 }, 5);
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A | tcp.PSH, window: 0, payload: pattern(10) }, 6);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 3000, flags: A, window: 0, payload: pattern(10) }, 7); // old: below RCV.NXT
    const r = rec.one();
    expect(r.h.seq).toBe(w(iss + 3000));
    expect(conn.sndUna >>> 0).toBe(w(iss + 1000)); // the unacceptable segment's ACK is not processed (RFC 9293 §3.10.7.4)
  });

  it('a RST carries min(SND.MAX, right edge) too', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 3000 });
    conn.write(pattern(3000), 0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A, window: 0 }, 5);
    rec.take();
    conn.abort(6);
    const r = rec.one();
    expect(r.h.flags & tcp.RST).toBe(tcp.RST);
    expect(r.h.seq).toBe(w(iss + 1000));
  });
});
