/**
 * Theory of operation: the TCP header and its options (RFC 9293 §3.1, §3.2).
 *
 *   srcPort(2) dstPort(2) seq(4) ack(4) dataOffset|rsvd(1) flags(1)
 *   window(2) checksum(2) urgent(2) [options]            = dataOffset*4 bytes
 *
 * `parse` is the one place guest TCP bytes are validated (RFC 9293 §3.1):
 * 20 <= dataOffset*4 <= len, and every option is well formed. Options are
 * walked per RFC 9293 §3.2: kind 0 (EOL) ends the list, kind 1 (NOP) is one
 * byte, every other kind has a length byte >= 2 that must not run past the
 * header; a length of 0 or 1 or an overrun makes the segment invalid (false).
 * Understood options: MSS (kind 2, RFC 9293 §3.7.1), window scale (3, RFC 7323
 * §2.2; shifts above 14 are clamped to 14, §2.3), SACK-permitted (4, RFC 2018
 * §2), SACK (5, RFC 2018 §3; 1..4 blocks) and timestamps (8, RFC 7323 §3.2).
 * A known kind with the wrong length is ignored (as Linux does), unknown kinds
 * are skipped. Absent options read as mss = -1, wscale = -1, false, 0.
 * The checksum is verified separately by `verify4` / `verify6` (it needs the
 * IPv4 pseudo-header, RFC 9293 §3.1 "Checksum", or the IPv6 one, RFC 8200
 * §8.1); both go through `verifyWith` / `fillWith` of checksum.ts, so only the
 * pseudo-header differs between the IP versions.
 *
 * `emit` writes the header and the options selected by the fields (mss >= 0,
 * wscale >= 0, sackPermitted, hasTimestamps, sackCount > 0), 32-bit aligned
 * with NOP padding, in the layout Linux uses so middleboxes see nothing odd:
 *   MSS(4) | SACKP(2)+TS(10) or NOP NOP TS(10) or NOP NOP SACKP(2) | NOP WS(3)
 *   | NOP NOP SACK(2+8n)
 * SACK blocks are cut to what fits in the 40-byte option space (3 blocks with
 * timestamps, 4 without). `dataOffset`, `headerLength`, `payloadOffset` and
 * `payloadLength` are parse outputs (emit derives the data offset itself);
 * `length(h)` gives the header bytes emit writes. Emitting a segment is:
 * `emit` header → copy the payload after it → `fillChecksum4` / `fillChecksum6`.
 *
 * Pure: no I/O, no allocation (after `blank`), no Node runtime imports.
 */
import type { Ip4, Ip6 } from './addr.js';
import { fillWith, pseudo4, pseudo6, verifyWith } from './checksum.js';

/** Length of a header without options (data offset 5). */
export const HEADER_LEN = 20;
/** Largest header: data offset 15. */
export const MAX_HEADER_LEN = 60;
/** IP protocol number of TCP (for the pseudo-header). */
export const PROTO = 6;
/** Most SACK blocks an option can carry (RFC 2018 §3). */
export const MAX_SACK_BLOCKS = 4;

/** Control bit FIN. */
export const FIN = 0x01;
/** Control bit SYN. */
export const SYN = 0x02;
/** Control bit RST. */
export const RST = 0x04;
/** Control bit PSH. */
export const PSH = 0x08;
/** Control bit ACK. */
export const ACK = 0x10;
/** Control bit URG. */
export const URG = 0x20;
/** Control bit ECE (RFC 3168). */
export const ECE = 0x40;
/** Control bit CWR (RFC 3168). */
export const CWR = 0x80;

/** Offset of the source port. */
export const SRC_PORT = 0;
/** Offset of the destination port. */
export const DST_PORT = 2;
/** Offset of the sequence number. */
export const SEQ = 4;
/** Offset of the acknowledgment number. */
export const ACK_NUM = 8;
/** Offset of the data-offset byte (high nibble). */
export const DATA_OFFSET = 12;
/** Offset of the flags byte. */
export const FLAGS = 13;
/** Offset of the window. */
export const WINDOW = 14;
/** Offset of the checksum. */
export const CHECKSUM = 16;
/** Offset of the urgent pointer. */
export const URGENT = 18;

/** Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018). */
export const OPT_EOL = 0;
export const OPT_NOP = 1;
export const OPT_MSS = 2;
export const OPT_WSCALE = 3;
export const OPT_SACK_PERMITTED = 4;
export const OPT_SACK = 5;
export const OPT_TIMESTAMPS = 8;

/** A decoded TCP header. */
export interface Header {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Sequence number (u32). */
  seq: number;
  /** Acknowledgment number (u32). */
  ack: number;
  /** Parse output: header length in 32-bit words (5..15). */
  dataOffset: number;
  /** Control bits: FIN | SYN | RST | PSH | ACK | URG | ECE | CWR. */
  flags: number;
  /** Window field as on the wire (unscaled). */
  window: number;
  /** Checksum field as on the wire. */
  checksum: number;
  /** Urgent pointer. */
  urgent: number;
  /** MSS option value, -1 when absent. */
  mss: number;
  /** Window-scale shift (0..14), -1 when absent. */
  wscale: number;
  /** SACK-permitted option present. */
  sackPermitted: boolean;
  /** Timestamps option present (tsVal/tsEcr valid). */
  hasTimestamps: boolean;
  /** TSval (u32). */
  tsVal: number;
  /** TSecr (u32). */
  tsEcr: number;
  /** Number of SACK blocks in `sack` (0..4). */
  sackCount: number;
  /** SACK blocks as [left0, right0, left1, right1, ...]; 8 slots, the first sackCount pairs valid. */
  sack: number[];
  /** Parse output: header length in bytes (dataOffset * 4). */
  headerLength: number;
  /** Parse output: absolute offset of the payload in the view. */
  payloadOffset: number;
  /** Payload length in bytes (parse output; on emit, informational for the caller). */
  payloadLength: number;
}

/** A header with every field initialised: no options, no flags, zeros. */
export function blank(): Header {
  return {
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    dataOffset: 5,
    flags: 0,
    window: 0,
    checksum: 0,
    urgent: 0,
    mss: -1,
    wscale: -1,
    sackPermitted: false,
    hasTimestamps: false,
    tsVal: 0,
    tsEcr: 0,
    sackCount: 0,
    sack: [0, 0, 0, 0, 0, 0, 0, 0],
    headerLength: HEADER_LEN,
    payloadOffset: 0,
    payloadLength: 0,
  };
}

/** Resets the option fields of a reused header to "absent". @param h the header */
export function clearOptions(h: Header): void {
  h.mss = -1;
  h.wscale = -1;
  h.sackPermitted = false;
  h.hasTimestamps = false;
  h.tsVal = 0;
  h.tsEcr = 0;
  h.sackCount = 0;
}

/** The source port. The segment must be at least 20 bytes. */
export const srcPort = (v: DataView, o: number): number => v.getUint16(o + SRC_PORT);
/** The destination port. */
export const dstPort = (v: DataView, o: number): number => v.getUint16(o + DST_PORT);
/** The sequence number. */
export const seqNum = (v: DataView, o: number): number => v.getUint32(o + SEQ);
/** The acknowledgment number. */
export const ackNum = (v: DataView, o: number): number => v.getUint32(o + ACK_NUM);
/** The flags byte. */
export const flags = (v: DataView, o: number): number => v.getUint8(o + FLAGS);
/** Header length in bytes from the data-offset nibble (unvalidated). */
export const headerLength = (v: DataView, o: number): number => (v.getUint8(o + DATA_OFFSET) >>> 4) << 2;

