/**
 * Theory of operation: the BOOTP/DHCPv4 message codec (RFC 951, RFC 2131 §2,
 * RFC 2132). DHCP is control plane, so a message is decoded into a `Message`
 * repr object (smoltcp `DhcpRepr` style) instead of being read through field
 * accessors. The repr holds the fixed BOOTP header and a typed `Options`
 * record for the options vmnet uses; every other option is kept raw, in order
 * of first appearance, so nothing a client sends is lost.
 *
 * Wire layout (RFC 2131 §2, Figure 1): a 236-byte fixed header (op .. file),
 * the magic cookie 99.130.83.99 (RFC 2131 §3, RFC 2132 §2), then options as
 * code/length/value triples; 0 is a one-byte pad and 255 ends the list
 * (RFC 2132 §3.1–3.2).
 *
 * Parsing is tolerant where RFC 2131 §4.1 asks for robustness and strict where
 * accepting would mean guessing:
 * - shorter than 240 bytes or a wrong magic cookie → `parse` returns false
 *   (vmnet serves DHCP only, not cookie-less RFC 951 BOOTP);
 * - a missing end option is tolerated: the end of the area ends the list;
 * - an option whose length byte is missing, or whose value runs past the end
 *   of its area, is dropped and scanning of that area stops; options before
 *   it stand (like a missing end);
 * - an option instance of zero length is legal on the wire; for the typed
 *   options it is malformed, see below;
 * - repeated instances of one code are concatenated in order (RFC 3396 §5),
 *   over the options field, then `file`, then `sname` when option 52
 *   overloads them (RFC 2132 §9.3, RFC 3396 §5); an overloaded field then
 *   reads as '' in the repr, and option 52 itself is consumed, not kept;
 * - a typed option whose value is malformed (wrong length, bad name
 *   encoding, a /33 route) is not decoded: it lands in `unknown` raw, and the
 *   typed field stays empty. `parse` still returns true.
 * `parse` never throws on any input: every read is bounds-checked first.
 *
 * Emitting writes the typed options in a fixed order (53 first, then 54, the
 * lease times, the configuration options, the client options), then the raw
 * ones, then end; values longer than 255 bytes are split into consecutive
 * instances (RFC 3396 §6). Option overload is never emitted. The message is
 * zero-padded to the 300-byte BOOTP minimum (RFC 951; RFC 1542 §2.1) since some
 * old clients and relays drop shorter ones. Domain search names (option 119,
 * RFC 3397) are emitted uncompressed; compression pointers are accepted on
 * decode, with offsets into the concatenated value, and must point strictly
 * backwards (each jump before the last target) so a loop cannot hang the
 * parser. Text options (12, 15, 56, sname, file) are bytes mapped 1:1 to
 * char codes (Latin-1), which round-trips any byte; trailing NULs some clients
 * append to 12/15 are dropped.
 *
 * Pure: no I/O, no Node runtime imports, no module state.
 */
import * as addr from './addr.js';
import type { Ip4, Mac } from './addr.js';
import { decodeNames, labels } from './dns-name.js';

/** UDP port of DHCP servers and relays (RFC 2131 §4.1). */
export const SERVER_PORT = 67;
/** UDP port of DHCP clients (RFC 2131 §4.1). */
export const CLIENT_PORT = 68;
/** The magic cookie 99.130.83.99 (RFC 2131 §3). */
export const MAGIC_COOKIE = 0x63825363;
/** Length of the fixed BOOTP header, op .. file (RFC 2131 §2). */
export const HEADER_LEN = 236;
/** Offset of the first option: header plus magic cookie. */
export const OPTIONS_OFFSET = 240;
/** Minimum BOOTP message size on emit (RFC 951; RFC 1542 §2.1). */
export const MIN_LEN = 300;
/**
 * Largest DHCP message every client must accept when it sent no option 57:
 * a 576-byte IP datagram minus the IP and UDP headers (RFC 2131 §2).
 */
export const DEFAULT_MAX_LEN = 576 - 28;

