/**
 * Theory of operation: the gateway's router — everything between "a frame
 * arrived from a guest" and "these frames go back", with the socket edges
 * (listeners, timers, host sockets) injected. One Gateway serves any number
 * of guest connections (ports); DHCP leases, DNS and UDP NAT are shared.
 *
 * Per frame (RFC 1122 host/router behaviour, trimmed to a NAT gateway):
 *  1. Ethernet: too short or longer than MTU + header → dropped and counted;
 *     unicast to another MAC, 802.1Q-tagged and unknown EtherTypes (and
 *     IPv6 on a gateway without it) → dropped and counted. IPv6 goes to
 *     the IPv6 side (gateway6.ts) once its source MAC passed step 2.
 *  2. Identity (neighbors.ts): a guest is its link, the Session the frame
 *     came in on (a stream connection, or a switch port on a segment). The
 *     source MAC of ARP and IPv4 frames, and the sender or source address,
 *     must be the link's own: leased to it, or first used by it. Another
 *     link's MAC or address → dropped (`src-taken`), and an ARP claiming
 *     one is ignored; more than a link may hold → dropped (`src-limit`); a
 *     group or zero source MAC → dropped (`src-mac`). What passes is learned
 *     (the neighbour table), so a guest with a static address is served too.
 *     Per-guest caps and shares (TCP flows, UDP flows, fragment reassembly)
 *     are keyed on the link, never on an address a guest can pick. An
 *     address that leaves a link (its link closed, another link took it
 *     after it aged, its own link recycled it) takes nothing with it: the
 *     TCP connections on it are reset and its UDP flows closed, so its next
 *     holder can neither read nor speak in them.
 *  3. ARP (RFC 826): requests for any gateway-owned address (gateway, DNS)
 *     are answered.
 *  4. IPv4 (RFC 791): header checksum and lengths checked; the source must be
 *     in the subnet (0.0.0.0 only for DHCP); fragments are reassembled with
 *     bounded memory (ip-reassembly.ts); datagrams routed onward with TTL ≤ 1
 *     get ICMP time exceeded (RFC 1812 §5.3.1).
 *  5. ICMP: echo requests to gateway addresses are answered (RFC 792); to
 *     any other address they go to the ping relay (ping.ts: the UDP NAT's
 *     policy, then a ping socket on the host) when the gateway has one.
 *  6. UDP: port 67 → the DHCP server (RFC 2131); port 53 at the DNS address
 *     → the DNS service; anything else unicast → UDP NAT, whose policy maps
 *     the gateway address to the host's 127.0.0.1 unless --no-host-loopback,
 *     refuses every address of the host itself with --no-host (the host's
 *     interface addresses, injected as `hostAddresses`, 127/8 and the gateway
 *     address), and refuses everything in isolated mode. Refusals become
 *     ICMP destination unreachable (port unreachable, or administratively
 *     prohibited, RFC 1812 §5.2.7.1), never silence.
 *  7. TCP: the TCP NAT (services/tcp-nat), dial first; the same policy,
 *     refusals answered with RST. Link-local destinations (169.254/16) are
 *     refused for UDP, TCP and ping (RFC 3927 §2.7: not forwarded; routed,
 *     169.254.169.254 would be a cloud host's own metadata service). TCP to
 *     the DNS address, port 80, is the cloud-init seed service while it
 *     holds a seed (services/metadata).
 *
 * Frames are composed into one scratch buffer and handed to the port, which
 * copies them (StreamPort.sendFrame), so the scratch is reused at once.
 */
import * as eth from '../wire/ethernet.js';
import * as arp from '../wire/arp.js';
import * as ipv4 from '../wire/ipv4.js';
import * as icmp from '../wire/icmpv4.js';
import * as udp from '../wire/udp.js';
import * as dhcp from '../wire/dhcpv4.js';
import * as tcp from '../wire/tcp.js';
import * as ipv6 from '../wire/ipv6.js';
import { releaseSimdBuffer, simdBuffer } from '../wire/checksum.js';
import { TcpBudget } from '../tcp/budget.js';
import { tcpConfig } from '../tcp/conn.js';
import type { SendBuffer } from '../tcp/send-buffer.js';
import { TcpNat, type TcpNatLimits, type TcpRoute } from '../services/tcp-nat/nat.js';
import type { HostStream, HostStreamEvents } from '../services/tcp-nat/host-stream.js';
import { dnsStream } from '../services/tcp-nat/dns-stream.js';
import type { SeedRequester } from '../services/metadata/seed-http.js';
import { BROADCAST_MAC, formatIp4, formatIp6, formatMac, inSubnet, isBadSourceMac, isLinkLocal4, parseMac, type Ip4 } from '../wire/addr.js';
import { DhcpServer, LeaseState, type Lease } from '../services/dhcp-server.js';
import type { DnsService } from '../services/dns/server.js';
import { UdpNat, type HostUdp, type UdpFlowKey, type UdpRoute } from '../services/udp-nat/nat.js';
import type { GatewayConfig } from './config.js';
import { GatewayCounters, type DropReason, type GatewaySnapshot } from './counters.js';
import { FrameBuilder, UDP_OVERHEAD } from './frames.js';
import { Reassembler } from './ip-reassembly.js';
import { GuestWatch } from './guest-watch.js';
import { Neighbors, USE_OK, USE_TAKEN, type NeighborLimits } from './neighbors.js';
import { GatewayPing, type GatewayPingDeps } from './ping.js';
import { Gateway6 } from './gateway6.js';
import { isV6, type AddrId } from '../services/nat-addr.js';

