/**
 * Theory of operation: the names vmnet answers itself, without asking any
 * upstream resolver. Everything here is pure (no I/O, no timers, no Node
 * runtime imports): {@link LocalZone.resolve} maps (name, type, class) to a
 * verdict, and the DNS service (server.ts) turns the verdict into bytes.
 *
 * Resolution order (first match wins):
 *  1. RFC 6761 §6.4 `invalid` and everything below it → NXDOMAIN, and
 *     RFC 7686 `onion` likewise (a host stub cannot resolve it anyway).
 *  2. RFC 6761 §6.3 `localhost` and `*.localhost` → A 127.0.0.1 / AAAA ::1,
 *     NODATA for any other type. Never forwarded.
 *  3. User records (`--dns-record NAME=IP`, several per name allowed). A user
 *     record for a built-in name replaces the built-in answer.
 *  4. Built-ins: `host.vmnet.internal` (the host as seen from the guest),
 *     `gateway.vmnet.internal`, and `dns.vmnet.internal` when a DNS address
 *     is configured.
 *  5. `LABEL.vmnet.internal` and bare single-label names: the dynamic
 *     `lookupHost(label)` hook (VM names learnt from DHCP). `null` means "no
 *     such host", `[]` means "host exists, no IPv4 address" (NODATA). The
 *     AAAA answers of a name it knows come from the `lookupHost6` hook (the
 *     IPv6 addresses the gateway saw that VM's link use).
 *  6. Anything else under `vmnet.internal` → NXDOMAIN (that zone is ours;
 *     it is never forwarded). A name with records below it (an empty
 *     non-terminal) is NODATA, not NXDOMAIN (RFC 8020).
 *  7. PTR queries (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5 `ip6.arpa`)
 *     for the addresses above, 127.0.0.1/::1 (→ `localhost`) and addresses
 *     the `lookupAddr` hook knows.
 *  8. Otherwise `null`: not ours, the caller forwards it (bare single-label
 *     names the hook does not know are forwarded too, like a host stub would).
 *
 * A name that exists but has no records of the asked type gets NODATA: rcode
 * NOERROR with an empty answer section (RFC 2308 §2.2). vmnet sends no SOA in
 * negative answers, so resolvers do not cache them (RFC 2308 §5): a VM name
 * that DHCP learns a second later resolves at once.
 *
 * Names compare case-insensitively (ASCII only, RFC 4343) and a trailing dot
 * is ignored. Answers carry the query name exactly as asked (so a guest that
 * randomises letter case still matches its answer) and a TTL of
 * {@link DEFAULT_TTL} seconds.
 */

import { formatIp4, parseIp4, type Ip4 } from '../../wire/addr.js';
import { VmnetError } from '../../errors.js';

/** TTL (seconds) of locally generated answers. */
export const DEFAULT_TTL = 60;

/** The zone vmnet is authoritative for. */
export const INTERNAL_DOMAIN = 'vmnet.internal';

/** One user record from `--dns-record NAME=IP`; `name` is normalized (lower case, no trailing dot). */
export type DnsRecord =
  | { readonly name: string; readonly type: 'A'; readonly address: Ip4 }
  | { readonly name: string; readonly type: 'AAAA'; readonly address: string /* RFC 5952 text */ };

/** One answer record, shaped so that dns-packet can encode it directly. */
export interface LocalAnswer {
  name: string;
  type: 'A' | 'AAAA' | 'PTR';
  class: 'IN';
  ttl: number;
  data: string;
}

/**
 * The verdict for a local name: NXDOMAIN (no answers), NOERROR with answers,
 * or NODATA (NOERROR with no answers).
 */
export interface LocalResult {
  rcode: 'NOERROR' | 'NXDOMAIN';
  answers: LocalAnswer[];
}

/** Dynamic VM-name lookup (e.g. DHCP leases): the label's IPv4 addresses, `[]` = exists without IPv4, `null` = unknown. */
export type LookupHost = (label: string) => Ip4[] | null;
/** Dynamic VM-name lookup, IPv6: the label's IPv6 addresses (RFC 5952 text) when {@link LookupHost} knows it. */
export type LookupHost6 = (label: string) => string[];
/** Dynamic reverse lookup: the host label (answered as `LABEL.vmnet.internal`) owning `ip`, or null. */
export type LookupAddr = (ip: Ip4) => string | null;

