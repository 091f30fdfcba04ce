/**
 * Theory of operation: the gateway's IPv6 side — everything between "an
 * IPv6 frame arrived from a guest" and "these frames go back", beside the
 * IPv4 router in gateway.ts, which owns the links, the Ethernet checks, the
 * MAC ownership and the NAT engines, and hands IPv6 frames here.
 *
 * Addresses (config.ts): the guests' /64, the gateway at PREFIX::2 and its
 * DNS at PREFIX::3, the gateway's link-local fe80::EUI-64. IPv6 addresses
 * are interned into numbers from 2^32 up (services/nat-addr.ts), so the
 * neighbour table and both NAT engines key IPv4 and IPv6 in one space; the
 * gateway dispatches on `isV6` where the families differ (headers,
 * pseudo-header checksums, policy).
 *
 * Per packet (RFC 8200 §4, RFC 4861, RFC 4443):
 *  1. The fixed header and the extension header chain are checked and
 *     walked within bounds (wire/ipv6.ts). A chain that asks for it gets a
 *     Parameter Problem (RFC 8200 §4.2, §4.4); fragments are reassembled in
 *     the table IPv4 uses (ip-reassembly.ts: its bounds and per-guest
 *     shares), and the whole packet handled as if it came so.
 *  2. Identity, as IPv4's (neighbors.ts, same per-link bounds, a table of
 *     its own): the source is link-local or in the prefix and not one of
 *     the gateway's; it must be the link's own or free, and is learnt.
 *     The unspecified source is accepted only for NDP and MLD (DAD, RS).
 *  3. NDP: solicitations for the gateway's addresses are answered (unicast
 *     NA, or to all nodes for a DAD probe of one of them, which defends
 *     it). A DAD probe (RFC 4862 §5.4.2) for a guest address claims it for
 *     the probing link when free, so the DNS knows a guest's SLAAC address
 *     before it sends anything; when another open link holds it, the
 *     gateway defends it for that link (an NA to all nodes on the prober's
 *     link), so DAD fails on the newcomer instead of two guests sharing an
 *     address. Router solicitations get an advertisement
 *     (router-advert.ts). Guests' NAs claim their targets as traffic does.
 *  4. ICMPv6 echo to the gateway's addresses is answered; to other
 *     addresses it goes to the ping relay (ping.ts, services/ping/) after
 *     the UDP NAT's policy (--isolated and --no-host: administratively
 *     prohibited; unroutable: dropped, `ping-refused`), with the hop limit
 *     less one; replies come back from the address pinged, errors from the
 *     router that sent them. Other informational messages (MLD) are
 *     ignored, as a host's would be.
 *  5. UDP: DHCPv6 (port 547, at ff02::1:2 or the gateway) → the stateless
 *     server; port 53 at the DNS address → the DNS service; other
 *     multicast → dropped; the rest → the UDP NAT, with IPv6's policy:
 *     the gateway's addresses reach the host's ::1 unless
 *     --no-host-loopback, the rest of the prefix, link-local, multicast,
 *     loopback, unspecified and IPv4-mapped/-compatible destinations are
 *     dropped, --isolated and --no-host refuse as for IPv4. Refusals become
 *     ICMPv6 destination unreachable (port unreachable, or administratively
 *     prohibited).
 *  6. TCP: the TCP NAT, same policy, refusals answered with RST.
 *
 * ICMPv6 errors follow RFC 4443 §2.4: never about errors, redirects,
 * multicast (but Packet Too Big and option Parameter Problems), and at most
 * `ERROR_BURST` at once, refilled at `ERRORS_PER_S` a second (§2.4(f)).
 * Errors go from the gateway's link-local address to link-local sources,
 * else from its global one. Outgoing datagrams longer than the MTU (a large
 * UDP reply from the host) are sent as fragments (RFC 8200 §4.5).
 *
 * The address table is swept once a second (`sweep`): ids no neighbour
 * entry or flow uses are forgotten (nat-addr.ts "Lifetime").
 */
