/**
 * Every way a connection ends for lack of progress, with a fake clock: the
 * established idle timeout (RFC 5382 REQ-5) and what counts as activity, the
 * retry budget, the user timeout (RFC 5482 in spirit) and the zero-window
 * bound.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { established, feed } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;

/** Runs every timer of `conn` due at or before `t`. */
function runUntil(conn: C.TcpConn, t: number): void {
  for (let n = conn.nextTimeout(); n <= t; n = conn.nextTimeout()) conn.onTimer(n);
}

describe('idle timeout (RFC 5382 REQ-5)', () => {
  it('is at least 2 h 4 min by default', () => {
    const { conn, rec } = established();
    expect(C.DEFAULTS.idleTimeout).toBeGreaterThanOrEqual((2 * 60 + 4) * 60_000);
    runUntil(conn, (2 * 60 + 4) * 60_000 - 1);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.resets).toEqual([]);
  });

  it('guest keepalives (SEQ = RCV.NXT-1, 0 or 1 byte) count as activity', () => {
    const { conn, rec, iss, gseq } = established();
    const every = 2 * 3600_000 - 60_000; // a keepalive every 1 h 59 min
    for (let i = 1; i <= 3; i++) {
      runUntil(conn, i * every);
      expect(conn.state).toBe(C.ESTABLISHED);
      feed(conn, { seq: gseq - 1, ack: iss, flags: A, ...(i % 2 ? {} : { payload: new Uint8Array(1) }) }, i * every);
      expect(rec.take().map((s) => s.h.ack)).toEqual([gseq]); // answered
    }
    runUntil(conn, 3 * every + C.DEFAULTS.idleTimeout - 1);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.resets).toEqual([]);
    runUntil(conn, 3 * every + C.DEFAULTS.idleTimeout);
    expect(rec.resets).toEqual([C.RESET_IDLE]);
  });

  it('other segments outside the window do not', () => {
    const { conn, rec, iss, gseq } = established({ idleTimeout: 60_000 });
    feed(conn, { seq: gseq + 1_000_000, ack: iss, flags: A }, 50_000); // far beyond the window: answered, not activity
    rec.take();
    runUntil(conn, 60_000);
    expect(rec.resets).toEqual([C.RESET_IDLE]);
  });
});

/** Feeds the guest's duplicate ACK (nothing new acknowledged, window open) after every segment we send. */
function dupAckEverything(conn: C.TcpConn, rec: ReturnType<typeof established>['rec'], gseq: number, ackNo: number, until: number): number {
  for (let t = conn.nextTimeout(); t <= until && conn.state !== C.CLOSED; t = conn.nextTimeout()) {
    conn.onTimer(t);
    if (conn.state === C.CLOSED) return t;
    if (rec.take().some((s) => (s.h.flags & tcp.RST) === 0)) feed(conn, { seq: gseq, ack: ackNo, flags: A }, t + 1);
  }
  return Infinity;
}

describe('retry budget and user timeout (RFC 5482 in spirit)', () => {
  it('duplicate ACKs do not refill the retry budget: unacknowledged data is given up', () => {
    const { conn, rec, iss, gseq } = established({ maxRetries: 3 });
    conn.write(new Uint8Array(1000), 0);
    rec.take();
    const at = dupAckEverything(conn, rec, gseq, iss, 3600_000);
    expect(at).toBe(3000); // RTOs at 200, 600, 1400, the fourth gives up
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
  });

  it('an unacknowledged FIN is given up the same way', () => {
    const { conn, rec, iss, gseq } = established({ maxRetries: 3 });
    conn.shutdownWrite(0);
    expect(rec.one().h.flags & tcp.FIN).toBe(tcp.FIN);
    const at = dupAckEverything(conn, rec, gseq, iss, 3600_000);
    expect(at).toBeLessThanOrEqual(3000);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
  });

  it('gives up data nobody acknowledges after userTimeout, whatever the retry count, resetting both ways', () => {
    const { conn, rec, iss, gseq } = established({ maxRetries: 1000, userTimeout: 100_000 });
    expect(C.DEFAULTS.userTimeout).toBeGreaterThanOrEqual(100_000);
    expect(C.DEFAULTS.userTimeout).toBeLessThanOrEqual(15 * 60_000);
    conn.write(new Uint8Array(1000), 5000);
    rec.take();
    const sent: number[] = [];
    let closedAt = Infinity;
    for (let t = conn.nextTimeout(); t < 3600_000; t = conn.nextTimeout()) {
      conn.onTimer(t);
      sent.push(...rec.take().map((s) => s.h.flags));
      if (conn.state === C.CLOSED) {
        closedAt = t;
        break;
      }
      feed(conn, { seq: gseq, ack: iss, flags: A }, t + 1); // the guest is alive, acknowledges nothing
    }
    expect(closedAt).toBe(105_000);
    expect(sent.at(-1)! & tcp.RST).toBe(tcp.RST);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
  });

  it('progress restarts the user timeout', () => {
    const { conn, rec, iss, gseq } = established({ userTimeout: 100_000, maxRetries: 1000 });
    conn.write(new Uint8Array(2000), 0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 1000, flags: A }, 90_000); // half of it, late
    rec.take();
    for (let t = conn.nextTimeout(); t < 189_999; t = conn.nextTimeout()) conn.onTimer(t);
    expect(conn.state).toBe(C.ESTABLISHED);
    runUntil(conn, 190_000);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
  });
});

describe('zero window that never opens', () => {
  it('answered probes keep it alive until zeroWindowTimeout, then both sides are reset', () => {
    const { conn, rec, iss, gseq } = established({ zeroWindowTimeout: 600_000 }, { window: 0 });
    conn.write(new Uint8Array(100), 0);
    expect(rec.take()).toEqual([]);
    let first = -1;
    let t = 0;
    for (t = conn.nextTimeout(); conn.state !== C.CLOSED && t < 7200_000; t = conn.nextTimeout()) {
      conn.onTimer(t);
      const out = rec.take();
      if (conn.state === C.CLOSED) {
        expect(out.at(-1)!.h.flags & tcp.RST).toBe(tcp.RST);
        break;
      }
      if (out.length > 0 && first < 0) first = t;
      feed(conn, { seq: gseq, ack: iss, flags: A, window: 0 }, t + 1); // the answer: still zero
    }
    expect(first).toBeGreaterThan(0);
    expect(t).toBe(first + 600_000);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
    expect(C.DEFAULTS.zeroWindowTimeout).toBeGreaterThanOrEqual(60_000);
    expect(C.DEFAULTS.zeroWindowTimeout).toBeLessThan(C.DEFAULTS.idleTimeout);
  });

  it('a window that opens restarts the bound', () => {
    const { conn, rec, iss, gseq } = established({ zeroWindowTimeout: 600_000 }, { window: 0 });
    conn.write(new Uint8Array(3000), 0);
    const answer = (t: number, window: number, ack = iss) => feed(conn, { seq: gseq, ack, flags: A, window }, t);
    let t = 0;
    for (t = conn.nextTimeout(); t < 500_000; t = conn.nextTimeout()) {
      conn.onTimer(t);
      answer(t + 1, 0);
    }
    rec.take();
    answer(t, 1460); // one segment goes, then the window is zero again
    expect(rec.take().reduce((n, s) => n + s.payload.length, 0)).toBe(1460);
    answer(t + 1, 0, iss + 1460);
    for (let u = conn.nextTimeout(); u < t + 590_000; u = conn.nextTimeout()) {
      conn.onTimer(u);
      answer(u + 1, 0, iss + 1460);
    }
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.resets).toEqual([]);
  });
});
