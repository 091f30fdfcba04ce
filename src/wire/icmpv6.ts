/**
 * Theory of operation: ICMPv6 (RFC 4443), the message header every ICMPv6
 * type shares, echo, and the four error messages a router sends. Neighbour
 * Discovery (types 133-137) has its own codec over this header: ndp.ts.
 *
 *   type(1) code(1) checksum(2) body(4) data...            (RFC 4443 §2.1)
 *   echo (§4.1, §4.2):         body = id(2) seq(2), data = echoed bytes
 *   destination unreachable (§3.1), time exceeded (§3.3):
 *                              body = unused(4),  data = invoking packet
 *   packet too big (§3.2):     body = MTU(4),     data = invoking packet
 *   parameter problem (§3.4):  body = pointer(4), data = invoking packet
 *
 * The checksum covers the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1)
 * and the whole message, so, as for UDP and TCP, `parse` only decodes and
 * checks the length; `verify` checks the checksum with the addresses, and
 * emitting is `emit` (header as given) then `fillChecksum`. The dedicated
 * emitters (`emitEcho`, `emitError`) write the checksum themselves and take
 * the addresses. Turning an echo request into a reply in place (`toEchoReply`)
 * patches the checksum incrementally (RFC 1624 §3): swapping source and
 * destination leaves the pseudo-header sum unchanged; when the reply's source
 * is not the request's destination (a request to a multicast address),
 * recompute with `fillChecksum` instead.
 *
 * The 4 body bytes are decoded by type: `mtu` for Packet Too Big, `pointer`
 * for Parameter Problem, `id` and `seq` for every other type (opaque for the
 * ones without them, which keeps the round trip lossless); fields that do not
 * apply read 0.
 *
 * Errors quote as much of the invoking packet as fits without the error
 * exceeding the minimum IPv6 MTU, 1280 bytes (RFC 4443 §2.4(c)): at most
 * 1280 - 40 - 8 = 1232 bytes. Whether an error may be sent at all is decided
 * by `errorAllowed` (RFC 4443 §2.4(e)); rate limiting (§2.4(f)) is the
 * caller's.
 *
 * Pure: no I/O, no Node runtime imports; no allocation except two small
 * views in `emitError`.
 */
import { isMulticast6, isUnspecified6, type Ip6 } from './addr.js';
import { fillWith, pseudo6, rewrite16, verifyWith } from './checksum.js';
import { HEADER_LEN as IP6_HEADER_LEN, MIN_MTU, NH_ICMPV6 } from './ipv6.js';

/** Length of the ICMPv6 header: type, code, checksum and the 4 body bytes. */
export const HEADER_LEN = 8;
/** IPv6 Next Header value of ICMPv6 (for the pseudo-header). */
export const PROTO = NH_ICMPV6;
/** Most bytes of the invoking packet an error quotes (RFC 4443 §2.4(c)). */
export const MAX_QUOTE = MIN_MTU - IP6_HEADER_LEN - HEADER_LEN;

/** Type: destination unreachable (RFC 4443 §3.1). */
export const TYPE_DEST_UNREACH = 1;
/** Type: packet too big (RFC 4443 §3.2). */
export const TYPE_PACKET_TOO_BIG = 2;
/** Type: time exceeded (RFC 4443 §3.3). */
export const TYPE_TIME_EXCEEDED = 3;
/** Type: parameter problem (RFC 4443 §3.4). */
export const TYPE_PARAM_PROBLEM = 4;
/** Type: echo request (RFC 4443 §4.1). */
export const TYPE_ECHO_REQUEST = 128;
/** Type: echo reply (RFC 4443 §4.2). */
export const TYPE_ECHO_REPLY = 129;
/** Type: multicast listener query (RFC 2710 §3, RFC 3810 §5.1). */
export const TYPE_MLD_QUERY = 130;
/** Type: MLDv1 report (RFC 2710 §3). */
export const TYPE_MLD_REPORT = 131;
/** Type: MLDv1 done (RFC 2710 §3). */
export const TYPE_MLD_DONE = 132;
/** Type: router solicitation (RFC 4861 §4.1). */
export const TYPE_ROUTER_SOLICIT = 133;
/** Type: router advertisement (RFC 4861 §4.2). */
export const TYPE_ROUTER_ADVERT = 134;
/** Type: neighbor solicitation (RFC 4861 §4.3). */
export const TYPE_NEIGHBOR_SOLICIT = 135;
/** Type: neighbor advertisement (RFC 4861 §4.4). */
export const TYPE_NEIGHBOR_ADVERT = 136;
/** Type: redirect (RFC 4861 §4.5). */
export const TYPE_REDIRECT = 137;
/** Type: MLDv2 report (RFC 3810 §5.2). */
export const TYPE_MLD2_REPORT = 143;