/** Where the gateway sends a guest's frames: a StreamPort in production. */
export interface FramePort {
  /**
   * Sends one Ethernet frame; the bytes are copied before this returns.
   * Returning `false` means the port is congested (or closed): the TCP NAT then
   * holds new data back until `Gateway.linkDrained` (StreamPort's 'drain').
   */
  sendFrame(buf: Uint8Array, off: number, len: number): unknown;
  /**
   * Optional in-place sending (StreamPort): reserve room for a frame, build it
   * at `frameBuffer()[frameOffset()]`, then `commitFrame(len)` (same return
   * value as sendFrame). Saves copying each TCP segment once more.
   * @param dstMac the frame's destination MAC: a switch port (segment.ts)
   *   uses it to build the frame straight into that guest's port; a
   *   StreamPort does not need it
   */
  reserveFrame?(maxLen: number, dstMac?: Uint8Array): boolean;
  frameBuffer?(): Uint8Array;
  frameView?(): DataView;
  frameOffset?(): number;
  commitFrame?(len: number): unknown;
}

/** Optional frame tap (pcap). */
export interface FrameTap {
  record(buf: Uint8Array, off: number, len: number, timeMs: number): void;
}

export interface GatewayDeps {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds, for pcap timestamps. */
  wallNow?(): number;
  hostUdp: HostUdp;
  dns: DnsService;
  tap?: FrameTap | null;
  /** Dials a host TCP destination for the TCP NAT. */
  dialTcp(host: string, port: number, timeoutMs: number, ev: HostStreamEvents): HostStream;
  /** Asks for runTimers() to be called at `at` (ms on the now() clock). */
  schedule(at: number): void;
  /** Random 32-bit numbers (TCP initial sequence numbers). */
  random32(): number;
  /** TCP NAT limits (per-guest flow cap, dials in flight). */
  tcpLimits?: Partial<TcpNatLimits>;
  /** Offered every guest UDP datagram before NAT (port-forward replies); true = taken. */
  forwardedUdp?(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array): boolean;
  /** Bounds of the neighbour table (addresses and MACs per link, ageing). */
  neighborLimits?: Partial<NeighborLimits>;
  /** The host's own IPv4 addresses, refused when config.hostAccess is false (host-addresses.ts). */
  hostAddresses?(): ReadonlySet<Ip4>;
  /**
   * The cloud-init seed service (services/metadata/seed-http.ts), answered at
   * the DNS address, port 80, while it holds a seed (`active`); TCP there is
   * refused otherwise, as before.
   */
  seeds?: { active(): boolean; stream(ev: HostStreamEvents, requester: SeedRequester): HostStream };
  /** The host's own IPv6 addresses (RFC 5952 text), refused likewise. */
  hostAddresses6?(): ReadonlySet<string>;
  /** Ping to the outside (ping.ts); without it, echo requests to the outside are dropped as icmp-unsupported. */
  ping?: GatewayPingDeps;
}

/** One guest connection. */
export interface Session {
  readonly id: number;
  readonly port: FramePort;
  closed: boolean;
}

const PROTO_ICMP = ipv4.PROTO_ICMP;
const PROTO_UDP = ipv4.PROTO_UDP;
const PROTO_TCP = ipv4.PROTO_TCP;
const DNS_PORT = 53;
/** The cloud-init seed service's port at the DNS address (services/metadata). */
export const SEED_PORT = 80;

export class Gateway {
  readonly counters = new GatewayCounters();
  readonly dhcp: DhcpServer;
  readonly udpNat: UdpNat;
  readonly reassembler = new Reassembler();
  readonly tcpNat: TcpNat;
  /** First frame and lease times of the MACs a launcher watches (`vmnet wait --ssh`). */
  readonly watch = new GuestWatch();
  readonly ping: GatewayPing | null;
  /** The IPv6 side, null with --no-ipv6. */
  readonly v6: Gateway6 | null;
  private readonly neighbors: Neighbors<Session>;
  private readonly sessions = new Set<Session>();
  private nextSessionId = 1;
  // Scratch space for outgoing frames (MTU + Ethernet header + slack) and parse state.
  private readonly out: Uint8Array;
  private readonly outView: DataView;
  private readonly frames: FrameBuilder;
  private readonly ethH = eth.blank();
  private readonly arpH = arp.blank();
  private readonly ipH = ipv4.blank();
  private readonly icmpH = icmp.blank();
  private readonly udpH = udp.blank();
  private readonly tcpH = tcp.blank();
  private readonly ipOut = ipv4.blank();
  private readonly ethOut = eth.blank();
  private readonly dhcpMsg = dhcp.blank();
  private lastView: DataView | null = null;
  private lastBytes: Uint8Array = new Uint8Array(0);
  private readonly fragBuf: Uint8Array;
  private readonly fragView: DataView;
  private readonly quote = new Uint8Array(ipv4.HEADER_LEN + udp.HEADER_LEN);
  private readonly quoteView = new DataView(this.quote.buffer);
  /**
   * The clock as of the last sweep, for the neighbour table on the data path:
   * its ages are minutes, and reading the clock per frame cost more than the
   * table itself (performance.now() ~50 ns).
   */
  private tick: number;

