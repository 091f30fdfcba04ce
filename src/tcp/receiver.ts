/**
 * Theory of operation: the receive side of one connection (RFC 9293 §3.3.1
 * receive sequence variables, §3.8.6 "Managing the Window", §3.10.7.4
 * "seventh, process the segment text" and "eighth, check the FIN bit"), beside
 * the connection (conn.ts) that runs the state machine and emits segments.
 *
 * Segment acceptability (§3.10.7.4 table) is decided here against the
 * receive buffer's free space, which is never less than the window last
 * advertised. A segment without data may also sit exactly at the right edge:
 * a peer that filled our window sends its ACKs with SEG.SEQ = RCV.NXT +
 * RCV.WND (Linux accepts these too, tcp_sequence()); rejecting them would drop
 * every ACK for our data while the peer's window toward us is full.
 *
 * Text. In-order data goes to the `RecvBuffer`; out-of-order data within the
 * window is kept there too (bounded, see recv-buffer.ts) and promoted when
 * the hole fills; we send SACK blocks for it (most recent first, RFC 2018 §4)
 * when SACK was negotiated. A FIN is taken in order only (an out-of-order FIN
 * is remembered until the hole fills); the connection makes the state
 * transition.
 *
 * ACKs (RFC 1122 §4.2.3.2, RFC 9293 §3.8.6.3, RFC 5681 §4.2): immediately for
 * out-of-order or hole-filling data and duplicates (`ackPending` = ACK_NOW);
 * otherwise delayed: every second data segment (ACK_SECOND) or after
 * `ackDelay` ms (`ackAt`; default 40; 0 = always immediately). With
 * `ackBatch` the every-second-segment ACK waits for the end of the owner's
 * input batch (TcpConn.endBatch): the segments that one read from the link
 * delivered are acknowledged by one ACK, as Linux does for the segments GRO
 * merges in one poll (a stretch ACK; RFC 5681 §4.2's "SHOULD" every second
 * segment, which senders counting acknowledged bytes, RFC 3465, take in
 * their stride). A lone segment still gets the delayed ACK; `ackAt` stays
 * armed as a backstop. Any segment we send carries the ACK and clears both
 * (`acked`). A FIN that moves the connection to CLOSE-WAIT is acknowledged
 * like data (delayed: the application usually closes at once and our FIN
 * carries the ACK, as Linux does in its interactive mode); in any other
 * state at once. A window update goes at once while the peer has less than
 * 32 KiB of window left or half a segment or more is unacknowledged (bulk
 * data), else it waits as a delayed ACK (`deferWindowUpdate`): a
 * request/response exchange then costs no separate window-update segment
 * before the response.
 *
 * Window. The advertised window is the receive space the buffer can hold
 * now (`RecvBuffer.room`: the free space, less when the memory budget is
 * tight, see budget.ts), with receiver SWS avoidance (RFC 9293 §3.8.6.2.2):
 * the right edge only moves forward, never back, and only by at least
 * min(RCV.BUFF/2, MSS); a window update is due when the application frees
 * that much and the window was less than half open. It is scaled down by our
 * shift (RFC 7323 §2.3); SYN and SYN-ACK windows are never scaled (§2.2).
 *
 * Timestamps: TS.Recent per RFC 7323 §4.3 (only from segments at or before
 * the last ACK sent). PAWS (§5) is not enforced and segments lacking
 * timestamps after negotiation are accepted (as Linux does).
 */
import { after, OFF } from './deadline.js';
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import type { BudgetAccount } from './budget.js';
import type { TcpConn } from './conn.js';
import { RecvBuffer } from './recv-buffer.js';

/** `text` result bit: new in-order bytes are readable. */
export const TEXT_DATA = 1;
/** `text` result bit: the peer's FIN was reached (in order). */
export const TEXT_FIN = 2;
/** `text` result bit: bytes were stored (in order or not). */
export const TEXT_STORED = 4;

/** `ackPending`: a delayed ACK is owed (one data segment unacknowledged). */
export const ACK_DELAYED = 1;
/** `ackPending`: a second data segment came: ACK now, or at the batch's end with `ackBatch`. */
export const ACK_SECOND = 2;
/** `ackPending`: an ACK is owed now (out of order, hole filled, FIN, duplicate). */
export const ACK_NOW = 3;

/**
 * Window the peer must still have for a window update to wait as a delayed
 * ACK (see `deferWindowUpdate`): half the largest unscaled window, so the
 * update that follows the SYN-ACK's unscaled 64 KiB (RFC 7323 §2.2) can ride
 * on the response.
 */
const DEFER_UPDATE_MIN_WINDOW = 32 * 1024;

