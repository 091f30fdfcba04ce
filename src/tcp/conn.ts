/**
 * Theory of operation: one TCP connection toward the guest, sans-IO
 * (RFC 9293 §3.3.2 state machine, §3.10 event processing).
 *
 * The gateway terminates the guest's TCP itself and relays bytes to host
 * sockets, so each guest flow needs a real TCP endpoint. `TcpConn` is that
 * endpoint and nothing else: it never touches a socket, a timer or a clock.
 * - Input: the gateway parses the frame (Ethernet, IPv4, `wire/tcp.parse`,
 *   checksum) and calls `onSegment(h, bytes, now)`; the payload is
 *   `bytes[h.payloadOffset .. + h.payloadLength)`.
 * - Output: `out.segment(conn, h, data, dataOffset)`. `h` is a reused
 *   `tcp.Header` (ports, seq, ack, flags, wire window, options,
 *   payloadLength); the payload is NOT copied anywhere by the connection: the
 *   gateway writes the header with `tcp.emit`, then asks the send buffer for
 *   the bytes, `data.copyOut(dataOffset, h.payloadLength, frame, pos)`, then
 *   `tcp.fillChecksum4`. `h` is only valid during the call. No objects are
 *   allocated per segment.
 * - Time: every entry point takes `now` (ms). The gateway keeps one timer
 *   structure and asks `nextTimeout()` (absolute ms or Infinity) after each
 *   call; it calls `onTimer(now)` when that instant passes.
 * - Randomness: the ISN is passed in (RFC 9293 §3.4.1 wants it unpredictable;
 *   the gateway draws it), and the timestamp clock offset is derived from it.
 * - Events go to `events` (TcpEvents): established, data readable, remote
 *   FIN, writable, reset, closed, probe result. They fire after the segment
 *   has been fully processed, so handlers may call back into the connection.
 *
 * Roles.
 * - PASSIVE (the guest connects out): the gateway sees the guest's SYN, calls
 *   `openPassive(syn, isn, now)` (state SYN-RECEIVED, nothing sent), dials the
 *   real destination, then `accept(now)` sends the SYN-ACK, or `refuse()`
 *   answers the SYN with RST (gvisor-tap-vsock order: dial first). A SYN that
 *   matches no connection at all is answered with `rstFor` (§3.10.7.1).
 * - ACTIVE (port forwarding into the guest): `connect(isn, now)`.
 * - PROBE (readiness check of a guest port): `probe(isn, now, timeout)` sends
 *   a SYN; SYN-ACK → onProbe(PROBE_OPEN) and a RST; RST → PROBE_CLOSED;
 *   no answer → PROBE_TIMEOUT.
 *
 * Sequence space, send side. `sndBuf` holds the bytes from SND.UNA on (the
 * SYN and FIN take sequence numbers but no buffer space). SND.NXT is where the
 * next transmission starts, SND.MAX (`sndMax`) the highest sequence number
 * sent so far; they differ only after a retransmission timeout, when SND.NXT
 * goes back to SND.UNA (go-back-N, RFC 6298 §5.4 + RFC 5681 §3.1) and ACKs up
 * to SND.MAX stay acceptable. All comparisons use `wire/seq` (mod 2^32).
 *
 * Flow control. We send at most min(SND.WND, cwnd) beyond SND.UNA. Our
 * advertised window is the free space of the bounded receive buffer (the app
 * frees space with `consume`/`read`), with receiver SWS avoidance
 * (RFC 9293 §3.8.6.2.2): the right edge only moves forward, and only by at
 * least min(RCV.BUFF/2, MSS); a window update is sent when the app frees that
 * much and the window was less than half open. Sender side (§3.8.6.2.1): a
 * segment shorter than the MSS is sent only when it carries all queued data
 * or at least half the largest window the peer ever offered; otherwise the
 * persist/override timer sends it. There is no Nagle delay (RFC 1122
 * §4.2.3.4 allows disabling it): the gateway relays a host socket, whose
 * writes are already batched, and interactive traffic must not wait.
 * `write` accepts at most the free space of the send buffer and returns what
 * it took; `onWritable` fires once the buffer drains below half (hysteresis,
 * so the host socket is not paused/resumed per ACK).
 *
 * Reliability. RFC 6298 RTO (`RtoEstimator`: min 200 ms, max 60 s, ×2
 * backoff), RTT from timestamps (RFC 7323 §4) or one timed segment at a time
 * with Karn's rule; after `maxRetries` consecutive expiries (synRetries for
 * the handshake) the connection is reset. Fast retransmit on the third
 * duplicate ACK with NewReno recovery (RFC 6582: recover, partial ACKs
 * retransmit the next hole, full ACK deflates cwnd). With SACK (RFC 2018)
 * incoming blocks feed a scoreboard: retransmissions skip SACKed bytes and,
 * during recovery, each further duplicate ACK may retransmit the next hole
 * below the highest SACKed byte (a small subset of RFC 6675); with SACK a new
 * recovery may start right after the previous one (NewReno's `recover` guard
 * then only follows a timeout, RFC 6675 §5.1). The scoreboard
 * is cleared on RTO (RFC 2018 §8). Retransmissions never reach past SND.MAX
 * (segment sizes change with the SACK options a segment carries, so a
 * retransmission is clamped to the bytes already sent). Tail loss probe
 * (RFC 8985 §7): 2·SRTT after the last transmission (+200 ms with a single
 * segment in flight, for the peer's delayed ACK), the next new segment or the
 * last one again, one per flight, so a lost tail draws a SACK instead of
 * waiting for the RTO. Time-based loss detection in miniature (RFC 8985 §6):
 * a SACK hole still open one reordering window (max(2 ms, SRTT/4)) later
 * starts fast recovery without a third duplicate ACK, and a retransmission at
 * SND.UNA is sent again once data first sent after it was SACKed and an RTT
 * plus that window passed. Congestion control per RFC 5681: initial
 * window per RFC 6928 (min(10 MSS, max(2 MSS, 14600))), limited transmit
 * (RFC 3042) on the first two duplicate ACKs, slow start with
 * byte counting capped at 1 MSS per ACK, congestion avoidance +1 MSS per
 * cwnd of ACKed bytes, loss window 1 MSS after RTO. Restart-after-idle
 * (§4.1) is not applied. Zero window: persist timer (§3.8.6.1) with
 * exponential backoff from RTO to 60 s; the probe is a zero-length segment
 * with SEQ = SND.UNA-1, which any TCP answers with an ACK carrying its
 * current window (what Linux does); unanswered probes count as retries.
 *
 * Receive side. In-order data goes to the `RecvBuffer`; out-of-order data
 * within the window is kept there too (bounded, see recv-buffer.ts) and
 * promoted when the hole fills; we send SACK blocks for it (most recent
 * first, RFC 2018 §4) when SACK was negotiated. ACKs: immediately for
 * out-of-order or hole-filling data, FIN, unacceptable segments and window
 * updates; otherwise delayed (RFC 1122 §4.2.3.2, RFC 9293 §3.8.6.3): every
 * second data segment or after `ackDelay` ms (default 40; 0 = always
 * immediately). Data on outgoing segments piggybacks the ACK.
 *
 * Closing (§3.6). FIN in each direction is independent: a guest FIN (in
 * order; an out-of-order FIN is remembered until the hole fills) fires
 * `onRemoteFin` while we can keep sending (CLOSE-WAIT); `shutdownWrite`
 * queues our FIN after the buffered data. FIN-WAIT-1/2, CLOSING, LAST-ACK,
 * TIME-WAIT as in §3.3.2. TIME-WAIT lasts `timeWait` ms (default 2000: the
 * guest is on a private virtual link with no stray old duplicates from a
 * real network, and each TIME-WAIT connection pins a gateway flow entry, so
 * the RFC's 2×MSL = 4 min is far too long; Linux uses 60 s); a retransmitted
 * FIN is re-ACKed and restarts it.
 *
 * Security (RFC 5961). An RST is accepted only when SEG.SEQ = RCV.NXT exactly;
 * one merely in the window gets a challenge ACK (§3.2); a SYN in a
 * synchronized state gets a challenge ACK (§4.2); an ACK beyond SND.MAX or
 * older than SND.UNA - MAX.SND.WND is answered with an ACK and dropped (§5.2).
 * Challenge ACKs are not rate-limited (§7) — the peer is our own guest.
 * Timestamps: TS.Recent per RFC 7323 §4.3; PAWS (§5) is not enforced and
 * segments lacking timestamps after negotiation are accepted (as Linux does).
 *
 * Liveness. Guest keepalives (SEQ = RCV.NXT-1, 0 or 1 byte) are unacceptable
 * segments and are answered with an ACK. A connection that sees no segment
 * and no app activity for `idleTimeout` ms is reset both ways (RST to the
 * guest, `onReset(RESET_IDLE)` to the app). `abort()` sends RST.
 *
 * Memory. An idle connection is this object, a reused header and two empty
 * buffer shells (< 2 KB). Buffers allocate storage lazily, grow by doubling
 * to their bounds (default 256 KiB each) and are freed `bufferLinger` ms
 * after they become empty.
 */
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import { RangeSet } from './ranges.js';
import { RecvBuffer } from './recv-buffer.js';
import { RtoEstimator } from './rto.js';
import { SendBuffer } from './send-buffer.js';
import {
  CLOSED,
  CLOSE_WAIT,
  CLOSING,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  PROBE_CLOSED,
  PROBE_OPEN,
  PROBE_TIMEOUT,
  RESET_IDLE,
  RESET_REFUSED,
  RESET_REMOTE,
  RESET_TIMEOUT,
  ROLE_ACTIVE,
  ROLE_PASSIVE,
  ROLE_PROBE,
  SYN_RECEIVED,
  SYN_SENT,
  TIME_WAIT,
  type TcpConfig,
  type TcpEvents,
  type TcpOutput,
} from './types.js';

