/**
 * Theory of operation: ICMP for IPv4 (RFC 792), the subset a user-mode
 * gateway speaks: echo request/reply (ping), destination unreachable (net,
 * host, protocol, port, fragmentation needed with the next-hop MTU of
 * RFC 1191 §4) and time exceeded.
 *
 *   type(1) code(1) checksum(2) rest(4) data...
 *   echo:          rest = id(2) seq(2), data = echoed payload
 *   unreachable:   rest = unused(2) next-hop MTU(2), data = quoted datagram
 *   time exceeded: rest = unused(4),                 data = quoted datagram
 *
 * The checksum covers the whole ICMP message (RFC 792 "Echo or Echo Reply
 * Message"), so `parse` takes the message length (the IPv4 payload length) and
 * verifies it, and every emitter writes the checksum last, over bytes that
 * must already be in place. That is why `length()` here is the whole message
 * (8 + payloadLength), not just the header: the emitter finalises all of it.
 *
 * Header mapping of the 4 "rest" bytes: for type 3 they are read into `mtu`
 * (the low 16 bits; `id` and `seq` are 0); for every other type they are read
 * as `id` and `seq` (meaningful for echo; opaque raw bytes otherwise, which
 * keeps the round trip lossless).
 *
 * Errors quote the offending datagram's IP header and the first 8 bytes of its
 * payload (RFC 792; RFC 1812 §4.3.2.3 allows more, vmnet quotes the minimum,
 * which is what the guest's socket layer needs to match the error to a flow).
 * Whether an error may be sent at all (never about an ICMP error, a fragment
 * other than the first, or a broadcast: RFC 1122 §3.2.2) is the caller's call.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */
import { finish, ok, rewrite16, sum } from './checksum.js';

/** Length of the ICMP header (type, code, checksum, rest). */
export const HEADER_LEN = 8;
/** Bytes of the offending datagram's payload quoted after its IP header. */
export const QUOTE_DATA_LEN = 8;

/** Type: echo reply. */
export const TYPE_ECHO_REPLY = 0;
/** Type: destination unreachable. */
export const TYPE_DEST_UNREACH = 3;
/** Type: echo request. */
export const TYPE_ECHO_REQUEST = 8;
/** Type: time exceeded. */
export const TYPE_TIME_EXCEEDED = 11;

/** Destination unreachable code: net unreachable. */
export const CODE_NET_UNREACH = 0;
/** Destination unreachable code: host unreachable. */
export const CODE_HOST_UNREACH = 1;
/** Destination unreachable code: protocol unreachable. */
export const CODE_PROTO_UNREACH = 2;
/** Destination unreachable code: port unreachable. */
export const CODE_PORT_UNREACH = 3;
/** Destination unreachable code: fragmentation needed and DF set (RFC 1191). */
export const CODE_FRAG_NEEDED = 4;
/** Destination unreachable code: communication administratively prohibited (RFC 1812 §5.2.7.1). */
export const CODE_ADMIN_PROHIBITED = 13;
/** Time exceeded code: TTL exceeded in transit. */
export const CODE_TTL_EXCEEDED = 0;
/** Time exceeded code: fragment reassembly time exceeded. */
export const CODE_REASSEMBLY_EXCEEDED = 1;

/** Offset of the type byte. */
export const TYPE = 0;
/** Offset of the code byte. */
export const CODE = 1;
/** Offset of the checksum. */
export const CHECKSUM = 2;
/** Offset of the echo identifier. */
export const ECHO_ID = 4;
/** Offset of the echo sequence number. */
export const ECHO_SEQ = 6;
/** Offset of the next-hop MTU (destination unreachable). */
export const NEXT_HOP_MTU = 6;

/** A decoded ICMP message header. */
export interface Header {
  /** Message type (TYPE_*). */
  type: number;
  /** Message code (CODE_*). */
  code: number;
  /** Echo identifier (bytes 4..6 for every type except 3; else 0). */
  id: number;
  /** Echo sequence number (bytes 6..8 for every type except 3; else 0). */
  seq: number;
  /** Next-hop MTU for type 3 (bytes 6..8; meaningful with code 4); else 0. */
  mtu: number;
  /** Parse output: absolute offset of the data after the 8-byte header. */
  payloadOffset: number;
  /** Bytes of data after the header (echo payload or quoted datagram). */
  payloadLength: number;
}