/** Options of {@link LocalZone}. */
export interface LocalZoneOptions {
  /** The host as seen from the guest (answered for `host.vmnet.internal`). */
  hostIp: Ip4;
  /** The gateway (answered for `gateway.vmnet.internal`). */
  gatewayIp: Ip4;
  /** The DNS service address; `dns.vmnet.internal` exists only when set. */
  dnsIp?: Ip4 | undefined;
  /** Optional IPv6 addresses (any text form) for the host / gateway names. */
  hostIp6?: string | undefined;
  gatewayIp6?: string | undefined;
  /** User records (see {@link parseDnsRecord}). */
  records?: readonly DnsRecord[] | undefined;
  /** VM names, consulted for `LABEL.vmnet.internal` and bare `LABEL`. */
  lookupHost?: LookupHost | null | undefined;
  /** Reverse of {@link LookupHost}, for PTR queries. */
  lookupAddr?: LookupAddr | null | undefined;
  /** TTL of answers, default {@link DEFAULT_TTL}. */
  ttl?: number | undefined;
}

interface Entry {
  a: Ip4[];
  aaaa: string[];
}

const LOOPBACK4 = 0x7f000001;
const LOOPBACK6 = '::1';

/**
 * Lower-cases ASCII letters (RFC 4343: only ASCII is case-insensitive) and
 * drops one trailing dot. The root name becomes the empty string.
 * @param name a name as decoded from the wire or typed by a user
 * @returns the comparison key
 */
export function normalizeName(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** True when `name` (normalized) equals `zone` or lies below it. */
const inZone = (name: string, zone: string): boolean => name === zone || name.endsWith('.' + zone);

const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Checks a normalized host name: labels of 1..63 letters, digits, `-` or `_`
 * (no leading/trailing `-`), at most 253 characters (RFC 1035 §2.3.4,
 * RFC 1123 §2.1; `_` allowed for service-style names).
 */
export function isValidHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL_RE.test(l));
}

/**
 * Parses IPv6 text (RFC 4291 §2.2: hex groups, one `::`, optional dotted-quad
 * tail). A zone suffix (`%eth0`) is not accepted here.
 * @returns 16 bytes, or null when `text` is not an IPv6 address
 */
export function parseIp6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const dbl = text.indexOf('::');
  let head: string[];
  let tail: string[];
  if (dbl !== -1) {
    if (text.indexOf('::', dbl + 1) !== -1) return null;
    const h = text.slice(0, dbl);
    const t = text.slice(dbl + 2);
    head = h === '' ? [] : h.split(':');
    tail = t === '' ? [] : t.split(':');
  } else {
    head = text.split(':');
    tail = [];
  }
  // A dotted-quad tail stands for two groups.
  const last = dbl === -1 ? head : tail;
  const lastItem = last[last.length - 1];
  let v4: Ip4 | -1 | null = null;
  if (lastItem !== undefined && lastItem.includes('.')) {
    v4 = parseIp4(lastItem);
    if (v4 === -1) return null;
    last.pop();
  }
  const extra = v4 === null ? 0 : 2;
  const count = head.length + tail.length + extra;
  if (dbl === -1 ? count !== 8 : count > 7) return null;
  const groups = [...head, ...new Array<string>(8 - count).fill('0'), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 255;
  }
  if (v4 !== null) {
    out[12] = v4 >>> 24;
    out[13] = (v4 >>> 16) & 255;
    out[14] = (v4 >>> 8) & 255;
    out[15] = v4 & 255;
  }
  return out;
}

/**
 * Formats 16 bytes as RFC 5952 text: lower case, no leading zeros, the
 * longest run (first on ties) of two or more zero groups as `::`.
 */
export function formatIp6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best === -1) return hex(g);
  return hex(g.slice(0, best)) + '::' + hex(g.slice(best + bestLen));
}

/** The `in-addr.arpa` name of an IPv4 address (RFC 1035 §3.5). */
export function reverseName4(ip: Ip4): string {
  return `${ip & 255}.${(ip >>> 8) & 255}.${(ip >>> 16) & 255}.${ip >>> 24}.in-addr.arpa`;
}

/** The `ip6.arpa` nibble name of an IPv6 address (RFC 3596 §2.5). */
export function reverseName6(b: Uint8Array): string {
  const n: string[] = [];
  for (let i = 15; i >= 0; i--) n.push((b[i]! & 15).toString(16), (b[i]! >> 4).toString(16));
  return n.join('.') + '.ip6.arpa';
}

/** Parses a normalized `in-addr.arpa` name back to an address, or null. */
function parseReverse4(name: string): Ip4 | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(name);
  if (!m) return null;
  const ip = parseIp4(`${m[4]}.${m[3]}.${m[2]}.${m[1]}`);
  return ip === -1 ? null : ip;
}

/**
 * Parses one `--dns-record NAME=IP` spec. NAME is a host name (case and a
 * trailing dot ignored); IP is IPv4 (→ A) or IPv6 (→ AAAA). Repeat the flag
 * for several addresses of one name.
 * @param spec e.g. "db.test=10.0.2.100" or "db.test=fd00::64"
 * @returns the normalized record
 * @throws VmnetError E_USAGE with a one-line message when malformed
 */