/** `op`: message from a client (RFC 2131 §2). */
export const BOOTREQUEST = 1;
/** `op`: message from a server. */
export const BOOTREPLY = 2;
/** `htype` of Ethernet (RFC 1700 ARP hardware types). */
export const HTYPE_ETHERNET = 1;
/** The broadcast bit of `flags` (RFC 2131 §2, Figure 2). */
export const FLAG_BROADCAST = 0x8000;

// DHCP message types, option 53 (RFC 2132 §9.6). 0 means "no option 53": plain BOOTP.
/** DHCPDISCOVER: client looks for servers. */
export const DISCOVER = 1;
/** DHCPOFFER: server offers an address. */
export const OFFER = 2;
/** DHCPREQUEST: client selects, confirms or renews. */
export const REQUEST = 3;
/** DHCPDECLINE: client found the address in use. */
export const DECLINE = 4;
/** DHCPACK: server commits the lease (or answers INFORM). */
export const ACK = 5;
/** DHCPNAK: server refuses the request. */
export const NAK = 6;
/** DHCPRELEASE: client gives the address back. */
export const RELEASE = 7;
/** DHCPINFORM: client with an address asks for configuration only. */
export const INFORM = 8;

/** Option codes this codec decodes into typed fields (RFC 2132 unless noted). */
export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  BROADCAST: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  T1: 58,
  T2: 59,
  CLIENT_ID: 61,
  DOMAIN_SEARCH: 119, // RFC 3397
  CLASSLESS_ROUTES: 121, // RFC 3442
  END: 255,
} as const;

/** One classless static route (RFC 3442): destination `net`/`prefix` via `gateway`. */
export interface Route4 {
  net: Ip4;
  prefix: number;
  gateway: Ip4;
}

/** An option kept as raw bytes: unknown codes, or known codes with malformed values. */
export interface RawOption {
  code: number;
  data: Uint8Array;
}

/**
 * The decoded options. Scalars are null and lists empty when absent; a list
 * option is never emitted empty.
 */
export interface Options {
  /** 1: subnet mask. */
  subnetMask: Ip4 | null;
  /** 3: routers, in preference order. */
  routers: Ip4[];
  /** 6: DNS servers. */
  dns: Ip4[];
  /** 12: host name. */
  hostname: string | null;
  /** 15: domain name. */
  domainName: string | null;
  /** 26: interface MTU. */
  mtu: number | null;
  /** 28: broadcast address. */
  broadcast: Ip4 | null;
  /** 50: requested IP address. */
  requestedIp: Ip4 | null;
  /** 51: lease time, seconds (0xffffffff = infinite). */
  leaseTime: number | null;
  /** 54: server identifier. */
  serverId: Ip4 | null;
  /** 55: parameter request list (option codes). */
  paramRequest: number[];
  /** 56: message (error text in NAK/DECLINE). */
  message: string | null;
  /** 57: maximum DHCP message size the sender accepts. */
  maxMessageSize: number | null;
  /** 58: renewal (T1) time, seconds. */
  t1: number | null;
  /** 59: rebinding (T2) time, seconds. */
  t2: number | null;
  /** 61: client identifier (type byte + id), raw. */
  clientId: Uint8Array | null;
  /** 119: domain search list (RFC 3397), names without trailing dot. */
  domainSearch: string[];
  /** 121: classless static routes (RFC 3442). */
  staticRoutes: Route4[];
  /** Everything else, raw, in order of first appearance (52 excluded). */
  unknown: RawOption[];
}

/** A BOOTP/DHCP message (RFC 2131 §2). */
export interface Message {
  /** BOOTREQUEST (1) or BOOTREPLY (2). */
  op: number;
  /** Hardware address type, 1 = Ethernet. */
  htype: number;
  /** Hardware address length, 6 for Ethernet. */
  hlen: number;
  hops: number;
  /** Transaction id chosen by the client (u32). */
  xid: number;
  secs: number;
  /** Flags; FLAG_BROADCAST is the only defined bit. */
  flags: number;
  ciaddr: Ip4;
  yiaddr: Ip4;
  siaddr: Ip4;
  giaddr: Ip4;
  /** The first 6 bytes of the 16-byte chaddr field; the rest is ignored on parse and zero on emit. */
  chaddr: Mac;
  /** Server host name, up to 63 bytes ('' when empty or overloaded). */
  sname: string;
  /** Boot file name, up to 127 bytes ('' when empty or overloaded). */
  file: string;
  /** Option 53, or 0 when absent or malformed. */
  messageType: number;
  options: Options;
}

