import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { craft, drain, established, feed, make, pattern } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const F = tcp.FIN | tcp.ACK;
const w = (x: number): number => x >>> 0;

describe('half-close', () => {
  it('guest FIN → onRemoteFin, CLOSE-WAIT, we keep sending; our FIN after the data → LAST-ACK → CLOSED', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    feed(conn, { seq: gseq, ack: iss, flags: F | tcp.PSH, payload: pattern(10) }, 1);
    expect(rec.log).toEqual(['data', 'fin']);
    expect(conn.state).toBe(C.CLOSE_WAIT);
    expect(rec.one().h.ack).toBe(w(gseq + 11));
    expect(drain(conn, 2)).toEqual(pattern(10));
    expect(conn.write(pattern(3000), 3)).toBe(3000);
    expect(rec.take().map((s) => s.payload.length)).toEqual([1460, 1460, 80]);
    conn.shutdownWrite(4);
    expect(conn.state).toBe(C.LAST_ACK);
    const fin = rec.one().h;
    expect(fin.flags).toBe(F);
    expect(fin.seq).toBe(w(iss + 3000));
    expect(conn.write(pattern(1), 5)).toBe(0); // no writes after shutdown
    feed(conn, { seq: gseq + 11, ack: iss + 3000, flags: A }, 6);
    expect(conn.state).toBe(C.LAST_ACK);
    feed(conn, { seq: gseq + 11, ack: iss + 3001, flags: A }, 7);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.log).toEqual(['data', 'fin', 'closed']);
  });

  it('app shutdownWrite → FIN after queued data (FIN-WAIT-1/2), guest keeps sending, its FIN → TIME-WAIT', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0, timeWait: 2000 });
    conn.write(pattern(100), 0);
    conn.shutdownWrite(0);
    const segs = rec.take();
    // no Nagle: the data left at write(), the FIN follows it
    expect(segs.map((x) => [x.h.flags, x.payload.length])).toEqual([
      [A | tcp.PSH, 100],
      [F, 0],
    ]);
    expect(conn.state).toBe(C.FIN_WAIT_1);
    feed(conn, { seq: gseq, ack: iss + 101, flags: A }, 10);
    expect(conn.state).toBe(C.FIN_WAIT_2);
    feed(conn, { seq: gseq, ack: iss + 101, flags: A, payload: pattern(50) }, 20);
    expect(drain(conn, 21)).toEqual(pattern(50));
    rec.take();
    feed(conn, { seq: gseq + 50, ack: iss + 101, flags: F }, 30);
    expect(conn.state).toBe(C.TIME_WAIT);
    expect(rec.one().h.ack).toBe(w(gseq + 51));
    expect(conn.nextTimeout()).toBe(2030);
    // a retransmitted FIN is re-ACKed and restarts the timer
    feed(conn, { seq: gseq + 50, ack: iss + 101, flags: F }, 1000);
    expect(rec.one().h.ack).toBe(w(gseq + 51));
    expect(conn.nextTimeout()).toBe(3000);
    conn.onTimer(3000);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.log).toEqual(['data', 'fin', 'closed']);
  });

  it('retransmits a lost FIN', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.shutdownWrite(0);
    expect(rec.one().h.flags).toBe(F);
    conn.onTimer(conn.nextTimeout());
    const again = rec.one().h;
    expect(again.flags).toBe(F);
    expect(again.seq).toBe(iss);
    feed(conn, { seq: gseq, ack: iss + 1, flags: A }, 1000);
    expect(conn.state).toBe(C.FIN_WAIT_2);
  });

  it('handles simultaneous close: FIN-WAIT-1 → CLOSING → TIME-WAIT', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.shutdownWrite(0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss, flags: F }, 1); // their FIN crosses ours
    expect(conn.state).toBe(C.CLOSING);
    expect(rec.one().h.ack).toBe(w(gseq + 1));
    feed(conn, { seq: gseq + 1, ack: iss + 1, flags: A }, 2);
    expect(conn.state).toBe(C.TIME_WAIT);
    conn.onTimer(conn.nextTimeout());
    expect(conn.state).toBe(C.CLOSED);
  });

  it('FIN+ACK of our FIN in one segment: FIN-WAIT-1 → TIME-WAIT', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    conn.shutdownWrite(0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1, flags: F }, 1);
    expect(conn.state).toBe(C.TIME_WAIT);
  });

  it('holds an out-of-order FIN until the hole fills', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: true });
    feed(conn, { seq: gseq + 5, ack: iss, flags: F, payload: pattern(5, 5) }, 1);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.log).toEqual([]);
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(5) }, 2);
    expect(conn.state).toBe(C.CLOSE_WAIT);
    expect(rec.log).toEqual(['data', 'fin']);
    expect(drain(conn, 3)).toEqual(pattern(10));
    expect(conn.rcvNxt).toBe(w(gseq + 11));
  });

  it('queues a FIN requested before the handshake completes', () => {
    const { conn, rec } = make({ ackDelay: 0 });
    conn.connect(1000, 0);
    conn.write(pattern(10), 0);
    conn.shutdownWrite(0);
    rec.take();
    feed(conn, { seq: 5000, ack: 1001, flags: tcp.SYN | A, mss: 1460 }, 1);
    expect(conn.state).toBe(C.FIN_WAIT_1);
    const s = rec.take();
    expect(s.map((x) => [x.h.flags & (tcp.FIN | tcp.SYN), x.payload.length])).toEqual([
      [0, 0],
      [tcp.FIN, 10],
    ]);
  });
});