/** Destination unreachable code: no route to destination. */
export const CODE_NO_ROUTE = 0;
/** Destination unreachable code: communication administratively prohibited. */
export const CODE_ADMIN_PROHIBITED = 1;
/** Destination unreachable code: beyond scope of source address. */
export const CODE_BEYOND_SCOPE = 2;
/** Destination unreachable code: address unreachable. */
export const CODE_ADDR_UNREACH = 3;
/** Destination unreachable code: port unreachable. */
export const CODE_PORT_UNREACH = 4;
/** Destination unreachable code: source address failed ingress/egress policy. */
export const CODE_POLICY_FAILED = 5;
/** Destination unreachable code: reject route to destination. */
export const CODE_REJECT_ROUTE = 6;
/** Time exceeded code: hop limit exceeded in transit. */
export const CODE_HOP_LIMIT = 0;
/** Time exceeded code: fragment reassembly time exceeded. */
export const CODE_REASSEMBLY = 1;
// Parameter problem codes: PROBLEM_* in ipv6.ts (the extension header walk reports them).

/** Offset of the type byte. */
export const TYPE = 0;
/** Offset of the code byte. */
export const CODE = 1;
/** Offset of the checksum. */
export const CHECKSUM = 2;
/** Offset of the 4 body bytes (echo id, MTU, pointer). */
export const BODY = 4;
/** Offset of the echo sequence number. */
export const ECHO_SEQ = 6;

/** A decoded ICMPv6 message header. */
export interface Header {
  /** Message type (TYPE_*). */
  type: number;
  /** Message code. */
  code: number;
  /** Checksum field as on the wire. */
  checksum: number;
  /** Echo identifier (body bytes 0-1 for every type except 2 and 4; else 0). */
  id: number;
  /** Echo sequence number (body bytes 2-3 for every type except 2 and 4; else 0). */
  seq: number;
  /** Packet Too Big: the next-hop MTU (u32); else 0. */
  mtu: number;
  /** Parameter Problem: offset of the error in the invoking packet (u32); else 0. */
  pointer: number;
  /** Parse output: absolute offset of the data after the 8-byte header. */
  payloadOffset: number;
  /** Bytes after the header (echo data, quoted packet, NDP fields). */
  payloadLength: number;
}

/** A header with every field initialised (an empty echo request). */
export function blank(): Header {
  return { type: TYPE_ECHO_REQUEST, code: 0, checksum: 0, id: 0, seq: 0, mtu: 0, pointer: 0, payloadOffset: 0, payloadLength: 0 };
}

/** The type byte. The message must be at least 4 bytes. */
export const type = (v: DataView, o: number): number => v.getUint8(o + TYPE);
/** The code byte. */
export const code = (v: DataView, o: number): number => v.getUint8(o + CODE);
/** The echo identifier. The message must be at least 8 bytes. */
export const echoId = (v: DataView, o: number): number => v.getUint16(o + BODY);
/** The echo sequence number. The message must be at least 8 bytes. */
export const echoSeq = (v: DataView, o: number): number => v.getUint16(o + ECHO_SEQ);
/** True for error messages, types 0-127 (RFC 4443 §2.1). */
export const isError = (type: number): boolean => type < 128;

