/**
 * Theory of operation: the gateway's neighbour table with ownership — which
 * link (a Session: one QEMU stream connection, or one switch port on a
 * segment) may use which guest IPv4 address and which MAC. It answers two
 * questions on the data path: "may this frame's source (MAC, address) come
 * from this link?" and "where do frames for this address go?".
 *
 * Rules (RFC 826 and RFC 1122 §2.3.2 say nothing about who may claim what;
 * these are vmnet's, so that one guest cannot take another's traffic):
 *  - A MAC belongs to the first link that used it, until that link closes.
 *    A link may use at most `maxMacsPerLink` MACs; at that bound it gives up
 *    its own MAC seen longest ago if that was more than `ageMs` ago, else the
 *    frame is refused (USE_LIMIT).
 *  - An address belongs to the link it was leased to (DHCP ACK: `lease`),
 *    or else to the first link that used it as a source (IPv4 source, ARP
 *    sender). An address another link holds is refused (USE_TAKEN). A link
 *    may hold at most `maxAddressesPerLink` addresses; a lease always takes
 *    its place, a claim beyond the bound recycles the link's own idle
 *    address or is refused (USE_LIMIT).
 *  - A holder keeps an address while its link is open and either its DHCP
 *    lease on it is active (`leaseHolder`, asked of the DHCP server) or it
 *    used the address within `ageMs` (300 s, the switch's MAC ageing,
 *    IEEE 802.1Q §8.8.3). After that another link may claim it: that is how
 *    an address moves when a guest is renumbered (a renewal to a new
 *    address, a static reconfiguration, a VM moved to another link). An
 *    address under an active lease of another link (or of a link that
 *    closed) cannot be claimed at all. When a link closes, everything it
 *    held is free at once. An address that leaves an open link (taken by
 *    another, or recycled by its own) is reported (`released`) before it
 *    goes, so the connections and flows its old holder had on it end there
 *    instead of following the address to its next holder.
 *  - Frames toward an address go to its entry's link and MAC (the MAC the
 *    holder used last), whether or not the entry is still "live": a quiet
 *    guest keeps receiving until someone else takes the address.
 *
 * The owner of the network ({@link Neighbors.owner}): the open link that got
 * its first address earliest, kept until it closes; port forwards that name
 * no guest go to its address. Memory is bounded by the per-link bounds
 * times the links. The last MAC and address accepted are remembered, so a
 * run of frames from one guest costs no table lookup. Sans-IO: time is
 * passed in (the gateway passes its clock as of its last sweep, a second
 * old at most: the ages here are minutes).
 */
import { macKey, type Ip4 } from '../wire/addr.js';

/** The link identity the table keys on (the gateway's Session). */
export interface NeighborLink {
  readonly id: number;
  readonly closed: boolean;
}

export interface NeighborLimits {
  /** Addresses one link may hold, leased or claimed (default 8). */
  maxAddressesPerLink: number;
  /** MACs one link may use (default 8). */
  maxMacsPerLink: number;
  /** A claimed address unused this long (ms) may be taken by another link (default 300 s). */
  ageMs: number;
}

export const DEFAULT_NEIGHBOR_LIMITS: NeighborLimits = { maxAddressesPerLink: 8, maxMacsPerLink: 8, ageMs: 300_000 };

/** Verdicts of {@link Neighbors.useMac} and {@link Neighbors.useIp}. */
export const USE_OK = 0;
/** Another link holds the address or MAC. */
export const USE_TAKEN = 1;
/** The link already holds as many addresses or MACs as it may. */
export const USE_LIMIT = 2;

/** One address and where it lives. */
export interface Neighbor<L> {
  readonly ip: Ip4;
  /** The MAC its holder used last. */
  readonly mac: Uint8Array;
  link: L;
  seen: number;
}

interface MacEntry<L> {
  readonly key: number;
  link: L;
  seen: number;
}

interface LinkState<L> {
  readonly addrs: Map<Ip4, Neighbor<L>>;
  readonly macs: Map<number, MacEntry<L>>;
  /** Order in which links got their first address (0: none yet). */
  seq: number;
  /** The address of the link's last DHCP ACK (0: none). */
  leased: Ip4;
}

