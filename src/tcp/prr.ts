/**
 * Theory of operation: Proportional Rate Reduction (RFC 6937) — how much a
 * sender in fast recovery may send on each ACK, so that the flight shrinks
 * smoothly from what it was when the loss was found (RecoverFS) to ssthresh
 * instead of stopping for half a round trip (RFC 5681's halving) or bursting
 * (NewReno's inflation).
 *
 * §3: on each ACK, `prr_delivered` grows by what the ACK newly delivered
 * (cumulatively ACKed plus newly SACKed); while pipe > ssthresh, the sender
 * may have sent ceil(prr_delivered · ssthresh / RecoverFS) in all; once pipe
 * is at or below ssthresh, the slow-start reduction bound (PRR-SSRB) lets it
 * grow back toward ssthresh by at most one segment more than was delivered.
 * The first ACK of an episode may always send one segment, the fast
 * retransmission itself (RFC 6937bis §6: sndcnt = MSS when nothing was sent
 * yet). Bytes (sequence space) in, whole segments out: sndcnt is rounded up to
 * a multiple of the MSS, as Linux counts PRR in packets (RFC 6937 §3 states it
 * in either unit), so a sender that does not send short segments is never
 * left sitting on a fraction of one. Sans-IO.
 */

/** PRR state of one recovery episode. */
export class Prr {
  /** RecoverFS: the flight when recovery began. */
  recoverFs = 0;
  /** prr_delivered. */
  delivered = 0;
  /** prr_out. */
  out = 0;

  /** A recovery episode begins with `flight` in the network (RFC 6937 §3 initialization). */
  start(flight: number): void {
    this.recoverFs = Math.max(1, flight);
    this.delivered = 0;
    this.out = 0;
  }

  /**
   * One ACK during recovery (RFC 6937 §3).
   * @param deliveredData bytes it newly ACKed or SACKed
   * @param pipe bytes in flight now (RFC 6675)
   * @param ssthresh the episode's target
   * @param mss the sender's maximum segment size
   * @returns sndcnt: bytes that may be sent now, beyond pipe (cwnd = pipe + sndcnt)
   */
  onAck(deliveredData: number, pipe: number, ssthresh: number, mss: number): number {
    this.delivered += deliveredData;
    let sndcnt: number;
    if (pipe > ssthresh) {
      // Proportional part: spread the reduction over the round trip.
      sndcnt = (this.delivered * ssthresh) / this.recoverFs - this.out;
    } else {
      // PRR-SSRB: grow back toward ssthresh, at most one MSS beyond what was delivered.
      const limit = Math.max(this.delivered - this.out, deliveredData) + mss;
      sndcnt = Math.min(ssthresh - pipe, limit);
    }
    // Whole segments, rounded up (Linux counts PRR in packets): a sender that avoids short
    // segments would otherwise sit on a fraction of one while the ACKs that could free more
    // never come (the one ACK for a repaired hole lost, and nothing else in flight).
    sndcnt = Math.max(Math.ceil(sndcnt / mss) * mss, 0);
    if (this.out === 0 && sndcnt === 0) sndcnt = mss; // the fast retransmission itself (RFC 6937bis)
    return sndcnt;
  }

  /** Bytes sent during recovery (new or again): prr_out. */
  onSend(n: number): void {
    this.out += n;
  }
}
