/**
 * Theory of operation: the DHCPv6 message codec (RFC 8415), for a server
 * that answers stateless Information-Requests (DNS servers, search list) and
 * leases non-temporary addresses (IA_NA). DHCPv6 is control plane, so a
 * message decodes into a `Message` repr with typed fields for the options
 * vmnet uses; every other option is kept raw, in order, so nothing a client
 * sends is lost.
 *
 *   client/server (§8): msgType(1) transactionId(3) options
 *   relay (§9):         msgType(1) hopCount(1) linkAddress(16) peerAddress(16) options
 *   option (§21.1):     code(2) length(2) value
 *
 * Typed options: Client and Server Identifier (§21.2, §21.3: the DUID kept
 * opaque, 3..130 bytes, its type read by `duidType`, §11), IA_NA (§21.4) with
 * IA Addresses (§21.6) and Status Codes (§21.13) inside, Option Request
 * (§21.7), Preference (§21.8), Elapsed Time (§21.9), Relay Message (§21.10,
 * the inner message as bytes: parse it again, the caller bounding the depth
 * by HOP_COUNT_LIMIT), Status Code, Rapid Commit (§21.14), Interface-Id
 * (§21.18), DNS Recursive Name Servers and Domain Search List (RFC 3646 §3,
 * §4; names uncompressed per RFC 8415 §10, see dns-name.ts) and Information
 * Refresh Time (§21.23).
 *
 * Parsing is strict about structure and tolerant about values, like
 * dhcpv4.ts: a message shorter than its header, of an unknown type (§16:
 * discard), whose options do not tile it exactly (an option running past the
 * end), or with more than MAX_OPTIONS options or MAX_IA IA_NAs, is invalid
 * (`parse` returns false). A typed option with a malformed value (wrong
 * length, a DUID too short or long, undecodable names, an IA_NA whose own
 * options do not tile it or pass MAX_OPTIONS / MAX_IA_ADDRESSES) and every
 * repeated instance of a single-instance option land in `unknown` raw; the
 * typed field keeps the first well-formed instance. `parse` never throws and
 * reads nothing past `len`. Status messages are UTF-8 (§21.13); invalid
 * sequences decode to U+FFFD.
 *
 * `emit` writes the header and the options in a fixed order that reproduces
 * both ISC dhclient 4.4 and dnsmasq 2.90 byte for byte: Client ID, Server ID,
 * ORO, Elapsed Time, IA_NAs (addresses, then status), Status Code,
 * Preference, Rapid Commit, Interface-Id, Relay Message, Domain Search List,
 * DNS servers, Information Refresh Time, then the raw ones.
 *
 * Pure: no I/O, no Node runtime imports, no module state.
 */
import { IP6_LEN, readIp6, writeIp6, type Ip6, type Mac } from './addr.js';
import { decodeNames, emitNames, namesLength } from './dns-name.js';

/** UDP port clients listen on (RFC 8415 §7.2). */
export const CLIENT_PORT = 546;
/** UDP port servers and relay agents listen on (RFC 8415 §7.2). */
export const SERVER_PORT = 547;
/** Length of the client/server message header. */
export const HEADER_LEN = 4;
/** Length of the relay message header. */
export const RELAY_HEADER_LEN = 34;
/** Most relay hops (RFC 8415 §7.6). */
export const HOP_COUNT_LIMIT = 8;
/** Smallest Information Refresh Time a client accepts, seconds (RFC 8415 §7.6, §21.23). */
export const IRT_MINIMUM = 600;
/** Most options `parse` accepts in one message or in one IA_NA / IA Address. */
export const MAX_OPTIONS = 64;
/** Most IA_NA options `parse` accepts in one message. */
export const MAX_IA = 8;
/** Most addresses `parse` accepts in one IA_NA. */
export const MAX_IA_ADDRESSES = 8;
/** Longest DUID: 128 bytes and the 2-byte type (RFC 8415 §11.1). */
export const MAX_DUID_LEN = 130;

// Message types (RFC 8415 §7.3).
export const SOLICIT = 1;
export const ADVERTISE = 2;
export const REQUEST = 3;
export const CONFIRM = 4;
export const RENEW = 5;
export const REBIND = 6;
export const REPLY = 7;
export const RELEASE = 8;
export const DECLINE = 9;
export const RECONFIGURE = 10;
export const INFORMATION_REQUEST = 11;
export const RELAY_FORW = 12;
export const RELAY_REPL = 13;

