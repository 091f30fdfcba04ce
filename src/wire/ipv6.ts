/**
 * Theory of operation: the IPv6 header (RFC 8200 §3) and a safe, bounded walk
 * over its extension headers (RFC 8200 §4).
 *
 *   ver(4) trafficClass(8) flowLabel(20) | payloadLength(2) nextHeader(1)
 *   hopLimit(1) | src(16) | dst(16)                                = 40 bytes
 *
 * `parse` validates the fixed header once (version 6, 40 + payload length
 * within `len`; bytes past the payload are link padding and ignored) and
 * copies the addresses into the header's own arrays, so the result stays
 * valid when the frame buffer is reused. There is no header checksum: upper
 * layers cover the addresses through the pseudo-header of RFC 8200 §8.1
 * (`pseudo6` in checksum.ts). Jumbograms (RFC 2675, payload length 0 plus a
 * Hop-by-Hop option) do not exist on Ethernet: the Jumbo option is walked as
 * an unknown option, whose action bits (11) ask for a Parameter Problem.
 *
 * `walk` follows the Next Header chain from the fixed header to the
 * upper-layer protocol and fills a caller-owned `Chain`:
 * - Hop-by-Hop (0, only directly after the fixed header: §4.1, §4.3) and
 *   Destination Options (60, §4.6) are walked option by option (§4.2):
 *   Pad1 and PadN (contents zero, at most 7 bytes of padding in a row, at
 *   most MAX_OPTIONS other options per header: RFC 4942 §2.1.9.5, as Linux
 *   enforces), Router Alert (5, RFC 2711) in Hop-by-Hop is reported; every
 *   other option is unknown and its two high type bits choose the action
 *   (§4.2): 00 skip, 01 discard, 10 discard and send Parameter Problem code 2
 *   pointing at the option, 11 the same unless the destination is multicast.
 * - Routing (43, §4.4): no routing type is implemented (type 0 is deprecated,
 *   RFC 5095), so Segments Left 0 is skipped and anything else asks for a
 *   Parameter Problem code 0 pointing at the Routing Type field. The gateway
 *   terminates every flow it carries, so it acts as the final destination.
 * - Fragment (44, §4.5): an atomic fragment (offset 0, M clear, RFC 6946) is
 *   skipped; otherwise `fragment` is set with the fields the reassembly needs.
 *   A non-first fragment ends the walk (what follows is data); a first
 *   fragment is walked on, and a header chain that does not fit in it asks
 *   for Parameter Problem code 3 (RFC 7112 §5). A fragment whose length is
 *   not a multiple of 8 while M is set, or whose end passes 65535, asks for
 *   code 0 pointing at the Payload Length or the Fragment Offset (§4.5).
 * - ESP (50), AH (51) and No Next Header (59, §4.7) end the walk and are
 *   reported as `proto`: vmnet terminates flows and cannot carry IPsec.
 * - Any other value is the upper-layer protocol (TCP, UDP, ICMPv6, or one
 *   the caller does not know: it then sends Parameter Problem code 1 with
 *   `protoPointer`, §4).
 * A Parameter Problem outcome sets `action` (ACTION_*), `problemCode` and
 * `problemPointer` (an offset from the start of the IPv6 header, as the ICMPv6
 * Pointer field wants it, RFC 4443 §3.4) and ends the walk; rate limiting and
 * the "never about an error or to a multicast source" rules of RFC 4443 §2.4
 * are the caller's. `walk` returns false, for a silent drop, when a header or
 * an option runs past the payload (outside a first fragment), PadN carries
 * data or too much padding, or the chain passes `maxHeaders` headers or
 * `maxBytes` bytes: every loop is bounded by the payload and by those limits,
 * and nothing is read past `len`.
 *
 * `emit` writes the fixed header from the wire fields; `payloadOffset` is a
 * parse output. The 8-byte Fragment header has its own small codec
 * (`parseFragment`, `emitFragment`) for the reassembly and for tests.
 *
 * Pure: no I/O, no allocation after `blank()` / `blankChain()`, no Node
 * runtime imports.
 */
