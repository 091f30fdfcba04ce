/**
 * Theory of operation: a sans-IO DHCPv4 server engine (RFC 2131 §4.3) for the
 * one virtual link vmnet's gateway owns. The gateway parses a client's UDP
 * payload with `wire/dhcpv4.ts`, calls `handle(msg, now)`, and, when a
 * `Reply` comes back, emits `reply.msg` to `reply.dstIp`/`dstMac`/`dstPort`.
 * There are no sockets and no timers: every lease carries an absolute expiry
 * (ms on the injected clock) and expiry is evaluated lazily against `now`.
 *
 * Clients. A client is identified by option 61 (client identifier) when sent,
 * else by chaddr (RFC 2131 §4.2). Because one VM boots through firmware (no
 * client id) and then an OS (client id), a client whose key is unknown adopts
 * the binding last used by the same chaddr, unless that binding is active
 * and owned by a different client id. So in practice a lease is stable per
 * MAC. A client id seen with a new chaddr moves its binding to that MAC.
 *
 * Links. Every message comes from a link (`handle`'s third argument: a
 * gateway connection or a switch port, numbered by the caller). A binding
 * belongs to the link that last got an OFFER or ACK for it; while the
 * binding is active (OFFERED or BOUND, unexpired), a DISCOVER, REQUEST,
 * DECLINE or RELEASE naming its MAC or client id from another link gets no
 * reply (`dropped.otherLink`): as far as this server is concerned that link
 * has no such client, and RFC 2131 §4.3.2 has a server with no record of a
 * client stay silent; a NAK would only tell a spoofer to try again, and on
 * a segment it is broadcast to every guest. The same holds for a chaddr the
 * gateway has seen another link use (`macInUse`). When a link closes
 * (`linkClosed`) its bindings stay, owned by no link, so the same VM on a
 * new connection gets its address back. One link may hold at most
 * `maxLeasesPerLink` active bindings (default 4): one more client from it is
 * not answered (`dropped.linkLimit`), so cycling MACs cannot drain the
 * pool. An address the gateway sees in use by another link
 * (`addressInUse`, the probe RFC 2131 §4.4.1 recommends before offering) is
 * neither offered nor ACKed.
 *
 * Memory. At most `maxBindings` clients (default 1024) are remembered; a new
 * one beyond that replaces the binding that went inactive longest ago, or is
 * not answered when all are active (`dropped.tableFull`). An inactive
 * binding is forgotten `retainTime` (default a day) after its lease ended
 * (`sweep`).
 *
 * Host names (option 12, dhcp-names.ts): a name belongs to the first client
 * that sent it while its binding is active and `nameHoldTime` (default the
 * lease time) after, so a VM between leases keeps it; another client sending
 * it is served but its name does not resolve (`hostnameTaken`).
 *
 * Addresses (RFC 2131 §4.3.1, in this order): a static reservation
 * (`reserve`); the client's current or previous address, kept for the
 * server's lifetime even after expiry or release while nobody else needs
 * it; the requested address (option 50) if free; the lowest never-used pool
 * address; finally the pool address of the binding that went inactive
 * (expired or released) longest ago, which is then reclaimed. If none is
 * left the DISCOVER is dropped and counted (`dropped.poolExhausted`). Never
 * leased: the network and broadcast addresses, `serverIp`, `router`, `dns`,
 * `reserved`, anything outside the subnet, and addresses reserved for other
 * MACs. An offered address is held for `offerHoldTime` (60 s); a declined
 * one (DHCPDECLINE, RFC 2131 §4.3.3) is not offered to anyone for
 * `declineHoldTime` (600 s, as dnsmasq).
 *
 * Authority. vmnet's gateway is the only DHCP server on its link, so the
 * engine is authoritative (like dnsmasq `--dhcp-authoritative`): a REQUEST in
 * INIT-REBOOT, RENEWING or REBINDING from a client it has no record of (the
 * gateway restarted) is ACKed when the address is free for that client and
 * NAKed otherwise, where RFC 2131 §4.3.2 has a non-authoritative server stay
 * silent. A REQUEST naming another server id (SELECTING, §4.3.2) gets no
 * reply and frees the offer.
 *
 * Options. OFFER/ACK carry 53, 54, 51/58/59 (T1 = 50 %, T2 = 87.5 % of the
 * lease, RFC 2131 §4.4.5; not in an INFORM ACK, §4.3.5), 1, 3, 6, 15, 26, 28,
 * 119 when configured, 12 echoing the client's host name, and 61 echoing the
 * client id (RFC 6842). The parameter request list (55) is not used to
 * restrict them (RFC 2131 §4.3.1 lets a server send more): the set is small,
 * and busybox udhcpc, vmnet's test guest client, does not request 26 (MTU)
 * by default yet applies it. The exception is 121: RFC 3442 says a server
 * SHOULD NOT send it unrequested, so it goes only to clients listing 121 in
 * 55, and then carries a 0.0.0.0/0 route via `router` too, since such a
 * client ignores option 3 (RFC 3442). Replies are kept within the client's
 * limit: option 57 (at least 576) or 576, minus 28 bytes of IP and UDP
 * headers; when over, optional options are dropped (119, 12, 15, 28, 26,
 * 121, in that order).
 *
 * Reply destinations follow RFC 2131 §4.1: giaddr ≠ 0 → the relay, port 67
 * (broadcast bit set on a NAK); a NAK → broadcast; ciaddr ≠ 0 → unicast to
 * ciaddr/chaddr; broadcast bit → 255.255.255.255 and ff:ff:ff:ff:ff:ff; else
 * unicast to yiaddr at chaddr (the gateway writes chaddr as the Ethernet
 * destination; it must not ARP for an address the client does not have yet).
 *
 * Pure: no I/O, no Node runtime imports.
 */