import * as eth from '../wire/ethernet.js';
import * as ipv6 from '../wire/ipv6.js';
import * as icmpv6 from '../wire/icmpv6.js';
import * as ndp from '../wire/ndp.js';
import * as udp from '../wire/udp.js';
import * as tcp from '../wire/tcp.js';
import * as dhcpv6 from '../wire/dhcpv6.js';
import {
  ALL_NODES_IP6,
  eqIp6,
  formatIp6,
  inPrefix6,
  isIp4Mapped6,
  isLinkLocal6,
  isLoopback6,
  isMulticast6,
  isUnspecified6,
  multicastMac6,
  type Ip6,
} from '../wire/addr.js';
import { Ip6Ids, type AddrId } from '../services/nat-addr.js';
import { Dhcpv6Server } from '../services/dhcpv6-server.js';
import type { TcpNat, TcpRoute } from '../services/tcp-nat/nat.js';
import type { UdpNat, UdpFlowKey, UdpRoute } from '../services/udp-nat/nat.js';
import type { GatewayConfig, Ipv6Config } from './config.js';
import type { DropReason } from './counters.js';
import { FrameBuilder6, UDP6_OVERHEAD } from './frames6.js';
import { Neighbors, USE_OK, type Neighbor, type NeighborLimits } from './neighbors.js';
import { RaSchedule, routerAdvert } from './router-advert.js';
import type { Session } from './gateway.js';
import type { PingFlowInfo, PingRelay } from '../services/ping/relay.js';
import type { Reassembled } from './ip-reassembly.js';

/** Most ICMPv6 errors at once, and the refill rate a second (RFC 4443 §2.4(f)). */
export const ERROR_BURST = 10;
export const ERRORS_PER_S = 100;

/** A full address table is swept at once at most this often (ms). */
const FULL_SWEEP_MS = 100;
const DNS_PORT = 53;
const ALL_DHCP6: Ip6 = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2);
const ALL_NODES_MAC = multicastMac6(ALL_NODES_IP6);

/** What the gateway lends its IPv6 side. */
export interface Gateway6Host {
  readonly config: GatewayConfig;
  /** Monotonic ms. */
  now(): number;
  /** The gateway's output scratch: frames are built there and sent with `send`. */
  readonly out: Uint8Array;
  readonly outView: DataView;
  /** Sends `len` bytes of `out` to a link (nothing when it closed). @returns false when the link is congested */
  send(s: Session, len: number): boolean;
  /** Sends `len` bytes of `buf` to a link. */
  sendBuf(s: Session, buf: Uint8Array, len: number): boolean;
  drop(reason: DropReason): void;
  /** A source refused by the neighbour table (USE_TAKEN / USE_LIMIT). */
  refuseSource(verdict: number): void;
  /** The bytes behind a frame's view (what the TCP NAT reads payloads from). */
  bytesOf(v: DataView): Uint8Array;
  readonly tcpNat: TcpNat;
  readonly udpNat: UdpNat;
  /** Asks the DNS service a guest's UDP query; `reply` builds and sends the answer (gateway.ts queryDns). */
  queryDns(s: Session, query: Uint8Array, overhead: number, reply: (answer: Uint8Array) => void): void;
  readonly neighborLimits?: Partial<NeighborLimits> | undefined;
  /** The ping relay to the outside (ping.ts), null without one. */
  pingRelay(): PingRelay | null;
  /** Reassembles an IPv6 fragment (ip-reassembly.ts, the table IPv4 uses), drops counted; the whole packet or null. */
  reassemble6(v: DataView, o: number, c: ipv6.Chain, s: Session): Reassembled | null;
  /** The host's own IPv6 addresses (RFC 5952 text), refused with --no-host. */
  readonly hostAddresses6?: (() => ReadonlySet<string>) | undefined;
}

export class Gateway6 {
  readonly ids = new Ip6Ids();
  readonly neighbors: Neighbors<Session>;
  readonly dhcp: Dhcpv6Server;
  readonly v6: Ipv6Config;
  private readonly frames: FrameBuilder6;
  private readonly ra: ndp.Message;
  private readonly raSchedule = new RaSchedule<Session>();
  private readonly ipH = ipv6.blank();
  private readonly chain = ipv6.blankChain();
  private readonly icmpH = icmpv6.blank();
  private readonly ndpM = ndp.blank();
  private readonly na = ndp.blank();
  private readonly udpH = udp.blank();
  private readonly tcpH = tcp.blank();
  private readonly dhcpM = dhcpv6.blank();
  private readonly ipOut = ipv6.blank();
  private readonly quote = new Uint8Array(ipv6.HEADER_LEN + udp.HEADER_LEN);
  private readonly quoteView = new DataView(this.quote.buffer);
  private readonly fragBuf: Uint8Array;
  private readonly fragView: DataView;
  private fragId = 0;
  private errorTokens = ERROR_BURST;
  private errorsAt = 0;
  /** The frame being handled came to a group MAC: no errors about it (RFC 4443 §2.4(e)). */
  private group = false;
  /** When the address table was last swept because it was full. */
  private fullSweepAt = -Infinity;
  /** ICMPv6 errors not sent for the rate limit. */
  errorsLimited = 0;

