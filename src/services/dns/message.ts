/**
 * Theory of operation: the few raw-byte operations the DNS service needs on
 * messages it must not re-encode. Forwarded answers pass through as bytes
 * (only the ID changes), so matching, truncating and error replies work on
 * the RFC 1035 §4.1 wire format directly:
 *
 *   header (12 bytes: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT)
 *   question (QNAME, QTYPE, QCLASS) · answer RRs · authority RRs · additional RRs
 *
 * Error replies (FORMERR, SERVFAIL, NOTIMP, REFUSED) copy the question bytes
 * verbatim, so a guest that randomises letter case sees its own name back.
 * A truncated reply (RFC 1035 §4.2.1, RFC 7766 §5) is the header with TC set,
 * the question and the OPT record if any (RFC 6891 §7), with every other
 * section emptied: the client repeats the query over TCP.
 *
 * Pure: no I/O, no Node runtime imports. Every function tolerates garbage
 * (it returns -1/false instead of throwing).
 */

/** Size of the fixed DNS header. */
export const HEADER_LEN = 12;
/** RCODE values (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS = 16 via the OPT extended RCODE). */
export const NOERROR = 0;
export const FORMERR = 1;
export const SERVFAIL = 2;
export const NXDOMAIN = 3;
export const NOTIMP = 4;
export const REFUSED = 5;
/** UDP payload size vmnet advertises in its own OPT records (the DNS Flag Day 2020 value). */
export const EDNS_UDP_SIZE = 1232;
/** Largest UDP reply to a client without EDNS (RFC 1035 §2.3.4). */
export const CLASSIC_UDP_SIZE = 512;

const QR = 0x80; // in byte 2
const TC = 0x02; // in byte 2
const RD = 0x01; // in byte 2
const RA = 0x80; // in byte 3
const CD = 0x10; // in byte 3
const TYPE_OPT = 41;

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const put16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >>> 8) & 255;
  b[o + 1] = v & 255;
};

/** The message ID. */
export const id = (b: Uint8Array): number => u16(b, 0);
/** Overwrites the message ID in place. */
export const setId = (b: Uint8Array, v: number): void => put16(b, 0, v);
/** True for a response (QR bit). */
export const isResponse = (b: Uint8Array): boolean => (b[2]! & QR) !== 0;
/** True when the TC (truncated) bit is set. */
export const isTruncated = (b: Uint8Array): boolean => (b[2]! & TC) !== 0;
/** The OPCODE (0 = QUERY). */
export const opcode = (b: Uint8Array): number => (b[2]! >> 3) & 15;
/** The 4-bit header RCODE. */
export const rcode = (b: Uint8Array): number => b[3]! & 15;
/** The question count. */
export const qdcount = (b: Uint8Array): number => u16(b, 4);

/**
 * Skips a domain name (RFC 1035 §3.1, §4.1.4 pointers).
 * @returns the offset after the name, or -1 when it runs past `b` or is malformed
 */
export function skipName(b: Uint8Array, o: number): number {
  for (let n = 0; n < 128; n++) {
    if (o >= b.length) return -1;
    const len = b[o]!;
    if (len === 0) return o + 1;
    if ((len & 0xc0) === 0xc0) return o + 2 <= b.length ? o + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    o += 1 + len;
  }
  return -1;
}

/**
 * Finds the end of the first question.
 * @returns the offset after QTYPE/QCLASS of question 1, or -1 when there is
 *   no complete question
 */
export function questionEnd(b: Uint8Array): number {
  if (b.length < HEADER_LEN || qdcount(b) < 1) return -1;
  const e = skipName(b, HEADER_LEN);
  return e === -1 || e + 4 > b.length ? -1 : e + 4;
}

/**
 * Compares the first question of `reply` with the question bytes
 * `query[12..qEnd)`, ignoring ASCII letter case (RFC 4343).
 */