/** Option codes (RFC 8415 §21, RFC 3646). */
export const Opt = {
  CLIENT_ID: 1,
  SERVER_ID: 2,
  IA_NA: 3,
  IA_ADDR: 5,
  ORO: 6,
  PREFERENCE: 7,
  ELAPSED_TIME: 8,
  RELAY_MSG: 9,
  STATUS_CODE: 13,
  RAPID_COMMIT: 14,
  INTERFACE_ID: 18,
  DNS_SERVERS: 23,
  DOMAIN_LIST: 24,
  INFORMATION_REFRESH_TIME: 32,
} as const;

// Status codes (RFC 8415 §21.13).
export const STATUS_SUCCESS = 0;
export const STATUS_UNSPEC_FAIL = 1;
export const STATUS_NO_ADDRS_AVAIL = 2;
export const STATUS_NO_BINDING = 3;
export const STATUS_NOT_ON_LINK = 4;
export const STATUS_USE_MULTICAST = 5;

// DUID types (RFC 8415 §11.2-11.5, RFC 6355).
export const DUID_LLT = 1;
export const DUID_EN = 2;
export const DUID_LL = 3;
export const DUID_UUID = 4;

/** A Status Code option (RFC 8415 §21.13). */
export interface Status {
  code: number;
  message: string;
}

/** An option kept raw. */
export interface RawOption {
  code: number;
  data: Uint8Array;
}

/** An IA Address option (RFC 8415 §21.6). */
export interface IaAddress {
  address: Ip6;
  /** Seconds (0xffffffff = infinite). */
  preferredLifetime: number;
  /** Seconds (0xffffffff = infinite). */
  validLifetime: number;
  /** Its Status Code option, or null. */
  status: Status | null;
  /** Its other options, raw. */
  unknown: RawOption[];
}

/** An IA_NA option (RFC 8415 §21.4). */
export interface IaNa {
  /** Identity association id, chosen by the client (u32). */
  iaid: number;
  /** Seconds until the client renews (0 = the client chooses). */
  t1: number;
  /** Seconds until the client rebinds. */
  t2: number;
  /** Its IA Address options, in order. */
  addresses: IaAddress[];
  /** Its Status Code option, or null. */
  status: Status | null;
  /** Its other options, raw. */
  unknown: RawOption[];
}

/** The decoded options. Scalars are null and lists empty when absent; an empty list is not emitted. */
export interface Options {
  /** Client Identifier: the DUID. */
  clientId: Uint8Array | null;
  /** Server Identifier: the DUID. */
  serverId: Uint8Array | null;
  /** IA_NA options, in order. */
  iaNa: IaNa[];
  /** Option Request: the option codes asked for. */
  oro: number[];
  /** Preference 0..255. */
  preference: number | null;
  /** Elapsed time in hundredths of a second. */
  elapsedTime: number | null;
  /** Relay Message: the relayed message's bytes (parse it again). */
  relayMessage: Uint8Array | null;
  /** Status Code at message level. */
  status: Status | null;
  /** Rapid Commit present. */
  rapidCommit: boolean;
  /** Interface-Id (relay), opaque. */
  interfaceId: Uint8Array | null;
  /** DNS recursive name servers (RFC 3646 §3). */
  dnsServers: Ip6[];
  /** Domain search list (RFC 3646 §4), names without trailing dot. */
  domainSearch: string[];
  /** Information Refresh Time, seconds. */
  infoRefreshTime: number | null;
  /** Every other option, repeated singletons and malformed typed ones, in order. */
  unknown: RawOption[];
}

/** A DHCPv6 message (RFC 8415 §8, §9). */
export interface Message {
  /** Message type (SOLICIT .. RELAY_REPL). */
  msgType: number;
  /** Transaction id (24 bits); 0 for relay messages. */
  transactionId: number;
  /** Relay messages: hop count; else 0. */
  hopCount: number;
  /** Relay messages: link address (owned by this object); else zero. */
  linkAddress: Ip6;
  /** Relay messages: peer address (owned by this object); else zero. */
  peerAddress: Ip6;
  options: Options;
}

/** Options all absent. */
export function blankOptions(): Options {
  return {
    clientId: null,
    serverId: null,
    iaNa: [],
    oro: [],
    preference: null,
    elapsedTime: null,
    relayMessage: null,
    status: null,
    rapidCommit: false,
    interfaceId: null,
    dnsServers: [],
    domainSearch: [],
    infoRefreshTime: null,
    unknown: [],
  };
}

/** A message with every field initialised (a Solicit, no options). */
export function blank(): Message {
  return { msgType: SOLICIT, transactionId: 0, hopCount: 0, linkAddress: new Uint8Array(IP6_LEN), peerAddress: new Uint8Array(IP6_LEN), options: blankOptions() };
}

