/**
 * Theory of operation: Neighbor Discovery for IPv6 (RFC 4861), the ICMPv6
 * types 133-137, with the options a user-mode router sends and reads.
 * NDP is control plane, so a message decodes into one `Message` repr (smoltcp
 * `NdiscRepr` style) with every field of every type, unused ones at their
 * blank value; the ICMPv6 header and checksum are those of icmpv6.ts (split
 * out of it to keep each file to one concern, as smoltcp's ndisc.rs).
 *
 *   RS  (§4.1, 133): reserved(4)                                   options
 *   RA  (§4.2, 134): curHopLimit(1) flags(1) routerLifetime(2)
 *                    reachableTime(4) retransTimer(4)               options
 *   NS  (§4.3, 135): reserved(4) target(16)                         options
 *   NA  (§4.4, 136): flags(1) reserved(3) target(16)                options
 *   Redirect (§4.5, 137): reserved(4) target(16) destination(16)    options
 *   option (§4.6): type(1) length(1, in units of 8 bytes) data
 *
 * `flags` is the RA flag byte (M, O, H, Prf, P: RFC 4861 §4.2, RFC 4191 §2.2,
 * RFC 4389) or the NA flag byte (R, S, O: §4.4), else 0.
 *
 * Options decoded into typed fields: source and target link-layer address
 * (§4.6.1, Ethernet only: length 1), prefix information (§4.6.2, with L, A
 * and R flags), redirected header (§4.6.3, its bytes), MTU (§4.6.4), nonce
 * (RFC 3971 §5.3.2, which Linux puts in DAD probes, RFC 7527), route
 * information (RFC 4191 §2.3; one with the reserved preference 10 is ignored
 * as that section asks), RDNSS and DNSSL (RFC 8106 §5.1, §5.2; names in
 * the RFC 1035 encoding of dns-name.ts, uncompressed, zero padded). Every
 * other option is kept raw in `unknown`, in order. Link-layer addresses, MTU
 * and nonce keep their first instance (as Linux does); prefixes, routes,
 * RDNSS and DNSSL are lists.
 *
 * `parse` validates what RFC 4861 lets a codec validate without the IP
 * header (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1): a known type, code 0, the
 * fixed part present, every option of non-zero length and inside the message
 * (a zero length makes the message invalid, §4.6), at most MAX_OPTIONS
 * options, and a target (and redirect destination) that is not multicast.
 * A typed option with a malformed value (a link-layer address whose length
 * is not 1, a prefix length over 128, an RDNSS of even length or shorter than
 * 3, an undecodable DNSSL, ...) is not an error: it lands in `unknown` and the
 * typed field stays empty (RFC 8106 §5.1: such options are ignored). The
 * checks that need the IP header, hop limit 255 first of all (§6.1, §7.1:
 * proof that the message was not forwarded), are in `checkIp`; the checksum
 * is `icmpv6.verify`.
 *
 * `emit` writes the message with the options in a fixed order: prefixes,
 * routes, MTU, source and target link-layer address, DNSSL, RDNSS, nonce,
 * redirected header, then the raw ones (dnsmasq 2.90's order for an RA), and
 * the checksum field as given: call `icmpv6.fillChecksum` afterwards.
 *
 * Pure: no I/O, no Node runtime imports, no module state.
 */
import { IP6_LEN, isLinkLocal6, isMulticast6, isSolicitedNode6, isUnspecified6, readIp6, writeIp6, type Ip6, type Mac } from './addr.js';
import { decodeNames, emitNames, namesLength } from './dns-name.js';
import * as icmpv6 from './icmpv6.js';

/** The hop limit every NDP message must be sent and received with (RFC 4861 §6.1, §7.1, §8.1). */
export const HOP_LIMIT = 255;
/** Most options `parse` accepts in one message. */
export const MAX_OPTIONS = 64;