  constructor(
    v6: Ipv6Config,
    private readonly host: Gateway6Host,
  ) {
    this.v6 = v6;
    const c = host.config;
    this.frames = new FrameBuilder6(c.gatewayMac);
    this.neighbors = new Neighbors<Session>(() => null, host.neighborLimits, (id) => this.released(id));
    this.dhcp = new Dhcpv6Server({ mac: c.gatewayMac, dns: [v6.dnsIp], domains: [c.domain] });
    this.ra = routerAdvert({ mac: c.gatewayMac, mtu: c.mtu, prefix: v6.prefix.net, dns: v6.dnsIp, domain: c.domain });
    this.na.type = icmpv6.TYPE_NEIGHBOR_ADVERT;
    this.na.options.targetLinkAddr = new Uint8Array(6);
    this.fragBuf = new Uint8Array(c.mtu + eth.HEADER_LEN);
    this.fragView = new DataView(this.fragBuf.buffer);
  }

  /** The neighbour entry of an IPv6 id (for sending to it). */
  neighbor(id: AddrId): Neighbor<Session> | undefined {
    return this.neighbors.get(id);
  }

  /** The address of an id (do not modify it). */
  address(id: AddrId): Ip6 | undefined {
    return this.ids.address(id);
  }

  /** A link closed: the addresses it held (to end their flows). */
  detach(s: Session): AddrId[] {
    this.raSchedule.forget(s);
    return this.neighbors.detach(s);
  }

  /** The global (in-prefix) addresses a link holds, as text: the AAAA answers for its names. */
  globalAddressesOf(s: Session): string[] {
    const out: string[] = [];
    for (const id of this.neighbors.addressesOf(s)) {
      const a = this.ids.address(id);
      if (a !== undefined && inPrefix6(a, this.v6.prefix.net, 64)) out.push(formatIp6(a));
    }
    return out;
  }

  /**
   * Once a second: router advertisements due, and the address table's sweep.
   * @param links the open links
   */
  sweep(now: number, links: Iterable<Session>): void {
    for (const s of this.raSchedule.due(links, now)) this.sendRa(s);
    this.collect();
  }

  /**
   * The id of the address at `o`, interned when new. A full table is swept
   * at once (at most every `FULL_SWEEP_MS`), so a guest that fills it with
   * addresses nothing keeps (stray segments to random destinations) blocks
   * new addresses for that long at most; -1 when it is still full.
   */
  private intern(v: DataView, o: number): AddrId {
    const id = this.ids.intern(v, o);
    if (id !== -1) return id;
    const now = this.host.now();
    if (now - this.fullSweepAt < FULL_SWEEP_MS) return -1;
    this.fullSweepAt = now;
    this.collect();
    return this.ids.intern(v, o);
  }

  /** Forgets the addresses no neighbour entry or flow uses (nat-addr.ts "Lifetime"). */
  private collect(): void {
    const live = new Set<AddrId>();
    for (const n of this.neighbors.list()) live.add(n.ip);
    this.host.tcpNat.forEachAddress((g, r) => {
      live.add(g);
      live.add(r);
    });
    for (const f of this.host.udpNat.list()) {
      live.add(f.guestIp);
      live.add(f.dstIp);
    }
    this.ids.retain(live);
  }

  private released(id: AddrId): void {
    const { tcpNat, udpNat } = this.host;
    const a = this.ids.address(id);
    if (a !== undefined) this.host.pingRelay()?.closeAddress(a);
    tcpNat.closeAddress(id);
    tcpNat.linkDrained(id);
    udpNat.closeAddress(id);
  }

  private ours(a: Uint8Array): boolean {
    const v6 = this.v6;
    return eqIp6(a, v6.gatewayIp) || eqIp6(a, v6.dnsIp) || eqIp6(a, v6.linkLocal);
  }

  /** An address a guest may hold: link-local or in the prefix, unicast, not the gateway's. */
  private guestAddress(a: Uint8Array): boolean {
    if (isMulticast6(a) || isUnspecified6(a) || isLoopback6(a) || this.ours(a)) return false;
    return isLinkLocal6(a) || inPrefix6(a, this.v6.prefix.net, 64);
  }

