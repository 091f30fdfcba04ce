/**
 * Theory of operation: congestion control and loss recovery of one
 * connection's send side, beside the connection (conn.ts) that owns the send
 * sequence space and the sender (sender.ts) that emits the segments.
 *
 * The sender tells `Recovery` what happened — every acceptable ACK with
 * what it acknowledged (`onAck`), each first transmission (`onSent`), a
 * retransmission timeout (`onRto`), the handshake completing
 * (`onEstablished`) — and asks it how far the congestion window lets data
 * out (`sendLimit`) and to send what was found lost (`retransmitLost`, first
 * thing in every flush). Retransmissions carry only bytes already sent and
 * inside the peer's window (`sentBytes`). Recovery owns two timers, the tail
 * loss probe (`tlpAt`) and RACK's reordering timer (`reoAt`); the connection
 * runs them from `onTimer`.
 *
 * With SACK (RFC 2018; what every guest OS negotiates) loss detection is
 * RACK-TLP (RFC 8985, rack.ts) over a per-segment scoreboard
 * (scoreboard.ts): a segment is lost once a segment sent after it was
 * delivered and a reordering window passed; that finds lost retransmissions
 * and tail losses without duplicate-ACK counts or the RTO. The first loss of
 * an episode starts fast recovery (ssthresh from the congestion controller,
 * `recover` = SND.MAX); during it Proportional Rate Reduction (RFC 6937,
 * prr.ts) sets cwnd = pipe + sndcnt on each ACK, and the episode ends, cwnd =
 * ssthresh, once SND.UNA reaches `recover`. The lost segments go first, then
 * new data, while cwnd - pipe allows (RFC 6675 pipe, kept by the scoreboard).
 * An RTO marks every un-SACKed segment lost (RFC 8985 §6.3; a SACKed segment
 * at SND.UNA means the receiver reneged, RFC 2018 §8: the marks go) and
 * repairs them in slow start from a loss window of one segment (RFC 5681
 * §3.1), skipping what the peer holds.
 *
 * Undo (RFC 2883 §4 + RFC 3708, RFC 3522/4015): an episode remembers cwnd
 * and ssthresh from before it and counts its retransmissions; each DSACK
 * (a SACK block below SND.UNA or inside the second block) takes one off, and
 * when none is left every retransmission was spurious: cwnd and ssthresh come
 * back. With timestamps, an ACK ending the episode whose echo predates its
 * first retransmission (Eifel detection) proves the same. DSACKs also widen
 * RACK's reordering window (RFC 8985 §6.2).
 *
 * Congestion avoidance (RFC 5681 §3.1): initial window per RFC 6928
 * (min(10 MSS, max(2 MSS, 14600)); 1 MSS when the SYN or SYN-ACK was
 * retransmitted), slow start with byte counting capped at 1 MSS per ACK,
 * then +1 MSS per cwnd of ACKed bytes. Restart-after-idle (§4.1) is not
 * applied.
 *
 * Without SACK the connection falls back to NewReno (RFC 6582): fast
 * retransmit on the third duplicate ACK (limited transmit, RFC 3042, before
 * it), partial ACKs retransmit the next segment, a full ACK deflates cwnd;
 * an RTO goes back N (sender.ts) and no new episode starts before SND.UNA
 * passes the timeout's `recover` (§3.2 step 2).
 *
 * Tail loss probe (RFC 8985 §7), with SACK only: PTO after the last
 * transmission or ACK (rack.ts `probeTimeout`), the next new segment or the
 * last one again, so that a lost tail (or the lost ACK of one) draws an ACK
 * and RACK repairs it instead of the RTO. Like RFC 9002 §6.2's probe timeout
 * (and unlike RFC 8985 §7.2) it runs during recovery too, and backs off: up
 * to MAX_TLPS probes, each PTO doubled, until SND.UNA advances.
 *
 * Nothing here allocates per segment; the scoreboard's storage appears with
 * the first segment and goes when the flight empties and the buffers trim.
 */
import { after, due, OFF } from './deadline.js';
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import { Bbr } from './cc/bbr.js';
import { RENO, halfFlight, renoGrow } from './cc/reno.js';
import type { CongestionControl } from './cc/types.js';
import type { TcpConn } from './conn.js';
import { Prr } from './prr.js';
import { Rack, probeTimeout } from './rack.js';
import { RETRANS, SACKED, Scoreboard, type DeliverySink } from './scoreboard.js';