import * as addr from '../wire/addr.js';
import type { Cidr4, Ip4, Mac } from '../wire/addr.js';
import * as dhcp from '../wire/dhcpv4.js';
import type { Route4 } from '../wire/dhcpv4.js';
import { VmnetError } from '../errors.js';
import { HostNames } from './dhcp-names.js';

/** Lease states (numbers, not strings). EXPIRED is computed from `expires` and `now`. */
export const LeaseState = { OFFERED: 1, BOUND: 2, RELEASED: 3, EXPIRED: 4 } as const;
export type LeaseState = (typeof LeaseState)[keyof typeof LeaseState];

/** A lease as reported by `leases()`, `leaseFor()` and `onLease` (a snapshot copy). */
export interface Lease {
  /** chaddr as "52:54:00:12:34:56". */
  mac: string;
  /** Option 61 as lowercase hex, or null when the client sent none. */
  clientId: string | null;
  ip: Ip4;
  /** Option 12 as last sent by the client, or null. */
  hostname: string | null;
  /** Absolute expiry, ms on the server's clock (for RELEASED: the release time). */
  expires: number;
  state: LeaseState;
}

/** Server configuration. Addresses are `Ip4` numbers; times are seconds. */
export interface DhcpServerConfig {
  /** The server identifier (option 54) and source address of replies. */
  serverIp: Ip4;
  /** The link's subnet: gives options 1 and 28. */
  subnet: Cidr4;
  /** Default gateway (option 3), or null for none. */
  router: Ip4 | null;
  /** DNS servers (option 6). */
  dns: Ip4[];
  /** First and last address of the dynamic pool, inclusive. */
  poolStart: Ip4;
  poolEnd: Ip4;
  /** Lease time in seconds; default 3600 (an hour: short enough to recycle, long enough to be quiet). */
  leaseTime?: number;
  /** Interface MTU (option 26), 68..65535. */
  mtu?: number;
  /** Domain name (option 15). */
  domain?: string;
  /** Domain search list (option 119, RFC 3397). */
  searchList?: string[];
  /** Classless static routes (option 121, RFC 3442). */
  staticRoutes?: Route4[];
  /** Addresses never leased (the gateway, DNS, host-forward addresses, …). */
  reserved?: Ip4[];
  /** Seconds an offered address stays held for its client; default 60. */
  offerHoldTime?: number;
  /** Seconds a declined address is withheld from everyone; default 600. */
  declineHoldTime?: number;
  /** Called after each ACK that binds or renews a lease, and after each RELEASE. */
  onLease?: (lease: Lease) => void;
  /** Active bindings (offered or bound) one link may hold; default 4. */
  maxLeasesPerLink?: number;
  /** Clients remembered at most, active or not; default 1024. */
  maxBindings?: number;
  /** Seconds an inactive binding is remembered after its lease ended; default 86400. */
  retainTime?: number;
  /** Seconds a client's host name stays its own after its lease ended; default the lease time. */
  nameHoldTime?: number;
  /** True when the gateway sees `ip` in use by a link other than `link` (never offered or ACKed then). */
  addressInUse?: (ip: Ip4, link: number) => boolean;
  /** True when the gateway sees `mac` in use by a link other than `link` (the message is not answered). */
  macInUse?: (mac: Mac, link: number) => boolean;
}

/** Where and what to send (RFC 2131 §4.1). */
export interface Reply {
  /** The message to emit with `dhcpv4.emit` (fits the client's size limit). */
  msg: dhcp.Message;
  /** IPv4 destination: 255.255.255.255, ciaddr, yiaddr or giaddr. */
  dstIp: Ip4;
  /** Ethernet destination, or null when it must be resolved (a relay's address). */
  dstMac: Mac | null;
  /** UDP destination port: 68 to clients, 67 to relays. */
  dstPort: number;
  /** True when sent to the limited broadcast address and broadcast MAC. */
  broadcast: boolean;
}