/** Option: source link-layer address (RFC 4861 §4.6.1). */
export const OPT_SOURCE_LL = 1;
/** Option: target link-layer address (RFC 4861 §4.6.1). */
export const OPT_TARGET_LL = 2;
/** Option: prefix information (RFC 4861 §4.6.2). */
export const OPT_PREFIX = 3;
/** Option: redirected header (RFC 4861 §4.6.3). */
export const OPT_REDIRECTED = 4;
/** Option: MTU (RFC 4861 §4.6.4). */
export const OPT_MTU = 5;
/** Option: nonce (RFC 3971 §5.3.2). */
export const OPT_NONCE = 14;
/** Option: route information (RFC 4191 §2.3). */
export const OPT_ROUTE = 24;
/** Option: recursive DNS server (RFC 8106 §5.1). */
export const OPT_RDNSS = 25;
/** Option: DNS search list (RFC 8106 §5.2). */
export const OPT_DNSSL = 31;

/** RA flag: managed address configuration, addresses by DHCPv6 (RFC 4861 §4.2). */
export const RA_MANAGED = 0x80;
/** RA flag: other configuration by DHCPv6 (RFC 4861 §4.2). */
export const RA_OTHER = 0x40;
/** RA flag: home agent (RFC 6275 §7.1). */
export const RA_HOME_AGENT = 0x20;
/** RA flags: the two default router preference bits (RFC 4191 §2.2). */
export const RA_PRF_MASK = 0x18;
/** RA flag: proxied (RFC 4389 §4.1.3.3). */
export const RA_PROXY = 0x04;
/** Router preference (RFC 4191 §2.2), as the 2-bit value: high. */
export const PRF_HIGH = 0b01;
/** Router preference: medium (the default). */
export const PRF_MEDIUM = 0b00;
/** Router preference: low. */
export const PRF_LOW = 0b11;
/** NA flag: the sender is a router (RFC 4861 §4.4). */
export const NA_ROUTER = 0x80;
/** NA flag: sent in response to a solicitation. */
export const NA_SOLICITED = 0x40;
/** NA flag: override an existing cache entry. */
export const NA_OVERRIDE = 0x20;
/** Prefix flag: on-link (RFC 4861 §4.6.2). */
export const PREFIX_ON_LINK = 0x80;
/** Prefix flag: autonomous address configuration, SLAAC (RFC 4861 §4.6.2). */
export const PREFIX_AUTONOMOUS = 0x40;
/** Prefix flag: router address (RFC 6275 §7.2). */
export const PREFIX_ROUTER_ADDR = 0x20;
/** An infinite lifetime (RFC 4861 §4.6.2, RFC 8106 §5.1). */
export const INFINITE = 0xffffffff;

/** Bytes of each message before its options, ICMPv6 header included. */
const FIXED: Record<number, number> = { 133: 8, 134: 16, 135: 24, 136: 24, 137: 40 };

/** A prefix information option (RFC 4861 §4.6.2). */
export interface PrefixInfo {
  /** Prefix length 0..128. */
  prefixLength: number;
  /** PREFIX_ON_LINK | PREFIX_AUTONOMOUS | PREFIX_ROUTER_ADDR (and any reserved bits as received). */
  flags: number;
  /** Valid lifetime, seconds (INFINITE = forever). */
  validLifetime: number;
  /** Preferred lifetime, seconds. */
  preferredLifetime: number;
  /** The prefix (bits past prefixLength as sent; hosts ignore them). */
  prefix: Ip6;
}

/** A route information option (RFC 4191 §2.3). */
export interface RouteInfo {
  /** Prefix length 0..128. */
  prefixLength: number;
  /** Route preference, 2 bits (PRF_*). */
  preference: number;
  /** Route lifetime, seconds. */
  lifetime: number;
  /** The prefix (bytes past what the option carries are zero). */
  prefix: Ip6;
}

/** A recursive DNS server option (RFC 8106 §5.1). */
export interface Rdnss {
  /** Lifetime, seconds (0: stop using these servers). */
  lifetime: number;
  /** At least one server. */
  servers: Ip6[];
}

/** A DNS search list option (RFC 8106 §5.2). */
export interface Dnssl {
  /** Lifetime, seconds. */
  lifetime: number;
  /** At least one domain name, without trailing dot. */
  domains: string[];
}

/** An option kept raw: `data` is what follows the type and length bytes. */
export interface RawOption {
  type: number;
  data: Uint8Array;
}

