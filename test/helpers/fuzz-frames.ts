/**
 * Theory of operation: a seeded generator of bad input for the gateway.
 *
 * Every frame starts life valid — built with the project's own codecs
 * (src/wire/*, via test/helpers/frames.ts where a builder fits) so its
 * lengths and checksums are right — and is then, most of the time, broken
 * on purpose:
 *
 *  - structure-aware: a chosen field is set to an interesting or random value
 *    (IHL, total length, flags/fragment offset, TTL, protocol, UDP length,
 *    TCP data offset and flags, DHCP op/htype/hlen/option lengths, DNS
 *    counts and compression pointers, ARP sizes and opcodes, ...);
 *  - blind: random byte flips, truncation, extension with random bytes,
 *    Ethernet addresses swapped for broadcast/multicast/foreign ones;
 *  - then, half the time, checksums are recomputed over whatever the
 *    header now claims ({@link fixChecksums}), so the corruption gets past
 *    the checksum gates and reaches the deeper parsers and services.
 *
 * Families: ARP; ICMP; UDP to the NAT (random destinations); DHCP; DNS; TCP
 * (SYNs, bogus flag sets, wild sequence numbers, window 0, malformed
 * options); IPv4 fragment trains (in order, shuffled, with holes, overlaps,
 * random and huge offsets, many ids at once); IPv6 (fuzz-frames6.ts: NDP,
 * router solicitations and advertisements, ICMPv6, DHCPv6, DNS, UDP, TCP
 * behind extension header chains); other link-layer traffic (802.1Q tags,
 * unknown EtherTypes, runts, frames just over the MTU);
 * IPv4 headers of any protocol with random fields; pure random bytes.
 *
 * Frames never exceed `maxFrame` (the gateway's stream limit: a longer
 * length prefix would close the connection, which the stream helpers here do
 * on purpose instead: {@link lyingPrefixStream}, {@link midFrameStream}).
 *
 * Identity: the gateway ties MACs and addresses to the connection (link)
 * that used them first, at most 8 of each per link (src/gateway/neighbors.ts).
 * So the fuzzer, like a guest, has a small identity of its own — 4 guest
 * MACs, the 4 DHCP client MACs and 4 static addresses (10.0.2.200-203) —
 * which {@link FrameFuzzer.identityFrames} announces first on each new
 * connection; most frames use it (and so reach the deep parsers), about 10 %
 * of guest sources are other subnet addresses and some MACs random ones
 * (spoofing, dropped and counted as src-limit or src-taken).
 *
 * DHCP pool safety: DISCOVER/REQUEST messages that would reach the DHCP
 * server with a client identity outside a small fixed set get a wrong UDP
 * checksum ({@link guardDhcpIdentity}), so fuzzing cannot starve the pool
 * the real guest needs afterwards (DHCP starvation by a hostile guest is
 * not what this test measures).
 *
 * Deterministic per seed: same seed, same frames.
 */
import * as eth from '../../src/wire/ethernet.js';
import * as arp from '../../src/wire/arp.js';
import * as ipv4 from '../../src/wire/ipv4.js';
import * as icmp from '../../src/wire/icmpv4.js';
import * as udp from '../../src/wire/udp.js';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { finish, pseudo4, sum } from '../../src/wire/checksum.js';
import type { Ip4, Mac } from '../../src/wire/addr.js';
import { Ipv6Fuzzer } from './fuzz-frames6.js';
import { DNS_IP, GW_IP, GW_MAC, dhcpMessage, dnsQuery, emitEth, ethFrame, icmpEcho, viewOf, xorshift32 } from './frames.js';

const BCAST_MAC: Mac = new Uint8Array([255, 255, 255, 255, 255, 255]);
const SUBNET = 0x0a000200; // 10.0.2.0/24
const SUBNET_BCAST = 0x0a0002ff;
const TCP_PROTO = 6;

/** A seeded PRNG with the helpers the generator needs. */
export class Rng {
  private readonly x: ReturnType<typeof xorshift32>;
  constructor(seed: number) {
    this.x = xorshift32(seed);
  }
  u32(): number {
    return this.x.next();
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return n <= 1 ? 0 : this.x.next() % n;
  }
  /** lo ..= hi */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.x.chance(p);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  /** A length skewed towards small values: most under 64, some up to `max`. */
  size(max: number): number {
    const r = this.int(100);
    if (r < 50) return this.int(Math.min(max, 64) + 1);
    if (r < 85) return this.int(Math.min(max, 512) + 1);
    return this.int(max + 1);
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const r = this.x.next();
      b[i] = r;
      if (i + 1 < n) b[i + 1] = r >>> 8;
      if (i + 2 < n) b[i + 2] = r >>> 16;
      if (i + 3 < n) b[i + 3] = r >>> 24;
    }
    return b;
  }
  /** Weighted choice over [weight, value] pairs. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of table) total += w;
    let r = this.int(total);
    for (const [w, v] of table) {
      if (r < w) return v;
      r -= w;
    }
    return table[table.length - 1]![1];
  }
}

/** MACs the fuzzer's DHCP clients use (locally administered, 02:f0:…). */
export const DHCP_CLIENT_MACS: readonly Mac[] = Array.from({ length: 4 }, (_, i) => new Uint8Array([0x02, 0xf0, 0x00, 0x00, 0x00, i + 1]));
/** The fuzzer's own static addresses (outside the part of the pool DHCP hands out first). */
export const FUZZ_STATIC_IPS: readonly Ip4[] = [200, 201, 202, 203].map((n) => (SUBNET + n) >>> 0);
/** Client identifiers (option 61) the fuzzer's DHCP clients use. */
export const DHCP_CLIENT_IDS: readonly Uint8Array[] = Array.from({ length: 4 }, (_, i) => new Uint8Array([1, 0x02, 0xf0, 0xc1, 0, 0, i + 1]));

export type FrameKind = 'arp' | 'icmp' | 'udp' | 'dhcp' | 'dns' | 'tcp' | 'fragment' | 'l2' | 'ip' | 'ipv6' | 'random';