export * from './types.js';

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
    out.seq = seg.ack;
    out.ack = 0;
    out.flags = tcp.RST;
  } else {
    out.seq = 0;
    out.ack = seq.add(seg.seq, seg.payloadLength + (seg.flags & tcp.SYN ? 1 : 0) + (seg.flags & tcp.FIN ? 1 : 0));
    out.flags = tcp.RST | tcp.ACK;
  }
  out.dataOffset = 5;
  out.headerLength = tcp.HEADER_LEN;
  return true;
}

const TS_LEN = 12;

/** One TCP connection (see the file comment). */
export class TcpConn {
  /** RFC 9293 §3.3.2 state (CLOSED … TIME_WAIT). */
  state = CLOSED;
  /** ROLE_PASSIVE, ROLE_ACTIVE or ROLE_PROBE. */
  role = ROLE_PASSIVE;
  /** Free for the owner (e.g. the flow entry). */
  tag: unknown = undefined;

  // --- send sequence variables (RFC 9293 §3.3.1)
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence number sent + 1 (SND.NXT before any go-back-N). */
  sndMax = 0;
  /** Peer's window in bytes (scaled). */
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  /** Largest window the peer ever offered (sender SWS, RFC 5961 §5.2). */
  maxSndWnd = 0;
  /** Peer's MSS clamped to ours: largest payload without options. */
  sndMss = 536;
  /** Peer's window-scale shift (applied to windows it sends). */
  sndShift = 0;

  // --- receive sequence variables
  irs = 0;
  rcvNxt = 0;
  /** Window last advertised, in bytes. */
  rcvWnd = 0;
  /** Our window-scale shift (applied to windows we send). */
  rcvShift = 0;
  /** Right edge last advertised (never moves back). */
  rcvAdvEdge = 0;

  // --- negotiated options
  sackOk = false;
  tsOk = false;
  tsRecent = 0;
  lastAckSent = 0;
  #tsOffset = 0;
  #offerShift = -1;
  #peerWs = false;
  /** Time of the current entry point (for TSval). */
  #now = 0;

  // --- congestion control (RFC 5681, 6582)
  cwnd = 0;
  ssthresh = 0x3fffffff;
  #ackedAccum = 0;
  dupAcks = 0;
  inRecovery = false;
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

  // --- timing (RFC 6298)
  readonly rtt: RtoEstimator;
  #rttSeq = 0;
  #rttTime = -1;
  /** Consecutive RTO expiries / unanswered probes. */
  retries = 0;
  /** Counters for diagnostics: RTO expiries, fast retransmits, retransmitted segments. */
  nRto = 0;
  nFastRetransmit = 0;
  nRetransmit = 0;
  /** Tail loss probes sent, and retransmissions found lost again (diagnostics). */
  nTlp = 0;
  nLostRetransmit = 0;

  // --- timers (absolute ms, Infinity = off)
  #rtoAt = Infinity;
  /** Tail loss probe (RFC 8985 §7). */
  #tlpAt = Infinity;
  /** End of the reordering window for a SACK hole (RFC 8985 §6.2). */
  #reoAt = Infinity;
  #persistAt = Infinity;
  #persistBackoff = 0;
  #ackAt = Infinity;
  #twAt = Infinity;
  #connectAt = Infinity;
  #trimAt = Infinity;
  #lastActivity = 0;

  // --- flags
  #accepted = false;
  #finQueued = false;
  #finSent = false;
  #remoteFin = false;
  #rcvFinPending = false;
  #rcvFinSeq = 0;
  #wantWritable = false;
  #ackPending = 0;
  #closedFired = false;

  readonly sndBuf: SendBuffer;
  readonly rcvBuf: RecvBuffer;
  /** Send-side SACK scoreboard: offsets from SND.UNA the peer reported holding. */
  readonly #sacked = new RangeSet(4);
  /** The reused output header. */
  readonly #tx: tcp.Header = tcp.blank();

  /**
   * @param cfg tunables (shared)
   * @param out segment sink
   * @param events owner notifications
   * @param localPort our port (the guest's destination port for passive flows)
   * @param remotePort the guest's port
   */
  constructor(
    readonly cfg: TcpConfig,
    readonly out: TcpOutput,
    readonly events: TcpEvents,
    readonly localPort: number,
    readonly remotePort: number,
  ) {
    this.sndBuf = new SendBuffer(cfg.sndBufMax);
    this.rcvBuf = new RecvBuffer(cfg.rcvBufMax);
    this.rtt = new RtoEstimator(cfg.initialRto, cfg.minRto, cfg.maxRto);
  }

  /** Smoothed RTT (ms), -1 before a sample. */
  get srtt(): number {
    return this.rtt.srtt;
  }
  /** RTT variation (ms). */
  get rttvar(): number {
    return this.rtt.rttvar;
  }
  /** Current retransmission timeout (ms). */
  get rto(): number {
    return this.rtt.rto;
  }
  /** Largest payload per segment (peer MSS minus timestamp option). */
  get smss(): number {
    return this.sndMss - (this.tsOk ? TS_LEN : 0);
  }
  /** In-order bytes ready to read. */
  get readable(): number {
    return this.rcvBuf.readable;
  }
  /** Bytes `write` would accept now. */
  get writable(): number {
    return this.#canWrite() ? this.sndBuf.free : 0;
  }
  /** True once the peer's FIN was received (in order). */
  get remoteFinished(): boolean {
    return this.#remoteFin;
  }

  // ------------------------------------------------------------------ opens

  /**
   * Records a guest SYN (passive open, RFC 9293 §3.10.7.2 minus LISTEN):
   * state SYN-RECEIVED, nothing sent until `accept`.
   * @param syn the parsed SYN (options negotiated from it)
   * @param isn our initial sequence number (random)
   * @param now current time (ms)
   */
  openPassive(syn: tcp.Header, isn: number, now: number): void {
    this.#now = now;
    this.role = ROLE_PASSIVE;
    this.#initSend(isn, now);
    this.irs = syn.seq;
    this.rcvNxt = seq.add(syn.seq, 1);
    this.#negotiate(syn, this.cfg.windowScaling);
    this.sndWnd = syn.window;
    this.maxSndWnd = syn.window;
    this.sndWl1 = syn.seq;
    this.sndWl2 = isn;
    this.state = SYN_RECEIVED;
    this.#accepted = false;
  }