import { readIp6, writeIp6, type Ip6 } from './addr.js';

/** Length of the fixed header. */
export const HEADER_LEN = 40;
/** The minimum link MTU every IPv6 link must carry (RFC 8200 §5). */
export const MIN_MTU = 1280;

/** Next Header: Hop-by-Hop Options (RFC 8200 §4.3). */
export const NH_HOP_BY_HOP = 0;
/** Next Header: TCP. */
export const NH_TCP = 6;
/** Next Header: UDP. */
export const NH_UDP = 17;
/** Next Header: Routing (RFC 8200 §4.4). */
export const NH_ROUTING = 43;
/** Next Header: Fragment (RFC 8200 §4.5). */
export const NH_FRAGMENT = 44;
/** Next Header: Encapsulating Security Payload (RFC 4303). */
export const NH_ESP = 50;
/** Next Header: Authentication Header (RFC 4302). */
export const NH_AH = 51;
/** Next Header: ICMPv6 (RFC 4443). */
export const NH_ICMPV6 = 58;
/** Next Header: No Next Header (RFC 8200 §4.7). */
export const NH_NONE = 59;
/** Next Header: Destination Options (RFC 8200 §4.6). */
export const NH_DEST_OPTS = 60;

/** Option type Pad1 (RFC 8200 §4.2). */
export const OPT_PAD1 = 0;
/** Option type PadN (RFC 8200 §4.2). */
export const OPT_PADN = 1;
/** Option type Router Alert, Hop-by-Hop only (RFC 2711 §2.1). */
export const OPT_ROUTER_ALERT = 5;

/** Walk outcome: go on with the upper layer (or the reassembly). */
export const ACTION_NONE = 0;
/** Walk outcome: drop the packet silently (option action 01, RFC 8200 §4.2). */
export const ACTION_DISCARD = 1;
/** Walk outcome: drop and send Parameter Problem, even if the destination was multicast (option action 10). */
export const ACTION_PROBLEM = 2;
/** Walk outcome: drop and send Parameter Problem unless the destination was multicast (option action 11, RFC 4443 §2.4(e)). */
export const ACTION_PROBLEM_UNICAST = 3;

/** Parameter Problem code 0: erroneous header field (RFC 4443 §3.4). */
export const PROBLEM_HEADER = 0;
/** Parameter Problem code 1: unrecognized Next Header type. */
export const PROBLEM_NEXT_HEADER = 1;
/** Parameter Problem code 2: unrecognized IPv6 option. */
export const PROBLEM_OPTION = 2;
/** Parameter Problem code 3: first fragment has an incomplete header chain (RFC 7112 §5). */
export const PROBLEM_INCOMPLETE_CHAIN = 3;

/** Default bound on the extension headers one walk follows. */
export const MAX_HEADERS = 8;
/** Default bound on the bytes of extension headers one walk follows. */
export const MAX_CHAIN_BYTES = 1024;
/** Non-padding options allowed in one options header (Linux's max_hbh_opts_number / max_dst_opts_number). */
export const MAX_OPTIONS = 8;
/** Padding allowed in a row inside an options header (RFC 4942 §2.1.9.5). */
export const MAX_PADDING = 7;

/** Offset of the version / traffic class / flow label word. */
export const VER_TC_FLOW = 0;
/** Offset of the payload length. */
export const PAYLOAD_LENGTH = 4;
/** Offset of the next header. */
export const NEXT_HEADER = 6;
/** Offset of the hop limit. */
export const HOP_LIMIT = 7;
/** Offset of the source address. */
export const SRC = 8;
/** Offset of the destination address. */
export const DST = 24;