  /**
   * Handles one IPv6 packet of a frame the gateway accepted (Ethernet and
   * source MAC checked).
   * @param o offset of the IPv6 header, `len` bytes from there
   * @param group the frame's Ethernet destination was a group address
   * @param srcMac the frame's source MAC
   * @param now the gateway's clock (as of its last sweep)
   * @param reassembled the packet was put together from fragments (a fragment in it is dropped)
   */
  handlePacket(s: Session, v: DataView, o: number, len: number, group: boolean, srcMac: Uint8Array, now: number, reassembled = false): void {
    this.group = group;
    const h = this.ipH;
    const host = this.host;
    if (!ipv6.parse(v, o, len, h)) return host.drop('ipv6-invalid');
    const plen = ipv6.HEADER_LEN + h.payloadLength;
    const c = this.chain;
    if (!ipv6.walk(v, o, plen, c)) return host.drop('ipv6-invalid');
    const unspecified = isUnspecified6(h.src);
    let srcId = -1;
    if (!unspecified) {
      if (!this.guestAddress(h.src)) return host.drop('ipv6-src');
      srcId = this.intern(v, o + ipv6.SRC);
      if (srcId === -1) return host.drop('ipv6-full');
      const verdict = this.neighbors.useIp(s, srcId, srcMac, 0, now);
      if (verdict !== USE_OK) return host.refuseSource(verdict);
    }
    if (c.action !== ipv6.ACTION_NONE) {
      host.drop('ipv6-invalid');
      if (c.action !== ipv6.ACTION_DISCARD && icmpv6.errorAllowed(icmpv6.TYPE_PARAM_PROBLEM, c.action === ipv6.ACTION_PROBLEM, h.src, h.dst, group, -1))
        this.error(s, srcMac, h.src, icmpv6.TYPE_PARAM_PROBLEM, c.problemCode, c.problemPointer, v, o, plen, true);
      return;
    }
    if (c.fragment) {
      if (reassembled) return host.drop('ipv6-fragment');
      const whole = host.reassemble6(v, o, c, s);
      return whole === null ? undefined : this.handlePacket(s, whole.view, 0, whole.len, group, srcMac, now, true);
    }
    const toUs = this.ours(h.dst);
    const multicast = isMulticast6(h.dst);
    if (!toUs && !multicast && h.hopLimit <= 1) {
      host.drop('ttl-expired');
      if (c.proto !== ipv6.NH_ICMPV6 || !icmpv6.isError(v.getUint8(c.offset))) this.error(s, srcMac, h.src, icmpv6.TYPE_TIME_EXCEEDED, icmpv6.CODE_HOP_LIMIT, 0, v, o, plen);
      return;
    }
    switch (c.proto) {
      case ipv6.NH_ICMPV6:
        return this.handleIcmp(s, srcMac, v, o, plen, toUs, now);
      case ipv6.NH_UDP:
        if (unspecified) return host.drop('ipv6-src');
        return this.handleUdp(s, srcMac, v, o, plen, srcId, toUs, multicast);
      case ipv6.NH_TCP: {
        const t = this.tcpH;
        if (unspecified || multicast) return host.drop('tcp-invalid');
        if (!tcp.parse(v, c.offset, c.length, t) || !tcp.verify6(v, c.offset, c.length, h.src, h.dst)) return host.drop('tcp-invalid');
        const dstId = this.intern(v, o + ipv6.DST);
        if (dstId === -1) return host.drop('ipv6-full');
        return host.tcpNat.fromGuest(srcId, dstId, t, host.bytesOf(v));
      }
      case ipv6.NH_NONE:
        return;
      default:
        host.drop('proto-unsupported');
        if (toUs && !unspecified) this.error(s, srcMac, h.src, icmpv6.TYPE_PARAM_PROBLEM, ipv6.PROBLEM_NEXT_HEADER, c.protoPointer, v, o, plen);
    }
  }

  private handleIcmp(s: Session, srcMac: Uint8Array, v: DataView, o: number, plen: number, toUs: boolean, now: number): void {
    const h = this.ipH;
    const c = this.chain;
    const m = this.icmpH;
    const host = this.host;
    if (!icmpv6.parse(v, c.offset, c.length, m) || !icmpv6.verify(v, c.offset, c.length, h.src, h.dst)) return host.drop('icmp-invalid');
    if (m.type >= icmpv6.TYPE_ROUTER_SOLICIT && m.type <= icmpv6.TYPE_REDIRECT) return this.handleNdp(s, srcMac, v, now);
    if (m.type === icmpv6.TYPE_MLD_QUERY || m.type === icmpv6.TYPE_MLD_REPORT || m.type === icmpv6.TYPE_MLD_DONE || m.type === icmpv6.TYPE_MLD2_REPORT) return;
    if (isUnspecified6(h.src)) return host.drop('ipv6-src');
    if (m.type !== icmpv6.TYPE_ECHO_REQUEST) return host.drop('icmp-unsupported');
    if (!toUs) return this.pingOut(s, srcMac, v, o, plen);
    const n = this.frames.echoReply(host.outView, 0, srcMac, h.dst, h.src, m.id, m.seq, v, m.payloadOffset, m.payloadLength);
    this.sendOut(s, n);
  }