export function parseDnsRecord(spec: string): DnsRecord {
  const eq = spec.indexOf('=');
  const shown = JSON.stringify(spec);
  if (eq === -1) throw new VmnetError('E_USAGE', `--dns-record ${shown}: expected NAME=IP, e.g. db.test=10.0.2.100`);
  const name = normalizeName(spec.slice(0, eq).trim());
  const ipText = spec.slice(eq + 1).trim();
  if (!isValidHostName(name)) {
    throw new VmnetError('E_USAGE', `--dns-record ${shown}: "${spec.slice(0, eq)}" is not a valid host name (labels of letters, digits, '-', '_')`);
  }
  if (inZone(name, 'invalid') || inZone(name, 'localhost') || inZone(name, 'onion')) {
    throw new VmnetError('E_USAGE', `--dns-record ${shown}: names under .invalid, .onion and localhost are reserved (RFC 6761, RFC 7686)`);
  }
  const v4 = parseIp4(ipText);
  if (v4 !== -1) return { name, type: 'A', address: v4 };
  const v6 = parseIp6(ipText);
  if (v6 !== null) return { name, type: 'AAAA', address: formatIp6(v6) };
  throw new VmnetError('E_USAGE', `--dns-record ${shown}: "${ipText}" is not an IPv4 or IPv6 address`);
}

/**
 * The local zone: built-in names, user records, RFC 6761 special names and
 * the dynamic VM-name hooks. Immutable except for the hooks.
 */
export class LocalZone {
  private readonly entries = new Map<string, Entry>();
  /** Normalized names that exist only because names below them do (empty non-terminals). */
  private readonly parents = new Set<string>();
  private readonly ptr4 = new Map<Ip4, string>();
  private readonly ptr6 = new Map<string, string>();
  private readonly ttl: number;
  private lookupHostFn: LookupHost | null;
  private lookupAddrFn: LookupAddr | null;
  private lookupHost6Fn: LookupHost6 | null = null;

  /** @param opts addresses, user records and hooks; see {@link LocalZoneOptions} */
  constructor(opts: LocalZoneOptions) {
    this.ttl = opts.ttl ?? DEFAULT_TTL;
    this.lookupHostFn = opts.lookupHost ?? null;
    this.lookupAddrFn = opts.lookupAddr ?? null;
    const builtin = new Map<string, Entry>();
    const add6 = (e: Entry, text: string | undefined) => {
      if (text === undefined) return;
      const b = parseIp6(text);
      if (!b) throw new VmnetError('E_USAGE', `not an IPv6 address: ${JSON.stringify(text)}`);
      e.aaaa.push(formatIp6(b));
    };
    const gw: Entry = { a: [opts.gatewayIp >>> 0], aaaa: [] };
    add6(gw, opts.gatewayIp6);
    const host: Entry = { a: [opts.hostIp >>> 0], aaaa: [] };
    add6(host, opts.hostIp6);
    builtin.set(`gateway.${INTERNAL_DOMAIN}`, gw);
    builtin.set(`host.${INTERNAL_DOMAIN}`, host);
    if (opts.dnsIp !== undefined) builtin.set(`dns.${INTERNAL_DOMAIN}`, { a: [opts.dnsIp >>> 0], aaaa: [] });

    // User records replace a built-in of the same name entirely.
    const user = new Map<string, Entry>();
    for (const r of opts.records ?? []) {
      let e = user.get(r.name);
      if (!e) user.set(r.name, (e = { a: [], aaaa: [] }));
      if (r.type === 'A') {
        if (!e.a.includes(r.address >>> 0)) e.a.push(r.address >>> 0);
      } else if (!e.aaaa.includes(r.address)) e.aaaa.push(r.address);
    }
    // PTR: user records first, then built-ins; first name for an address wins.
    for (const [name, e] of [...user, ...builtin]) {
      if (!this.entries.has(name)) this.entries.set(name, e);
    }
    for (const [name, e] of this.entries) {
      for (const a of e.a) if (!this.ptr4.has(a)) this.ptr4.set(a, name);
      for (const a of e.aaaa) if (!this.ptr6.has(a)) this.ptr6.set(a, name);
      const labels = name.split('.');
      for (let i = 1; i < labels.length; i++) this.parents.add(labels.slice(i).join('.'));
    }
  }

  /**
   * Installs (or removes, with null) the dynamic VM-name hooks, e.g. once the
   * DHCP server exists.
   */
  setLookupHost(lookupHost: LookupHost | null, lookupAddr: LookupAddr | null = null, lookupHost6: LookupHost6 | null = null): void {
    this.lookupHostFn = lookupHost;
    this.lookupAddrFn = lookupAddr;
    this.lookupHost6Fn = lookupHost6;
  }