export interface FuzzOptions {
  seed: number;
  /** Largest frame to produce (the gateway's stream maxFrame: MTU + 14 + 4). */
  maxFrame?: number;
  /** Link MTU of the gateway under test (default 1500). */
  mtu?: number;
}

export class FrameFuzzer {
  readonly rng: Rng;
  readonly maxFrame: number;
  readonly mtu: number;
  /** Frames produced per family. */
  readonly kinds: Record<FrameKind, number> = { arp: 0, icmp: 0, udp: 0, dhcp: 0, dns: 0, tcp: 0, fragment: 0, l2: 0, ip: 0, ipv6: 0, random: 0 };
  /** The IPv6 family (fuzz-frames6.ts). */
  readonly six: Ipv6Fuzzer;
  /** Frames that went through the blind mutator, and those whose checksums were then refreshed. */
  mutated = 0;
  refreshed = 0;
  /** DHCP messages disarmed by the pool guard. */
  dhcpGuarded = 0;
  private readonly queue: Uint8Array[] = [];
  /** Guest source MACs (a link may use 8: these 4 and the 4 DHCP client MACs). */
  private readonly guestMacs: Mac[];
  private readonly table: ReadonlyArray<readonly [number, () => Uint8Array | Uint8Array[]]>;

  constructor(opts: FuzzOptions) {
    this.rng = new Rng(opts.seed);
    this.mtu = opts.mtu ?? 1500;
    this.maxFrame = opts.maxFrame ?? this.mtu + eth.HEADER_LEN + eth.VLAN_TAG_LEN;
    this.guestMacs = Array.from({ length: 4 }, (_, i) => new Uint8Array([0x02, 0xfa, 0x22, 0x00, 0x00, i + 1]));
    this.table = [
      [10, () => this.tagged('arp', this.arp())],
      [11, () => this.tagged('icmp', this.icmp())],
      [8, () => this.tagged('udp', this.udpNat())],
      [10, () => this.tagged('dhcp', this.dhcp())],
      [11, () => this.tagged('dns', this.dns())],
      [14, () => this.tagged('tcp', this.tcp())],
      [3, () => this.fragments()],
      [8, () => this.tagged('l2', this.l2())],
      [8, () => this.tagged('ip', this.ipGarbage())],
      [12, () => {
        this.kinds.ipv6++;
        return this.six.next();
      }],
      [6, () => this.tagged('random', this.random())],
    ];
    this.six = new Ipv6Fuzzer(this.rng, this.guestMacs, this.maxFrame);
  }

  /** The next frame (possibly empty, never longer than maxFrame). */
  next(): Uint8Array {
    let f = this.queue.shift();
    if (f === undefined) {
      const made = this.rng.weighted(this.table)();
      if (Array.isArray(made)) {
        this.queue.push(...made);
        f = this.queue.shift() ?? new Uint8Array(0);
      } else f = made;
    }
    if (f.length > this.maxFrame) f = f.subarray(0, this.maxFrame);
    if (guardDhcpIdentity(f)) this.dhcpGuarded++;
    return f;
  }

  private tagged(kind: FrameKind, f: Uint8Array): Uint8Array {
    this.kinds[kind]++;
    const r = this.rng;
    if (kind === 'random' || !r.chance(0.55)) return f;
    this.mutated++;
    f = mutate(r, f, this.maxFrame);
    if (r.chance(0.5)) {
      this.refreshed++;
      fixChecksums(f);
    }
    return f;
  }

  // ------------------------------------------------------------ addresses

  /**
   * Frames that make the fuzzer's identity its connection's own before the
   * fuzzing starts: an ARP request from each guest MAC with one of the static
   * addresses, and an ARP probe (sender 0.0.0.0) from each DHCP client MAC.
   */
  identityFrames(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const macs = [...this.guestMacs, ...DHCP_CLIENT_MACS];
    macs.forEach((mac, i) => {
      const a = arp.blank();
      a.op = arp.OP_REQUEST;
      a.sha.set(mac);
      a.spa = i < this.guestMacs.length ? FUZZ_STATIC_IPS[i % FUZZ_STATIC_IPS.length]! : 0;
      a.tpa = GW_IP;
      const body = new Uint8Array(arp.HEADER_LEN);
      arp.emit(a, viewOf(body), 0);
      out.push(ethFrame(eth.ETHERTYPE_ARP, body, { dst: BCAST_MAC, src: mac }));
    });
    return out;
  }

  /** A guest source address: mostly the fuzzer's own, else any pool address (spoofed). */
  private guestIp(): Ip4 {
    return this.rng.chance(0.9) ? this.rng.pick(FUZZ_STATIC_IPS) : this.poolIp();
  }

  /** Any address of the DHCP pool below the fuzzer's static ones. */
  private poolIp(): Ip4 {
    return (SUBNET + this.rng.range(15, 199)) >>> 0;
  }

  private srcIp(): Ip4 {
    const r = this.rng;
    return r.weighted<() => Ip4>([
      [78, () => this.guestIp()],
      [5, () => 0],
      [6, () => r.u32()],
      [3, () => GW_IP],
      [2, () => SUBNET_BCAST],
      [2, () => SUBNET],
      [2, () => 0x7f000001],
      [2, () => 0xffffffff],
    ])();
  }

  private dstIp(): Ip4 {
    const r = this.rng;
    return r.weighted<() => Ip4>([
      [26, () => GW_IP],
      [18, () => DNS_IP],
      [5, () => 0xffffffff],
      [5, () => SUBNET_BCAST],
      [8, () => this.guestIp()],
      [20, () => r.u32()],
      [3, () => 0x7f000001],
      [4, () => (0xe0000000 | r.int(1 << 28)) >>> 0],
      [3, () => 0],
      [5, () => (0xc0000200 | r.int(256)) >>> 0],
      [3, () => (0x0a000200 | r.pick([0, 1, 4, 255])) >>> 0],
    ])();
  }