/** Receive sequence space, receive buffer, ACK and window decisions of one connection. */
export class Receiver {
  /** Initial receive sequence number (the peer's ISN). */
  irs = 0;
  /** RCV.NXT. */
  nxt = 0;
  /** Window last advertised, in bytes. */
  wnd = 0;
  /** Our window-scale shift (applied to windows we send). */
  shift = 0;
  /** Right edge last advertised (never moves back). */
  advEdge = 0;
  /** TS.Recent (RFC 7323 §4.3). */
  tsRecent = 0;
  /** RCV.NXT carried by the last ACK we sent (Last.ACK.sent). */
  lastAckSent = 0;
  /** The peer's FIN was received in order. */
  finReceived = false;
  #finPending = false;
  #finSeq = 0;
  /** 0, ACK_DELAYED, ACK_SECOND or ACK_NOW: what ACK is owed. */
  ackPending = 0;
  /** Delayed-ACK deadline (absolute ms) or OFF (deadline.ts). */
  ackAt = OFF;
  readonly buf: RecvBuffer;

  /**
   * @param c the connection whose receive side this is
   * @param account the budget account the buffer charges (null: none)
   */
  constructor(
    readonly c: TcpConn,
    account: BudgetAccount | null,
  ) {
    this.buf = new RecvBuffer(c.cfg.rcvBufMax, account);
  }

  /** The MSS we offer and receive by: mtu - 40 (RFC 9293 §3.7.1, IPv4 without options). */
  get mss(): number {
    return this.c.cfg.mtu - 40;
  }

  /** The peer's SYN at `irs`: RCV.NXT = IRS + 1. */
  init(irs: number): void {
    this.irs = irs | 0;
    this.nxt = seq.add(irs, 1);
  }

  /**
   * Sequence number acceptability (RFC 9293 §3.10.7.4, table).
   * @param segLen SEG.LEN (data, plus SYN and FIN)
   */
  acceptable(h: tcp.Header, segLen: number): boolean {
    const wnd = this.buf.free;
    if (segLen === 0) return seq.inWindow(h.seq, this.nxt, wnd + 1); // right edge included, see the file comment
    if (wnd === 0) return h.seq === this.nxt; // §3.10.7.4: still process ACK/RST; text trimmed
    return seq.inWindow(h.seq, this.nxt, wnd) || seq.inWindow(seq.add(h.seq, segLen - 1), this.nxt, wnd);
  }

  /** TS.Recent update (RFC 7323 §4.3) for an acceptable segment. */
  updateTsRecent(h: tcp.Header): void {
    if (h.hasTimestamps && seq.le(h.seq, this.lastAckSent) && seq.ge(h.tsVal, this.tsRecent)) this.tsRecent = h.tsVal | 0;
  }

  /**
   * Segment text and FIN (§3.10.7.4 seventh, eighth): trims what we already
   * have and what lies beyond the buffer, stores the rest, moves RCV.NXT.
   * @returns TEXT_DATA | TEXT_FIN | TEXT_STORED bits
   */
  text(h: tcp.Header, bytes: Uint8Array): number {
    let len = h.payloadLength;
    let off = h.payloadOffset;
    let sq = h.seq | 0;
    const fin = (h.flags & tcp.FIN) !== 0;
    const end = seq.add(sq, len); // FIN's sequence number
    let result = 0;
    // trim what we already have
    const dup = seq.diff(this.nxt, sq);
    if (dup > 0) {
      const k = Math.min(dup, len);
      off += k;
      len -= k;
      sq = seq.add(sq, k);
    }
    // trim to the buffer space
    const rel = seq.diff(sq, this.nxt);
    const free = this.buf.free;
    let finFits = fin;
    if (rel + len > free) {
      len = Math.max(0, free - rel);
      finFits = false;
    }
    if (len > 0) {
      const hadHoles = this.buf.ooo.count > 0;
      const adv = this.buf.write(rel, bytes, off, len);
      result |= TEXT_STORED;
      if (adv > 0) {
        this.nxt = seq.add(this.nxt, adv);
        result |= TEXT_DATA;
        // hole filled, or part of the segment not stored (budget): ACK now (RFC 5681 §4.2)
        if (hadHoles || adv < len) this.ackPending = ACK_NOW;
        else if (this.ackPending < ACK_SECOND) this.ackPending++;
      } else {
        this.ackPending = ACK_NOW; // out of order (or dropped): immediate duplicate ACK with SACK (RFC 5681 §4.2)
      }
    } else if (h.payloadLength > 0) {
      this.ackPending = ACK_NOW; // duplicate or zero-window data: tell the peer where we are
    }
    if (finFits && seq.ge(end, this.nxt)) {
      this.#finPending = true;
      this.#finSeq = end;
    }
    if (this.#finPending && this.#finSeq === this.nxt) {
      this.#finPending = false;
      this.nxt = seq.add(this.nxt, 1);
      this.finReceived = true;
      // Owed like the ACK of its data: the connection makes it immediate unless the FIN moves it to
      // CLOSE-WAIT, where the application usually closes at once and our FIN carries it.
      if (this.ackPending === 0) this.ackPending = ACK_DELAYED;
      result |= TEXT_FIN;
    }
    return result;
  }

