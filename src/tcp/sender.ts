/**
 * Theory of operation: the send side of one connection and every segment it
 * emits (RFC 9293 §3.8.6.2.1 sender SWS, §3.8.6.1 zero-window probing,
 * §3.10.7.4 "fifth, check the ACK field", RFC 6298 timing), beside the
 * connection (conn.ts) that owns the send sequence variables and runs the
 * state machine.
 *
 * Segments. Every segment goes through one reused header (`TX`, shared by
 * all connections: `out.segment` encodes it before it returns, and nothing
 * reads it afterwards, so one connection's segment never meets another's):
 * the common fields, then for synchronized segments the window from the
 * receiver (receiver.ts), timestamps and SACK blocks, then `out.segment` with
 * the send buffer and the payload's offset in it (the gateway copies the bytes
 * once, ring → frame). Nothing is allocated per segment, and an idle
 * connection holds no header.
 *
 * Data. `flush` sends new (or go-back-N) data while min(SND.WND, cwnd) and
 * the link toward the peer allow; a segment shorter than the MSS only when it
 * empties the queue or is at least half the largest window the peer ever
 * offered, otherwise the persist/override timer sends it. The persist timer
 * also probes a zero window: a zero-length segment with SEQ = SND.UNA-1,
 * which any TCP answers with an ACK carrying its current window (what Linux
 * does), backed off from RTO to 60 s; unanswered probes count as retries.
 *
 * Giving up (`stallAt`, RFC 9293 §3.8.3 user timeout, RFC 5482 in spirit):
 * only an ACK of new data refills the retry budget (`maxRetries`); data or
 * our FIN outstanding for `userTimeout` without such an ACK, or a zero window
 * that the peer keeps answering for `zeroWindowTimeout`, ends the connection
 * too. Nothing lives forever without progress.
 * Retransmissions (`retransmitAt`, used by the RTO here and by recovery.ts)
 * carry only bytes already sent (`sentBytes`): segment sizes change with the
 * options a segment carries, so a retransmission sized anew could reach past
 * SND.MAX.
 *
 * Timing (RFC 6298, RFC 7323 §4): with timestamps every ACK that advances
 * SND.UNA gives a sample (TSval clock = ms + a per-connection offset, §5.4),
 * unless it echoes a TSval older than a retransmission of the data it covers;
 * without them one segment at a time is timed (the SYN or SYN-ACK first), and
 * a retransmission cancels the measurement (Karn, RFC 6298 §3).
 *
 * ACKs (RFC 9293 §3.10.7.4, RFC 5961 §5.2): an ACK beyond SND.MAX, or older
 * than SND.UNA - MAX.SND.WND, is answered with an ACK and dropped; one that
 * advances SND.UNA frees the send buffer and feeds recovery.ts; the send
 * window follows the SND.WL1/SND.WL2 rule.
 */
import { after, OFF } from './deadline.js';
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import type { TcpConn } from './conn.js';
import { CLOSED, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, SYN_RECEIVED, SYN_SENT } from './types.js';

/** `onRto` results: carry on; give up with a RST to the peer; give up silently. */
export const RTO_GO_ON = 0;
export const RTO_GIVE_UP_RST = 1;
export const RTO_GIVE_UP = 2;

/** Bytes the timestamps option takes in a segment (with its two NOPs, RFC 7323 §3.2). */
export const TS_LEN = 12;

/** The output header, reused by every segment of every connection (see the file comment). */
const TX: tcp.Header = tcp.blank();

/** Segment emission, the data path out, persist timer, RTT timing and ACK processing of one connection. */
export class Sender {
  #tsOffset = 0;
  #rttSeq = 0;
  #rttTime = -1;
  /** Data up to `#rtxEnd` was sent again, the first time at TSval `#rtxTs` (see `resent`). */
  #rtxPending = false;
  #rtxTs = 0;
  #rtxEnd = 0;
  /** Persist / SWS-override timer (absolute ms) or OFF (deadline.ts). */
  persistAt = OFF;
  #persistBackoff = 0;
  /** A zero-window probe is out and no ACK has come since. */
  #probeOut = false;
  /** When the peer's window was found zero by our first probe (ms), -1 when open. */
  #zeroSince = -1;
  /** When the flight began or last advanced (ms): the user timeout counts from here. */
  #progressAt = 0;
  /** The highest ACK number the peer sent us (its RCV.NXT then), from any segment, within [SND.UNA, SND.MAX]. */
  #peerAck = 0;
  /** Our FIN has been sent. */
  finSent = false;