/** The options of a message. */
export interface Options {
  /** Source link-layer address (first instance), or null. */
  sourceLinkAddr: Mac | null;
  /** Target link-layer address (first instance), or null. */
  targetLinkAddr: Mac | null;
  /** Link MTU (first instance), or null. */
  mtu: number | null;
  /** Prefix information options, in order. */
  prefixes: PrefixInfo[];
  /** Route information options, in order. */
  routes: RouteInfo[];
  /** RDNSS options, in order. */
  rdnss: Rdnss[];
  /** DNSSL options, in order. */
  dnssl: Dnssl[];
  /** Nonce bytes (first instance, 6 or more), or null. */
  nonce: Uint8Array | null;
  /** Redirected header: the bytes after its 6 reserved bytes (IP header and data), or null. */
  redirected: Uint8Array | null;
  /** Every other option, and typed ones with malformed values, in order. */
  unknown: RawOption[];
}

/** A Neighbor Discovery message (RFC 4861 §4). */
export interface Message {
  /** ICMPv6 type, 133..137. */
  type: number;
  /** ICMPv6 code (0). */
  code: number;
  /** Checksum field as on the wire (emit writes it as given). */
  checksum: number;
  /** RA: the hop limit hosts should use, 0 = unspecified. */
  curHopLimit: number;
  /** RA: RA_* flag byte; NA: NA_* flag byte; else 0. */
  flags: number;
  /** RA: router lifetime in seconds, 0 = not a default router. */
  routerLifetime: number;
  /** RA: reachable time in ms, 0 = unspecified. */
  reachableTime: number;
  /** RA: retransmission timer in ms, 0 = unspecified. */
  retransTimer: number;
  /** NS, NA, Redirect: target address (owned by this object). */
  target: Ip6;
  /** Redirect: destination address (owned by this object). */
  destination: Ip6;
  /** The options. */
  options: Options;
}

/** Options all absent. */
export function blankOptions(): Options {
  return {
    sourceLinkAddr: null,
    targetLinkAddr: null,
    mtu: null,
    prefixes: [],
    routes: [],
    rdnss: [],
    dnssl: [],
    nonce: null,
    redirected: null,
    unknown: [],
  };
}

/** A message with every field initialised (a router solicitation without options). */
export function blank(): Message {
  return {
    type: icmpv6.TYPE_ROUTER_SOLICIT,
    code: 0,
    checksum: 0,
    curHopLimit: 0,
    flags: 0,
    routerLifetime: 0,
    reachableTime: 0,
    retransTimer: 0,
    target: new Uint8Array(IP6_LEN),
    destination: new Uint8Array(IP6_LEN),
    options: blankOptions(),
  };
}

/** The router preference (PRF_*) of an RA flag byte; the reserved value 10 reads as medium (RFC 4191 §2.2). */
export function routerPreference(flags: number): number {
  const p = (flags & RA_PRF_MASK) >>> 3;
  return p === 0b10 ? PRF_MEDIUM : p;
}

/** A copy of `n` bytes of the view at `o`. */
function copyBytes(v: DataView, o: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = v.getUint8(o + i);
  return out;
}

/** A 16-byte address read from the view (a new array). */
function ip6At(v: DataView, o: number): Ip6 {
  const a = new Uint8Array(IP6_LEN);
  readIp6(v, o, a);
  return a;
}

/**
 * Decodes one option's value into `out`; `p` is the option start, `n` its
 * length in bytes (a multiple of 8, at least 8).
 * @returns false when the value is malformed (the option then goes raw)
 */