/** True for Relay-Forw and Relay-Repl. */
export const isRelay = (msgType: number): boolean => msgType === RELAY_FORW || msgType === RELAY_REPL;

/**
 * The type of a DUID (RFC 8415 §11.1): DUID_LLT, DUID_EN, DUID_LL, DUID_UUID
 * or another value; -1 when shorter than 2 bytes.
 * @param duid the DUID bytes
 */
export function duidType(duid: Uint8Array): number {
  return duid.length < 2 ? -1 : (duid[0]! << 8) | duid[1]!;
}

/**
 * A DUID-LL for an Ethernet MAC (RFC 8415 §11.4): type 3, hardware type 1,
 * the address. A server identifier that needs no clock or storage.
 * @param mac the MAC
 */
export function duidLl(mac: Mac): Uint8Array {
  return Uint8Array.of(0, DUID_LL, 0, 1, ...mac.subarray(0, 6));
}

// ---------------------------------------------------------------- parse

/** A copy of `n` bytes of the view at `o`. */
function copyBytes(v: DataView, o: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = v.getUint8(o + i);
  return out;
}

/**
 * Walks the options in [p, end), calling `each(code, valueOffset, valueLength)`.
 * @returns false when an option runs past `end` or there are more than `max`
 */
function eachOption(v: DataView, p: number, end: number, max: number, each: (code: number, o: number, n: number) => void): boolean {
  let count = 0;
  while (p < end) {
    if (p + 4 > end || ++count > max) return false;
    const n = v.getUint16(p + 2);
    if (p + 4 + n > end) return false;
    each(v.getUint16(p), p + 4, n);
    p += 4 + n;
  }
  return true;
}

/** Decodes a Status Code value (RFC 8415 §21.13), or null when shorter than 2 bytes. */
function decodeStatus(v: DataView, o: number, n: number): Status | null {
  if (n < 2) return null;
  return { code: v.getUint16(o), message: new TextDecoder().decode(copyBytes(v, o + 2, n - 2)) };
}

/** Decodes an IA Address value (RFC 8415 §21.6), or null when malformed. */
function decodeIaAddress(v: DataView, o: number, n: number): IaAddress | null {
  if (n < 24) return null;
  const address = new Uint8Array(IP6_LEN);
  readIp6(v, o, address);
  const a: IaAddress = { address, preferredLifetime: v.getUint32(o + 16), validLifetime: v.getUint32(o + 20), status: null, unknown: [] };
  const ok = eachOption(v, o + 24, o + n, MAX_OPTIONS, (code, vo, vn) => {
    const s = code === Opt.STATUS_CODE && a.status === null ? decodeStatus(v, vo, vn) : null;
    if (s !== null) a.status = s;
    else a.unknown.push({ code, data: copyBytes(v, vo, vn) });
  });
  return ok ? a : null;
}

/** Decodes an IA_NA value (RFC 8415 §21.4), or null when malformed. */
function decodeIaNa(v: DataView, o: number, n: number): IaNa | null {
  if (n < 12) return null;
  const ia: IaNa = { iaid: v.getUint32(o), t1: v.getUint32(o + 4), t2: v.getUint32(o + 8), addresses: [], status: null, unknown: [] };
  let bad = false;
  const ok = eachOption(v, o + 12, o + n, MAX_OPTIONS, (code, vo, vn) => {
    if (code === Opt.IA_ADDR) {
      const a = decodeIaAddress(v, vo, vn);
      if (a === null || ia.addresses.length >= MAX_IA_ADDRESSES) bad = true;
      else ia.addresses.push(a);
      return;
    }
    const s = code === Opt.STATUS_CODE && ia.status === null ? decodeStatus(v, vo, vn) : null;
    if (s !== null) ia.status = s;
    else ia.unknown.push({ code, data: copyBytes(v, vo, vn) });
  });
  return ok && !bad ? ia : null;
}

/** A list of 16-byte addresses: a non-empty multiple of 16 bytes, else null. */
function decodeAddresses(v: DataView, o: number, n: number): Ip6[] | null {
  if (n === 0 || n % IP6_LEN !== 0) return null;
  const out: Ip6[] = [];
  for (let i = 0; i < n; i += IP6_LEN) {
    const a = new Uint8Array(IP6_LEN);
    readIp6(v, o + i, a);
    out.push(a);
  }
  return out;
}

/**
 * Decodes one typed option into `m` when it is well formed and its field is
 * still empty.
 * @returns false when the option goes raw instead
 */
