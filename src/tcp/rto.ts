/**
 * Theory of operation: the retransmission timer estimator of RFC 6298.
 *
 * - Before any RTT sample RTO = initial (1 s, RFC 6298 §2.1).
 * - First sample R: SRTT = R, RTTVAR = R/2 (§2.2); later samples:
 *   RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R (§2.3), with
 *   RTO = SRTT + max(G, 4 RTTVAR), G = 1 ms (our clock granularity).
 * - RTO is clamped to [min, max]. **min is 200 ms, not the RFC's 1 s**
 *   (§2.4 says "SHOULD be rounded up to 1 second"): the peer is a VM on the
 *   same host, RTTs are sub-millisecond to a few ms, and a 1 s floor makes every
 *   loss (TCG guests do drop frames) stall a flow for a second. 200 ms is what
 *   Linux uses (TCP_RTO_MIN) and leaves ample room for the guest's delayed ACK
 *   (≤ 40-200 ms). max is 60 s, the RFC's permitted upper bound (§2.5).
 * - Each expiry doubles RTO ("back off the timer", §5.5), up to max; a new
 *   sample recomputes it from SRTT/RTTVAR, ending the backoff. Samples must
 *   follow Karn's rule (§3: never time a retransmitted segment) — the
 *   connection enforces that, or uses timestamps (RFC 7323 §4).
 */

/** RFC 6298 SRTT/RTTVAR/RTO state. All values in milliseconds. */
export class RtoEstimator {
  /** Smoothed RTT, or -1 before the first sample. */
  srtt = -1;
  /** RTT variation. */
  rttvar = 0;
  /** Current retransmission timeout (with backoff applied). */
  rto: number;

  /**
   * @param initial RTO before any sample (RFC 6298 §2.1: 1000)
   * @param min lower clamp (200, see above)
   * @param max upper clamp (60000)
   */
  constructor(
    readonly initial = 1000,
    readonly min = 200,
    readonly max = 60000,
  ) {
    this.rto = initial;
  }

  /** Feeds one RTT measurement (RFC 6298 §2.2-2.3). @param r RTT in ms, >= 0 */
  sample(r: number): void {
    if (r < 0) return;
    if (this.srtt < 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = Math.min(this.max, Math.max(this.min, this.srtt + Math.max(1, 4 * this.rttvar)));
  }

  /** Doubles RTO after an expiry (RFC 6298 §5.5), capped at max. */
  backoff(): void {
    this.rto = Math.min(this.max, this.rto * 2);
  }
}