function decodeOption(v: DataView, p: number, n: number, out: Options): boolean {
  const type = v.getUint8(p);
  switch (type) {
    case OPT_SOURCE_LL:
    case OPT_TARGET_LL: {
      if (n !== 8) return false;
      const mac = copyBytes(v, p + 2, 6);
      if (type === OPT_SOURCE_LL) out.sourceLinkAddr ??= mac;
      else out.targetLinkAddr ??= mac;
      return true;
    }
    case OPT_PREFIX: {
      const len = v.getUint8(p + 2);
      if (n !== 32 || len > 128) return false;
      out.prefixes.push({
        prefixLength: len,
        flags: v.getUint8(p + 3),
        validLifetime: v.getUint32(p + 4),
        preferredLifetime: v.getUint32(p + 8),
        prefix: ip6At(v, p + 16),
      });
      return true;
    }
    case OPT_MTU:
      if (n !== 8) return false;
      out.mtu ??= v.getUint32(p + 4);
      return true;
    case OPT_NONCE:
      out.nonce ??= copyBytes(v, p + 2, n - 2);
      return true;
    case OPT_REDIRECTED:
      out.redirected ??= copyBytes(v, p + 8, n - 8);
      return true;
    case OPT_ROUTE: {
      const len = v.getUint8(p + 2);
      // RFC 4191 §2.3: length 1 for /0, 2 up to /64, 3 for longer prefixes; the reserved preference 10 is ignored
      if (n > 24 || len > 128 || (len > 64 && n < 24) || (len > 0 && n < 16) || (v.getUint8(p + 3) & RA_PRF_MASK) === 0x10) return false;
      const prefix = new Uint8Array(IP6_LEN);
      for (let i = 0; i < n - 8; i++) prefix[i] = v.getUint8(p + 8 + i);
      out.routes.push({ prefixLength: len, preference: routerPreference(v.getUint8(p + 3)), lifetime: v.getUint32(p + 4), prefix });
      return true;
    }
    case OPT_RDNSS: {
      if (n < 24 || (n / 8) % 2 === 0) return false;
      const servers: Ip6[] = [];
      for (let i = p + 8; i < p + n; i += IP6_LEN) servers.push(ip6At(v, i));
      out.rdnss.push({ lifetime: v.getUint32(p + 4), servers });
      return true;
    }
    case OPT_DNSSL: {
      if (n < 16) return false;
      const domains = decodeNames(v, p + 8, n - 8, { pointers: false, padding: true });
      if (domains === null || domains.length === 0) return false;
      out.dnssl.push({ lifetime: v.getUint32(p + 4), domains });
      return true;
    }
    default:
      return false;
  }
}

/**
 * Decodes a Neighbor Discovery message (RFC 4861 §4; validation in the file
 * comment). Does not verify the checksum (`icmpv6.verify`) nor the IP-level
 * rules (`checkIp`).
 * @param v the buffer's DataView
 * @param o offset of the ICMPv6 message
 * @param len the ICMPv6 message length (to the end of the IPv6 payload)
 * @param out reused message to fill (its options are replaced)
 * @returns false when the message is invalid and must be dropped silently;
 *   `out` must then not be used. Never throws.
 */
export function parse(v: DataView, o: number, len: number, out: Message): boolean {
  if (len < icmpv6.HEADER_LEN) return false;
  const type = v.getUint8(o + icmpv6.TYPE);
  const fixed = FIXED[type];
  if (fixed === undefined || len < fixed || v.getUint8(o + icmpv6.CODE) !== 0) return false;
  out.type = type;
  out.code = 0;
  out.checksum = v.getUint16(o + icmpv6.CHECKSUM);
  out.curHopLimit = type === icmpv6.TYPE_ROUTER_ADVERT ? v.getUint8(o + 4) : 0;
  out.flags = type === icmpv6.TYPE_ROUTER_ADVERT ? v.getUint8(o + 5) : type === icmpv6.TYPE_NEIGHBOR_ADVERT ? v.getUint8(o + 4) : 0;
  out.routerLifetime = type === icmpv6.TYPE_ROUTER_ADVERT ? v.getUint16(o + 6) : 0;
  out.reachableTime = type === icmpv6.TYPE_ROUTER_ADVERT ? v.getUint32(o + 8) : 0;
  out.retransTimer = type === icmpv6.TYPE_ROUTER_ADVERT ? v.getUint32(o + 12) : 0;
  out.target.fill(0);
  out.destination.fill(0);
  if (fixed >= 24) {
    readIp6(v, o + 8, out.target);
    if (isMulticast6(out.target)) return false;
  }
  if (fixed >= 40) {
    readIp6(v, o + 24, out.destination);
    if (isMulticast6(out.destination)) return false;
  }
  const opts = blankOptions();
  const end = o + len;
  let count = 0;
  for (let p = o + fixed; p < end; ) {
    if (p + 2 > end || ++count > MAX_OPTIONS) return false;
    const n = v.getUint8(p + 1) << 3;
    if (n === 0 || p + n > end) return false;
    if (!decodeOption(v, p, n, opts)) opts.unknown.push({ type: v.getUint8(p), data: copyBytes(v, p + 2, n - 2) });
    p += n;
  }
  out.options = opts;
  return true;
}