/** A decoded IPv6 fixed header. */
export interface Header {
  /** Traffic class: DSCP and ECN (RFC 8200 §7). */
  trafficClass: number;
  /** Flow label, 20 bits (RFC 8200 §6, RFC 6437). */
  flowLabel: number;
  /** Bytes after the fixed header, extension headers included. */
  payloadLength: number;
  /** Type of the header after the fixed one. */
  nextHeader: number;
  /** Hop limit. */
  hopLimit: number;
  /** Source address (16 bytes, owned by this object). */
  src: Ip6;
  /** Destination address (16 bytes, owned by this object). */
  dst: Ip6;
  /** Parse output: absolute offset of the payload in the view. */
  payloadOffset: number;
}

/** A header with every field initialised (hop limit 64, zero addresses). Allocates the two address arrays once. */
export function blank(): Header {
  return {
    trafficClass: 0,
    flowLabel: 0,
    payloadLength: 0,
    nextHeader: NH_NONE,
    hopLimit: 64,
    src: new Uint8Array(16),
    dst: new Uint8Array(16),
    payloadOffset: 0,
  };
}

/** The version nibble. The packet must be at least 40 bytes. */
export const version = (v: DataView, o: number): number => v.getUint8(o) >>> 4;
/** The traffic class. */
export const trafficClass = (v: DataView, o: number): number => (v.getUint16(o) >>> 4) & 0xff;
/** The flow label (20 bits). */
export const flowLabel = (v: DataView, o: number): number => v.getUint32(o) & 0xfffff;
/** The payload length field. */
export const payloadLength = (v: DataView, o: number): number => v.getUint16(o + PAYLOAD_LENGTH);
/** The next header field. */
export const nextHeader = (v: DataView, o: number): number => v.getUint8(o + NEXT_HEADER);
/** The hop limit field. */
export const hopLimit = (v: DataView, o: number): number => v.getUint8(o + HOP_LIMIT);

/**
 * Decodes and validates the fixed header (RFC 8200 §3).
 * @param v the buffer's DataView
 * @param o offset of the header (the Ethernet payload)
 * @param len bytes available; may exceed 40 + payload length (link padding)
 * @param out reused header to fill (addresses copied into its arrays)
 * @returns false when shorter than 40 bytes, the version is not 6, or the
 *   payload does not fit in `len`; `out` must then not be used. Never throws.
 */
export function parse(v: DataView, o: number, len: number, out: Header): boolean {
  if (len < HEADER_LEN) return false;
  const w = v.getUint32(o + VER_TC_FLOW);
  if (w >>> 28 !== 6) return false;
  const pl = v.getUint16(o + PAYLOAD_LENGTH);
  if (HEADER_LEN + pl > len) return false;
  out.trafficClass = (w >>> 20) & 0xff;
  out.flowLabel = w & 0xfffff;
  out.payloadLength = pl;
  out.nextHeader = v.getUint8(o + NEXT_HEADER);
  out.hopLimit = v.getUint8(o + HOP_LIMIT);
  readIp6(v, o + SRC, out.src);
  readIp6(v, o + DST, out.dst);
  out.payloadOffset = o + HEADER_LEN;
  return true;
}

/** Bytes `emit` writes: always HEADER_LEN (40). @param _h the header */
export function length(_h: Header): number {
  return HEADER_LEN;
}

/**
 * Writes the fixed header (RFC 8200 §3). Set `payloadLength` to the bytes
 * that follow (extension headers and upper layer).
 * @param h the header
 * @param v the buffer's DataView, with room for 40 bytes
 * @param o offset to write at
 * @returns bytes written (40)
 */
export function emit(h: Header, v: DataView, o: number): number {
  v.setUint32(o + VER_TC_FLOW, ((6 << 28) | ((h.trafficClass & 0xff) << 20) | (h.flowLabel & 0xfffff)) >>> 0);
  v.setUint16(o + PAYLOAD_LENGTH, h.payloadLength);
  v.setUint8(o + NEXT_HEADER, h.nextHeader);
  v.setUint8(o + HOP_LIMIT, h.hopLimit);
  writeIp6(v, o + SRC, h.src);
  writeIp6(v, o + DST, h.dst);
  return HEADER_LEN;
}