  constructor(
    readonly config: GatewayConfig,
    private readonly deps: GatewayDeps,
  ) {
    // Room for a whole IPv4 datagram: replies larger than the MTU (a big ping, a
    // large UDP answer) are built whole, then sent as fragments (fragmentOut).
    // In the wasm kernel's memory, so outgoing checksums are summed in place (wire/checksum.ts).
    this.out = simdBuffer(eth.HEADER_LEN + 65535 + 64);
    this.outView = new DataView(this.out.buffer, this.out.byteOffset, this.out.byteLength);
    this.fragBuf = new Uint8Array(config.mtu + eth.HEADER_LEN + 64);
    this.fragView = new DataView(this.fragBuf.buffer, this.fragBuf.byteOffset, this.fragBuf.byteLength);
    this.frames = new FrameBuilder(config.gatewayMac);
    this.tick = deps.now();
    this.neighbors = new Neighbors<Session>((ip) => this.dhcp.linkOf(ip), deps.neighborLimits, (ip) => this.addressReleased(ip));
    this.dhcp = new DhcpServer({
      serverIp: config.gatewayIp,
      subnet: config.subnet,
      router: config.gatewayIp,
      dns: [config.dnsIp],
      poolStart: config.dhcpStart,
      poolEnd: config.dhcpEnd,
      leaseTime: config.leaseTime,
      mtu: config.mtu,
      domain: config.domain,
      searchList: [config.domain],
      reserved: [config.gatewayIp, config.dnsIp],
      maxLeasesPerLink: config.dhcpLeasesPerLink,
      addressInUse: (ip, link) => (this.neighbors.holder(ip, deps.now())?.id ?? link) !== link,
      macInUse: (mac, link) => (this.neighbors.macHolder(mac)?.id ?? link) !== link,
    }, deps.now);
    this.udpNat = new UdpNat({
      host: deps.hostUdp,
      now: deps.now,
      idleMs: config.udpIdleMs,
      route: (dstIp, dstPort) => this.routeUdp(dstIp, dstPort),
      events: {
        toGuest: (guestIp, guestPort, srcIp, srcPort, data) => this.udpToGuest(guestIp, guestPort, srcIp, srcPort, data),
        unreachable: (flow, kind) => this.flowUnreachable(flow, kind),
      },
    });
    // Buffers sized to the link: enough segments in flight to fill a fast path
    // (measured in bench/: 256 KiB held only 4 frames at MTU 65520). They are
    // allocated lazily and freed when idle, so idle connections stay small.
    // One budget for all of them, with a share per guest (tcp/budget.ts: 256 MiB, 64 MiB a guest).
    const bufMax = config.mtu > 9000 ? 4 * 1024 * 1024 : 1024 * 1024;
    // ackBatch: the NAT acknowledges each batch of guest segments (one read from the link) with one ACK.
    const cfg = tcpConfig({ mtu: config.mtu, sndBufMax: bufMax, rcvBufMax: bufMax, cc: config.tcpCc, budget: new TcpBudget(), ackBatch: true });
    // IPv6's header is 20 bytes longer: its connections advertise an MSS 20 smaller (same budget).
    const cfg6 = { ...cfg, mtu: config.mtu - (ipv6.HEADER_LEN - ipv4.HEADER_LEN) };
    this.tcpNat = new TcpNat(
      cfg,
      {
        now: deps.now,
        random32: deps.random32,
        transmit: (guestIp, remoteIp, h, data, dataOffset) => this.tcpToGuest(guestIp, remoteIp, h, data, dataOffset),
        route: (dstIp, dstPort) => this.routeTcp(dstIp, dstPort),
        dial: deps.dialTcp,
        local: (service, ev, guest, guestIp, account) => (service === 'dns' ? dnsStream(deps.dns, ev, guest, account) : deps.seeds!.stream(ev, this.seedRequester(guest, guestIp))),
        schedule: deps.schedule,
        guestOf: (guestIp) => this.neighborOf(guestIp)?.link.id ?? 0,
        configOf: (guestIp) => (isV6(guestIp) ? cfg6 : cfg),
      },
      deps.tcpLimits,
    );
    const toGuest = (ip: Ip4, build: (out: DataView, mac: Uint8Array, frames: FrameBuilder) => number): void => {
      const n = this.neighbors.get(ip);
      if (!n || n.link.closed) return this.drop('not-for-us');
      this.send(n.link, build(this.outView, n.mac, this.frames));
    };
    this.v6 = config.ipv6
      ? new Gateway6(config.ipv6, {
          config,
          now: deps.now,
          out: this.out,
          outView: this.outView,
          send: (s, len) => this.send(s, len),
          sendBuf: (s, buf, len) => this.sendBuf(s, buf, len),
          drop: (r) => this.drop(r),
          refuseSource: (verdict) => this.refuseSource(verdict),
          bytesOf: (v) => this.bytesOf(v),
          tcpNat: this.tcpNat,
          udpNat: this.udpNat,
          queryDns: (s, query, overhead, reply) => this.queryDns(s, query, overhead, reply),
          neighborLimits: deps.neighborLimits,
          pingRelay: () => this.ping?.relay ?? null,
          hostAddresses6: deps.hostAddresses6,
          reassemble6: (v, o, c, s) => this.reassembly(() => this.reassembler.push6(v, o, c, deps.now(), s.id)),
        })
      : null;
    const v6 = this.v6;
    const family6 = v6 ? { reply: v6.reply.bind(v6), error: v6.error6.bind(v6) } : undefined;
    this.ping = deps.ping ? new GatewayPing(config, { now: deps.now, prohibited: (ip) => this.prohibited(ip), toGuest, drop: (r) => this.drop(r), family6 }, deps.ping) : null;
  }

  /** Attaches a guest connection. */
  attach(port: FramePort): Session {
    const s: Session = { id: this.nextSessionId++, port, closed: false };
    this.sessions.add(s);
    return s;
  }

  /**
   * Detaches a guest connection: the addresses and MACs it held are free at
   * once and its UDP flows are closed (whoever takes an address next gets
   * none of its replies); its DHCP leases stay, owned by no link (the same
   * guest on a new connection gets them back).
   */
  detach(s: Session): void {
    s.closed = true;
    this.sessions.delete(s);
    const addresses: AddrId[] = this.neighbors.detach(s);
    if (this.v6) addresses.push(...this.v6.detach(s));
    for (const ip of addresses) this.tcpNat.linkDrained(ip); // no congestion outlives its link
    this.udpNat.closeGuest(s.id);
    this.ping?.relay.closeGuest(s.id);
    this.tcpNat.closeGuest(s.id, addresses);
    this.dhcp.linkClosed(s.id);
  }