  /** An echo request to another address: policy, then the ping relay (see the file comment, 4). */
  private pingOut(s: Session, srcMac: Uint8Array, v: DataView, o: number, plen: number): void {
    const h = this.ipH;
    const c = this.chain;
    const host = this.host;
    const relay = host.pingRelay();
    if (relay === null || this.icmpH.code !== 0) return host.drop('icmp-unsupported');
    if (isMulticast6(h.dst)) return host.drop('ping-refused');
    if (host.config.isolated || this.hostRefused(h.dst)) {
      host.drop('ping-refused');
      return this.error(s, srcMac, h.src, icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_ADMIN_PROHIBITED, 0, v, o, plen);
    }
    if (!routable(h.dst, this.v6.prefix.net)) return host.drop('ping-refused');
    const message = new Uint8Array(v.buffer, v.byteOffset + c.offset, c.length);
    const r = relay.fromGuest({ guest: s.id, family: 6, src: h.src.slice(), dst: h.dst.slice(), ttl: h.hopLimit - 1, message });
    if (r !== 'sent') host.drop('ping-unavailable');
  }

  /** The neighbour holding an address given as bytes (a ping flow's), or undefined. */
  private neighborAt(a: Uint8Array): Neighbor<Session> | undefined {
    const id = this.ids.find(new DataView(a.buffer, a.byteOffset, 16), 0);
    const n = id === -1 ? undefined : this.neighbors.get(id);
    return n === undefined || n.link.closed ? undefined : n;
  }

  /** A relayed echo reply for a guest (PingRelayEvents.reply, family 6). */
  reply(f: PingFlowInfo, seq: number, payload: Uint8Array, hopLimit: number): void {
    const n = this.neighborAt(f.src);
    if (n === undefined) return this.host.drop('not-for-us');
    const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const hl = hopLimit === 0 ? 64 : Math.max(1, hopLimit - 1);
    this.sendOut(n.link, this.frames.echoReply(this.host.outView, 0, n.mac, f.dst, f.src, f.id, seq, pv, 0, payload.length, hl));
  }

  /** A relayed ICMPv6 error about a guest's echo request (PingRelayEvents.error, family 6). */
  error6(f: PingFlowInfo, from: Uint8Array | null, type: number, code: number, info: number, request: Uint8Array, hopLimit: number): void {
    const n = this.neighborAt(f.src);
    if (n === undefined) return;
    // The guest's packet as it left the gateway: its IPv6 header and the request's first 8 bytes.
    const q = new Uint8Array(ipv6.HEADER_LEN + icmpv6.HEADER_LEN);
    const h = ipv6.blank();
    h.payloadLength = icmpv6.HEADER_LEN;
    h.nextHeader = ipv6.NH_ICMPV6;
    h.hopLimit = hopLimit;
    h.src.set(f.src);
    h.dst.set(f.dst);
    const qv = new DataView(q.buffer);
    ipv6.emit(h, qv, 0);
    q.set(request.subarray(0, icmpv6.HEADER_LEN), ipv6.HEADER_LEN);
    const src = from ?? this.v6.gatewayIp;
    const param = type === icmpv6.TYPE_PACKET_TOO_BIG ? info : 0;
    this.sendOut(n.link, this.frames.icmpError(this.host.outView, 0, n.mac, src, f.src, type, code, param, qv, 0, q.length));
  }