describe('RST handling (RFC 9293 §3.10.7.4, RFC 5961 §3)', () => {
  const states: [string, (c: ReturnType<typeof established>) => void, number][] = [
    ['ESTABLISHED', () => {}, C.ESTABLISHED],
    ['FIN-WAIT-1', (c) => c.conn.shutdownWrite(0), C.FIN_WAIT_1],
    ['FIN-WAIT-2', (c) => (c.conn.shutdownWrite(0), feed(c.conn, { seq: c.gseq, ack: c.iss + 1, flags: A }, 0)), C.FIN_WAIT_2],
    ['CLOSE-WAIT', (c) => feed(c.conn, { seq: c.gseq, ack: c.iss, flags: F }, 0), C.CLOSE_WAIT],
    ['LAST-ACK', (c) => (feed(c.conn, { seq: c.gseq, ack: c.iss, flags: F }, 0), c.conn.shutdownWrite(0)), C.LAST_ACK],
    ['CLOSING', (c) => (c.conn.shutdownWrite(0), feed(c.conn, { seq: c.gseq, ack: c.iss, flags: F }, 0)), C.CLOSING],
    ['TIME-WAIT', (c) => (c.conn.shutdownWrite(0), feed(c.conn, { seq: c.gseq, ack: c.iss + 1, flags: F }, 0)), C.TIME_WAIT],
  ];
  for (const [name, setup, st] of states) {
    it(`in ${name}: exact RST closes, in-window RST gets a challenge ACK, out-of-window is ignored`, () => {
      const c = established({ ackDelay: 0 });
      setup(c);
      expect(c.conn.state).toBe(st);
      c.rec.take();
      c.rec.log.length = 0;
      const rn = c.conn.rcvNxt;
      feed(c.conn, { seq: rn + 100, flags: tcp.RST }, 1);
      const ch = c.rec.one().h;
      expect(ch.flags).toBe(A);
      expect(ch.ack).toBe(rn);
      expect(c.conn.state).toBe(st);
      feed(c.conn, { seq: rn + 1000000, flags: tcp.RST }, 2);
      expect(c.rec.take()).toEqual([]);
      expect(c.conn.state).toBe(st);
      feed(c.conn, { seq: rn, flags: tcp.RST }, 3);
      expect(c.conn.state).toBe(C.CLOSED);
      expect(c.rec.take()).toEqual([]); // never answer a RST
      const expectReset = st === C.ESTABLISHED || st === C.FIN_WAIT_1 || st === C.FIN_WAIT_2 || st === C.CLOSE_WAIT;
      expect(c.rec.log).toEqual(expectReset ? ['reset', 'closed'] : ['closed']);
    });
  }

  it('in SYN-RECEIVED (accepted): exact RST resets, in-window challenges', () => {
    const { conn, rec } = make();
    conn.openPassive(craft({ seq: 500, flags: tcp.SYN }).h, 9000, 0);
    conn.accept(0);
    rec.take();
    feed(conn, { seq: 510, flags: tcp.RST }, 1);
    expect(rec.one().h.flags).toBe(A);
    feed(conn, { seq: 501, flags: tcp.RST }, 2);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.resets).toEqual([C.RESET_REMOTE]);
  });

  it('in SYN-RECEIVED before accept: the guest giving up closes silently-ish', () => {
    const { conn, rec } = make();
    conn.openPassive(craft({ seq: 500, flags: tcp.SYN }).h, 9000, 0);
    feed(conn, { seq: 501, flags: tcp.RST }, 1);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.take()).toEqual([]);
    expect(rec.log).toEqual(['reset', 'closed']);
  });

  it('answers a SYN in a synchronized state with a challenge ACK (RFC 5961 §4)', () => {
    const { conn, rec, gseq } = established({ ackDelay: 0 });
    feed(conn, { seq: gseq + 10, flags: tcp.SYN }, 1);
    const ch = rec.one().h;
    expect(ch.flags).toBe(A);
    expect(ch.ack).toBe(gseq);
    expect(conn.state).toBe(C.ESTABLISHED);
  });

  it('answers an ACK for data never sent with an ACK and drops it (RFC 5961 §5)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    feed(conn, { seq: gseq, ack: iss + 5000, flags: A, payload: pattern(10) }, 1);
    const a = rec.one().h;
    expect(a.ack).toBe(gseq); // the data was not taken
    expect(a.seq).toBe(iss);
    expect(conn.readable).toBe(0);
  });

  it('abort() sends RST and closes without onReset', () => {
    const { conn, rec, iss, gseq } = established();
    conn.write(pattern(10), 0);
    rec.take();
    conn.abort(1);
    const r = rec.one().h;
    expect(r.flags & tcp.RST).toBe(tcp.RST);
    expect(r.seq).toBe(w(iss + 10));
    expect(r.ack).toBe(gseq);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.log).toEqual(['closed']);
    expect(conn.nextTimeout()).toBe(Infinity);
    conn.abort(2);
    expect(rec.closed).toBe(1);
  });
});

