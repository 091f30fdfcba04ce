/**
 * Theory of operation: the gateway's stateless DHCPv6 server (RFC 8415
 * §6.1), the "other configuration" its router advertisements point to with
 * the O flag: DNS servers (RFC 3646 §3) and the domain search list (§4).
 * Addresses come from SLAAC (the RA's prefix with the A flag), so no state
 * is kept per client.
 *
 *  - Information-request (§18.4.2, §16.12): discarded when it carries an IA
 *    option, or a Server Identifier that is not ours; else a Reply with our
 *    Server Identifier, the client's Client Identifier (when it sent one),
 *    the DNS servers, the search list and an Information Refresh Time
 *    (§21.23; the RA's RDNSS carries the same servers).
 *  - Solicit (§18.3.1): this server assigns no addresses, so it answers
 *    with an Advertise carrying only a NoAddrsAvail status (with its
 *    Server and Client Identifiers), which tells a stateful client at once
 *    instead of letting it retransmit; a Solicit without a Client
 *    Identifier is discarded (§16.2).
 *  - Everything else (Request, Renew, Rebind, Release, Decline, Confirm,
 *    relay messages) is ignored, counted: there are no bindings to act on.
 *
 * Our DUID is a DUID-LL (§11.4) of the gateway's MAC: stable for as long
 * as the MAC is. Sans-IO: parse and emit are the caller's (wire/dhcpv6.ts).
 */
import * as dhcpv6 from '../wire/dhcpv6.js';
import type { Ip6, Mac } from '../wire/addr.js';

export interface Dhcpv6ServerOptions {
  /** The gateway's MAC (its DUID-LL). */
  mac: Mac;
  /** DNS servers handed out. */
  dns: Ip6[];
  /** Domain search list, names without a trailing dot. */
  domains: string[];
  /** Information Refresh Time, seconds (default 3600; RFC 8415 §21.23 minimum 600). */
  infoRefreshTime?: number;
}

export interface Dhcpv6Counters {
  informationRequests: number;
  solicits: number;
  /** Messages discarded (RFC 8415 §16) or of a type this server does not serve. */
  ignored: number;
}

export class Dhcpv6Server {
  readonly counters: Dhcpv6Counters = { informationRequests: 0, solicits: 0, ignored: 0 };
  /** The server's DUID. */
  readonly duid: Uint8Array;
  readonly #opts: Dhcpv6ServerOptions;

  constructor(opts: Dhcpv6ServerOptions) {
    this.#opts = opts;
    this.duid = dhcpv6.duidLl(opts.mac);
  }

  /**
   * The reply to a client message, or null when none is due.
   * @param m a parsed message from a client
   */
  handle(m: dhcpv6.Message): dhcpv6.Message | null {
    const o = m.options;
    if (m.msgType === dhcpv6.INFORMATION_REQUEST) {
      if (o.iaNa.length > 0 || (o.serverId !== null && !sameBytes(o.serverId, this.duid))) return this.#ignore();
      this.counters.informationRequests++;
      const r = this.#reply(dhcpv6.REPLY, m);
      r.options.dnsServers = this.#opts.dns.map((a) => a.slice());
      r.options.domainSearch = [...this.#opts.domains];
      r.options.infoRefreshTime = Math.max(dhcpv6.IRT_MINIMUM, this.#opts.infoRefreshTime ?? 3600);
      return r;
    }
    if (m.msgType === dhcpv6.SOLICIT) {
      if (o.clientId === null || o.serverId !== null) return this.#ignore();
      this.counters.solicits++;
      const r = this.#reply(dhcpv6.ADVERTISE, m);
      r.options.status = { code: dhcpv6.STATUS_NO_ADDRS_AVAIL, message: 'stateless only: use SLAAC' };
      return r;
    }
    return this.#ignore();
  }

  #reply(type: number, m: dhcpv6.Message): dhcpv6.Message {
    const r = dhcpv6.blank();
    r.msgType = type;
    r.transactionId = m.transactionId;
    r.options.serverId = this.duid;
    r.options.clientId = m.options.clientId;
    return r;
  }

  #ignore(): null {
    this.counters.ignored++;
    return null;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