// Field offsets in the fixed header (RFC 2131 §2, Figure 1).
const OP = 0;
const HTYPE = 1;
const HLEN = 2;
const HOPS = 3;
const XID = 4;
const SECS = 8;
const FLAGS = 10;
const CIADDR = 12;
const YIADDR = 16;
const SIADDR = 20;
const GIADDR = 24;
const CHADDR = 28;
const CHADDR_LEN = 16;
const SNAME = 44;
const SNAME_LEN = 64;
const FILE = 108;
const FILE_LEN = 128;
const COOKIE = 236;

/**
 * A fresh `Options` with every option absent.
 * @returns nulls and empty lists throughout
 */
export function blankOptions(): Options {
  return {
    subnetMask: null,
    routers: [],
    dns: [],
    hostname: null,
    domainName: null,
    mtu: null,
    broadcast: null,
    requestedIp: null,
    leaseTime: null,
    serverId: null,
    paramRequest: [],
    message: null,
    maxMessageSize: null,
    t1: null,
    t2: null,
    clientId: null,
    domainSearch: [],
    staticRoutes: [],
    unknown: [],
  };
}

/**
 * A fresh all-zero `Message` (op 0, no options): the reusable `out` for `parse`,
 * or a template to fill before `emit`.
 * @returns a new message object
 */
export function blank(): Message {
  return {
    op: 0,
    htype: 0,
    hlen: 0,
    hops: 0,
    xid: 0,
    secs: 0,
    flags: 0,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr: new Uint8Array(6),
    sname: '',
    file: '',
    messageType: 0,
    options: blankOptions(),
  };
}

// ---------------------------------------------------------------- parse

/** Option value segments by code, in order of first appearance: [off, len, off, len, …]. */
type Segments = Map<number, number[]>;

/**
 * Scans one option area [p, end) and appends value segments to `segs`.
 * Stops at end (255), at the end of the area, or at a truncated option.
 */
function scanArea(v: DataView, p: number, end: number, segs: Segments): void {
  while (p < end) {
    const code = v.getUint8(p);
    if (code === Opt.PAD) {
      p++;
      continue;
    }
    if (code === Opt.END) return;
    if (p + 2 > end) return; // no length byte
    const n = v.getUint8(p + 1);
    if (p + 2 + n > end) return; // value runs past the area
    const s = segs.get(code);
    if (s === undefined) segs.set(code, [p + 2, n]);
    else s.push(p + 2, n);
    p += 2 + n;
  }
}

/** Copies the (possibly split, RFC 3396) value of one option out of the view. */
function gather(v: DataView, s: number[]): Uint8Array {
  let n = 0;
  for (let i = 1; i < s.length; i += 2) n += s[i]!;
  const out = new Uint8Array(n);
  let w = 0;
  for (let i = 0; i < s.length; i += 2) {
    const off = s[i]!;
    const len = s[i + 1]!;
    out.set(new Uint8Array(v.buffer, v.byteOffset + off, len), w);
    w += len;
  }
  return out;
}

const ip4At = (b: Uint8Array, i: number): Ip4 => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Text option value: Latin-1, trailing NULs dropped; null when nothing is left. */
function text(b: Uint8Array): string | null {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return end === 0 ? null : latin1(b, 0, end);
}

