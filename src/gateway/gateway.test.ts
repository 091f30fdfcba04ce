/**
 * Gateway tests, sans-IO: guest frames in through handleFrame, replies read
 * back from a recording port and decoded with the wire codecs (checksums
 * verified by decodeFrame). This file: ARP, ICMP echo, neighbour learning
 * for static-address guests, sessions, counters and the TCP placeholder.
 * DHCP, DNS, UDP NAT and bad input live in the sibling gateway-*.test.ts.
 */
import { describe, expect, it } from 'vitest';
import * as arp from '../wire/arp.js';
import * as eth from '../wire/ethernet.js';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import { formatMac } from '../wire/addr.js';
import {
  DNS_IP,
  GUEST2_MAC,
  GUEST_IP,
  GUEST_MAC,
  GW_IP,
  GW_MAC,
  GatewayRig,
  RecordingPort,
  arpFrame,
  bytes,
  icmpEcho,
  ip,
  ipv4Frame,
  ipv4Packet,
  mac,
  pingFrame,
  tcpSegment,
  udpFrame,
} from '../../test/helpers/frames.js';

describe('Gateway ARP (RFC 826)', () => {
  it.each([
    ['the gateway', '10.0.2.2'],
    ['the DNS address', '10.0.2.3'],
  ])('answers a request for %s with the gateway MAC', (_what, target) => {
    const rig = new GatewayRig();
    const out = rig.exchange(arpFrame({ spa: GUEST_IP, tpa: ip(target) }));
    expect(out).toHaveLength(1);
    const f = out[0]!;
    expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
    expect(formatMac(f.eth.src)).toBe('52:55:0a:00:02:02');
    expect(f.eth.ethertype).toBe(eth.ETHERTYPE_ARP);
    expect(f.bytes.length).toBe(eth.HEADER_LEN + arp.HEADER_LEN);
    expect(f.arp).toEqual({ op: arp.OP_REPLY, sha: GW_MAC, spa: ip(target), tha: GUEST_MAC, tpa: GUEST_IP });
    expect(rig.gateway.counters.framesOut).toBe(1);
    expect(rig.gateway.counters.dropped).toBe(0);
  });

  it('writes the reply bytes exactly', () => {
    const rig = new GatewayRig();
    rig.send(arpFrame({ spa: GUEST_IP, tpa: GW_IP }));
    const hex = Buffer.from(rig.port.take()[0]!).toString('hex');
    expect(hex).toBe(
      '525400123456' + '52550a000202' + '0806' + // Ethernet
        '0001' + '0800' + '06' + '04' + '0002' + // htype, ptype, hlen, plen, op reply
        '52550a000202' + '0a000202' + // sender: gateway
        '525400123456' + '0a00020f', // target: the guest
    );
  });

  it('uses a configured gateway MAC', () => {
    const rig = new GatewayRig({ gatewayMac: '02:00:00:00:00:01' });
    const f = rig.exchange(arpFrame({ spa: GUEST_IP, tpa: GW_IP }))[0]!;
    expect(formatMac(f.arp!.sha)).toBe('02:00:00:00:00:01');
    expect(formatMac(f.eth.src)).toBe('02:00:00:00:00:01');
  });

  it('answers a request unicast to the gateway MAC (ARP refresh)', () => {
    const rig = new GatewayRig();
    const out = rig.exchange(arpFrame({ spa: GUEST_IP, tpa: DNS_IP, dst: GW_MAC, tha: GW_MAC }));
    expect(out.map((f) => f.arp?.spa)).toEqual([DNS_IP]);
  });

  it.each([
    ['another guest', '10.0.2.16'],
    ['the guest itself (gratuitous ARP)', '10.0.2.15'],
    ['an outside address', '8.8.8.8'],
  ])('does not answer a request for %s', (_what, target) => {
    const rig = new GatewayRig();
    expect(rig.exchange(arpFrame({ spa: GUEST_IP, tpa: ip(target) }))).toEqual([]);
    expect(rig.gateway.counters.dropped).toBe(0);
  });

  it('does not answer ARP replies', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(arpFrame({ op: arp.OP_REPLY, spa: GUEST_IP, tpa: GW_IP, dst: GW_MAC, tha: GW_MAC }))).toEqual([]);
  });

  it.each([
    ['truncated (27 bytes)', (f: Uint8Array) => f.subarray(0, eth.HEADER_LEN + 27)],
    ['hardware type 6', (f: Uint8Array) => (f[eth.HEADER_LEN + 1] = 6, f)],
    ['protocol type IPv6', (f: Uint8Array) => (f.set([0x86, 0xdd], eth.HEADER_LEN + 2), f)],
    ['hardware length 8', (f: Uint8Array) => (f[eth.HEADER_LEN + 4] = 8, f)],
    ['operation 3 (RARP)', (f: Uint8Array) => (f[eth.HEADER_LEN + 7] = 3, f)],
  ])('counts malformed ARP as arp-invalid: %s', (_what, mutate) => {
    const rig = new GatewayRig();
    expect(rig.exchange(mutate(arpFrame({ spa: GUEST_IP, tpa: GW_IP })))).toEqual([]);
    expect(rig.drops()).toEqual({ 'arp-invalid': 1 });
  });

  it('accepts a request padded to the 60-byte Ethernet minimum', () => {
    const rig = new GatewayRig();
    const f = new Uint8Array(60);
    f.set(arpFrame({ spa: GUEST_IP, tpa: GW_IP }));
    expect(rig.exchange(f)).toHaveLength(1);
  });
});

