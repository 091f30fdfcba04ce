/**
 * Theory of operation: delivery-rate estimation for one connection
 * (draft-cheng-iccrg-delivery-rate-estimation-02), sans-IO, time passed in
 * (ms, fractional: the gateway's clock is performance.now()).
 *
 * The connection counts the bytes delivered to the peer (`delivered`:
 * cumulatively ACKed or SACKed, each once) and when the last delivery
 * happened (`deliveredTime`). Each transmission of a segment snapshots
 * (§3.2, `onSent`, stored in the scoreboard's rate columns) the connection's
 * `delivered`, `deliveredTime`, the time its flight began
 * (`firstSentTime`) and whether the sender was application-limited. When
 * the segment is delivered (§3.3, `onDelivered`, the scoreboard's delivery
 * callback) the most recently sent of an ACK's newly delivered segments
 * becomes the sample's reference: the rate sample is then (§3.4,
 * `sample`) the bytes delivered since that segment was sent, over the longer
 * of the send interval (its send time minus its flight's first send time)
 * and the ACK interval (now minus the delivery time it saw): the longer one,
 * so that neither ACK compression nor a burst of sends inflates the rate.
 * A sample whose interval is below the minimum RTT is discarded (§3.4: it
 * spans less than a round trip, so compressed ACKs would inflate it).
 *
 * Application-limited marking (§3.1, `checkAppLimited`): when the sender has
 * less than a segment to send, room in cwnd and nothing waiting to be
 * repaired, every delivery up to `delivered + pipe` is marked app-limited:
 * rate samples from that time are a floor on the path's bandwidth, not a
 * measure of it, and BBR uses them only when they raise its estimate.
 *
 * RTT of the sample: the time since the reference segment was sent, unless
 * it was a retransmission (an ACK may be for the first transmission, RFC
 * 6298 §3 Karn): -1 then. Linux's tcp_rate.c implements the same draft;
 * this follows the draft's pseudocode, in bytes rather than packets.
 */
import { sentAfter } from '../rack.js';
import { APP_LIMITED, RETRANS, type Scoreboard } from '../scoreboard.js';

/** The delivery-rate state of one connection and the sample of the ACK being processed. */
export class RateSampler {
  /** C.delivered: bytes delivered (ACKed or SACKed, each once) so far. */
  delivered = 0;
  /** C.delivered_time: when `delivered` last grew (ms). */
  deliveredTime = 0;
  /** C.first_sent_time: send time of the first segment of the current flight (ms). */
  firstSentTime = 0;
  /** C.app_limited: 0, or the `delivered` value past which samples are no longer app-limited. */
  appLimited = 0;
  /** Smallest sample RTT seen (ms), for the interval check (§3.4). */
  minRtt = Infinity;

  // The sample of the current ACK (rs.*): reset by `beginAck`.
  #priorDelivered = 0;
  #priorTime = 0;
  #sendElapsed = 0;
  #refTs = -1;
  #refEnd = 0;
  #refRetrans = false;
  #refAppLimited = false;
  /** Bytes newly delivered by the ACK being processed. */
  newlyDelivered = 0;

  // The result of `sample`.
  /** rs.delivery_rate (bytes/ms), -1 when the ACK gave no valid sample. */
  rate = -1;
  /** rs.is_app_limited. */
  isAppLimited = false;
  /** rs.prior_delivered: `delivered` when the reference segment was sent (round counting). */
  priorDelivered = 0;
  /** RTT of the reference segment (ms), -1 for none (retransmitted, or no sample). */
  rtt = -1;

  /**
   * Snapshot for a segment (re)sent now (§3.2): record i of `sb`.
   * @param flightEmpty nothing was in flight before it
   */
  onSent(sb: Scoreboard, i: number, now: number, flightEmpty: boolean): void {
    if (flightEmpty) {
      this.firstSentTime = now;
      this.deliveredTime = now;
    }
    sb.snapshot(i, this.delivered, this.deliveredTime, this.firstSentTime, this.appLimited !== 0);
  }

  /** Starts an ACK (rs reset). */
  beginAck(): void {
    this.#refTs = -1;
    this.newlyDelivered = 0;
  }

  /**
   * Record i of `sb` (sent at `ts`, ending at `end`, `flags` before
   * delivery) was newly delivered at `now` (§3.3): it counts, and the most
   * recently sent such record becomes the sample's reference.
   */
  onDelivered(sb: Scoreboard, i: number, ts: number, end: number, flags: number, now: number): void {
    const len = sb.len(i);
    this.delivered += len;
    this.newlyDelivered += len;
    this.deliveredTime = now;
    if (this.#refTs < 0 || sentAfter(ts, end, this.#refTs, this.#refEnd)) {
      this.#priorDelivered = sb.snapDelivered(i);
      this.#priorTime = sb.snapDeliveredTime(i);
      this.#sendElapsed = ts - sb.snapFirstSent(i);
      this.#refTs = ts;
      this.#refEnd = end;
      this.#refRetrans = (flags & RETRANS) !== 0;
      this.#refAppLimited = (flags & APP_LIMITED) !== 0;
      this.firstSentTime = ts; // the next flight's sends measure from here
    }
  }

  /**
   * Ends the ACK (§3.4): the rate sample, or `rate` = -1.
   * @returns whether the ACK delivered anything
   */
  sample(now: number): boolean {
    if (this.appLimited !== 0 && this.delivered > this.appLimited) this.appLimited = 0;
    this.rate = -1;
    this.rtt = -1;
    if (this.#refTs < 0) return false;
    this.priorDelivered = this.#priorDelivered;
    this.isAppLimited = this.#refAppLimited;
    if (!this.#refRetrans) {
      this.rtt = Math.max(0, now - this.#refTs);
      if (this.rtt < this.minRtt) this.minRtt = this.rtt;
    }
    const interval = Math.max(this.#sendElapsed, now - this.#priorTime);
    if (interval > 0 && interval >= this.minRtt) this.rate = (this.delivered - this.#priorDelivered) / interval;
    this.#refTs = -1; // used once
    return true;
  }

  /**
   * The sender may be application-limited (§3.1): less than a segment left
   * to send, room in cwnd, nothing lost waiting. Samples until what is in
   * flight now is delivered are then marked.
   */
  checkAppLimited(unsent: number, smss: number, pipe: number, cwnd: number, lost: number): void {
    if (unsent < smss && pipe < cwnd && lost === 0) this.appLimited = Math.max(this.delivered + pipe, 1);
  }
}