/**
 * Decodes the ICMPv6 header (RFC 4443 §2.1). Does not verify the checksum:
 * call `verify` with the IPv6 addresses.
 * @param v the buffer's DataView
 * @param o offset of the message (the upper-layer offset of the IPv6 walk)
 * @param len the message length (to the end of the IPv6 payload)
 * @param out reused header to fill
 * @returns false when shorter than 8 bytes. Never throws.
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  const t = v.getUint8(o + TYPE);
  out.type = t;
  out.code = v.getUint8(o + CODE);
  out.checksum = v.getUint16(o + CHECKSUM);
  const body = v.getUint32(o + BODY);
  out.mtu = t === TYPE_PACKET_TOO_BIG ? body : 0;
  out.pointer = t === TYPE_PARAM_PROBLEM ? body : 0;
  const echo = t !== TYPE_PACKET_TOO_BIG && t !== TYPE_PARAM_PROBLEM;
  out.id = echo ? body >>> 16 : 0;
  out.seq = echo ? body & 0xffff : 0;
  out.payloadOffset = o + HEADER_LEN;
  out.payloadLength = len - HEADER_LEN;
  return true;
}

/** The whole message length: 8 + `h.payloadLength`. @param h the header */
export function length(h: Header): number {
  return HEADER_LEN + h.payloadLength;
}

/**
 * Writes the 8-byte header as given, checksum field included (RFC 4443
 * §2.1); put 0 in `checksum` and call `fillChecksum` once the data is in
 * place. For type 2 the body is `mtu`, for type 4 `pointer`, else `id`/`seq`.
 * @param h the header
 * @param v the buffer's DataView, with room for 8 bytes
 * @param o offset to write at
 * @returns the message length (`length(h)`); only the 8 header bytes are written
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint8(o + TYPE, h.type);
  v.setUint8(o + CODE, h.code);
  v.setUint16(o + CHECKSUM, h.checksum);
  const body = h.type === TYPE_PACKET_TOO_BIG ? h.mtu : h.type === TYPE_PARAM_PROBLEM ? h.pointer : ((h.id & 0xffff) << 16) | (h.seq & 0xffff);
  v.setUint32(o + BODY, body >>> 0);
  return HEADER_LEN + h.payloadLength;
}

/**
 * Verifies the checksum over the pseudo-header and the message (RFC 4443 §2.3).
 * @param v the buffer's DataView
 * @param o offset of the message
 * @param len the message length
 * @param src IPv6 source address
 * @param dst IPv6 destination address (the final one)
 */
export function verify(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): boolean {
  return verifyWith(v, o, len, pseudo6(src, dst, PROTO, len));
}

/**
 * Computes and stores the checksum over the pseudo-header and the message,
 * which must be in place (RFC 4443 §2.3).
 * @param v the buffer's DataView
 * @param o offset of the message
 * @param len the message length
 * @param src IPv6 source address
 * @param dst IPv6 destination address
 * @returns the checksum stored
 */
export function fillChecksum(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): number {
  return fillWith(v, o, len, CHECKSUM, pseudo6(src, dst, PROTO, len));
}

/**
 * Writes an echo request or reply header and its checksum; the echo data
 * (`payloadLength` bytes) must already be at `o + 8` (RFC 4443 §4.1, §4.2).
 * @param type TYPE_ECHO_REQUEST or TYPE_ECHO_REPLY
 * @param id identifier
 * @param seq sequence number
 * @param v the buffer's DataView
 * @param o offset to write at
 * @param payloadLength bytes of echo data after the header
 * @param src IPv6 source of the message
 * @param dst IPv6 destination of the message
 * @returns the message length (8 + payloadLength)
 */
export function emitEcho(type: number, id: number, seq: number, v: DataView, o: number, payloadLength: number, src: Ip6, dst: Ip6): number {
  v.setUint8(o + TYPE, type);
  v.setUint8(o + CODE, 0);
  v.setUint16(o + BODY, id);
  v.setUint16(o + ECHO_SEQ, seq);
  const n = HEADER_LEN + payloadLength;
  fillChecksum(v, o, n, src, dst);
  return n;
}

/**
 * Turns a verified echo request into an echo reply in place: type 128 → 129
 * and an RFC 1624 incremental checksum update (RFC 4443 §4.2). Valid when the
 * reply goes from the request's destination to its source (the caller swaps
 * the IPv6 addresses); otherwise use `fillChecksum`.
 * @param v the buffer's DataView
 * @param o offset of the ICMPv6 message (parsed as an echo request)
 */
export function toEchoReply(v: DataView, o: number): void {
  rewrite16(v, o + TYPE, o + CHECKSUM, (TYPE_ECHO_REPLY << 8) | v.getUint8(o + CODE));
}

