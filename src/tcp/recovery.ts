/**
 * Theory of operation: congestion control and loss recovery of one
 * connection's send side (RFC 5681, RFC 6582, a subset of RFC 6675 and of
 * RFC 8985), beside the connection (conn.ts) that owns the send sequence
 * space and emits the segments.
 *
 * The connection tells `Recovery` what happened — an ACK that advanced
 * SND.UNA (`onAdvance`), every acceptable ACK with its SACK blocks
 * (`onAck`), a retransmission timeout (`onRto`), the handshake completing
 * (`onEstablished`) — and asks it how much the congestion window lets out
 * (`sendLimit`). Recovery decides what to send again and sends it through the
 * sender (sender.ts: `retransmitAt`, `emitData`): only bytes already sent once, up
 * to SND.MAX (`sentBytes`), so a retransmission never reaches past what the
 * peer may acknowledge. It owns two timers, the tail loss probe (`tlpAt`) and
 * the reordering window (`reoAt`); the connection runs them from `onTimer`.
 *
 * Congestion control (RFC 5681): initial window per RFC 6928
 * (min(10 MSS, max(2 MSS, 14600)); 1 MSS when the SYN or SYN-ACK was
 * retransmitted), slow start with byte counting capped at 1 MSS per ACK,
 * congestion avoidance +1 MSS per cwnd of ACKed bytes, limited transmit
 * (RFC 3042) on the first two duplicate ACKs, loss window 1 MSS after an RTO
 * (ssthresh from the first timeout of an episode, eq. (4)). Restart-after-idle
 * (§4.1) is not applied.
 *
 * Fast retransmit on the third duplicate ACK with NewReno recovery (RFC 6582:
 * `recover`, partial ACKs retransmit the next hole, a full ACK deflates cwnd).
 * With SACK (RFC 2018) incoming blocks feed a scoreboard (`sacked`, offsets
 * from SND.UNA): retransmissions skip SACKed bytes and, during recovery, each
 * further duplicate ACK may retransmit the next hole below the highest SACKed
 * byte (a small subset of RFC 6675); with SACK a new recovery may start right
 * after the previous one (NewReno's `recover` guard then only follows a
 * timeout, RFC 6675 §5.1). The scoreboard is cleared on RTO (RFC 2018 §8).
 *
 * Tail loss probe (RFC 8985 §7): 2·SRTT after the last transmission (+200 ms
 * with a single segment in flight, for the peer's delayed ACK), the next new
 * segment or the last one again, one per flight, so a lost tail draws a SACK
 * instead of waiting for the RTO. Time-based loss detection in miniature
 * (RFC 8985 §6): a SACK hole still open one reordering window (max(2 ms,
 * SRTT/4)) later starts fast recovery without a third duplicate ACK, and a
 * retransmission at SND.UNA is sent again once data first sent after it was
 * SACKed and an RTT plus that window passed.
 *
 * Nothing here allocates after construction; the scoreboard's storage appears
 * with the first SACK block.
 */
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import type { TcpConn } from './conn.js';
import { RangeSet } from './ranges.js';

/** Congestion window, recovery state and the loss-detection timers of one connection. */
export class Recovery {
  /** Congestion window in bytes (RFC 5681). */
  cwnd = 0;
  /** Slow-start threshold in bytes. */
  ssthresh = 0x3fffffff;
  #ackedAccum = 0;
  /** Consecutive duplicate ACKs (RFC 5681 §2). */
  dupAcks = 0;
  /** In a fast recovery episode. */
  inRecovery = false;
  /** RFC 6582 `recover`: SND.MAX when the current (or last) episode began. */
  recover = 0;
  #highRxt = 0;
  /** Time of the last retransmission at SND.UNA (lost-retransmission detection), -1 if none. */
  #rxtAt = -1;
  /** SND.MAX when that retransmission went out: a SACK above it proves later data arrived. */
  #rxtMark = 0;
  /** Since the last RTO, SND.UNA has not passed `recover` (see #mayRecover). */
  #afterRto = false;
  /** A tail loss probe went out for this flight (one per flight until SND.UNA advances). */
  #tlpSent = false;
  /** Tail loss probe deadline (RFC 8985 §7), absolute ms or Infinity. */
  tlpAt = Infinity;
  /** End of the reordering window for a SACK hole (RFC 8985 §6.2), absolute ms or Infinity. */
  reoAt = Infinity;
  /** Send-side SACK scoreboard: offsets from SND.UNA the peer reported holding. */
  readonly sacked = new RangeSet(4);
  /** Fast retransmits, tail loss probes, retransmissions found lost again (diagnostics). */
  nFastRetransmit = 0;
  nTlp = 0;
  nLostRetransmit = 0;