// ------------------------------------------------------------ extension headers

/** Where a walk of the extension header chain ended, and what it met on the way. */
export interface Chain {
  /** ACTION_*: what the caller must do with the packet. */
  action: number;
  /** With ACTION_PROBLEM*: the Parameter Problem code (PROBLEM_*); else -1. */
  problemCode: number;
  /** With ACTION_PROBLEM*: offset from the IPv6 header of the offending byte (RFC 4443 §3.4); else -1. */
  problemPointer: number;
  /** The upper-layer protocol (or NH_NONE, NH_ESP, NH_AH, an unknown value) where the walk ended. */
  proto: number;
  /** Absolute offset in the view of the upper-layer header. */
  offset: number;
  /** Bytes from `offset` to the end of the IPv6 payload. */
  length: number;
  /** Offset from the IPv6 header of the Next Header field that named `proto` (6 without extension headers): the pointer of a Parameter Problem code 1. */
  protoPointer: number;
  /** Extension headers walked. */
  count: number;
  /** A Hop-by-Hop Options header was present. */
  hopByHop: boolean;
  /** The Router Alert value (RFC 2711; 0 = MLD), -1 when absent. */
  routerAlert: number;
  /** Routing type of a Routing header, -1 when absent. */
  routingType: number;
  /** Segments Left of a Routing header, -1 when absent. */
  segmentsLeft: number;
  /** An atomic fragment (offset 0, M clear, RFC 6946) was skipped. */
  atomicFragment: boolean;
  /** A (non-atomic) Fragment header was met: the packet goes to reassembly. */
  fragment: boolean;
  /** Fragment: offset from the IPv6 header of the Fragment header (the unfragmentable part ends there). */
  fragmentHeader: number;
  /** Fragment: offset of this fragment's data in the original packet, in bytes. */
  fragOffset: number;
  /** Fragment: the M flag (more fragments follow). */
  fragMore: boolean;
  /** Fragment: identification (u32). */
  fragId: number;
  /** Fragment: the Next Header of the Fragment header (the first header of the fragmentable part). */
  fragNextHeader: number;
  /** Fragment: absolute offset of the fragment data (after the Fragment header). */
  fragDataOffset: number;
  /** Fragment: bytes of fragment data. */
  fragDataLength: number;
}

/** A chain with every field initialised; reuse it across walks. */
export function blankChain(): Chain {
  return {
    action: ACTION_NONE,
    problemCode: -1,
    problemPointer: -1,
    proto: NH_NONE,
    offset: 0,
    length: 0,
    protoPointer: NEXT_HEADER,
    count: 0,
    hopByHop: false,
    routerAlert: -1,
    routingType: -1,
    segmentsLeft: -1,
    atomicFragment: false,
    fragment: false,
    fragmentHeader: -1,
    fragOffset: 0,
    fragMore: false,
    fragId: 0,
    fragNextHeader: NH_NONE,
    fragDataOffset: 0,
    fragDataLength: 0,
  };
}

/** Sets a Parameter Problem outcome; returns true (the walk is well formed, the packet is not). */
function problem(out: Chain, action: number, code: number, pointer: number): boolean {
  out.action = action;
  out.problemCode = code;
  out.problemPointer = pointer;
  return true;
}

/**
 * Walks the options of a Hop-by-Hop or Destination Options header (RFC 8200
 * §4.2) whose bytes are [p, end).
 * @param base offset of the IPv6 header (for problem pointers)
 * @returns false when malformed (silent drop); true otherwise, with
 *   `out.action` set when an unknown option asks for it
 */