/**
 * Decodes and validates a TCP header and its options (RFC 9293 §3.1, §3.2).
 * Does not verify the checksum: call `verify4`.
 * @param v the buffer's DataView
 * @param o offset of the header (the IP payload)
 * @param len bytes of the segment (IP payload length)
 * @param out reused header to fill
 * @returns false when shorter than 20 bytes, data offset < 5 or past `len`,
 *   or an option is malformed; `out` must then not be used. Never throws.
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  const doff = v.getUint8(o + DATA_OFFSET) >>> 4;
  const hl = doff << 2;
  if (doff < 5 || hl > len) return false;
  clearOptions(out);
  let i = o + HEADER_LEN;
  const end = o + hl;
  while (i < end) {
    const kind = v.getUint8(i);
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const olen = v.getUint8(i + 1);
    if (olen < 2 || i + olen > end) return false;
    switch (kind) {
      case OPT_MSS:
        if (olen === 4) out.mss = v.getUint16(i + 2);
        break;
      case OPT_WSCALE:
        if (olen === 3) out.wscale = Math.min(v.getUint8(i + 2), 14);
        break;
      case OPT_SACK_PERMITTED:
        if (olen === 2) out.sackPermitted = true;
        break;
      case OPT_SACK: {
        const n = (olen - 2) >>> 3;
        if ((olen - 2) % 8 === 0 && n >= 1 && n <= MAX_SACK_BLOCKS) {
          const s = out.sack;
          for (let k = 0; k < n; k++) {
            s[2 * k] = v.getUint32(i + 2 + 8 * k);
            s[2 * k + 1] = v.getUint32(i + 6 + 8 * k);
          }
          out.sackCount = n;
        }
        break;
      }
      case OPT_TIMESTAMPS:
        if (olen === 10) {
          out.hasTimestamps = true;
          out.tsVal = v.getUint32(i + 2);
          out.tsEcr = v.getUint32(i + 6);
        }
        break;
      default:
        break;
    }
    i += olen;
  }
  out.srcPort = v.getUint16(o + SRC_PORT);
  out.dstPort = v.getUint16(o + DST_PORT);
  out.seq = v.getUint32(o + SEQ);
  out.ack = v.getUint32(o + ACK_NUM);
  out.dataOffset = doff;
  out.flags = v.getUint8(o + FLAGS);
  out.window = v.getUint16(o + WINDOW);
  out.checksum = v.getUint16(o + CHECKSUM);
  out.urgent = v.getUint16(o + URGENT);
  out.headerLength = hl;
  out.payloadOffset = o + hl;
  out.payloadLength = len - hl;
  return true;
}

/** SACK blocks `emit` will write: sackCount cut to the option space left. */
function sackBlocks(h: Header): number {
  if (h.sackCount <= 0) return 0;
  let used = 0;
  if (h.mss >= 0) used += 4;
  if (h.wscale >= 0) used += 4;
  if (h.hasTimestamps || h.sackPermitted) used += h.hasTimestamps ? 12 : 4;
  const room = Math.floor((40 - used - 4) / 8);
  return Math.max(0, Math.min(h.sackCount, MAX_SACK_BLOCKS, room));
}

/**
 * Bytes `emit` writes: 20 plus the selected options, a multiple of 4.
 * @param h the header
 */
export function length(h: Header): number {
  let n = HEADER_LEN;
  if (h.mss >= 0) n += 4;
  if (h.hasTimestamps) n += 12;
  else if (h.sackPermitted) n += 4;
  if (h.wscale >= 0) n += 4;
  const b = sackBlocks(h);
  if (b > 0) n += 4 + 8 * b;
  return n;
}

/**
 * Writes the header and the options the fields select (RFC 9293 §3.1;
 * layout in the file comment). The checksum field is written as given (put 0
 * and call `fillChecksum4` once the payload is in place).
 * @param h the header (dataOffset is ignored: derived from the options)
 * @param v the buffer's DataView, with room for `length(h)` bytes
 * @param o offset to write at
 * @returns bytes written (the header length)
 */