export class Neighbors<L extends NeighborLink> {
  readonly #limits: NeighborLimits;
  readonly #byIp = new Map<Ip4, Neighbor<L>>();
  readonly #byMac = new Map<number, MacEntry<L>>();
  readonly #links = new Map<L, LinkState<L>>();
  #seq = 0;
  /** The MAC and the address accepted last (most frames come from the same guest as the one before). */
  #lastMac: MacEntry<L> | null = null;
  #lastIp: Neighbor<L> | null = null;

  /**
   * @param leaseHolder the link id holding an active DHCP lease on an
   *   address (-1: a link that closed), or null when none does
   * @param released told when `ip` leaves the open link `link` (another link
   *   takes it, or its own link recycles it), while frames to `ip` still go to `link`
   */
  constructor(
    private readonly leaseHolder: (ip: Ip4) => number | null,
    limits: Partial<NeighborLimits> = {},
    private readonly released: (ip: Ip4, link: L) => void = () => {},
  ) {
    this.#limits = { ...DEFAULT_NEIGHBOR_LIMITS, ...limits };
  }

  /** Addresses known. */
  get size(): number {
    return this.#byIp.size;
  }

  /**
   * May `link` send with source MAC `mac` (at `off`)? Claims it when free.
   * @returns USE_OK, USE_TAKEN or USE_LIMIT
   */
  useMac(link: L, mac: Uint8Array, off: number, now: number): number {
    const key = macKey(mac, off);
    const last = this.#lastMac;
    if (last !== null && last.key === key && last.link === link) {
      last.seen = now;
      return USE_OK;
    }
    const m = this.#byMac.get(key);
    if (m !== undefined && m.link === link) {
      m.seen = now;
      this.#lastMac = m;
      return USE_OK;
    }
    if (m !== undefined && !m.link.closed) return USE_TAKEN;
    const st = this.#state(link);
    if (st.macs.size >= this.#limits.maxMacsPerLink && !this.#recycleMac(st, now)) return USE_LIMIT;
    if (m !== undefined) this.#dropMac(m);
    const e: MacEntry<L> = { key, link, seen: now };
    this.#byMac.set(key, e);
    st.macs.set(key, e);
    return USE_OK;
  }

  /**
   * May `link` use `ip` as a source (its MAC already accepted by useMac)?
   * Claims the address when free and remembers `mac` as where it lives.
   * @returns USE_OK, USE_TAKEN or USE_LIMIT
   */
  useIp(link: L, ip: Ip4, mac: Uint8Array, macOff: number, now: number): number {
    const last = this.#lastIp;
    const n = last !== null && last.ip === ip ? last : this.#byIp.get(ip);
    if (n !== undefined && n.link === link) {
      n.seen = now;
      if (!sameMac(n.mac, mac, macOff)) n.mac.set(mac.subarray(macOff, macOff + 6));
      this.#lastIp = n;
      return USE_OK;
    }
    if (n !== undefined && this.#live(n, now)) return USE_TAKEN;
    const lessee = this.leaseHolder(ip);
    if (lessee !== null && lessee !== link.id) return USE_TAKEN;
    const st = this.#state(link);
    if (st.addrs.size >= this.#limits.maxAddressesPerLink && !this.#recycleAddress(st, now)) return USE_LIMIT;
    this.#put(st, link, ip, mac, macOff, now);
    return USE_OK;
  }

  /**
   * A DHCP ACK bound `ip` to `link`: it holds the address from now on,
   * whatever held it before (the DHCP server checked the address was free,
   * see `holder`).
   */
  lease(link: L, ip: Ip4, mac: Uint8Array, now: number): void {
    const st = this.#state(link);
    const n = this.#byIp.get(ip);
    if (n !== undefined && n.link === link) {
      n.seen = now;
      n.mac.set(mac.subarray(0, 6));
    } else this.#put(st, link, ip, mac, 0, now);
    st.leased = ip;
  }

  /** The entry for an address (live or not), for sending to it. */
  get(ip: Ip4): Neighbor<L> | undefined {
    return this.#byIp.get(ip);
  }

  /** The link that holds `ip` now (see the rules), or null. */
  holder(ip: Ip4, now: number): L | null {
    const n = this.#byIp.get(ip);
    return n !== undefined && this.#live(n, now) ? n.link : null;
  }

  /** The open link that uses `mac`, or null. */
  macHolder(mac: Uint8Array): L | null {
    const m = this.#byMac.get(macKey(mac, 0));
    return m !== undefined && !m.link.closed ? m.link : null;
  }

  /** The addresses `link` holds entries for. */
  addressesOf(link: L): Ip4[] {
    const st = this.#links.get(link);
    return st === undefined ? [] : [...st.addrs.keys()];
  }

  /**
   * Forgets everything `link` held (it closed).
   * @returns the addresses it held
   */
  detach(link: L): Ip4[] {
    const st = this.#links.get(link);
    if (st === undefined) return [];
    this.#links.delete(link);
    for (const m of st.macs.values()) if (this.#byMac.get(m.key) === m) this.#byMac.delete(m.key);
    const ips = [...st.addrs.keys()];
    for (const [ip, n] of st.addrs) if (this.#byIp.get(ip) === n) this.#byIp.delete(ip);
    if (this.#lastMac?.link === link) this.#lastMac = null;
    if (this.#lastIp?.link === link) this.#lastIp = null;
    return ips;
  }

  /** The owner: the open link that got its first address earliest and still holds one. */
  owner(): L | null {
    let best: LinkState<L> | null = null;
    let link: L | null = null;
    for (const [l, st] of this.#links) {
      if (l.closed || st.addrs.size === 0 || st.seq === 0) continue;
      if (best === null || st.seq < best.seq) {
        best = st;
        link = l;
      }
    }
    return link;
  }

  /** The owner's address: its last leased one while it still holds it, else the first it claimed. */
  ownerAddress(): Ip4 | null {
    const link = this.owner();
    if (link === null) return null;
    const st = this.#links.get(link)!;
    if (st.leased !== 0 && st.addrs.has(st.leased)) return st.leased;
    return st.addrs.keys().next().value ?? null;
  }

  /** Every entry, in the order addresses were first taken. */
  list(): Array<Neighbor<L>> {
    return [...this.#byIp.values()];
  }

  #state(link: L): LinkState<L> {
    let st = this.#links.get(link);
    if (st === undefined) {
      st = { addrs: new Map(), macs: new Map(), seq: 0, leased: 0 };
      this.#links.set(link, st);
    }
    return st;
  }

  #live(n: Neighbor<L>, now: number): boolean {
    return !n.link.closed && (now - n.seen < this.#limits.ageMs || this.leaseHolder(n.ip) === n.link.id);
  }

  #put(st: LinkState<L>, link: L, ip: Ip4, mac: Uint8Array, macOff: number, now: number): void {
    const old = this.#byIp.get(ip);
    if (old !== undefined && old.link !== link && !old.link.closed) this.released(ip, old.link);
    if (old !== undefined) this.#links.get(old.link)?.addrs.delete(ip);
    if (this.#lastIp === old) this.#lastIp = null;
    const n: Neighbor<L> = { ip, mac: mac.slice(macOff, macOff + 6), link, seen: now };
    this.#byIp.set(ip, n);
    st.addrs.set(ip, n);
    if (st.seq === 0) st.seq = ++this.#seq;
  }

  /** Frees the link's address used longest ago if it is no longer live. */
  #recycleAddress(st: LinkState<L>, now: number): boolean {
    let oldest: Neighbor<L> | null = null;
    for (const n of st.addrs.values()) if (oldest === null || n.seen < oldest.seen) oldest = n;
    if (oldest === null || this.#live(oldest, now)) return false;
    this.released(oldest.ip, oldest.link);
    st.addrs.delete(oldest.ip);
    this.#byIp.delete(oldest.ip);
    if (this.#lastIp === oldest) this.#lastIp = null;
    return true;
  }

  /** Frees the link's MAC seen longest ago if that was at least ageMs ago. */
  #recycleMac(st: LinkState<L>, now: number): boolean {
    let oldest: MacEntry<L> | null = null;
    for (const m of st.macs.values()) if (oldest === null || m.seen < oldest.seen) oldest = m;
    if (oldest === null || now - oldest.seen < this.#limits.ageMs) return false;
    this.#dropMac(oldest);
    return true;
  }

  #dropMac(m: MacEntry<L>): void {
    if (this.#byMac.get(m.key) === m) this.#byMac.delete(m.key);
    this.#links.get(m.link)?.macs.delete(m.key);
    if (this.#lastMac === m) this.#lastMac = null;
  }
}

function sameMac(a: Uint8Array, b: Uint8Array, o: number): boolean {
  return a[0] === b[o] && a[1] === b[o + 1] && a[2] === b[o + 2] && a[3] === b[o + 3] && a[4] === b[o + 4] && a[5] === b[o + 5];
}