/**
 * How many bytes of an invoking packet an error quotes: all of it (its
 * 40-byte header plus payload length, when the header is there to say) up
 * to MAX_QUOTE, and never more than the bytes available (RFC 4443 §2.4(c)).
 * @param q DataView holding the invoking IPv6 packet
 * @param qo offset of its IPv6 header
 * @param qlen bytes available from `qo`
 */
export function quoteLength(q: DataView, qo: number, qlen: number): number {
  if (qlen <= 0) return 0;
  let n = Math.min(qlen, MAX_QUOTE);
  if (qlen >= IP6_HEADER_LEN) n = Math.min(n, IP6_HEADER_LEN + q.getUint16(qo + 4));
  return n;
}

/**
 * Length of the error message `emitError` writes for this packet.
 * @param q DataView holding the invoking IPv6 packet
 * @param qo offset of its IPv6 header
 * @param qlen bytes available from `qo`
 */
export function errorLength(q: DataView, qo: number, qlen: number): number {
  return HEADER_LEN + quoteLength(q, qo, qlen);
}

/**
 * Writes an ICMPv6 error: the header with its 4-byte parameter, the quoted
 * invoking packet (RFC 4443 §2.4(c)) and the checksum. The quote is copied
 * with memmove semantics, so source and destination may share a buffer.
 * @param type TYPE_DEST_UNREACH, TYPE_PACKET_TOO_BIG, TYPE_TIME_EXCEEDED or TYPE_PARAM_PROBLEM
 * @param code the code
 * @param param the MTU (Packet Too Big), the pointer (Parameter Problem), else 0
 * @param v the destination buffer's DataView, with room for `errorLength(...)`
 * @param o offset to write the ICMPv6 message at
 * @param q DataView holding the invoking IPv6 packet
 * @param qo offset of its IPv6 header
 * @param qlen bytes available from `qo`
 * @param src IPv6 source of the error (the gateway's address)
 * @param dst IPv6 destination of the error (the invoking packet's source)
 * @returns the message length (8 + quoted bytes)
 */
export function emitError(
  type: number,
  code: number,
  param: number,
  v: DataView,
  o: number,
  q: DataView,
  qo: number,
  qlen: number,
  src: Ip6,
  dst: Ip6,
): number {
  const n = quoteLength(q, qo, qlen);
  // TypedArray#set copies as memmove when both views share a buffer (two small views: errors are rate-limited, not data path)
  new Uint8Array(v.buffer, v.byteOffset + o + HEADER_LEN, n).set(new Uint8Array(q.buffer, q.byteOffset + qo, n));
  v.setUint8(o + TYPE, type);
  v.setUint8(o + CODE, code);
  v.setUint32(o + BODY, param >>> 0);
  const total = HEADER_LEN + n;
  fillChecksum(v, o, total, src, dst);
  return total;
}

/**
 * Whether an ICMPv6 error may be sent about a packet (RFC 4443 §2.4(e)): never
 * about an ICMPv6 error or a redirect, never to a source that does not name
 * one node (unspecified or multicast; anycast cannot be told from the address
 * and is the caller's), and not about a packet sent to a multicast address or
 * as a link-layer multicast or broadcast, except Packet Too Big and a
 * Parameter Problem about an option whose action bits were 10
 * (ipv6.ACTION_PROBLEM).
 * @param type the error's type
 * @param multicastOk true for a Parameter Problem the walk reported as ACTION_PROBLEM
 * @param src the invoking packet's source address
 * @param dst the invoking packet's destination address
 * @param l2Group the invoking frame's Ethernet destination had the group bit
 * @param invokingIcmpType the invoking packet's ICMPv6 type, -1 when it is
 *   not ICMPv6 (or a non-first fragment, whose type is unknown)
 */
export function errorAllowed(type: number, multicastOk: boolean, src: Ip6, dst: Ip6, l2Group: boolean, invokingIcmpType: number): boolean {
  if (invokingIcmpType >= 0 && (isError(invokingIcmpType) || invokingIcmpType === TYPE_REDIRECT)) return false;
  if (isUnspecified6(src) || isMulticast6(src)) return false;
  if (!isMulticast6(dst) && !l2Group) return true;
  return type === TYPE_PACKET_TOO_BIG || (type === TYPE_PARAM_PROBLEM && multicastOk);
}