function decodeOption(v: DataView, code: number, o: number, n: number, m: Options): boolean {
  switch (code) {
    case Opt.CLIENT_ID:
    case Opt.SERVER_ID: {
      if (n < 3 || n > MAX_DUID_LEN || (code === Opt.CLIENT_ID ? m.clientId : m.serverId) !== null) return false;
      if (code === Opt.CLIENT_ID) m.clientId = copyBytes(v, o, n);
      else m.serverId = copyBytes(v, o, n);
      return true;
    }
    case Opt.IA_NA: {
      const ia = decodeIaNa(v, o, n);
      if (ia === null) return false;
      m.iaNa.push(ia);
      return true;
    }
    case Opt.ORO:
      if (n === 0 || n % 2 !== 0 || m.oro.length !== 0) return false;
      for (let i = 0; i < n; i += 2) m.oro.push(v.getUint16(o + i));
      return true;
    case Opt.PREFERENCE:
      if (n !== 1 || m.preference !== null) return false;
      m.preference = v.getUint8(o);
      return true;
    case Opt.ELAPSED_TIME:
      if (n !== 2 || m.elapsedTime !== null) return false;
      m.elapsedTime = v.getUint16(o);
      return true;
    case Opt.RELAY_MSG:
      if (m.relayMessage !== null) return false;
      m.relayMessage = copyBytes(v, o, n);
      return true;
    case Opt.STATUS_CODE: {
      const s = m.status === null ? decodeStatus(v, o, n) : null;
      if (s === null) return false;
      m.status = s;
      return true;
    }
    case Opt.RAPID_COMMIT:
      if (n !== 0 || m.rapidCommit) return false;
      m.rapidCommit = true;
      return true;
    case Opt.INTERFACE_ID:
      if (m.interfaceId !== null) return false;
      m.interfaceId = copyBytes(v, o, n);
      return true;
    case Opt.DNS_SERVERS: {
      const l = m.dnsServers.length === 0 ? decodeAddresses(v, o, n) : null;
      if (l === null) return false;
      m.dnsServers = l;
      return true;
    }
    case Opt.DOMAIN_LIST: {
      const l = m.domainSearch.length === 0 ? decodeNames(v, o, n, { pointers: false, padding: false }) : null;
      if (l === null || l.length === 0) return false;
      m.domainSearch = l;
      return true;
    }
    case Opt.INFORMATION_REFRESH_TIME:
      if (n !== 4 || m.infoRefreshTime !== null) return false;
      m.infoRefreshTime = v.getUint32(o);
      return true;
    default:
      return false;
  }
}

/**
 * Decodes a DHCPv6 message (RFC 8415 §8, §9; validation in the file comment).
 * @param v the buffer's DataView
 * @param o offset of the message (the UDP payload)
 * @param len the message length (the UDP payload length)
 * @param out reused message to fill (its options are replaced)
 * @returns false when the message is invalid; `out` must then not be used.
 *   Never throws.
 */
export function parse(v: DataView, o: number, len: number, out: Message): boolean {
  if (len < HEADER_LEN) return false;
  const t = v.getUint8(o);
  if (t < SOLICIT || t > RELAY_REPL) return false;
  const relay = isRelay(t);
  const hl = relay ? RELAY_HEADER_LEN : HEADER_LEN;
  if (len < hl) return false;
  out.msgType = t;
  out.transactionId = relay ? 0 : v.getUint32(o) & 0xffffff;
  out.hopCount = relay ? v.getUint8(o + 1) : 0;
  out.linkAddress.fill(0);
  out.peerAddress.fill(0);
  if (relay) {
    readIp6(v, o + 2, out.linkAddress);
    readIp6(v, o + 18, out.peerAddress);
  }
  const m = blankOptions();
  let ias = 0;
  const ok = eachOption(v, o + hl, o + len, MAX_OPTIONS, (code, vo, vn) => {
    if (code === Opt.IA_NA) ias++;
    if (!decodeOption(v, code, vo, vn, m)) m.unknown.push({ code, data: copyBytes(v, vo, vn) });
  });
  if (!ok || ias > MAX_IA) return false;
  out.options = m;
  return true;
}

// ----------------------------------------------------------------- emit