/** Tail loss probes before SND.UNA must advance (each PTO doubles; the RTO comes after them anyway). */
export const MAX_TLPS = 4;

/** Congestion window, recovery state and the loss-detection timers of one connection. */
export class Recovery implements DeliverySink {
  /** Congestion window in bytes (RFC 5681). */
  cwnd = 0;
  /** Slow-start threshold in bytes. */
  ssthresh = 0x3fffffff;
  /** Bytes ACKed toward the next congestion-avoidance increment (cc/reno.ts). */
  ackedAccum = 0;
  /** Consecutive duplicate ACKs (RFC 5681 §2). */
  dupAcks = 0;
  /** In a fast recovery episode. */
  inRecovery = false;
  /** After an RTO, until SND.UNA reaches `recover` (RTO recovery). */
  inLoss = false;
  /** RFC 6582 `recover`: SND.MAX when the current (or last) episode began. */
  recover = 0;
  /** Tail loss probes sent since SND.UNA last advanced (each doubles the next PTO). */
  #tlps = 0;
  /** Tail loss probe deadline (RFC 8985 §7), absolute ms or OFF (deadline.ts). */
  tlpAt = OFF;
  /** RACK's reordering timer (RFC 8985 §6.3), absolute ms or OFF. */
  reoAt = OFF;
  // The SACK machinery, made on first use and dropped when the connection idles (`release`):
  // an idle connection carries none of it.
  #sb: Scoreboard | null = null;
  #rack: Rack | null = null;
  #prr: Prr | null = null;
  /** BBR (cc/bbr.ts) instead of Reno on this connection: TcpConfig.cc, SACK only; decided when established. */
  #useBbr = false;
  #bbr: Bbr | null = null;
  // Undo (RFC 2883 + RFC 3708, RFC 3522): the episode's starting point and evidence.
  #undoArmed = false;
  #priorCwnd = 0;
  #priorSsthresh = 0;
  #undoRetrans = 0;
  /** TSval of the episode's first retransmission (signed 32-bit, any value), once `#undoTimed`. */
  #undoTs = 0;
  #undoTimed = false;
  /** Fast recoveries entered, tail loss probes, retransmissions found lost again, episodes undone (diagnostics). */
  nFastRetransmit = 0;
  nTlp = 0;
  nLostRetransmit = 0;
  nUndo = 0;
  /** Times new data waited because the scoreboard held its most records (a bound hit). */
  nScoreboardFull = 0;

  /** @param c the connection whose send side this is */
  constructor(readonly c: TcpConn) {}

  /** Whether the SACK machinery (scoreboard, RACK, PRR, BBR) exists now; asking does not make it (diagnostics, tests). */
  get allocated(): boolean {
    return this.#sb !== null || this.#rack !== null || this.#prr !== null || this.#bbr !== null;
  }