  private handleNdp(s: Session, srcMac: Uint8Array, v: DataView, now: number): void {
    const h = this.ipH;
    const c = this.chain;
    const m = this.ndpM;
    const host = this.host;
    if (!ndp.parse(v, c.offset, c.length, m) || !ndp.checkIp(m, h.hopLimit, h.src, h.dst)) return host.drop('ndp-invalid');
    const dad = isUnspecified6(h.src);
    switch (m.type) {
      case icmpv6.TYPE_ROUTER_SOLICIT:
        if (this.raSchedule.solicited(s, this.host.now())) this.sendRa(s);
        return;
      case icmpv6.TYPE_NEIGHBOR_SOLICIT: {
        const t = m.target;
        if (this.ours(t)) {
          // RFC 4861 §7.2.4: solicited, unicast to the soliciter; a DAD probe of our address: to all nodes (defended).
          const mac = dad ? ALL_NODES_MAC : (m.options.sourceLinkAddr ?? srcMac);
          return this.sendNa(s, mac, dad ? ALL_NODES_IP6 : h.src, t, this.v6.linkLocal, !dad, this.host.config.gatewayMac);
        }
        if (!dad || !this.guestAddress(t)) return;
        // RFC 4862 §5.4.2: a probe for a guest address; claim it for this link, or defend it for its holder.
        const id = this.intern(new DataView(t.buffer, t.byteOffset, 16), 0);
        if (id === -1) return host.drop('ipv6-full');
        if (this.neighbors.useIp(s, id, srcMac, 0, now) === USE_OK) return;
        const holder = this.neighbors.get(id);
        if (holder !== undefined && holder.link !== s && !holder.link.closed) this.sendNa(s, ALL_NODES_MAC, ALL_NODES_IP6, t, this.v6.linkLocal, false, holder.mac);
        return;
      }
      case icmpv6.TYPE_NEIGHBOR_ADVERT: {
        // A guest announcing its own address claims it, as traffic from it would.
        if (dad || !this.guestAddress(m.target)) return;
        const id = this.intern(new DataView(m.target.buffer, m.target.byteOffset, 16), 0);
        if (id === -1) return host.drop('ipv6-full');
        const verdict = this.neighbors.useIp(s, id, m.options.targetLinkAddr ?? srcMac, 0, now);
        if (verdict !== USE_OK) host.refuseSource(verdict);
        return;
      }
      default:
        return; // router advertisements and redirects from guests: no router listens to them here
    }
  }

  /** A Neighbor Advertisement for `target` (router, override; solicited when asked). */
  private sendNa(s: Session, dstMac: Uint8Array, dst: Ip6, target: Ip6, src: Ip6, solicited: boolean, targetMac: Uint8Array): void {
    const na = this.na;
    na.flags = (eqIp6(target, this.v6.dnsIp) ? 0 : ndp.NA_ROUTER) | ndp.NA_OVERRIDE | (solicited ? ndp.NA_SOLICITED : 0);
    na.target.set(target);
    na.options.targetLinkAddr!.set(targetMac.subarray(0, 6));
    const n = this.frames.ndp(this.host.outView, 0, dstMac, src, dst, na);
    this.sendOut(s, n);
  }

  private sendRa(s: Session): void {
    if (s.closed) return;
    const n = this.frames.ndp(this.host.outView, 0, ALL_NODES_MAC, this.v6.linkLocal, ALL_NODES_IP6, this.ra);
    this.sendOut(s, n);
  }

  private handleUdp(s: Session, srcMac: Uint8Array, v: DataView, o: number, plen: number, srcId: AddrId, toUs: boolean, multicast: boolean): void {
    const h = this.ipH;
    const c = this.chain;
    const u = this.udpH;
    const host = this.host;
    if (!udp.parse(v, c.offset, c.length, u) || !udp.verify6(v, c.offset, u.length, h.src, h.dst)) return host.drop('udp-invalid');
    if (u.dstPort === dhcpv6.SERVER_PORT && (toUs || eqIp6(h.dst, ALL_DHCP6))) return this.handleDhcp(s, srcMac, v);
    if (multicast) return host.drop('udp-broadcast');
    const payload = new Uint8Array(v.buffer, v.byteOffset + u.payloadOffset, u.payloadLength);
    if (eqIp6(h.dst, this.v6.dnsIp) && u.dstPort === DNS_PORT) return this.handleDns(s, srcMac, h.src, u.srcPort, payload);
    const dstId = this.intern(v, o + ipv6.DST);
    if (dstId === -1) return host.drop('ipv6-full');
    const r = host.udpNat.fromGuest(srcId, u.srcPort, dstId, u.dstPort, payload, host.now(), s.id);
    if (r === 'sent') return;
    host.drop('udp-refused');
    if (r === 'drop') return;
    const code = r === 'admin-prohibited' ? icmpv6.CODE_ADMIN_PROHIBITED : icmpv6.CODE_PORT_UNREACH;
    this.error(s, srcMac, h.src, icmpv6.TYPE_DEST_UNREACH, code, 0, v, o, plen);
  }

  private handleDhcp(s: Session, srcMac: Uint8Array, v: DataView): void {
    const h = this.ipH;
    const u = this.udpH;
    const m = this.dhcpM;
    if (!dhcpv6.parse(v, u.payloadOffset, u.payloadLength, m) || dhcpv6.isRelay(m.msgType)) return this.host.drop('dhcpv6-invalid');
    const reply = this.dhcp.handle(m);
    if (reply === null) return;
    const payload = new Uint8Array(dhcpv6.length(reply));
    dhcpv6.emit(reply, new DataView(payload.buffer), 0);
    // RFC 8415 §18.3.10: to the client's address and port; from our link-local address.
    const n = this.frames.udp(this.host.outView, 0, srcMac, this.v6.linkLocal, dhcpv6.SERVER_PORT, h.src, u.srcPort, payload);
    this.sendOut(s, n);
  }

