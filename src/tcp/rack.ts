/**
 * Theory of operation: RACK-TLP loss detection (RFC 8985) for one
 * connection, over the send-side scoreboard (scoreboard.ts); sans-IO, time
 * passed in.
 *
 * RACK (§6) marks a segment lost when a segment sent after it has been
 * delivered (cumulatively ACKed or SACKed) and more than RACK.rtt +
 * RACK.reo_wnd passed since the segment itself was sent. It needs no
 * duplicate-ACK count, so it finds lost retransmissions and losses at the
 * tail as readily as the first loss of a window:
 * - `delivered` (the scoreboard's DeliverySink) is step 2: the most
 *   recently sent delivered segment becomes RACK.xmit_ts / RACK.end_seq with
 *   its RTT, unless it was retransmitted and the ACK may be for the original
 *   (the timestamp echo predates the retransmission, or the RTT is below
 *   min_RTT); step 3: a segment delivered below RACK.fack that was never
 *   retransmitted proves reordering.
 * - `reoWnd` is step 4: 0 before any reordering was seen once in recovery
 *   or with DupThresh (3) segments SACKed, else min_RTT/4 scaled by DSACK
 *   rounds (`onDsack`, §6.2 "DSACK-based reordering window adaptation"),
 *   at most SRTT.
 * - `detectLoss` is step 5 and §6.3's timer: every record not SACKed or
 *   already lost, sent before RACK.segment, is lost once its deadline passed;
 *   the largest remaining wait is returned for the reordering timer.
 *
 * The tail loss probe's timeout (§7.2) is `probeTimeout`; the probe itself,
 * and what to do with the losses found here, belong to recovery.ts.
 */
import * as seq from '../wire/seq.js';
import { LOST, RETRANS, SACKED, type DeliverySink, type Scoreboard } from './scoreboard.js';

/** RFC 8985's DupThresh (§6.2 step 4): SACKed segments that make reo_wnd 0 before reordering was seen. */
export const DUP_THRESH = 3;
/** RFC 8985 §7.2 WCDelAckT: the peer's worst-case delayed ACK, added to a lone segment's PTO. */
export const WC_DEL_ACK = 200;

/**
 * RACK_sent_after (RFC 8985 §6.2): was (t1, end1) sent after (t2, end2)? Ties
 * in time go to the higher sequence number (segments sent in one burst).
 */
export function sentAfter(t1: number, end1: number, t2: number, end2: number): boolean {
  return t1 > t2 || (t1 === t2 && seq.gt(end1, end2));
}

/**
 * The probe timeout (RFC 8985 §7.2): 2·SRTT, plus the peer's worst-case
 * delayed ACK when one segment is in flight, else 2 ms of slack for timer
 * granularity (as Linux's TCP_TIMEOUT_MIN).
 * @param srtt smoothed RTT (ms, >= 0)
 * @param oneSegment a single segment is in flight
 */
export function probeTimeout(srtt: number, oneSegment: boolean): number {
  return 2 * srtt + (oneSegment ? WC_DEL_ACK : 2);
}

/** Clock of the timestamps option (RFC 7323), to test an echo against a transmission time. */
export interface TsClock {
  /** Our TSval for time `ms`. */
  tsNow(ms: number): number;
}

/** RACK's state (RFC 8985 §6.1) and its loss detection. */
export class Rack implements DeliverySink {
  /** RACK.xmit_ts: transmission time of the most recently sent delivered segment, -1 before one. */
  xmitTs = -1;
  /** RACK.end_seq. */
  endSeq = 0;
  /** RACK.rtt: the RTT of that segment (ms). */
  rtt = 0;
  /** Minimum RTT RACK measured (ms), Infinity before a sample. */
  minRtt = Infinity;
  /** RACK.fack: the highest end sequence number delivered. */
  fack = 0;
  #hasFack = false;
  /** RACK.reordering_seen. */
  reorderingSeen = false;
  /** RACK.reo_wnd_mult. */
  reoWndMult = 1;
  #reoWndPersist = 0;
  /** RACK.dsack_round: SND.NXT when the last window adaptation happened, or -1 (none). */
  #dsackRound = -1;
  // The ACK being processed (set by `beginAck`).
  #now = 0;
  #tsEcr = 0;
  #useTs = false;