/** Why messages were dropped without a reply. */
export interface DropCounters {
  /** op was not BOOTREQUEST. */
  notRequest: number;
  /** htype/hlen not Ethernet. */
  badHardware: number;
  /** No (valid) option 53: plain BOOTP, not served. */
  noMessageType: number;
  /** A server-to-client type (OFFER, ACK, NAK) or an unknown type. */
  unexpectedType: number;
  /** REQUEST selecting another server. */
  otherServer: number;
  /** DISCOVER with no address left to offer. */
  poolExhausted: number;
  /** Missing fields the message type needs (e.g. REQUEST without address, INFORM without ciaddr). */
  malformed: number;
  /** RELEASE/DECLINE not matching the client's binding. */
  unknownClient: number;
  /** The client's MAC or client id is bound on another link. */
  otherLink: number;
  /** The link already holds maxLeasesPerLink active bindings. */
  linkLimit: number;
  /** maxBindings clients are remembered and all are active. */
  tableFull: number;
}

/** Message counters: received per type, sent per type, dropped per reason. */
export interface DhcpCounters {
  discover: number;
  offer: number;
  request: number;
  ack: number;
  nak: number;
  release: number;
  decline: number;
  inform: number;
  dropped: DropCounters;
  /** Host names not registered because another client holds them. */
  hostnameTaken: number;
}

/** The engine's record of one client. */
interface Binding {
  key: string;
  clientId: string | null;
  mac: string;
  ip: Ip4;
  hostname: string | null;
  expires: number;
  state: LeaseState; // OFFERED, BOUND or RELEASED; EXPIRED is derived
  /** The link that last got an OFFER or ACK for it; NO_LINK after that link closed. */
  link: number;
}

/** The link of a binding whose link closed: any link may take it up. */
export const NO_LINK = -1;

const DEFAULT_LEASE = 3600;
const DEFAULT_OFFER_HOLD = 60;
const DEFAULT_DECLINE_HOLD = 600;
const DEFAULT_LEASES_PER_LINK = 4;
const DEFAULT_MAX_BINDINGS = 1024;
const DEFAULT_RETAIN = 86_400;
const BROADCAST_IP: Ip4 = 0xffffffff;
const IP_UDP_HEADERS = 28;
/** Optional options, dropped in this order when a reply exceeds the client's limit. */
const DROP_ORDER = ['domainSearch', 'hostname', 'domainName', 'broadcast', 'mtu', 'staticRoutes'] as const;

const hexOf = (b: Uint8Array): string => {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
};


/** What `identify` returns when the client's identity is bound on another link. */
const OTHER_LINK = 'other-link';

/**
 * The DHCP server engine. One instance per virtual link.
 */
export class DhcpServer {
  /** Message counters (live; read, do not write). */
  readonly counters: DhcpCounters = {
    discover: 0,
    offer: 0,
    request: 0,
    ack: 0,
    nak: 0,
    release: 0,
    decline: 0,
    inform: 0,
    dropped: {
      notRequest: 0,
      badHardware: 0,
      noMessageType: 0,
      unexpectedType: 0,
      otherServer: 0,
      poolExhausted: 0,
      malformed: 0,
      unknownClient: 0,
      otherLink: 0,
      linkLimit: 0,
      tableFull: 0,
    },
    hostnameTaken: 0,
  };
  /** Called after each binding/renewing ACK and each RELEASE (see `DhcpServerConfig.onLease`). */
  onLease: ((lease: Lease) => void) | undefined;

  readonly #cfg: DhcpServerConfig;
  readonly #now: () => number;
  readonly #lease: number;
  readonly #offerHold: number;
  readonly #declineHold: number;
  readonly #mask: Ip4;
  readonly #bcast: Ip4;
  readonly #excluded = new Set<Ip4>();
  readonly #byKey = new Map<string, Binding>();
  readonly #byMac = new Map<string, Binding>();
  readonly #byIp = new Map<Ip4, Binding>();
  readonly #staticByMac = new Map<string, Ip4>();
  readonly #staticByIp = new Map<Ip4, string>();
  readonly #declined = new Map<Ip4, number>();
  /** Bindings by link (may also hold bindings that went inactive since). */
  readonly #byLink = new Map<number, Set<Binding>>();
  /** Host names and the bindings that hold them. */
  readonly #names: HostNames<Binding>;
  readonly #perLink: number;
  readonly #maxBindings: number;
  readonly #retain: number;
  readonly #nameHold: number;