export function sameQuestion(reply: Uint8Array, query: Uint8Array, qEnd: number): boolean {
  if (reply.length < qEnd || qdcount(reply) !== 1) return false;
  for (let i = HEADER_LEN; i < qEnd; i++) {
    let x = reply[i]!;
    let y = query[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/**
 * Locates the OPT pseudo-record (RFC 6891 §6.1.1) in the additional section.
 * @param qEnd offset after the question section (or 12 when there is none)
 * @returns [start, end) of the OPT RR, or null when absent or unparseable
 */
export function findOpt(b: Uint8Array, qEnd: number): [number, number] | null {
  if (b.length < HEADER_LEN) return null;
  const rrs = u16(b, 6) + u16(b, 8);
  const ar = u16(b, 10);
  let o = qEnd;
  // Questions past the first one (not produced by vmnet, tolerated here).
  for (let q = 1; q < qdcount(b); q++) {
    o = skipName(b, o);
    if (o === -1 || o + 4 > b.length) return null;
    o += 4;
  }
  for (let i = 0; i < rrs + ar; i++) {
    const start = o;
    o = skipName(b, o);
    if (o === -1 || o + 10 > b.length) return null;
    const end = o + 10 + u16(b, o + 8);
    if (end > b.length) return null;
    if (i >= rrs && u16(b, o) === TYPE_OPT) return [start, end];
    o = end;
  }
  return null;
}

/** Options of {@link errorReply}. */
export interface ErrorReplyOptions {
  /** Set RA (recursion available). */
  ra: boolean;
  /** Include a bare OPT record (the query had one, RFC 6891 §7). */
  edns: boolean;
  /** OPT extended RCODE (upper 8 bits), e.g. 1 with rcode 0 = BADVERS (16). */
  extendedRcode?: number;
}

/**
 * Builds a reply with no records to `query`: same ID and OPCODE, RD and CD
 * copied (RFC 1035 §4.1.1, RFC 4035 §3.2.2), QR set, the first question
 * copied verbatim when it can be found.
 * @param rcode the low 4 RCODE bits
 */
export function errorReply(query: Uint8Array, rcode: number, opts: ErrorReplyOptions): Uint8Array {
  const qEnd = questionEnd(query);
  const qLen = qEnd === -1 ? 0 : qEnd - HEADER_LEN;
  const optLen = opts.edns ? 11 : 0;
  const out = new Uint8Array(HEADER_LEN + qLen + optLen);
  out[0] = query[0] ?? 0;
  out[1] = query[1] ?? 0;
  out[2] = QR | ((query[2] ?? 0) & 0x78) | ((query[2] ?? 0) & RD);
  out[3] = (opts.ra ? RA : 0) | ((query[3] ?? 0) & CD) | (rcode & 15);
  put16(out, 4, qLen ? 1 : 0);
  put16(out, 10, optLen ? 1 : 0);
  if (qLen) out.set(query.subarray(HEADER_LEN, qEnd), HEADER_LEN);
  if (optLen) writeOpt(out, HEADER_LEN + qLen, opts.extendedRcode ?? 0);
  return out;
}

/** Writes an 11-byte OPT RR: root name, TYPE 41, CLASS = UDP size, TTL = ext-rcode/version 0/flags 0, no options. */
function writeOpt(b: Uint8Array, o: number, extendedRcode: number): void {
  b[o] = 0;
  put16(b, o + 1, TYPE_OPT);
  put16(b, o + 3, EDNS_UDP_SIZE);
  b[o + 5] = extendedRcode & 255;
  // version, flags and RDLENGTH stay 0
}

/**
 * Truncates `reply` for a UDP client: header with TC set and the answer,
 * authority and other additional records dropped; the question and the OPT
 * record (if any) are kept. Returns `reply` itself when it already fits.
 * @param maxLen the client's UDP limit (512, or its EDNS payload size)
 */
export function truncate(reply: Uint8Array, maxLen: number): Uint8Array {
  if (reply.length <= maxLen) return reply;
  const qEnd = questionEnd(reply);
  const body = qEnd === -1 ? HEADER_LEN : qEnd;
  const opt = findOpt(reply, body);
  const optLen = opt ? opt[1] - opt[0] : 0;
  const out = new Uint8Array(body + optLen);
  out.set(reply.subarray(0, body), 0);
  if (opt) out.set(reply.subarray(opt[0], opt[1]), body);
  out[2] = out[2]! | TC;
  put16(out, 4, qEnd === -1 ? 0 : 1);
  put16(out, 6, 0);
  put16(out, 8, 0);
  put16(out, 10, opt ? 1 : 0);
  return out;
}