function walkOptions(v: DataView, p: number, end: number, base: number, hopByHop: boolean, out: Chain): boolean {
  let pad = 0;
  let options = 0;
  while (p < end) {
    const t = v.getUint8(p);
    if (t === OPT_PAD1) {
      if (++pad > MAX_PADDING) return false;
      p++;
      continue;
    }
    if (p + 2 > end) return false;
    const n = v.getUint8(p + 1);
    if (p + 2 + n > end) return false;
    if (t === OPT_PADN) {
      pad += n + 2;
      if (pad > MAX_PADDING) return false;
      for (let i = 0; i < n; i++) if (v.getUint8(p + 2 + i) !== 0) return false;
      p += n + 2;
      continue;
    }
    pad = 0;
    if (++options > MAX_OPTIONS) return false;
    if (t === OPT_ROUTER_ALERT && hopByHop) {
      if (n !== 2) return false;
      out.routerAlert = v.getUint16(p + 2);
    } else if (t >>> 6 !== 0) {
      const action = t >>> 6;
      if (action === ACTION_DISCARD) {
        out.action = ACTION_DISCARD;
        return true;
      }
      return problem(out, action, PROBLEM_OPTION, p - base);
    }
    p += n + 2;
  }
  return true;
}

/**
 * Walks the extension header chain of a packet whose fixed header `parse`
 * accepted (RFC 8200 §4; rules and bounds in the file comment).
 * @param v the buffer's DataView
 * @param o offset of the IPv6 header
 * @param len bytes available from `o` (as given to `parse`)
 * @param out reused chain to fill
 * @param maxHeaders most extension headers to follow (default MAX_HEADERS)
 * @param maxBytes most extension header bytes to follow (default MAX_CHAIN_BYTES)
 * @returns false to drop silently (malformed, or over a bound); true
 *   otherwise, with `out.action` telling whether to go on. Never throws and
 *   never reads past the IPv6 payload.
 */
export function walk(v: DataView, o: number, len: number, out: Chain, maxHeaders = MAX_HEADERS, maxBytes = MAX_CHAIN_BYTES): boolean {
  if (len < HEADER_LEN) return false;
  const end = o + HEADER_LEN + v.getUint16(o + PAYLOAD_LENGTH);
  if (end > o + len) return false;
  out.action = ACTION_NONE;
  out.problemCode = -1;
  out.problemPointer = -1;
  out.count = 0;
  out.hopByHop = false;
  out.routerAlert = -1;
  out.routingType = -1;
  out.segmentsLeft = -1;
  out.atomicFragment = false;
  out.fragment = false;
  out.fragmentHeader = -1;
  out.fragOffset = 0;
  out.fragMore = false;
  out.fragId = 0;
  out.fragNextHeader = NH_NONE;
  out.fragDataOffset = 0;
  out.fragDataLength = 0;
  let nh = v.getUint8(o + NEXT_HEADER);
  let nhPointer = NEXT_HEADER;
  let p = o + HEADER_LEN;
  for (;;) {
    out.proto = nh;
    out.offset = p;
    out.length = end - p;
    out.protoPointer = nhPointer;
    if (nh !== NH_HOP_BY_HOP && nh !== NH_DEST_OPTS && nh !== NH_ROUTING && nh !== NH_FRAGMENT) return true;
    if (nh === NH_HOP_BY_HOP && p !== o + HEADER_LEN) return problem(out, ACTION_PROBLEM_UNICAST, PROBLEM_NEXT_HEADER, nhPointer);
    if (++out.count > maxHeaders) return false;
    const hl = nh === NH_FRAGMENT ? 8 : p + 2 <= end ? (v.getUint8(p + 1) + 1) << 3 : 8;
    if (p + hl > end) return out.fragment ? problem(out, ACTION_PROBLEM_UNICAST, PROBLEM_INCOMPLETE_CHAIN, 0) : false;
    if (p + hl - (o + HEADER_LEN) > maxBytes) return false;
    const next = v.getUint8(p);
    if (nh === NH_HOP_BY_HOP || nh === NH_DEST_OPTS) {
      if (nh === NH_HOP_BY_HOP) out.hopByHop = true;
      if (!walkOptions(v, p + 2, p + hl, o, nh === NH_HOP_BY_HOP, out)) return false;
      if (out.action !== ACTION_NONE) return true;
    } else if (nh === NH_ROUTING) {
      out.routingType = v.getUint8(p + 2);
      out.segmentsLeft = v.getUint8(p + 3);
      if (out.segmentsLeft !== 0) return problem(out, ACTION_PROBLEM_UNICAST, PROBLEM_HEADER, p + 2 - o);
    } else {
      const w = v.getUint16(p + 2);
      const fragOffset = w & 0xfff8;
      const more = (w & 1) === 1;
      if (fragOffset === 0 && !more) {
        out.atomicFragment = true;
      } else {
        if (out.fragment) return false; // a second Fragment header
        const dataLength = end - (p + 8);
        if (more && (dataLength & 7) !== 0) return problem(out, ACTION_PROBLEM_UNICAST, PROBLEM_HEADER, PAYLOAD_LENGTH);
        if (fragOffset + dataLength > 0xffff) return problem(out, ACTION_PROBLEM_UNICAST, PROBLEM_HEADER, p + 2 - o);
        out.fragment = true;
        out.fragmentHeader = p - o;
        out.fragOffset = fragOffset;
        out.fragMore = more;
        out.fragId = v.getUint32(p + 4);
        out.fragNextHeader = next;
        out.fragDataOffset = p + 8;
        out.fragDataLength = dataLength;
        if (fragOffset !== 0) {
          out.proto = next;
          out.offset = p + 8;
          out.length = dataLength;
          out.protoPointer = p - o;
          return true;
        }
      }
    }
    nhPointer = p - o;
    nh = next;
    p += hl;
  }
}

