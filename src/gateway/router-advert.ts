/**
 * Theory of operation: what the gateway advertises as an IPv6 router (RFC
 * 4861 §6.2), and when. One message for every link:
 *
 *  - the O flag (RFC 4861 §4.2): "other configuration" from the stateless
 *    DHCPv6 server (dhcpv6-server.ts); M stays clear (no stateful
 *    addresses), so hosts form their addresses by SLAAC;
 *  - router lifetime 1800 s (§6.2.1 default: 3 × MaxRtrAdvInterval),
 *    medium preference;
 *  - the source link-layer address (the gateway's MAC, so hosts need no
 *    NS to reach it), the link MTU (§4.6.4: the gateway's `--mtu`, so
 *    hosts size their packets to it);
 *  - the /64 with the on-link and autonomous flags (§4.6.2, RFC 4862
 *    §5.5.3): valid 86400 s, preferred 14400 s (the §6.2.1 defaults are 30
 *    and 7 days; shorter lifetimes let a changed `--subnet6` age out of a
 *    guest that outlived its gateway within a day);
 *  - RDNSS with the gateway's DNS address and DNSSL with its domain (RFC
 *    8106 §5.1, §5.2), lifetime 1800 s (≥ MaxRtrAdvInterval, §5.1).
 *
 * Timing (§6.2.4, §6.2.6): unsolicited advertisements every
 * `RA_INTERVAL_MS` (300 s, within the §6.2.1 bounds of 4 to 1800 s) to
 * all nodes on every link, and one at once to a link when a guest
 * solicits, at most one a link per `MIN_DELAY_BETWEEN_RAS_MS` (3 s, §10;
 * a solicitation inside that delay gets none: its link had one at most 3 s
 * ago). A link's first advertisement goes at the first sweep after it
 * opens. Each
 * link (a stream connection, a switch segment) is its own broadcast domain,
 * so the solicited answer goes to all nodes on the soliciting link only.
 * Sans-IO: the caller sends, with time passed in.
 */
import * as icmpv6 from '../wire/icmpv6.js';
import * as ndp from '../wire/ndp.js';
import type { Ip6, Mac } from '../wire/addr.js';

/** Unsolicited advertisements: every 300 s. */
export const RA_INTERVAL_MS = 300_000;
/** At most one advertisement a link in this long (RFC 4861 §10 MIN_DELAY_BETWEEN_RAS). */
export const MIN_DELAY_BETWEEN_RAS_MS = 3000;
/** Router lifetime and RDNSS/DNSSL lifetime, seconds. */
export const ROUTER_LIFETIME_S = 1800;
/** Prefix valid and preferred lifetimes, seconds. */
export const PREFIX_VALID_S = 86400;
export const PREFIX_PREFERRED_S = 14400;

export interface RouterAdvertConfig {
  mac: Mac;
  mtu: number;
  /** The /64. */
  prefix: Ip6;
  dns: Ip6;
  domain: string;
}

/**
 * The gateway's router advertisement.
 * @param c what to advertise
 */
export function routerAdvert(c: RouterAdvertConfig): ndp.Message {
  const m = ndp.blank();
  m.type = icmpv6.TYPE_ROUTER_ADVERT;
  m.curHopLimit = 64;
  m.flags = ndp.RA_OTHER;
  m.routerLifetime = ROUTER_LIFETIME_S;
  const o = m.options;
  o.sourceLinkAddr = c.mac.slice(0, 6);
  o.mtu = c.mtu;
  o.prefixes.push({ prefixLength: 64, flags: ndp.PREFIX_ON_LINK | ndp.PREFIX_AUTONOMOUS, validLifetime: PREFIX_VALID_S, preferredLifetime: PREFIX_PREFERRED_S, prefix: c.prefix.slice() });
  o.rdnss.push({ lifetime: ROUTER_LIFETIME_S, servers: [c.dns.slice()] });
  o.dnssl.push({ lifetime: ROUTER_LIFETIME_S, domains: [c.domain] });
  return m;
}

/** When each link gets its next advertisement. */
export class RaSchedule<L> {
  /** When each link last got one. */
  readonly #last = new Map<L, number>();

  /** A guest on `link` solicited at `now`: true when an advertisement may go at once. */
  solicited(link: L, now: number): boolean {
    const last = this.#last.get(link);
    if (last !== undefined && now - last < MIN_DELAY_BETWEEN_RAS_MS) return false;
    this.#last.set(link, now);
    return true;
  }

  /** The links due an unsolicited advertisement at `now` (marked as sent); a new link is due at once. */
  due(links: Iterable<L>, now: number): L[] {
    const out: L[] = [];
    for (const l of links) {
      const last = this.#last.get(l);
      if (last !== undefined && now - last < RA_INTERVAL_MS) continue;
      this.#last.set(l, now);
      out.push(l);
    }
    return out;
  }

  /** Forgets a link (it closed). */
  forget(link: L): void {
    this.#last.delete(link);
  }
}