  private dstMac(): Mac {
    const r = this.rng;
    return r.weighted<() => Mac>([
      [62, () => GW_MAC],
      [20, () => BCAST_MAC],
      [3, () => new Uint8Array([0x01, 0x00, 0x5e, r.int(128), r.int(256), r.int(256)])],
      [2, () => new Uint8Array([0x33, 0x33, r.int(256), r.int(256), r.int(256), r.int(256)])],
      [9, () => unicast(r.bytes(6))],
      [4, () => {
        const m = r.bytes(6);
        m[0]! |= 1;
        return m;
      }],
    ])();
  }

  private srcMac(): Mac {
    const r = this.rng;
    if (r.chance(0.82)) return r.pick(this.guestMacs);
    if (r.chance(0.8)) return unicast(r.bytes(6));
    return r.chance(0.5) ? BCAST_MAC : GW_MAC;
  }

  private eth(ethertype: number, payload: Uint8Array, dst = this.dstMac(), src = this.srcMac()): Uint8Array {
    const r = this.rng;
    const vlan = r.chance(0.03) ? r.int(4096) : -1;
    const h = eth.blank();
    h.dst.set(dst);
    h.src.set(src);
    h.vlan = vlan;
    h.pcp = vlan >= 0 ? r.int(8) : 0;
    h.ethertype = ethertype;
    return emitEth(h, payload);
  }

  /** An IPv4 datagram; sometimes with options, odd TTLs, DF/MF or a fragment offset. */
  private ip(proto: number, src: Ip4, dst: Ip4, payload: Uint8Array, o: { ttl?: number; id?: number; ff?: number; options?: boolean } = {}): Uint8Array {
    const r = this.rng;
    const optLen = (o.options ?? r.chance(0.06)) ? 4 * r.range(1, 10) : 0;
    const hl = 20 + optLen;
    const total = hl + payload.length;
    const out = new Uint8Array(total);
    const v = viewOf(out);
    v.setUint8(0, 0x40 | (hl >>> 2));
    v.setUint8(1, r.chance(0.9) ? 0 : r.int(256));
    v.setUint16(2, total & 0xffff);
    v.setUint16(4, o.id ?? r.int(65536));
    v.setUint16(6, o.ff ?? (r.chance(0.85) ? 0 : r.chance(0.6) ? 0x4000 : r.int(65536)));
    v.setUint8(8, o.ttl ?? r.weighted([[80, 64], [5, 0], [6, 1], [4, 2], [5, 255]]));
    v.setUint8(9, proto);
    v.setUint32(12, src >>> 0);
    v.setUint32(16, dst >>> 0);
    if (optLen > 0) {
      const opts = r.chance(0.5) ? r.bytes(optLen) : ipOptions(r, optLen);
      out.set(opts, 20);
    }
    out.set(payload, hl);
    ipv4.fillChecksum(v, 0, hl);
    return out;
  }

  // -------------------------------------------------------------- families

  private arp(): Uint8Array {
    const r = this.rng;
    const a = arp.blank();
    a.op = r.weighted([[60, arp.OP_REQUEST], [25, arp.OP_REPLY], [15, r.int(65536)]]);
    a.sha.set(r.chance(0.9) ? this.srcMac() : r.bytes(6));
    a.spa = r.chance(0.85) ? this.srcIp() : r.u32();
    a.tha.set(r.chance(0.7) ? new Uint8Array(6) : r.bytes(6));
    a.tpa = r.weighted([[45, GW_IP], [20, DNS_IP], [20, this.poolIp()], [15, r.u32()]]);
    const body = new Uint8Array(arp.HEADER_LEN + (r.chance(0.3) ? r.int(32) : 0));
    const v = viewOf(body);
    arp.emit(a, v, 0);
    if (r.chance(0.15)) {
      // Wrong hardware/protocol types or address sizes.
      const which = r.int(4);
      if (which === 0) v.setUint16(0, r.pick([0, 6, 0xffff, r.int(65536)]));
      else if (which === 1) v.setUint16(2, r.pick([0x86dd, 0, r.int(65536)]));
      else if (which === 2) v.setUint8(4, r.pick([0, 8, 255]));
      else v.setUint8(5, r.pick([0, 6, 16, 255]));
    }
    const dst = r.chance(0.6) ? BCAST_MAC : this.dstMac();
    return this.eth(eth.ETHERTYPE_ARP, body, dst, r.chance(0.9) ? a.sha : this.srcMac());
  }

  private icmp(): Uint8Array {
    const r = this.rng;
    const plen = r.size(this.mtu - 28);
    const type = r.weighted([[60, icmp.TYPE_ECHO_REQUEST], [8, icmp.TYPE_ECHO_REPLY], [8, icmp.TYPE_DEST_UNREACH], [6, icmp.TYPE_TIME_EXCEEDED], [4, 5], [4, 13], [10, r.int(256)]]);
    let msg: Uint8Array;
    if (type === icmp.TYPE_ECHO_REQUEST || type === icmp.TYPE_ECHO_REPLY) {
      msg = icmpEcho(r.int(65536), r.int(65536), r.bytes(plen), type);
    } else {
      // An error message quoting some datagram (or garbage).
      msg = new Uint8Array(8 + Math.min(plen, 576));
      msg[0] = type;
      msg[1] = r.int(16);
      msg.set(r.bytes(msg.length - 8), 8);
      if (msg.length >= 28) msg[8] = 0x45;
      viewOf(msg).setUint16(2, finish(sum(viewOf(msg), 0, msg.length)));
    }
    if (r.chance(0.05)) msg = msg.subarray(0, r.int(8)); // shorter than an ICMP header
    return this.eth(eth.ETHERTYPE_IPV4, this.ip(ipv4.PROTO_ICMP, this.srcIp(), this.dstIp(), msg));
  }

  private udpDatagram(src: Ip4, dst: Ip4, sport: number, dport: number, payload: Uint8Array): Uint8Array {
    const r = this.rng;
    const out = new Uint8Array(8 + payload.length);
    const v = viewOf(out);
    v.setUint16(0, sport);
    v.setUint16(2, dport);
    v.setUint16(4, out.length & 0xffff);
    out.set(payload, 8);
    if (r.chance(0.93)) udp.fillChecksum4(v, 0, out.length, src, dst);
    else v.setUint16(6, r.chance(0.5) ? 0 : r.int(65536)); // "none", or wrong
    return out;
  }