/** A header with every field initialised (an empty echo request). */
export function blank(): Header {
  return { type: TYPE_ECHO_REQUEST, code: 0, id: 0, seq: 0, mtu: 0, payloadOffset: 0, payloadLength: 0 };
}

/** The type byte. The message must be at least 8 bytes. */
export const type = (v: DataView, o: number): number => v.getUint8(o + TYPE);
/** The code byte. The message must be at least 8 bytes. */
export const code = (v: DataView, o: number): number => v.getUint8(o + CODE);
/** The echo identifier. The message must be at least 8 bytes. */
export const echoId = (v: DataView, o: number): number => v.getUint16(o + ECHO_ID);
/** The echo sequence number. The message must be at least 8 bytes. */
export const echoSeq = (v: DataView, o: number): number => v.getUint16(o + ECHO_SEQ);

/**
 * Decodes an ICMP message and verifies its checksum over all `len` bytes
 * (RFC 792).
 * @param v the buffer's DataView
 * @param o offset of the message (the IPv4 payload)
 * @param len the message length (IPv4 payloadLength, not the frame length)
 * @param out reused header to fill
 * @returns false when shorter than 8 bytes or the checksum is wrong
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  if (!ok(sum(v, o, len))) return false;
  const t = v.getUint8(o + TYPE);
  out.type = t;
  out.code = v.getUint8(o + CODE);
  if (t === TYPE_DEST_UNREACH) {
    out.id = 0;
    out.seq = 0;
    out.mtu = v.getUint16(o + NEXT_HOP_MTU);
  } else {
    out.id = v.getUint16(o + ECHO_ID);
    out.seq = v.getUint16(o + ECHO_SEQ);
    out.mtu = 0;
  }
  out.payloadOffset = o + HEADER_LEN;
  out.payloadLength = len - HEADER_LEN;
  return true;
}

/**
 * The whole message length: 8 + `h.payloadLength`.
 * @param h the header
 */
export function length(h: Header): number {
  return HEADER_LEN + h.payloadLength;
}

/**
 * Writes the 8-byte header and the checksum over header and the
 * `h.payloadLength` data bytes, which must already be at `o + 8` (RFC 792).
 * For type 3 the rest word is 0 and `mtu`; otherwise `id` and `seq`.
 * @param h the header
 * @param v the buffer's DataView, with room for `length(h)` bytes
 * @param o offset to write at
 * @returns the message length (`length(h)`)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint8(o + TYPE, h.type);
  v.setUint8(o + CODE, h.code);
  v.setUint16(o + CHECKSUM, 0);
  if (h.type === TYPE_DEST_UNREACH) {
    v.setUint16(o + 4, 0);
    v.setUint16(o + NEXT_HOP_MTU, h.mtu);
  } else {
    v.setUint16(o + ECHO_ID, h.id);
    v.setUint16(o + ECHO_SEQ, h.seq);
  }
  const n = HEADER_LEN + h.payloadLength;
  v.setUint16(o + CHECKSUM, finish(sum(v, o, n)));
  return n;
}

/**
 * Length of an echo message with `payloadLength` data bytes.
 * @param payloadLength echo data length
 */
export function echoLength(payloadLength: number): number {
  return HEADER_LEN + payloadLength;
}

/**
 * Writes an echo request or reply header and the checksum; the echo data
 * (`payloadLength` bytes) must already be at `o + 8` (RFC 792 "Echo or Echo
 * Reply Message").
 * @param type TYPE_ECHO_REQUEST or TYPE_ECHO_REPLY
 * @param id identifier
 * @param seq sequence number
 * @param v the buffer's DataView
 * @param o offset to write at
 * @param payloadLength bytes of echo data following the header
 * @returns the message length (8 + payloadLength)
 */