/** A list of IPv4 addresses: a non-empty multiple of 4 bytes, else null. */
function ip4List(b: Uint8Array): Ip4[] | null {
  if (b.length === 0 || b.length % 4 !== 0) return null;
  const out: Ip4[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(ip4At(b, i));
  return out;
}

/**
 * Decodes the RFC 3397 domain search list: a sequence of RFC 1035 names,
 * compression pointers allowed (offsets into the concatenated value); see
 * dns-name.ts for the rules.
 * @returns the names without trailing dot, or null when malformed
 */
export function decodeSearchList(b: Uint8Array): string[] | null {
  return decodeNames(new DataView(b.buffer, b.byteOffset, b.byteLength), 0, b.length, { pointers: true, padding: false });
}

/**
 * Decodes RFC 3442 classless static routes: per route a width byte (0..32),
 * ceil(width/8) significant destination octets, then the 4-byte router.
 * @returns the routes, or null when malformed or empty
 */
export function decodeRoutes(b: Uint8Array): Route4[] | null {
  const out: Route4[] = [];
  let p = 0;
  while (p < b.length) {
    const prefix = b[p]!;
    if (prefix > 32) return null;
    const sig = (prefix + 7) >>> 3;
    if (p + 1 + sig + 4 > b.length) return null;
    let net = 0;
    for (let i = 0; i < 4; i++) net = net * 256 + (i < sig ? b[p + 1 + i]! : 0);
    out.push({ net: (net & addr.prefixMask(prefix)) >>> 0, prefix, gateway: ip4At(b, p + 1 + sig) });
    p += 1 + sig + 4;
  }
  return out.length === 0 ? null : out;
}

/** Decodes one typed option into `o` (or `m.messageType`). @returns false when the value is malformed. */
function decodeOption(code: number, b: Uint8Array, m: Message): boolean {
  const o = m.options;
  const n = b.length;
  switch (code) {
    case Opt.MESSAGE_TYPE:
      if (n !== 1) return false;
      m.messageType = b[0]!;
      return true;
    case Opt.SUBNET_MASK:
    case Opt.BROADCAST:
    case Opt.REQUESTED_IP:
    case Opt.SERVER_ID: {
      if (n !== 4) return false;
      const a = ip4At(b, 0);
      if (code === Opt.SUBNET_MASK) o.subnetMask = a;
      else if (code === Opt.BROADCAST) o.broadcast = a;
      else if (code === Opt.REQUESTED_IP) o.requestedIp = a;
      else o.serverId = a;
      return true;
    }
    case Opt.ROUTER:
    case Opt.DNS: {
      const l = ip4List(b);
      if (l === null) return false;
      if (code === Opt.ROUTER) o.routers = l;
      else o.dns = l;
      return true;
    }
    case Opt.HOSTNAME:
    case Opt.DOMAIN_NAME:
    case Opt.MESSAGE: {
      const t = code === Opt.MESSAGE ? (n === 0 ? null : latin1(b, 0, n)) : text(b);
      if (t === null) return false;
      if (code === Opt.HOSTNAME) o.hostname = t;
      else if (code === Opt.DOMAIN_NAME) o.domainName = t;
      else o.message = t;
      return true;
    }
    case Opt.MTU:
    case Opt.MAX_MESSAGE_SIZE: {
      if (n !== 2) return false;
      const x = (b[0]! << 8) | b[1]!;
      if (code === Opt.MTU) o.mtu = x;
      else o.maxMessageSize = x;
      return true;
    }
    case Opt.LEASE_TIME:
    case Opt.T1:
    case Opt.T2: {
      if (n !== 4) return false;
      const x = ip4At(b, 0);
      if (code === Opt.LEASE_TIME) o.leaseTime = x;
      else if (code === Opt.T1) o.t1 = x;
      else o.t2 = x;
      return true;
    }
    case Opt.PARAM_REQUEST:
      if (n === 0) return false;
      o.paramRequest = Array.from(b);
      return true;
    case Opt.CLIENT_ID:
      if (n < 2) return false; // RFC 2132 §9.14: minimum length 2
      o.clientId = b;
      return true;
    case Opt.DOMAIN_SEARCH: {
      const l = n === 0 ? null : decodeSearchList(b);
      if (l === null) return false;
      o.domainSearch = l;
      return true;
    }
    case Opt.CLASSLESS_ROUTES: {
      const r = decodeRoutes(b);
      if (r === null) return false;
      o.staticRoutes = r;
      return true;
    }
    default:
      return false;
  }
}

/** Reads a NUL-terminated Latin-1 field of at most `max` bytes. */
function field(v: DataView, o: number, max: number): string {
  let s = '';
  for (let i = 0; i < max; i++) {
    const c = v.getUint8(o + i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Parses a DHCP message (the UDP payload) into `out`, overwriting every field.
 * Never throws; see the theory of operation for what is tolerated.
 * @param v view over the receive buffer
 * @param o offset of the UDP payload in `v`
 * @param len length of the UDP payload
 * @param out caller-owned message to fill (see `blank()`); its arrays are replaced, not reused
 * @returns false when the payload is shorter than 240 bytes, does not fit the
 *   view, or lacks the magic cookie (RFC 2131 §3); `out` is then unspecified
 */
export function parse(v: DataView, o: number, len: number, out: Message): boolean {
  if (!(len >= OPTIONS_OFFSET) || !(o >= 0) || o + len > v.byteLength) return false;
  if (v.getUint32(o + COOKIE) !== MAGIC_COOKIE) return false;
  out.op = v.getUint8(o + OP);
  out.htype = v.getUint8(o + HTYPE);
  out.hlen = v.getUint8(o + HLEN);
  out.hops = v.getUint8(o + HOPS);
  out.xid = v.getUint32(o + XID);
  out.secs = v.getUint16(o + SECS);
  out.flags = v.getUint16(o + FLAGS);
  out.ciaddr = v.getUint32(o + CIADDR);
  out.yiaddr = v.getUint32(o + YIADDR);
  out.siaddr = v.getUint32(o + SIADDR);
  out.giaddr = v.getUint32(o + GIADDR);
  const mac = new Uint8Array(6);
  for (let i = 0; i < 6; i++) mac[i] = v.getUint8(o + CHADDR + i);
  out.chaddr = mac;
  out.messageType = 0;
  const opts = blankOptions();
  out.options = opts;

  const segs: Segments = new Map();
  scanArea(v, o + OPTIONS_OFFSET, o + len, segs);
  // Option overload (RFC 2132 §9.3): 1 = file, 2 = sname, 3 = both; read in
  // that order (RFC 3396 §5). Only the options field may carry option 52.
  const ov = segs.get(Opt.OVERLOAD);
  const overload = ov !== undefined && ov.length === 2 && ov[1] === 1 ? v.getUint8(ov[0]!) & 3 : 0;
  segs.delete(Opt.OVERLOAD);
  if (overload & 1) scanArea(v, o + FILE, o + FILE + FILE_LEN, segs);
  if (overload & 2) scanArea(v, o + SNAME, o + SNAME + SNAME_LEN, segs);
  out.sname = overload & 2 ? '' : field(v, o + SNAME, SNAME_LEN);
  out.file = overload & 1 ? '' : field(v, o + FILE, FILE_LEN);

  for (const [code, s] of segs) {
    const b = gather(v, s);
    if (!decodeOption(code, b, out)) opts.unknown.push({ code, data: b });
  }
  return true;
}

// ----------------------------------------------------------------- emit

/**
 * Byte writer used by both `emit` (v set) and `length` (v null, counting
 * only), so the two cannot disagree. While an option value is being written
 * it inserts a fresh code/length header every 255 bytes (RFC 3396 §6).
 */
class Sink {
  v: DataView | null;
  p: number;
  code = 0;
  left = 0; // value bytes still to write in the current option
  chunk = 0; // value bytes still to write in the current instance
  constructor(v: DataView | null, p: number) {
    this.v = v;
    this.p = p;
  }
  raw(x: number): void {
    if (this.v !== null) this.v.setUint8(this.p, x);
    this.p++;
  }
  u8(x: number): void {
    if (this.left > 0) {
      if (this.chunk === 0) {
        this.chunk = Math.min(255, this.left);
        this.raw(this.code);
        this.raw(this.chunk);
      }
      this.chunk--;
      this.left--;
    }
    this.raw(x & 0xff);
  }
  u16(x: number): void {
    this.u8(x >>> 8);
    this.u8(x);
  }
  u32(x: number): void {
    this.u8(x >>> 24);
    this.u8(x >>> 16);
    this.u8(x >>> 8);
    this.u8(x);
  }
  str(s: string): void {
    for (let i = 0; i < s.length; i++) this.u8(s.charCodeAt(i));
  }
}

/** Emission order of the typed options (53 goes first, separately). */
const ORDER: readonly number[] = [
  Opt.SERVER_ID,
  Opt.LEASE_TIME,
  Opt.T1,
  Opt.T2,
  Opt.SUBNET_MASK,
  Opt.ROUTER,
  Opt.DNS,
  Opt.HOSTNAME,
  Opt.DOMAIN_NAME,
  Opt.MTU,
  Opt.BROADCAST,
  Opt.REQUESTED_IP,
  Opt.PARAM_REQUEST,
  Opt.MAX_MESSAGE_SIZE,
  Opt.CLIENT_ID,
  Opt.DOMAIN_SEARCH,
  Opt.CLASSLESS_ROUTES,
  Opt.MESSAGE,
];

/** Writes the value of typed option `code` (nothing when absent). @returns whether it is present. */
function body(s: Sink, code: number, o: Options): boolean {
  switch (code) {
    case Opt.SUBNET_MASK:
      if (o.subnetMask === null) return false;
      s.u32(o.subnetMask);
      return true;
    case Opt.BROADCAST:
      if (o.broadcast === null) return false;
      s.u32(o.broadcast);
      return true;
    case Opt.REQUESTED_IP:
      if (o.requestedIp === null) return false;
      s.u32(o.requestedIp);
      return true;
    case Opt.SERVER_ID:
      if (o.serverId === null) return false;
      s.u32(o.serverId);
      return true;
    case Opt.LEASE_TIME:
      if (o.leaseTime === null) return false;
      s.u32(o.leaseTime);
      return true;
    case Opt.T1:
      if (o.t1 === null) return false;
      s.u32(o.t1);
      return true;
    case Opt.T2:
      if (o.t2 === null) return false;
      s.u32(o.t2);
      return true;
    case Opt.ROUTER:
    case Opt.DNS: {
      const l = code === Opt.ROUTER ? o.routers : o.dns;
      if (l.length === 0) return false;
      for (const a of l) s.u32(a);
      return true;
    }
    case Opt.HOSTNAME:
    case Opt.DOMAIN_NAME:
    case Opt.MESSAGE: {
      const t = code === Opt.HOSTNAME ? o.hostname : code === Opt.DOMAIN_NAME ? o.domainName : o.message;
      if (t === null || t === '') return false;
      s.str(t);
      return true;
    }
    case Opt.MTU:
      if (o.mtu === null) return false;
      s.u16(o.mtu);
      return true;
    case Opt.MAX_MESSAGE_SIZE:
      if (o.maxMessageSize === null) return false;
      s.u16(o.maxMessageSize);
      return true;
    case Opt.PARAM_REQUEST:
      if (o.paramRequest.length === 0) return false;
      for (const c of o.paramRequest) s.u8(c);
      return true;
    case Opt.CLIENT_ID:
      if (o.clientId === null || o.clientId.length === 0) return false;
      for (const c of o.clientId) s.u8(c);
      return true;
    case Opt.DOMAIN_SEARCH:
      if (o.domainSearch.length === 0) return false;
      for (const name of o.domainSearch) {
        for (const l of labels(name)) {
          s.u8(l.length);
          s.str(l);
        }
        s.u8(0);
      }
      return true;
    case Opt.CLASSLESS_ROUTES:
      if (o.staticRoutes.length === 0) return false;
      for (const r of o.staticRoutes) {
        const prefix = Math.min(32, Math.max(0, r.prefix | 0));
        s.u8(prefix);
        const net = (r.net & addr.prefixMask(prefix)) >>> 0;
        for (let i = 0; i < (prefix + 7) >>> 3; i++) s.u8(net >>> (24 - 8 * i));
        s.u32(r.gateway);
      }
      return true;
    default:
      return false;
  }
}

/** Writes one option whose value has `n` bytes, produced by `write` on `s`. */
function withHeader(s: Sink, code: number, n: number, write: () => void): void {
  if (n === 0) {
    s.raw(code);
    s.raw(0);
    return;
  }
  s.code = code;
  s.left = n;
  s.chunk = 0;
  write();
  s.left = 0;
  s.chunk = 0;
}

/** Writes (or counts) the options area: 53, typed options, raw options, end. */
function writeOptions(s: Sink, m: Message): void {
  const o = m.options;
  if (m.messageType !== 0) {
    s.raw(Opt.MESSAGE_TYPE);
    s.raw(1);
    s.raw(m.messageType);
  }
  const measure = new Sink(null, 0);
  for (const code of ORDER) {
    measure.p = 0;
    if (!body(measure, code, o)) continue;
    withHeader(s, code, measure.p, () => body(s, code, o));
  }
  for (const r of o.unknown) {
    if (r.code === Opt.PAD || r.code === Opt.END) continue;
    withHeader(s, r.code, r.data.length, () => {
      for (const c of r.data) s.u8(c);
    });
  }
  s.raw(Opt.END);
}

/**
 * Bytes `emit` will write for `m`: header, cookie, options, end, padded to
 * MIN_LEN (300).
 * @param m the message
 * @returns the encoded length in bytes
 */
export function length(m: Message): number {
  const s = new Sink(null, OPTIONS_OFFSET);
  writeOptions(s, m);
  return Math.max(MIN_LEN, s.p);
}

/** Writes `s` as a NUL-padded field of `max` bytes (at most max-1 characters). */
function writeField(v: DataView, o: number, max: number, s: string): void {
  const n = Math.min(s.length, max - 1);
  for (let i = 0; i < max; i++) v.setUint8(o + i, i < n ? s.charCodeAt(i) & 0xff : 0);
}

/**
 * Encodes `m` into the caller's buffer (RFC 2131 §2), zeroing unused header
 * bytes and padding to MIN_LEN. The caller sizes the space with `length(m)`.
 * @param m the message
 * @param v view over the output buffer
 * @param o offset of the UDP payload in `v`
 * @returns bytes written, equal to `length(m)`
 */
export function emit(m: Message, v: DataView, o: number): number {
  v.setUint8(o + OP, m.op);
  v.setUint8(o + HTYPE, m.htype);
  v.setUint8(o + HLEN, m.hlen);
  v.setUint8(o + HOPS, m.hops);
  v.setUint32(o + XID, m.xid >>> 0);
  v.setUint16(o + SECS, m.secs);
  v.setUint16(o + FLAGS, m.flags);
  addr.writeIp4(v, o + CIADDR, m.ciaddr);
  addr.writeIp4(v, o + YIADDR, m.yiaddr);
  addr.writeIp4(v, o + SIADDR, m.siaddr);
  addr.writeIp4(v, o + GIADDR, m.giaddr);
  for (let i = 0; i < CHADDR_LEN; i++) v.setUint8(o + CHADDR + i, i < 6 ? (m.chaddr[i] ?? 0) : 0);
  writeField(v, o + SNAME, SNAME_LEN, m.sname);
  writeField(v, o + FILE, FILE_LEN, m.file);
  v.setUint32(o + COOKIE, MAGIC_COOKIE);
  const s = new Sink(v, o + OPTIONS_OFFSET);
  writeOptions(s, m);
  let n = s.p - o;
  for (; n < MIN_LEN; n++) v.setUint8(o + n, 0);
  return n;
}

/**
 * Whether the client asked for broadcast replies (RFC 2131 §4.1, flags bit 15).
 * @param m a parsed message
 * @returns true when FLAG_BROADCAST is set
 */
export const wantsBroadcast = (m: Message): boolean => (m.flags & FLAG_BROADCAST) !== 0;
