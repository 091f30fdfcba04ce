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
 * - Time: every entry point takes `now` (ms, may be fractional). The gateway keeps one timer
 *   structure and asks `nextTimeout()` (absolute ms or Infinity) after each
 *   call; it calls `onTimer(now)` when that instant passes.
 * - Randomness: the ISN is passed in (RFC 9293 §3.4.1 wants it unpredictable;
 *   the gateway draws it), and the timestamp clock offset is derived from it.
 * - Events go to `events` (TcpEvents): established, data readable, remote
 *   FIN, writable, reset, closed, probe result. They fire after the segment
 *   has been fully processed, so handlers may call back into the connection.
 *
 * Roles (the handshake itself is in handshake.ts, `hs`).
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
 * sent so far; they differ only after a retransmission timeout on a
 * connection without SACK, when SND.NXT goes back to SND.UNA (go-back-N, RFC
 * 6298 §5.4 + RFC 5681 §3.1) and ACKs up to SND.MAX stay acceptable (with
 * SACK the scoreboard marks what to send again instead). All comparisons use `wire/seq` (mod 2^32).
 *
 * Modules. The connection owns the state, the send sequence variables and
 * the entry points; the work is split along RFC 9293's own seams:
 * - sender.ts (`snd`): every segment we emit, the data path out (sender SWS,
 *   persist timer and zero-window probes), RTT timing, ACK processing;
 * - recovery.ts (`rec`): congestion control and loss recovery, with the
 *   per-segment scoreboard (scoreboard.ts), RACK-TLP (rack.ts), PRR
 *   (prr.ts) and undo; NewReno for peers without SACK;
 * - receiver.ts (`rcv`): acceptability, segment text, FIN, SACK blocks,
 *   delayed ACKs and the advertised window (receiver SWS);
 * - handshake.ts (`hs`): opens and option negotiation.
 *
 * Flow control. We send at most min(SND.WND, cwnd) beyond SND.UNA. There is
 * no Nagle delay (RFC 1122 §4.2.3.4 allows disabling it): the gateway relays
 * a host socket, whose writes are already batched, and interactive traffic
 * must not wait. `write` accepts at most the free space of the send buffer
 * and returns what it took; `onWritable` fires once the buffer drains below
 * half (hysteresis, so the host socket is not paused/resumed per ACK).
 *
 * Reliability. RFC 6298 RTO (`RtoEstimator`: min 200 ms, max 60 s, ×2
 * backoff); an RTO retransmits the first segment, then what the scoreboard
 * marked lost (SACK) or everything after it (go-back-N, without SACK). No
 * connection lives forever without progress: after `maxRetries` expiries or
 * unanswered zero-window probes with no ACK of new data between them
 * (synRetries for the handshake), after `userTimeout` (5 min) with data
 * outstanding and nothing new acknowledged, or after `zeroWindowTimeout`
 * (30 min) of a zero window, it is reset both ways (RST to the peer,
 * `onReset(RESET_TIMEOUT)` to the app).
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
 *
 * Liveness. Guest keepalives (SEQ = RCV.NXT-1, 0 or 1 byte, RFC 9293
 * §3.8.4) are unacceptable segments and are answered with an ACK; they count
 * as activity. A connection that sees no acceptable segment, no keepalive and
 * no app activity for `idleTimeout` ms (default 2 h 4 min, the least RFC 5382
 * REQ-5 allows a NAT: a peer's 2 h keepalive timer plus its probes fit) is
 * reset both ways (RST to the guest, `onReset(RESET_IDLE)` to the app).
 * `abort()` sends RST.
 *
 * Memory. An idle connection is this object, its module objects (sender,
 * receiver, recovery, handshake, RTO estimator) and two empty buffer shells:
 * about 1.2 KB of JS heap; the output header is shared by all connections
 * (sender.ts). V8 keeps a number field in place only while every value it
 * ever held (in any object of the same shape) was an integer in the signed
 * 32-bit range; one other value (a fraction, Infinity, an unsigned sequence
 * number past 2^31, even an integral heap number copied from a header
 * field) turns the field into a 16-byte heap box in every connection. So the
 * engine keeps sequence numbers and TSvals signed (`wire/seq`; `toSigned`,
 * and `| 0` where a header value is stored), deadlines and activity times
 * as whole ms with OFF (-1) for "no timer" (deadline.ts); only `now` and the
 * RTO estimator's smoothed values stay fractional. Buffers allocate
 * storage lazily, grow with the data they hold (by doubling, to their bounds,
 * default 256 KiB each; out-of-order bytes in 4 KiB pages) and are freed
 * `bufferLinger` ms after they empty. With `cfg.budget` they charge the
 * account of the `owner` the connection was made with, grow only as far as
 * it allows (budget.ts), and `dispose()` gives everything back.
 */
import * as seq from '../wire/seq.js';
import * as tcp from '../wire/tcp.js';
import type { BudgetAccount } from './budget.js';
import { after, due, earlier, OFF } from './deadline.js';
import { Handshake } from './handshake.js';
import { ACK_NOW, ACK_SECOND, Receiver, TEXT_DATA, TEXT_FIN, TEXT_STORED } from './receiver.js';
import type { RecvBuffer } from './recv-buffer.js';
import { Recovery } from './recovery.js';
import { RtoEstimator } from './rto.js';
import { SendBuffer } from './send-buffer.js';
import { RTO_GIVE_UP_RST, RTO_GO_ON, Sender, TS_LEN } from './sender.js';
import {
  CLOSED,
  CLOSE_WAIT,
  CLOSING,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  PROBE_TIMEOUT,
  RESET_IDLE,
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
export { rstFor, shiftFor } from './handshake.js';


/**
 * A received header's sequence numbers, ACK number, timestamps and SACK
 * blocks in the engine's signed 32-bit form (`wire/seq`; the file comment's
 * Memory), so that `===` against the engine's fields holds. The header's
 * own fields stay heap numbers (they held unsigned values), and a heap
 * number stored into a field makes V8 box that field in every connection,
 * whatever its value: the engine stores `h.seq | 0` (a Smi), never `h.seq`.
 */
function toSigned(h: tcp.Header): void {
  h.seq |= 0;
  h.ack |= 0;
  h.tsVal |= 0;
  h.tsEcr |= 0;
  for (let i = 2 * h.sackCount - 1; i >= 0; i--) h.sack[i]! |= 0;
}

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

  // --- negotiated options
  sackOk = false;
  tsOk = false;

  /** Time of the current entry point (engine-internal: TSval of segments sent). */
  now = 0;
  readonly rtt: RtoEstimator;
  /** Consecutive RTO expiries / unanswered probes. */
  retries = 0;
  /** Counters for diagnostics: RTO expiries, retransmitted segments. */
  nRto = 0;
  nRetransmit = 0;

  // --- timers (absolute whole ms, or OFF: deadline.ts); more in snd, rec, rcv and hs
  /** Retransmission timer (engine-internal). */
  rtoAt = OFF;
  #twAt = OFF;
  #trimAt = OFF;
  /** Last segment from the peer or app activity, whole ms (engine-internal: the idle timeout). */
  lastActivity = 0;

  /** Our FIN is queued after the buffered data (engine-internal). */
  finQueued = false;
  #wantWritable = false;
  #closedFired = false;

  readonly sndBuf: SendBuffer;
  /** Segments out, the data path, ACK processing (sender.ts). */
  readonly snd: Sender;
  /** The receive side (receiver.ts). */
  readonly rcv: Receiver;
  /** Congestion control and loss recovery (recovery.ts). */
  readonly rec: Recovery;
  /** Opening and option negotiation (handshake.ts). */
  readonly hs: Handshake;
  /** The budget account the buffers charge (null: none, or disposed). */
  #account: BudgetAccount | null;

  /** The budget account this connection charges (null: no budget, or disposed), for memory its owner holds on its behalf. */
  get account(): BudgetAccount | null {
    return this.#account;
  }

  /**
   * @param cfg tunables (shared)
   * @param out segment sink
   * @param events owner notifications
   * @param localPort our port (the guest's destination port for passive flows)
   * @param remotePort the guest's port
   * @param owner the key of the budget account (cfg.budget) the buffers
   *   charge: whatever identifies the guest to the owner; `dispose` when done
   */
  constructor(
    readonly cfg: TcpConfig,
    readonly out: TcpOutput,
    readonly events: TcpEvents,
    readonly localPort: number,
    readonly remotePort: number,
    owner: unknown = undefined,
  ) {
    this.#account = cfg.budget === null ? null : cfg.budget.acquire(owner);
    this.sndBuf = new SendBuffer(cfg.sndBufMax, this.#account);
    this.snd = new Sender(this);
    this.rcv = new Receiver(this, this.#account);
    this.rec = new Recovery(this);
    this.hs = new Handshake(this);
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
    return this.rcv.buf.readable;
  }
  /** Bytes `write` would accept now. */
  get writable(): number {
    return this.#canWrite() ? this.sndBuf.free : 0;
  }
  /** True once the peer's FIN was received (in order). */
  get remoteFinished(): boolean {
    return this.rcv.finReceived;
  }
  /** The receive buffer. */
  get rcvBuf(): RecvBuffer {
    return this.rcv.buf;
  }
  /** RCV.NXT (unsigned, as on the wire). */
  get rcvNxt(): number {
    return this.rcv.nxt >>> 0;
  }
  /** Window last advertised, in bytes. */
  get rcvWnd(): number {
    return this.rcv.wnd;
  }
  /** Our window-scale shift. */
  get rcvShift(): number {
    return this.rcv.shift;
  }
  /** Right edge last advertised (never moves back) (unsigned, as on the wire). */
  get rcvAdvEdge(): number {
    return this.rcv.advEdge >>> 0;
  }
  /** Congestion window (bytes). */
  get cwnd(): number {
    return this.rec.cwnd;
  }
  set cwnd(v: number) {
    this.rec.cwnd = v;
  }
  /** Slow-start threshold (bytes). */
  get ssthresh(): number {
    return this.rec.ssthresh;
  }
  /** Consecutive duplicate ACKs. */
  get dupAcks(): number {
    return this.rec.dupAcks;
  }
  /** In fast recovery. */
  get inRecovery(): boolean {
    return this.rec.inRecovery;
  }
  /** RFC 6582 `recover` (unsigned, as on the wire). */
  get recover(): number {
    return this.rec.recover >>> 0;
  }
  /** Fast retransmits (diagnostics). */
  get nFastRetransmit(): number {
    return this.rec.nFastRetransmit;
  }
  /** Tail loss probes sent (diagnostics). */
  get nTlp(): number {
    return this.rec.nTlp;
  }
  /** Retransmissions found lost again (diagnostics). */
  get nLostRetransmit(): number {
    return this.rec.nLostRetransmit;
  }
  /** Recovery episodes undone as spurious (diagnostics). */
  get nUndo(): number {
    return this.rec.nUndo;
  }
  /** Times new data waited for the scoreboard's bound on segments in flight (diagnostics). */
  get nScoreboardFull(): number {
    return this.rec.nScoreboardFull;
  }

  // ------------------------------------------------------------------ opens

  /**
   * Records a guest SYN (passive open, RFC 9293 §3.10.7.2 minus LISTEN):
   * state SYN-RECEIVED, nothing sent until `accept`.
   * @param syn the parsed SYN (options negotiated from it; its sequence
   *   numbers are turned signed in place, see `toSigned`)
   * @param isn our initial sequence number (random)
   * @param now current time (ms)
   */
  openPassive(syn: tcp.Header, isn: number, now: number): void {
    toSigned(syn);
    this.now = now;
    this.role = ROLE_PASSIVE;
    this.hs.openPassive(syn, isn, now);
  }

  /**
   * Completes a passive open: sends the SYN-ACK (the host side is connected).
   * @param now current time (ms)
   */
  accept(now: number): void {
    this.now = now;
    this.hs.accept(now);
  }

  /**
   * Rejects a passive open (the host refused): RST|ACK for the SYN, then CLOSED.
   */
  refuse(): void {
    if (this.state !== SYN_RECEIVED || this.hs.accepted) return;
    this.snd.sendRaw(tcp.RST | tcp.ACK, 0, this.rcv.nxt);
    this.enterClosed();
  }

  /**
   * Active open (port forwarding into the guest): sends our SYN with MSS,
   * window scale, SACK-permitted and timestamps as configured.
   * @param isn our initial sequence number (random)
   * @param now current time (ms)
   */
  connect(isn: number, now: number): void {
    this.now = now;
    this.role = ROLE_ACTIVE;
    this.hs.activeOpen(isn, now, this.cfg.connectTimeout);
  }

  /**
   * Readiness probe: SYN; SYN-ACK → onProbe(PROBE_OPEN) + RST; RST →
   * PROBE_CLOSED; nothing within `timeout` ms → PROBE_TIMEOUT. onClosed follows.
   */
  probe(isn: number, now: number, timeout: number): void {
    this.now = now;
    this.role = ROLE_PROBE;
    this.hs.activeOpen(isn, now, timeout);
  }

  /** A new send sequence space from our ISN (engine-internal: handshake.ts). */
  initSend(isn: number, now: number): void {
    isn |= 0;
    this.iss = isn;
    this.sndUna = isn;
    this.sndNxt = isn;
    this.sndMax = isn;
    this.rec.init(isn);
    this.snd.init(isn);
    this.lastActivity = Math.floor(now);
  }

  /** Handshake complete: congestion state, timers, queued FIN (engine-internal). */
  becomeEstablished(now: number): void {
    this.rec.onEstablished(this.retries > 0);
    this.retries = 0;
    this.rtoAt = OFF;
    this.hs.connectAt = OFF;
    this.lastActivity = Math.floor(now);
    this.state = this.finQueued ? FIN_WAIT_1 : ESTABLISHED;
  }

  // ------------------------------------------------------------------ app side

  #canWrite(): boolean {
    const s = this.state;
    return !this.finQueued && (s === ESTABLISHED || s === CLOSE_WAIT || s === SYN_SENT || s === SYN_RECEIVED);
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
    this.now = now;
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
    this.now = now;
    if (!this.#canWrite() || !this.sndBuf.commitLent(region, n)) return false;
    this.#wrote(n, now);
    return true;
  }

  #wrote(n: number, now: number): void {
    if (n <= 0) return;
    this.lastActivity = Math.floor(now);
    this.#trimAt = OFF;
    if (this.state !== SYN_SENT && this.state !== SYN_RECEIVED) this.snd.flush(now);
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
    return this.rcv.buf.peek(dst, dstOff, len);
  }

  /**
   * Marks `n` readable bytes as consumed, opening the receive window (a window
   * update is sent when it opens enough, RFC 9293 §3.8.6.2.2).
   * @returns bytes consumed
   */
  consume(n: number, now: number): number {
    this.now = now;
    const k = this.rcv.buf.consume(n);
    if (k > 0) {
      this.lastActivity = Math.floor(now);
      if (this.state === CLOSED) this.rcv.buf.release(); // no timers any more: free at once once read
      else if (this.rcv.buf.readable === 0) this.armTrim(now); // the ring, even while out-of-order pages stay
      this.#maybeWindowUpdate(now);
    }
    return k;
  }

  /**
   * Lends readable bytes without copying (see RecvBuffer.view): at most `len`
   * from `offset` bytes past the read head, up to the ring's end. Valid until
   * `consume`d; the window stays closed for them until then.
   */
  peekView(offset: number, len: number): Uint8Array {
    return this.rcv.buf.view(offset, len);
  }

  /** peek + consume. @returns bytes read */
  read(dst: Uint8Array, dstOff: number, len: number, now: number): number {
    const n = this.rcv.buf.peek(dst, dstOff, len);
    return this.consume(n, now);
  }

  /**
   * Half-close (RFC 9293 §3.10.4 CLOSE): our FIN goes out after the queued
   * data; we keep receiving until the peer's FIN.
   */
  shutdownWrite(now: number): void {
    this.now = now;
    if (this.finQueued) return;
    const s = this.state;
    if (s !== ESTABLISHED && s !== CLOSE_WAIT && s !== SYN_SENT && s !== SYN_RECEIVED) return;
    this.finQueued = true;
    this.lastActivity = Math.floor(now);
    if (s === ESTABLISHED) this.state = FIN_WAIT_1;
    else if (s === CLOSE_WAIT) this.state = LAST_ACK;
    else return; // transitions when the handshake completes
    this.snd.flush(now);
  }

  /**
   * Reset by the app (RFC 9293 §3.10.5 ABORT): RST to the peer when
   * synchronized (or RST|ACK for an unanswered SYN), then CLOSED. onReset is
   * not called (the app asked for it); onClosed is.
   */
  abort(_now: number): void {
    const s = this.state;
    if (s === CLOSED) return;
    if (s === SYN_RECEIVED && !this.hs.accepted) this.snd.sendRaw(tcp.RST | tcp.ACK, 0, this.rcv.nxt);
    else if (s !== SYN_SENT && s !== TIME_WAIT) this.snd.sendRaw(tcp.RST | tcp.ACK, this.snd.acceptableSeq(), this.rcv.nxt);
    this.enterClosed();
  }

  /**
   * The end of a batch of segments delivered by `onSegment` (with
   * `cfg.ackBatch`): sends the every-second-segment ACK the batch left owed
   * (receiver.ts, "ACKs"); a lone segment's delayed ACK keeps its timer.
   */
  endBatch(now: number): void {
    this.now = now;
    if (this.rcv.ackPending >= ACK_SECOND) this.snd.sendAck();
  }

  /**
   * Sends what the windows allow now: the owner calls this when the link
   * toward the peer has drained after `out.linkBlocked` held data back.
   */
  flush(now: number): void {
    this.now = now;
    this.snd.flush(now);
  }

  /**
   * The owner forgets this connection, in whatever state: frees every buffer
   * (unread bytes too) and gives its budget account back, quietly — no
   * segment, no event; abort() first to reset the peer. Idempotent; the
   * connection is CLOSED and takes no input afterwards.
   */
  dispose(): void {
    this.#toClosed();
    this.rcv.buf.dispose();
    this.#account?.release();
    this.#account = null;
  }

  // ------------------------------------------------------------------ timers

  /** The earliest deadline (absolute ms), or Infinity. */
  nextTimeout(): number {
    if (this.state === CLOSED) return Infinity;
    const rec = this.rec;
    const t = earlier(earlier(earlier(this.rtoAt, rec.tlpAt), earlier(rec.reoAt, this.snd.persistAt)), earlier(earlier(this.rcv.ackAt, this.#twAt), earlier(this.hs.connectAt, this.#trimAt)));
    let u = this.snd.stallAt();
    if (this.state !== TIME_WAIT) u = Math.min(u, this.lastActivity + this.cfg.idleTimeout);
    return t < 0 || u < t ? u : t;
  }

  /** Runs every timer whose deadline is <= now. */
  onTimer(now: number): void {
    this.now = now;
    if (this.state === CLOSED) return;
    if (due(this.#twAt, now)) {
      this.enterClosed();
      return;
    }
    if (due(this.hs.connectAt, now)) {
      this.hs.connectAt = OFF;
      if (this.state === SYN_SENT || (this.state === SYN_RECEIVED && this.role !== ROLE_PASSIVE)) {
        this.#giveUp(false);
        return;
      }
    }
    if (this.state !== TIME_WAIT && now >= this.lastActivity + this.cfg.idleTimeout) {
      this.#resetPeer(RESET_IDLE);
      return;
    }
    if (now >= this.snd.stallAt()) {
      this.#giveUp(true);
      return;
    }
    if (due(this.rtoAt, now)) {
      const r = this.snd.onRto(now);
      if (r !== RTO_GO_ON) {
        this.#giveUp(r === RTO_GIVE_UP_RST);
        return;
      }
    }
    this.rec.onTimer(now);
    if (due(this.snd.persistAt, now) && !this.snd.onPersist(now)) {
      this.#giveUp(true);
      return;
    }
    if (due(this.rcv.ackAt, now)) this.snd.sendAck();
    if (due(this.#trimAt, now)) {
      this.#trimAt = OFF;
      this.sndBuf.release();
      this.rcv.buf.release();
      this.rec.release();
    }
  }

  /** Frees idle buffer storage and the SACK machinery `bufferLinger` ms from now (engine-internal). */
  armTrim(now: number): void {
    if (this.#trimAt === OFF && (this.sndBuf.capacity + this.rcv.buf.capacity > 0 || this.rec.allocated)) this.#trimAt = after(now, this.cfg.bufferLinger);
  }

  /** Retransmissions exhausted / connect timed out. */
  #giveUp(sendRst: boolean): void {
    if (this.role === ROLE_PROBE && this.state === SYN_SENT) {
      this.events.onProbe(this, PROBE_TIMEOUT);
      this.enterClosed();
      return;
    }
    if (sendRst) this.snd.sendRaw(tcp.RST | tcp.ACK, this.snd.acceptableSeq(), this.rcv.nxt);
    this.events.onReset(this, RESET_TIMEOUT);
    this.enterClosed();
  }

  /** RST to the peer and onReset(reason) to the app. */
  #resetPeer(reason: number): void {
    const s = this.state;
    if (s === SYN_RECEIVED && !this.hs.accepted) this.snd.sendRaw(tcp.RST | tcp.ACK, 0, this.rcv.nxt);
    else if (s !== SYN_SENT) this.snd.sendRaw(tcp.RST | tcp.ACK, this.snd.acceptableSeq(), this.rcv.nxt);
    this.events.onReset(this, reason);
    this.enterClosed();
  }

  /** CLOSED: every timer off, send buffer freed, onClosed once (engine-internal). */
  enterClosed(): void {
    this.#toClosed();
    this.rcv.buf.dropOoo(); // no hole will be filled now
    this.rcv.buf.release();
    if (!this.#closedFired) {
      this.#closedFired = true;
      this.events.onClosed(this);
    }
  }

  /** State CLOSED, every timer off, the send buffer emptied and freed. */
  #toClosed(): void {
    this.state = CLOSED;
    this.#stopTimers();
    this.#twAt = OFF;
    this.hs.connectAt = OFF;
    this.sndBuf.drop(this.sndBuf.length);
    this.sndBuf.release();
    this.rec.close();
  }

  /** TIME-WAIT for `timeWait` ms (engine-internal). */
  enterTimeWait(now: number): void {
    this.state = TIME_WAIT;
    this.#stopTimers();
    this.sndBuf.release();
    this.#twAt = after(now, this.cfg.timeWait);
  }

  /** Stops the data-path timers (close, TIME-WAIT). */
  #stopTimers(): void {
    this.rtoAt = OFF;
    this.rec.stopTimers();
    this.snd.stopPersist();
    this.rcv.ackAt = OFF;
    this.#trimAt = OFF;
  }

  // ------------------------------------------------------------------ input

  /**
   * Processes one segment from the peer (RFC 9293 §3.10.7). The caller has
   * validated it (`tcp.parse`, checksum) and matched it to this connection.
   * @param h the parsed header (its sequence numbers are turned signed in
   *   place, see `toSigned`)
   * @param bytes the buffer holding the segment; payload at h.payloadOffset
   * @param now current time (ms)
   */
  onSegment(h: tcp.Header, bytes: Uint8Array, now: number): void {
    toSigned(h);
    this.now = now;
    const s = this.state;
    if (s === CLOSED) return;
    if (s === SYN_SENT) {
      this.hs.onSynSent(h, now);
      return;
    }
    const f = h.flags;
    if (s === SYN_RECEIVED) {
      if (!this.hs.accepted) {
        // Still dialing the host: only a RST for the pending SYN matters.
        if ((f & tcp.RST) !== 0 && h.seq === this.rcv.nxt) {
          this.events.onReset(this, RESET_REMOTE);
          this.enterClosed();
        }
        return;
      }
      if ((f & tcp.SYN) !== 0 && (f & tcp.ACK) === 0 && h.seq === this.rcv.irs) {
        this.hs.sendSyn(now); // retransmitted SYN: repeat the SYN-ACK
        return;
      }
    }

    // First: sequence number acceptability (RFC 9293 §3.10.7.4, table).
    const segLen = h.payloadLength + (f & tcp.SYN ? 1 : 0) + (f & tcp.FIN ? 1 : 0);
    if (!this.rcv.acceptable(h, segLen)) {
      if ((f & tcp.RST) === 0) {
        if (s === TIME_WAIT && (f & tcp.FIN) !== 0) this.#twAt = after(now, this.cfg.timeWait);
        // A keepalive (or the peer's zero-window probe): SEQ = RCV.NXT-1 with 0 or 1 byte
        // (RFC 9293 §3.8.4). Answered like any unacceptable segment, and it is activity.
        if (h.seq === seq.add(this.rcv.nxt, -1) && h.payloadLength <= 1 && (f & (tcp.SYN | tcp.FIN)) === 0) this.lastActivity = Math.floor(now);
        if ((f & tcp.ACK) !== 0) this.snd.notePeerAck(h.ack); // so that our answer is acceptable to it
        this.snd.sendAck();
      }
      return;
    }
    this.lastActivity = Math.floor(now);

    // Second: RST (RFC 5961 §3.2).
    if ((f & tcp.RST) !== 0) {
      if (h.seq === this.rcv.nxt) {
        if (s !== TIME_WAIT && s !== LAST_ACK && s !== CLOSING) this.events.onReset(this, RESET_REMOTE);
        this.enterClosed();
      } else {
        this.snd.sendAck(); // challenge ACK
      }
      return;
    }

    if (this.tsOk) this.rcv.updateTsRecent(h);

    // Fourth: SYN in a synchronized state → challenge ACK (RFC 5961 §4.2).
    if ((f & tcp.SYN) !== 0) {
      this.snd.sendAck();
      return;
    }

    // Fifth: ACK.
    if ((f & tcp.ACK) === 0) return;
    let established = false;
    if (s === SYN_RECEIVED) {
      if (!(seq.lt(this.sndUna, h.ack) && seq.le(h.ack, this.sndMax))) {
        this.snd.sendRaw(tcp.RST, h.ack, 0);
        return;
      }
      this.becomeEstablished(now);
      this.sndWnd = h.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = h.seq | 0;
      this.sndWl2 = h.ack | 0;
      established = true;
    }
    if (!this.snd.onAck(h, now)) return;
    if (this.state === CLOSED) return;

    // Seventh: segment text; eighth: FIN.
    let newData = false;
    let finNow = false;
    const st = this.state;
    if (st === ESTABLISHED || st === FIN_WAIT_1 || st === FIN_WAIT_2) {
      const r = this.rcv.text(h, bytes);
      if ((r & TEXT_STORED) !== 0) this.#trimAt = OFF;
      newData = (r & TEXT_DATA) !== 0;
      finNow = (r & TEXT_FIN) !== 0;
      if (finNow) {
        if (st === ESTABLISHED) this.state = CLOSE_WAIT; // its ACK may wait for our FIN (receiver.ts)
        else {
          this.rcv.ackPending = ACK_NOW;
          if (st === FIN_WAIT_1) this.state = CLOSING;
          else this.enterTimeWait(now);
        }
      }
    } else if (st === TIME_WAIT && (f & tcp.FIN) !== 0) {
      this.#twAt = after(now, this.cfg.timeWait);
      this.snd.sendAck();
    }

    // Output: data first (piggybacks the ACK), then any ACK still owed.
    this.snd.flush(now);
    if (this.rcv.ackNow(now)) this.snd.sendAck();

    // Events last, so handlers see a consistent connection.
    if (established) this.events.onEstablished(this);
    if (newData && this.state !== CLOSED) this.events.onData(this);
    if (finNow && this.state !== CLOSED) this.events.onRemoteFin(this);
    this.#notifyWritable();
  }

  /** Sends a window update when the app freed enough space (§3.8.6.2.2), or owes it as a delayed ACK (receiver.ts). */
  #maybeWindowUpdate(now: number): void {
    const s = this.state;
    if (s !== ESTABLISHED && s !== FIN_WAIT_1 && s !== FIN_WAIT_2) return;
    if (this.rcv.wantsWindowUpdate() && !this.rcv.deferWindowUpdate(now)) this.snd.sendAck();
  }

  #notifyWritable(): void {
    if (this.#wantWritable && this.sndBuf.length <= this.sndBuf.limit >>> 1 && this.#canWrite()) {
      this.#wantWritable = false;
      this.events.onWritable(this);
    }
  }
}