  /** Per-segment scoreboard (SACK connections), with delivery-rate snapshots under BBR. */
  get sb(): Scoreboard {
    return (this.#sb ??= new Scoreboard(undefined, this.#useBbr));
  }
  /** RACK state. */
  get rack(): Rack {
    return (this.#rack ??= new Rack(this.c.snd));
  }
  /** PRR state of the current episode. */
  get prr(): Prr {
    return (this.#prr ??= new Prr());
  }
  /** The congestion controller of this connection (cc/types.ts): Reno, or BBR (made on first use). */
  get cc(): CongestionControl {
    return this.#useBbr ? (this.#bbr ??= new Bbr(this.c.iss)) : RENO;
  }
  /** The BBR model while it exists (diagnostics), else null. */
  get bbr(): Bbr | null {
    return this.#bbr;
  }

  /** A new send sequence space starts at `isn`. */
  init(isn: number): void {
    this.recover = isn;
    this.#sb?.clear();
    this.#rack?.reset();
  }

  /**
   * The handshake completed: the initial window (RFC 6928; 1 MSS when the
   * SYN or SYN-ACK had to be retransmitted, RFC 5681 §3.1).
   */
  onEstablished(retransmitted: boolean): void {
    const smss = this.c.smss;
    this.#useBbr = this.c.cfg.cc === 'bbr' && this.c.sackOk && (this.#sb === null || this.#sb.rate);
    this.cwnd = retransmitted ? smss : Math.min(10 * smss, Math.max(2 * smss, 14600));
    this.ssthresh = 0x3fffffff;
  }

  /**
   * How far past SND.UNA data may go now (bytes). With SACK: SND.NXT plus
   * what cwnd - pipe leaves (RFC 6675 §5), nothing new while the scoreboard
   * is full; without: cwnd, plus limited transmit (RFC 3042).
   */
  sendLimit(): number {
    const c = this.c;
    if (c.sackOk) {
      const rel = seq.sub(c.sndNxt, c.sndUna);
      if (this.sb.full) {
        this.nScoreboardFull++;
        return rel;
      }
      return rel + Math.max(0, this.cwnd - this.sb.pipe);
    }
    return this.cwnd + (this.inRecovery ? 0 : Math.min(this.dupAcks, 2) * c.smss);
  }

  /** Whether new data (or our FIN) may go out: not while the scoreboard is full. */
  canSendNew(): boolean {
    return !this.c.sackOk || this.#sb === null || !this.#sb.full;
  }

  /** Stops both timers (RTO, close, TIME-WAIT). */
  stopTimers(): void {
    this.tlpAt = OFF;
    this.reoAt = OFF;
  }

  /**
   * The connection's buffer trim: with nothing in flight and no episode
   * open, the SACK machinery goes (RACK learns min_RTT and reordering again).
   */
  release(): void {
    if ((this.#sb === null || this.#sb.count === 0) && !this.inRecovery && !this.inLoss) {
      this.#sb = null;
      this.#rack = null;
      this.#prr = null;
      this.#bbr = null; // the next burst starts BBR over in Startup, from the cwnd it had
    }
  }

  /** The connection closed: the flight is forgotten. */
  close(): void {
    this.#sb?.clear();
    this.inRecovery = this.inLoss = false;
    this.release();
    this.stopTimers();
  }

  /**
   * A first transmission of `len` sequence numbers at `start` (data and/or
   * FIN): a scoreboard record (SACK), and PRR's prr_out during recovery.
   */
  onSent(start: number, len: number, now: number): void {
    if (!this.c.sackOk) return;
    const sb = this.sb;
    const empty = sb.count === 0;
    if (!sb.append(start, seq.add(start, len), now)) return;
    if (this.#useBbr) (this.cc as Bbr).rate.onSent(sb, sb.count - 1, now, empty);
    if (this.inRecovery) this.#prr?.onSend(len);
  }

  /**
   * The sender's flush ended: under BBR, whether the sender is
   * application-limited now (cc/rate.ts).
   * @param unsent bytes buffered and not yet sent
   */
  onFlushed(unsent: number): void {
    const bbr = this.#bbr;
    if (bbr === null) return;
    const sb = this.sb;
    bbr.rate.checkAppLimited(unsent, this.c.smss, sb.pipe, this.cwnd, sb.lost);
  }

  /**
   * A record newly delivered (the scoreboard's callback, engine-internal):
   * RACK, and BBR's rate sampler.
   */
  delivered(ts: number, end: number, flags: number, i: number): void {
    this.#rack!.delivered(ts, end, flags);
    this.#bbr?.rate.onDelivered(this.#sb!, i, ts, end, flags, this.c.now);
  }

  /**
   * Every acceptable ACK, after the sender moved SND.UNA (before the send
   * window is updated).
   * @param h the segment
   * @param acked sequence numbers it acknowledged (0 for a duplicate)
   * @param ccAcked of which data or FIN (not our SYN)
   * @param sameWindow it advertises the send window we already have
   */
  onAck(h: tcp.Header, acked: number, ccAcked: number, sameWindow: boolean, now: number): void {
    if (this.c.sackOk) this.#onAckSack(h, acked, ccAcked, now);
    else this.#onAckNewReno(h, acked, ccAcked, sameWindow, now);
  }

  // ------------------------------------------------------------------ SACK: RACK, PRR, undo

  #onAckSack(h: tcp.Header, acked: number, ccAcked: number, now: number): void {
    const c = this.c;
    if (this.#sb === null && h.sackCount === 0) {
      // Nothing ever sent (a connection that only receives): no scoreboard to make.
      if (acked > 0) this.#advanced(h, ccAcked);
      return;
    }
    const sb = this.sb;
    const sackedBefore = sb.sacked;
    this.rack.beginAck(now, h.tsEcr, c.tsOk && h.hasTimestamps);
    this.#bbr?.rate.beginAck();
    if (acked > 0) sb.advance(c.sndUna, this);
    // SACK blocks (RFC 2018); the first may be a DSACK (RFC 2883 §4).
    let dsack = false;
    for (let i = 0; i < h.sackCount; i++) {
      const l = h.sack[2 * i]!;
      const r = h.sack[2 * i + 1]!;
      if (!seq.lt(l, r)) continue;
      if (i === 0 && (seq.le(r, h.ack) || (h.sackCount > 1 && seq.ge(l, h.sack[2]!) && seq.le(r, h.sack[3]!)))) {
        dsack = true;
        continue;
      }
      if (seq.lt(l, c.sndUna)) continue;
      if (seq.gt(r, c.sndMax)) continue;
      sb.sack(l, r, this);
    }
    const deliveredData = ccAcked + sb.sacked - sackedBefore;
    if (acked === 0 && deliveredData > 0 && c.sndMax !== c.sndUna) this.dupAcks++;
    if (dsack) this.#onDsack();
    if (acked > 0) this.#advanced(h, ccAcked);

    // RACK (RFC 8985 §6.2 step 5, §6.3): losses, and the reordering timer for the rest. Outside
    // an episode with nothing SACKed the walk is skipped (a clean flow's ACKs stay O(1)): the
    // first SACK brings it back, and the probe covers a tail that draws none.
    if (sb.sacked > 0 || this.inRecovery || this.inLoss) {
      const reo = this.rack.reoWnd(this.inRecovery || this.inLoss, sb.sackedRecords, c.rtt.srtt);
      const wait = this.rack.detectLoss(sb, now, reo);
      this.reoAt = wait > 0 ? after(now, wait) : OFF;
    } else this.reoAt = OFF;
    if (sb.lost > 0 && !this.inRecovery && !this.inLoss) this.#enterRecovery();
    this.cc.onAck(this, deliveredData, now);
  }

  /** SND.UNA advanced (SACK path): episode ends, undo, congestion avoidance. */
  #advanced(h: tcp.Header, ccAcked: number): void {
    const c = this.c;
    this.dupAcks = 0;
    this.#tlps = 0;
    if ((this.inRecovery || this.inLoss) && seq.ge(c.sndUna, this.recover)) {
      // The episode ends (RFC 6937 §3: cwnd = ssthresh), unless it proves spurious (Eifel, RFC 3522).
      const wasRecovery = this.inRecovery;
      this.inRecovery = false;
      this.inLoss = false;
      this.rack.onRecoveryExit();
      if (this.#eifel(h)) this.#undo();
      else this.cc.onRecoveryEnd(this, wasRecovery);
      return;
    }
    if (this.inRecovery) return; // the controller sets cwnd in onAck
    if (ccAcked > 0) this.cc.onAdvance(this, ccAcked); // (not for our SYN: an idle connection makes no BBR)
    this.#dragRecover();
  }

  /** A DSACK: RACK widens its window; one retransmission of the episode was spurious (RFC 3708 §2). */
  #onDsack(): void {
    const c = this.c;
    this.rack.onDsack(c.sndUna, c.sndNxt);
    if (this.#undoArmed && this.#undoRetrans > 0 && --this.#undoRetrans === 0) this.#undo();
  }

  /** Eifel detection (RFC 3522 §3.2): the ACK ending the episode echoes a TSval older than its first retransmission. */
  #eifel(h: tcp.Header): boolean {
    return this.#undoArmed && this.#undoTimed && this.c.tsOk && h.hasTimestamps && h.tsEcr !== 0 && seq.lt(h.tsEcr, this.#undoTs);
  }

  /**
   * Every retransmission of the episode was spurious: cwnd and ssthresh as
   * before it (RFC 4015 §3, RFC 3708), the episode over, nothing left marked
   * lost.
   */
  #undo(): void {
    this.cwnd = Math.max(this.cwnd, this.#priorCwnd);
    this.ssthresh = Math.max(this.ssthresh, this.#priorSsthresh);
    if (this.inRecovery || this.inLoss) this.rack.onRecoveryExit();
    this.inRecovery = false;
    this.inLoss = false;
    this.sb.unmarkLost();
    this.#undoArmed = false;
    this.nUndo++;
  }

  /** Starts an episode's undo record (unless one is open: a timeout inside a recovery keeps the earlier one). */
  #armUndo(): void {
    if (this.inRecovery || this.inLoss) return;
    this.#undoArmed = true;
    this.#priorCwnd = this.cwnd;
    this.#priorSsthresh = this.ssthresh;
    this.#undoRetrans = 0;
    this.#undoTimed = false;
  }

  /** Fast recovery begins (RFC 6675 §5): undo record, the controller's reduction (Reno: ssthresh, PRR), `recover`. */
  #enterRecovery(): void {
    this.#armUndo();
    this.cc.onRecoveryStart(this);
    this.recover = this.c.sndMax;
    this.inRecovery = true;
    this.nFastRetransmit++;
  }

  /**
   * Sends the segments marked lost, lowest first, while cwnd - pipe allows
   * and the link takes them (the sender calls this before new data).
   * @returns whether anything was sent
   */
  retransmitLost(now: number): boolean {
    const c = this.c;
    const sb = this.#sb;
    if (sb === null) return false;
    let sent = false;
    for (let i = sb.nextLost(0); i >= 0; i = sb.nextLost(i + 1)) {
      if (this.cwnd - sb.pipe <= 0 || c.out.linkBlocked(c)) break;
      const again = (sb.flags(i) & RETRANS) !== 0;
      if (!this.#resend(i, now, true)) break;
      sent = true;
      if (again) this.nLostRetransmit++;
    }
    // The probe timer runs from the last transmission (RFC 8985 §7.2): when a repair is the last
    // segment out and its ACK is lost, nothing but the probe would draw another.
    if (sent) this.armTlp(now);
    return sent;
  }

  /**
   * Sends record i again (split first to what one segment carries and what
   * the peer's window holds). @returns false when nothing could be sent
   */
  #resend(i: number, now: number, repair: boolean): boolean {
    const c = this.c;
    const sb = this.sb;
    const rel = seq.sub(sb.start(i), c.sndUna);
    const dataLen = Math.min(sb.len(i), c.sndBuf.length - rel);
    const room = Math.min(c.snd.sentBytes() - rel, c.snd.payloadLimit());
    if (dataLen > room) {
      if (room <= 0) return false;
      sb.split(i, room);
    }
    const n = Math.min(dataLen, room);
    const len = c.snd.retransmitAt(rel, n, now);
    if (len === 0) return false;
    if (len < sb.len(i)) return true; // no room to split: a partial retransmission, the record stays lost
    sb.retransmitted(i, now);
    if (this.#useBbr) (this.cc as Bbr).rate.onSent(sb, i, now, false);
    if (this.inRecovery) this.#prr?.onSend(len);
    if (this.#undoArmed) {
      // Every retransmission counts, a probe's too, so that its DSACK cancels only itself.
      this.#undoRetrans++;
      if (repair && !this.#undoTimed) {
        this.#undoTs = c.snd.tsNow(now);
        this.#undoTimed = true;
      }
    }
    return true;
  }

  // ------------------------------------------------------------------ without SACK: NewReno

  #onAckNewReno(h: tcp.Header, acked: number, ccAcked: number, sameWindow: boolean, now: number): void {
    const c = this.c;
    const smss = c.smss;
    if (acked > 0) {
      if (ccAcked === 0) {
        // only our SYN was acknowledged
      } else if (this.inRecovery) {
        if (seq.ge(c.sndUna, this.recover)) {
          // Full ACK (RFC 6582 §3.2 step 3): deflate.
          this.cwnd = Math.min(this.ssthresh, Math.max(seq.sub(c.sndMax, c.sndUna), smss) + smss);
          this.inRecovery = false;
        } else {
          // Partial ACK (step 4): retransmit the next segment, deflate by the amount ACKed.
          this.#retransmitUna(now);
          this.cwnd = Math.max(smss, this.cwnd - ccAcked + (ccAcked >= smss ? smss : 0));
        }
      } else renoGrow(this, ccAcked);
      this.dupAcks = 0;
      this.#dragRecover();
      return;
    }
    // Duplicate ACK (RFC 5681 §2) → fast retransmit / recovery.
    if (h.payloadLength === 0 && (h.flags & (tcp.SYN | tcp.FIN)) === 0 && sameWindow && c.sndMax !== c.sndUna) {
      this.dupAcks++;
      if (this.inRecovery) this.cwnd += smss;
      else if (this.dupAcks === 3 && seq.gt(c.sndUna, this.recover)) {
        // RFC 6582 §3.2 step 2: not before SND.UNA passed the previous episode's `recover`.
        this.ssthresh = halfFlight(this);
        this.recover = c.sndMax;
        this.inRecovery = true;
        this.nFastRetransmit++;
        this.#retransmitUna(now);
        this.cwnd = this.ssthresh + 3 * smss;
      }
    }
  }

  /** One segment again at SND.UNA (NewReno's fast retransmit and partial ACKs). */
  #retransmitUna(now: number): void {
    const c = this.c;
    c.snd.retransmitAt(0, Math.min(c.snd.sentBytes(), c.snd.payloadLimit()), now);
  }

  // ------------------------------------------------------------------ common

  /** Drags `recover` along outside an episode, so "SND.UNA is beyond recover" never flips with wrap-around after 2^31 bytes. */
  #dragRecover(): void {
    const c = this.c;
    if (!this.inRecovery && !this.inLoss && seq.gt(c.sndUna, this.recover)) this.recover = seq.add(c.sndUna, -1);
  }

