/**
 * Theory of operation: Reno congestion control (RFC 5681 §3.1) with
 * Proportional Rate Reduction in fast recovery (RFC 6937, prr.ts), as a
 * CongestionControl (cc/types.ts). Stateless: cwnd, ssthresh, the
 * congestion-avoidance byte count and the PRR state are Recovery's, so one
 * object serves every connection and an idle one pays nothing for it.
 * - Growth: slow start with byte counting capped at one SMSS per ACK
 *   (RFC 3465 L = 1), then one SMSS per cwnd of ACKed bytes.
 * - A loss episode: ssthresh = max(FlightSize / 2, 2 SMSS) (RFC 5681 (4));
 *   during it PRR sets cwnd = pipe + sndcnt on each ACK; at its end cwnd =
 *   ssthresh (RFC 6937 §3).
 * - An RTO: ssthresh as above from the first timeout of an episode; the loss
 *   window (one segment) is Recovery's.
 * NewReno without SACK (RFC 6582, recovery.ts) uses `renoGrow` and the same
 * ssthresh rule.
 */
import * as seq from '../../wire/seq.js';
import type { Recovery } from '../recovery.js';
import type { CongestionControl } from './types.js';

/** Slow start / congestion avoidance on `ccAcked` newly acknowledged bytes (RFC 5681 §3.1). */
export function renoGrow(r: Recovery, ccAcked: number): void {
  const smss = r.c.smss;
  if (ccAcked <= 0) return;
  if (r.cwnd < r.ssthresh) {
    r.cwnd += Math.min(ccAcked, smss); // slow start, L = 1 SMSS
  } else {
    r.ackedAccum += ccAcked; // +1 SMSS per cwnd ACKed
    if (r.ackedAccum >= r.cwnd) {
      r.ackedAccum -= r.cwnd;
      r.cwnd += smss;
    }
  }
}

/** RFC 5681 (4): half the flight, at least two segments. */
export function halfFlight(r: Recovery): number {
  const c = r.c;
  return Math.max(seq.sub(c.sndMax, c.sndUna) >>> 1, 2 * c.smss);
}

/** Reno + PRR (see the file comment); one shared instance. */
export const RENO: CongestionControl = {
  onAdvance(r, ccAcked) {
    renoGrow(r, ccAcked);
  },
  onRecoveryStart(r) {
    r.ssthresh = halfFlight(r);
    r.prr.start(r.sb.flight - r.sb.sacked);
  },
  onAck(r, delivered) {
    if (r.inRecovery) r.cwnd = r.sb.pipe + r.prr.onAck(delivered, r.sb.pipe, r.ssthresh, r.c.smss);
  },
  onRecoveryEnd(r, fast) {
    if (fast) r.cwnd = Math.max(r.ssthresh, r.c.smss);
  },
  onRto(r, first) {
    if (first) r.ssthresh = halfFlight(r);
  },
};
