/**
 * Theory of operation: opening a connection (RFC 9293 §3.5 three-way
 * handshake, §3.10.7.3 SYN-SENT) and the options negotiated in it (MSS
 * §3.7.1, window scale RFC 7323 §2, SACK-permitted RFC 2018 §2, timestamps
 * RFC 7323 §3), beside the connection (conn.ts) that runs the rest of the
 * state machine.
 *
 * - Passive (the guest connects out): `openPassive` records the guest's SYN
 *   (SYN-RECEIVED, nothing sent), the gateway dials the real destination,
 *   then `accept` sends the SYN-ACK or `refuse` answers the SYN with RST|ACK
 *   (gvisor-tap-vsock order: dial first). A retransmitted SYN repeats the
 *   SYN-ACK.
 * - Active (port forwards, readiness probes): `activeOpen` sends our SYN;
 *   `onSynSent` takes the SYN-ACK (or a RST, or a SYN: simultaneous open).
 *
 * Our SYN offers MSS = MTU - 40, window scaling (the smallest shift that fits
 * the receive buffer in 16 bits), SACK and timestamps as configured; a
 * SYN-ACK carries window scaling only if the SYN did (RFC 7323 §1.3). SYN and
 * SYN-ACK windows are never scaled (§2.2). The SYN (or SYN-ACK) is timed for
 * the first RTT sample.
 *
 * `rstFor` builds the answer to a segment that matches no connection
 * (§3.10.7.1); the gateway uses it for strays.
 */
import { after, OFF } from './deadline.js';
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import type { TcpConn } from './conn.js';
import { PROBE_CLOSED, PROBE_OPEN, RESET_REFUSED, ROLE_PROBE, SYN_RECEIVED, SYN_SENT } from './types.js';

/** Our window-scale shift for a receive buffer: the smallest that makes it fit in 16 bits (RFC 7323 §2.3), ≤ 14. */
export function shiftFor(bufMax: number): number {
  let s = 0;
  while (s < 14 && bufMax / 2 ** s > 0xffff) s++;
  return s;
}

/**
 * Builds the RST answering a segment that matches no connection
 * (RFC 9293 §3.10.7.1): ACK set → <SEQ=SEG.ACK><CTL=RST>; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (SEG.LEN counts SYN and FIN).
 * @param seg the received segment
 * @param out reused header to fill (no options, no payload)
 * @returns false when `seg` is itself a RST (never answered)
 */
export function rstFor(seg: tcp.Header, out: tcp.Header): boolean {
  if ((seg.flags & tcp.RST) !== 0) return false;
  tcp.clearOptions(out);
  out.srcPort = seg.dstPort;
  out.dstPort = seg.srcPort;
  out.window = 0;
  out.checksum = 0;
  out.urgent = 0;
  out.payloadLength = 0;
  if ((seg.flags & tcp.ACK) !== 0) {
    out.seq = seg.ack >>> 0;
    out.ack = 0;
    out.flags = tcp.RST;
  } else {
    out.seq = 0;
    out.ack = seq.add(seg.seq, seg.payloadLength + (seg.flags & tcp.SYN ? 1 : 0) + (seg.flags & tcp.FIN ? 1 : 0)) >>> 0;
    out.flags = tcp.RST | tcp.ACK;
  }
  out.dataOffset = 5;
  out.headerLength = tcp.HEADER_LEN;
  return true;
}

/** Handshake state and option negotiation of one connection. */
export class Handshake {
  /** A passive open was accepted (the SYN-ACK may go out); always true for active opens. */
  accepted = false;
  /** Active open: give up at this instant without a SYN-ACK (absolute ms) or OFF (deadline.ts). */
  connectAt = OFF;
  /** The window-scale shift our SYN offered, -1 for none. */
  #offerShift = -1;
  /** The peer's SYN carried window scaling. */
  #peerWs = false;

  /** @param c the connection being opened */
  constructor(readonly c: TcpConn) {}

  /** Records a guest SYN: SYN-RECEIVED, nothing sent until `accept`. */
  openPassive(syn: tcp.Header, isn: number, now: number): void {
    const c = this.c;
    c.initSend(isn, now);
    c.rcv.init(syn.seq);
    this.#negotiate(syn, c.cfg.windowScaling);
    c.sndWnd = syn.window;
    c.maxSndWnd = syn.window;
    c.sndWl1 = syn.seq | 0;
    c.sndWl2 = c.iss;
    c.state = SYN_RECEIVED;
    this.accepted = false;
  }

  /** Completes a passive open: the SYN-ACK. */
  accept(now: number): void {
    const c = this.c;
    if (c.state !== SYN_RECEIVED || this.accepted) return;
    this.accepted = true;
    c.lastActivity = Math.floor(now);
    this.sendSyn(now);
  }

