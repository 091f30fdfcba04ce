/**
 * Theory of operation: the VXLAN header (RFC 7348 §5), 8 bytes in front of
 * an inner Ethernet frame (without FCS) in a UDP datagram to port 4789.
 *
 *   flags(1: R R R R I R R R) reserved(3) VNI(3) reserved(1) inner frame...
 *
 * The I flag (0x08) "MUST be set to 1 for a valid VXLAN Network ID (VNI)";
 * the other seven flag bits and the 24 + 8 reserved bits "MUST be set to
 * zero on transmission and ignored on receipt" (§5). So `parse` rejects a
 * header without the I flag (there is no VNI to trust) and one too short to
 * hold the header plus an Ethernet header, and reads nothing else but the
 * VNI: a sender that sets reserved bits (VXLAN-GPE, GBP extensions) is still
 * understood as plain VXLAN. `emit` writes the I flag, the VNI and zeros.
 *
 * Pure: no I/O, no allocation, no Node runtime imports.
 */

/** Length of the VXLAN header. */
export const HEADER_LEN = 8;
/** IANA-assigned UDP destination port (RFC 7348 §5). */
export const PORT = 4789;
/** The I flag: the VNI is valid. */
export const FLAG_I = 0x08;
/** Largest VNI (24 bits). */
export const MAX_VNI = 0xffffff;
/**
 * Bytes an IPv4 underlay adds around an inner frame (RFC 7348 §4.3): outer
 * Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. The inner frame's Ethernet
 * header counts against the underlay's IP MTU, so a 1500-byte underlay
 * carries inner payloads of 1500 − 50 = 1450 bytes.
 */
export const OVERHEAD_IP4 = 50;
/** IPv4 + UDP + VXLAN: what an underlay IP datagram carries besides the inner frame. */
export const ENCAP_IP4 = 20 + 8 + HEADER_LEN;

/** Offset of the flags byte. */
export const FLAGS = 0;
/** Offset of the 24-bit VNI (shares a 32-bit word with the last reserved byte). */
export const VNI = 4;

/** A decoded VXLAN header. */
export interface Header {
  /** The VXLAN network identifier, 0..0xffffff. */
  vni: number;
}

/** A header with every field initialised (VNI 0). */
export function blank(): Header {
  return { vni: 0 };
}

/** The VNI. The datagram must be at least 8 bytes. */
export const vni = (v: DataView, o: number): number => v.getUint32(o + VNI) >>> 8;

/**
 * Decodes a VXLAN header (RFC 7348 §5): the I flag must be set and an inner
 * Ethernet header (14 bytes) must follow; reserved bits are ignored.
 * @param v the buffer's DataView
 * @param o offset of the header (the UDP payload)
 * @param len bytes of UDP payload
 * @param out filled with the VNI
 * @returns false for a datagram that is not valid VXLAN
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN + 14) return false;
  if ((v.getUint8(o + FLAGS) & FLAG_I) === 0) return false;
  out.vni = vni(v, o);
  return true;
}

/**
 * Writes the header: the I flag, the VNI, reserved bits zero (RFC 7348 §5).
 * @returns bytes written (8)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint32(o, FLAG_I << 24);
  v.setUint32(o + VNI, (h.vni & MAX_VNI) << 8);
  return HEADER_LEN;
}

/** Length of the header (always 8). */
export function length(_h: Header): number {
  return HEADER_LEN;
}
