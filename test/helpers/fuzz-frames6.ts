/**
 * Theory of operation: the IPv6 family of the fuzzer (fuzz-frames.ts), in a
 * file of its own. Each frame starts valid, built with the project's codecs
 * through frames6.ts, from one of the fuzzer's guest MACs and a source in the
 * gateway's prefix (its SLAAC address or link-local), and is then, like the
 * IPv4 families, often broken on purpose:
 *
 *  - what is built: router and neighbour solicitations (DAD probes
 *    included), neighbour and router advertisements, redirects, echo
 *    requests to the gateway and to random addresses, MLD reports, DHCPv6
 *    (Information-request, Solicit with and without IAs, relay messages),
 *    DNS to PREFIX::3, UDP and TCP to the gateway and to random addresses,
 *    with extension header chains in front (hop-by-hop with unknown options
 *    of every action, routing headers with segments left, fragments, atomic
 *    fragments, destination options, long chains, No Next Header);
 *  - structure-aware mutations at IPv6 offsets (version, payload length,
 *    next header, hop limit, source and destination bytes, NDP option
 *    lengths), then the blind mutator of fuzz-frames.ts;
 *  - then, half the time, the upper-layer checksum recomputed over the IPv6
 *    pseudo-header at the end of the chain ({@link fixChecksums6}), so the
 *    corruption reaches the parsers behind the checksum gates.
 *
 * Deterministic per seed (the caller's Rng).
 */
import * as ipv6 from '../../src/wire/ipv6.js';
import * as icmpv6 from '../../src/wire/icmpv6.js';
import * as ndp from '../../src/wire/ndp.js';
import * as udp from '../../src/wire/udp.js';
import * as tcp from '../../src/wire/tcp.js';
import * as dhcpv6 from '../../src/wire/dhcpv6.js';
import { eui64Address, LINK_LOCAL_PREFIX6, multicastMac6, solicitedNode6, type Ip6, type Mac } from '../../src/wire/addr.js';
import { finish, pseudo6, sum } from '../../src/wire/checksum.js';
import { dnsQuery, GW_MAC, viewOf } from './frames.js';
import { dhcpv6Message, dhcpv6Repr, echo6, fragmentHeader, ip6, ipv6Frame, ipv6Packet, ndpMessage, ndpRepr, optionsHeader, routingHeader, tcpSegment6, udpDatagram6 } from './frames6.js';
import { mutate, type Rng } from './fuzz-frames.js';

/** The gateway's default prefix (config.ts). */
const PREFIX = ip6('fd0d:b4b8:6ba1::');

export class Ipv6Fuzzer {
  readonly gw = ip6('fd0d:b4b8:6ba1::2');
  readonly dns = ip6('fd0d:b4b8:6ba1::3');
  readonly gwLinkLocal = eui64Address(LINK_LOCAL_PREFIX6, GW_MAC);
  /** Frames built, mutated and with checksums refreshed. */
  built = 0;
  mutated = 0;

  constructor(
    private readonly r: Rng,
    private readonly macs: readonly Mac[],
    private readonly maxFrame: number,
  ) {}

  /** One IPv6 frame, valid or broken. */
  next(): Uint8Array {
    const r = this.r;
    this.built++;
    const mac = r.chance(0.9) ? r.pick(this.macs) : r.bytes(6);
    let f = this.frame(mac);
    if (r.chance(0.5)) {
      this.mutated++;
      if (r.chance(0.5)) this.mutate6(f);
      else f = mutate(r, f, this.maxFrame);
      if (r.chance(0.5)) fixChecksums6(f);
    }
    return f.length > this.maxFrame ? f.subarray(0, this.maxFrame) : f;
  }

  private src(mac: Mac): Ip6 {
    const r = this.r;
    return r.weighted<() => Ip6>([
      [60, () => eui64Address(PREFIX, mac)],
      [20, () => eui64Address(LINK_LOCAL_PREFIX6, mac)],
      [5, () => new Uint8Array(16)],
      [5, () => r.bytes(16)],
      [3, () => this.gw],
      [3, () => ip6('ff02::1')],
      [4, () => {
        const a = PREFIX.slice();
        a.set(r.bytes(8), 8);
        return a;
      }],
    ])();
  }

  private dst(): Ip6 {
    const r = this.r;
    return r.weighted<() => Ip6>([
      [30, () => this.gw],
      [15, () => this.dns],
      [10, () => this.gwLinkLocal],
      [8, () => ip6('ff02::1')],
      [6, () => ip6('ff02::2')],
      [6, () => solicitedNode6(this.gw)],
      [10, () => r.bytes(16)],
      [5, () => ip6('2001:db8::1')],
      [3, () => ip6('::1')],
      [3, () => ip6('::ffff:127.0.0.1')],
      [4, () => eui64Address(PREFIX, r.bytes(6))],
    ])();
  }