describe('Gateway ICMP echo (RFC 792)', () => {
  it.each([
    ['10.0.2.2', GW_IP],
    ['10.0.2.3', DNS_IP],
  ])('answers an echo request to %s: id, seq and payload echoed, checksums valid', (_t, dst) => {
    const rig = new GatewayRig();
    const payload = bytes('odd-length payload, 37 bytes long....');
    expect(payload.length % 2).toBe(1);
    const out = rig.exchange(pingFrame({ dstIp: dst, id: 0xbeef, seq: 7 }, payload));
    expect(out).toHaveLength(1);
    const f = out[0]!; // decodeFrame verified the IPv4 and ICMP checksums
    expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
    expect(formatMac(f.eth.src)).toBe(formatMac(GW_MAC));
    expect(f.ip).toMatchObject({ src: dst, dst: GUEST_IP, proto: ipv4.PROTO_ICMP, ttl: 64, flags: 0, fragOffset: 0, totalLength: 20 + 8 + payload.length });
    expect(f.icmp).toMatchObject({ type: icmp.TYPE_ECHO_REPLY, code: 0, id: 0xbeef, seq: 7 });
    expect(f.payload).toEqual(payload);
  });

  it('answers an empty echo and one of exactly MTU bytes', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(pingFrame({ dstIp: GW_IP }, new Uint8Array(0)))[0]!.payload).toEqual(new Uint8Array(0));
    const big = Uint8Array.from({ length: 1500 - 28 }, (_, i) => i & 255);
    const frame = pingFrame({ dstIp: GW_IP }, big);
    expect(frame.length).toBe(1514);
    const out = rig.exchange(frame);
    expect(out[0]!.payload).toEqual(big);
    expect(out[0]!.bytes.length).toBe(1514);
  });

  it('answers TTL 1 pings to its own addresses (they are not forwarded)', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(pingFrame({ dstIp: GW_IP, ttl: 1 }))[0]!.icmp!.type).toBe(icmp.TYPE_ECHO_REPLY);
  });

  it('drops an echo request to an outside address as icmp-unsupported on a gateway without a ping relay', () => {
    const rig = new GatewayRig({ ping: false });
    expect(rig.exchange(pingFrame({ dstIp: ip('198.51.100.1') }))).toEqual([]);
    expect(rig.drops()).toEqual({ 'icmp-unsupported': 1 });
  });

  it('drops ICMP other than echo requests (an echo reply, a timestamp request)', () => {
    const rig = new GatewayRig();
    const reply = ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_ICMP }, icmpEcho(1, 1, new Uint8Array(0), icmp.TYPE_ECHO_REPLY)));
    expect(rig.exchange(reply)).toEqual([]);
    const ts = new Uint8Array(20);
    const tv = new DataView(ts.buffer);
    icmp.emit({ ...icmp.blank(), type: 13, payloadLength: 12 }, tv, 0);
    expect(rig.exchange(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_ICMP }, ts)))).toEqual([]);
    expect(rig.drops()).toEqual({ 'icmp-unsupported': 2 });
  });

  it('drops an echo request with a bad ICMP checksum as icmp-invalid', () => {
    const rig = new GatewayRig();
    const f = pingFrame({ dstIp: GW_IP });
    f[f.length - 1]! ^= 0x01;
    expect(rig.exchange(f)).toEqual([]);
    expect(rig.drops()).toEqual({ 'icmp-invalid': 1 });
  });

  it('numbers its datagrams with a running IPv4 identification', () => {
    const rig = new GatewayRig();
    const a = rig.exchange(pingFrame({ dstIp: GW_IP, seq: 1 }))[0]!.ip!.id;
    const b = rig.exchange(pingFrame({ dstIp: GW_IP, seq: 2 }))[0]!.ip!.id;
    expect(b).toBe((a + 1) & 0xffff);
  });
});

