/**
 * Theory of operation: Ethernet II frames (IEEE 802.3 §3.2.6 "Length/Type",
 * RFC 894 for IPv4 over Ethernet) with an optional IEEE 802.1Q VLAN tag.
 *
 *   untagged: dst(6) src(6) ethertype(2) payload
 *   tagged:   dst(6) src(6) 0x8100(2) TCI(2) ethertype(2) payload
 *             TCI = PCP(3 bits) | DEI(1 bit) | VID(12 bits)
 *
 * Frames arrive without the FCS (QEMU's stream and dgram netdevs carry none).
 * Short frames may carry padding up to the 60-byte minimum; the payload length
 * reported here includes it, and the network layer trims it (IPv4 uses its
 * total length). Only one 802.1Q tag is decoded: a second tag (Q-in-Q) shows up
 * as the inner `ethertype` and is left to the caller.
 *
 * `parse` copies both MAC addresses into the 6-byte arrays that `blank()`
 * allocated once, so a reused header object makes parsing allocation-free and
 * the MACs stay valid after the frame buffer is reused. Hot paths that only
 * need to switch on the type can use the `ethertype` accessor instead.
 *
 * Pure: no I/O, no Node runtime imports.
 */
import type { Mac } from './addr.js';

/** Length of an untagged Ethernet II header. */
export const HEADER_LEN = 14;
/** Length of the 802.1Q tag (TPID + TCI). */
export const VLAN_TAG_LEN = 4;
/** EtherType for IPv4 (RFC 894). */
export const ETHERTYPE_IPV4 = 0x0800;
/** EtherType for ARP (RFC 826). */
export const ETHERTYPE_ARP = 0x0806;
/** EtherType for IPv6 (RFC 2464). */
export const ETHERTYPE_IPV6 = 0x86dd;
/** Tag protocol identifier of an IEEE 802.1Q VLAN tag. */
export const ETHERTYPE_VLAN = 0x8100;

/** Offset of the destination MAC. */
export const DST = 0;
/** Offset of the source MAC. */
export const SRC = 6;
/** Offset of the EtherType (or the 802.1Q TPID when tagged). */
export const TYPE = 12;

/** A decoded Ethernet header. */
export interface Header {
  /** Destination MAC (6 bytes, owned by this object). */
  dst: Mac;
  /** Source MAC (6 bytes, owned by this object). */
  src: Mac;
  /** 802.1Q VLAN id 0..4095, or -1 when the frame is untagged. */
  vlan: number;
  /** 802.1Q priority code point 0..7 (0 when untagged). */
  pcp: number;
  /** 802.1Q drop eligible indicator 0..1 (0 when untagged). */
  dei: number;
  /** EtherType of the payload (after the tag when tagged). */
  ethertype: number;
  /** Parse output: absolute offset of the payload in the view. */
  payloadOffset: number;
  /** Parse output: bytes after the header (including any padding). */
  payloadLength: number;
}

/**
 * A header with every field initialised (untagged, zero MACs). Allocates the
 * two MAC arrays once; reuse the object across `parse` calls.
 */
export function blank(): Header {
  return {
    dst: new Uint8Array(6),
    src: new Uint8Array(6),
    vlan: -1,
    pcp: 0,
    dei: 0,
    ethertype: 0,
    payloadOffset: 0,
    payloadLength: 0,
  };
}

/**
 * Copies the 6-byte MAC at `o` into `out`.
 * @param v the buffer's DataView
 * @param o offset of the MAC
 * @param out destination, at least 6 bytes
 */
export function readMac(v: DataView, o: number, out: Mac): void {
  const hi = v.getUint32(o);
  const lo = v.getUint16(o + 4);
  out[0] = hi >>> 24;
  out[1] = (hi >>> 16) & 0xff;
  out[2] = (hi >>> 8) & 0xff;
  out[3] = hi & 0xff;
  out[4] = lo >>> 8;
  out[5] = lo & 0xff;
}

/**
 * Writes a 6-byte MAC at `o`.
 * @param v the buffer's DataView
 * @param o offset to write at
 * @param mac the address (first 6 bytes are used)
 */
export function writeMac(v: DataView, o: number, mac: Mac): void {
  for (let i = 0; i < 6; i++) v.setUint8(o + i, mac[i]!);
}

/**
 * The outer EtherType/TPID field: 0x8100 for a tagged frame. The frame must
 * be at least HEADER_LEN bytes.
 */
export const outerType = (v: DataView, o: number): number => v.getUint16(o + TYPE);

/**
 * The EtherType of the payload, looking through one 802.1Q tag. The frame must
 * be at least HEADER_LEN + VLAN_TAG_LEN bytes when tagged (i.e. `parse` passed).
 */
export const ethertype = (v: DataView, o: number): number => {
  const t = v.getUint16(o + TYPE);
  return t === ETHERTYPE_VLAN ? v.getUint16(o + TYPE + 4) : t;
};

/** True when the destination MAC has the group bit set (broadcast or multicast). */
export const isGroupDst = (v: DataView, o: number): boolean => (v.getUint8(o + DST) & 1) === 1;

/**
 * Decodes an Ethernet II header (IEEE 802.3 §3.2, 802.1Q §9.6).
 * @param v the buffer's DataView
 * @param o offset of the frame
 * @param len bytes available for the frame
 * @param out reused header to fill (MACs are copied into its arrays)
 * @returns false when the frame is too short for its header; `out` is then
 *   partially written and must not be used
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  let t = v.getUint16(o + TYPE);
  let hl = HEADER_LEN;
  if (t === ETHERTYPE_VLAN) {
    if (len < HEADER_LEN + VLAN_TAG_LEN) return false;
    const tci = v.getUint16(o + TYPE + 2);
    out.pcp = tci >>> 13;
    out.dei = (tci >>> 12) & 1;
    out.vlan = tci & 0x0fff;
    t = v.getUint16(o + TYPE + 4);
    hl += VLAN_TAG_LEN;
  } else {
    out.pcp = 0;
    out.dei = 0;
    out.vlan = -1;
  }
  readMac(v, o + DST, out.dst);
  readMac(v, o + SRC, out.src);
  out.ethertype = t;
  out.payloadOffset = o + hl;
  out.payloadLength = len - hl;
  return true;
}

/**
 * Header length in bytes: 14, or 18 when `h.vlan >= 0`.
 * @param h the header
 */
export function length(h: Header): number {
  return h.vlan >= 0 ? HEADER_LEN + VLAN_TAG_LEN : HEADER_LEN;
}

/**
 * Writes the header (dst, src, optional 802.1Q tag, ethertype). The payload
 * fields are ignored; the payload goes at `o + length(h)`.
 * @param h the header; `vlan` 0..4095 adds a tag with `pcp` and `dei`
 * @param v the buffer's DataView, with room for `length(h)` bytes
 * @param o offset to write at
 * @returns bytes written (`length(h)`)
 */
export function emit(h: Header, v: DataView, o: number): number {
  writeMac(v, o + DST, h.dst);
  writeMac(v, o + SRC, h.src);
  if (h.vlan >= 0) {
    v.setUint16(o + TYPE, ETHERTYPE_VLAN);
    v.setUint16(o + TYPE + 2, ((h.pcp & 7) << 13) | ((h.dei & 1) << 12) | (h.vlan & 0x0fff));
    v.setUint16(o + TYPE + 4, h.ethertype);
    return HEADER_LEN + VLAN_TAG_LEN;
  }
  v.setUint16(o + TYPE, h.ethertype);
  return HEADER_LEN;
}