  private udpNat(): Uint8Array {
    const r = this.rng;
    const src = this.srcIp();
    const dst = r.weighted<() => Ip4>([[35, () => GW_IP], [45, () => r.u32()], [20, () => this.dstIp()]])();
    const dport = r.weighted([[60, r.int(65536)], [10, 53], [10, 67], [5, 68], [5, 0], [10, r.pick([7, 123, 137, 161, 500, 1900, 5353])]]);
    const payload = r.bytes(r.size(this.mtu - 28));
    return this.eth(eth.ETHERTYPE_IPV4, this.ip(ipv4.PROTO_UDP, src, dst, this.udpDatagram(src, dst, r.int(65536), dport, payload)));
  }

  private dhcp(): Uint8Array {
    const r = this.rng;
    const chaddr = r.pick(DHCP_CLIENT_MACS);
    const type = r.weighted([[35, dhcp.DISCOVER], [30, dhcp.REQUEST], [5, dhcp.DECLINE], [8, dhcp.RELEASE], [7, dhcp.INFORM], [5, dhcp.OFFER], [10, r.int(256)]]);
    const requested = r.weighted<Ip4 | undefined>([[40, undefined], [40, this.poolIp()], [10, r.u32()], [10, GW_IP]]);
    const msg = dhcpMessage({
      type,
      xid: r.u32(),
      chaddr,
      broadcast: r.chance(0.5),
      ciaddr: r.chance(0.7) ? 0 : r.chance(0.5) ? this.poolIp() : r.u32(),
      requestedIp: requested,
      serverId: r.chance(0.6) ? undefined : r.chance(0.7) ? GW_IP : r.u32(),
      hostname: r.chance(0.5) ? undefined : hostname(r),
      clientId: r.chance(0.6) ? undefined : r.pick(DHCP_CLIENT_IDS),
    });
    let body: Uint8Array = msg;
    if (r.chance(0.6)) body = mutateDhcp(r, msg);
    const src = r.chance(0.6) ? 0 : this.srcIp();
    const dst = r.weighted([[60, 0xffffffff], [25, GW_IP], [5, SUBNET_BCAST], [10, this.dstIp()]]);
    const dport = r.chance(0.95) ? dhcp.SERVER_PORT : r.int(65536);
    const dg = this.udpDatagram(src, dst, r.chance(0.9) ? dhcp.CLIENT_PORT : r.int(65536), dport, body);
    return this.eth(eth.ETHERTYPE_IPV4, this.ip(ipv4.PROTO_UDP, src, dst, dg, { ttl: r.chance(0.9) ? 64 : r.int(256) }), r.chance(0.7) ? BCAST_MAC : this.dstMac(), r.chance(0.8) ? chaddr : this.srcMac());
  }

  private dns(): Uint8Array {
    const r = this.rng;
    let q: Uint8Array;
    if (r.chance(0.12)) q = r.bytes(r.size(600));
    else {
      const name = r.weighted<() => string>([
        [25, () => hostname(r) + '.test'],
        [15, () => 'host.vmnet.internal'],
        [10, () => hostname(r) + '.vmnet.internal'],
        [10, () => hostname(r) + '.invalid'],
        [8, () => 'localhost'],
        [7, () => 'known.test'],
        [8, () => Array.from({ length: r.range(1, 5) }, () => 'a'.repeat(r.range(1, 63))).join('.')],
        [7, () => `${r.int(256)}.${r.int(256)}.2.10.in-addr.arpa`],
        [10, () => hostname(r)],
      ])();
      const type = r.pick(['A', 'AAAA', 'PTR', 'TXT', 'MX', 'ANY', 'SRV', 'CNAME', 'NS', 'SOA', 'CAA', 'HTTPS']);
      try {
        q = dnsQuery(name, type, r.int(65536));
      } catch {
        q = r.bytes(40);
      }
      if (r.chance(0.5)) q = mutateDns(r, q);
    }
    const src = this.srcIp();
    const dst = r.chance(0.85) ? DNS_IP : r.chance(0.5) ? GW_IP : this.dstIp();
    const dport = r.chance(0.9) ? 53 : r.int(65536);
    return this.eth(eth.ETHERTYPE_IPV4, this.ip(ipv4.PROTO_UDP, src, dst, this.udpDatagram(src, dst, r.range(1024, 65535), dport, q)));
  }

  /** A TCP segment: SYNs, odd flag sets, wild sequence numbers, window 0, malformed options. */
  private tcp(): Uint8Array {
    const r = this.rng;
    const src = r.chance(0.9) ? this.guestIp() : this.srcIp();
    const dst = r.weighted<() => Ip4>([[30, () => GW_IP], [20, () => DNS_IP], [30, () => r.u32()], [20, () => this.dstIp()]])();
    // A few recurring 4-tuples so later segments meet the state earlier SYNs created.
    const sport = r.chance(0.6) ? 40000 + r.int(8) : r.int(65536);
    const dport = dst === DNS_IP && r.chance(0.8) ? 53 : r.weighted([[40, r.int(65536)], [20, r.pick([22, 80, 443, 53])], [10, 0], [30, 1024 + r.int(64)]]);
    const flags = r.weighted([[35, 0x02], [8, 0x12], [10, 0x10], [6, 0x18], [6, 0x11], [6, 0x04], [4, 0x14], [4, 0x03], [3, 0x06], [3, 0x00], [3, 0xff], [2, 0x29], [10, r.int(256)]]);
    const seq = r.weighted<() => number>([[60, () => r.u32()], [10, () => 0], [10, () => 0xffffffff], [10, () => 0x7fffffff + r.int(3)], [10, () => 1000 + r.int(100)]])();
    const ack = r.chance(0.5) ? r.u32() : r.chance(0.5) ? 0 : 1001;
    const window = r.weighted([[35, 0], [35, r.int(65536)], [15, 65535], [15, 1]]);
    let opts = r.chance(0.55) ? tcpOptions(r) : new Uint8Array(0);
    if (opts.length > 40) opts = opts.subarray(0, 40);
    const hl = 20 + ((opts.length + 3) & ~3);
    const payload = r.chance(0.6) ? new Uint8Array(0) : r.bytes(r.size(this.mtu - 40 - hl));
    const seg = new Uint8Array(hl + payload.length);
    const v = viewOf(seg);
    v.setUint16(0, sport);
    v.setUint16(2, dport);
    v.setUint32(4, seq >>> 0);
    v.setUint32(8, ack >>> 0);
    const doff = r.chance(0.9) ? hl >>> 2 : r.int(16); // sometimes lying about the header length
    v.setUint8(12, (doff << 4) | (r.chance(0.95) ? 0 : r.int(16)));
    v.setUint8(13, flags);
    v.setUint16(14, window);
    v.setUint16(18, r.chance(0.9) ? 0 : r.int(65536));
    seg.set(opts, 20);
    seg.set(payload, hl);
    if (r.chance(0.92)) v.setUint16(16, finish(sum(v, 0, seg.length, pseudo4(src, dst, TCP_PROTO, seg.length))));
    else v.setUint16(16, r.int(65536));
    return this.eth(eth.ETHERTYPE_IPV4, this.ip(TCP_PROTO, src, dst, seg), r.chance(0.9) ? GW_MAC : this.dstMac());
  }