  /**
   * An address left its link while the link stays open (another link took
   * it, or its own recycled it): the old holder's TCP connections on it are
   * reset and its UDP flows closed, so none of them follows the address to
   * its next holder (who could otherwise read and speak in them).
   */
  private addressReleased(ip: Ip4): void {
    this.tcpNat.closeAddress(ip); // (the resets it sends the old holder may find its link congested:)
    this.tcpNat.linkDrained(ip); // no congestion outlives the address's holder
    this.udpNat.closeAddress(ip);
    this.ping?.closeAddress(ip);
  }

  /** The guest connection's port drained after reporting congestion: TCP sends again. */
  linkDrained(s: Session): void {
    for (const ip of this.neighbors.addressesOf(s)) this.tcpNat.linkDrained(ip);
    if (this.v6) for (const id of this.v6.neighbors.addressesOf(s)) this.tcpNat.linkDrained(id);
  }

  /** The neighbour entry of an address of either family. */
  private neighborOf(ip: AddrId) {
    return isV6(ip) ? this.v6?.neighbor(ip) : this.neighbors.get(ip);
  }

  /** Open guest connections. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** DHCP leases handed out. */
  leases(): Lease[] {
    return this.dhcp.leases();
  }

  /** Periodic housekeeping (call it every second): UDP flow expiry, fragment timeouts, forgotten DHCP clients, the neighbour table's clock. */
  sweep(): void {
    const now = this.deps.now();
    this.tick = now;
    this.udpNat.sweep(now);
    this.ping?.relay.sweep(now);
    this.dhcp.sweep(now);
    this.reassembly(() => this.reassembler.expire(now));
    this.v6?.sweep(now, this.sessions);
  }

  /** Runs a reassembler call, counting what it dropped as `fragment`. */
  private reassembly<T>(call: () => T): T {
    const before = this.reassembler.dropped;
    const r = call();
    this.counters.drops.fragment += this.reassembler.dropped - before;
    return r;
  }

  /** Closes host sockets. */
  close(): void {
    this.udpNat.closeAll();
    this.ping?.relay.closeAll();
    for (const s of [...this.sessions]) this.detach(s);
    releaseSimdBuffer(this.out); // scratch only: nothing in it outlives a call
  }

  /**
   * The bytes behind a frame's view. Ports hand over the same read buffer (and
   * view) for every frame of a read, so the array is made once per buffer, not
   * once per TCP segment.
   */
  private bytesOf(v: DataView): Uint8Array {
    if (v !== this.lastView) {
      this.lastView = v;
      this.lastBytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    }
    return this.lastBytes;
  }

  private drop(reason: DropReason): void {
    this.counters.drops[reason]++;
  }

  /** @returns false when the port reported congestion */
  private send(s: Session, len: number): boolean {
    if (s.closed) return true;
    if (len - eth.HEADER_LEN > this.config.mtu && this.outView.getUint16(12) === eth.ETHERTYPE_IPV4 && ipv4.proto(this.outView, eth.HEADER_LEN) !== PROTO_TCP) {
      this.fragmentOut(s, len);
      return true;
    }
    return this.sendBuf(s, this.out, len);
  }

  /**
   * Sends the IPv4 datagram in `out` (longer than the MTU) as fragments
   * (RFC 791 §3.2 "Fragmentation"): each carries a copy of the 20-byte header
   * with its offset, MF and checksum set, and a multiple of 8 payload bytes.
   */
  private fragmentOut(s: Session, len: number): void {
    const hl = eth.HEADER_LEN + ipv4.HEADER_LEN;
    const payload = len - hl;
    const step = (this.config.mtu - ipv4.HEADER_LEN) & ~7;
    const v = this.fragView;
    for (let off = 0; off < payload; off += step) {
      const n = Math.min(step, payload - off);
      this.fragBuf.set(this.out.subarray(0, hl), 0);
      this.fragBuf.set(this.out.subarray(hl + off, hl + off + n), hl);
      v.setUint16(eth.HEADER_LEN + ipv4.TOTAL_LENGTH, ipv4.HEADER_LEN + n);
      v.setUint16(eth.HEADER_LEN + ipv4.FLAGS_FRAG, ((off + n < payload ? ipv4.FLAG_MF : 0) << 13) | (off >>> 3));
      ipv4.fillChecksum(v, eth.HEADER_LEN, ipv4.HEADER_LEN);
      this.sendBuf(s, this.fragBuf, hl + n);
    }
  }

  private sendBuf(s: Session, buf: Uint8Array, len: number): boolean {
    if (s.closed) return true;
    this.noteOut(buf, 0, len);
    return s.port.sendFrame(buf, 0, len) !== false;
  }

  /** Counts (and taps) a frame on its way out. */
  private noteOut(buf: Uint8Array, off: number, len: number): void {
    this.counters.framesOut++;
    this.counters.bytesOut += len;
    this.deps.tap?.record(buf, off, len, this.deps.wallNow?.() ?? Date.now());
  }