  /**
   * Completes a passive open: sends the SYN-ACK (the host side is connected).
   * @param now current time (ms)
   */
  accept(now: number): void {
    this.#now = now;
    if (this.state !== SYN_RECEIVED || this.#accepted) return;
    this.#accepted = true;
    this.#lastActivity = now;
    this.#sendSyn(now);
  }

  /**
   * Rejects a passive open (the host refused): RST|ACK for the SYN, then CLOSED.
   */
  refuse(): void {
    if (this.state !== SYN_RECEIVED || this.#accepted) return;
    this.#emitRaw(tcp.RST | tcp.ACK, 0, this.rcvNxt);
    this.#close();
  }

  /**
   * Active open (port forwarding into the guest): sends our SYN with MSS,
   * window scale, SACK-permitted and timestamps as configured.
   * @param isn our initial sequence number (random)
   * @param now current time (ms)
   */
  connect(isn: number, now: number): void {
    this.role = ROLE_ACTIVE;
    this.#activeOpen(isn, now, this.cfg.connectTimeout);
  }

  /**
   * Readiness probe: SYN; SYN-ACK → onProbe(PROBE_OPEN) + RST; RST →
   * PROBE_CLOSED; nothing within `timeout` ms → PROBE_TIMEOUT. onClosed follows.
   */
  probe(isn: number, now: number, timeout: number): void {
    this.role = ROLE_PROBE;
    this.#activeOpen(isn, now, timeout);
  }

  #activeOpen(isn: number, now: number, timeout: number): void {
    this.#now = now;
    this.#initSend(isn, now);
    this.state = SYN_SENT;
    this.#accepted = true;
    this.#connectAt = now + timeout;
    this.#sendSyn(now);
  }

  #initSend(isn: number, now: number): void {
    isn >>>= 0;
    this.iss = isn;
    this.sndUna = isn;
    this.sndNxt = isn;
    this.sndMax = isn;
    this.recover = isn;
    this.#tsOffset = Math.imul(isn ^ 0x5bd1e995, 0x27d4eb2d) >>> 0;
    this.#lastActivity = now;
  }

  /** Options from the peer's SYN or SYN-ACK. @param weOffered whether our side offers/offered WS */
  #negotiate(syn: tcp.Header, weOffered: boolean): void {
    const ourMss = this.cfg.mtu - 40;
    this.sndMss = Math.max(64, Math.min(syn.mss >= 0 ? syn.mss : 536, ourMss));
    if (weOffered && syn.wscale >= 0) {
      this.sndShift = syn.wscale;
      this.rcvShift = shiftFor(this.cfg.rcvBufMax);
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    this.sackOk = this.cfg.sack && syn.sackPermitted;
    this.tsOk = this.cfg.timestamps && syn.hasTimestamps;
    this.tsRecent = this.tsOk ? syn.tsVal : 0;
    this.#peerWs = syn.wscale >= 0;
  }

  /** SYN (active) or SYN-ACK (passive) with our options; arms the RTO. */
  #sendSyn(now: number): void {
    const h = this.#tx;
    const synAck = this.state === SYN_RECEIVED;
    this.#fillHeader(h, synAck ? tcp.SYN | tcp.ACK : tcp.SYN, this.iss, 0);
    h.mss = this.cfg.mtu - 40;
    // RFC 7323 §1.3: a SYN-ACK may carry WS only if the SYN did.
    const offerWs = this.cfg.windowScaling && (!synAck || this.#peerWs);
    h.wscale = offerWs ? shiftFor(this.cfg.rcvBufMax) : -1;
    h.sackPermitted = synAck ? this.sackOk : this.cfg.sack;
    const ts = synAck ? this.tsOk : this.cfg.timestamps;
    h.hasTimestamps = ts;
    if (ts) {
      h.tsVal = this.#tsNow(now);
      h.tsEcr = synAck ? this.tsRecent : 0;
    }
    const wnd = Math.min(this.rcvBuf.free, 0xffff); // SYN windows are never scaled (RFC 7323 §2.2)
    h.window = wnd;
    this.rcvWnd = wnd;
    if (synAck) {
      this.rcvAdvEdge = seq.add(this.rcvNxt, wnd);
      this.lastAckSent = this.rcvNxt;
    }
    this.#offerShift = h.wscale;
    this.#finishHeader(h);
    if (this.sndMax === this.iss) {
      this.sndNxt = seq.add(this.iss, 1);
      this.sndMax = this.sndNxt;
      this.#rttSeq = this.sndNxt;
      this.#rttTime = now;
    }
    this.out.segment(this, h, this.sndBuf, 0);
    if (this.#rtoAt === Infinity) this.#rtoAt = now + this.rtt.rto;
  }

  // ------------------------------------------------------------------ app side

  #canWrite(): boolean {
    const s = this.state;
    return !this.#finQueued && (s === ESTABLISHED || s === CLOSE_WAIT || s === SYN_SENT || s === SYN_RECEIVED);
  }