export function emit(h: Header, v: DataView, o: number): number {
  let i = o + HEADER_LEN;
  if (h.mss >= 0) {
    v.setUint32(i, (OPT_MSS << 24) | (4 << 16) | (h.mss & 0xffff));
    i += 4;
  }
  if (h.hasTimestamps) {
    if (h.sackPermitted) v.setUint16(i, (OPT_SACK_PERMITTED << 8) | 2);
    else v.setUint16(i, (OPT_NOP << 8) | OPT_NOP);
    v.setUint16(i + 2, (OPT_TIMESTAMPS << 8) | 10);
    v.setUint32(i + 4, h.tsVal >>> 0);
    v.setUint32(i + 8, h.tsEcr >>> 0);
    i += 12;
  } else if (h.sackPermitted) {
    v.setUint32(i, (OPT_NOP << 24) | (OPT_NOP << 16) | (OPT_SACK_PERMITTED << 8) | 2);
    i += 4;
  }
  if (h.wscale >= 0) {
    v.setUint32(i, (OPT_NOP << 24) | (OPT_WSCALE << 16) | (3 << 8) | (h.wscale & 0xff));
    i += 4;
  }
  const b = sackBlocks(h);
  if (b > 0) {
    v.setUint32(i, (OPT_NOP << 24) | (OPT_NOP << 16) | (OPT_SACK << 8) | (2 + 8 * b));
    i += 4;
    for (let k = 0; k < b; k++) {
      v.setUint32(i, h.sack[2 * k]! >>> 0);
      v.setUint32(i + 4, h.sack[2 * k + 1]! >>> 0);
      i += 8;
    }
  }
  const hl = i - o;
  v.setUint16(o + SRC_PORT, h.srcPort);
  v.setUint16(o + DST_PORT, h.dstPort);
  v.setUint32(o + SEQ, h.seq >>> 0);
  v.setUint32(o + ACK_NUM, h.ack >>> 0);
  v.setUint16(o + DATA_OFFSET, ((hl >>> 2) << 12) | (h.flags & 0xff));
  v.setUint16(o + WINDOW, h.window);
  v.setUint16(o + CHECKSUM, h.checksum);
  v.setUint16(o + URGENT, h.urgent);
  return hl;
}

/**
 * Verifies the checksum of a TCP segment over IPv4 (RFC 9293 §3.1).
 * @param v the buffer's DataView
 * @param o offset of the TCP header
 * @param len segment length (header + payload)
 * @param src IPv4 source address
 * @param dst IPv4 destination address
 * @returns true when the checksum is correct
 */
export function verify4(v: DataView, o: number, len: number, src: Ip4, dst: Ip4): boolean {
  return verifyWith(v, o, len, pseudo4(src, dst, PROTO, len));
}

/**
 * Verifies the checksum of a TCP segment over IPv6 (RFC 8200 §8.1).
 * @param v the buffer's DataView
 * @param o offset of the TCP header
 * @param len segment length (header + payload)
 * @param src IPv6 source address
 * @param dst IPv6 destination address (the final one)
 * @returns true when the checksum is correct
 */
export function verify6(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): boolean {
  return verifyWith(v, o, len, pseudo6(src, dst, PROTO, len));
}

/**
 * Computes and stores the checksum over pseudo-header, header and payload
 * (RFC 9293 §3.1). Unlike UDP, a computed 0 is stored as 0.
 * @param v the buffer's DataView
 * @param o offset of the TCP header (payload already in place)
 * @param len segment length (header + payload)
 * @param src IPv4 source address
 * @param dst IPv4 destination address
 * @returns the checksum stored
 */
export function fillChecksum4(v: DataView, o: number, len: number, src: Ip4, dst: Ip4): number {
  return fillWith(v, o, len, CHECKSUM, pseudo4(src, dst, PROTO, len));
}

/**
 * Computes and stores the checksum over the IPv6 pseudo-header, header and
 * payload (RFC 8200 §8.1, RFC 9293 §3.1).
 * @param v the buffer's DataView
 * @param o offset of the TCP header (payload already in place)
 * @param len segment length (header + payload)
 * @param src IPv6 source address
 * @param dst IPv6 destination address
 * @returns the checksum stored
 */
export function fillChecksum6(v: DataView, o: number, len: number, src: Ip6, dst: Ip6): number {
  return fillWith(v, o, len, CHECKSUM, pseudo6(src, dst, PROTO, len));
}
