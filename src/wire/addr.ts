/**
 * Theory of operation: addresses as plain numbers. An IPv4 address is an
 * unsigned 32-bit integer in host order (`>>> 0` keeps it unsigned), so
 * comparisons, masks and hashing cost nothing on the data path; a MAC address
 * is six bytes, read from and written into a caller's buffer. Text forms exist
 * only at the edges (configuration, logs, DNS answers).
 *
 * An IPv6 address (`Ip6`) is 16 bytes in network order, like a MAC: header
 * objects own their address arrays (allocated once by `blank()`, filled by
 * `readIp6`), so parsing allocates nothing, and every helper takes an
 * optional offset so it also works on the bytes of a frame in place. 128 bits
 * fit in no JS number, so a Map key needs a conversion. Measured with
 * bench/ipv6-parse.ts (bench/results/ipv6-parse.md; one lookup among 256
 * keys): `Map.get` with an IPv4 number 4.7 ns; with `ip6Key` (an 8-character
 * string of the eight 16-bit groups, one string allocated) 47 ns; with a
 * BigInt of the four words 109 ns; an open-addressing table probed with the
 * four u32 words read from the packet's view 6.7 ns, allocating nothing. So
 * `ip6Key` serves the control plane (neighbour tables, leases,
 * configuration), and a per-packet flow lookup should probe a word-keyed
 * table (or intern addresses into small numbers) instead of building
 * strings. Four u32 fields in the header objects instead of arrays were
 * measured too: reading eight numbers instead of copying 32 bytes makes an
 * IPv6+TCP parse about 24 ns cheaper (about 40 ns against 63 ns; IPv4+TCP
 * about 40 ns). Arrays were kept: every consumer (pseudo-header, neighbour
 * tables, NDP and DHCPv6 reprs, comparison, text) then takes one value
 * instead of four, and 24 ns is about 1% of the ~2 µs the gateway spends per
 * 1500-byte segment at its 5.9 Gbit/s (bench/results/latest.md).
 *
 * Text forms follow RFC 4291 §2.2 (input: all three forms, `::`, an embedded
 * dotted quad) and RFC 5952 §4 (output: lower case, no leading zeros, the
 * longest run of two or more zero groups as `::`, the first on a tie) with
 * the §5 mixed notation for IPv4-mapped addresses only (`::ffff:192.0.2.1`,
 * as Node's sockets print them); zone ids (`%eth0`) are not accepted.
 *
 * Pure: no I/O, no Node runtime imports.
 */

/** An IPv4 address as an unsigned 32-bit integer (network order value, e.g. 10.0.2.2 = 0x0a000202). */
export type Ip4 = number;

/**
 * Parses dotted-quad text.
 * @param text e.g. "10.0.2.15"
 * @returns the address, or -1 when `text` is not a dotted quad of 0..255
 */