  private handleDns(s: Session, srcMac: Uint8Array, guest: Ip6, guestPort: number, query: Uint8Array): void {
    const mac = srcMac.slice(0, 6);
    const to = guest.slice();
    this.host.queryDns(s, query, UDP6_OVERHEAD, (answer) => this.sendOut(s, this.frames.udp(this.host.outView, 0, mac, this.v6.dnsIp, DNS_PORT, to, guestPort, answer)));
  }

  /** Where a guest's TCP connection to an IPv6 address goes (see the file comment, 5 and 6). */
  routeTcp(dstId: AddrId, dstPort: number): TcpRoute {
    const a = this.ids.address(dstId);
    const c = this.host.config;
    if (a === undefined) return { drop: true };
    if (eqIp6(a, this.v6.dnsIp)) return dstPort === DNS_PORT ? { local: 'dns' } : { refuse: true };
    if (dstPort === 0) return { drop: true };
    if (c.isolated || this.hostRefused(a)) return { refuse: true };
    if (this.ours(a)) return c.hostLoopback ? { host: '::1', port: dstPort } : { refuse: true };
    if (!routable(a, this.v6.prefix.net)) return { drop: true };
    return { host: formatIp6(a), port: dstPort };
  }

  /** Where a guest's UDP datagram to an IPv6 address goes. */
  routeUdp(dstId: AddrId, dstPort: number): UdpRoute {
    const a = this.ids.address(dstId);
    const c = this.host.config;
    if (a === undefined) return { refuse: 'drop' };
    if (c.isolated) return { refuse: 'admin-prohibited' };
    if (dstPort === 0) return { refuse: 'drop' };
    if (this.hostRefused(a)) return { refuse: 'admin-prohibited' };
    if (this.ours(a)) return c.hostLoopback && !eqIp6(a, this.v6.dnsIp) ? { host: '::1', port: dstPort } : { refuse: 'port-unreachable' };
    if (!routable(a, this.v6.prefix.net)) return { refuse: 'drop' };
    return { host: formatIp6(a), port: dstPort };
  }

  /** With --no-host: the gateway's addresses, ::1 and the host's own IPv6 addresses (host-addresses.ts). */
  private hostRefused(a: Ip6): boolean {
    const host = this.host;
    if (host.config.hostAccess) return false;
    return isLoopback6(a) || eqIp6(a, this.v6.gatewayIp) || eqIp6(a, this.v6.linkLocal) || host.hostAddresses6?.().has(formatIp6(a)) === true;
  }

  /**
   * Writes the IPv6 header of a TCP segment to a guest at `p`.
   * @returns the offset after it
   */
  tcpHeader(v: DataView, p: number, guestId: AddrId, remoteId: AddrId, tcpLen: number): number {
    const ip = this.ipOut;
    ip.payloadLength = tcpLen;
    ip.nextHeader = ipv6.NH_TCP;
    ip.hopLimit = 64;
    ip.src.set(this.ids.address(remoteId)!);
    ip.dst.set(this.ids.address(guestId)!);
    return p + ipv6.emit(ip, v, p);
  }

  /** The TCP checksum of the segment `tcpHeader` headed (same addresses). */
  tcpChecksum(v: DataView, o: number, len: number): void {
    tcp.fillChecksum6(v, o, len, this.ipOut.src, this.ipOut.dst);
  }

  /** A datagram from the host (UDP NAT replies) to a guest's IPv6 address. */
  udpToGuest(guestId: AddrId, guestPort: number, srcId: AddrId, srcPort: number, data: Uint8Array): void {
    const n = this.neighbors.get(guestId);
    const host = this.host;
    const src = this.ids.address(srcId);
    if (!n || n.link.closed || src === undefined) return host.drop('not-for-us');
    if (data.length + UDP6_OVERHEAD > host.out.length) return host.drop('udp-too-big');
    const len = this.frames.udp(host.outView, 0, n.mac, src, srcPort, this.ids.address(guestId)!, guestPort, data);
    this.sendOut(n.link, len);
  }