  /**
   * A retransmission timeout (RFC 5681 §3.1, RFC 6298 §5): loss window,
   * ssthresh from the first timeout of an episode (`first`), the episode's
   * `recover`. With SACK every un-SACKed segment is marked lost (RFC 8985
   * §6.3) for `retransmitLost`; without, the sender goes back N.
   */
  onRto(first: boolean): void {
    const c = this.c;
    const smss = c.smss;
    this.#armUndo();
    this.cc.onRto(this, first);
    this.cwnd = smss;
    this.ackedAccum = 0;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recover = c.sndMax;
    this.stopTimers();
    if (c.sackOk) {
      this.inLoss = true;
      this.sb.markAllLost();
    }
  }

  /** Runs the reordering and tail-loss-probe timers when due. */
  onTimer(now: number): void {
    if (due(this.reoAt, now)) this.#onReorderTimeout(now);
    if (due(this.tlpAt, now)) this.#onTlp(now);
  }

  /** RACK's reordering timer (RFC 8985 §6.3): detect again, then send what was found lost. */
  #onReorderTimeout(now: number): void {
    this.reoAt = OFF;
    const c = this.c;
    if (!c.sackOk || this.#sb === null || this.#sb.count === 0) return;
    const wait = this.rack.detectLoss(this.sb, now, this.rack.reoWnd(this.inRecovery || this.inLoss, this.sb.sackedRecords, c.rtt.srtt));
    if (wait > 0) this.reoAt = after(now, wait);
    if (this.sb.lost > 0 && !this.inRecovery && !this.inLoss) {
      this.#enterRecovery();
      this.cc.onAck(this, 0, now);
    }
    if (this.sb.lost > 0) c.snd.flush(now);
  }