  /** A valid frame of a random kind. */
  private frame(mac: Mac): Uint8Array {
    const r = this.r;
    const src = this.src(mac);
    const dst = this.dst();
    const [nh, upper] = r.weighted<() => [number, Uint8Array]>([
      [18, () => [ipv6.NH_ICMPV6, this.ndp(src, dst)]],
      [10, () => [ipv6.NH_ICMPV6, echo6(r.int(65536), r.int(65536), r.bytes(r.int(200)), src, dst)]],
      [4, () => [ipv6.NH_ICMPV6, this.icmpOther(src, dst)]],
      [10, () => [ipv6.NH_UDP, udpDatagram6(src, ip6('ff02::1:2'), dhcpv6.CLIENT_PORT, dhcpv6.SERVER_PORT, this.dhcp())]],
      [10, () => [ipv6.NH_UDP, udpDatagram6(src, dst, r.range(1024, 65535), r.chance(0.6) ? 53 : r.int(65536), r.chance(0.6) ? dnsQuery(r.chance(0.5) ? 'gateway.vmnet.internal' : 'x.test', r.pick(['A', 'AAAA', 'ANY'])) : r.bytes(r.int(300)), r.chance(0.95))]],
      [14, () => [ipv6.NH_TCP, tcpSegment6(src, dst, r.range(1024, 65535), r.pick([22, 53, 80, 8080, r.int(65536)]), { flags: r.pick([tcp.SYN, tcp.ACK, tcp.RST, tcp.FIN | tcp.ACK, r.int(256)]), seq: r.u32(), ack: r.u32(), mss: r.chance(0.5) ? r.int(65536) : undefined })]],
      [4, () => [r.pick([ipv6.NH_NONE, 132, 41, r.int(256)]), r.bytes(r.int(64))]],
    ])();
    const [first, body] = this.chain(nh, upper);
    const hop = r.weighted([[70, 64], [15, 255], [8, 1], [7, 0]]);
    const packet = ipv6Packet({ src, dst, nextHeader: first, hopLimit: nh === ipv6.NH_ICMPV6 && r.chance(0.7) ? 255 : hop }, body);
    const ethDst = r.chance(0.85) ? undefined : r.chance(0.5) ? multicastMac6(dst) : r.bytes(6);
    return ipv6Frame(packet, { src: mac, ...(ethDst ? { dst: ethDst } : {}) });
  }

  /** Extension headers in front of the upper layer, mostly none. */
  private chain(nh: number, upper: Uint8Array): [number, Uint8Array] {
    const r = this.r;
    let next = nh;
    let body = upper;
    for (let n = r.weighted([[70, 0], [18, 1], [8, 2], [4, r.range(3, 12)]]); n > 0; n--) {
      const kind = r.int(5);
      let h: Uint8Array;
      let type: number;
      if (kind === 0) {
        type = ipv6.NH_HOP_BY_HOP;
        h = optionsHeader(next, [{ type: r.pick([0x05, 0x3e, 0x7e, 0xbe, 0xfe, r.int(256)]), data: r.bytes(r.pick([2, 4, 6])) }]);
      } else if (kind === 1) {
        type = ipv6.NH_DEST_OPTS;
        h = optionsHeader(next, [{ type: r.pick([0x3e, 0x80 | 0x3e, 0xc0 | 0x3e, r.int(256)]), data: r.bytes(r.pick([0, 2, 4])) }]);
      } else if (kind === 2) {
        type = ipv6.NH_ROUTING;
        h = routingHeader(next, r.pick([0, 2, 3, 4, r.int(256)]), r.pick([0, 1, 2, r.int(256)]), r.bytes(4 + 8 * r.int(3)));
      } else if (kind === 3) {
        type = ipv6.NH_FRAGMENT;
        h = fragmentHeader(next, r.chance(0.3) ? 0 : 8 * r.int(8000), r.chance(0.5), r.u32());
      } else {
        type = r.int(256);
        h = r.bytes(8 * r.range(1, 4));
        h[0] = next;
      }
      const out = new Uint8Array(h.length + body.length);
      out.set(h, 0);
      out.set(body, h.length);
      body = out;
      next = type;
    }
    return [next, body];
  }