/**
 * The IP-level checks of RFC 4861 that need the enclosing IPv6 header: hop
 * limit 255 for every type (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1); RS from
 * the unspecified address carries no source link-layer address (§6.1.1); RA
 * and Redirect come from a link-local address (§6.1.2, §8.1); NS from the
 * unspecified address (DAD) goes to a solicited-node address and carries no
 * source link-layer address (§7.1.1); NA to a multicast address has S clear
 * (§7.1.2).
 * @param m a parsed message
 * @param hopLimit the IPv6 hop limit
 * @param src the IPv6 source address
 * @param dst the IPv6 destination address
 * @returns true when the message may be processed
 */
export function checkIp(m: Message, hopLimit: number, src: Ip6, dst: Ip6): boolean {
  if (hopLimit !== HOP_LIMIT) return false;
  switch (m.type) {
    case icmpv6.TYPE_ROUTER_SOLICIT:
      return !(isUnspecified6(src) && m.options.sourceLinkAddr !== null);
    case icmpv6.TYPE_ROUTER_ADVERT:
    case icmpv6.TYPE_REDIRECT:
      return isLinkLocal6(src);
    case icmpv6.TYPE_NEIGHBOR_SOLICIT:
      return !isUnspecified6(src) || (isSolicitedNode6(dst) && m.options.sourceLinkAddr === null);
    case icmpv6.TYPE_NEIGHBOR_ADVERT:
      return !(isMulticast6(dst) && (m.flags & NA_SOLICITED) !== 0);
    default:
      return false;
  }
}

/** Bytes of a DNSSL option for these domains: 8 + names, padded to 8 (RFC 8106 §5.2). */
const dnsslLength = (d: Dnssl): number => (8 + namesLength(d.domains) + 7) & ~7;
/** Bytes of a raw option: 2 + data, padded to 8. */
const rawLength = (n: number): number => (2 + n + 7) & ~7;

/**
 * Bytes `emit` writes: the fixed part and every option.
 * @param m the message
 */
export function length(m: Message): number {
  const o = m.options;
  let n = FIXED[m.type] ?? icmpv6.HEADER_LEN;
  n += 32 * o.prefixes.length;
  for (const r of o.routes) n += r.prefixLength === 0 ? 8 : r.prefixLength <= 64 ? 16 : 24;
  if (o.mtu !== null) n += 8;
  if (o.sourceLinkAddr !== null) n += 8;
  if (o.targetLinkAddr !== null) n += 8;
  for (const d of o.dnssl) n += dnsslLength(d);
  for (const r of o.rdnss) n += 8 + IP6_LEN * r.servers.length;
  if (o.nonce !== null) n += rawLength(o.nonce.length);
  if (o.redirected !== null) n += 8 + ((o.redirected.length + 7) & ~7);
  for (const u of o.unknown) n += rawLength(u.data.length);
  return n;
}

/** Writes an option header and zeroes its `n` bytes first. @returns the option start */
function optionHeader(v: DataView, p: number, type: number, n: number): number {
  for (let i = 0; i < n; i++) v.setUint8(p + i, 0);
  v.setUint8(p, type);
  v.setUint8(p + 1, n >>> 3);
  return p;
}

/** Writes bytes into the view. */
function putBytes(v: DataView, o: number, b: Uint8Array): void {
  for (let i = 0; i < b.length; i++) v.setUint8(o + i, b[i]!);
}

