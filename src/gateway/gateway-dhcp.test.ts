/**
 * Gateway DHCP tests (RFC 2131): whole DORA exchanges from crafted client
 * frames, reply contents parsed back with the wire codec, and where each
 * reply is sent (Ethernet and IPv4 destinations, RFC 2131 §4.1).
 */
import { describe, expect, it } from 'vitest';
import * as dhcp from '../wire/dhcpv4.js';
import { formatMac } from '../wire/addr.js';
import {
  DNS_IP,
  GUEST2_MAC,
  GUEST_IP,
  GUEST_MAC,
  GW_IP,
  GW_MAC,
  GatewayRig,
  decodeDhcp,
  dhcpFrame,
  ip,
  type DecodedFrame,
} from '../../test/helpers/frames.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';

function only(frames: DecodedFrame[]): DecodedFrame {
  expect(frames).toHaveLength(1);
  return frames[0]!;
}

/** DISCOVER then REQUEST for what was offered; returns both replies. */
function dora(rig: GatewayRig, chaddr = GUEST_MAC, xid = 0x1000, broadcast = true): { offer: dhcp.Message; ack: dhcp.Message; offerFrame: DecodedFrame; ackFrame: DecodedFrame } {
  const offerFrame = only(rig.exchange(dhcpFrame({ type: dhcp.DISCOVER, chaddr, xid, broadcast })));
  const offer = decodeDhcp(offerFrame);
  const ackFrame = only(rig.exchange(dhcpFrame({ type: dhcp.REQUEST, chaddr, xid: xid + 1, broadcast, requestedIp: offer.yiaddr, serverId: rig.config.gatewayIp })));
  return { offer, ack: decodeDhcp(ackFrame), offerFrame, ackFrame };
}