  private ndp(src: Ip6, dst: Ip6): Uint8Array {
    const r = this.r;
    const type = r.pick([icmpv6.TYPE_ROUTER_SOLICIT, icmpv6.TYPE_NEIGHBOR_SOLICIT, icmpv6.TYPE_NEIGHBOR_SOLICIT, icmpv6.TYPE_NEIGHBOR_ADVERT, icmpv6.TYPE_ROUTER_ADVERT, icmpv6.TYPE_REDIRECT]);
    const target = r.pick([this.gw, this.dns, this.gwLinkLocal, eui64Address(PREFIX, r.bytes(6)), src, r.bytes(16)]);
    const m = ndpRepr(type, { target, flags: r.int(256), routerLifetime: r.int(65536), curHopLimit: r.int(256) });
    if (r.chance(0.6)) m.options.sourceLinkAddr = r.bytes(6);
    if (r.chance(0.3)) m.options.targetLinkAddr = r.bytes(6);
    if (r.chance(0.2)) m.options.mtu = r.u32();
    if (r.chance(0.2)) m.options.prefixes.push({ prefixLength: r.int(129), flags: r.int(256), validLifetime: r.u32(), preferredLifetime: r.u32(), prefix: r.bytes(16) });
    if (r.chance(0.15)) m.options.rdnss.push({ lifetime: r.u32(), servers: [r.bytes(16)] });
    if (r.chance(0.1)) m.options.dnssl.push({ lifetime: r.u32(), domains: ['a.example', 'b'] });
    if (r.chance(0.1)) m.options.nonce = r.bytes(6);
    if (r.chance(0.1)) m.options.unknown.push({ type: r.int(256), data: r.bytes(r.pick([6, 14, 0, 3])) });
    return ndpMessage(m, src, dst);
  }

  private icmpOther(src: Ip6, dst: Ip6): Uint8Array {
    const r = this.r;
    const m = new Uint8Array(8 + r.int(120));
    m.set(r.bytes(m.length));
    m[0] = r.pick([icmpv6.TYPE_MLD_REPORT, icmpv6.TYPE_MLD2_REPORT, icmpv6.TYPE_MLD_QUERY, icmpv6.TYPE_DEST_UNREACH, icmpv6.TYPE_PACKET_TOO_BIG, 200, r.int(256)]);
    icmpv6.fillChecksum(viewOf(m), 0, m.length, src, dst);
    return m;
  }

  private dhcp(): Uint8Array {
    const r = this.r;
    const type = r.pick([dhcpv6.INFORMATION_REQUEST, dhcpv6.INFORMATION_REQUEST, dhcpv6.SOLICIT, dhcpv6.REQUEST, dhcpv6.RELAY_FORW, dhcpv6.RENEW, r.int(256)]);
    if (type === dhcpv6.RELAY_FORW) {
      const raw = new Uint8Array(34 + r.int(60));
      raw.set(r.bytes(raw.length));
      raw[0] = type;
      return raw;
    }
    const ia = r.chance(0.3) ? [{ iaid: r.u32(), t1: r.u32(), t2: r.u32(), addresses: [], status: null, unknown: [] }] : [];
    const m = dhcpv6Repr({ msgType: type, transactionId: r.int(1 << 24) }, { clientId: r.chance(0.8) ? dhcpv6.duidLl(r.bytes(6)) : null, serverId: r.chance(0.1) ? r.bytes(10) : null, iaNa: ia, oro: r.chance(0.5) ? [23, 24] : [] });
    const b = dhcpv6Message(m);
    if (r.chance(0.3) && b.length > 4) b[r.range(4, b.length - 1)] = r.int(256);
    return b;
  }

  /** Interesting values at IPv6 header offsets (untagged frames). */
  private mutate6(f: Uint8Array): void {
    const r = this.r;
    for (let k = r.range(1, 3); k > 0; k--) {
      const at = r.pick([14, 18, 19, 20, 21, 22 + r.int(16), 38 + r.int(16), 54, 55, 56, 57, 60 + r.int(40)]);
      if (at < f.length) f[at] = r.pick([0, 1, 0xff, 0x60, 0x3a, 0x00, 0x2c, 0x2b, 0x3b, r.int(256)]);
    }
  }
}

/**
 * Recomputes the ICMPv6, UDP or TCP checksum of an untagged IPv6 frame at
 * the end of its extension header chain (when the walk reaches one), over
 * the bytes the payload length claims (clamped to those present).
 */
export function fixChecksums6(f: Uint8Array): void {
  if (f.length < 54 || f[12] !== 0x86 || f[13] !== 0xdd) return;
  const v = viewOf(f);
  const c = ipv6.blankChain();
  if (!ipv6.walk(v, 14, Math.min(f.length - 14, 40 + v.getUint16(18)), c) || c.fragment || c.length < 4) return;
  const src = f.subarray(22, 38);
  const dst = f.subarray(38, 54);
  if (c.proto === ipv6.NH_ICMPV6) icmpv6.fillChecksum(v, c.offset, c.length, src, dst);
  else if (c.proto === ipv6.NH_UDP && c.length >= 8) {
    const ulen = v.getUint16(c.offset + 4);
    if (ulen >= 8 && ulen <= c.length) udp.fillChecksum6(v, c.offset, ulen, src, dst);
  } else if (c.proto === ipv6.NH_TCP && c.length >= 20) {
    v.setUint16(c.offset + 16, 0);
    v.setUint16(c.offset + 16, finish(sum(v, c.offset, c.length, pseudo6(src, dst, ipv6.NH_TCP, c.length))));
  }
}
