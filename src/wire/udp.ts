/**
 * Theory of operation: the UDP header (RFC 768) over IPv4 and IPv6.
 *
 *   srcPort(2) dstPort(2) length(2) checksum(2) payload...
 *
 * `parse` checks the length field against the bytes the IP layer delivered
 * (8 <= length <= len, RFC 768 "Length"; RFC 1122 §4.1.3.4 lets a receiver
 * discard datagrams whose length is wrong). Bytes past `length` are ignored.
 * The checksum is verified separately by `verify4` because it needs the IPv4
 * pseudo-header (RFC 768 "Checksum"); a zero checksum field means the sender
 * computed none and is accepted (RFC 1122 §4.1.3.4).
 *
 * Over IPv6 the checksum covers the IPv6 pseudo-header (RFC 8200 §8.1) and
 * is mandatory: `verify6` rejects a zero checksum field (RFC 8200 §8.1: "IPv6
 * receivers must discard UDP packets containing a zero checksum"; the
 * tunnel exception of RFC 6935 does not apply to a guest's datagrams).
 *
 * Emitting is two steps, so the payload is summed only once it is in place:
 * `emit` writes the four header fields as given (put 0 in `checksum`), then
 * `fillChecksum4` / `fillChecksum6` sums pseudo-header + header + payload and
 * stores the result, turning a computed 0 into 0xffff (RFC 768: "If the
 * computed checksum is zero, it is transmitted as all ones"). Both IP
 * versions share `verifyWith` / `fillWith` of checksum.ts; only the
 * pseudo-header differs.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */
import type { Ip4, Ip6 } from './addr.js';
import { fillWith, pseudo4, pseudo6, verifyWith } from './checksum.js';

/** Length of the UDP header. */
export const HEADER_LEN = 8;
/** IP protocol number of UDP (for the pseudo-header). */
export const PROTO = 17;

/** Offset of the source port. */
export const SRC_PORT = 0;
/** Offset of the destination port. */
export const DST_PORT = 2;
/** Offset of the length field. */
export const LENGTH = 4;
/** Offset of the checksum. */
export const CHECKSUM = 6;

/** A decoded UDP header. */
export interface Header {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** The length field: header + payload bytes. */
  length: number;
  /** The checksum field as on the wire (0 = none). */
  checksum: number;
  /** Parse output: absolute offset of the payload in the view. */
  payloadOffset: number;
  /** Parse output: payload length (length - 8). */
  payloadLength: number;
}

/** A header with every field initialised (an empty datagram, ports 0). */
export function blank(): Header {
  return { srcPort: 0, dstPort: 0, length: HEADER_LEN, checksum: 0, payloadOffset: 0, payloadLength: 0 };
}

/** The source port. The datagram must be at least 8 bytes. */
export const srcPort = (v: DataView, o: number): number => v.getUint16(o + SRC_PORT);
/** The destination port. The datagram must be at least 8 bytes. */
export const dstPort = (v: DataView, o: number): number => v.getUint16(o + DST_PORT);
/** The length field. The datagram must be at least 8 bytes. */
export const datagramLength = (v: DataView, o: number): number => v.getUint16(o + LENGTH);
/** The checksum field. The datagram must be at least 8 bytes. */
export const checksum = (v: DataView, o: number): number => v.getUint16(o + CHECKSUM);

/**
 * Decodes a UDP header and checks its length field (RFC 768). Does not verify
 * the checksum: call `verify4` with the IP addresses.
 * @param v the buffer's DataView
 * @param o offset of the header (the IPv4 payload)
 * @param len bytes delivered by the IP layer (IPv4 payloadLength)
 * @param out reused header to fill
 * @returns false when shorter than 8 bytes or the length field is < 8 or > len
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  const n = v.getUint16(o + LENGTH);
  if (n < HEADER_LEN || n > len) return false;
  out.srcPort = v.getUint16(o + SRC_PORT);
  out.dstPort = v.getUint16(o + DST_PORT);
  out.length = n;
  out.checksum = v.getUint16(o + CHECKSUM);
  out.payloadOffset = o + HEADER_LEN;
  out.payloadLength = n - HEADER_LEN;
  return true;
}

/** Bytes `emit` writes: always HEADER_LEN (8). @param _h the header */
export function length(_h: Header): number {
  return HEADER_LEN;
}

/**
 * Writes the header fields as given (RFC 768). Set `length` to 8 + payload
 * length and `checksum` to 0, then call `fillChecksum4` once the payload is in
 * place (or leave 0 for "no checksum").
 * @param h the header
 * @param v the buffer's DataView, with room for 8 bytes
 * @param o offset to write at
 * @returns bytes written (8)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint16(o + SRC_PORT, h.srcPort);
  v.setUint16(o + DST_PORT, h.dstPort);
  v.setUint16(o + LENGTH, h.length);
  v.setUint16(o + CHECKSUM, h.checksum);
  return HEADER_LEN;
}

/**
 * Verifies the checksum of a UDP datagram over IPv4 (RFC 768 "Checksum",
 * RFC 1122 §4.1.3.4). A zero checksum field means "none" and passes.
 * @param v the buffer's DataView
 * @param o offset of the UDP header
 * @param len the UDP length (the header's length field, as checked by parse)
 * @param src IPv4 source address
 * @param dst IPv4 destination address
 * @returns true when the checksum is absent or correct
 */
export function verify4(v: DataView, o: number, len: number, src: Ip4, dst: Ip4): boolean {
  if (v.getUint16(o + CHECKSUM) === 0) return true;
  return verifyWith(v, o, len, pseudo4(src, dst, PROTO, len));
}

/**
 * Verifies the checksum of a UDP datagram over IPv6 (RFC 8200 §8.1). A zero
 * checksum field fails: it is mandatory over IPv6.
 * @param v the buffer's DataView
 * @param o offset of the UDP header
 * @param len the UDP length (the header's length field, as checked by parse)
 * @param src IPv6 source address
 * @param dst IPv6 destination address (the final one)
 * @returns true when the checksum is present and correct
 */
export function verify6(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): boolean {
  if (v.getUint16(o + CHECKSUM) === 0) return false;
  return verifyWith(v, o, len, pseudo6(src, dst, PROTO, len));
}

/**
 * Computes and stores the checksum over pseudo-header, header and payload
 * (RFC 768); a computed 0 is stored as 0xffff, since 0 means "none".
 * @param v the buffer's DataView
 * @param o offset of the UDP header (length field already written)
 * @param len the UDP length (header + payload)
 * @param src IPv4 source address
 * @param dst IPv4 destination address
 * @returns the checksum stored
 */
export function fillChecksum4(v: DataView, o: number, len: number, src: Ip4, dst: Ip4): number {
  return fillWith(v, o, len, CHECKSUM, pseudo4(src, dst, PROTO, len), 0xffff);
}

/**
 * Computes and stores the checksum over the IPv6 pseudo-header, header and
 * payload (RFC 8200 §8.1); a computed 0 is stored as 0xffff.
 * @param v the buffer's DataView
 * @param o offset of the UDP header (length field already written)
 * @param len the UDP length (header + payload)
 * @param src IPv6 source address
 * @param dst IPv6 destination address
 * @returns the checksum stored
 */
export function fillChecksum6(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): number {
  return fillWith(v, o, len, CHECKSUM, pseudo6(src, dst, PROTO, len), 0xffff);
}