export function emitEcho(type: number, id: number, seq: number, v: DataView, o: number, payloadLength: number): number {
  v.setUint8(o + TYPE, type);
  v.setUint8(o + CODE, 0);
  v.setUint16(o + CHECKSUM, 0);
  v.setUint16(o + ECHO_ID, id);
  v.setUint16(o + ECHO_SEQ, seq);
  const n = HEADER_LEN + payloadLength;
  v.setUint16(o + CHECKSUM, finish(sum(v, o, n)));
  return n;
}

/**
 * Turns a verified echo request into an echo reply in place: type 8 → 0 and
 * an RFC 1624 incremental checksum update, so the payload is not re-summed
 * (RFC 792: "the type code changed to 0, and the checksum recomputed"). The
 * caller swaps the IP addresses.
 * @param v the buffer's DataView
 * @param o offset of the ICMP message (already parsed as an echo request)
 */
export function toEchoReply(v: DataView, o: number): void {
  rewrite16(v, o + TYPE, o + CHECKSUM, (TYPE_ECHO_REPLY << 8) | v.getUint8(o + CODE));
}

/**
 * How many bytes of an offending datagram an error message quotes: its IP
 * header plus the first 8 payload bytes (RFC 792), clamped to its total length
 * and to the bytes available.
 * @param q DataView holding the offending IPv4 datagram
 * @param qo offset of its IP header
 * @param qlen bytes available from `qo`
 */
export function quoteLength(q: DataView, qo: number, qlen: number): number {
  if (qlen <= 0) return 0;
  let n = ((q.getUint8(qo) & 0x0f) << 2) + QUOTE_DATA_LEN;
  if (qlen >= 4) n = Math.min(n, q.getUint16(qo + 2));
  return Math.min(n, qlen);
}

/**
 * Length of the error message `emitError` writes for this datagram.
 * @param q DataView holding the offending IPv4 datagram
 * @param qo offset of its IP header
 * @param qlen bytes available from `qo`
 */
export function errorLength(q: DataView, qo: number, qlen: number): number {
  return HEADER_LEN + quoteLength(q, qo, qlen);
}

/**
 * Writes an ICMP error (destination unreachable, time exceeded): the header,
 * the quoted IP header + first 8 payload bytes of the offending datagram
 * (RFC 792, RFC 1812 §4.3.2.3), and the checksum. The quoted bytes are copied
 * with memmove semantics, so source and destination may share a buffer.
 * @param type TYPE_DEST_UNREACH or TYPE_TIME_EXCEEDED
 * @param code e.g. CODE_PORT_UNREACH, CODE_FRAG_NEEDED, CODE_TTL_EXCEEDED
 * @param v the destination buffer's DataView, with room for `errorLength(...)`
 * @param o offset to write the ICMP message at
 * @param q DataView holding the offending IPv4 datagram
 * @param qo offset of its IP header
 * @param qlen bytes available from `qo` (pass the IP total length if known)
 * @param mtu next-hop MTU for CODE_FRAG_NEEDED (RFC 1191 §4); else 0
 * @returns the message length (8 + quoted bytes)
 */
export function emitError(
  type: number,
  code: number,
  v: DataView,
  o: number,
  q: DataView,
  qo: number,
  qlen: number,
  mtu = 0,
): number {
  const n = quoteLength(q, qo, qlen);
  const to = o + HEADER_LEN;
  if (v.buffer === q.buffer && v.byteOffset + to > q.byteOffset + qo) {
    for (let i = n - 1; i >= 0; i--) v.setUint8(to + i, q.getUint8(qo + i));
  } else {
    for (let i = 0; i < n; i++) v.setUint8(to + i, q.getUint8(qo + i));
  }
  v.setUint8(o + TYPE, type);
  v.setUint8(o + CODE, code);
  v.setUint16(o + CHECKSUM, 0);
  v.setUint16(o + 4, 0);
  v.setUint16(o + NEXT_HOP_MTU, type === TYPE_DEST_UNREACH ? mtu : 0);
  const total = HEADER_LEN + n;
  v.setUint16(o + CHECKSUM, finish(sum(v, o, total)));
  return total;
}
