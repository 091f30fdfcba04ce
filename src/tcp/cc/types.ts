/**
 * Theory of operation: the seam between loss recovery (recovery.ts) and a
 * congestion controller on a SACK connection. Recovery finds losses (RACK-TLP
 * over the scoreboard), runs the episodes (`recover`, undo, the RTO) and
 * keeps cwnd and ssthresh; the controller decides what cwnd becomes at the
 * few points where a controller has a say:
 * - SND.UNA advanced outside an episode (`onAdvance`: Reno grows here);
 * - lost segments were found and an episode begins (`onRecoveryStart`);
 * - every ACK, after loss detection (`onAck`: Reno runs PRR during an
 *   episode, BBR updates its model and sets cwnd from it);
 * - the episode ended and was not undone (`onRecoveryEnd`);
 * - a retransmission timeout, before cwnd becomes the loss window (`onRto`).
 * Undo (RFC 3708, RFC 3522) stays in recovery.ts: it restores the cwnd and
 * ssthresh from before the episode whichever controller set them.
 *
 * Two controllers: cc/reno.ts (RFC 5681 + RFC 6937 PRR, stateless: all its
 * state is Recovery's cwnd, ssthresh and PRR) and cc/bbr.ts (BBR, its model
 * and a delivery-rate sampler, made on a connection's first send). Connections
 * without SACK use NewReno (RFC 6582) in recovery.ts whatever is configured:
 * BBR's rate samples need the per-segment scoreboard.
 */
import type { Recovery } from '../recovery.js';

/** Congestion controller names (TcpConfig.cc). */
export type CcName = 'reno' | 'bbr';
/** Every controller name, for option parsing. */
export const CC_NAMES: readonly CcName[] = ['reno', 'bbr'];

/** What recovery.ts asks of a congestion controller (see the file comment). */
export interface CongestionControl {
  /** SND.UNA advanced by `ccAcked` bytes of data or FIN, outside an episode. */
  onAdvance(r: Recovery, ccAcked: number): void;
  /** Lost segments were found: a fast-recovery episode begins (recovery.ts set `recover`). */
  onRecoveryStart(r: Recovery): void;
  /**
   * Every ACK on the SACK path, after loss detection.
   * @param delivered bytes it newly ACKed or SACKed (0: the reordering timer found losses)
   */
  onAck(r: Recovery, delivered: number, now: number): void;
  /** The episode ended (SND.UNA reached `recover`) and was not undone; `fast`: it was a fast recovery, not an RTO's. */
  onRecoveryEnd(r: Recovery, fast: boolean): void;
  /** A retransmission timeout, before cwnd becomes one segment; `first` of its episode. */
  onRto(r: Recovery, first: boolean): void;
}