  /** SYN-SENT, our SYN out, `timeout` ms to complete. */
  activeOpen(isn: number, now: number, timeout: number): void {
    const c = this.c;
    c.initSend(isn, now);
    c.state = SYN_SENT;
    this.accepted = true;
    this.connectAt = after(now, timeout);
    this.sendSyn(now);
  }

  /** Options from the peer's SYN or SYN-ACK. @param weOffered whether our side offers/offered WS */
  #negotiate(syn: tcp.Header, weOffered: boolean): void {
    const c = this.c;
    c.sndMss = Math.max(64, Math.min(syn.mss >= 0 ? syn.mss : 536, c.rcv.mss));
    if (weOffered && syn.wscale >= 0) {
      c.sndShift = syn.wscale;
      c.rcv.shift = shiftFor(c.cfg.rcvBufMax);
    } else {
      c.sndShift = 0;
      c.rcv.shift = 0;
    }
    c.sackOk = c.cfg.sack && syn.sackPermitted;
    c.tsOk = c.cfg.timestamps && syn.hasTimestamps;
    c.rcv.tsRecent = c.tsOk ? syn.tsVal | 0 : 0;
    this.#peerWs = syn.wscale >= 0;
  }

  /** SYN (active) or SYN-ACK (passive) with our options; arms the RTO. */
  sendSyn(now: number): void {
    const c = this.c;
    const synAck = c.state === SYN_RECEIVED;
    const h = c.snd.synHeader(synAck ? tcp.SYN | tcp.ACK : tcp.SYN);
    h.mss = c.rcv.mss;
    // RFC 7323 §1.3: a SYN-ACK may carry WS only if the SYN did.
    const offerWs = c.cfg.windowScaling && (!synAck || this.#peerWs);
    h.wscale = offerWs ? shiftFor(c.cfg.rcvBufMax) : -1;
    h.sackPermitted = synAck ? c.sackOk : c.cfg.sack;
    const ts = synAck ? c.tsOk : c.cfg.timestamps;
    h.hasTimestamps = ts;
    if (ts) {
      h.tsVal = c.snd.tsNow(now) >>> 0;
      h.tsEcr = synAck ? c.rcv.tsRecent >>> 0 : 0;
    }
    h.window = c.rcv.synWindow(synAck);
    this.#offerShift = h.wscale;
    if (c.sndMax === c.iss) {
      c.sndNxt = seq.add(c.iss, 1);
      c.sndMax = c.sndNxt;
      c.snd.timeSyn(now);
    } else c.snd.resent(now); // after our RTO or for the peer's retransmitted SYN: Karn
    c.snd.sendSyn();
    if (c.rtoAt === OFF) c.rtoAt = after(now, c.rtt.rto);
  }

  /** RFC 9293 §3.10.7.3 (SYN-SENT). */
  onSynSent(h: tcp.Header, now: number): void {
    const c = this.c;
    const f = h.flags;
    const hasAck = (f & tcp.ACK) !== 0;
    if (hasAck && (seq.le(h.ack, c.iss) || seq.gt(h.ack, c.sndMax))) {
      if ((f & tcp.RST) === 0) c.snd.sendRaw(tcp.RST, h.ack, 0);
      return;
    }
    if ((f & tcp.RST) !== 0) {
      if (!hasAck) return;
      if (c.role === ROLE_PROBE) c.events.onProbe(c, PROBE_CLOSED);
      else c.events.onReset(c, RESET_REFUSED);
      c.enterClosed();
      return;
    }
    if ((f & tcp.SYN) === 0) return;
    c.lastActivity = Math.floor(now);
    c.rcv.init(h.seq);
    this.#negotiate(h, this.#offerShift >= 0);
    if (!hasAck) {
      // Simultaneous open (§3.5): SYN-RECEIVED, SYN-ACK with the same ISS.
      c.state = SYN_RECEIVED;
      c.sndWnd = h.window;
      c.sndWl1 = h.seq | 0;
      this.sendSyn(now);
      return;
    }
    if (c.role === ROLE_PROBE) {
      c.events.onProbe(c, PROBE_OPEN);
      c.snd.sendRaw(tcp.RST, h.ack, 0);
      c.enterClosed();
      return;
    }
    c.snd.sampleSynAck(now);
    c.rcv.advEdge = seq.add(c.rcv.nxt, c.rcv.wnd);
    c.rcv.lastAckSent = c.rcv.nxt;
    c.sndUna = h.ack | 0;
    c.sndWnd = h.window; // unscaled in a SYN-ACK (RFC 7323 §2.2)
    c.maxSndWnd = h.window;
    c.sndWl1 = h.seq | 0;
    c.sndWl2 = h.ack | 0;
    c.becomeEstablished(now);
    c.snd.sendAck();
    c.snd.flush(now);
    c.events.onEstablished(c);
  }
}