  /** A train of IPv4 fragments of one datagram, in one of several bad (or good) orders. */
  private fragments(): Uint8Array[] {
    const r = this.rng;
    this.kinds.fragment++;
    const src = r.chance(0.9) ? this.guestIp() : this.srcIp();
    const proto = r.weighted([[40, ipv4.PROTO_UDP], [35, ipv4.PROTO_ICMP], [15, TCP_PROTO], [10, r.int(256)]]);
    const dst = proto === ipv4.PROTO_ICMP ? (r.chance(0.8) ? GW_IP : this.dstIp()) : this.dstIp();
    const len = r.weighted([[40, r.range(16, 1400)], [40, r.range(1400, 4000)], [15, r.range(4000, 9000)], [5, r.range(60000, 65515)]]);
    let payload: Uint8Array;
    if (proto === ipv4.PROTO_ICMP) payload = icmpEcho(r.int(65536), r.int(65536), r.bytes(Math.max(0, len - 8)));
    else if (proto === ipv4.PROTO_UDP) payload = this.udpDatagram(src, dst, r.range(1024, 65535), r.pick([53, 67, r.int(65536)]), r.bytes(Math.max(0, len - 8)));
    else payload = r.bytes(len);
    const id = r.int(65536);
    // Piece sizes: multiples of 8 that fit a frame.
    const maxPiece = (this.mtu - 20) & ~7;
    const pieces: Array<{ off: number; data: Uint8Array; mf: boolean }> = [];
    for (let off = 0; off < payload.length; ) {
      const n = Math.min(payload.length - off, r.chance(0.3) ? 8 * r.range(1, 8) : maxPiece);
      const end = off + n;
      pieces.push({ off, data: payload.subarray(off, end), mf: end < payload.length });
      off = end;
    }
    const mode = r.weighted([[25, 'in-order'], [15, 'shuffled'], [15, 'hole'], [10, 'overlap'], [15, 'random-offsets'], [8, 'huge'], [7, 'many-ids'], [5, 'mf-odd']]);
    let list = pieces;
    if (list.length > 60 && mode !== 'in-order') list = list.slice(0, 60); // keep a train short (bounded test time)
    if (mode === 'shuffled') list = shuffle(r, list.slice());
    else if (mode === 'hole' && list.length > 1) list = list.filter((_, i) => i !== r.int(list.length));
    else if (mode === 'overlap' && list.length > 0) {
      const p = list[r.int(list.length)]!;
      const off = Math.max(0, p.off - 8 * r.range(0, 4));
      list = [...list, { off, data: r.bytes(Math.min(maxPiece, p.data.length + 16)), mf: r.chance(0.5) }];
      list = shuffle(r, list);
    } else if (mode === 'random-offsets') list = list.map((p) => ({ off: 8 * r.int(8192), data: p.data, mf: r.chance(0.7) }));
    else if (mode === 'huge') list = [{ off: 65528 - 8 * r.int(4), data: r.bytes(8 * r.range(1, 40)), mf: r.chance(0.5) }, ...list.slice(0, 2)];
    else if (mode === 'mf-odd') list = list.map((p) => ({ ...p, data: p.data.subarray(0, Math.max(1, p.data.length - r.range(1, 7))), mf: true }));
    const frames: Uint8Array[] = [];
    const ids = mode === 'many-ids' ? 80 : 1;
    for (let k = 0; k < ids; k++) {
      const fid = (id + k) & 0xffff;
      const train = mode === 'many-ids' ? list.slice(0, 1) : list;
      for (const p of train) {
        const ff = (p.mf ? 0x2000 : 0) | ((p.off >>> 3) & 0x1fff) | (r.chance(0.05) ? 0x4000 : 0);
        frames.push(this.eth(eth.ETHERTYPE_IPV4, this.ip(proto, src, dst, p.data, { id: fid, ff, ttl: 64, options: r.chance(0.03) }), GW_MAC, this.guestMacs[0]!));
      }
    }
    return frames.filter((f) => f.length <= this.maxFrame);
  }