  /** @param c the connection whose send side this is */
  constructor(readonly c: TcpConn) {}

  // ------------------------------------------------------------------ timing

  /** A new send sequence space: the TSval clock offset derives from the ISN. */
  init(isn: number): void {
    this.#tsOffset = Math.imul(isn ^ 0x5bd1e995, 0x27d4eb2d);
    this.#peerAck = isn;
  }

  /**
   * Notes the ACK number of a segment from the peer, acceptable or not: it
   * is the peer's RCV.NXT when it sent it (see acceptableSeq).
   */
  notePeerAck(ack: number): void {
    const c = this.c;
    if (seq.gt(ack, this.#peerAck) && seq.le(ack, c.sndMax) && seq.ge(ack, c.sndUna)) this.#peerAck = ack | 0;
  }

  /** Our TSval clock: ms + a per-connection offset (RFC 7323 §5.4), signed 32-bit like sequence numbers. */
  tsNow(now: number): number {
    return (Math.floor(now) + this.#tsOffset) | 0;
  }

  /** Times our SYN or SYN-ACK (its first transmission). */
  timeSyn(now: number): void {
    this.#rttSeq = this.c.sndNxt;
    this.#rttTime = Math.floor(now);
  }

  /**
   * Something was sent again (a retransmission, our SYN or SYN-ACK): Karn's
   * rule stops the timed measurement, and until SND.UNA passes what was in
   * flight then, a timestamp echo older than this retransmission is no
   * sample (see #sampleAck).
   */
  resent(now: number): void {
    const c = this.c;
    this.#rttTime = -1;
    if (!this.#rtxPending) {
      this.#rtxPending = true;
      this.#rtxTs = this.tsNow(now);
      this.#rtxEnd = c.sndMax;
    } else if (seq.gt(c.sndMax, this.#rtxEnd)) this.#rtxEnd = c.sndMax;
  }

  /** The SYN-ACK answering our SYN: a sample unless the SYN was retransmitted. */
  sampleSynAck(now: number): void {
    if (this.#rttTime >= 0 && this.c.retries === 0) this.c.rtt.sample(Math.floor(now) - this.#rttTime);
    this.#rttTime = -1;
  }

  /**
   * RTT from an ACK that advanced SND.UNA (RFC 7323 §4.2: only those; §4.1
   * with timestamps, else the timed segment). A timestamp echo older than a
   * retransmission of the data this ACK covers is no sample: the receiver
   * echoes the TSval of the last segment that advanced its window (§4.3), so
   * a duplicate ACK answering our retransmission, after its first ACK was
   * lost, echoes the original's TSval — as old as the whole backoff.
   */
  #sampleAck(h: tcp.Header, now: number): void {
    const c = this.c;
    if (c.tsOk && h.hasTimestamps && h.tsEcr !== 0) {
      const r = seq.sub(this.tsNow(now), h.tsEcr);
      if (r < 0x7fffffff && !(this.#rtxPending && seq.lt(h.tsEcr, this.#rtxTs))) c.rtt.sample(r);
    } else if (this.#rttTime >= 0 && seq.ge(h.ack, this.#rttSeq)) {
      c.rtt.sample(Math.floor(now) - this.#rttTime);
      this.#rttTime = -1;
    }
    if (this.#rtxPending && seq.ge(h.ack, this.#rtxEnd)) this.#rtxPending = false;
  }

  // ------------------------------------------------------------------ ACKs

  /**
   * ACK processing (§3.10.7.4 fifth) with RFC 5961 §5.2 checks, RTT, send
   * buffer, window update and FIN-acked transitions; congestion control and
   * the SACK scoreboard in `c.rec`.
   * @returns false when the segment must be dropped
   */
  onAck(h: tcp.Header, now: number): boolean {
    const c = this.c;
    const ack = h.ack | 0; // a Smi, not the header field's heap number (see conn.ts toSigned)
    if (seq.gt(ack, c.sndMax)) {
      this.sendAck();
      return false;
    }
    if (seq.lt(ack, seq.add(c.sndUna, -Math.max(c.maxSndWnd, 1)))) {
      this.sendAck();
      return false;
    }
    const acked = seq.diff(ack, c.sndUna);
    const newWnd = h.window << c.sndShift; // ≤ 0xffff << 14 < 2^30: int32 shifts are exact
    if (acked > 0) this.#peerAck = ack;
    const probeAnswered = this.#probeOut;
    this.#probeOut = false;
    let ccAcked = 0; // data or FIN acknowledged, for congestion control

    if (acked > 0) {
      // Progress: the retry budget, the user timeout and the zero-window bound start over.
      c.retries = 0;
      this.#progressAt = Math.floor(now);
      this.#zeroSince = -1;
      this.#sampleAck(h, now);
      let a = acked;
      if (c.sndUna === c.iss) a--; // our SYN
      ccAcked = a;
      const d = Math.min(a, c.sndBuf.length);
      c.sndBuf.drop(d);
      a -= d;
      const finAcked = a > 0 && this.finSent;
      c.sndUna = ack;
      if (seq.lt(c.sndNxt, ack)) c.sndNxt = ack;
      if (c.sndBuf.length === 0) c.armTrim(now);
      c.rtoAt = c.sndUna === c.sndMax ? OFF : after(now, c.rtt.rto); // RFC 6298 §5.2-5.3

      if (finAcked) {
        const s = c.state;
        if (s === FIN_WAIT_1) c.state = FIN_WAIT_2;
        else if (s === CLOSING) {
          c.enterTimeWait(now);
        } else if (s === LAST_ACK) {
          c.enterClosed();
          return false;
        }
      }
    } else if (probeAnswered && c.retries > 0) {
      c.retries--; // an answered zero-window probe is no failure (nor progress: the zero-window bound runs on)
    }

    c.rec.onAck(h, acked, ccAcked, newWnd === c.sndWnd, now);

    // Window update (§3.10.7.4): only from a segment whose ACK is SND.UNA (an older one's window
    // is relative to an older left edge), and then when it advanced SND.UNA or passes the
    // SND.WL1/WL2 rule. The RFC's rule alone skips a segment that advances SND.UNA with an older
    // SEG.SEQ (the peer's retransmission), leaving SND.UNA + SND.WND past the edge the peer
    // advertised; Linux takes the window of every segment that advances SND.UNA too.
    if (ack === c.sndUna && (acked > 0 || seq.lt(c.sndWl1, h.seq) || (c.sndWl1 === h.seq && seq.le(c.sndWl2, ack)))) {
      c.sndWnd = newWnd;
      c.sndWl1 = h.seq | 0;
      c.sndWl2 = ack;
      if (newWnd > c.maxSndWnd) c.maxSndWnd = newWnd;
    }
    if (c.sndWnd > 0) {
      this.#zeroSince = -1;
      if (this.persistAt !== OFF) {
        this.persistAt = OFF;
        this.#persistBackoff = 0;
      }
    }
    c.rec.armTlp(now);
    return true;
  }

  // ------------------------------------------------------------------ data

  /**
   * Bytes after SND.UNA a retransmission may carry: buffered, already sent
   * once (below SND.MAX, not counting our FIN) and inside the peer's window
   * (a receiver trims what lies beyond its right edge, so bytes sent there
   * would only move SND.MAX past what it can ever acknowledge).
   */
  sentBytes(): number {
    const c = this.c;
    return Math.min(c.sndBuf.length, seq.sub(c.sndMax, c.sndUna), c.sndWnd);
  }

  /**
   * SEQ for a segment without data (pure ACK, RST): SND.MAX, unless that lies
   * beyond the peer's right window edge (the peer shrank its window, which
   * RFC 9293 §3.8.6.2.2 discourages but does happen): then the edge, since a
   * receiver drops a segment that starts beyond its window, ACK and all
   * (§3.10.7.4). Linux's tcp_acceptable_seq(), with the same slack of one
   * window-scale unit (the peer's window was rounded down to one) — and
   * never below the highest ACK number the peer sent, acceptable segment or
   * not.
   */
  acceptableSeq(): number {
    const c = this.c;
    const edge = seq.add(c.sndUna, c.sndWnd);
    const over = seq.diff(c.sndMax, edge);
    const s = over > 0 && over >= 1 << c.sndShift ? edge : c.sndMax;
    // Never below the peer's RCV.NXT as its last ACK number told us (the edge we know may be older,
    // or retracted): a sequence number below RCV.NXT is as unacceptable as one past the window, and
    // two ends answering each other's unacceptable ACKs would do so forever.
    return seq.gt(this.#peerAck, s) ? this.#peerAck : s;
  }

  /** Largest payload for the next segment: MSS minus the options it will carry. */
  payloadLimit(): number {
    const c = this.c;
    let opt = c.tsOk ? TS_LEN : 0;
    const holes = c.rcv.buf.ooo.count;
    if (c.sackOk && holes > 0) opt += 4 + 8 * Math.min(holes, c.tsOk ? 3 : 4);
    return c.sndMss - opt;
  }

  /**
   * Sends `len` bytes from `rel` bytes after SND.UNA again (with our FIN when
   * they reach its end and it was sent).
   * @returns the sequence space sent (bytes, plus 1 for the FIN), 0 when
   *   nothing was (a count, not an end sequence number: in the signed form
   *   every 32-bit value, -1 included, is a valid sequence number)
   */
  retransmitAt(rel: number, len: number, now: number): number {
    const c = this.c;
    const fin = this.finSent && rel + len === c.sndBuf.length;
    if (len <= 0 && !fin) return 0;
    const seqStart = seq.add(c.sndUna, rel);
    this.#fillHeader(tcp.ACK | (fin ? tcp.FIN : 0) | (len > 0 ? tcp.PSH : 0), seqStart, len);
    this.#sendTx(rel);
    c.nRetransmit++;
    this.resent(now);
    if (c.rtoAt === OFF) c.rtoAt = after(now, c.rtt.rto);
    return len + (fin ? 1 : 0);
  }

  /** Sends new (or go-back-N) data while the windows and the link allow (§3.8.6.2.1, RFC 5681). */
  flush(now: number): void {
    const c = this.c;
    const s = c.state;
    if (s !== ESTABLISHED && s !== CLOSE_WAIT && s !== FIN_WAIT_1 && s !== CLOSING && s !== LAST_ACK) return;
    let linkBlocked = false;
    if (c.sackOk) c.rec.retransmitLost(now); // what RACK or an RTO found lost goes first (RFC 6675 §5 step 4)
    for (;;) {
      if (c.out.linkBlocked(c)) {
        linkBlocked = true; // the owner calls flush() when the link drains
        break;
      }
      const rel = seq.sub(c.sndNxt, c.sndUna);
      const avail = c.sndBuf.length - rel;
      if (avail > 0) {
        const usable = Math.min(c.sndWnd, c.rec.sendLimit()) - rel;
        const limit = this.payloadLimit();
        let len = Math.min(avail, limit, usable);
        if (len <= 0) break;
        // Going back N after an RTO: resent bytes end at SND.MAX (new ones go in segments of their own).
        const resend = seq.sub(c.sndMax, c.sndNxt) - (this.finSent ? 1 : 0);
        if (resend > 0) len = Math.min(len, resend);
        // Sender SWS avoidance: a short new segment only if it empties the queue or is ≥ half the max window.
        else if (len < limit && len < avail && len < c.maxSndWnd >>> 1) break;
        if (len > avail) len = avail;
        const fin = c.finQueued && len === avail;
        this.emitData(len, fin, now, false);
      } else if (avail === 0 && c.finQueued && c.rec.canSendNew()) {
        this.emitData(0, true, now, false); // FIN needs no window
        break;
      } else break;
    }
    // Persist timer: unsent data, nothing in flight (§3.8.6.1; also the SWS override timer).
    if (linkBlocked) {
      // held back by our own link, not by the peer's window: no probing
    } else if (c.sndMax === c.sndUna && c.sndBuf.length > seq.sub(c.sndNxt, c.sndUna)) {
      if (this.persistAt === OFF) {
        if (this.#persistBackoff === 0) this.#persistBackoff = c.rtt.rto;
        this.persistAt = after(now, this.#persistBackoff);
      }
    } else if (c.sndMax !== c.sndUna) {
      this.persistAt = OFF;
    }
    c.rec.onFlushed(c.sndBuf.length - seq.sub(c.sndNxt, c.sndUna));
  }

  /** Emits `len` bytes at SND.NXT (+FIN), advances SND.NXT/SND.MAX, arms the RTO, times it. */
  emitData(len: number, fin: boolean, now: number, rtx: boolean): void {
    const c = this.c;
    const rel = seq.sub(c.sndNxt, c.sndUna);
    const flags = tcp.ACK | (fin ? tcp.FIN : 0) | (len > 0 && (fin || rel + len === c.sndBuf.length) ? tcp.PSH : 0);
    this.#fillHeader(flags, c.sndNxt, len);
    this.#sendTx(rel);
    const isNew = c.sndNxt === c.sndMax;
    if (c.sndMax === c.sndUna) this.#progressAt = Math.floor(now); // a flight begins
    if (isNew) c.rec.onSent(c.sndNxt, len + (fin ? 1 : 0), now);
    if (!isNew) {
      c.nRetransmit++;
      this.resent(now);
    }
    if (!rtx && isNew && len > 0 && this.#rttTime < 0 && !c.tsOk) {
      this.#rttSeq = seq.add(c.sndNxt, len);
      this.#rttTime = Math.floor(now);
    }
    c.sndNxt = seq.add(c.sndNxt, len + (fin ? 1 : 0));
    if (seq.gt(c.sndNxt, c.sndMax)) c.sndMax = c.sndNxt;
    if (fin) this.finSent = true;
    if (c.rtoAt === OFF && c.sndMax !== c.sndUna) c.rtoAt = after(now, c.rtt.rto);
    if (isNew && !rtx) c.rec.armTlp(now);
  }

  /**
   * The retransmission timer expired (RFC 6298 §5.4-5.6): back off and send
   * again (the SYN or SYN-ACK; with SACK what recovery.ts marked lost, else
   * go back N), or tell the connection to give
   * up after `synRetries` / `maxRetries` expiries.
   * @returns RTO_GO_ON, RTO_GIVE_UP_RST or RTO_GIVE_UP (an unanswered SYN: nothing to reset)
   */
  onRto(now: number): number {
    const c = this.c;
    c.rtoAt = OFF;
    c.rec.stopTimers();
    if (c.sndMax === c.sndUna) return RTO_GO_ON;
    c.retries++;
    const s = c.state;
    if (s === SYN_SENT || s === SYN_RECEIVED) {
      if (c.retries > c.cfg.synRetries) return s === SYN_RECEIVED ? RTO_GIVE_UP_RST : RTO_GIVE_UP;
      c.rtt.backoff();
      c.hs.sendSyn(now);
      return RTO_GO_ON;
    }
    if (c.retries > c.cfg.maxRetries) return RTO_GIVE_UP_RST;
    c.rtt.backoff();
    c.nRto++;
    c.rec.onRto(c.retries === 1);
    if (!c.sackOk) this.#goBackN(now);
    else if (!c.rec.retransmitLost(now)) this.#probe(); // the peer's window holds none of it
    c.rtoAt = after(now, c.rtt.rto);
    return RTO_GO_ON;
  }

  /**
   * A retransmission timeout in a synchronized state (RFC 6298 §5.4): the
   * earliest unacknowledged segment again — only bytes already sent and
   * inside the peer's window (`sentBytes`), with our FIN if it was sent and
   * they reach it — then go back N as the windows allow. When the peer shrank
   * its window to nothing, a zero-window probe goes instead (Linux sends the
   * segment anyway as its probe; bytes beyond the edge are what we never send).
   */
  #goBackN(now: number): void {
    const c = this.c;
    this.resent(now);
    c.sndNxt = c.sndUna;
    const len = Math.min(this.sentBytes(), this.payloadLimit());
    const fin = this.finSent && len === c.sndBuf.length;
    if (len > 0 || fin) this.emitData(len, fin, now, true);
    else this.#probe();
  }

  /**
   * The persist timer: the SWS override (send what fits) or a zero-window
   * probe (§3.8.6.1).
   * @returns false when the probes went unanswered too often (give up)
   */
  onPersist(now: number): boolean {
    const c = this.c;
    this.persistAt = OFF;
    const rel = seq.sub(c.sndNxt, c.sndUna);
    const avail = c.sndBuf.length - rel;
    if (avail <= 0 || c.sndMax !== c.sndUna) {
      this.#persistBackoff = 0;
      return true;
    }
    const usable = c.sndWnd - rel;
    if (usable > 0) {
      // SWS override timer (RFC 9293 §3.8.6.2.1): send what fits.
      const len = Math.min(avail, usable, this.payloadLimit());
      this.emitData(len, c.finQueued && len === avail, now, false);
      this.#persistBackoff = 0;
      this.flush(now);
      return true;
    }
    c.retries++;
    if (c.retries > c.cfg.maxRetries) return false;
    if (this.#zeroSince < 0) this.#zeroSince = Math.floor(now);
    this.#probe();
    this.#probeOut = true;
    this.#persistBackoff = Math.min(c.cfg.maxRto, Math.max(c.rtt.rto, this.#persistBackoff * 2));
    this.persistAt = after(now, this.#persistBackoff);
    return true;
  }

  /**
   * Zero-window probe (§3.8.6.1): SEQ = SND.UNA-1 and no data, a segment
   * below the peer's window on purpose, which any TCP answers with an ACK
   * carrying its current window (Linux's tcp_xmit_probe_skb() does the same).
   */
  #probe(): void {
    this.sendRaw(tcp.ACK, seq.add(this.c.sndUna, -1), this.c.rcv.nxt);
  }

  /** Stops the persist timer. */
  stopPersist(): void {
    this.persistAt = OFF;
  }

  /**
   * When to give up for lack of progress (absolute ms, or Infinity): data or
   * our FIN outstanding without an ACK of anything new for `userTimeout`, or
   * the peer's window zero for `zeroWindowTimeout` since our first probe.
   * The handshake has its own bounds (synRetries, connectTimeout).
   */
  stallAt(): number {
    const c = this.c;
    let t = this.#zeroSince < 0 ? Infinity : this.#zeroSince + c.cfg.zeroWindowTimeout;
    if (c.sndMax !== c.sndUna && c.state > SYN_RECEIVED) t = Math.min(t, this.#progressAt + c.cfg.userTimeout);
    return t;
  }

  // ------------------------------------------------------------------ segments

  /** A pure ACK (also the challenge ACK and the answer to keepalives). */
  sendAck(): void {
    const c = this.c;
    const s = c.state;
    if (s === CLOSED || s === SYN_SENT || (s === SYN_RECEIVED && !c.hs.accepted)) return;
    this.#fillHeader(tcp.ACK, this.acceptableSeq(), 0);
    this.#sendTx(0);
  }

  /** A control segment without options or data (RST, RST|ACK, probe). */
  sendRaw(flags: number, sq: number, ack: number): void {
    const h = this.#fillHeader(flags, sq, 0);
    if ((flags & tcp.RST) === 0) {
      this.#sendTx(0);
      return;
    }
    h.ack = (flags & tcp.ACK) !== 0 ? ack >>> 0 : 0;
    h.window = 0;
    this.#finishHeader(h);
    this.c.out.segment(this.c, h, this.c.sndBuf, 0);
  }

  /**
   * The SYN or SYN-ACK header with its common fields (the handshake adds the
   * options and window, then `sendSyn`s it).
   */
  synHeader(flags: number): tcp.Header {
    return this.#fillHeader(flags, this.c.iss, 0);
  }

  /** Sends the header from `synHeader`. */
  sendSyn(): void {
    const h = TX;
    this.#finishHeader(h);
    this.c.out.segment(this.c, h, this.c.sndBuf, 0);
  }

  /** Common header fields; ACK number, window and options for synchronized segments. */
  #fillHeader(flags: number, sq: number, len: number): tcp.Header {
    const h = TX;
    const c = this.c;
    h.srcPort = c.localPort;
    h.dstPort = c.remotePort;
    h.seq = sq >>> 0;
    h.flags = flags;
    h.ack = (flags & tcp.ACK) !== 0 ? c.rcv.nxt >>> 0 : 0;
    h.checksum = 0;
    h.urgent = 0;
    h.payloadLength = len;
    tcp.clearOptions(h);
    return h;
  }

  /** Window + options for a non-SYN segment, ACK bookkeeping, then out.segment. */
  #sendTx(dataOffset: number): void {
    const h = TX;
    const c = this.c;
    h.window = c.rcv.windowToAdvertise();
    if (c.tsOk) {
      h.hasTimestamps = true;
      h.tsVal = this.tsNow(c.now) >>> 0;
      h.tsEcr = c.rcv.tsRecent >>> 0;
    }
    if (c.sackOk && c.rcv.buf.ooo.count > 0) c.rcv.fillSack(h);
    this.#finishHeader(h);
    if ((h.flags & tcp.ACK) !== 0) c.rcv.acked();
    c.out.segment(c, h, c.sndBuf, dataOffset);
  }

  #finishHeader(h: tcp.Header): void {
    h.headerLength = tcp.length(h);
    h.dataOffset = h.headerLength >>> 2;
    h.payloadOffset = h.headerLength;
  }
}