  /**
   * Queues bytes to send (RFC 9293 §3.10.2 SEND). Takes at most the free
   * space of the bounded send buffer; when it takes less than offered,
   * `onWritable` fires once space frees up.
   * @param src bytes to send (copied)
   * @param now current time (ms)
   * @returns bytes taken (0 when the buffer is full, or after shutdownWrite/close)
   */
  write(src: Uint8Array, now: number): number {
    this.#now = now;
    if (!this.#canWrite()) return 0;
    const n = this.sndBuf.write(src, 0, src.length);
    if (n < src.length) this.#wantWritable = true;
    this.#wrote(n, now);
    return n;
  }

  /**
   * Free send-buffer space to be filled in place (SendBuffer.lendTail), or
   * null when less than `min` bytes are contiguous or writing is over.
   */
  lendWriteRegion(min: number): Uint8Array | null {
    return this.#canWrite() ? this.sndBuf.lendTail(min) : null;
  }

  /**
   * Queues `n` bytes read into a region from lendWriteRegion, as `write`
   * would. @returns false when the region is no longer the buffer's tail: then
   * `write` them instead
   */
  commitLent(region: Uint8Array, n: number, now: number): boolean {
    this.#now = now;
    if (!this.#canWrite() || !this.sndBuf.commitLent(region, n)) return false;
    this.#wrote(n, now);
    return true;
  }

  #wrote(n: number, now: number): void {
    if (n <= 0) return;
    this.#lastActivity = now;
    this.#trimAt = Infinity;
    if (this.state !== SYN_SENT && this.state !== SYN_RECEIVED) this.#flush(now);
  }

  /** Asks for one `onWritable` once the send buffer has drained below half (as after a short `write`). */
  notifyWritable(): void {
    this.#wantWritable = true;
  }

  /**
   * Copies up to `len` readable bytes into `dst` without consuming them.
   * @returns bytes copied
   */
  peek(dst: Uint8Array, dstOff: number, len: number): number {
    return this.rcvBuf.peek(dst, dstOff, len);
  }

  /**
   * Marks `n` readable bytes as consumed, opening the receive window (a window
   * update is sent when it opens enough, RFC 9293 §3.8.6.2.2).
   * @returns bytes consumed
   */
  consume(n: number, now: number): number {
    this.#now = now;
    const k = this.rcvBuf.consume(n);
    if (k > 0) {
      this.#lastActivity = now;
      if (this.rcvBuf.empty) this.#armTrim(now);
      this.#maybeWindowUpdate();
    }
    return k;
  }

  /**
   * Lends readable bytes without copying (see RecvBuffer.view): at most `len`
   * from `offset` bytes past the read head, up to the ring's end. Valid until
   * `consume`d; the window stays closed for them until then.
   */
  peekView(offset: number, len: number): Uint8Array {
    return this.rcvBuf.view(offset, len);
  }

  /** peek + consume. @returns bytes read */
  read(dst: Uint8Array, dstOff: number, len: number, now: number): number {
    const n = this.rcvBuf.peek(dst, dstOff, len);
    return this.consume(n, now);
  }

  /**
   * Half-close (RFC 9293 §3.10.4 CLOSE): our FIN goes out after the queued
   * data; we keep receiving until the peer's FIN.
   */
  shutdownWrite(now: number): void {
    this.#now = now;
    if (this.#finQueued) return;
    const s = this.state;
    if (s !== ESTABLISHED && s !== CLOSE_WAIT && s !== SYN_SENT && s !== SYN_RECEIVED) return;
    this.#finQueued = true;
    this.#lastActivity = now;
    if (s === ESTABLISHED) this.state = FIN_WAIT_1;
    else if (s === CLOSE_WAIT) this.state = LAST_ACK;
    else return; // transitions when the handshake completes
    this.#flush(now);
  }

  /**
   * Reset by the app (RFC 9293 §3.10.5 ABORT): RST to the peer when
   * synchronized (or RST|ACK for an unanswered SYN), then CLOSED. onReset is
   * not called (the app asked for it); onClosed is.
   */
  abort(_now: number): void {
    const s = this.state;
    if (s === CLOSED) return;
    if (s === SYN_RECEIVED && !this.#accepted) this.#emitRaw(tcp.RST | tcp.ACK, 0, this.rcvNxt);
    else if (s !== SYN_SENT && s !== TIME_WAIT) this.#emitRaw(tcp.RST | tcp.ACK, this.sndMax, this.rcvNxt);
    this.#close();
  }

  // ------------------------------------------------------------------ timers

  /** The earliest deadline (absolute ms), or Infinity. */
  nextTimeout(): number {
    if (this.state === CLOSED) return Infinity;
    let t = Math.min(this.#rtoAt, this.#tlpAt, this.#reoAt, this.#persistAt, this.#ackAt, this.#twAt, this.#connectAt, this.#trimAt);
    if (this.state !== TIME_WAIT) t = Math.min(t, this.#lastActivity + this.cfg.idleTimeout);
    return t;
  }

  /** Runs every timer whose deadline is <= now. */
  onTimer(now: number): void {
    this.#now = now;
    if (this.state === CLOSED) return;
    if (now >= this.#twAt) {
      this.#close();
      return;
    }
    if (now >= this.#connectAt) {
      this.#connectAt = Infinity;
      if (this.state === SYN_SENT || (this.state === SYN_RECEIVED && this.role !== ROLE_PASSIVE)) {
        this.#giveUp(false);
        return;
      }
    }
    if (this.state !== TIME_WAIT && now >= this.#lastActivity + this.cfg.idleTimeout) {
      this.#resetPeer(RESET_IDLE);
      return;
    }
    if (now >= this.#rtoAt) {
      this.#onRto(now);
      if (this.state === CLOSED) return;
    }
    if (now >= this.#reoAt) this.#onReorderTimeout(now);
    if (now >= this.#tlpAt) this.#onTlp(now);
    if (now >= this.#persistAt) {
      this.#onPersist(now);
      if (this.state === CLOSED) return;
    }
    if (now >= this.#ackAt) this.#sendAck();
    if (now >= this.#trimAt) {
      this.#trimAt = Infinity;
      this.sndBuf.release();
      this.rcvBuf.release();
    }
  }

  #armTrim(now: number): void {
    if (this.#trimAt === Infinity && this.sndBuf.capacity + this.rcvBuf.capacity > 0)
      this.#trimAt = now + this.cfg.bufferLinger;
  }

  #onRto(now: number): void {
    this.#rtoAt = Infinity;
    this.#tlpAt = Infinity;
    this.#reoAt = Infinity;
    if (this.sndMax === this.sndUna) return;
    this.retries++;
    const s = this.state;
    if (s === SYN_SENT || s === SYN_RECEIVED) {
      if (this.retries > this.cfg.synRetries) {
        this.#giveUp(s === SYN_RECEIVED);
        return;
      }
      this.rtt.backoff();
      this.#rttTime = -1;
      this.#sendSyn(now);
      return;
    }
    if (this.retries > this.cfg.maxRetries) {
      this.#giveUp(true);
      return;
    }
    this.rtt.backoff();
    this.nRto++;
    // RFC 5681 §3.1 eq. (4) on the first timeout of an episode; loss window 1 MSS.
    const smss = this.smss;
    if (this.retries === 1) this.ssthresh = Math.max(seq.sub(this.sndMax, this.sndUna) >>> 1, 2 * smss);
    this.cwnd = smss;
    this.#ackedAccum = 0;
    this.inRecovery = false;
    this.#rxtAt = -1;
    this.dupAcks = 0;
    this.recover = this.sndMax; // RFC 6582 §4: no fast retransmit for dup ACKs of pre-timeout data
    this.#afterRto = true;
    this.#sacked.clear(); // RFC 2018 §8
    this.#rttTime = -1; // Karn
    this.sndNxt = this.sndUna;
    // Retransmit the first segment regardless of the window (RFC 6298 §5.4), then go back N.
    const avail = this.sndBuf.length;
    const len = Math.min(avail, this.#payloadLimit());
    const fin = this.#finQueued && len === avail;
    this.#emitData(len, fin, now, true);
    this.#rtoAt = now + this.rtt.rto;
  }

  #onPersist(now: number): void {
    this.#persistAt = Infinity;
    const rel = seq.sub(this.sndNxt, this.sndUna);
    const avail = this.sndBuf.length - rel;
    if (avail <= 0 || this.sndMax !== this.sndUna) {
      this.#persistBackoff = 0;
      return;
    }
    const usable = this.sndWnd - rel;
    if (usable > 0) {
      // SWS override timer (RFC 9293 §3.8.6.2.1): send what fits.
      const len = Math.min(avail, usable, this.#payloadLimit());
      this.#emitData(len, this.#finQueued && len === avail, now, false);
      this.#persistBackoff = 0;
      this.#flush(now);
      return;
    }
    // Zero-window probe (§3.8.6.1): SEQ = SND.UNA-1, no data, elicits an ACK.
    this.retries++;
    if (this.retries > this.cfg.maxRetries) {
      this.#giveUp(true);
      return;
    }
    this.#emitRaw(tcp.ACK, seq.add(this.sndUna, -1), this.rcvNxt);
    this.#persistBackoff = Math.min(this.cfg.maxRto, Math.max(this.rtt.rto, this.#persistBackoff * 2));
    this.#persistAt = now + this.#persistBackoff;
  }

  /** Retransmissions exhausted / connect timed out. */
  #giveUp(sendRst: boolean): void {
    if (this.role === ROLE_PROBE && this.state === SYN_SENT) {
      this.events.onProbe(this, PROBE_TIMEOUT);
      this.#close();
      return;
    }
    if (sendRst) this.#emitRaw(tcp.RST | tcp.ACK, this.sndMax, this.rcvNxt);
    this.events.onReset(this, RESET_TIMEOUT);
    this.#close();
  }

  /** RST to the peer and onReset(reason) to the app. */
  #resetPeer(reason: number): void {
    const s = this.state;
    if (s === SYN_RECEIVED && !this.#accepted) this.#emitRaw(tcp.RST | tcp.ACK, 0, this.rcvNxt);
    else if (s !== SYN_SENT) this.#emitRaw(tcp.RST | tcp.ACK, this.sndMax, this.rcvNxt);
    this.events.onReset(this, reason);
    this.#close();
  }

  #close(): void {
    this.state = CLOSED;
    this.#rtoAt = Infinity;
    this.#tlpAt = Infinity;
    this.#reoAt = Infinity;
    this.#persistAt = Infinity;
    this.#ackAt = Infinity;
    this.#twAt = Infinity;
    this.#connectAt = Infinity;
    this.#trimAt = Infinity;
    this.sndBuf.drop(this.sndBuf.length);
    this.sndBuf.release();
    if (!this.#closedFired) {
      this.#closedFired = true;
      this.events.onClosed(this);
    }
  }

  #enterTimeWait(now: number): void {
    this.state = TIME_WAIT;
    this.#rtoAt = Infinity;
    this.#tlpAt = Infinity;
    this.#reoAt = Infinity;
    this.#persistAt = Infinity;
    this.#ackAt = Infinity;
    this.#trimAt = Infinity;
    this.sndBuf.release();
    this.#twAt = now + this.cfg.timeWait;
  }

  // ------------------------------------------------------------------ input

  /** Bytes the peer reports holding beyond SND.UNA (the SACK scoreboard's size). */
  #sackedBytes(): number {
    let n = 0;
    for (let i = 0; i < this.#sacked.count; i++) n += this.#sacked.end(i) - this.#sacked.start(i);
    return n;
  }

  /**
   * Processes one segment from the peer (RFC 9293 §3.10.7). The caller has
   * validated it (`tcp.parse`, checksum) and matched it to this connection.
   * @param h the parsed header
   * @param bytes the buffer holding the segment; payload at h.payloadOffset
   * @param now current time (ms)
   */
  onSegment(h: tcp.Header, bytes: Uint8Array, now: number): void {
    this.#now = now;
    const s = this.state;
    if (s === CLOSED) return;
    if (s === SYN_SENT) {
      this.#onSynSent(h, now);
      return;
    }
    const f = h.flags;
    if (s === SYN_RECEIVED) {
      if (!this.#accepted) {
        // Still dialing the host: only a RST for the pending SYN matters.
        if ((f & tcp.RST) !== 0 && h.seq === this.rcvNxt) {
          this.events.onReset(this, RESET_REMOTE);
          this.#close();
        }
        return;
      }
      if ((f & tcp.SYN) !== 0 && (f & tcp.ACK) === 0 && h.seq === this.irs) {
        this.#sendSyn(now); // retransmitted SYN: repeat the SYN-ACK
        return;
      }
    }

    // First: sequence number acceptability (RFC 9293 §3.10.7.4, table).
    const dataLen = h.payloadLength;
    const segLen = dataLen + (f & tcp.SYN ? 1 : 0) + (f & tcp.FIN ? 1 : 0);
    const wnd = this.rcvBuf.free;
    let acceptable: boolean;
    // A segment without data may sit exactly at the right edge: a peer that filled
    // our window sends its ACKs with SEG.SEQ = RCV.NXT + RCV.WND (Linux accepts
    // these too, tcp_sequence()); rejecting them would drop every ACK for our
    // data while the peer's window toward us is full.
    if (segLen === 0) acceptable = seq.inWindow(h.seq, this.rcvNxt, wnd + 1);
    else if (wnd === 0) acceptable = h.seq === this.rcvNxt; // §3.10.7.4: still process ACK/RST; text trimmed
    else
      acceptable =
        seq.inWindow(h.seq, this.rcvNxt, wnd) || seq.inWindow(seq.add(h.seq, segLen - 1), this.rcvNxt, wnd);
    if (!acceptable) {
      if ((f & tcp.RST) === 0) {
        if (s === TIME_WAIT && (f & tcp.FIN) !== 0) this.#twAt = now + this.cfg.timeWait;
        this.#sendAck(); // also answers keepalives and zero-window probes
      }
      return;
    }
    this.#lastActivity = now;

    // Second: RST (RFC 5961 §3.2).
    if ((f & tcp.RST) !== 0) {
      if (h.seq === this.rcvNxt) {
        if (s !== TIME_WAIT && s !== LAST_ACK && s !== CLOSING) this.events.onReset(this, RESET_REMOTE);
        this.#close();
      } else {
        this.#sendAck(); // challenge ACK
      }
      return;
    }

    // TS.Recent (RFC 7323 §4.3).
    if (this.tsOk && h.hasTimestamps && seq.le(h.seq, this.lastAckSent) && seq.ge(h.tsVal, this.tsRecent))
      this.tsRecent = h.tsVal;

    // Fourth: SYN in a synchronized state → challenge ACK (RFC 5961 §4.2).
    if ((f & tcp.SYN) !== 0) {
      this.#sendAck();
      return;
    }

    // Fifth: ACK.
    if ((f & tcp.ACK) === 0) return;
    let established = false;
    if (s === SYN_RECEIVED) {
      if (!(seq.lt(this.sndUna, h.ack) && seq.le(h.ack, this.sndMax))) {
        this.#emitRaw(tcp.RST, h.ack, 0);
        return;
      }
      this.#becomeEstablished(now);
      this.sndWnd = h.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = h.seq;
      this.sndWl2 = h.ack;
      established = true;
    }
    if (!this.#processAck(h, now)) return;
    if (this.state === CLOSED) return;

    // Seventh: segment text; eighth: FIN.
    let newData = false;
    let finNow = false;
    const st = this.state;
    if (st === ESTABLISHED || st === FIN_WAIT_1 || st === FIN_WAIT_2) {
      const r = this.#processText(h, bytes, now);
      newData = (r & 1) !== 0;
      finNow = (r & 2) !== 0;
    } else if (st === TIME_WAIT && (f & tcp.FIN) !== 0) {
      this.#twAt = now + this.cfg.timeWait;
      this.#sendAck();
    }

    // Output: data first (piggybacks the ACK), then any ACK still owed.
    this.#flush(now);
    if (this.#ackPending > 0) {
      if (this.#ackPending >= 2 || this.cfg.ackDelay === 0) this.#sendAck();
      else if (this.#ackAt === Infinity) this.#ackAt = now + this.cfg.ackDelay;
    }

    // Events last, so handlers see a consistent connection.
    if (established) this.events.onEstablished(this);
    if (newData && this.state !== CLOSED) this.events.onData(this);
    if (finNow && this.state !== CLOSED) this.events.onRemoteFin(this);
    this.#notifyWritable();
  }

  /** RFC 9293 §3.10.7.3 (SYN-SENT). */
  #onSynSent(h: tcp.Header, now: number): void {
    const f = h.flags;
    const hasAck = (f & tcp.ACK) !== 0;
    if (hasAck && (seq.le(h.ack, this.iss) || seq.gt(h.ack, this.sndMax))) {
      if ((f & tcp.RST) === 0) this.#emitRaw(tcp.RST, h.ack, 0);
      return;
    }
    if ((f & tcp.RST) !== 0) {
      if (!hasAck) return;
      if (this.role === ROLE_PROBE) this.events.onProbe(this, PROBE_CLOSED);
      else this.events.onReset(this, RESET_REFUSED);
      this.#close();
      return;
    }
    if ((f & tcp.SYN) === 0) return;
    this.#lastActivity = now;
    this.irs = h.seq;
    this.rcvNxt = seq.add(h.seq, 1);
    this.#negotiate(h, this.#offerShift >= 0);
    if (!hasAck) {
      // Simultaneous open (§3.5): SYN-RECEIVED, SYN-ACK with the same ISS.
      this.state = SYN_RECEIVED;
      this.sndWnd = h.window;
      this.sndWl1 = h.seq;
      this.#sendSyn(now);
      return;
    }
    if (this.role === ROLE_PROBE) {
      this.events.onProbe(this, PROBE_OPEN);
      this.#emitRaw(tcp.RST, h.ack, 0);
      this.#close();
      return;
    }
    if (this.#rttTime >= 0 && this.retries === 0) this.rtt.sample(now - this.#rttTime);
    this.#rttTime = -1;
    this.rcvAdvEdge = seq.add(this.rcvNxt, this.rcvWnd);
    this.lastAckSent = this.rcvNxt;
    this.sndUna = h.ack;
    this.sndWnd = h.window; // unscaled in a SYN-ACK (RFC 7323 §2.2)
    this.maxSndWnd = h.window;
    this.sndWl1 = h.seq;
    this.sndWl2 = h.ack;
    this.#becomeEstablished(now);
    this.#sendAck();
    this.#flush(now);
    this.events.onEstablished(this);
  }

  /** Handshake complete: congestion state, timers, queued FIN. */
  #becomeEstablished(now: number): void {
    const smss = this.smss;
    // RFC 6928 initial window; 1 MSS if the SYN or SYN-ACK was retransmitted (RFC 5681 §3.1).
    this.cwnd = this.retries > 0 ? smss : Math.min(10 * smss, Math.max(2 * smss, 14600));
    this.ssthresh = 0x3fffffff;
    this.retries = 0;
    this.#rtoAt = Infinity;
    this.#connectAt = Infinity;
    this.#lastActivity = now;
    this.state = this.#finQueued ? FIN_WAIT_1 : ESTABLISHED;
  }

  /**
   * ACK processing (§3.10.7.4 fifth) with RFC 5961 §5.2 checks, RTT, congestion
   * control, SACK scoreboard, window update and FIN-acked transitions.
   * @returns false when the segment must be dropped
   */
  #processAck(h: tcp.Header, now: number): boolean {
    const ack = h.ack;
    if (seq.gt(ack, this.sndMax)) {
      this.#sendAck();
      return false;
    }
    if (seq.lt(ack, seq.add(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      this.#sendAck();
      return false;
    }
    const acked = seq.diff(ack, this.sndUna);
    const newWnd = h.window << this.sndShift; // ≤ 0xffff << 14 < 2^30: int32 shifts are exact
    const smss = this.smss;
    this.retries = 0;

    if (acked > 0) {
      // RTT (RFC 7323 §4.1 with timestamps, else the timed segment; Karn's rule via #rttTime = -1)
      if (this.tsOk && h.hasTimestamps && h.tsEcr !== 0) {
        const r = seq.sub(this.#tsNow(now), h.tsEcr);
        if (r < 0x7fffffff) this.rtt.sample(r);
      } else if (this.#rttTime >= 0 && seq.ge(ack, this.#rttSeq)) {
        this.rtt.sample(now - this.#rttTime);
        this.#rttTime = -1;
      }
      let a = acked;
      if (this.sndUna === this.iss) a--; // our SYN
      const ccAcked = a; // bytes (and FIN) acknowledged, for congestion control
      const d = Math.min(a, this.sndBuf.length);
      this.sndBuf.drop(d);
      a -= d;
      const finAcked = a > 0 && this.#finSent;
      this.sndUna = ack;
      if (seq.lt(this.sndNxt, ack)) this.sndNxt = ack;
      this.#sacked.shift(acked);
      if (this.sndBuf.length === 0) this.#armTrim(now);

      // Congestion control.
      if (ccAcked === 0) {
        // only our SYN was acknowledged
      } else if (this.inRecovery) {
        if (seq.ge(ack, this.recover)) {
          // Full ACK (RFC 6582 §3.2 step 3): deflate.
          this.cwnd = Math.min(this.ssthresh, Math.max(seq.sub(this.sndMax, this.sndUna), smss) + smss);
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
      if (!this.inRecovery && seq.gt(this.sndUna, this.recover)) {
        this.recover = seq.add(this.sndUna, -1);
        this.#afterRto = false;
      }
      this.#rtoAt = this.sndUna === this.sndMax ? Infinity : now + this.rtt.rto; // RFC 6298 §5.2-5.3

      if (finAcked) {
        const s = this.state;
        if (s === FIN_WAIT_1) this.state = FIN_WAIT_2;
        else if (s === CLOSING) {
          this.#enterTimeWait(now);
        } else if (s === LAST_ACK) {
          this.#close();
          return false;
        }
      }
    }

    // SACK blocks (RFC 2018): record what the peer holds beyond SND.UNA.
    const sackedBefore = this.#sackedBytes();
    if (this.sackOk && h.sackCount > 0) {
      for (let i = 0; i < h.sackCount; i++) {
        const l = h.sack[2 * i]!;
        const r = h.sack[2 * i + 1]!;
        if (seq.lt(this.sndUna, l) && seq.lt(l, r) && seq.le(r, this.sndMax))
          this.#sacked.add(seq.sub(l, this.sndUna), seq.sub(r, this.sndUna));
      }
    }

    // Duplicate ACK (RFC 5681 §2 definition) → fast retransmit / recovery.
    if (
      acked === 0 &&
      h.payloadLength === 0 &&
      (h.flags & (tcp.SYN | tcp.FIN)) === 0 &&
      // RFC 5681 §2, widened as RFC 6675 §2 does: an ACK that SACKs new data is a
      // duplicate even when the advertised window changed.
      (newWnd === this.sndWnd || this.#sackedBytes() > sackedBefore) &&
      this.sndMax !== this.sndUna
    ) {
      this.dupAcks++;
      if (this.inRecovery) {
        this.cwnd += smss;
        if (this.sackOk) this.#retransmitHole(seq.sub(this.#highRxt, this.sndUna), now, true);
      } else if (this.dupAcks === 3 && this.#mayRecover()) {
        this.#enterRecovery(now);
      }
    }

    if (this.sackOk) this.#sackLossDetection(now);

    // Window update (§3.10.7.4: SND.WL1/WL2 rule).
    if (seq.lt(this.sndWl1, h.seq) || (this.sndWl1 === h.seq && seq.le(this.sndWl2, ack))) {
      this.sndWnd = newWnd;
      this.sndWl1 = h.seq;
      this.sndWl2 = ack;
      if (newWnd > this.maxSndWnd) this.maxSndWnd = newWnd;
    }
    if (this.sndWnd > 0 && this.#persistAt !== Infinity) {
      this.#persistAt = Infinity;
      this.#persistBackoff = 0;
    }
    if (acked > 0) this.#armTlp(now);
    return true;
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
    return (this.sackOk && !this.#afterRto) || seq.gt(this.sndUna, this.recover);
  }

  /** Fast retransmit, NewReno recovery entry (RFC 6582 §3.2 step 2 / RFC 5681 §3.2 steps 2-4). */
  #enterRecovery(now: number): void {
    const smss = this.smss;
    this.ssthresh = Math.max(seq.sub(this.sndMax, this.sndUna) >>> 1, 2 * smss);
    this.recover = this.sndMax;
    this.inRecovery = true;
    this.#highRxt = this.sndUna;
    this.#tlpAt = Infinity;
    this.#reoAt = Infinity;
    this.nFastRetransmit++;
    this.#retransmitHole(0, now);
    this.cwnd = this.ssthresh + 3 * smss;
  }

  /** RACK's reordering window (RFC 8985 §6.2): a quarter of the smoothed RTT, at least 2 ms. */
  #reoWnd(): number {
    return Math.max(2, this.rtt.srtt / 4);
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
    if (this.#sacked.count === 0) {
      this.#reoAt = Infinity;
      return;
    }
    if (!this.inRecovery) {
      if (this.#reoAt === Infinity && this.#mayRecover()) this.#reoAt = now + this.#reoWnd();
      return;
    }
    if (
      this.#rxtAt >= 0 &&
      seq.gt(seq.add(this.sndUna, this.#sacked.highest()), this.#rxtMark) &&
      now - this.#rxtAt >= Math.max(this.rtt.srtt, 0) + this.#reoWnd()
    ) {
      this.nLostRetransmit++;
      this.#retransmitHole(0, now);
    }
  }

  #onReorderTimeout(now: number): void {
    this.#reoAt = Infinity;
    if (!this.inRecovery && this.#sacked.count > 0 && this.sndMax !== this.sndUna && this.#mayRecover())
      this.#enterRecovery(now);
  }

  /**
   * Arms the tail loss probe (RFC 8985 §7.2): PTO = 2·SRTT, plus the peer's
   * worst-case delayed ACK (200 ms) when a single segment is in flight, plus
   * 2 ms of slack otherwise (as Linux); only with SACK, outside recovery, one
   * probe per flight, and only when it would fire before the RTO.
   */
  #armTlp(now: number): void {
    this.#tlpAt = Infinity;
    const srtt = this.rtt.srtt;
    if (!this.sackOk || srtt < 0 || this.inRecovery || this.#tlpSent || this.sndMax === this.sndUna || this.sndNxt !== this.sndMax) return;
    const at = now + 2 * srtt + (seq.sub(this.sndMax, this.sndUna) <= this.smss ? 200 : 2);
    if (at < this.#rtoAt) this.#tlpAt = at;
  }

  /**
   * The probe (RFC 8985 §7.3): a new segment if the peer's window allows,
   * otherwise the last segment sent again; its SACK lets #sackLossDetection
   * repair a lost tail without the RTO. The RTO restarts after it.
   */
  #onTlp(now: number): void {
    this.#tlpAt = Infinity;
    if (this.sndMax === this.sndUna || this.inRecovery || this.#tlpSent) return;
    this.#tlpSent = true;
    this.nTlp++;
    const rel = seq.sub(this.sndNxt, this.sndUna);
    const avail = this.sndBuf.length - rel;
    const limit = this.#payloadLimit();
    const len = Math.min(avail, limit);
    if (avail > 0 && len <= Math.min(this.sndWnd - rel, this.cwnd + this.smss)) {
      this.#emitData(len, this.#finQueued && len === avail, now, false);
    } else {
      const out = this.#sentBytes();
      const n = Math.min(out, limit);
      this.#retransmitAt(out - n, n, now);
    }
    this.#rtoAt = now + this.rtt.rto;
  }

  /**
   * Retransmits one segment starting at the first un-SACKed byte at or after
   * `fromRel` (bytes after SND.UNA). With `onlyHoles`, only if that byte lies
   * below the highest SACKed byte (a real hole).
   */
  #retransmitHole(fromRel: number, now: number, onlyHoles = false): void {
    let rel = Math.max(0, fromRel);
    for (let e = this.#sacked.endOf(rel); e >= 0; e = this.#sacked.endOf(rel)) rel = e;
    if (onlyHoles && rel >= this.#sacked.highest()) return;
    // Only bytes already sent: segment sizes change with the options a segment
    // carries (SACK blocks), so a retransmission sized anew could reach past
    // SND.MAX. Such bytes would arrive without SND.MAX knowing, the peer would
    // ACK beyond it, and every such ACK would be dropped as "ACK of unsent
    // data" (RFC 9293 §3.10.7.4): a deadlock until the retries ran out.
    const dataLen = this.#sentBytes();
    if (rel > dataLen) return;
    const limit = Math.min(this.#payloadLimit(), this.#sacked.nextStart(rel) - rel);
    const end = this.#retransmitAt(rel, Math.min(dataLen - rel, limit), now);
    if (end === -1) return;
    this.#highRxt = end;
    if (rel === 0) {
      this.#rxtAt = now;
      this.#rxtMark = this.sndMax;
    }
  }

  /** Buffered bytes already sent once (up to SND.MAX, not counting our FIN): all a retransmission may carry. */
  #sentBytes(): number {
    return Math.min(this.sndBuf.length, seq.sub(this.sndMax, this.sndUna));
  }

  /**
   * Sends `len` bytes from `rel` bytes after SND.UNA again (with our FIN when
   * they reach its end and it was sent).
   * @returns the sequence number after what was sent, or -1 when nothing was
   */
  #retransmitAt(rel: number, len: number, now: number): number {
    const fin = this.#finSent && rel + len === this.sndBuf.length;
    if (len <= 0 && !fin) return -1;
    const seqStart = seq.add(this.sndUna, rel);
    this.#fillHeader(this.#tx, tcp.ACK | (fin ? tcp.FIN : 0) | (len > 0 ? tcp.PSH : 0), seqStart, len);
    this.#sendTx(rel);
    this.nRetransmit++;
    this.#rttTime = -1; // Karn
    if (this.#rtoAt === Infinity) this.#rtoAt = now + this.rtt.rto;
    return seq.add(seqStart, len + (fin ? 1 : 0));
  }

  /**
   * Segment text and FIN (§3.10.7.4 seventh, eighth).
   * @returns bit 0: new in-order data readable; bit 1: FIN reached
   */
  #processText(h: tcp.Header, bytes: Uint8Array, now: number): number {
    let len = h.payloadLength;
    let off = h.payloadOffset;
    let sq = h.seq;
    const fin = (h.flags & tcp.FIN) !== 0;
    const end = seq.add(sq, len); // FIN's sequence number
    let result = 0;
    // trim what we already have
    const dup = seq.diff(this.rcvNxt, sq);
    if (dup > 0) {
      const k = Math.min(dup, len);
      off += k;
      len -= k;
      sq = seq.add(sq, k);
    }
    // trim to the buffer space
    const rel = seq.diff(sq, this.rcvNxt);
    const free = this.rcvBuf.free;
    let finFits = fin;
    if (rel + len > free) {
      len = Math.max(0, free - rel);
      finFits = false;
    }
    if (len > 0) {
      const hadHoles = this.rcvBuf.ooo.count > 0;
      const adv = this.rcvBuf.write(rel, bytes, off, len);
      this.#trimAt = Infinity;
      if (adv > 0) {
        this.rcvNxt = seq.add(this.rcvNxt, adv);
        result |= 1;
        if (hadHoles) this.#ackPending = 2; // hole filled: ACK now (RFC 5681 §4.2)
        else this.#ackPending++;
      } else {
        this.#ackPending = 2; // out of order (or dropped): immediate duplicate ACK with SACK (RFC 5681 §4.2)
      }
    } else if (h.payloadLength > 0) {
      this.#ackPending = 2; // duplicate or zero-window data: tell the peer where we are
    }
    if (finFits && seq.ge(end, this.rcvNxt)) {
      this.#rcvFinPending = true;
      this.#rcvFinSeq = end;
    }
    if (this.#rcvFinPending && this.#rcvFinSeq === this.rcvNxt) {
      this.#rcvFinPending = false;
      this.rcvNxt = seq.add(this.rcvNxt, 1);
      this.#remoteFin = true;
      this.#ackPending = 2;
      result |= 2;
      const s = this.state;
      if (s === ESTABLISHED) this.state = CLOSE_WAIT;
      else if (s === FIN_WAIT_1) this.state = CLOSING;
      else if (s === FIN_WAIT_2) this.#enterTimeWait(now);
    }
    return result;
  }

  // ------------------------------------------------------------------ output

  /** Largest payload for the next segment: MSS minus the options it will carry. */
  #payloadLimit(): number {
    let opt = this.tsOk ? TS_LEN : 0;
    const holes = this.rcvBuf.ooo.count;
    if (this.sackOk && holes > 0) opt += 4 + 8 * Math.min(holes, this.tsOk ? 3 : 4);
    return this.sndMss - opt;
  }

  /**
   * Sends what the windows allow now: the owner calls this when the link
   * toward the peer has drained after `out.linkBlocked` held data back.
   */
  flush(now: number): void {
    this.#now = now;
    this.#flush(now);
  }

  /** Sends new (or go-back-N) data while the windows and the link allow (§3.8.6.2.1, RFC 5681). */
  #flush(now: number): void {
    const s = this.state;
    if (s !== ESTABLISHED && s !== CLOSE_WAIT && s !== FIN_WAIT_1 && s !== CLOSING && s !== LAST_ACK) return;
    let linkBlocked = false;
    for (;;) {
      if (this.out.linkBlocked(this)) {
        linkBlocked = true; // the owner calls flush() when the link drains
        break;
      }
      const rel = seq.sub(this.sndNxt, this.sndUna);
      const avail = this.sndBuf.length - rel;
      if (avail > 0) {
        // Limited transmit (RFC 3042): the first two duplicate ACKs each let one new segment out.
        const lt = this.inRecovery ? 0 : Math.min(this.dupAcks, 2) * this.smss;
        const usable = Math.min(this.sndWnd, this.cwnd + lt) - rel;
        const limit = this.#payloadLimit();
        let len = Math.min(avail, limit, usable);
        if (len <= 0) break;
        // Sender SWS avoidance: a short segment only if it empties the queue or is ≥ half the max window.
        if (len < limit && len < avail && len < this.maxSndWnd >>> 1) break;
        if (len > avail) len = avail;
        const fin = this.#finQueued && len === avail;
        this.#emitData(len, fin, now, false);
      } else if (avail === 0 && this.#finQueued) {
        this.#emitData(0, true, now, false); // FIN needs no window
        break;
      } else break;
    }
    // Persist timer: unsent data, nothing in flight (§3.8.6.1; also the SWS override timer).
    if (linkBlocked) {
      // held back by our own link, not by the peer's window: no probing
    } else if (this.sndMax === this.sndUna && this.sndBuf.length > seq.sub(this.sndNxt, this.sndUna)) {
      if (this.#persistAt === Infinity) {
        if (this.#persistBackoff === 0) this.#persistBackoff = this.rtt.rto;
        this.#persistAt = now + this.#persistBackoff;
      }
    } else if (this.sndMax !== this.sndUna) {
      this.#persistAt = Infinity;
    }
  }

  /** Emits `len` bytes at SND.NXT (+FIN), advances SND.NXT/SND.MAX, arms the RTO, times it. */
  #emitData(len: number, fin: boolean, now: number, rtx: boolean): void {
    const rel = seq.sub(this.sndNxt, this.sndUna);
    const flags = tcp.ACK | (fin ? tcp.FIN : 0) | (len > 0 && (fin || rel + len === this.sndBuf.length) ? tcp.PSH : 0);
    this.#fillHeader(this.#tx, flags, this.sndNxt, len);
    this.#sendTx(rel);
    const isNew = this.sndNxt === this.sndMax;
    if (!isNew) this.nRetransmit++;
    if (!rtx && isNew && len > 0 && this.#rttTime < 0 && !this.tsOk) {
      this.#rttSeq = seq.add(this.sndNxt, len);
      this.#rttTime = now;
    }
    if (!isNew && seq.gt(this.#rttSeq, this.sndNxt)) this.#rttTime = -1; // Karn: the timed bytes went again
    this.sndNxt = seq.add(this.sndNxt, len + (fin ? 1 : 0));
    if (seq.gt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    if (fin) this.#finSent = true;
    if (this.#rtoAt === Infinity && this.sndMax !== this.sndUna) this.#rtoAt = now + this.rtt.rto;
    if (isNew && !rtx) this.#armTlp(now);
  }

  /** A pure ACK (also the challenge ACK and the answer to keepalives). */
  #sendAck(): void {
    const s = this.state;
    if (s === CLOSED || s === SYN_SENT || (s === SYN_RECEIVED && !this.#accepted)) return;
    this.#fillHeader(this.#tx, tcp.ACK, this.sndMax, 0);
    this.#sendTx(0);
  }

  /** A control segment without options or data (RST, RST|ACK, probe). */
  #emitRaw(flags: number, sq: number, ack: number): void {
    const h = this.#tx;
    this.#fillHeader(h, flags, sq, 0);
    if ((flags & tcp.RST) === 0) {
      this.#sendTx(0);
      return;
    }
    h.ack = (flags & tcp.ACK) !== 0 ? ack >>> 0 : 0;
    h.window = 0;
    this.#finishHeader(h);
    this.out.segment(this, h, this.sndBuf, 0);
  }

  /** Common header fields; ACK number, window and options for synchronized segments. */
  #fillHeader(h: tcp.Header, flags: number, sq: number, len: number): void {
    h.srcPort = this.localPort;
    h.dstPort = this.remotePort;
    h.seq = sq >>> 0;
    h.flags = flags;
    h.ack = (flags & tcp.ACK) !== 0 ? this.rcvNxt : 0;
    h.checksum = 0;
    h.urgent = 0;
    h.payloadLength = len;
    tcp.clearOptions(h);
  }

  /** Window + options for a non-SYN segment, ACK bookkeeping, then out.segment. */
  #sendTx(dataOffset: number): void {
    const h = this.#tx;
    h.window = this.#windowToAdvertise();
    if (this.tsOk) {
      h.hasTimestamps = true;
      h.tsVal = this.#tsNow(this.#now);
      h.tsEcr = this.tsRecent;
    }
    if (this.sackOk) this.#fillSack(h);
    this.#finishHeader(h);
    if ((h.flags & tcp.ACK) !== 0) {
      this.lastAckSent = this.rcvNxt;
      this.#ackPending = 0;
      this.#ackAt = Infinity;
    }
    this.out.segment(this, h, this.sndBuf, dataOffset);
  }

  #finishHeader(h: tcp.Header): void {
    h.headerLength = tcp.length(h);
    h.dataOffset = h.headerLength >>> 2;
    h.payloadOffset = h.headerLength;
  }

  /** SACK blocks for our out-of-order data, the most recent first (RFC 2018 §4). */
  #fillSack(h: tcp.Header): void {
    const r = this.rcvBuf.ooo;
    if (r.count === 0) return;
    const max = this.tsOk ? 3 : 4;
    const first = r.indexOfLast();
    let n = 0;
    if (first >= 0) {
      h.sack[0] = seq.add(this.rcvNxt, r.start(first));
      h.sack[1] = seq.add(this.rcvNxt, r.end(first));
      n = 1;
    }
    for (let i = r.count - 1; i >= 0 && n < max; i--) {
      if (i === first) continue;
      h.sack[2 * n] = seq.add(this.rcvNxt, r.start(i));
      h.sack[2 * n + 1] = seq.add(this.rcvNxt, r.end(i));
      n++;
    }
    h.sackCount = n;
  }

  /**
   * The window field for the next segment, with receiver SWS avoidance
   * (RFC 9293 §3.8.6.2.2): move the right edge only by ≥ min(RCV.BUFF/2, MSS),
   * never back; scaled down by our shift (RFC 7323 §2.3).
   */
  #windowToAdvertise(): number {
    const free = this.#freeWindow();
    const cur = Math.max(0, seq.diff(this.rcvAdvEdge, this.rcvNxt));
    const threshold = Math.min(this.cfg.rcvBufMax >>> 1, this.cfg.mtu - 40);
    const wnd = free - cur >= threshold ? free : Math.min(cur, 0xffff << this.rcvShift);
    const wire = wnd >>> this.rcvShift;
    this.rcvWnd = wire << this.rcvShift;
    const edge = seq.add(this.rcvNxt, this.rcvWnd);
    if (seq.gt(edge, this.rcvAdvEdge)) this.rcvAdvEdge = edge;
    return wire;
  }

  /** Free receive space, capped to what the window field can express. */
  #freeWindow(): number {
    return Math.min(this.rcvBuf.free, 0xffff << this.rcvShift);
  }

  /** Sends a window update when the app freed enough space (§3.8.6.2.2). */
  #maybeWindowUpdate(): void {
    const s = this.state;
    if (s !== ESTABLISHED && s !== FIN_WAIT_1 && s !== FIN_WAIT_2) return;
    const free = this.#freeWindow();
    const cur = Math.max(0, seq.diff(this.rcvAdvEdge, this.rcvNxt));
    const threshold = Math.min(this.cfg.rcvBufMax >>> 1, this.cfg.mtu - 40);
    if (free - cur >= threshold && cur < free >>> 1) this.#sendAck();
  }

  #notifyWritable(): void {
    if (this.#wantWritable && this.sndBuf.length <= this.sndBuf.max >>> 1 && this.#canWrite()) {
      this.#wantWritable = false;
      this.events.onWritable(this);
    }
  }

  /** Our TSval clock: ms + a per-connection offset (RFC 7323 §5.4). */
  #tsNow(now: number): number {
    return (Math.floor(now) + this.#tsOffset) >>> 0;
  }
}