  /** Link-layer oddities: IPv6, VLAN tags, unknown EtherTypes, runts, frames just over the MTU. */
  private l2(): Uint8Array {
    const r = this.rng;
    const choice = r.int(8);
    if (choice === 0) {
      // IPv6: a plausible header or garbage.
      const p = r.bytes(r.size(400) + 40);
      p[0] = 0x60;
      return this.eth(eth.ETHERTYPE_IPV6, p, r.chance(0.5) ? new Uint8Array([0x33, 0x33, 0, 0, 0, 1]) : this.dstMac());
    }
    if (choice === 1 || choice === 2) {
      // 802.1Q (and Q-in-Q) around an otherwise valid frame.
      const inner = r.chance(0.5) ? this.arp() : this.icmp();
      const tag = new Uint8Array(r.chance(0.8) ? 4 : 8);
      const tv = viewOf(tag);
      tv.setUint16(0, eth.ETHERTYPE_VLAN);
      tv.setUint16(2, r.int(65536));
      if (tag.length === 8) {
        tv.setUint16(4, r.chance(0.5) ? eth.ETHERTYPE_VLAN : 0x88a8);
        tv.setUint16(6, r.int(65536));
      }
      const out = new Uint8Array(inner.length + tag.length);
      out.set(inner.subarray(0, 12));
      out.set(tag, 12);
      out.set(inner.subarray(12), 12 + tag.length);
      return out;
    }
    if (choice === 3) {
      // Unknown EtherTypes and 802.3 length fields.
      const type = r.pick([0x88cc, 0x8035, 0x0842, 0x88a8, 0x9000, 0x0000, 0x05dc, 0x0600, r.int(65536)]);
      return this.eth(type, r.bytes(r.size(200)));
    }
    if (choice === 4) return r.bytes(r.int(14)); // runt: shorter than an Ethernet header
    if (choice === 5) {
      // Exactly the header, or a 802.1Q header without its inner type.
      const f = new Uint8Array(r.chance(0.5) ? 14 : r.range(14, 17));
      f.set(this.dstMac());
      f.set(this.srcMac(), 6);
      viewOf(f).setUint16(12, f.length === 14 ? r.pick([0x0800, 0x0806, 0x86dd]) : eth.ETHERTYPE_VLAN);
      return f;
    }
    // Just over (or at) the MTU: 1501..1504 bytes of IPv4 after the header.
    const over = this.mtu + r.range(-1, 4);
    const src = this.guestIp();
    const echo = icmpEcho(1, 1, r.bytes(over - 28));
    const dg = this.ip(ipv4.PROTO_ICMP, src, GW_IP, echo, { ttl: 64, options: false });
    return this.eth(eth.ETHERTYPE_IPV4, dg, GW_MAC, this.guestMacs[1]!);
  }

  /** IPv4 headers with random version, IHL, lengths, flags and protocol. */
  private ipGarbage(): Uint8Array {
    const r = this.rng;
    const proto = r.weighted([[20, r.int(256)], [15, ipv4.PROTO_UDP], [15, ipv4.PROTO_ICMP], [15, TCP_PROTO], [10, 2], [10, 47], [5, 50], [5, 41], [5, 58]]);
    const dg = this.ip(proto, this.srcIp(), this.dstIp(), r.bytes(r.size(1000)));
    const v = viewOf(dg);
    const which = r.int(6);
    if (which === 0) v.setUint8(0, r.int(256)); // version/IHL
    else if (which === 1) v.setUint8(0, 0x40 | r.int(16)); // IHL only
    else if (which === 2) v.setUint16(2, r.pick([0, 19, 20, 21, dg.length - 1, dg.length + 1, 65535, r.int(65536)])); // total length
    else if (which === 3) v.setUint16(6, r.int(65536)); // flags + offset
    else if (which === 4) v.setUint16(10, r.int(65536)); // header checksum
    else v.setUint8(8, r.pick([0, 1])); // TTL
    if (which !== 4 && r.chance(0.7)) {
      const hl = (dg[0]! & 15) << 2;
      if (hl >= 20 && hl <= dg.length) ipv4.fillChecksum(v, 0, hl);
    }
    return this.eth(eth.ETHERTYPE_IPV4, dg);
  }

  private random(): Uint8Array {
    const r = this.rng;
    const f = r.bytes(r.chance(0.3) ? r.int(this.maxFrame + 1) : r.size(this.maxFrame));
    if (f.length >= 14 && r.chance(0.5)) {
      f.set(r.chance(0.7) ? GW_MAC : BCAST_MAC);
      viewOf(f).setUint16(12, r.pick([0x0800, 0x0806, 0x86dd, 0x8100]));
    }
    return f;
  }
}

// ------------------------------------------------------------ mutation

function unicast(m: Uint8Array): Uint8Array {
  m[0] = m[0]! & 0xfe;
  return m;
}

function shuffle<T>(r: Rng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function hostname(r: Rng): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789-';
  const n = r.range(1, 20);
  let s = '';
  for (let i = 0; i < n; i++) s += chars[r.int(chars.length)];
  return s.replace(/^-|-$/g, 'x');
}

function ipOptions(r: Rng, len: number): Uint8Array {
  const o = new Uint8Array(len);
  let i = 0;
  while (i < len) {
    const kind = r.pick([0, 1, 7, 68, 130, 131, 137, 148, r.int(256)]);
    o[i++] = kind;
    if (kind === 0 || kind === 1 || i >= len) continue;
    const l = r.chance(0.7) ? Math.min(len - i + 1, r.range(2, 12)) : r.pick([0, 1, 255, r.int(256)]);
    o[i++] = l;
    i += Math.max(0, l - 2);
  }
  return o;
}

function tcpOptions(r: Rng): Uint8Array {
  const parts: number[] = [];
  const n = r.range(1, 6);
  for (let k = 0; k < n; k++) {
    const c = r.int(10);
    if (c === 0) parts.push(2, 4, r.int(256), r.int(256)); // MSS (any value, 0 included)
    else if (c === 1) parts.push(3, 3, r.pick([0, 7, 14, 15, 255])); // window scale, shifts > 14 included
    else if (c === 2) parts.push(4, 2); // SACK permitted
    else if (c === 3) {
      const blocks = r.range(0, 5);
      parts.push(5, 2 + 8 * blocks, ...r.bytes(8 * blocks));
    } else if (c === 4) parts.push(8, 10, ...r.bytes(8)); // timestamps
    else if (c === 5) parts.push(1); // NOP
    else if (c === 6) parts.push(0); // EOL
    else if (c === 7) parts.push(r.int(256), r.pick([0, 1])); // length 0/1: invalid
    else if (c === 8) parts.push(r.pick([2, 3, 5, 8, 30, 254]), r.pick([40, 255, r.int(256)])); // runs past the header
    else parts.push(r.pick([2, 3, 4, 8]), r.range(2, 12), ...r.bytes(r.range(0, 10))); // wrong length for the kind
  }
  const out = new Uint8Array(Math.min(40, parts.length));
  for (let i = 0; i < out.length; i++) out[i] = parts[i]! & 0xff;
  return out;
}

