/**
 * Theory of operation: ARP for Ethernet and IPv4 only (RFC 826 "Packet
 * format"; opcodes from RFC 5227 usage and the IANA registry).
 *
 *   htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 op(2)
 *   sha(6) spa(4) tha(6) tpa(4)                        = 28 bytes
 *
 * `parse` accepts exactly this shape and rejects every other hardware or
 * protocol type, address length, or opcode, so the gateway never has to look
 * at a malformed request. Bytes after the 28 (Ethernet padding to 60 bytes)
 * are ignored. MACs are copied into the arrays `blank()` allocated once, so a
 * reused header makes parsing allocation-free. A gateway can also answer in
 * place (passt arp.c): parse, rewrite the fields, and `emit` over the same
 * bytes.
 *
 * Pure: no I/O, no Node runtime imports.
 */
import type { Ip4, Mac } from './addr.js';
import { readMac, writeMac } from './ethernet.js';

/** Length of an Ethernet/IPv4 ARP packet. */
export const HEADER_LEN = 28;
/** Hardware type Ethernet. */
export const HTYPE_ETHERNET = 1;
/** Protocol type IPv4. */
export const PTYPE_IPV4 = 0x0800;
/** Operation: request. */
export const OP_REQUEST = 1;
/** Operation: reply. */
export const OP_REPLY = 2;

/** Offset of the operation field. */
export const OP = 6;
/** Offset of the sender hardware address. */
export const SHA = 8;
/** Offset of the sender protocol address. */
export const SPA = 14;
/** Offset of the target hardware address. */
export const THA = 18;
/** Offset of the target protocol address. */
export const TPA = 24;

/** A decoded Ethernet/IPv4 ARP packet. */
export interface Header {
  /** OP_REQUEST or OP_REPLY. */
  op: number;
  /** Sender hardware address (6 bytes, owned by this object). */
  sha: Mac;
  /** Sender protocol address. */
  spa: Ip4;
  /** Target hardware address (6 bytes, owned by this object). */
  tha: Mac;
  /** Target protocol address. */
  tpa: Ip4;
}

/** A header with every field initialised; allocates the two MAC arrays once. */
export function blank(): Header {
  return { op: OP_REQUEST, sha: new Uint8Array(6), spa: 0, tha: new Uint8Array(6), tpa: 0 };
}

/** The operation field. The packet must have passed `parse`. */
export const op = (v: DataView, o: number): number => v.getUint16(o + OP);
/** The sender protocol address. The packet must have passed `parse`. */
export const spa = (v: DataView, o: number): Ip4 => v.getUint32(o + SPA);
/** The target protocol address. The packet must have passed `parse`. */
export const tpa = (v: DataView, o: number): Ip4 => v.getUint32(o + TPA);

/**
 * Decodes an Ethernet/IPv4 ARP packet (RFC 826).
 * @param v the buffer's DataView
 * @param o offset of the ARP packet (the Ethernet payload)
 * @param len bytes available (trailing padding is allowed)
 * @param out reused header to fill
 * @returns false when short, not Ethernet/IPv4 (htype 1, ptype 0x0800,
 *   hlen 6, plen 4), or the opcode is not request/reply
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  if (v.getUint16(o) !== HTYPE_ETHERNET || v.getUint16(o + 2) !== PTYPE_IPV4) return false;
  if (v.getUint8(o + 4) !== 6 || v.getUint8(o + 5) !== 4) return false;
  const operation = v.getUint16(o + OP);
  if (operation !== OP_REQUEST && operation !== OP_REPLY) return false;
  out.op = operation;
  readMac(v, o + SHA, out.sha);
  out.spa = v.getUint32(o + SPA);
  readMac(v, o + THA, out.tha);
  out.tpa = v.getUint32(o + TPA);
  return true;
}

/** Always HEADER_LEN (28). @param _h the header */
export function length(_h: Header): number {
  return HEADER_LEN;
}

/**
 * Writes an Ethernet/IPv4 ARP packet.
 * @param h the packet
 * @param v the buffer's DataView, with room for 28 bytes
 * @param o offset to write at (may be the request being answered)
 * @returns bytes written (28)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint16(o, HTYPE_ETHERNET);
  v.setUint16(o + 2, PTYPE_IPV4);
  v.setUint8(o + 4, 6);
  v.setUint8(o + 5, 4);
  v.setUint16(o + OP, h.op);
  writeMac(v, o + SHA, h.sha);
  v.setUint32(o + SPA, h.spa >>> 0);
  writeMac(v, o + THA, h.tha);
  v.setUint32(o + TPA, h.tpa >>> 0);
  return HEADER_LEN;
}