  /**
   * @param config the link's addressing and options; validated here
   * @param now the clock, ms (monotonic is fine); used by the query methods
   * @throws VmnetError E_USAGE on an inconsistent configuration
   */
  constructor(config: DhcpServerConfig, now: () => number) {
    const { subnet, serverIp, poolStart, poolEnd } = config;
    const bad = (what: string): never => {
      throw new VmnetError('E_USAGE', `DHCP server: ${what}`);
    };
    if (!(subnet.prefix >= 0 && subnet.prefix <= 30)) bad(`subnet prefix /${subnet.prefix} leaves no room for clients`);
    const inNet = (a: Ip4) => addr.inSubnet(a, subnet.net, subnet.prefix);
    if (!inNet(serverIp)) bad(`server address ${addr.formatIp4(serverIp)} is outside the subnet`);
    if (!inNet(poolStart) || !inNet(poolEnd) || poolStart > poolEnd)
      bad(`pool ${addr.formatIp4(poolStart)}-${addr.formatIp4(poolEnd)} is not an ordered range inside the subnet`);
    const lease = config.leaseTime ?? DEFAULT_LEASE;
    if (!Number.isInteger(lease) || lease < 1 || lease > 0xfffffffe) bad(`lease time ${lease} s is not 1..4294967294`);
    if (config.mtu !== undefined && !(Number.isInteger(config.mtu) && config.mtu >= 68 && config.mtu <= 65535)) bad(`MTU ${config.mtu} is not 68..65535`);
    for (const name of [...(config.searchList ?? []), ...(config.domain === undefined ? [] : [config.domain])]) {
      if (name.split('.').some((l) => l.length > 63) || name.length > 253) bad(`domain name "${name}" is too long`);
    }
    for (const r of config.staticRoutes ?? []) if (!(Number.isInteger(r.prefix) && r.prefix >= 0 && r.prefix <= 32)) bad(`static route prefix /${r.prefix}`);
    this.#cfg = config;
    this.#now = now;
    this.#lease = lease;
    this.#offerHold = (config.offerHoldTime ?? DEFAULT_OFFER_HOLD) * 1000;
    this.#declineHold = (config.declineHoldTime ?? DEFAULT_DECLINE_HOLD) * 1000;
    this.#perLink = config.maxLeasesPerLink ?? DEFAULT_LEASES_PER_LINK;
    if (!(Number.isInteger(this.#perLink) && this.#perLink >= 1)) bad(`leases per link ${this.#perLink} is not a positive whole number`);
    this.#maxBindings = config.maxBindings ?? DEFAULT_MAX_BINDINGS;
    if (!(Number.isInteger(this.#maxBindings) && this.#maxBindings >= 1)) bad(`most bindings ${this.#maxBindings} is not a positive whole number`);
    this.#retain = (config.retainTime ?? DEFAULT_RETAIN) * 1000;
    this.#nameHold = (config.nameHoldTime ?? lease) * 1000;
    this.#names = new HostNames<Binding>(config.domain ?? '', (b, t) => this.#holdsName(b, t));
    this.#mask = addr.prefixMask(subnet.prefix);
    const net = (subnet.net & this.#mask) >>> 0;
    this.#bcast = (net | ~this.#mask) >>> 0;
    for (const a of [net, this.#bcast, serverIp, ...config.dns, ...(config.reserved ?? [])]) this.#excluded.add(a >>> 0);
    if (config.router !== null) this.#excluded.add(config.router >>> 0);
    this.onLease = config.onLease;
  }

  // ------------------------------------------------------------ queries

  /**
   * All known leases with an address, as snapshots; EXPIRED is computed
   * against the clock.
   * @returns leases in no particular order
   */
  leases(): Lease[] {
    const now = this.#now();
    return [...this.#byIp.values()].map((b) => this.#snapshot(b, now));
  }

  /**
   * The lease last used by a MAC address.
   * @param mac "52:54:00:12:34:56" or six bytes
   * @returns a snapshot, or null when the MAC is unknown or has no address
   */
  leaseFor(mac: string | Mac): Lease | null {
    const key = typeof mac === 'string' ? addr.parseMac(mac) : mac;
    if (key === null) return null;
    const b = this.#byMac.get(addr.formatMac(key));
    return b === undefined || b.ip === 0 ? null : this.#snapshot(b, this.#now());
  }

  /**
   * The address of the active (BOUND, unexpired) lease whose client holds
   * this host name (option 12; see "Host names"); case-insensitive, a
   * trailing dot and the configured domain suffix are ignored. For the DNS.
   * @param name e.g. "vm1", "vm1.", "vm1.example"
   * @returns the holder's address while its lease is bound, else null
   */
  hostnameLookup(name: string): Ip4 | null {
    if (this.#names.key(name) === '') return null;
    const b = this.#names.holder(name);
    return b !== undefined && b.state === LeaseState.BOUND && b.expires > this.#now() ? b.ip : null;
  }

  /**
   * The link holding an active (offered or bound) lease on `ip`.
   * @returns the link number, NO_LINK when that link closed, or null when no active lease covers `ip`
   */
  linkOf(ip: Ip4, now: number = this.#now()): number | null {
    const b = this.#byIp.get(ip);
    return b !== undefined && this.#active(b, now) ? b.link : null;
  }

  /** A link closed: its bindings stay, owned by no link (its guest may come back on another). */
  linkClosed(link: number): void {
    const set = this.#byLink.get(link);
    if (set === undefined) return;
    this.#byLink.delete(link);
    for (const b of set) if (b.link === link) b.link = NO_LINK;
  }

  /** Forgets bindings inactive for longer than the retention time. Call periodically. */
  sweep(now: number = this.#now()): void {
    for (const b of this.#byKey.values()) if (!this.#active(b, now) && now - b.expires > this.#retain) this.#forget(b);
    for (const [ip, until] of this.#declined) if (until <= now) this.#declined.delete(ip);
  }

  /**
   * Reserves a fixed address for a MAC (RFC 2131 §4.3.1 "manual
   * allocation"). The address may lie outside the pool but must be in the
   * subnet and not excluded. Another client holding it loses it at once (its
   * next REQUEST is NAKed); the MAC's own binding moves at its next DISCOVER
   * (a REQUEST for its old address is NAKed).
   * @param mac "52:54:00:12:34:56" or six bytes
   * @param ip the address to pin
   * @throws VmnetError E_USAGE for a bad MAC, an excluded or foreign address,
   *   or an address already reserved for another MAC
   */
  reserve(mac: string | Mac, ip: Ip4): void {
    const m = typeof mac === 'string' ? addr.parseMac(mac) : mac;
    if (m === null || m.length !== 6) throw new VmnetError('E_USAGE', `DHCP reservation: bad MAC address ${String(mac)}`);
    const key = addr.formatMac(m);
    ip >>>= 0;
    if (!addr.inSubnet(ip, this.#cfg.subnet.net, this.#cfg.subnet.prefix) || this.#excluded.has(ip))
      throw new VmnetError('E_USAGE', `DHCP reservation: ${addr.formatIp4(ip)} cannot be leased on this subnet`);
    const owner = this.#staticByIp.get(ip);
    if (owner !== undefined && owner !== key) throw new VmnetError('E_USAGE', `DHCP reservation: ${addr.formatIp4(ip)} is already reserved for ${owner}`);
    const old = this.#staticByMac.get(key);
    if (old !== undefined) this.#staticByIp.delete(old);
    this.#staticByMac.set(key, ip);
    this.#staticByIp.set(ip, key);
    const holder = this.#byIp.get(ip);
    if (holder !== undefined && holder.mac !== key) this.#forget(holder);
  }

  // ----------------------------------------------------------- protocol

  /**
   * Handles one client message (RFC 2131 §4.3).
   * @param msg a message parsed by `dhcpv4.parse`; not modified or retained
   * @param now the current time, ms (defaults to the constructor's clock)
   * @param link the link it came from (see "Links"); one link by default
   * @returns the reply and where to send it, or null for no reply (the
   *   reason is counted in `counters.dropped` unless the type needs none)
   */
  handle(msg: dhcp.Message, now: number = this.#now(), link = 0): Reply | null {
    const d = this.counters.dropped;
    if (msg.op !== dhcp.BOOTREQUEST) {
      d.notRequest++;
      return null;
    }
    if (msg.htype !== dhcp.HTYPE_ETHERNET || msg.hlen !== 6) {
      d.badHardware++;
      return null;
    }
    switch (msg.messageType) {
      case 0:
        d.noMessageType++;
        return null;
      case dhcp.DISCOVER:
        this.counters.discover++;
        return this.#discover(msg, now, link);
      case dhcp.REQUEST:
        this.counters.request++;
        return this.#request(msg, now, link);
      case dhcp.DECLINE:
        this.counters.decline++;
        this.#decline(msg, now, link);
        return null;
      case dhcp.RELEASE:
        this.counters.release++;
        this.#release(msg, now, link);
        return null;
      case dhcp.INFORM:
        this.counters.inform++;
        return this.#inform(msg);
      default:
        d.unexpectedType++;
        return null;
    }
  }

  /** RFC 2131 §4.3.1: choose an address, hold it, OFFER it. */
  #discover(msg: dhcp.Message, now: number, link: number): Reply | null {
    const mac = addr.formatMac(msg.chaddr);
    let b = this.#identify(msg, mac, now, link);
    if (b === OTHER_LINK || !this.#mayHoldAnother(b, now, link)) return null;
    const ip = this.#allocate(b, mac, msg.options.requestedIp, now, link);
    if (ip === null) {
      this.counters.dropped.poolExhausted++;
      return null;
    }
    b ??= this.#create(msg, mac, now);
    if (b === null) return null;
    const keepBound = b.state === LeaseState.BOUND && b.expires > now && b.ip === ip;
    this.#assign(b, ip);
    this.#setLink(b, link);
    if (msg.options.hostname !== null) this.#setHostname(b, msg.options.hostname, now);
    if (!keepBound) {
      b.state = LeaseState.OFFERED;
      b.expires = now + this.#offerHold;
    }
    this.counters.offer++;
    return this.#reply(msg, dhcp.OFFER, ip, 0);
  }

  /** RFC 2131 §4.3.2: SELECTING, INIT-REBOOT, RENEWING and REBINDING. */
  #request(msg: dhcp.Message, now: number, link: number): Reply | null {
    const o = msg.options;
    const mac = addr.formatMac(msg.chaddr);
    const b = this.#identify(msg, mac, now, link);
    if (b === OTHER_LINK) return null;
    if (o.serverId !== null && o.serverId !== this.#cfg.serverIp) {
      // SELECTING another server's offer: release ours.
      if (b !== null && b.state === LeaseState.OFFERED) b.expires = Math.min(b.expires, now);
      this.counters.dropped.otherServer++;
      return null;
    }
    const ip = o.requestedIp ?? msg.ciaddr;
    if (ip === 0) {
      this.counters.dropped.malformed++;
      return null;
    }
    if (!addr.inSubnet(ip, this.#cfg.subnet.net, this.#cfg.subnet.prefix)) return this.#nak(msg, 'wrong network');
    const fixed = this.#staticByMac.get(mac);
    if (fixed !== undefined && fixed !== ip) return this.#nak(msg, 'address not assigned to client');
    if (b !== null && b.ip !== 0 && b.ip !== ip && this.#active(b, now)) return this.#nak(msg, 'address not assigned to client');
    if (!this.#usable(ip, b, mac, now, link)) return this.#nak(msg, 'address not available');
    if (!this.#mayHoldAnother(b, now, link)) return null;
    const c = b ?? this.#create(msg, mac, now);
    if (c === null) return null;
    this.#assign(c, ip);
    this.#setLink(c, link);
    if (o.hostname !== null) this.#setHostname(c, o.hostname, now);
    c.state = LeaseState.BOUND;
    c.expires = now + this.#lease * 1000;
    const r = this.#reply(msg, dhcp.ACK, ip, msg.ciaddr);
    this.counters.ack++;
    this.onLease?.(this.#snapshot(c, now));
    return r;
  }

  /** RFC 2131 §4.3.3: the client found the address in use; withhold it. */
  #decline(msg: dhcp.Message, now: number, link: number): void {
    const o = msg.options;
    const b = this.#identify(msg, addr.formatMac(msg.chaddr), now, link);
    if (b === OTHER_LINK) return;
    const ip = o.requestedIp;
    if (ip === null || (o.serverId !== null && o.serverId !== this.#cfg.serverIp) || b === null || b.ip !== ip) {
      this.counters.dropped.unknownClient++;
      return;
    }
    this.#declined.set(ip, now + this.#declineHold);
    this.#forget(b);
  }

  /** RFC 2131 §4.3.4: end the lease but remember the address for the client. */
  #release(msg: dhcp.Message, now: number, link: number): void {
    const o = msg.options;
    const b = this.#identify(msg, addr.formatMac(msg.chaddr), now, link);
    if (b === OTHER_LINK) return;
    if ((o.serverId !== null && o.serverId !== this.#cfg.serverIp) || b === null || b.ip === 0 || b.ip !== msg.ciaddr) {
      this.counters.dropped.unknownClient++;
      return;
    }
    b.state = LeaseState.RELEASED;
    b.expires = now;
    this.onLease?.(this.#snapshot(b, now));
  }

  /** RFC 2131 §4.3.5: configuration only; no yiaddr, no lease times. */
  #inform(msg: dhcp.Message): Reply | null {
    if (msg.ciaddr === 0 || !addr.inSubnet(msg.ciaddr, this.#cfg.subnet.net, this.#cfg.subnet.prefix)) {
      this.counters.dropped.malformed++;
      return null;
    }
    this.counters.ack++;
    return this.#reply(msg, dhcp.ACK, 0, msg.ciaddr);
  }

  #nak(msg: dhcp.Message, why: string): Reply {
    this.counters.nak++;
    return this.#reply(msg, dhcp.NAK, 0, 0, why);
  }

  // ------------------------------------------------------------ replies

  /** Builds a reply (RFC 2131 §4.3.1 Table 3) and picks its destination (§4.1). */
  #reply(req: dhcp.Message, type: number, yiaddr: Ip4, ciaddr: Ip4, why?: string): Reply {
    const cfg = this.#cfg;
    const m = dhcp.blank();
    m.op = dhcp.BOOTREPLY;
    m.htype = req.htype;
    m.hlen = req.hlen;
    m.xid = req.xid;
    m.flags = req.flags & dhcp.FLAG_BROADCAST;
    m.ciaddr = ciaddr;
    m.yiaddr = yiaddr;
    m.giaddr = req.giaddr;
    m.chaddr = req.chaddr.slice(0, 6);
    m.messageType = type;
    const o = m.options;
    const ro = req.options;
    o.serverId = cfg.serverIp;
    if (ro.clientId !== null) o.clientId = ro.clientId.slice();
    if (type === dhcp.NAK) {
      o.message = why ?? null;
    } else {
      if (type !== dhcp.ACK || yiaddr !== 0) {
        o.leaseTime = this.#lease;
        o.t1 = Math.floor(this.#lease / 2);
        o.t2 = Math.floor((this.#lease * 7) / 8);
      }
      o.subnetMask = this.#mask;
      if (cfg.router !== null) o.routers = [cfg.router];
      o.dns = cfg.dns.slice();
      if (ro.hostname !== null) o.hostname = ro.hostname;
      if (cfg.domain !== undefined && cfg.domain !== '') o.domainName = cfg.domain;
      if (cfg.mtu !== undefined) o.mtu = cfg.mtu;
      o.broadcast = this.#bcast;
      if (cfg.searchList !== undefined) o.domainSearch = cfg.searchList.slice();
      const routes = cfg.staticRoutes ?? [];
      if (routes.length > 0 && ro.paramRequest.includes(dhcp.Opt.CLASSLESS_ROUTES)) {
        o.staticRoutes = routes.map((r) => ({ ...r }));
        if (cfg.router !== null && !routes.some((r) => r.prefix === 0)) o.staticRoutes.push({ net: 0, prefix: 0, gateway: cfg.router });
      }
      const limit = Math.max(576, ro.maxMessageSize ?? 576) - IP_UDP_HEADERS;
      for (let i = 0; i < DROP_ORDER.length && dhcp.length(m) > limit; i++) {
        const k = DROP_ORDER[i]!;
        if (k === 'domainSearch' || k === 'staticRoutes') o[k] = [];
        else o[k] = null;
      }
    }

    if (req.giaddr !== 0) {
      if (type === dhcp.NAK) m.flags |= dhcp.FLAG_BROADCAST;
      return { msg: m, dstIp: req.giaddr, dstMac: null, dstPort: dhcp.SERVER_PORT, broadcast: false };
    }
    if (type === dhcp.NAK || (req.ciaddr === 0 && (req.flags & dhcp.FLAG_BROADCAST) !== 0))
      return { msg: m, dstIp: BROADCAST_IP, dstMac: addr.BROADCAST_MAC.slice(), dstPort: dhcp.CLIENT_PORT, broadcast: true };
    return { msg: m, dstIp: req.ciaddr !== 0 ? req.ciaddr : yiaddr, dstMac: req.chaddr.slice(0, 6), dstPort: dhcp.CLIENT_PORT, broadcast: false };
  }

  // ---------------------------------------------------------- bindings

  #active(b: Binding, now: number): boolean {
    return (b.state === LeaseState.BOUND || b.state === LeaseState.OFFERED) && b.expires > now;
  }

  #snapshot(b: Binding, now: number): Lease {
    const state = b.state !== LeaseState.RELEASED && b.expires <= now ? LeaseState.EXPIRED : b.state;
    return { mac: b.mac, clientId: b.clientId, ip: b.ip, hostname: b.hostname, expires: b.expires, state };
  }

  /** True when `b` is active and belongs to a live link other than `link`. */
  #foreign(b: Binding, now: number, link: number): boolean {
    return b.link !== link && b.link !== NO_LINK && this.#active(b, now);
  }

  /**
   * The client's binding: by client key, else (adopted) by chaddr; null for
   * a new client; OTHER_LINK (counted) when its MAC or client id is bound on
   * another link. Nothing changes before that check.
   */
  #identify(msg: dhcp.Message, mac: string, now: number, link: number): Binding | null | typeof OTHER_LINK {
    const id = msg.options.clientId === null ? null : hexOf(msg.options.clientId);
    const key = id === null ? 'hw:' + mac : 'id:' + id;
    const byKey = this.#byKey.get(key);
    const byMac = this.#byMac.get(mac);
    if ((byKey !== undefined && this.#foreign(byKey, now, link)) || (byMac !== undefined && this.#foreign(byMac, now, link)) || this.#cfg.macInUse?.(msg.chaddr, link) === true) {
      this.counters.dropped.otherLink++;
      return OTHER_LINK;
    }
    if (byKey !== undefined) {
      if (byKey.mac !== mac) {
        // The client id moved to another chaddr: the binding follows it.
        if (this.#byMac.get(byKey.mac) === byKey) this.#byMac.delete(byKey.mac);
        byKey.mac = mac;
      }
      this.#byMac.set(mac, byKey);
      return byKey;
    }
    const m = byMac;
    if (m === undefined || (m.clientId !== null && m.clientId !== id && this.#active(m, now))) return null;
    this.#byKey.delete(m.key);
    m.key = key;
    m.clientId = id;
    this.#byKey.set(key, m);
    return m;
  }

  /** True unless `link` already holds its bound of active bindings and `b` is not one of them (counted). */
  #mayHoldAnother(b: Binding | null, now: number, link: number): boolean {
    if (b !== null && b.link === link && this.#active(b, now)) return true;
    const set = this.#byLink.get(link);
    let n = 0;
    if (set !== undefined) {
      for (const x of set) {
        if (x.link === link && this.#active(x, now)) n++;
        else set.delete(x);
      }
    }
    if (n < this.#perLink) return true;
    this.counters.dropped.linkLimit++;
    return false;
  }

  #setLink(b: Binding, link: number): void {
    if (b.link !== link) this.#byLink.get(b.link)?.delete(b);
    b.link = link;
    let set = this.#byLink.get(link);
    if (set === undefined) this.#byLink.set(link, (set = new Set()));
    set.add(b);
  }

  /** A new binding, making room when maxBindings are remembered; null (counted) when none can go. */
  #create(msg: dhcp.Message, mac: string, now: number): Binding | null {
    if (this.#byKey.size >= this.#maxBindings) {
      let oldest: Binding | null = null;
      for (const x of this.#byKey.values()) if (!this.#active(x, now) && (oldest === null || x.expires < oldest.expires)) oldest = x;
      if (oldest === null) {
        this.counters.dropped.tableFull++;
        return null;
      }
      this.#forget(oldest);
    }
    const id = msg.options.clientId === null ? null : hexOf(msg.options.clientId);
    const b: Binding = { key: id === null ? 'hw:' + mac : 'id:' + id, clientId: id, mac, ip: 0, hostname: null, expires: 0, state: LeaseState.OFFERED, link: NO_LINK };
    this.#byKey.set(b.key, b);
    this.#byMac.set(mac, b);
    return b;
  }

  /** True while `b` holds its name: remembered, and active or ended less than nameHoldTime ago. */
  #holdsName(b: Binding, now: number): boolean {
    return this.#byKey.get(b.key) === b && (this.#active(b, now) || now - b.expires < this.#nameHold);
  }

  /** Records the name the client sent and registers it unless another client holds it. */
  #setHostname(b: Binding, name: string, now: number): void {
    if (!this.#names.claim(b, b.hostname, name, now)) this.counters.hostnameTaken++;
    b.hostname = name;
  }

  /** Points `b` at `ip`, taking the address from any (inactive) previous holder. */
  #assign(b: Binding, ip: Ip4): void {
    if (b.ip === ip) return;
    if (b.ip !== 0 && this.#byIp.get(b.ip) === b) this.#byIp.delete(b.ip);
    const holder = this.#byIp.get(ip);
    if (holder !== undefined && holder !== b) this.#forget(holder);
    b.ip = ip;
    this.#byIp.set(ip, b);
  }

  /** Drops a binding entirely (its address was reclaimed or declined, or it was remembered too long). */
  #forget(b: Binding): void {
    if (this.#byIp.get(b.ip) === b) this.#byIp.delete(b.ip);
    if (this.#byKey.get(b.key) === b) this.#byKey.delete(b.key);
    if (this.#byMac.get(b.mac) === b) this.#byMac.delete(b.mac);
    this.#byLink.get(b.link)?.delete(b);
    this.#names.release(b, b.hostname);
    b.ip = 0;
  }

  /** True when `ip` may be bound to this client (from `link`) now. */
  #usable(ip: Ip4, b: Binding | null, mac: string, now: number, link: number): boolean {
    if (this.#excluded.has(ip) || !addr.inSubnet(ip, this.#cfg.subnet.net, this.#cfg.subnet.prefix)) return false;
    const until = this.#declined.get(ip);
    if (until !== undefined) {
      if (until > now) return false;
      this.#declined.delete(ip);
    }
    const owner = this.#staticByIp.get(ip);
    if (owner !== undefined) {
      if (owner !== mac) return false;
    } else if (ip < this.#cfg.poolStart || ip > this.#cfg.poolEnd) return false;
    const holder = this.#byIp.get(ip);
    if (holder !== undefined && holder !== b && this.#active(holder, now)) return false;
    return this.#cfg.addressInUse?.(ip, link) !== true;
  }

  /** RFC 2131 §4.3.1 address choice; null when the pool is exhausted. */
  #allocate(b: Binding | null, mac: string, requested: Ip4 | null, now: number, link: number): Ip4 | null {
    const fixed = this.#staticByMac.get(mac);
    if (fixed !== undefined && this.#usable(fixed, b, mac, now, link)) return fixed;
    if (b !== null && b.ip !== 0 && this.#usable(b.ip, b, mac, now, link)) return b.ip;
    if (requested !== null && this.#usable(requested, b, mac, now, link)) return requested;
    let oldest: Ip4 | null = null;
    let oldestExpiry = Infinity;
    for (let ip = this.#cfg.poolStart; ip <= this.#cfg.poolEnd; ip++) {
      if (!this.#usable(ip, b, mac, now, link)) continue;
      const holder = this.#byIp.get(ip);
      if (holder === undefined) return ip;
      if (holder.expires < oldestExpiry) {
        oldestExpiry = holder.expires;
        oldest = ip;
      }
    }
    return oldest;
  }
}