/** Structural damage to a DHCP message; chaddr (bytes 28..43) is left alone. */
function mutateDhcp(r: Rng, msg: Uint8Array): Uint8Array {
  const v = viewOf(msg);
  const which = r.int(10);
  if (which === 0) v.setUint8(0, r.pick([0, 2, 3, 255])); // op
  else if (which === 1) v.setUint8(1, r.pick([0, 6, 255])); // htype
  else if (which === 2) v.setUint8(2, r.pick([0, 1, 7, 16, 17, 255])); // hlen
  else if (which === 3) v.setUint32(236, r.chance(0.5) ? 0 : r.u32()); // magic cookie
  else if (which === 4) return msg.subarray(0, r.int(msg.length)); // truncated anywhere
  else if (which === 5) {
    // One option's length byte lies (walk to a random option).
    let i = 240;
    const stop = r.int(8);
    for (let k = 0; i + 1 < msg.length && k < stop; k++) {
      const c = msg[i]!;
      if (c === 255) break;
      if (c === 0) {
        i++;
        continue;
      }
      i += 2 + msg[i + 1]!;
    }
    if (i + 1 < msg.length && msg[i] !== 255) msg[i + 1] = r.pick([0, 1, 255, r.int(256)]);
  } else if (which === 6) {
    // Overload (option 52) with junk in sname/file, or no END.
    const out = new Uint8Array(msg.length + 3);
    out.set(msg.subarray(0, 240));
    out.set([52, 1, r.range(0, 4)], 240);
    out.set(msg.subarray(240), 243);
    out.set(r.bytes(192), 44);
    return out;
  } else if (which === 7) {
    // Drop END and everything after it, or pad with garbage after END.
    const end = msg.lastIndexOf(255);
    if (end > 240) return r.chance(0.5) ? msg.subarray(0, end) : concatBytes(msg, r.bytes(r.int(300)));
  } else if (which === 8) {
    // Insert random TLVs (never 61: client identity stays in the fixed set).
    const extra: number[] = [];
    for (let k = r.range(1, 8); k > 0; k--) {
      let code = r.int(254) + 1;
      if (code === 61) code = 60;
      const l = r.int(40);
      extra.push(code, l, ...r.bytes(l));
    }
    const out = new Uint8Array(msg.length + extra.length);
    out.set(msg.subarray(0, 240));
    out.set(extra, 240);
    out.set(msg.subarray(240), 240 + extra.length);
    return out;
  } else {
    // Random flips outside chaddr.
    for (let k = r.range(1, 6); k > 0; k--) {
      let i = r.int(msg.length);
      if (i >= 28 && i < 44) i = 44 + r.int(Math.max(1, msg.length - 44));
      if (i < msg.length) msg[i] = msg[i]! ^ (1 << r.int(8));
    }
  }
  return msg;
}