  /**
   * Arms the tail loss probe (RFC 8985 §7.2) after new data went out or an
   * ACK came: only with SACK and only when it would fire before the RTO.
   * Unlike RFC 8985 §7.2 (and Linux) it is armed during recovery too, and up
   * to MAX_TLPS probes may go out before SND.UNA advances, each PTO twice the
   * last, as QUIC's probe timeout (RFC 9002 §6.2): when the one ACK for a
   * repaired hole is lost and nothing else is in flight, or a probe or its ACK
   * is lost, no ACK would come before the RTO (measured: most of the bench's
   * loss row's RTOs were these).
   */
  armTlp(now: number): void {
    this.tlpAt = OFF;
    const c = this.c;
    const srtt = c.rtt.srtt;
    if (!c.sackOk || srtt < 0 || this.#tlps >= MAX_TLPS || c.sndMax === c.sndUna) return;
    const at = after(now, probeTimeout(srtt, seq.sub(c.sndMax, c.sndUna) <= c.smss) * 2 ** this.#tlps);
    if (c.rtoAt === OFF || at < c.rtoAt) this.tlpAt = at;
  }

  /**
   * The probe (RFC 8985 §7.3): a new segment if the peer's window allows,
   * otherwise the last segment not SACKed sent again; its ACK lets RACK
   * repair a lost tail without the RTO. The RTO restarts after it.
   */
  #onTlp(now: number): void {
    this.tlpAt = OFF;
    const c = this.c;
    if (c.sndMax === c.sndUna || this.#tlps >= MAX_TLPS || c.out.linkBlocked(c)) return;
    this.#tlps++;
    this.nTlp++;
    const rel = seq.sub(c.sndNxt, c.sndUna);
    const avail = c.sndBuf.length - rel;
    const len = Math.min(avail, c.snd.payloadLimit());
    if (avail > 0 && len <= c.sndWnd - rel && !this.sb.full) {
      c.snd.emitData(len, c.finQueued && len === avail, now, false);
    } else {
      let i = this.sb.count - 1;
      while (i >= 0 && this.sb.flags(i) & SACKED) i--;
      if (i >= 0) this.#resend(i, now, false);
    }
    c.rtoAt = after(now, c.rtt.rto);
    this.armTlp(now); // the next probe, backed off
  }
}
