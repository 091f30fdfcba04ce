/**
 * Theory of operation: the IPv4 header (RFC 791 §3.1), checksum per RFC 1071.
 *
 *   ver|ihl(1) tos(1) totalLength(2) id(2) flags|fragOffset(2)
 *   ttl(1) proto(1) checksum(2) src(4) dst(4) [options]     = ihl*4 bytes
 *
 * `parse` is the one place guest IPv4 bytes are validated (RFC 1122 §3.2.1,
 * RFC 1812 §5.2.2): version 4, IHL >= 5, the header fits in `len`, total length
 * covers the header and fits in `len`, and the header checksum verifies. Bytes
 * past the total length (Ethernet padding of short frames) are allowed and
 * ignored: `payloadLength` comes from the total length, never from `len`.
 * Options are skipped, not interpreted (`hasOptions` tells they were there).
 *
 * Field conventions: `flags` is the 3-bit flags field (FLAG_DF, FLAG_MF),
 * `fragOffset` is in bytes (the wire value times 8). `emit` reads only wire
 * fields (tos, totalLength, id, flags, fragOffset, ttl, proto, src, dst),
 * always writes a 20-byte header without options, and fills in the checksum;
 * the derived fields (ihl, headerLength, payloadOffset, payloadLength,
 * hasOptions) are parse outputs only.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */
import type { Ip4 } from './addr.js';
import { finish, ok, sum } from './checksum.js';

/** Length of a header without options (IHL 5). */
export const HEADER_LEN = 20;
/** IP protocol number of ICMP. */
export const PROTO_ICMP = 1;
/** IP protocol number of TCP. */
export const PROTO_TCP = 6;
/** IP protocol number of UDP. */
export const PROTO_UDP = 17;
/** Flags bit: don't fragment (in the 3-bit `flags` value). */
export const FLAG_DF = 0b010;
/** Flags bit: more fragments (in the 3-bit `flags` value). */
export const FLAG_MF = 0b001;

/** Offset of the version/IHL byte. */
export const VER_IHL = 0;
/** Offset of the type-of-service byte. */
export const TOS = 1;
/** Offset of the total length. */
export const TOTAL_LENGTH = 2;
/** Offset of the identification. */
export const ID = 4;
/** Offset of the flags/fragment offset word. */
export const FLAGS_FRAG = 6;
/** Offset of the time to live. */
export const TTL = 8;
/** Offset of the protocol. */
export const PROTO = 9;
/** Offset of the header checksum. */
export const CHECKSUM = 10;
/** Offset of the source address. */
export const SRC = 12;
/** Offset of the destination address. */
export const DST = 16;

/** A decoded IPv4 header. */
export interface Header {
  /** Parse output: header length in 32-bit words (5..15). */
  ihl: number;
  /** Type of service / DSCP+ECN byte. */
  tos: number;
  /** Total datagram length (header + payload) in bytes. */
  totalLength: number;
  /** Identification. */
  id: number;
  /** 3-bit flags field: FLAG_DF | FLAG_MF (bit 0b100 is reserved). */
  flags: number;
  /** Fragment offset in bytes (multiple of 8). */
  fragOffset: number;
  /** Time to live. */
  ttl: number;
  /** Protocol (PROTO_ICMP, PROTO_TCP, PROTO_UDP, ...). */
  proto: number;
  /** Source address (u32). */
  src: Ip4;
  /** Destination address (u32). */
  dst: Ip4;
  /** Parse output: header length in bytes (ihl * 4). */
  headerLength: number;
  /** Parse output: absolute offset of the payload in the view. */
  payloadOffset: number;
  /** Parse output: payload length (totalLength - headerLength). */
  payloadLength: number;
  /** Parse output: true when the header carries options (IHL > 5). */
  hasOptions: boolean;
}

/** A header with every field initialised (IHL 5, TTL 64, zero addresses). */
export function blank(): Header {
  return {
    ihl: 5,
    tos: 0,
    totalLength: HEADER_LEN,
    id: 0,
    flags: 0,
    fragOffset: 0,
    ttl: 64,
    proto: 0,
    src: 0,
    dst: 0,
    headerLength: HEADER_LEN,
    payloadOffset: 0,
    payloadLength: 0,
    hasOptions: false,
  };
}

/** Header length in bytes from the IHL nibble (unvalidated). */
export const headerLength = (v: DataView, o: number): number => (v.getUint8(o + VER_IHL) & 0x0f) << 2;
/** The total length field. */
export const totalLength = (v: DataView, o: number): number => v.getUint16(o + TOTAL_LENGTH);
/** The protocol field. */
export const proto = (v: DataView, o: number): number => v.getUint8(o + PROTO);
/** The time-to-live field. */
export const ttl = (v: DataView, o: number): number => v.getUint8(o + TTL);
/** The source address (u32). */
export const src = (v: DataView, o: number): Ip4 => v.getUint32(o + SRC);
/** The destination address (u32). */
export const dst = (v: DataView, o: number): Ip4 => v.getUint32(o + DST);