describe('liveness', () => {
  it('answers guest keepalives (SEQ = RCV.NXT-1, 0 or 1 byte) with an ACK', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 40 });
    feed(conn, { seq: gseq - 1, ack: iss, flags: A }, 1);
    let a = rec.one().h;
    expect([a.seq, a.ack, a.flags]).toEqual([iss, gseq, A]);
    feed(conn, { seq: gseq - 1, ack: iss, flags: A, payload: new Uint8Array(1) }, 2);
    a = rec.one().h;
    expect(a.ack).toBe(gseq);
    expect(conn.readable).toBe(0);
  });

  it('resets an idle connection both ways after idleTimeout', () => {
    const { conn, rec, iss, gseq } = established({ idleTimeout: 60000 });
    expect(conn.nextTimeout()).toBe(60000);
    feed(conn, { seq: gseq, ack: iss, flags: A }, 30000); // activity pushes it out
    expect(conn.nextTimeout()).toBe(90000);
    conn.onTimer(90000);
    const r = rec.one().h;
    expect(r.flags & tcp.RST).toBe(tcp.RST);
    expect(rec.resets).toEqual([C.RESET_IDLE]);
    expect(conn.state).toBe(C.CLOSED);
  });
});

describe('the ACK of a FIN (RFC 9293 §3.8.6.3: delayed like data when it moves us to CLOSE-WAIT)', () => {
  it('rides on our FIN when the application closes within the delay: one segment, not two', () => {
    const { conn, rec, iss, gseq } = established();
    feed(conn, { seq: gseq, ack: iss, flags: F }, 1);
    expect(conn.state).toBe(C.CLOSE_WAIT);
    expect(rec.take()).toEqual([]); // owed, not sent yet
    expect(conn.nextTimeout()).toBe(1 + 40);
    conn.shutdownWrite(2);
    const segs = rec.take();
    expect(segs.map((s) => [s.h.flags, s.h.ack])).toEqual([[F, w(gseq + 1)]]);
    expect(conn.state).toBe(C.LAST_ACK);
  });

  it('goes alone after the delay when the application does not close', () => {
    const { conn, rec, iss, gseq } = established();
    feed(conn, { seq: gseq, ack: iss, flags: F | tcp.PSH, payload: pattern(10) }, 1);
    expect(rec.take()).toEqual([]);
    conn.onTimer(41);
    expect(rec.one().h).toMatchObject({ flags: A, ack: w(gseq + 11) });
  });

  it('goes at once when it completes our own close (FIN-WAIT-2 → TIME-WAIT)', () => {
    const { conn, rec, iss, gseq } = established({ timeWait: 2000 });
    conn.shutdownWrite(0);
    expect(rec.one().h.flags).toBe(F);
    feed(conn, { seq: gseq, ack: iss + 1, flags: A }, 1);
    expect(conn.state).toBe(C.FIN_WAIT_2);
    feed(conn, { seq: gseq, ack: iss + 1, flags: F }, 2);
    expect(conn.state).toBe(C.TIME_WAIT);
    expect(rec.one().h).toMatchObject({ flags: A, ack: w(gseq + 1) });
  });
});
