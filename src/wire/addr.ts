/**
 * Theory of operation: addresses as plain numbers. An IPv4 address is an
 * unsigned 32-bit integer in host order (`>>> 0` keeps it unsigned), so
 * comparisons, masks and hashing cost nothing on the data path; a MAC address
 * is six bytes, read from and written into a caller's buffer. Text forms exist
 * only at the edges (configuration, logs, DNS answers).
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