/**
 * True when the header checksum verifies: the RFC 1071 sum over the header,
 * checksum field included, folds to 0xffff (RFC 791 §3.1 "Header Checksum").
 * @param v the buffer's DataView
 * @param o offset of the header
 * @param hl header length in bytes (default: from the IHL nibble); the header
 *   must already be known to lie within the buffer
 */
export function checksumOk(v: DataView, o: number, hl = headerLength(v, o)): boolean {
  return ok(sum(v, o, hl));
}

/**
 * Recomputes and stores the header checksum, e.g. after rewriting fields of a
 * received header in place (RFC 791 §3.1).
 * @param v the buffer's DataView
 * @param o offset of the header
 * @param hl header length in bytes (default: from the IHL nibble)
 * @returns the checksum written
 */
export function fillChecksum(v: DataView, o: number, hl = headerLength(v, o)): number {
  v.setUint16(o + CHECKSUM, 0);
  const c = finish(sum(v, o, hl));
  v.setUint16(o + CHECKSUM, c);
  return c;
}

/**
 * Decodes and validates an IPv4 header (RFC 791 §3.1, RFC 1122 §3.2.1.1-2).
 * @param v the buffer's DataView
 * @param o offset of the header (the Ethernet payload)
 * @param len bytes available; may exceed totalLength (link-layer padding)
 * @param out reused header to fill
 * @returns false when short, version != 4, IHL < 5, the header or the total
 *   length does not fit in `len`, total length < header length, or the header
 *   checksum is wrong; `out` is then partially written and must not be used
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  const vi = v.getUint8(o + VER_IHL);
  if (vi >>> 4 !== 4) return false;
  const ihl = vi & 0x0f;
  const hl = ihl << 2;
  if (ihl < 5 || hl > len) return false;
  const total = v.getUint16(o + TOTAL_LENGTH);
  if (total < hl || total > len) return false;
  if (!checksumOk(v, o, hl)) return false;
  const ff = v.getUint16(o + FLAGS_FRAG);
  out.ihl = ihl;
  out.tos = v.getUint8(o + TOS);
  out.totalLength = total;
  out.id = v.getUint16(o + ID);
  out.flags = ff >>> 13;
  out.fragOffset = (ff & 0x1fff) << 3;
  out.ttl = v.getUint8(o + TTL);
  out.proto = v.getUint8(o + PROTO);
  out.src = v.getUint32(o + SRC);
  out.dst = v.getUint32(o + DST);
  out.headerLength = hl;
  out.payloadOffset = o + hl;
  out.payloadLength = total - hl;
  out.hasOptions = ihl > 5;
  return true;
}

/** Bytes `emit` writes: always HEADER_LEN (20, no options). @param _h the header */
export function length(_h: Header): number {
  return HEADER_LEN;
}

/**
 * Writes a 20-byte header without options and its checksum (RFC 791 §3.1).
 * Uses the wire fields only; set `totalLength` to 20 + payload length.
 * @param h the header (`fragOffset` in bytes, a multiple of 8)
 * @param v the buffer's DataView, with room for 20 bytes
 * @param o offset to write at
 * @returns bytes written (20)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint8(o + VER_IHL, 0x45);
  v.setUint8(o + TOS, h.tos);
  v.setUint16(o + TOTAL_LENGTH, h.totalLength);
  v.setUint16(o + ID, h.id);
  v.setUint16(o + FLAGS_FRAG, ((h.flags & 7) << 13) | ((h.fragOffset >>> 3) & 0x1fff));
  v.setUint8(o + TTL, h.ttl);
  v.setUint8(o + PROTO, h.proto);
  v.setUint16(o + CHECKSUM, 0);
  v.setUint32(o + SRC, h.src >>> 0);
  v.setUint32(o + DST, h.dst >>> 0);
  v.setUint16(o + CHECKSUM, finish(sum(v, o, HEADER_LEN)));
  return HEADER_LEN;
}

/**
 * True when the datagram is a fragment: more-fragments set or a non-zero
 * offset (RFC 791 §2.3 "Fragmentation"); see gateway/ip-reassembly.ts.
 * @param h a parsed header
 */
export function isFragment(h: Header): boolean {
  return (h.flags & FLAG_MF) !== 0 || h.fragOffset !== 0;
}