/** Structural damage to a DNS message: counts, compression loops, lengths, truncation. */
function mutateDns(r: Rng, q: Uint8Array): Uint8Array {
  if (q.length < 12) return q;
  const v = viewOf(q);
  const which = r.int(7);
  if (which === 0) v.setUint16(4 + 2 * r.int(4), r.pick([0, 2, 0xffff, r.int(65536)])); // qd/an/ns/ar counts
  else if (which === 1) v.setUint16(2, r.int(65536)); // flags (QR, opcode, rcode...)
  else if (which === 2 && q.length > 14) {
    // A compression pointer into itself or out of bounds.
    v.setUint16(12, 0xc000 | r.pick([12, 0, 0x3fff, r.int(q.length)]));
  } else if (which === 3 && q.length > 13) q[12] = r.pick([64, 63, 0xff, 0x80, r.int(256)]); // label length
  else if (which === 4) return q.subarray(0, r.int(q.length)); // truncated
  else if (which === 5) return concatBytes(q, r.bytes(r.size(300))); // trailing garbage / fake records
  else for (let k = r.range(1, 6); k > 0; k--) q[r.int(q.length)] = r.int(256);
  return q;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Blind mutations on a whole frame: byte flips, interesting values at header
 * offsets, truncation, extension, foreign/broadcast MACs.
 */
export function mutate(r: Rng, frame: Uint8Array, maxFrame: number): Uint8Array {
  let f = frame;
  for (let k = r.range(1, 3); k > 0; k--) {
    const op = r.int(7);
    if (op === 0 || op === 1) {
      for (let n = r.range(1, 8); n > 0 && f.length > 0; n--) {
        const i = r.chance(0.6) ? r.int(Math.min(f.length, 80)) : r.int(f.length);
        f[i] = f[i]! ^ (1 << r.int(8));
      }
    } else if (op === 2 && f.length >= 34) {
      // Interesting values at IPv4/L4 header offsets (assuming no VLAN tag).
      const at = r.pick([14, 16, 17, 20, 21, 22, 23, 24, 34, 35, 36, 38, 39, 40, 46, 47, 48]);
      if (at < f.length) f[at] = r.pick([0, 1, 0x7f, 0x80, 0xff, 0x45, 0x4f, 0x40, 0x46, r.int(256)]);
    } else if (op === 3) f = f.subarray(0, r.int(f.length + 1));
    else if (op === 4) f = concatBytes(f, r.bytes(r.size(Math.max(0, maxFrame - f.length))));
    else if (op === 5 && f.length >= 12) {
      f[r.int(12)] = r.int(256);
      if (r.chance(0.5)) f.set(r.chance(0.5) ? BCAST_MAC : new Uint8Array([1, 0x80, 0xc2, 0, 0, 0]), 0);
    } else if (f.length >= 14) viewOf(f).setUint16(12, r.pick([0x0800, 0x0806, 0x86dd, 0x8100, r.int(65536)]));
  }
  return f.length > maxFrame ? f.subarray(0, maxFrame) : f;
}

/**
 * Recomputes the IPv4 header checksum and the ICMP/UDP/TCP checksum of an
 * untagged IPv4 frame, over whatever lengths its headers now claim (clamped
 * to the bytes present). Leaves anything it cannot make sense of alone.
 */
export function fixChecksums(f: Uint8Array): void {
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return;
  const v = viewOf(f);
  const hl = (f[14]! & 15) << 2;
  if (hl < 20 || 14 + hl > f.length) return;
  ipv4.fillChecksum(v, 14, hl);
  if ((v.getUint16(20) & 0x1fff) !== 0) return; // not a first fragment
  const total = Math.min(v.getUint16(16), f.length - 14);
  const p = 14 + hl;
  const plen = total - hl;
  if (plen <= 0) return;
  const src = v.getUint32(26);
  const dst = v.getUint32(30);
  const proto = f[23]!;
  if (proto === ipv4.PROTO_ICMP && plen >= 4) {
    v.setUint16(p + 2, 0);
    v.setUint16(p + 2, finish(sum(v, p, plen)));
  } else if (proto === ipv4.PROTO_UDP && plen >= 8) {
    const ulen = v.getUint16(p + 4);
    if (ulen >= 8 && ulen <= plen) udp.fillChecksum4(v, p, ulen, src, dst);
  } else if (proto === TCP_PROTO && plen >= 20) {
    v.setUint16(p + 16, 0);
    v.setUint16(p + 16, finish(sum(v, p, plen, pseudo4(src, dst, TCP_PROTO, plen))));
  }
}

const dhcpScratch = dhcp.blank();
const allowedMacs = new Set(DHCP_CLIENT_MACS.map((m) => Array.from(m).join(':')));
const allowedIds = new Set(DHCP_CLIENT_IDS.map((m) => Array.from(m).join(':')));

/**
 * If `f` is a DHCP DISCOVER/REQUEST the gateway would accept from a client
 * identity outside the fixed set, breaks its UDP checksum (so the gateway
 * drops it as udp-invalid) and returns true. Keeps fuzzing from starving the
 * address pool. Only untagged, unfragmented frames can reach the server.
 */
export function guardDhcpIdentity(f: Uint8Array): boolean {
  if (f.length < 14 + 20 + 8 + 240 || f[12] !== 0x08 || f[13] !== 0x00) return false;
  const v = viewOf(f);
  const ip = ipv4.blank();
  if (!ipv4.parse(v, 14, f.length - 14, ip) || ip.proto !== ipv4.PROTO_UDP || ipv4.isFragment(ip)) return false;
  const u = udp.blank();
  if (!udp.parse(v, ip.payloadOffset, ip.payloadLength, u) || u.dstPort !== dhcp.SERVER_PORT) return false;
  if (!udp.verify4(v, ip.payloadOffset, u.length, ip.src, ip.dst)) return false;
  let ok: boolean;
  try {
    ok = dhcp.parse(v, u.payloadOffset, u.payloadLength, dhcpScratch);
  } catch {
    ok = true; // a codec that throws is the gateway's problem to survive; keep the frame harmless anyway
  }
  if (ok) {
    const m = dhcpScratch;
    if (m.op !== dhcp.BOOTREQUEST || m.htype !== dhcp.HTYPE_ETHERNET || m.hlen !== 6) return false;
    if (m.messageType !== dhcp.DISCOVER && m.messageType !== dhcp.REQUEST) return false;
    const id = m.options.clientId;
    if (id !== null ? allowedIds.has(Array.from(id).join(':')) : allowedMacs.has(Array.from(m.chaddr.subarray(0, 6)).join(':'))) return false;
  }
  const c = v.getUint16(ip.payloadOffset + 6);
  v.setUint16(ip.payloadOffset + 6, c === 0x5a5a ? 0xa5a5 : 0x5a5a); // non-zero and (almost surely) wrong
  if (udp.verify4(v, ip.payloadOffset, u.length, ip.src, ip.dst)) v.setUint16(ip.payloadOffset + 6, 0x1234);
  return true;
}

// -------------------------------------------------------- stream helpers

/** Prefixes each frame with its 4-byte big-endian length and concatenates them. */
export function encodeFrames(frames: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const f of frames) n += 4 + f.length;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, o);
    out.set(f, o + 4);
    o += 4 + f.length;
  }
  return out;
}

/**
 * Bytes for a connection that lies about a length: a few good frames, then
 * a prefix no QEMU sends, above its NET_BUFSIZE of 69,632 (up to
 * 0xffffffff), then some bytes. The gateway must close that connection
 * (reason 'oversize'). A prefix above the port's `maxFrame` but within
 * QEMU's limit is honest, not a lie: the frame is skipped and the connection
 * stays (stream-framer.ts).
 */
export function lyingPrefixStream(fz: FrameFuzzer): { bytes: Buffer; prefix: number } {
  const r = fz.rng;
  const good = Array.from({ length: r.int(6) }, () => fz.next());
  const prefix = r.pick([0x7fffffff, 0xffffffff, 65536 + 4096 + 1, 65536 + 4096 + 1 + r.int(0x7fff0000)]) >>> 0;
  const tail = r.bytes(r.int(2000));
  const head = encodeFrames(good);
  const out = Buffer.allocUnsafe(head.length + 4 + tail.length);
  head.copy(out, 0);
  out.writeUInt32BE(prefix, head.length);
  out.set(tail, head.length + 4);
  return { bytes: out, prefix };
}

/**
 * Bytes for a connection that hangs up mid-frame: a few good frames, then
 * either 1-3 bytes of a prefix or a whole prefix and part of its frame.
 */
export function midFrameStream(fz: FrameFuzzer): Buffer {
  const r = fz.rng;
  const good = encodeFrames(Array.from({ length: r.int(6) }, () => fz.next()));
  let tail: Buffer;
  if (r.chance(0.3)) tail = Buffer.from(r.bytes(r.range(1, 3)));
  else {
    let f = fz.next();
    while (f.length < 2) f = fz.next();
    tail = Buffer.allocUnsafe(4 + r.range(0, f.length - 1));
    tail.writeUInt32BE(f.length, 0);
    tail.set(f.subarray(0, tail.length - 4), 4);
  }
  return Buffer.concat([good, tail]);
}
