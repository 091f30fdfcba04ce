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