// ------------------------------------------------------------ fragment header

/** Length of the Fragment header (RFC 8200 §4.5). */
export const FRAGMENT_LEN = 8;

/** A decoded Fragment header (RFC 8200 §4.5). */
export interface Fragment {
  /** Next Header of the fragmentable part. */
  nextHeader: number;
  /** Fragment offset in bytes (a multiple of 8). */
  offset: number;
  /** The M flag: more fragments follow. */
  more: boolean;
  /** Identification (u32). */
  id: number;
}

/** A Fragment header with every field initialised. */
export function blankFragment(): Fragment {
  return { nextHeader: NH_NONE, offset: 0, more: false, id: 0 };
}

/**
 * Decodes a Fragment header; the reserved fields are ignored (RFC 8200 §4.5).
 * @param v the buffer's DataView
 * @param o offset of the Fragment header
 * @param len bytes available from `o`
 * @param out reused header to fill
 * @returns false when fewer than 8 bytes are available
 */
export function parseFragment(v: DataView, o: number, len: number, out: Fragment): boolean {
  if (len < FRAGMENT_LEN) return false;
  const w = v.getUint16(o + 2);
  out.nextHeader = v.getUint8(o);
  out.offset = w & 0xfff8;
  out.more = (w & 1) === 1;
  out.id = v.getUint32(o + 4);
  return true;
}

/** Bytes `emitFragment` writes: FRAGMENT_LEN (8). @param _h the header */
export function fragmentLength(_h: Fragment): number {
  return FRAGMENT_LEN;
}

/**
 * Writes a Fragment header, reserved fields zero (RFC 8200 §4.5).
 * @param h the header (`offset` in bytes, a multiple of 8)
 * @param v the buffer's DataView, with room for 8 bytes
 * @param o offset to write at
 * @returns bytes written (8)
 */
export function emitFragment(h: Fragment, v: DataView, o: number): number {
  v.setUint8(o, h.nextHeader);
  v.setUint8(o + 1, 0);
  v.setUint16(o + 2, (h.offset & 0xfff8) | (h.more ? 1 : 0));
  v.setUint32(o + 4, h.id >>> 0);
  return FRAGMENT_LEN;
}
