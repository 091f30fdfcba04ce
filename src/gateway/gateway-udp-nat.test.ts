/**
 * Gateway UDP NAT tests: guest datagrams open flows on a fake HostUdp (which
 * records connect/send and lets the test inject replies and refusals);
 * replies come back to the guest from the address it sent to; policy
 * refusals and host refusals become ICMP destination unreachable; idle flows
 * expire on sweep() after udpIdleMs of fake time.
 */
import { describe, expect, it } from 'vitest';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import * as udp from '../wire/udp.js';
import { formatMac } from '../wire/addr.js';
import {
  DNS_IP,
  GUEST_IP,
  GUEST_MAC,
  GW_IP,
  GatewayRig,
  bytes,
  decodeFrame,
  ip,
  udpFrame,
  viewOf,
  type DecodedFrame,
} from '../../test/helpers/frames.js';

const OUTSIDE = ip('198.51.100.1');

/** Checks an ICMP destination unreachable from the gateway to the guest and returns the quoted bytes. */
function unreachable(f: DecodedFrame, code: number): Uint8Array {
  expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
  expect(f.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP, proto: ipv4.PROTO_ICMP });
  expect(f.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code, mtu: 0 });
  return f.payload;
}

describe('Gateway UDP NAT', () => {
  it('maps 10.0.2.2:P to the host 127.0.0.1:P and carries replies back from 10.0.2.2:P', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(udpFrame({ dstIp: GW_IP, srcPort: 5000, dstPort: 7000 }, bytes('ping')))).toEqual([]);
    expect(rig.host.flows).toHaveLength(1);
    const flow = rig.host.flows[0]!;
    expect([flow.host, flow.port]).toEqual(['127.0.0.1', 7000]);
    expect(flow.sent).toEqual([bytes('ping')]);

    flow.reply(bytes('pong!'));
    const out = rig.port.takeDecoded(); // decodeFrame verified both checksums
    expect(out).toHaveLength(1);
    const f = out[0]!;
    expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
    expect(f.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP, proto: ipv4.PROTO_UDP, ttl: 64, totalLength: 20 + 8 + 5 });
    expect(f.udp).toMatchObject({ srcPort: 7000, dstPort: 5000, length: 13 });
    expect(f.payload).toEqual(bytes('pong!'));
    expect(rig.gateway.snapshot().udpFlows).toBe(1);
    expect(rig.gateway.snapshot().udp).toMatchObject({ flowsOpened: 1, toHost: 1, toGuest: 1, sendDropped: 0 });
    expect(rig.gateway.counters.dropped).toBe(0);
  });

  it('reuses the flow for later datagrams of the same 4-tuple and opens one per tuple', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, srcPort: 5000, dstPort: 7000 }, bytes('a')));
    rig.send(udpFrame({ dstIp: GW_IP, srcPort: 5000, dstPort: 7000 }, bytes('b')));
    rig.send(udpFrame({ dstIp: GW_IP, srcPort: 5001, dstPort: 7000 }, bytes('c')));
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 5000, dstPort: 7000 }, bytes('d')));
    expect(rig.host.flows.map((f) => [f.host, f.port, f.sent.map((d) => String.fromCharCode(...d)).join('')])).toEqual([
      ['127.0.0.1', 7000, 'ab'],
      ['127.0.0.1', 7000, 'c'],
      ['198.51.100.1', 7000, 'd'],
    ]);
    expect(rig.gateway.udpNat.size).toBe(3);
  });

  it('connects to an outside address as given and replies come from it', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 6000, dstPort: 123 }, bytes('ntp?')));
    expect(rig.host.flows.map((f) => [f.host, f.port])).toEqual([['198.51.100.1', 123]]);
    rig.host.flows[0]!.reply(bytes('ntp!'));
    const f = rig.port.takeDecoded()[0]!;
    expect(f.ip).toMatchObject({ src: OUTSIDE, dst: GUEST_IP });
    expect(f.udp).toMatchObject({ srcPort: 123, dstPort: 6000 });
  });

  it('carries empty datagrams and accepts guest datagrams without a UDP checksum', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, dstPort: 9, checksum: false }, new Uint8Array(0)));
    expect(rig.host.flows[0]!.sent).toEqual([new Uint8Array(0)]);
    rig.host.flows[0]!.reply(new Uint8Array(0));
    const f = rig.port.takeDecoded()[0]!;
    expect(f.udp!.length).toBe(8);
    expect(f.udp!.checksum).not.toBe(0);
  });

  it('fits host replies up to the MTU in one frame and fragments bigger ones (RFC 791)', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 9 }, bytes('x')));
    const flow = rig.host.flows[0]!;
    flow.reply(new Uint8Array(1500 - 28));
    expect(rig.port.take().map((b) => b.length)).toEqual([1514]);
    const big = Uint8Array.from({ length: 4000 }, (_, i) => i & 255);
    flow.reply(big);
    const frags = rig.port.take();
    expect(frags.map((b) => b.length)).toEqual([1514, 1514, 14 + 20 + (4008 - 2960)]);
    // Reassembled, the fragments are the datagram: offsets, MF, and the payload bytes.
    const offsets = frags.map((f) => new DataView(f.buffer, f.byteOffset).getUint16(14 + 6));
    expect(offsets).toEqual([0x2000 | 0, 0x2000 | (1480 >> 3), 2960 >> 3]);
    const payload = new Uint8Array(4008);
    frags.forEach((f, i) => payload.set(f.subarray(34), i * 1480));
    expect(payload.subarray(8)).toEqual(big);
    expect(rig.drops()).toEqual({});
  });

  it('with hostLoopback false: ICMP port unreachable quoting the datagram, no host socket', () => {
    const rig = new GatewayRig({ hostLoopback: false });
    const frame = udpFrame({ dstIp: GW_IP, srcPort: 5000, dstPort: 7000 }, bytes('0123456789abcdef'));
    const out = rig.exchange(frame);
    expect(out).toHaveLength(1);
    // RFC 792: the offending IP header plus the first 8 bytes of its data.
    expect(unreachable(out[0]!, icmp.CODE_PORT_UNREACH)).toEqual(frame.subarray(14, 14 + 20 + 8));
    expect(rig.host.flows).toEqual([]);
    expect(rig.drops()).toEqual({ 'udp-refused': 1 });
    // Outside destinations still go through.
    rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('x')));
    expect(rig.host.flows.map((f) => f.host)).toEqual(['198.51.100.1']);
  });

  it('isolated: ICMP administratively prohibited (type 3 code 13), no host connect', () => {
    const rig = new GatewayRig({ isolated: true });
    for (const dst of [GW_IP, OUTSIDE]) {
      const frame = udpFrame({ dstIp: dst, dstPort: 7000 }, bytes('x'));
      const out = rig.exchange(frame);
      expect(out).toHaveLength(1);
      expect(unreachable(out[0]!, 13)).toEqual(frame.subarray(14, 14 + 20 + 8));
    }
    expect(rig.host.flows).toEqual([]);
    expect(rig.gateway.udpNat.counters.prohibited).toBe(2);
    expect(rig.drops()).toEqual({ 'udp-refused': 2 });
  });

  it('a host refusal (ECONNREFUSED) becomes ICMP port unreachable quoting the flow', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, srcPort: 5000, dstPort: 7000 }, bytes('hello')));
    rig.host.flows[0]!.refuse();
    const out = rig.port.takeDecoded();
    expect(out).toHaveLength(1);
    const q = unreachable(out[0]!, icmp.CODE_PORT_UNREACH);
    expect(q.length).toBe(28);
    // The quote is a reconstruction of the guest's datagram: what its stack matches on.
    const qv = viewOf(q);
    const h = ipv4.blank();
    expect(ipv4.parse(qv, 0, q.length, h)).toBe(true);
    expect(h).toMatchObject({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_UDP, totalLength: 28 });
    expect([udp.srcPort(qv, 20), udp.dstPort(qv, 20)]).toEqual([5000, 7000]);
    // The flow stays: a later reply still reaches the guest.
    rig.host.flows[0]!.reply(bytes('late'));
    expect(rig.port.takeDecoded().map((f) => f.udp?.srcPort)).toEqual([7000]);
  });

  it('a host socket error closes the flow; the next datagram opens a new one', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('a')));
    rig.host.flows[0]!.fail();
    expect(rig.host.flows[0]!.closed).toBe(true);
    expect(rig.gateway.udpNat.size).toBe(0);
    rig.host.flows[0]!.reply(bytes('ghost'));
    expect(rig.port.frames).toEqual([]);
    rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('b')));
    expect(rig.host.flows).toHaveLength(2);
  });

  it.each([
    ['another guest on the subnet', '10.0.2.16'],
    ['loopback', '127.0.0.1'],
    ['0.0.0.0/8', '0.1.2.3'],
    ['multicast (unicast MAC)', '224.0.0.251'],
  ])('drops datagrams to %s silently (udp-refused, no ICMP, no socket)', (_what, dst) => {
    const rig = new GatewayRig();
    expect(rig.exchange(udpFrame({ dstIp: ip(dst), dstPort: 7000 }, bytes('x')))).toEqual([]);
    expect(rig.host.flows).toEqual([]);
    expect(rig.drops()).toEqual({ 'udp-refused': 1 });
  });

  it('drops and counts guest datagrams the host socket cannot queue, and carries on when it can', () => {
    const rig = new GatewayRig();
    rig.exchange(udpFrame({ dstIp: OUTSIDE, srcPort: 5100, dstPort: 9 }, bytes('one')));
    const flow = rig.host.flows[0]!;
    flow.full = true;
    rig.exchange(udpFrame({ dstIp: OUTSIDE, srcPort: 5100, dstPort: 9 }, bytes('two')));
    flow.full = false;
    rig.exchange(udpFrame({ dstIp: OUTSIDE, srcPort: 5100, dstPort: 9 }, bytes('three')));
    expect(flow.sent.map((d) => new TextDecoder().decode(d))).toEqual(['one', 'three']);
    expect(rig.gateway.udpNat.counters).toMatchObject({ toHost: 2, sendDropped: 1 });
  });

  it('answers UDP to the DNS address on a port other than 53 with port unreachable', () => {
    const rig = new GatewayRig();
    const out = rig.exchange(udpFrame({ dstIp: DNS_IP, dstPort: 5353 }, bytes('x')));
    expect(out[0]!.icmp).toMatchObject({ type: 3, code: 3 });
    expect(out[0]!.ip!.src).toBe(GW_IP);
    expect(rig.host.flows).toEqual([]);
  });

  it('drops broadcast UDP other than DHCP as udp-broadcast', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(udpFrame({ dstIp: ip('10.0.2.255'), dstPort: 137, dst: new Uint8Array(6).fill(255) }, bytes('x')))).toEqual([]);
    expect(rig.exchange(udpFrame({ dstIp: 0xffffffff, dstPort: 5678, dst: new Uint8Array(6).fill(255) }, bytes('x')))).toEqual([]);
    expect(rig.host.flows).toEqual([]);
    expect(rig.drops()).toEqual({ 'udp-broadcast': 2 });
  });

  describe('idle expiry', () => {
    it('closes a flow on sweep() once udpIdleMs passed since its last guest datagram', () => {
      const rig = new GatewayRig({ udpIdleMs: 5000 });
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('a')));
      rig.clock.t = 3000;
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('b'))); // refreshes
      rig.clock.t = 7999;
      rig.gateway.sweep();
      expect(rig.host.flows[0]!.closed).toBe(false);
      expect(rig.gateway.snapshot().udpFlows).toBe(1);
      rig.clock.t = 8000;
      rig.gateway.sweep();
      expect(rig.host.flows[0]!.closed).toBe(true);
      expect(rig.gateway.snapshot().udpFlows).toBe(0);
      expect(rig.gateway.udpNat.counters.flowsExpired).toBe(1);
      // Replies on the closed socket are ignored; the next datagram opens a new flow.
      rig.host.flows[0]!.reply(bytes('late'));
      expect(rig.port.frames).toEqual([]);
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('c')));
      expect(rig.host.flows).toHaveLength(2);
      expect(rig.host.flows[1]!.sent).toEqual([bytes('c')]);
    });

    it('expires only the idle flows', () => {
      const rig = new GatewayRig({ udpIdleMs: 1000 });
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 1 }, bytes('a')));
      rig.clock.t = 600;
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 2 }, bytes('b')));
      rig.clock.t = 1000;
      rig.gateway.sweep();
      expect(rig.host.flows.map((f) => f.closed)).toEqual([true, false]);
      rig.clock.t = 1600;
      rig.gateway.sweep();
      expect(rig.host.flows.map((f) => f.closed)).toEqual([true, true]);
    });

    // Regression: host replies refresh a flow (idle means no traffic either way).
    it('keeps a flow alive while the host keeps replying', () => {
      const rig = new GatewayRig({ udpIdleMs: 5000 });
      rig.send(udpFrame({ dstIp: OUTSIDE, dstPort: 7000 }, bytes('subscribe')));
      for (let t = 1000; t <= 12_000; t += 1000) {
        rig.clock.t = t;
        rig.host.flows[0]!.reply(bytes('tick'));
        rig.gateway.sweep();
      }
      expect(rig.port.take()).toHaveLength(12);
      expect(rig.host.flows[0]!.closed).toBe(false);
    });
  });

  it('decodes its own frames: the reply bytes round-trip through decodeFrame', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, dstPort: 7 }, bytes('echo')));
    rig.host.flows[0]!.reply(bytes('odd'));
    const raw = rig.port.take()[0]!;
    expect(decodeFrame(raw).payload).toEqual(bytes('odd'));
    expect(raw.length).toBe(14 + 20 + 8 + 3);
  });
});
