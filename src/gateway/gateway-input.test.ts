/**
 * Gateway bad-input tests: every malformed or unwanted frame is a counted
 * drop under its reason in gateway.counters.drops, and handleFrame never
 * throws. Ends with a seeded randomized loop of mutated frames.
 */
import { describe, expect, it } from 'vitest';
import * as eth from '../wire/ethernet.js';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import * as dhcp from '../wire/dhcpv4.js';
import { DROP_REASONS } from './counters.js';
import {
  DNS_IP,
  GUEST_IP,
  GW_IP,
  GatewayRig,
  arpFrame,
  bytes,
  dhcpFrame,
  dnsQuery,
  ethFrame,
  fragmentDatagram,
  ip,
  ipv4Frame,
  ipv4Packet,
  mac,
  pingFrame,
  refreshIpChecksum,
  settle,
  tcpSegment,
  udpFrame,
  viewOf,
  xorshift32,
} from '../../test/helpers/frames.js';

const OUTSIDE = ip('198.51.100.1');
const IP = eth.HEADER_LEN; // offset of the IPv4 header in an untagged frame
const UDP = IP + ipv4.HEADER_LEN;

/** Sends one frame to a fresh gateway and returns what it said and dropped. */
function feed(frame: Uint8Array, opts: ConstructorParameters<typeof GatewayRig>[0] = {}) {
  const rig = new GatewayRig(opts);
  let out: ReturnType<GatewayRig['exchange']> = [];
  expect(() => (out = rig.exchange(frame))).not.toThrow();
  expect(rig.gateway.counters.framesIn).toBe(1);
  return { rig, out, drops: rig.drops() };
}

const edit = (f: Uint8Array, fn: (v: DataView) => void): Uint8Array => {
  fn(viewOf(f));
  return f;
};