/** Writes (or, with a null view, only counts) options. */
class Sink {
  constructor(
    readonly v: DataView | null,
    public p: number,
  ) {}
  u8(x: number): void {
    this.v?.setUint8(this.p, x);
    this.p += 1;
  }
  u16(x: number): void {
    this.v?.setUint16(this.p, x);
    this.p += 2;
  }
  u32(x: number): void {
    this.v?.setUint32(this.p, x >>> 0);
    this.p += 4;
  }
  bytes(b: Uint8Array): void {
    if (this.v !== null) for (let i = 0; i < b.length; i++) this.v.setUint8(this.p + i, b[i]!);
    this.p += b.length;
  }
  ip6(a: Ip6): void {
    if (this.v !== null) writeIp6(this.v, this.p, a);
    this.p += IP6_LEN;
  }
  names(l: readonly string[]): void {
    if (this.v !== null) emitNames(l, this.v, this.p);
    this.p += namesLength(l);
  }
  /** Writes an option: code, then the length `body` writes, then the body. */
  option(code: number, body: () => void): void {
    const start = this.p;
    this.u16(code);
    this.u16(0);
    body();
    this.v?.setUint16(start + 2, this.p - start - 4);
  }
}

/** Writes a Status Code option (nothing for null). */
function status(s: Sink, st: Status | null): void {
  if (st === null) return;
  s.option(Opt.STATUS_CODE, () => {
    s.u16(st.code);
    s.bytes(new TextEncoder().encode(st.message));
  });
}

/** Writes raw options as they came. */
function raw(s: Sink, list: readonly RawOption[]): void {
  for (const r of list) s.option(r.code, () => s.bytes(r.data));
}

/** Writes (or counts) every option, in the order of the file comment. */
function writeOptions(s: Sink, m: Options): void {
  const bytesOption = (code: number, b: Uint8Array | null): void => {
    if (b !== null) s.option(code, () => s.bytes(b));
  };
  bytesOption(Opt.CLIENT_ID, m.clientId);
  bytesOption(Opt.SERVER_ID, m.serverId);
  if (m.oro.length > 0) s.option(Opt.ORO, () => m.oro.forEach((c) => s.u16(c)));
  if (m.elapsedTime !== null) s.option(Opt.ELAPSED_TIME, () => s.u16(m.elapsedTime!));
  for (const ia of m.iaNa) {
    s.option(Opt.IA_NA, () => {
      s.u32(ia.iaid);
      s.u32(ia.t1);
      s.u32(ia.t2);
      for (const a of ia.addresses) {
        s.option(Opt.IA_ADDR, () => {
          s.ip6(a.address);
          s.u32(a.preferredLifetime);
          s.u32(a.validLifetime);
          status(s, a.status);
          raw(s, a.unknown);
        });
      }
      status(s, ia.status);
      raw(s, ia.unknown);
    });
  }
  status(s, m.status);
  if (m.preference !== null) s.option(Opt.PREFERENCE, () => s.u8(m.preference!));
  if (m.rapidCommit) s.option(Opt.RAPID_COMMIT, () => {});
  bytesOption(Opt.INTERFACE_ID, m.interfaceId);
  bytesOption(Opt.RELAY_MSG, m.relayMessage);
  if (m.domainSearch.length > 0) s.option(Opt.DOMAIN_LIST, () => s.names(m.domainSearch));
  if (m.dnsServers.length > 0) s.option(Opt.DNS_SERVERS, () => m.dnsServers.forEach((a) => s.ip6(a)));
  if (m.infoRefreshTime !== null) s.option(Opt.INFORMATION_REFRESH_TIME, () => s.u32(m.infoRefreshTime!));
  raw(s, m.unknown);
}

/**
 * Bytes `emit` writes for `m`.
 * @param m the message
 */
export function length(m: Message): number {
  const s = new Sink(null, isRelay(m.msgType) ? RELAY_HEADER_LEN : HEADER_LEN);
  writeOptions(s, m.options);
  return s.p;
}

/**
 * Encodes `m` into the caller's buffer (RFC 8415 §8, §9; option order in the
 * file comment). Size the space with `length(m)`.
 * @param m the message
 * @param v the buffer's DataView
 * @param o offset of the UDP payload in `v`
 * @returns bytes written, equal to `length(m)`
 */
export function emit(m: Message, v: DataView, o: number): number {
  let hl = HEADER_LEN;
  if (isRelay(m.msgType)) {
    v.setUint8(o, m.msgType);
    v.setUint8(o + 1, m.hopCount);
    writeIp6(v, o + 2, m.linkAddress);
    writeIp6(v, o + 18, m.peerAddress);
    hl = RELAY_HEADER_LEN;
  } else {
    v.setUint32(o, ((m.msgType << 24) | (m.transactionId & 0xffffff)) >>> 0);
  }
  const s = new Sink(v, o + hl);
  writeOptions(s, m.options);
  return s.p - o;
}