export function parseIp4(text: string): Ip4 | -1 {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Formats an address as dotted-quad text. */
export function formatIp4(a: Ip4): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** The netmask of a prefix length (0..32), e.g. 24 → 0xffffff00. */
export function prefixMask(prefix: number): Ip4 {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** True when `a` lies in `net`/`prefix`. */
export function inSubnet(a: Ip4, net: Ip4, prefix: number): boolean {
  const m = prefixMask(prefix);
  return ((a & m) >>> 0) === ((net & m) >>> 0);
}

/** An IPv4 subnet: network address and prefix length. */
export interface Cidr4 {
  net: Ip4;
  prefix: number;
}

/**
 * Parses "10.0.2.0/24". Host bits are cleared.
 * @returns the subnet, or null when the text is not ADDR/PREFIX with PREFIX in 0..32
 */
export function parseCidr4(text: string): Cidr4 | null {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!m) return null;
  const a = parseIp4(m[1]!);
  const prefix = Number(m[2]);
  if (a === -1 || prefix > 32) return null;
  return { net: (a & prefixMask(prefix)) >>> 0, prefix };
}

/** Reads a 32-bit IPv4 address at `o`. */
export const readIp4 = (v: DataView, o: number): Ip4 => v.getUint32(o);
/** Writes a 32-bit IPv4 address at `o`. */
export const writeIp4 = (v: DataView, o: number, a: Ip4): void => v.setUint32(o, a >>> 0);

/** A MAC address as 6 bytes. */
export type Mac = Uint8Array;

/** The broadcast MAC ff:ff:ff:ff:ff:ff. */
export const BROADCAST_MAC: Mac = new Uint8Array([255, 255, 255, 255, 255, 255]);

/**
 * Parses "52:54:00:12:34:56" (colons or dashes).
 * @returns six bytes, or null on malformed text
 */
export function parseMac(text: string): Mac | null {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return null;
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** Formats six bytes at `o` of `b` as "52:54:00:12:34:56". */
export function formatMac(b: Uint8Array, o = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[o + i]!.toString(16).padStart(2, '0');
  return s;
}

/** Packs the 6 MAC bytes at `o` into one number (48 bits fit exactly in a double): a cheap map key. */
export function macKey(b: Uint8Array, o = 0): number {
  return (b[o]! * 0x10000000000) + (b[o + 1]! * 0x100000000) + (((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0);
}

/** True when the MAC at `o` has the group (multicast/broadcast) bit set. */
export const isGroupMac = (b: Uint8Array, o = 0): boolean => (b[o]! & 1) === 1;

/**
 * True for a MAC that can never be a frame's source: a group (multicast or
 * broadcast) address, or all zeros (IEEE 802-2014 §8.2; such a source can
 * never be a destination, so switches and hosts drop the frame).
 */
export const isBadSourceMac = (b: Uint8Array, o = 0): boolean => isGroupMac(b, o) || (b[o]! | b[o + 1]! | b[o + 2]! | b[o + 3]! | b[o + 4]! | b[o + 5]!) === 0;

// ------------------------------------------------------------------ IPv6

/** An IPv6 address: 16 bytes in network order. */
export type Ip6 = Uint8Array;

/** Bytes in an IPv6 address. */
export const IP6_LEN = 16;

/** An IPv6 subnet: network address (host bits zero) and prefix length 0..128. */
export interface Cidr6 {
  net: Ip6;
  prefix: number;
}

/** Builds an address from eight 16-bit groups (missing groups are 0). */
function fromGroups(g: readonly number[]): Ip6 {
  const a = new Uint8Array(IP6_LEN);
  for (let i = 0; i < 8; i++) {
    const w = g[i] ?? 0;
    a[2 * i] = w >>> 8;
    a[2 * i + 1] = w & 0xff;
  }
  return a;
}

/**
 * The 16-bit groups of one side of `::` (RFC 4291 §2.2); a dotted quad is
 * allowed only as the very last part of the address (`last`).
 * @returns the groups, or null on a malformed part
 */
function groupsOf(text: string, last: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
      out.push(parseInt(p, 16));
      continue;
    }
    if (!last || i !== parts.length - 1) return null;
    const v4 = parseIp4(p);
    if (v4 === -1) return null;
    out.push(v4 >>> 16, v4 & 0xffff);
  }
  return out;
}

/**
 * Parses IPv6 text in any form of RFC 4291 §2.2: eight groups, `::` for one
 * or more zero groups, a trailing dotted quad (`::ffff:10.0.2.15`).
 * @param text e.g. "fd00::2", "fe80::5054:ff:fe12:3456"
 * @returns the 16-byte address, or null on malformed text (zone ids and
 *   brackets included)
 */
export function parseIp6(text: string): Ip6 | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = groupsOf(halves[0]!, halves.length === 1);
  if (head === null) return null;
  if (halves.length === 1) return head.length === 8 ? fromGroups(head) : null;
  const tail = groupsOf(halves[1]!, true);
  if (tail === null || head.length + tail.length > 7) return null;
  return fromGroups([...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]);
}

/**
 * Formats an address in the canonical text of RFC 5952 §4 (mixed notation
 * for IPv4-mapped addresses, §5).
 * @param a the address bytes
 * @param o offset of the address in `a`
 */
export function formatIp6(a: Uint8Array, o = 0): string {
  if (isIp4Mapped6(a, o)) return `::ffff:${a[o + 12]}.${a[o + 13]}.${a[o + 14]}.${a[o + 15]}`;
  let best = -1;
  let bestLen = 1; // a single zero group is never shortened (§4.2.2)
  for (let i = 0; i < 8; ) {
    if (a[o + 2 * i] !== 0 || a[o + 2 * i + 1] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && a[o + 2 * j] === 0 && a[o + 2 * j + 1] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (s !== '' && !s.endsWith(':')) s += ':';
    s += ((a[o + 2 * i]! << 8) | a[o + 2 * i + 1]!).toString(16);
  }
  return s;
}

/**
 * Copies the 16-byte address at `o` of a view into `out` (no allocation).
 * @param v the buffer's DataView
 * @param o offset of the address
 * @param out destination, at least `oo + 16` bytes
 * @param oo offset in `out`
 */
export function readIp6(v: DataView, o: number, out: Ip6, oo = 0): void {
  for (let i = 0; i < IP6_LEN; i += 4) {
    const w = v.getUint32(o + i);
    out[oo + i] = w >>> 24;
    out[oo + i + 1] = (w >>> 16) & 0xff;
    out[oo + i + 2] = (w >>> 8) & 0xff;
    out[oo + i + 3] = w & 0xff;
  }
}

/**
 * Writes a 16-byte address at `o` of a view.
 * @param v the buffer's DataView
 * @param o offset to write at
 * @param a the address
 * @param ao offset of the address in `a`
 */
export function writeIp6(v: DataView, o: number, a: Uint8Array, ao = 0): void {
  for (let i = 0; i < IP6_LEN; i += 4) {
    v.setUint32(o + i, ((a[ao + i]! << 24) | (a[ao + i + 1]! << 16) | (a[ao + i + 2]! << 8) | a[ao + i + 3]!) >>> 0);
  }
}

/**
 * True when two addresses are equal.
 * @param a first address bytes; `ao` its offset
 * @param b second address bytes; `bo` its offset
 */
export function eqIp6(a: Uint8Array, b: Uint8Array, ao = 0, bo = 0): boolean {
  for (let i = 0; i < IP6_LEN; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/**
 * A Map key for an address: the eight 16-bit groups as an 8-character
 * string (one-to-one). Costs a string allocation: a lookup with it took
 * 47 ns against 4.7 ns with an IPv4 number (see the file comment); for the
 * control plane, not per packet.
 * @param a the address bytes
 * @param o offset of the address in `a`
 */
export function ip6Key(a: Uint8Array, o = 0): string {
  const g = (i: number): number => (a[o + i]! << 8) | a[o + i + 1]!;
  return String.fromCharCode(g(0), g(2), g(4), g(6), g(8), g(10), g(12), g(14));
}

/**
 * True when the address lies in `net`/`prefix` (RFC 4291 §2.3).
 * @param a the address bytes; `ao` its offset
 * @param net the network address
 * @param prefix prefix length 0..128
 */
export function inPrefix6(a: Uint8Array, net: Ip6, prefix: number, ao = 0): boolean {
  const full = prefix >>> 3;
  for (let i = 0; i < full; i++) if (a[ao + i] !== net[i]) return false;
  const bits = prefix & 7;
  if (bits === 0) return true;
  const m = (0xff00 >>> bits) & 0xff;
  return ((a[ao + full]! ^ net[full]!) & m) === 0;
}

/**
 * A copy of an address with the bits past `prefix` cleared.
 * @param a the address
 * @param prefix prefix length 0..128
 */
export function maskIp6(a: Ip6, prefix: number): Ip6 {
  const out = new Uint8Array(IP6_LEN);
  const full = prefix >>> 3;
  for (let i = 0; i < full && i < IP6_LEN; i++) out[i] = a[i]!;
  if (full < IP6_LEN) out[full] = a[full]! & ((0xff00 >>> (prefix & 7)) & 0xff);
  return out;
}

/**
 * Parses "fd00::/64" (RFC 4291 §2.3). Host bits are cleared.
 * @returns the subnet, or null when the text is not ADDR/PREFIX with PREFIX in 0..128
 */
export function parseCidr6(text: string): Cidr6 | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return null;
  const a = parseIp6(m[1]!);
  const prefix = Number(m[2]);
  if (a === null || prefix > 128) return null;
  return { net: maskIp6(a, prefix), prefix };
}

/** True for the unspecified address :: (RFC 4291 §2.5.2). */
export function isUnspecified6(a: Uint8Array, o = 0): boolean {
  for (let i = 0; i < IP6_LEN; i++) if (a[o + i] !== 0) return false;
  return true;
}

/** True for the loopback address ::1 (RFC 4291 §2.5.3). */
export function isLoopback6(a: Uint8Array, o = 0): boolean {
  for (let i = 0; i < 15; i++) if (a[o + i] !== 0) return false;
  return a[o + 15] === 1;
}

/** True for an IPv4-mapped address ::ffff:0:0/96 (RFC 4291 §2.5.5.2). */
export function isIp4Mapped6(a: Uint8Array, o = 0): boolean {
  for (let i = 0; i < 10; i++) if (a[o + i] !== 0) return false;
  return a[o + 10] === 0xff && a[o + 11] === 0xff;
}

/**
 * True for an IPv4 link-local address, 169.254.0.0/16 (RFC 3927 §2.7: a
 * router must not forward a datagram with a link-local destination).
 */
export const isLinkLocal4 = (a: Ip4): boolean => a >>> 16 === 0xa9fe;

/** True for a link-local unicast address fe80::/10 (RFC 4291 §2.5.6). */
export const isLinkLocal6 = (a: Uint8Array, o = 0): boolean => a[o] === 0xfe && (a[o + 1]! & 0xc0) === 0x80;

/** True for a unique local address fc00::/7 (RFC 4193 §3.1). */
export const isUla6 = (a: Uint8Array, o = 0): boolean => (a[o]! & 0xfe) === 0xfc;

/** True for a multicast address ff00::/8 (RFC 4291 §2.7). */
export const isMulticast6 = (a: Uint8Array, o = 0): boolean => a[o] === 0xff;

/** The scope nibble of a multicast address (1 interface, 2 link, 5 site, 0xe global; RFC 4291 §2.7). */
export const multicastScope6 = (a: Uint8Array, o = 0): number => a[o + 1]! & 0x0f;

/** The first 13 bytes of every solicited-node address, ff02::1:ff00:0/104 (RFC 4291 §2.7.1). */
const SOLICITED_PREFIX = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];

/** True for a solicited-node multicast address ff02::1:ffXX:XXXX (RFC 4291 §2.7.1). */
export function isSolicitedNode6(a: Uint8Array, o = 0): boolean {
  for (let i = 0; i < 13; i++) if (a[o + i] !== SOLICITED_PREFIX[i]) return false;
  return true;
}

/**
 * The solicited-node multicast address of a unicast address: ff02::1:ff
 * followed by its low 24 bits (RFC 4291 §2.7.1), where NDP sends neighbour
 * solicitations.
 * @param a the unicast address bytes; `o` its offset
 */
export function solicitedNode6(a: Uint8Array, o = 0): Ip6 {
  const out = new Uint8Array(IP6_LEN);
  out.set(SOLICITED_PREFIX);
  out[13] = a[o + 13]!;
  out[14] = a[o + 14]!;
  out[15] = a[o + 15]!;
  return out;
}

/**
 * Writes the Ethernet destination of an IPv6 multicast address: 33:33
 * followed by its last four bytes (RFC 2464 §7).
 * @param a the multicast address bytes; `ao` its offset
 * @param out destination MAC bytes, `oo + 6` long
 * @param oo offset in `out`
 * @returns `out`
 */
export function multicastMac6(a: Uint8Array, out: Uint8Array = new Uint8Array(6), ao = 0, oo = 0): Uint8Array {
  out[oo] = 0x33;
  out[oo + 1] = 0x33;
  out[oo + 2] = a[ao + 12]!;
  out[oo + 3] = a[ao + 13]!;
  out[oo + 4] = a[ao + 14]!;
  out[oo + 5] = a[ao + 15]!;
  return out;
}

/**
 * Writes the modified EUI-64 interface identifier of a MAC: ff:fe inserted in
 * the middle and the universal/local bit inverted (RFC 4291 §2.5.1 and
 * Appendix A, RFC 2464 §4).
 * @param mac the 6-byte MAC
 * @param out destination, `oo + 8` bytes long (e.g. an Ip6 with `oo` 8)
 * @param oo offset in `out`
 */
export function writeEui64(mac: Mac, out: Uint8Array, oo = 0): void {
  out[oo] = mac[0]! ^ 0x02;
  out[oo + 1] = mac[1]!;
  out[oo + 2] = mac[2]!;
  out[oo + 3] = 0xff;
  out[oo + 4] = 0xfe;
  out[oo + 5] = mac[3]!;
  out[oo + 6] = mac[4]!;
  out[oo + 7] = mac[5]!;
}

/**
 * The address a host forms from a /64 prefix and its MAC by modified EUI-64
 * (RFC 4862 §5.3 for fe80::/64, §5.5.3 for advertised prefixes; RFC 2464
 * §4-5). Hosts using stable privacy identifiers (RFC 7217) or temporary
 * addresses (RFC 8981) form other ones.
 * @param prefix the network; only its first 8 bytes are used
 * @param mac the interface's MAC
 */
export function eui64Address(prefix: Ip6, mac: Mac): Ip6 {
  const out = new Uint8Array(IP6_LEN);
  out.set(prefix.subarray(0, 8));
  writeEui64(mac, out, 8);
  return out;
}

/** The link-local prefix fe80::/64 (RFC 4291 §2.5.6); do not modify. */
export const LINK_LOCAL_PREFIX6: Ip6 = fromGroups([0xfe80]);
/** The unspecified address :: (RFC 4291 §2.5.2); do not modify. */
export const UNSPECIFIED_IP6: Ip6 = fromGroups([]);
/** The link-scope all-nodes multicast address ff02::1 (RFC 4291 §2.7.1); do not modify. */
export const ALL_NODES_IP6: Ip6 = fromGroups([0xff02, 0, 0, 0, 0, 0, 0, 1]);
/** The link-scope all-routers multicast address ff02::2 (RFC 4291 §2.7.1); do not modify. */
export const ALL_ROUTERS_IP6: Ip6 = fromGroups([0xff02, 0, 0, 0, 0, 0, 0, 2]);