  /** @param clock our timestamps clock (the sender) */
  constructor(readonly clock: TsClock) {}

  /**
   * Starts processing one ACK: its time and its timestamp echo (0 or
   * timestamps off: not used).
   */
  beginAck(now: number, tsEcr: number, tsOk: boolean): void {
    this.#now = now;
    this.#tsEcr = tsEcr | 0;
    this.#useTs = tsOk && tsEcr !== 0;
  }

  /** RFC 8985 §6.2 steps 2-3 for one newly delivered segment (scoreboard callback). */
  delivered(ts: number, end: number, flags: number): void {
    const rtt = this.#now - ts;
    if (flags & RETRANS) {
      // Step 2: an ACK that may be for the original transmission says nothing about this one.
      if (this.#useTs && seq.lt(this.#tsEcr, this.clock.tsNow(ts))) return;
      if (rtt < this.minRtt) return;
    } else {
      if (rtt < this.minRtt) this.minRtt = Math.max(0, rtt);
      // Step 3: delivered below the highest delivered, never retransmitted: reordering.
      if (this.#hasFack && seq.lt(end, this.fack)) this.reorderingSeen = true;
    }
    if (!this.#hasFack || seq.gt(end, this.fack)) {
      this.fack = end | 0;
      this.#hasFack = true;
    }
    if (this.xmitTs < 0 || sentAfter(ts, end, this.xmitTs, this.endSeq)) {
      this.xmitTs = ts;
      this.endSeq = end | 0;
      this.rtt = Math.max(0, rtt);
    }
  }

  /**
   * A DSACK arrived (RFC 8985 §6.2 step 4): widen the reordering window by
   * one quarter min_RTT, at most once per round trip, for 16 recoveries.
   * @param una SND.UNA @param nxt SND.NXT
   */
  onDsack(una: number, nxt: number): void {
    if (this.#dsackRound !== -1 && seq.ge(una, this.#dsackRound)) this.#dsackRound = -1;
    if (this.#dsackRound === -1) {
      this.#dsackRound = nxt >>> 0;
      this.reoWndMult++;
      this.#reoWndPersist = 16;
    }
  }

  /** A recovery episode ended (§6.2 step 4): the widened window persists for 16 of them. */
  onRecoveryExit(): void {
    if (this.#reoWndPersist > 0 && --this.#reoWndPersist === 0) this.reoWndMult = 1;
  }

  /**
   * RACK.reo_wnd (RFC 8985 §6.2 step 4).
   * @param inRecovery in fast or RTO recovery
   * @param sackedRecords segments SACKed now
   * @param srtt smoothed RTT (ms)
   */
  reoWnd(inRecovery: boolean, sackedRecords: number, srtt: number): number {
    if (!this.reorderingSeen && (inRecovery || sackedRecords >= DUP_THRESH)) return 0;
    const m = this.minRtt === Infinity ? 0 : this.minRtt;
    return Math.min((this.reoWndMult * m) / 4, Math.max(srtt, 0));
  }

  /**
   * RFC 8985 §6.2 step 5: marks lost every record sent before RACK.segment
   * whose deadline (its send time + RACK.rtt + reoWnd) has passed.
   * @returns the longest wait until another record's deadline (ms; 0: none),
   *   for the reordering timer (§6.3)
   */
  detectLoss(sb: Scoreboard, now: number, reoWnd: number): number {
    if (this.xmitTs < 0) return 0;
    let timeout = 0;
    for (let i = 0; i < sb.count; i++) {
      const f = sb.flags(i);
      if (f & (SACKED | LOST)) continue;
      const ts = sb.ts(i);
      if (!sentAfter(this.xmitTs, this.endSeq, ts, sb.end(i))) continue;
      const remaining = ts + this.rtt + reoWnd - now;
      if (remaining <= 0) sb.markLost(i);
      else if (remaining > timeout) timeout = remaining;
    }
    return timeout;
  }

  /** Forgets the delivery state (a new send sequence space). */
  reset(): void {
    this.xmitTs = -1;
    this.endSeq = 0;
    this.rtt = 0;
    this.#hasFack = false;
  }
}