/**
 * Writes the message (RFC 4861 §4; option order in the file comment). The
 * checksum field is written as given: call `icmpv6.fillChecksum` with the IPv6
 * addresses once the message is in place. Reserved bytes and padding are 0.
 * @param m the message
 * @param v the buffer's DataView, with room for `length(m)` bytes
 * @param o offset to write at
 * @returns bytes written (`length(m)`)
 */
export function emit(m: Message, v: DataView, o: number): number {
  const fixed = FIXED[m.type] ?? icmpv6.HEADER_LEN;
  for (let i = 4; i < fixed; i++) v.setUint8(o + i, 0);
  v.setUint8(o + icmpv6.TYPE, m.type);
  v.setUint8(o + icmpv6.CODE, m.code);
  v.setUint16(o + icmpv6.CHECKSUM, m.checksum);
  if (m.type === icmpv6.TYPE_ROUTER_ADVERT) {
    v.setUint8(o + 4, m.curHopLimit);
    v.setUint8(o + 5, m.flags);
    v.setUint16(o + 6, m.routerLifetime);
    v.setUint32(o + 8, m.reachableTime >>> 0);
    v.setUint32(o + 12, m.retransTimer >>> 0);
  } else if (m.type === icmpv6.TYPE_NEIGHBOR_ADVERT) {
    v.setUint8(o + 4, m.flags);
  }
  if (fixed >= 24) writeIp6(v, o + 8, m.target);
  if (fixed >= 40) writeIp6(v, o + 24, m.destination);
  const opts = m.options;
  let p = o + fixed;
  for (const x of opts.prefixes) {
    optionHeader(v, p, OPT_PREFIX, 32);
    v.setUint8(p + 2, x.prefixLength);
    v.setUint8(p + 3, x.flags);
    v.setUint32(p + 4, x.validLifetime >>> 0);
    v.setUint32(p + 8, x.preferredLifetime >>> 0);
    writeIp6(v, p + 16, x.prefix);
    p += 32;
  }
  for (const r of opts.routes) {
    const n = r.prefixLength === 0 ? 8 : r.prefixLength <= 64 ? 16 : 24;
    optionHeader(v, p, OPT_ROUTE, n);
    v.setUint8(p + 2, r.prefixLength);
    v.setUint8(p + 3, (r.preference & 3) << 3);
    v.setUint32(p + 4, r.lifetime >>> 0);
    putBytes(v, p + 8, r.prefix.subarray(0, n - 8));
    p += n;
  }
  if (opts.mtu !== null) {
    optionHeader(v, p, OPT_MTU, 8);
    v.setUint32(p + 4, opts.mtu >>> 0);
    p += 8;
  }
  for (const [type, mac] of [[OPT_SOURCE_LL, opts.sourceLinkAddr], [OPT_TARGET_LL, opts.targetLinkAddr]] as const) {
    if (mac === null) continue;
    optionHeader(v, p, type, 8);
    putBytes(v, p + 2, mac.subarray(0, 6));
    p += 8;
  }
  for (const d of opts.dnssl) {
    const n = dnsslLength(d);
    optionHeader(v, p, OPT_DNSSL, n);
    v.setUint32(p + 4, d.lifetime >>> 0);
    emitNames(d.domains, v, p + 8);
    p += n;
  }
  for (const r of opts.rdnss) {
    const n = 8 + IP6_LEN * r.servers.length;
    optionHeader(v, p, OPT_RDNSS, n);
    v.setUint32(p + 4, r.lifetime >>> 0);
    for (let i = 0; i < r.servers.length; i++) writeIp6(v, p + 8 + IP6_LEN * i, r.servers[i]!);
    p += n;
  }
  if (opts.nonce !== null) {
    const n = rawLength(opts.nonce.length);
    putBytes(v, optionHeader(v, p, OPT_NONCE, n) + 2, opts.nonce);
    p += n;
  }
  if (opts.redirected !== null) {
    const n = 8 + ((opts.redirected.length + 7) & ~7);
    putBytes(v, optionHeader(v, p, OPT_REDIRECTED, n) + 8, opts.redirected);
    p += n;
  }
  for (const u of opts.unknown) {
    const n = rawLength(u.data.length);
    putBytes(v, optionHeader(v, p, u.type, n) + 2, u.data);
    p += n;
  }
  return p - o;
}
