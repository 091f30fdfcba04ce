/**
 * Theory of operation: the vocabulary shared by the TCP engine and its owner
 * (see conn.ts for the engine itself).
 *
 * - Numeric constants for states (RFC 9293 §3.3.2), reset reasons, probe
 *   results and roles: plain numbers, cheap to compare and store; the
 *   STATE_NAMES table turns a state into text for logs.
 * - `TcpConfig`: every tunable with its default and the reason for it. One
 *   resolved object is shared by all connections of a gateway, so a
 *   connection stores a pointer, not a copy.
 * - The two interfaces a connection talks through: `TcpOutput` (segments out,
 *   payload copied once from the send buffer into the frame) and `TcpEvents`
 *   (notifications). Both receive the connection as first argument, so one
 *   object can serve every connection without a closure per flow.
 */
import type * as tcp from '../wire/tcp.js';
import type { TcpBudget } from './budget.js';
import type { TcpConn } from './conn.js';
import type { SendBuffer } from './send-buffer.js';

/** States (RFC 9293 §3.3.2). LISTEN does not exist: passive connections start in SYN-RECEIVED. */
export const CLOSED = 0;
export const SYN_SENT = 1;
export const SYN_RECEIVED = 2;
export const ESTABLISHED = 3;
export const FIN_WAIT_1 = 4;
export const FIN_WAIT_2 = 5;
export const CLOSE_WAIT = 6;
export const CLOSING = 7;
export const LAST_ACK = 8;
export const TIME_WAIT = 9;
/** State names for logs, indexed by state. */
export const STATE_NAMES: readonly string[] = [
  'CLOSED',
  'SYN-SENT',
  'SYN-RECEIVED',
  'ESTABLISHED',
  'FIN-WAIT-1',
  'FIN-WAIT-2',
  'CLOSE-WAIT',
  'CLOSING',
  'LAST-ACK',
  'TIME-WAIT',
];

/** Reset reasons given to `onReset`. */
/** The peer sent an acceptable RST. */
export const RESET_REMOTE = 1;
/** The peer refused our SYN (RST in SYN-SENT). */
export const RESET_REFUSED = 2;
/** No progress: retries, `userTimeout` or `zeroWindowTimeout` exhausted; or connect timed out. */
export const RESET_TIMEOUT = 3;
/** No activity for `idleTimeout` ms; we sent RST to the peer. */
export const RESET_IDLE = 4;

/** Probe results given to `onProbe`. */
export const PROBE_OPEN = 1;
export const PROBE_CLOSED = 2;
export const PROBE_TIMEOUT = 3;

/** Connection roles. */
export const ROLE_PASSIVE = 0;
export const ROLE_ACTIVE = 1;
export const ROLE_PROBE = 2;