describe('Gateway DHCP', () => {
  it('offers 10.0.2.15 with router, DNS, mask, MTU, lease times, domain and search list', () => {
    const rig = new GatewayRig();
    const f = only(rig.exchange(dhcpFrame({ type: dhcp.DISCOVER, xid: 0xcafe0001, broadcast: true, hostname: 'alpine' })));
    const m = decodeDhcp(f);
    expect(m).toMatchObject({ op: dhcp.BOOTREPLY, htype: 1, hlen: 6, xid: 0xcafe0001, flags: dhcp.FLAG_BROADCAST, ciaddr: 0, yiaddr: GUEST_IP, giaddr: 0, messageType: dhcp.OFFER });
    expect(formatMac(m.chaddr)).toBe(formatMac(GUEST_MAC));
    expect(m.options).toMatchObject({
      serverId: GW_IP,
      subnetMask: ip('255.255.255.0'),
      routers: [GW_IP],
      dns: [DNS_IP],
      mtu: 1500,
      broadcast: ip('10.0.2.255'),
      leaseTime: 3600,
      t1: 1800,
      t2: 3150,
      hostname: 'alpine',
      domainName: 'vmnet.internal',
      domainSearch: ['vmnet.internal'],
    });
  });

  it('acknowledges the REQUEST for the offered address and records the lease', () => {
    const rig = new GatewayRig();
    const { offer, ack } = dora(rig);
    expect(offer.yiaddr).toBe(GUEST_IP);
    expect(ack).toMatchObject({ op: dhcp.BOOTREPLY, xid: 0x1001, yiaddr: GUEST_IP, messageType: dhcp.ACK });
    expect(ack.options).toMatchObject({ serverId: GW_IP, routers: [GW_IP], dns: [DNS_IP], subnetMask: ip('255.255.255.0'), mtu: 1500, leaseTime: 3600 });
    expect(rig.gateway.snapshot().leases).toEqual([{ mac: formatMac(GUEST_MAC), ip: '10.0.2.15', hostname: null }]);
    expect(rig.gateway.counters.dropped).toBe(0);
  });

  it('hands the MTU from the config, up to 65520, and the configured lease time', () => {
    const rig = new GatewayRig({ mtu: 65520, leaseTime: 600 });
    const { offer, ack } = dora(rig);
    expect(offer.options.mtu).toBe(65520);
    expect(ack.options).toMatchObject({ mtu: 65520, leaseTime: 600, t1: 300, t2: 525 });
  });

  it('gives a second MAC 10.0.2.16 and the same MAC its address again', () => {
    const rig = new GatewayRig();
    expect(dora(rig, GUEST_MAC, 0x10).ack.yiaddr).toBe(ip('10.0.2.15'));
    expect(dora(rig, GUEST2_MAC, 0x20).ack.yiaddr).toBe(ip('10.0.2.16'));
    expect(dora(rig, GUEST_MAC, 0x30).ack.yiaddr).toBe(ip('10.0.2.15'));
    expect(decodeDhcp(only(rig.exchange(dhcpFrame({ type: dhcp.DISCOVER, chaddr: GUEST2_MAC, xid: 0x40 })))).yiaddr).toBe(ip('10.0.2.16'));
    expect(rig.gateway.leases().map((l) => [l.mac, l.ip])).toEqual([
      [formatMac(GUEST_MAC), ip('10.0.2.15')],
      [formatMac(GUEST2_MAC), ip('10.0.2.16')],
    ]);
  });

  it('starts the pool at --dhcp-start and never offers the gateway or DNS address', () => {
    const rig = new GatewayRig({ subnet: '192.168.7.0/24', dhcpStart: '192.168.7.2' });
    // .2 is the gateway and .3 the DNS address: the first free one is .4.
    expect(dora(rig).ack.yiaddr).toBe(ip('192.168.7.4'));
  });

  describe('reply destinations (RFC 2131 §4.1)', () => {
    it('broadcast flag set: Ethernet and IPv4 broadcast, 67 → 68, from the gateway', () => {
      const rig = new GatewayRig();
      const { offerFrame, ackFrame } = dora(rig, GUEST_MAC, 1, true);
      for (const f of [offerFrame, ackFrame]) {
        expect(formatMac(f.eth.dst)).toBe(BROADCAST);
        expect(formatMac(f.eth.src)).toBe(formatMac(GW_MAC));
        expect(f.ip).toMatchObject({ src: GW_IP, dst: 0xffffffff, ttl: 64 });
        expect(f.udp).toMatchObject({ srcPort: 67, dstPort: 68 });
      }
    });

    it('broadcast flag clear, ciaddr 0: unicast to chaddr and yiaddr', () => {
      const rig = new GatewayRig();
      const { offerFrame, ackFrame } = dora(rig, GUEST_MAC, 1, false);
      for (const f of [offerFrame, ackFrame]) {
        expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
        expect(f.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP });
        expect(f.udp).toMatchObject({ srcPort: 67, dstPort: 68 });
        expect(decodeDhcp(f).flags).toBe(0);
      }
    });

    it('renewing (ciaddr set, unicast to the server): ACK unicast to ciaddr', () => {
      const rig = new GatewayRig();
      dora(rig);
      rig.clock.t += 1800_000;
      const f = only(
        rig.exchange(dhcpFrame({ type: dhcp.REQUEST, xid: 77, ciaddr: GUEST_IP }, { srcIp: GUEST_IP, dstIp: GW_IP, dst: GW_MAC })),
      );
      const m = decodeDhcp(f);
      expect(m).toMatchObject({ messageType: dhcp.ACK, xid: 77, ciaddr: GUEST_IP, yiaddr: GUEST_IP });
      expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
      expect(f.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP });
    });

    it('NAK: always broadcast, even without the broadcast flag', () => {
      const rig = new GatewayRig();
      const f = only(rig.exchange(dhcpFrame({ type: dhcp.REQUEST, xid: 9, requestedIp: ip('192.168.1.50'), serverId: GW_IP })));
      expect(decodeDhcp(f)).toMatchObject({ messageType: dhcp.NAK, yiaddr: 0 });
      expect(formatMac(f.eth.dst)).toBe(BROADCAST);
      expect(f.ip!.dst).toBe(0xffffffff);
    });
  });

  it('is served at the subnet broadcast and at the gateway address too', () => {
    const rig = new GatewayRig();
    expect(rig.exchange(dhcpFrame({ type: dhcp.DISCOVER, xid: 1 }, { dstIp: ip('10.0.2.255') }))).toHaveLength(1);
    expect(rig.exchange(dhcpFrame({ type: dhcp.DISCOVER, xid: 2 }, { dstIp: GW_IP, dst: GW_MAC }))).toHaveLength(1);
  });

  it('stays silent for a REQUEST selecting another server', () => {
    const rig = new GatewayRig();
    rig.exchange(dhcpFrame({ type: dhcp.DISCOVER }));
    expect(rig.exchange(dhcpFrame({ type: dhcp.REQUEST, requestedIp: GUEST_IP, serverId: ip('10.0.2.200') }))).toEqual([]);
    expect(rig.gateway.dhcp.counters.dropped.otherServer).toBe(1);
  });

  it('counts a BOOTREPLY or a message without the magic cookie as dhcp-invalid', () => {
    const rig = new GatewayRig();
    const reply = dhcpFrame({ type: dhcp.DISCOVER });
    reply[14 + 20 + 8] = dhcp.BOOTREPLY; // op; the UDP checksum must follow
    fixUdpChecksum(reply);
    expect(rig.exchange(reply)).toEqual([]);
    const nocookie = dhcpFrame({ type: dhcp.DISCOVER });
    nocookie[14 + 20 + 8 + 236] = 0;
    fixUdpChecksum(nocookie);
    expect(rig.exchange(nocookie)).toEqual([]);
    expect(rig.drops()).toEqual({ 'dhcp-invalid': 2 });
  });

  it('drops a relayed request (giaddr set): there are no relay agents on a vmnet link', () => {
    const rig = new GatewayRig();
    const f = dhcpFrame({ type: dhcp.DISCOVER });
    new DataView(f.buffer).setUint32(14 + 20 + 8 + 24, ip('10.0.2.250'));
    fixUdpChecksum(f);
    expect(rig.exchange(f)).toEqual([]);
    expect(rig.drops()).toEqual({ 'dhcp-invalid': 1 });
  });
});

/** Zeroes the UDP checksum (= none) of an untagged frame with a 20-byte IPv4 header, after a test edited the payload. */
function fixUdpChecksum(frame: Uint8Array): void {
  frame[14 + 20 + 6] = 0;
  frame[14 + 20 + 7] = 0;
}
