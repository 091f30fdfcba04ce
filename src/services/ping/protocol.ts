/**
 * Theory of operation: the pipe protocol between the gateway and its ping
 * helper (native/ping-helper.c, whose header comment is the reference). Each
 * message is a 4-byte big-endian length, a type byte and a body; the gateway
 * sends OPEN, SEND and CLOSE, the helper answers with HELLO, OPENED,
 * OPEN_FAILED, REPLY, ICMP_ERROR and SEND_FAILED. Flow ids carry the helper's
 * slot in their low 12 bits and a generation above.
 *
 * Pure: encoders return fresh buffers and the reader splits a byte stream
 * into decoded messages. This is the control path (one message per ping), so
 * messages are plain objects, not views into a shared buffer.
 */

/** The protocol version the helper announces in HELLO. */
export const PROTOCOL_VERSION = 1;
/** Flow ids pick a helper slot with their low bits: at most this many flows at once. */
export const MAX_SLOTS = 4096;
/** Largest length prefix either side accepts (type + body). */
export const MAX_BODY = 65536 + 64;

/** Message types (see native/ping-helper.c). */
const MSG_OPEN = 1;
const MSG_SEND = 2;
const MSG_CLOSE = 3;
const MSG_HELLO = 0x80;
const MSG_OPENED = 0x81;
const MSG_OPEN_FAILED = 0x82;
const MSG_REPLY = 0x83;
const MSG_ICMP_ERROR = 0x84;
const MSG_SEND_FAILED = 0x85;

/** sock_extended_err origins (linux/errqueue.h): the error came in an ICMP or ICMPv6 message. */
export const ORIGIN_ICMP = 2;
export const ORIGIN_ICMP6 = 3;

/** Linux errno values the relay tells apart. */
export const EBADF = 9;
export const EACCES = 13;
export const ENETUNREACH = 101;
export const EHOSTUNREACH = 113;

export type Family = 4 | 6;

/** A message from the helper. Addresses are 4 or 16 bytes, as the family says. */
export type HelperMessage =
  | { type: 'hello'; version: number; slots: number }
  | { type: 'opened'; flow: number; ident: number; family: Family; local: Uint8Array }
  | { type: 'open-failed'; flow: number; errno: number }
  | { type: 'reply'; flow: number; family: Family; ttl: number; from: Uint8Array; message: Uint8Array }
  | { type: 'icmp-error'; flow: number; family: Family; origin: number; icmpType: number; code: number; info: number; offender: Uint8Array; request: Uint8Array }
  | { type: 'send-failed'; flow: number; errno: number };

const addrLen = (f: number): number => (f === 4 ? 4 : f === 6 ? 16 : 0);

function frame(type: number, bodyLen: number): { out: Uint8Array; v: DataView } {
  const out = new Uint8Array(5 + bodyLen);
  const v = new DataView(out.buffer);
  v.setUint32(0, 1 + bodyLen);
  v.setUint8(4, type);
  return { out, v };
}

/**
 * OPEN: a ping socket for `flow`, connected to `dst`, sending with `ttl`.
 * @param dst 4 bytes (family 4) or 16 (family 6)
 */
export function encodeOpen(flow: number, family: Family, ttl: number, dst: Uint8Array): Uint8Array {
  const { out, v } = frame(MSG_OPEN, 6 + dst.length);
  v.setUint32(5, flow >>> 0);
  v.setUint8(9, family);
  v.setUint8(10, ttl & 255);
  out.set(dst, 11);
  return out;
}

/**
 * SEND: one echo request on `flow` with `ttl` (TTL or hop limit). The
 * message (ICMP header and payload) is copied.
 */
export function encodeSend(flow: number, ttl: number, message: Uint8Array): Uint8Array {
  const { out, v } = frame(MSG_SEND, 5 + message.length);
  v.setUint32(5, flow >>> 0);
  v.setUint8(9, ttl & 255);
  out.set(message, 10);
  return out;
}

/** CLOSE: the helper closes the flow's socket. */
export function encodeClose(flow: number): Uint8Array {
  const { out, v } = frame(MSG_CLOSE, 4);
  v.setUint32(5, flow >>> 0);
  return out;
}

/**
 * Decodes one message body (type byte first, length prefix already removed).
 * @returns null for an unknown type or a body of the wrong size
 */
export function decode(b: Uint8Array): HelperMessage | null {
  if (b.length < 1) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = b.length;
  const type = b[0]!;
  if (type === MSG_HELLO) return n === 9 ? { type: 'hello', version: v.getUint32(1), slots: v.getUint32(5) } : null;
  if (n < 5) return null;
  const flow = v.getUint32(1);
  switch (type) {
    case MSG_OPENED: {
      const family = b[7];
      const al = addrLen(family ?? 0);
      if (al === 0 || n !== 8 + al) return null;
      return { type: 'opened', flow, ident: v.getUint16(5), family: family as Family, local: b.slice(8, 8 + al) };
    }
    case MSG_OPEN_FAILED:
    case MSG_SEND_FAILED:
      if (n !== 9) return null;
      return { type: type === MSG_OPEN_FAILED ? 'open-failed' : 'send-failed', flow, errno: v.getUint32(5) };
    case MSG_REPLY: {
      const family = b[5] ?? 0;
      const al = addrLen(family);
      if (al === 0 || n < 7 + al) return null;
      return { type: 'reply', flow, family: family as Family, ttl: b[6]!, from: b.slice(7, 7 + al), message: b.slice(7 + al) };
    }
    case MSG_ICMP_ERROR: {
      const family = b[5] ?? 0;
      const al = addrLen(family);
      if (al === 0 || n < 13 + al) return null;
      return {
        type: 'icmp-error',
        flow,
        family: family as Family,
        origin: b[6]!,
        icmpType: b[7]!,
        code: b[8]!,
        info: v.getUint32(9),
        offender: b.slice(13, 13 + al),
        request: b.slice(13 + al),
      };
    }
    default:
      return null;
  }
}

/**
 * Splits a byte stream into message bodies: `push` each chunk as it comes;
 * `onMessage` gets every complete body (type byte first). A length prefix of
 * 0 or over MAX_BODY is a protocol error: `push` returns false and the
 * stream must be abandoned.
 */
export class MessageReader {
  private buf = new Uint8Array(0);
  private broken = false;

  constructor(private readonly onMessage: (body: Uint8Array) => void) {}

  /** @returns false on a protocol error (the reader then stays broken) */
  push(chunk: Uint8Array): boolean {
    if (this.broken) return false;
    let b = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    let off = 0;
    while (b.length - off >= 4) {
      const len = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
      if (len === 0 || len > MAX_BODY) {
        this.buf = new Uint8Array(0);
        this.broken = true;
        return false;
      }
      if (b.length - off - 4 < len) break;
      this.onMessage(b.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    b = b.subarray(off);
    this.buf = b.length === 0 ? new Uint8Array(0) : b.slice();
    return true;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