/** Tunables, shared by many connections (resolve once with `tcpConfig`). */
export interface TcpConfig {
  /** Link MTU; our MSS is mtu - 40 (RFC 9293 §3.7.1, IPv4 without options). */
  mtu: number;
  /** Send buffer bound in bytes (backpressure threshold for `write`). */
  sndBufMax: number;
  /** Receive buffer bound in bytes (largest window we advertise). */
  rcvBufMax: number;
  /** Offer/accept SACK (RFC 2018). */
  sack: boolean;
  /** Offer/accept timestamps (RFC 7323 §3). */
  timestamps: boolean;
  /** Offer/accept window scaling (RFC 7323 §2). */
  windowScaling: boolean;
  /** TIME-WAIT duration (2×MSL) in ms. */
  timeWait: number;
  /**
   * Reset a connection idle this long (ms): no acceptable segment, keepalive
   * or app activity. Default 2 h 4 min, the least RFC 5382 REQ-5 allows
   * ("established connection idle-timeout"); Infinity disables.
   */
  idleTimeout: number;
  /** Delayed-ACK timeout in ms; 0 acknowledges every segment immediately. */
  ackDelay: number;
  /**
   * The owner calls `TcpConn.endBatch` after each batch of segments it
   * delivered (one read from the link): the every-second-segment ACK then
   * goes out once, at the batch's end (receiver.ts). Default false.
   */
  ackBatch: boolean;
  /**
   * Consecutive retransmission timeouts (and zero-window probes that got no
   * answer) before giving up (established). Only an ACK of new data refills
   * the budget; duplicate ACKs and probe answers do not.
   */
  maxRetries: number;
  /**
   * Give up (RST both ways) when data or our FIN has been outstanding this
   * long (ms) without an ACK of anything new: the user timeout of RFC 9293
   * §3.8.3 / RFC 5482, whichever of it and `maxRetries` comes first. Default
   * 5 min, RFC 793's global default; from a 200 ms RTO `maxRetries` = 10
   * expiries take about 3.7 min.
   */
  userTimeout: number;
  /**
   * Give up (RST both ways) when the peer's window has stayed zero this long
   * (ms) from our first zero-window probe while it keeps answering them:
   * a reader that stopped for good. Default 30 min: a stopped job survives a
   * coffee break; the memory it pins meanwhile is bounded by the buffer
   * budget, and an idle connection may live 2 h 4 min anyway.
   */
  zeroWindowTimeout: number;
  /** SYN / SYN-ACK retransmissions before giving up. */
  synRetries: number;
  /** Active open: give up after this many ms without SYN-ACK; Infinity disables. */
  connectTimeout: number;
  /** RTO before any RTT sample (RFC 6298 §2.1). */
  initialRto: number;
  /** Lower RTO clamp (see rto.ts for why 200 ms). */
  minRto: number;
  /** Upper RTO clamp; also caps the persist backoff. */
  maxRto: number;
  /** Free empty buffers after this many ms. */
  bufferLinger: number;
  /**
   * The memory budget the connections' buffers charge, shared by a gateway
   * (budget.ts; each connection charges the account of the owner key it was
   * made with); null: buffers are bounded by sndBufMax/rcvBufMax only.
   */
  budget: TcpBudget | null;
}

/** The defaults (documented in the file comment and on each field). */
export const DEFAULTS: Readonly<TcpConfig> = Object.freeze({
  mtu: 1500,
  sndBufMax: 256 * 1024,
  rcvBufMax: 256 * 1024,
  sack: true,
  timestamps: true,
  windowScaling: true,
  timeWait: 2000,
  idleTimeout: (2 * 60 + 4) * 60_000,
  ackDelay: 40,
  ackBatch: false,
  maxRetries: 10,
  userTimeout: 5 * 60_000,
  zeroWindowTimeout: 30 * 60_000,
  synRetries: 5,
  connectTimeout: 30000,
  initialRto: 1000,
  minRto: 200,
  maxRto: 60000,
  bufferLinger: 1000,
  budget: null,
});

/** A full configuration from the defaults plus overrides. */
export function tcpConfig(over: Partial<TcpConfig> = {}): TcpConfig {
  return { ...DEFAULTS, ...over };
}

/**
 * Where segments go. Called synchronously; `h` and the bytes behind `data`
 * are only valid during the call.
 */
export interface TcpOutput {
  /**
   * Transmit one segment to the peer.
   * @param conn the connection sending
   * @param h header to emit with `tcp.emit` (ports, seq, ack, flags, window
   *   as on the wire, options, payloadLength; checksum 0)
   * @param data the send buffer holding the payload
   * @param dataOffset payload start within `data` (bytes after SND.UNA):
   *   `data.copyOut(dataOffset, h.payloadLength, frame, pos)`
   */
  segment(conn: TcpConn, h: tcp.Header, data: SendBuffer, dataOffset: number): void;
  /**
   * True while the link toward the peer is congested: the connection then
   * sends no new data (ACKs and retransmissions still go out) until the owner
   * calls `flush` once the link drains.
   */
  linkBlocked(conn: TcpConn): boolean;
}

/** Notifications to the owner (the gateway's relay). */
export interface TcpEvents {
  /** The handshake completed. */
  onEstablished(conn: TcpConn): void;
  /** New in-order bytes are readable (`conn.readable`). */
  onData(conn: TcpConn): void;
  /** The peer closed its sending side (FIN, in order after all its data). */
  onRemoteFin(conn: TcpConn): void;
  /** The send buffer drained below half after a short `write`. */
  onWritable(conn: TcpConn): void;
  /** The connection was reset (RESET_*); `onClosed` follows. */
  onReset(conn: TcpConn, reason: number): void;
  /** The connection reached CLOSED; called exactly once. Unread data stays readable. */
  onClosed(conn: TcpConn): void;
  /** Result of `probe()` (PROBE_*); `onClosed` follows. */
  onProbe(conn: TcpConn, result: number): void;
}