describe('Gateway bad input', () => {
  it.each([
    ['empty', new Uint8Array(0)],
    ['1 byte', new Uint8Array(1)],
    ['13 bytes', new Uint8Array(13)],
    ['a VLAN tag cut short (16 bytes)', edit(new Uint8Array(16), (v) => v.setUint16(12, 0x8100))],
  ])('counts a %s frame as eth-short', (_what, frame) => {
    const { out, drops } = feed(frame);
    expect(out).toEqual([]);
    expect(drops).toEqual({ 'eth-short': 1 });
  });

  it('counts frames longer than MTU + 14 as oversize, and accepts exactly MTU + 14', () => {
    expect(feed(pingFrame({ dstIp: GW_IP }, new Uint8Array(1500 - 28 + 1))).drops).toEqual({ oversize: 1 });
    const small = feed(pingFrame({ dstIp: GW_IP }, new Uint8Array(576 - 28 + 1)), { mtu: 576 });
    expect(small.drops).toEqual({ oversize: 1 });
    expect(feed(pingFrame({ dstIp: GW_IP }, new Uint8Array(576 - 28)), { mtu: 576 }).out).toHaveLength(1);
  });

  it.each([
    ['unicast to another MAC', () => pingFrame({ dstIp: GW_IP, dst: mac('52:54:00:99:99:99') }), 'not-for-us'],
    ['802.1Q tagged', () => pingFrame({ dstIp: GW_IP, vlan: 5 }), 'vlan-tagged'],
    ['IPv6', () => ethFrame(eth.ETHERTYPE_IPV6, new Uint8Array(40)), 'ipv6'],
    ['LLDP (unknown EtherType)', () => ethFrame(0x88cc, new Uint8Array(46)), 'ethertype'],
    ['an 802.3 length field instead of an EtherType', () => ethFrame(46, new Uint8Array(46)), 'ethertype'],
  ] as const)('drops a frame that is %s', (_what, make, reason) => {
    const { out, drops } = feed(make());
    expect(out).toEqual([]);
    expect(drops).toEqual({ [reason]: 1 });
  });

  describe('IPv4 header', () => {
    const ping = () => pingFrame({ dstIp: GW_IP });
    it.each([
      ['a bad header checksum', () => edit(ping(), (v) => v.setUint16(IP + 10, v.getUint16(IP + 10) ^ 1))],
      ['version 5', () => refreshIpChecksum(edit(ping(), (v) => v.setUint8(IP, 0x55)))],
      ['IHL 4 (below the minimum)', () => refreshIpChecksum(edit(ping(), (v) => v.setUint8(IP, 0x44)))],
      ['IHL 15 beyond the total length', () => refreshIpChecksum(edit(pingFrame({ dstIp: GW_IP }, new Uint8Array(0)), (v) => v.setUint8(IP, 0x4f)))],
      ['IHL 15 beyond the frame', () => refreshIpChecksum(edit(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: 1 }, new Uint8Array(8))), (v) => { v.setUint8(IP, 0x4f); v.setUint16(IP + 2, 28); }))],
      ['total length beyond the frame', () => refreshIpChecksum(edit(ping(), (v) => v.setUint16(IP + 2, v.getUint16(IP + 2) + 1)))],
      ['total length below the header', () => refreshIpChecksum(edit(ping(), (v) => v.setUint16(IP + 2, 19)))],
      ['only 19 bytes of header', () => ping().subarray(0, IP + 19)],
    ])('counts %s as ipv4-invalid', (_what, make) => {
      const { out, drops } = feed(make());
      expect(out).toEqual([]);
      expect(drops).toEqual({ 'ipv4-invalid': 1 });
    });

    it('honours IPv4 options (IHL 6) and link padding after the datagram', () => {
      const f = pingFrame({ dstIp: GW_IP }, bytes('opt'));
      const withOpt = new Uint8Array(f.length + 4 + 10);
      withOpt.set(f.subarray(0, UDP));
      withOpt.set([1, 1, 1, 0], UDP); // NOP NOP NOP EOL
      withOpt.set(f.subarray(UDP), UDP + 4);
      const v = viewOf(withOpt);
      v.setUint8(IP, 0x46);
      v.setUint16(IP + 2, v.getUint16(IP + 2) + 4);
      refreshIpChecksum(withOpt);
      const { out, drops } = feed(withOpt);
      expect(drops).toEqual({});
      expect(out[0]!.payload).toEqual(bytes('opt'));
    });

    it.each([
      ['outside the subnet', '192.168.1.5'],
      ['the subnet broadcast', '10.0.2.255'],
      ['the gateway address (spoofed)', '10.0.2.2'],
    ])('counts a source %s as ipv4-src', (_what, src) => {
      const { out, drops } = feed(pingFrame({ dstIp: GW_IP, srcIp: ip(src) }));
      expect(out).toEqual([]);
      expect(drops).toEqual({ 'ipv4-src': 1 });
    });

    it('accepts source 0.0.0.0 only for UDP to the gateway or broadcast (DHCP)', () => {
      expect(feed(pingFrame({ dstIp: GW_IP, srcIp: 0 })).drops).toEqual({ 'ipv4-src': 1 });
      expect(feed(udpFrame({ srcIp: 0, dstIp: OUTSIDE, dstPort: 53 }, bytes('x'))).drops).toEqual({ 'ipv4-src': 1 });
      expect(feed(udpFrame({ srcIp: 0, dstIp: GW_IP, dstPort: 7000 }, bytes('x'))).drops).toEqual({ 'ipv4-src': 1 });
      expect(feed(dhcpFrame({ type: dhcp.DISCOVER })).out).toHaveLength(1);
    });
  });

  describe('UDP header', () => {
    const dns = () => udpFrame({ dstIp: DNS_IP, dstPort: 53 }, dnsQuery('host.vmnet.internal'));
    it.each([
      ['a length beyond the IPv4 payload', () => edit(dns(), (v) => v.setUint16(UDP + 4, v.getUint16(UDP + 4) + 1))],
      ['a length below 8', () => edit(dns(), (v) => v.setUint16(UDP + 4, 7))],
      ['a bad checksum', () => edit(dns(), (v) => v.setUint16(UDP + 6, v.getUint16(UDP + 6) ^ 0x0100))],
      ['a payload byte changed under the checksum', () => edit(dns(), (v) => v.setUint8(UDP + 8 + 2, v.getUint8(UDP + 8 + 2) ^ 0x80))],
      ['an IPv4 payload of 7 bytes', () => ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: DNS_IP, proto: ipv4.PROTO_UDP }, new Uint8Array(7)))],
    ])('counts %s as udp-invalid', async (_what, make) => {
      const { rig, out, drops } = feed(make());
      await settle();
      expect(out).toEqual([]);
      expect(rig.port.frames).toEqual([]);
      expect(drops).toEqual({ 'udp-invalid': 1 });
      expect(rig.dns.counters.queries).toBe(0);
    });
  });

  it('answers TTL 1 to an outside address with ICMP time exceeded quoting the datagram', () => {
    const frame = udpFrame({ dstIp: OUTSIDE, dstPort: 7000, ttl: 1 }, bytes('0123456789'));
    const { rig, out, drops } = feed(frame);
    expect(out).toHaveLength(1);
    expect(out[0]!.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP, proto: ipv4.PROTO_ICMP });
    expect(out[0]!.icmp).toMatchObject({ type: icmp.TYPE_TIME_EXCEEDED, code: icmp.CODE_TTL_EXCEEDED });
    expect(out[0]!.payload).toEqual(frame.subarray(IP, IP + 28));
    expect(drops).toEqual({ 'ttl-expired': 1 });
    expect(rig.host.flows).toEqual([]);
    expect(feed(pingFrame({ dstIp: OUTSIDE, ttl: 0 })).drops).toEqual({ 'ttl-expired': 1 });
  });

  it('sends no time exceeded about an ICMP error (RFC 1122 §3.2.2)', () => {
    const err = new Uint8Array(8 + 28);
    icmp.emitError(icmp.TYPE_DEST_UNREACH, 3, viewOf(err), 0, viewOf(udpFrame({ dstIp: GUEST_IP, dstPort: 1 }, bytes('x'))), IP, 28);
    const { out, drops } = feed(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_ICMP, ttl: 1 }, err)));
    expect(out).toEqual([]);
    expect(drops).toEqual({ 'ttl-expired': 1 });
  });

  // Regression: an ICMP datagram with no ICMP bytes (total length = header
  // length) must not make icmpErrorTo read past the datagram.
  it('never throws on a header-only ICMP datagram with TTL 1 to an outside address', () => {
    const frame = ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_ICMP, ttl: 1 }, new Uint8Array(0)));
    const rig = new GatewayRig();
    expect(() => rig.send(frame)).not.toThrow();
    expect(rig.drops()).toEqual({ 'ttl-expired': 1 });
  });

  it('answers an unknown protocol to the gateway with ICMP protocol unreachable; elsewhere silently', () => {
    const gre = (dst: number) => ipv4Frame(ipv4Packet({ src: GUEST_IP, dst, proto: 47 }, new Uint8Array(12)));
    const toUs = feed(gre(GW_IP));
    expect(toUs.out[0]!.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code: icmp.CODE_PROTO_UNREACH });
    expect(toUs.drops).toEqual({ 'proto-unsupported': 1 });
    const away = feed(gre(OUTSIDE));
    expect(away.out).toEqual([]);
    expect(away.drops).toEqual({ 'proto-unsupported': 1 });
  });

  it('drops a TCP segment to a broadcast address without answering', () => {
    const f = ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: ip('10.0.2.255'), proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, ip('10.0.2.255'), 1, 2)));
    const { out, drops } = feed(f);
    expect(out).toEqual([]);
    expect(drops).toEqual({ 'tcp-invalid': 1 });
  });

  it('keeps the drop reasons stable (they appear in output)', () => {
    expect(Object.keys(new GatewayRig().gateway.counters.drops)).toEqual([...DROP_REASONS]);
  });
});