  /**
   * Handles one frame from a guest. Never throws on bad input: every
   * rejection is a counted drop.
   * @param s the connection it came from
   * @param v a view over the buffer holding it
   * @param o its offset
   * @param len its length
   */
  handleFrame(s: Session, v: DataView, o: number, len: number): void {
    if (s.closed) return; // a late frame of a link already detached: it may claim nothing
    this.counters.framesIn++;
    this.counters.bytesIn += len;
    this.deps.tap?.record(this.bytesOf(v), o, len, this.deps.wallNow?.() ?? Date.now());
    const e = this.ethH;
    if (!eth.parse(v, o, len, e)) return this.drop('eth-short');
    if (len > this.config.mtu + eth.HEADER_LEN + (e.vlan >= 0 ? eth.VLAN_TAG_LEN : 0)) return this.drop('oversize');
    const group = (e.dst[0]! & 1) === 1;
    if (!group && !sameMac(e.dst, this.config.gatewayMac)) return this.drop('not-for-us');
    if (e.vlan >= 0) return this.drop('vlan-tagged');
    const arpFrame = e.ethertype === eth.ETHERTYPE_ARP;
    const ip6Frame = e.ethertype === eth.ETHERTYPE_IPV6;
    if (ip6Frame && this.v6 === null) return this.drop('ipv6');
    if (!arpFrame && !ip6Frame && e.ethertype !== eth.ETHERTYPE_IPV4) return this.drop('ethertype');
    const src = e.src;
    if (isBadSourceMac(src)) return this.drop('src-mac');
    const now = this.tick;
    const verdict = this.neighbors.useMac(s, src, 0, now);
    if (verdict !== USE_OK) return this.refuseSource(verdict);
    if (this.watch.waiting) this.watch.frame(src, this.deps.wallNow?.() ?? Date.now());
    if (arpFrame) return this.handleArp(s, v, e.payloadOffset, e.payloadLength, now);
    if (ip6Frame) return this.v6!.handlePacket(s, v, e.payloadOffset, e.payloadLength, group, src, now);
    return this.handleIpv4(s, v, e.payloadOffset, e.payloadLength, group, now);
  }

  private refuseSource(verdict: number): void {
    this.drop(verdict === USE_TAKEN ? 'src-taken' : 'src-limit');
  }

  private ownsAddress(ip: Ip4): boolean {
    return ip === this.config.gatewayIp || ip === this.config.dnsIp;
  }

  /** A guest address a link may hold: in the subnet, not 0, the broadcast or the gateway's own. */
  private guestAddress(ip: Ip4): boolean {
    return ip !== 0 && inSubnet(ip, this.config.subnet.net, this.config.subnet.prefix) && ip !== this.config.broadcast && !this.ownsAddress(ip);
  }

  private handleArp(s: Session, v: DataView, o: number, len: number, now: number): void {
    const a = this.arpH;
    if (!arp.parse(v, o, len, a)) return this.drop('arp-invalid');
    // The sender's address must be the link's own (an ARP for another link's address is ignored, not answered).
    if (this.guestAddress(a.spa)) {
      const verdict = this.neighbors.useIp(s, a.spa, this.ethH.src, 0, now);
      if (verdict !== USE_OK) return this.refuseSource(verdict);
    }
    if (a.op !== arp.OP_REQUEST || !this.ownsAddress(a.tpa)) return;
    const r = arp.blank();
    r.op = arp.OP_REPLY;
    r.sha.set(this.config.gatewayMac);
    r.spa = a.tpa;
    r.tha.set(a.sha);
    r.tpa = a.spa;
    const e = eth.blank();
    e.dst.set(a.sha);
    e.src.set(this.config.gatewayMac);
    e.ethertype = eth.ETHERTYPE_ARP;
    let n = eth.emit(e, this.outView, 0);
    n += arp.emit(r, this.outView, n);
    this.send(s, n);
  }

  private handleIpv4(s: Session, v: DataView, o: number, len: number, group: boolean, now: number): void {
    let h = this.ipH;
    if (!ipv4.parse(v, o, len, h)) return this.drop('ipv4-invalid');
    const srcMac = this.ethH.src;
    const c = this.config;
    if (h.src !== 0) {
      if (!this.guestAddress(h.src)) return this.drop('ipv4-src');
      const verdict = this.neighbors.useIp(s, h.src, srcMac, 0, now);
      if (verdict !== USE_OK) return this.refuseSource(verdict);
    }
    if (ipv4.isFragment(h)) {
      const whole = this.reassembly(() => this.reassembler.push(h, v, this.deps.now(), s.id));
      if (!whole) return;
      v = whole.view;
      o = 0;
      len = whole.len;
      h = ipv4.blank();
      if (!ipv4.parse(v, o, len, h)) return this.drop('fragment');
    }
    const toUs = this.ownsAddress(h.dst);
    const broadcast = group || h.dst === 0xffffffff || h.dst === c.broadcast;
    if (h.src === 0 && !(h.proto === PROTO_UDP && broadcastOrUs(h.dst, c.gatewayIp, c.broadcast))) return this.drop('ipv4-src');
    if (!toUs && !broadcast && h.ttl <= 1) {
      this.drop('ttl-expired');
      return this.icmpErrorTo(s, srcMac, h.src, icmp.TYPE_TIME_EXCEEDED, icmp.CODE_TTL_EXCEEDED, v, o, len);
    }
    switch (h.proto) {
      case PROTO_UDP:
        return this.handleUdp(s, srcMac, h, v, o, broadcast);
      case PROTO_ICMP:
        return this.handleIcmp(s, srcMac, h, v, o, toUs, broadcast);
      case PROTO_TCP:
        if (broadcast || h.src === 0) return this.drop('tcp-invalid');
        return this.handleTcp(h, v);
      default:
        this.drop('proto-unsupported');
        if (toUs) this.icmpErrorTo(s, srcMac, h.src, icmp.TYPE_DEST_UNREACH, icmp.CODE_PROTO_UNREACH, v, o, len);
    }
  }