describe('Gateway neighbour learning (static-address guests)', () => {
  const STATIC_IP = ip('10.0.2.99');
  const STATIC_MAC = mac('02:00:00:00:00:99');

  it('serves a guest that never asked DHCP: ARP, ping, and UDP NAT replies', () => {
    const rig = new GatewayRig();
    const a = rig.exchange(arpFrame({ src: STATIC_MAC, spa: STATIC_IP, tpa: GW_IP }));
    expect(a[0]!.arp).toMatchObject({ tha: STATIC_MAC, tpa: STATIC_IP });
    expect(rig.gateway.snapshot().neighbors).toEqual([{ ip: '10.0.2.99', mac: '02:00:00:00:00:99' }]);

    const p = rig.exchange(pingFrame({ src: STATIC_MAC, srcIp: STATIC_IP, dstIp: GW_IP }));
    expect(formatMac(p[0]!.eth.dst)).toBe('02:00:00:00:00:99');
    expect(p[0]!.ip!.dst).toBe(STATIC_IP);

    rig.send(udpFrame({ src: STATIC_MAC, srcIp: STATIC_IP, srcPort: 3333, dstIp: GW_IP, dstPort: 9000 }, bytes('hi')));
    expect(rig.host.flows).toHaveLength(1);
    rig.host.flows[0]!.reply(bytes('back'));
    const r = rig.port.takeDecoded();
    expect(r).toHaveLength(1);
    expect(formatMac(r[0]!.eth.dst)).toBe('02:00:00:00:00:99');
    expect(r[0]!.ip).toMatchObject({ src: GW_IP, dst: STATIC_IP });
    expect(r[0]!.udp).toMatchObject({ srcPort: 9000, dstPort: 3333 });
    expect(r[0]!.payload).toEqual(bytes('back'));
    expect(rig.gateway.leases()).toEqual([]);
  });

  it('follows a guest that changes MAC (the latest sender wins)', () => {
    const rig = new GatewayRig();
    rig.send(arpFrame({ src: STATIC_MAC, spa: STATIC_IP, tpa: GW_IP }));
    rig.send(arpFrame({ src: GUEST2_MAC, spa: STATIC_IP, tpa: GW_IP }));
    expect(rig.gateway.snapshot().neighbors).toEqual([{ ip: '10.0.2.99', mac: formatMac(GUEST2_MAC) }]);
  });

  it.each([
    ['0.0.0.0 (ARP probe)', '0.0.0.0'],
    ['the subnet broadcast', '10.0.2.255'],
    ['the gateway address', '10.0.2.2'],
    ['an address outside the subnet', '192.168.1.5'],
  ])('does not learn %s', (_what, spa) => {
    const rig = new GatewayRig();
    rig.send(arpFrame({ spa: ip(spa), tpa: ip('10.0.2.77') }));
    expect(rig.gateway.snapshot().neighbors).toEqual([]);
  });

  it('sends NAT replies to the session the guest is on, and forgets it on detach', () => {
    const rig = new GatewayRig();
    const port2 = new RecordingPort();
    const s2 = rig.gateway.attach(port2);
    expect(rig.gateway.sessionCount).toBe(2);
    rig.send(udpFrame({ src: GUEST2_MAC, srcIp: ip('10.0.2.16'), dstIp: GW_IP, dstPort: 9000 }, bytes('x')), s2);
    rig.host.flows[0]!.reply(bytes('y'));
    expect(rig.port.frames).toHaveLength(0);
    expect(port2.takeDecoded().map((f) => f.ip!.dst)).toEqual([ip('10.0.2.16')]);

    rig.gateway.detach(s2);
    expect(rig.gateway.sessionCount).toBe(1);
    expect(rig.host.flows[0]!.closed).toBe(true); // its flows went with it
    rig.host.flows[0]!.reply(bytes('z'));
    expect(port2.frames).toHaveLength(0);
    expect(rig.drops()).toEqual({});
  });

  it('sends nothing to a closed session', () => {
    const rig = new GatewayRig();
    rig.session.closed = true;
    rig.send(pingFrame({ dstIp: GW_IP }));
    expect(rig.port.frames).toHaveLength(0);
    expect(rig.gateway.counters.framesOut).toBe(0);
  });
});

describe('Gateway counters and snapshot', () => {
  it('counts frames and bytes both ways', () => {
    const rig = new GatewayRig();
    const ping = pingFrame({ dstIp: GW_IP });
    rig.send(ping);
    rig.send(new Uint8Array(5));
    const s = rig.gateway.snapshot();
    expect(s).toMatchObject({
      framesIn: 2,
      bytesIn: ping.length + 5,
      framesOut: 1,
      bytesOut: ping.length,
      dropped: 1,
      drops: { 'eth-short': 1 },
      connections: 1,
      udpFlows: 0,
      fragmentsPending: 0,
      leases: [],
    });
    expect(s.neighbors).toEqual([{ ip: '10.0.2.15', mac: formatMac(GUEST_MAC) }]);
  });

  it('close() closes host flows and detaches every session', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, dstPort: 9000 }, bytes('x')));
    rig.gateway.close();
    expect(rig.host.flows[0]!.closed).toBe(true);
    expect(rig.gateway.sessionCount).toBe(0);
    expect(rig.session.closed).toBe(true);
    expect(rig.gateway.snapshot().udpFlows).toBe(0);
  });
});

// TCP is a placeholder until TCP NAT lands: this block is expected to change then.