describe('Gateway randomized input', () => {
  /** Valid frames of every kind the gateway handles, to mutate. */
  function corpus(): Uint8Array[] {
    const dnsDg = ipv4Packet({ src: GUEST_IP, dst: DNS_IP, proto: ipv4.PROTO_UDP, id: 5 }, udpFrame({ dstIp: DNS_IP, dstPort: 53 }, dnsQuery('host.vmnet.internal')).subarray(UDP));
    return [
      arpFrame({ spa: GUEST_IP, tpa: GW_IP }),
      pingFrame({ dstIp: GW_IP }),
      pingFrame({ dstIp: OUTSIDE, ttl: 1 }),
      udpFrame({ dstIp: GW_IP, dstPort: 7000 }, bytes('nat')),
      udpFrame({ dstIp: OUTSIDE, dstPort: 7000, ttl: 1 }, bytes('ttl')),
      udpFrame({ dstIp: DNS_IP, dstPort: 53 }, dnsQuery('host.vmnet.internal')),
      udpFrame({ dstIp: DNS_IP, dstPort: 53 }, dnsQuery('example.com')),
      dhcpFrame({ type: dhcp.DISCOVER }),
      dhcpFrame({ type: dhcp.REQUEST, requestedIp: GUEST_IP, serverId: GW_IP }),
      ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, GW_IP, 1, 22))),
      ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: 47 }, new Uint8Array(12))),
      ...fragmentDatagram(dnsDg, [16]).map((p) => ipv4Frame(p)),
      pingFrame({ dstIp: GW_IP, vlan: 3 }),
    ];
  }

  it('survives 20,000 random and mutated frames without throwing', async () => {
    const rig = new GatewayRig({ udpIdleMs: 1000, upstreamTable: { 'example.com': '93.184.216.34' } });
    const rnd = xorshift32(0x5eed1234);
    const base = corpus();
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      let f: Uint8Array;
      const kind = rnd.int(10);
      if (kind === 0) {
        // Pure noise, sometimes addressed to the gateway so it gets past Ethernet.
        f = Uint8Array.from({ length: rnd.int(120) }, () => rnd.int(256));
        if (f.length >= 14 && rnd.chance(0.7)) f.set([0x52, 0x55, 10, 0, 2, 2], 0);
      } else {
        f = base[rnd.int(base.length)]!.slice();
        const flips = 1 + rnd.int(4);
        for (let k = 0; k < flips && f.length > 0; k++) {
          // Bias mutations toward the headers, where the parsing decisions are.
          const at = rnd.chance(0.8) ? rnd.int(Math.min(f.length, 60)) : rnd.int(f.length);
          f[at] = rnd.chance(0.5) ? rnd.int(256) : f[at]! ^ (1 << rnd.int(8));
        }
        if (rnd.chance(0.2)) f = f.subarray(0, rnd.int(f.length + 1));
        else if (rnd.chance(0.1)) {
          const longer = new Uint8Array(f.length + 1 + rnd.int(64));
          longer.set(f);
          f = longer;
        }
        // Often repair the IPv4 header checksum, so mutations reach the layers above.
        if (rnd.chance(0.6) && f.length >= IP + 20 && f[12] === 0x08 && f[13] === 0x00) {
          const hl = (f[IP]! & 15) * 4;
          if (hl >= 20 && IP + hl <= f.length) ipv4.fillChecksum(viewOf(f), IP, hl);
        }
      }
      // Each frame in its own exact-size buffer: a read past the frame throws.
      const buf = f.slice();
      try {
        rig.gateway.handleFrame(rig.session, viewOf(buf), 0, buf.length);
      } catch (e) {
        throw new Error(`frame ${i} threw ${String(e)}: ${Buffer.from(buf).toString('hex')}`);
      }
      if (i % 1000 === 999) {
        rig.clock.t += 700;
        rig.gateway.sweep();
        for (const flow of rig.host.flows) if (!flow.closed) flow.reply(bytes('r'));
      }
    }
    await settle(5);
    const c = rig.gateway.counters;
    expect(c.framesIn).toBe(N);
    // Everything out is a well-formed frame (decodeFrame verifies checksums).
    expect(() => rig.port.takeDecoded()).not.toThrow();
    expect(c.dropped).toBeGreaterThan(N / 2);
    expect(c.framesOut).toBeGreaterThan(0);
  });
});