  private handleTcp(h: ipv4.Header, v: DataView): void {
    const t = this.tcpH;
    if (!tcp.parse(v, h.payloadOffset, h.payloadLength, t) || !tcp.verify4(v, h.payloadOffset, h.payloadLength, h.src, h.dst)) return this.drop('tcp-invalid');
    this.tcpNat.fromGuest(h.src, h.dst, t, this.bytesOf(v));
  }

  /**
   * Destinations refused as administratively prohibited by TCP, UDP and
   * ping alike: with --no-host an address of the host itself (its
   * interfaces, 127/8, the gateway address); always link-local 169.254/16,
   * which is not routed (RFC 3927 §2.7).
   */
  private prohibited(dstIp: Ip4): boolean {
    const c = this.config;
    if (isLinkLocal4(dstIp)) return true;
    return !c.hostAccess && (dstIp === c.gatewayIp || dstIp >>> 24 === 127 || this.deps.hostAddresses?.().has(dstIp) === true);
  }

  private routeTcp(dstIp: Ip4, dstPort: number): TcpRoute {
    if (isV6(dstIp)) return this.v6?.routeTcp(dstIp, dstPort) ?? { drop: true };
    const c = this.config;
    if (dstIp === c.dnsIp) return dstPort === DNS_PORT ? { local: 'dns' } : dstPort === SEED_PORT && this.deps.seeds?.active() ? { local: 'seed' } : { refuse: true };
    if (dstPort === 0) return { drop: true };
    if (c.isolated || this.prohibited(dstIp)) return { refuse: true };
    if (dstIp === c.gatewayIp) return c.hostLoopback ? { host: '127.0.0.1', port: dstPort } : { refuse: true };
    if (inSubnet(dstIp, c.subnet.net, c.subnet.prefix)) return { drop: true };
    const first = dstIp >>> 24;
    if (first === 0 || first === 127 || first >= 224) return { drop: true };
    return { host: formatIp4(dstIp), port: dstPort };
  }

  /**
   * Who asks for a seed: the guest's link, and whether it holds a MAC — the
   * link holds the MAC (neighbors.ts: one link per MAC) and the address the
   * connection came from is used with it. Asked at each request, so a link
   * that lost the address or the MAC since the SYN gets nothing.
   */
  private seedRequester(guest: number, guestIp: Ip4): SeedRequester {
    return {
      guest,
      owns: (mac) => {
        const n = this.neighbors.get(guestIp);
        const m = parseMac(mac);
        return n !== undefined && m !== null && !n.link.closed && n.link.id === guest && sameMac(n.mac, m) && this.neighbors.macHolder(m) === n.link;
      },
    };
  }

  /**
   * Builds and sends one TCP segment to a guest (Ethernet + IPv4 + TCP + payload).
   * @returns false when the guest's port is congested
   */
  private tcpToGuest(guestIp: AddrId, remoteIp: AddrId, h: tcp.Header, data: SendBuffer | null, dataOffset: number): boolean {
    const v6 = isV6(guestIp) ? this.v6 : null;
    const n = this.neighborOf(guestIp);
    if (!n || n.link.closed) {
      this.drop('not-for-us');
      return true;
    }
    const tlen = tcp.length(h) + h.payloadLength;
    const ipLen = v6 ? ipv6.HEADER_LEN : ipv4.HEADER_LEN;
    if (ipLen + tlen > this.config.mtu) {
      this.drop('oversize');
      return true;
    }
    // Built straight into the port's output when it allows (no copy), else in `out`.
    const port = n.link.port;
    const inPlace = port.reserveFrame?.(eth.HEADER_LEN + ipLen + tlen, n.mac) === true;
    const buf = inPlace ? port.frameBuffer!() : this.out;
    const v = inPlace ? port.frameView!() : this.outView;
    const base = inPlace ? port.frameOffset!() : 0;
    const e = this.ethOut;
    e.dst.set(n.mac);
    e.src.set(this.config.gatewayMac);
    e.vlan = -1;
    e.ethertype = v6 ? eth.ETHERTYPE_IPV6 : eth.ETHERTYPE_IPV4;
    let p = base + eth.emit(e, v, base);
    if (v6) p = v6.tcpHeader(v, p, guestIp, remoteIp, tlen);
    else p = this.tcpIpv4Header(v, p, guestIp, remoteIp, tlen);
    const tcpStart = p;
    p += tcp.emit(h, v, p);
    if (data && h.payloadLength > 0) {
      data.copyOut(dataOffset, h.payloadLength, buf, p);
      p += h.payloadLength;
    }
    if (v6) v6.tcpChecksum(v, tcpStart, tlen);
    else tcp.fillChecksum4(v, tcpStart, tlen, remoteIp, guestIp);
    if (!inPlace) return this.send(n.link, p);
    this.noteOut(buf, base, p - base);
    return port.commitFrame!(p - base) !== false;
  }

  /** Writes the IPv4 header of a TCP segment to a guest at `p`; returns the offset after it. */
  private tcpIpv4Header(v: DataView, p: number, guestIp: Ip4, remoteIp: Ip4, tlen: number): number {
    const ip = this.ipOut;
    ip.tos = 0;
    ip.totalLength = ipv4.HEADER_LEN + tlen;
    ip.id = 0;
    ip.flags = ipv4.FLAG_DF;
    ip.fragOffset = 0;
    ip.ttl = 64;
    ip.proto = PROTO_TCP;
    ip.src = remoteIp;
    ip.dst = guestIp;
    return p + ipv4.emit(ip, v, p);
  }