  /** The host refused a flow's datagrams: a destination unreachable quoting a reconstruction of the guest's header. */
  flowUnreachable(f: UdpFlowKey, kind: 'port-unreachable' | 'admin-prohibited'): void {
    const n = this.neighbors.get(f.guestIp);
    const guest = this.ids.address(f.guestIp);
    const dst = this.ids.address(f.dstIp);
    if (!n || n.link.closed || guest === undefined || dst === undefined) return;
    const q = this.quoteView;
    const h = this.ipOut;
    h.payloadLength = udp.HEADER_LEN;
    h.nextHeader = ipv6.NH_UDP;
    h.hopLimit = 64;
    h.src.set(guest);
    h.dst.set(dst);
    ipv6.emit(h, q, 0);
    q.setUint16(40, f.guestPort);
    q.setUint16(42, f.dstPort);
    q.setUint16(44, udp.HEADER_LEN);
    q.setUint16(46, 0);
    const code = kind === 'admin-prohibited' ? icmpv6.CODE_ADMIN_PROHIBITED : icmpv6.CODE_PORT_UNREACH;
    this.group = false; // about a flow, not a frame
    this.error(n.link, n.mac, guest, icmpv6.TYPE_DEST_UNREACH, code, 0, q, 0, this.quote.length);
  }

  /**
   * Sends an ICMPv6 error about the packet at (q, qo, qlen) to `dst`, within
   * the rate limit; never to an unspecified or multicast source, nor about a
   * frame sent to a group MAC unless `multicastOk` (RFC 4443 §2.4(e), checked
   * by the caller then).
   */
  private error(s: Session, mac: Uint8Array, dst: Ip6, type: number, code: number, param: number, q: DataView, qo: number, qlen: number, multicastOk = false): void {
    if (isUnspecified6(dst) || isMulticast6(dst) || (this.group && !multicastOk)) return;
    const now = this.host.now();
    this.errorTokens = Math.min(ERROR_BURST, this.errorTokens + ((now - this.errorsAt) * ERRORS_PER_S) / 1000);
    this.errorsAt = now;
    if (this.errorTokens < 1) {
      this.errorsLimited++;
      return;
    }
    this.errorTokens--;
    const src = isLinkLocal6(dst) ? this.v6.linkLocal : this.v6.gatewayIp;
    const n = this.frames.icmpError(this.host.outView, 0, mac, src, dst, type, code, param, q, qo, qlen);
    this.sendOut(s, n);
  }

  /** Sends the frame in the gateway's output, as fragments when it is longer than the link MTU. */
  private sendOut(s: Session, len: number): void {
    const host = this.host;
    if (len - eth.HEADER_LEN <= host.config.mtu) {
      host.send(s, len);
      return;
    }
    this.fragmentOut(s, len);
  }

  /**
   * Sends the IPv6 packet in the output (no extension headers, longer than
   * the MTU) as fragments (RFC 8200 §4.5): each is the 40-byte header, a
   * Fragment header and a multiple of 8 bytes of the rest.
   */
  private fragmentOut(s: Session, len: number): void {
    const { out, config } = this.host;
    const hl = eth.HEADER_LEN + ipv6.HEADER_LEN;
    const payload = len - hl;
    const step = (config.mtu - ipv6.HEADER_LEN - ipv6.FRAGMENT_LEN) & ~7;
    const nextHeader = out[eth.HEADER_LEN + ipv6.NEXT_HEADER]!;
    const id = (this.fragId = (this.fragId + 1) >>> 0);
    const v = this.fragView;
    const f = ipv6.blankFragment();
    f.nextHeader = nextHeader;
    f.id = id;
    for (let off = 0; off < payload; off += step) {
      const n = Math.min(step, payload - off);
      this.fragBuf.set(out.subarray(0, hl), 0);
      v.setUint16(eth.HEADER_LEN + ipv6.PAYLOAD_LENGTH, ipv6.FRAGMENT_LEN + n);
      v.setUint8(eth.HEADER_LEN + ipv6.NEXT_HEADER, ipv6.NH_FRAGMENT);
      f.offset = off;
      f.more = off + n < payload;
      ipv6.emitFragment(f, v, hl);
      this.fragBuf.set(out.subarray(hl + off, hl + off + n), hl + ipv6.FRAGMENT_LEN);
      this.host.sendBuf(s, this.fragBuf, hl + ipv6.FRAGMENT_LEN + n);
    }
  }
}

/** A destination the NAT may reach: not the guests' prefix, link-local, multicast, loopback, unspecified or an IPv4 form. */
function routable(a: Ip6, prefix: Ip6): boolean {
  if (inPrefix6(a, prefix, 64) || isLinkLocal6(a) || isMulticast6(a) || isLoopback6(a) || isUnspecified6(a) || isIp4Mapped6(a)) return false;
  for (let i = 0; i < 12; i++) if (a[i] !== 0) return true;
  return false; // ::/96 (IPv4-compatible, RFC 4291 §2.5.5.1: deprecated)
}