  /**
   * True when vmnet itself is authoritative for `name`, i.e. it must never be
   * forwarded whatever the outcome (RFC 6761 names and `vmnet.internal`).
   */
  isReserved(name: string): boolean {
    const n = normalizeName(name);
    return inZone(n, 'invalid') || inZone(n, 'onion') || inZone(n, 'localhost') || inZone(n, INTERNAL_DOMAIN);
  }

  /**
   * Answers a question from local data.
   * @param qname the name as asked (case is kept in the answers)
   * @param qtype a dns-packet type string: 'A', 'AAAA', 'PTR', 'ANY', 'MX', 'UNKNOWN_65', ...
   * @param qclass a dns-packet class string, default 'IN'; other classes
   *   than IN/ANY never get records (NXDOMAIN/NODATA still apply)
   * @returns the verdict, or null when the name is not local (forward it)
   */
  resolve(qname: string, qtype: string, qclass = 'IN'): LocalResult | null {
    const name = normalizeName(qname);
    const type = qtype.toUpperCase();
    const inClass = qclass === 'IN' || qclass === 'ANY';
    const wantA = inClass && (type === 'A' || type === 'ANY');
    const wantAAAA = inClass && (type === 'AAAA' || type === 'ANY');
    const answer = (a: readonly Ip4[], aaaa: readonly string[]): LocalResult => {
      const answers: LocalAnswer[] = [];
      if (wantA) for (const ip of a) answers.push(this.rr(qname, 'A', formatIp4(ip)));
      if (wantAAAA) for (const ip of aaaa) answers.push(this.rr(qname, 'AAAA', ip));
      return { rcode: 'NOERROR', answers };
    };

    // 1. RFC 6761 §6.4, RFC 7686 §2.
    if (inZone(name, 'invalid') || inZone(name, 'onion')) return { rcode: 'NXDOMAIN', answers: [] };
    // 2. RFC 6761 §6.3.
    if (inZone(name, 'localhost')) return answer([LOOPBACK4], [LOOPBACK6]);
    // 3 + 4. User records and built-ins.
    const e = this.entries.get(name);
    if (e) return answer(e.a, e.aaaa);
    // 5. VM names: bare `LABEL` or `LABEL.vmnet.internal`.
    const dot = name.indexOf('.');
    const internal = inZone(name, INTERNAL_DOMAIN);
    let label: string | null = null;
    if (dot === -1) label = name;
    else if (internal && dot === name.length - INTERNAL_DOMAIN.length - 1) label = name.slice(0, dot);
    if (label !== null && label !== '' && this.lookupHostFn) {
      const ips = this.lookupHostFn(label);
      if (ips !== null) return answer(ips, this.lookupHost6Fn?.(label) ?? []);
    }
    // 6. Our zone: the apex and empty non-terminals exist (RFC 8020), the rest does not.
    // (Parents of user records outside our zone are left to upstream.)
    if (internal) return name === INTERNAL_DOMAIN || this.parents.has(name) ? answer([], []) : { rcode: 'NXDOMAIN', answers: [] };
    // 7. PTR.
    if (type === 'PTR' || type === 'ANY') {
      const target = this.reverse(name);
      if (target !== null) return { rcode: 'NOERROR', answers: inClass ? [this.rr(qname, 'PTR', target)] : [] };
    }
    return null;
  }

  private reverse(name: string): string | null {
    const ip4 = parseReverse4(name);
    if (ip4 !== null) {
      if (ip4 === LOOPBACK4) return 'localhost';
      const own = this.ptr4.get(ip4);
      if (own !== undefined) return own;
      const vm = this.lookupAddrFn?.(ip4) ?? null;
      return vm === null ? null : `${normalizeName(vm)}.${INTERNAL_DOMAIN}`;
    }
    const m = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(name);
    if (m) {
      const nibbles = m[1]!.split('.').slice(0, 32).reverse();
      const b = new Uint8Array(16);
      for (let i = 0; i < 16; i++) b[i] = (parseInt(nibbles[i * 2]!, 16) << 4) | parseInt(nibbles[i * 2 + 1]!, 16);
      const text = formatIp6(b);
      if (text === LOOPBACK6) return 'localhost';
      return this.ptr6.get(text) ?? null;
    }
    return null;
  }

  private rr(name: string, type: LocalAnswer['type'], data: string): LocalAnswer {
    return { name: name.endsWith('.') && name !== '.' ? name.slice(0, -1) : name, type, class: 'IN', ttl: this.ttl, data };
  }
}