  private handleIcmp(s: Session, srcMac: Uint8Array, h: ipv4.Header, v: DataView, ipOff: number, toUs: boolean, broadcast: boolean): void {
    const m = this.icmpH;
    if (!icmp.parse(v, h.payloadOffset, h.payloadLength, m)) return this.drop('icmp-invalid');
    if (m.type !== icmp.TYPE_ECHO_REQUEST || (!toUs && (this.ping === null || m.code !== 0))) return this.drop('icmp-unsupported');
    if (!toUs) return this.ping!.fromGuest(s.id, h, v, ipOff, broadcast);
    const n = this.frames.echoReply(this.outView, 0, srcMac, h.dst, h.src, m.id, m.seq, v, m.payloadOffset, m.payloadLength);
    this.send(s, n);
  }

  private handleUdp(s: Session, srcMac: Uint8Array, h: ipv4.Header, v: DataView, ipOff: number, broadcast: boolean): void {
    const u = this.udpH;
    if (!udp.parse(v, h.payloadOffset, h.payloadLength, u) || !udp.verify4(v, h.payloadOffset, u.length, h.src, h.dst)) return this.drop('udp-invalid');
    const c = this.config;
    if (u.dstPort === dhcp.SERVER_PORT && broadcastOrUs(h.dst, c.gatewayIp, c.broadcast)) return this.handleDhcp(s, v, u.payloadOffset, u.payloadLength);
    if (broadcast) return this.drop('udp-broadcast');
    if (h.src === 0) return this.drop('ipv4-src');
    const payload = new Uint8Array(v.buffer, v.byteOffset + u.payloadOffset, u.payloadLength);
    if (h.dst === c.dnsIp && u.dstPort === DNS_PORT) {
      const [mac, guestIp, guestPort] = [srcMac.slice(0, 6), h.src, u.srcPort];
      return this.queryDns(s, payload, UDP_OVERHEAD, (answer) => this.send(s, this.frames.udp(this.outView, 0, mac, c.dnsIp, DNS_PORT, guestIp, guestPort, answer)));
    }
    if (this.deps.forwardedUdp?.(h.src, u.srcPort, h.dst, u.dstPort, payload)) return;
    const r = this.udpNat.fromGuest(h.src, u.srcPort, h.dst, u.dstPort, payload, this.deps.now(), s.id);
    if (r === 'sent') return;
    this.drop('udp-refused');
    if (r === 'drop') return;
    const code = r === 'admin-prohibited' ? icmp.CODE_ADMIN_PROHIBITED : icmp.CODE_PORT_UNREACH;
    this.icmpErrorTo(s, srcMac, h.src, icmp.TYPE_DEST_UNREACH, code, v, ipOff, h.totalLength);
  }

  private handleDhcp(s: Session, v: DataView, o: number, len: number): void {
    const m = this.dhcpMsg;
    if (!dhcp.parse(v, o, len, m) || m.op !== dhcp.BOOTREQUEST) return this.drop('dhcp-invalid');
    const now = this.deps.now();
    const reply = this.dhcp.handle(m, now, s.id);
    if (!reply) return;
    // A bound lease makes the address the link's at once (port forwards need it before the guest sends anything).
    if (reply.msg.messageType === dhcp.ACK && reply.msg.yiaddr !== 0) {
      this.neighbors.lease(s, reply.msg.yiaddr, m.chaddr, now);
      this.watch.lease(m.chaddr, reply.msg.yiaddr, this.deps.wallNow?.() ?? Date.now());
    }
    const size = dhcp.length(reply.msg);
    const payload = new Uint8Array(size);
    dhcp.emit(reply.msg, new DataView(payload.buffer), 0);
    const dstMac = reply.broadcast ? BROADCAST_MAC : reply.dstMac;
    if (!dstMac) return this.drop('dhcp-invalid'); // relayed requests: no relay agents on a vmnet link
    const n = this.frames.udp(this.outView, 0, dstMac, this.config.gatewayIp, dhcp.SERVER_PORT, reply.dstIp, reply.dstPort, payload);
    this.send(s, n);
  }

  /**
   * Asks the DNS service a guest's UDP query (a copy of it) and hands the
   * answer to `reply` (which builds and sends it) while the link is open;
   * drops counted. Both families' DNS addresses use it.
   * @param overhead the answer's frame headers (it must fit the output)
   */
  private queryDns(s: Session, query: Uint8Array, overhead: number, reply: (answer: Uint8Array) => void): void {
    this.deps.dns.query(query.slice(), 'udp', s.id).then(
      (answer) => {
        if (!answer) return this.drop('dns-dropped');
        if (s.closed) return;
        if (answer.length + overhead > this.out.length) return this.drop('udp-too-big');
        reply(answer);
      },
      () => this.drop('dns-dropped'),
    );
  }

  private routeUdp(dstIp: Ip4, dstPort: number): UdpRoute {
    if (isV6(dstIp)) return this.v6?.routeUdp(dstIp, dstPort) ?? { refuse: 'drop' };
    const c = this.config;
    if (c.isolated) return { refuse: 'admin-prohibited' };
    if (dstPort === 0) return { refuse: 'drop' };
    if (this.prohibited(dstIp)) return { refuse: 'admin-prohibited' };
    if (dstIp === c.gatewayIp) return c.hostLoopback ? { host: '127.0.0.1', port: dstPort } : { refuse: 'port-unreachable' };
    if (dstIp === c.dnsIp) return { refuse: 'port-unreachable' };
    if (inSubnet(dstIp, c.subnet.net, c.subnet.prefix)) return { refuse: 'drop' };
    const first = dstIp >>> 24;
    if (first === 0 || first === 127 || first >= 224) return { refuse: 'drop' };
    return { host: formatIp4(dstIp), port: dstPort };
  }

  /**
   * The guest port forwards without a named guest go to: the address of the
   * link that owns the gateway, the open link that got its first address
   * earliest (kept until it closes: a guest that joins later and sends a
   * frame takes nothing over), its last DHCP lease while it holds it, else
   * the first address it used. Null before any link has an address.
   */
  primaryGuest(): Ip4 | null {
    return this.neighbors.ownerAddress();
  }