  /** @param c the connection whose send side this is */
  constructor(readonly c: TcpConn) {}

  /** A new send sequence space starts at `isn`. */
  init(isn: number): void {
    this.recover = isn;
  }

  /**
   * The handshake completed: the initial window (RFC 6928; 1 MSS when the
   * SYN or SYN-ACK had to be retransmitted, RFC 5681 §3.1).
   */
  onEstablished(retransmitted: boolean): void {
    const smss = this.c.smss;
    this.cwnd = retransmitted ? smss : Math.min(10 * smss, Math.max(2 * smss, 14600));
    this.ssthresh = 0x3fffffff;
  }

  /** Bytes beyond SND.UNA the congestion window lets out now (limited transmit included, RFC 3042). */
  sendLimit(): number {
    return this.cwnd + (this.inRecovery ? 0 : Math.min(this.dupAcks, 2) * this.c.smss);
  }

  /** Stops both timers (RTO, close, TIME-WAIT). */
  stopTimers(): void {
    this.tlpAt = Infinity;
    this.reoAt = Infinity;
  }

  /**
   * An ACK advanced SND.UNA by `acked` sequence numbers, `ccAcked` of them
   * data or FIN (the connection has already moved SND.UNA): scoreboard,
   * congestion window, NewReno partial/full ACK (RFC 6582 §3.2 steps 3-4).
   */
  onAdvance(acked: number, ccAcked: number, now: number): void {
    const c = this.c;
    const smss = c.smss;
    this.sacked.shift(acked);
    if (ccAcked === 0) {
      // only our SYN was acknowledged
    } else if (this.inRecovery) {
      if (seq.ge(c.sndUna, this.recover)) {
        // Full ACK (RFC 6582 §3.2 step 3): deflate.
        this.cwnd = Math.min(this.ssthresh, Math.max(seq.sub(c.sndMax, c.sndUna), smss) + smss);
        this.inRecovery = false;
        this.#rxtAt = -1;
      } else {
        // Partial ACK (step 4): retransmit the next hole, deflate by the amount ACKed.
        this.#retransmitHole(0, now);
        this.cwnd = Math.max(smss, this.cwnd - ccAcked + (ccAcked >= smss ? smss : 0));
      }
    } else if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(ccAcked, smss); // slow start (RFC 5681 §3.1, L = 1 SMSS)
    } else {
      this.#ackedAccum += ccAcked; // congestion avoidance: +1 SMSS per cwnd ACKed
      if (this.#ackedAccum >= this.cwnd) {
        this.#ackedAccum -= this.cwnd;
        this.cwnd += smss;
      }
    }
    this.dupAcks = 0;
    this.#tlpSent = false;
    // Drag `recover` along outside recovery, so "SND.UNA is beyond recover" never flips with wrap-around after 2^31 bytes.
    if (!this.inRecovery && seq.gt(c.sndUna, this.recover)) {
      this.recover = seq.add(c.sndUna, -1);
      this.#afterRto = false;
    }
  }

  /**
   * Every acceptable ACK (after `onAdvance` when it advanced SND.UNA, before
   * the send window is updated): records its SACK blocks (RFC 2018), counts
   * duplicate ACKs toward fast retransmit / recovery, runs time-based loss
   * detection.
   * @param h the segment
   * @param acked sequence numbers it acknowledged (0 for a duplicate)
   * @param sameWindow it advertises the send window we already have
   */
  onAck(h: tcp.Header, acked: number, sameWindow: boolean, now: number): void {
    const c = this.c;
    const sackedBefore = this.#sackedBytes();
    if (c.sackOk && h.sackCount > 0) {
      for (let i = 0; i < h.sackCount; i++) {
        const l = h.sack[2 * i]!;
        const r = h.sack[2 * i + 1]!;
        if (seq.lt(c.sndUna, l) && seq.lt(l, r) && seq.le(r, c.sndMax)) this.sacked.add(seq.sub(l, c.sndUna), seq.sub(r, c.sndUna));
      }
    }
    // Duplicate ACK (RFC 5681 §2 definition) → fast retransmit / recovery.
    if (
      acked === 0 &&
      h.payloadLength === 0 &&
      (h.flags & (tcp.SYN | tcp.FIN)) === 0 &&
      // RFC 5681 §2, widened as RFC 6675 §2 does: an ACK that SACKs new data is a
      // duplicate even when the advertised window changed.
      (sameWindow || this.#sackedBytes() > sackedBefore) &&
      c.sndMax !== c.sndUna
    ) {
      this.dupAcks++;
      if (this.inRecovery) {
        this.cwnd += c.smss;
        if (c.sackOk) this.#retransmitHole(seq.sub(this.#highRxt, c.sndUna), now, true);
      } else if (this.dupAcks === 3 && this.#mayRecover()) {
        this.#enterRecovery(now);
      }
    }
    if (c.sackOk) this.#sackLossDetection(now);
  }

  /**
   * A retransmission timeout (RFC 5681 §3.1, RFC 6582 §4, RFC 2018 §8): loss
   * window, ssthresh from the first timeout of an episode (`first`), no fast
   * retransmit for duplicate ACKs of pre-timeout data, scoreboard cleared.
   */
  onRto(first: boolean): void {
    const c = this.c;
    const smss = c.smss;
    if (first) this.ssthresh = Math.max(seq.sub(c.sndMax, c.sndUna) >>> 1, 2 * smss);
    this.cwnd = smss;
    this.#ackedAccum = 0;
    this.inRecovery = false;
    this.#rxtAt = -1;
    this.dupAcks = 0;
    this.recover = c.sndMax;
    this.#afterRto = true;
    this.sacked.clear();
    this.stopTimers();
  }

  /** Runs the reordering and tail-loss-probe timers when due. */
  onTimer(now: number): void {
    if (now >= this.reoAt) this.#onReorderTimeout(now);
    if (now >= this.tlpAt) this.#onTlp(now);
  }

  /** Bytes the peer reports holding beyond SND.UNA (the SACK scoreboard's size). */
  #sackedBytes(): number {
    let n = 0;
    for (let i = 0; i < this.sacked.count; i++) n += this.sacked.end(i) - this.sacked.start(i);
    return n;
  }

  /**
   * Whether duplicate ACKs may start a fast recovery now. NewReno (RFC 6582
   * §3.2 step 2) waits until SND.UNA passes `recover`, the end of the previous
   * episode, so one loss event is not halved twice. With SACK the scoreboard
   * tells new losses from old ones, so only a timeout's episode keeps that rule
   * (RFC 6675 §5.1, RecoveryPoint after RTO): a loss among the segments sent
   * during a recovery is then repaired by the next fast recovery, not the RTO.
   */
  #mayRecover(): boolean {
    return (this.c.sackOk && !this.#afterRto) || seq.gt(this.c.sndUna, this.recover);
  }

  /** Fast retransmit, NewReno recovery entry (RFC 6582 §3.2 step 2 / RFC 5681 §3.2 steps 2-4). */
  #enterRecovery(now: number): void {
    const c = this.c;
    const smss = c.smss;
    this.ssthresh = Math.max(seq.sub(c.sndMax, c.sndUna) >>> 1, 2 * smss);
    this.recover = c.sndMax;
    this.inRecovery = true;
    this.#highRxt = c.sndUna;
    this.stopTimers();
    this.nFastRetransmit++;
    this.#retransmitHole(0, now);
    this.cwnd = this.ssthresh + 3 * smss;
  }

  /** RACK's reordering window (RFC 8985 §6.2): a quarter of the smoothed RTT, at least 2 ms. */
  #reoWnd(): number {
    return Math.max(2, this.c.rtt.srtt / 4);
  }

  /**
   * Time-based loss detection from SACK information (RFC 8985 in miniature;
   * our send buffer is a byte ring, so "sent later" is judged by sequence
   * number, which holds for data sent once):
   * - outside recovery, a hole below SACKed data that is still there one
   *   reordering window later is lost: fast retransmit without waiting for a
   *   third duplicate ACK (the tail loss probe's lone SACK then suffices);
   * - in recovery, when data first sent after our retransmission of the hole
   *   at SND.UNA has been SACKed and an RTT plus the reordering window has
   *   passed, that retransmission was lost too: send it again instead of
   *   waiting for the RTO.
   */
  #sackLossDetection(now: number): void {
    if (this.sacked.count === 0) {
      this.reoAt = Infinity;
      return;
    }
    if (!this.inRecovery) {
      if (this.reoAt === Infinity && this.#mayRecover()) this.reoAt = now + this.#reoWnd();
      return;
    }
    if (
      this.#rxtAt >= 0 &&
      seq.gt(seq.add(this.c.sndUna, this.sacked.highest()), this.#rxtMark) &&
      now - this.#rxtAt >= Math.max(this.c.rtt.srtt, 0) + this.#reoWnd()
    ) {
      this.nLostRetransmit++;
      this.#retransmitHole(0, now);
    }
  }

  #onReorderTimeout(now: number): void {
    this.reoAt = Infinity;
    const c = this.c;
    if (!this.inRecovery && this.sacked.count > 0 && c.sndMax !== c.sndUna && this.#mayRecover()) this.#enterRecovery(now);
  }

  /**
   * Arms the tail loss probe (RFC 8985 §7.2): PTO = 2·SRTT, plus the peer's
   * worst-case delayed ACK (200 ms) when a single segment is in flight, plus
   * 2 ms of slack otherwise (as Linux); only with SACK, outside recovery, one
   * probe per flight, and only when it would fire before the RTO.
   */
  armTlp(now: number): void {
    this.tlpAt = Infinity;
    const c = this.c;
    const srtt = c.rtt.srtt;
    if (!c.sackOk || srtt < 0 || this.inRecovery || this.#tlpSent || c.sndMax === c.sndUna || c.sndNxt !== c.sndMax) return;
    const at = now + 2 * srtt + (seq.sub(c.sndMax, c.sndUna) <= c.smss ? 200 : 2);
    if (at < c.rtoAt) this.tlpAt = at;
  }

  /**
   * The probe (RFC 8985 §7.3): a new segment if the peer's window allows,
   * otherwise the last segment sent again; its SACK lets #sackLossDetection
   * repair a lost tail without the RTO. The RTO restarts after it.
   */
  #onTlp(now: number): void {
    this.tlpAt = Infinity;
    const c = this.c;
    if (c.sndMax === c.sndUna || this.inRecovery || this.#tlpSent) return;
    this.#tlpSent = true;
    this.nTlp++;
    const rel = seq.sub(c.sndNxt, c.sndUna);
    const avail = c.sndBuf.length - rel;
    const limit = c.snd.payloadLimit();
    const len = Math.min(avail, limit);
    if (avail > 0 && len <= Math.min(c.sndWnd - rel, this.cwnd + c.smss)) {
      c.snd.emitData(len, c.finQueued && len === avail, now, false);
    } else {
      const out = c.snd.sentBytes();
      const n = Math.min(out, limit);
      c.snd.retransmitAt(out - n, n, now);
    }
    c.rtoAt = now + c.rtt.rto;
  }

  /**
   * Retransmits one segment starting at the first un-SACKed byte at or after
   * `fromRel` (bytes after SND.UNA). With `onlyHoles`, only if that byte lies
   * below the highest SACKed byte (a real hole).
   */
  #retransmitHole(fromRel: number, now: number, onlyHoles = false): void {
    const c = this.c;
    let rel = Math.max(0, fromRel);
    for (let e = this.sacked.endOf(rel); e >= 0; e = this.sacked.endOf(rel)) rel = e;
    if (onlyHoles && rel >= this.sacked.highest()) return;
    // Only bytes already sent: segment sizes change with the options a segment
    // carries (SACK blocks), so a retransmission sized anew could reach past
    // SND.MAX. Such bytes would arrive without SND.MAX knowing, the peer would
    // ACK beyond it, and every such ACK would be dropped as "ACK of unsent
    // data" (RFC 9293 §3.10.7.4): a deadlock until the retries ran out.
    const dataLen = c.snd.sentBytes();
    if (rel > dataLen) return;
    const limit = Math.min(c.snd.payloadLimit(), this.sacked.nextStart(rel) - rel);
    const end = c.snd.retransmitAt(rel, Math.min(dataLen - rel, limit), now);
    if (end === -1) return;
    this.#highRxt = end;
    if (rel === 0) {
      this.#rxtAt = now;
      this.#rxtMark = c.sndMax;
    }
  }
}