  /** An ACK-bearing segment is going out: nothing is owed any more. */
  acked(): void {
    this.lastAckSent = this.nxt;
    this.ackPending = 0;
    this.ackAt = OFF;
  }

  /**
   * After a segment was processed: whether the owed ACK must go out now; a
   * delayed one (or, with `ackBatch`, one waiting for the batch's end) arms
   * `ackAt` instead.
   */
  ackNow(now: number): boolean {
    const p = this.ackPending;
    if (p === 0) return false;
    const cfg = this.c.cfg;
    if (p === ACK_NOW || cfg.ackDelay === 0 || (p === ACK_SECOND && !cfg.ackBatch)) return true;
    if (this.ackAt === OFF) this.ackAt = after(now, cfg.ackDelay);
    return false;
  }

  /** The window for a SYN or SYN-ACK (never scaled, RFC 7323 §2.2); recorded as advertised for a SYN-ACK. */
  synWindow(synAck: boolean): number {
    const wnd = Math.min(this.buf.room, 0xffff);
    this.wnd = wnd;
    if (synAck) {
      this.advEdge = seq.add(this.nxt, wnd);
      this.lastAckSent = this.nxt;
    }
    return wnd;
  }

  /**
   * The window field for the next segment, with receiver SWS avoidance
   * (RFC 9293 §3.8.6.2.2): move the right edge only by ≥ min(RCV.BUFF/2, MSS),
   * never back; scaled down by our shift (RFC 7323 §2.3).
   */
  windowToAdvertise(): number {
    const room = this.buf.room;
    const free = Math.min(room, 0xffff << this.shift);
    const cur = Math.max(0, seq.diff(this.advEdge, this.nxt));
    // The current edge, rounded up to the scale's granularity: rounding it down would move it back
    // (RFC 7323 §2.4; Linux's tcp_select_window() aligns up the same way).
    const keep = Math.min(0xffff, (cur + (1 << this.shift) - 1) >>> this.shift); // cur < 2^30: int32 math
    const wire = free - cur >= this.#swsThreshold(room) ? Math.max(free >>> this.shift, keep) : keep;
    this.wnd = wire << this.shift;
    const edge = seq.add(this.nxt, this.wnd);
    if (seq.gt(edge, this.advEdge)) this.advEdge = edge;
    return wire;
  }

  /**
   * A due window update that can wait as a delayed ACK (owed from here,
   * `ackAt` armed): the peer still has at least {@link DEFER_UPDATE_MIN_WINDOW}
   * of window, so it is not waiting for the update, and the ACK of what it
   * sends next (or any segment we send first, such as a response) carries
   * it; and the bytes not yet acknowledged are less than half a segment, so
   * this is a small request, not bulk data whose sender our ACKs clock (a
   * bulk sender with one segment unacknowledged would otherwise wait for
   * `ackDelay`). Small buffers never defer (in the engine's lossy
   * small-buffer transfer test, deferring with two segments of window left
   * made the transfer 8% slower).
   * @returns false when the update should go out now
   */
  deferWindowUpdate(now: number): boolean {
    if (seq.diff(this.advEdge, this.nxt) < DEFER_UPDATE_MIN_WINDOW || seq.diff(this.nxt, this.lastAckSent) >= this.mss >>> 1) return false;
    if (this.ackPending === 0) this.ackPending = ACK_DELAYED;
    return !this.ackNow(now);
  }

  /** Whether the application freed enough space for a window update (§3.8.6.2.2). */
  wantsWindowUpdate(): boolean {
    const room = this.buf.room;
    const free = Math.min(room, 0xffff << this.shift);
    const cur = Math.max(0, seq.diff(this.advEdge, this.nxt));
    return free - cur >= this.#swsThreshold(room) && cur < free >>> 1;
  }

  /**
   * How far the right edge must be able to move before it moves:
   * min(RCV.BUFF/2, MSS), RCV.BUFF being the buffer the budget lets us have
   * now (`room`: the receive space it lets us offer, beyond the readable bytes).
   */
  #swsThreshold(room: number): number {
    return Math.min((this.buf.readable + room) >>> 1, this.mss);
  }

  /** SACK blocks for our out-of-order data, the most recent first (RFC 2018 §4). */
  fillSack(h: tcp.Header): void {
    const r = this.buf.ooo;
    if (r.count === 0) return;
    const max = h.hasTimestamps ? 3 : 4;
    const first = r.indexOfLast();
    let n = 0;
    if (first >= 0) {
      h.sack[0] = seq.add(this.nxt, r.start(first)) >>> 0;
      h.sack[1] = seq.add(this.nxt, r.end(first)) >>> 0;
      n = 1;
    }
    for (let i = r.count - 1; i >= 0 && n < max; i--) {
      if (i === first) continue;
      h.sack[2 * n] = seq.add(this.nxt, r.start(i)) >>> 0;
      h.sack[2 * n + 1] = seq.add(this.nxt, r.end(i)) >>> 0;
      n++;
    }
    h.sackCount = n;
  }
}