  /** The global IPv6 addresses of the link holding an IPv4 address (AAAA for its names). */
  addresses6Of(ip: Ip4): string[] {
    const n = this.neighbors.get(ip);
    return n === undefined || this.v6 === null ? [] : this.v6.globalAddressesOf(n.link);
  }

  /**
   * The address of the guest using a MAC: its bound DHCP lease, else the
   * last address the link holding that MAC used with it; null when neither.
   * @param mac "52:54:00:12:34:56"
   */
  addressOf(mac: string): Ip4 | null {
    const lease = this.dhcp.leaseFor(mac);
    if (lease !== null && lease.state === LeaseState.BOUND) return lease.ip;
    const m = parseMac(mac);
    const link = m === null ? null : this.neighbors.macHolder(m);
    let ip: Ip4 | null = null;
    if (link !== null) for (const n of this.neighbors.list()) if (n.link === link && sameMac(n.mac, m!)) ip = n.ip;
    return ip;
  }

  /** Sends a UDP datagram to a guest from (srcIp, srcPort): UDP NAT replies and UDP port forwards. */
  udpToGuest(guestIp: Ip4, guestPort: number, srcIp: Ip4, srcPort: number, data: Uint8Array): void {
    if (isV6(guestIp)) return this.v6?.udpToGuest(guestIp, guestPort, srcIp, srcPort, data);
    const n = this.neighbors.get(guestIp);
    if (!n || n.link.closed) return this.drop('not-for-us');
    if (data.length + UDP_OVERHEAD > this.out.length) return this.drop('udp-too-big');
    const len = this.frames.udp(this.outView, 0, n.mac, srcIp, srcPort, guestIp, guestPort, data);
    this.send(n.link, len);
  }

  private flowUnreachable(f: UdpFlowKey, kind: 'port-unreachable' | 'admin-prohibited'): void {
    if (isV6(f.guestIp)) return this.v6?.flowUnreachable(f, kind);
    const n = this.neighbors.get(f.guestIp);
    if (!n || n.link.closed) return;
    // Quote a reconstruction of the guest's datagram header: what the guest's stack matches on.
    const q = this.quoteView;
    const h = ipv4.blank();
    h.totalLength = this.quote.length;
    h.proto = PROTO_UDP;
    h.src = f.guestIp;
    h.dst = f.dstIp;
    ipv4.emit(h, q, 0);
    q.setUint16(20, f.guestPort);
    q.setUint16(22, f.dstPort);
    q.setUint16(24, udp.HEADER_LEN);
    q.setUint16(26, 0);
    const code = kind === 'admin-prohibited' ? icmp.CODE_ADMIN_PROHIBITED : icmp.CODE_PORT_UNREACH;
    this.icmpErrorTo(n.link, n.mac, f.guestIp, icmp.TYPE_DEST_UNREACH, code, q, 0, this.quote.length);
  }

  /** Sends an ICMP error about the datagram at (q, qo, qlen), from the gateway, unless RFC 1122 §3.2.2 forbids it. */
  private icmpErrorTo(s: Session, mac: Uint8Array, dst: Ip4, type: number, code: number, q: DataView, qo: number, qlen: number): void {
    // Never about an ICMP error, a non-first fragment, or a broadcast/multicast (RFC 1122 §3.2.2).
    const proto = ipv4.proto(q, qo);
    if (proto === PROTO_ICMP) {
      const hl = ipv4.headerLength(q, qo);
      if (qlen <= hl) return; // no ICMP type to look at: treat as an error message
      const t = q.getUint8(qo + hl);
      if (t !== icmp.TYPE_ECHO_REQUEST && t !== icmp.TYPE_ECHO_REPLY) return;
    }
    if ((q.getUint16(qo + 6) & 0x1fff) !== 0) return;
    if (dst === 0 || (mac[0]! & 1) === 1) return;
    const n = this.frames.icmpError(this.outView, 0, mac, this.config.gatewayIp, dst, type, code, q, qo, qlen);
    this.send(s, n);
  }

  /** A snapshot of state for status output. */
  snapshot(): GatewaySnapshot {
    const c = this.counters;
    const drops: Partial<Record<DropReason, number>> = {};
    for (const [k, n] of Object.entries(c.drops)) if (n) drops[k as DropReason] = n;
    return {
      framesIn: c.framesIn,
      bytesIn: c.bytesIn,
      framesOut: c.framesOut,
      bytesOut: c.bytesOut,
      dropped: c.dropped,
      drops,
      connections: this.sessions.size,
      udpFlows: this.udpNat.size,
      udp: { ...this.udpNat.counters },
      ping: this.ping ? { flows: this.ping.relay.size, ...this.ping.relay.counters } : null,
      fragmentsPending: this.reassembler.size,
      leases: this.dhcp.leases().map((l) => ({ mac: l.mac, ip: formatIp4(l.ip), hostname: l.hostname })),
      neighbors: this.neighbors.list().map((n) => ({ ip: formatIp4(n.ip), mac: formatMac(n.mac) })),
      neighbors6: this.v6?.neighbors.list().map((n) => ({ ip: formatIp6(this.v6!.address(n.ip) ?? new Uint8Array(16)), mac: formatMac(n.mac) })) ?? [],
    };
  }
}

export type { GatewaySnapshot };

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && a[4] === b[4] && a[5] === b[5];
}

function broadcastOrUs(dst: Ip4, us: Ip4, subnetBroadcast: Ip4): boolean {
  return dst === 0xffffffff || dst === us || dst === subnetBroadcast;
}
