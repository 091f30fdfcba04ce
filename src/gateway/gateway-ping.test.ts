/**
 * Gateway ping to the outside, sans-IO: guest echo requests to addresses
 * that are not the gateway's reach the fake ping helper (test/helpers/
 * fake-ping.ts) after the UDP NAT's policy; replies and ICMP errors the
 * helper hands back become frames to the guest (every checksum verified by
 * decodeFrame); refused ping sockets give the guest nothing and one warning.
 */
import { describe, expect, it } from 'vitest';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import { BROADCAST_MAC, formatIp4 } from '../wire/addr.js';
import { EACCES } from '../services/ping/protocol.js';
import { fragmentDatagram, GatewayRig, GUEST_IP, GW_IP, icmpEcho, ip, ipv4Frame, ipv4Packet, mac, pingFrame, viewOf, type DecodedFrame } from '../../test/helpers/frames.js';

const OUTSIDE = ip('198.51.100.1');
const ROUTER = Uint8Array.of(203, 0, 113, 9);
const HOST = Uint8Array.of(198, 51, 100, 2);
const PAYLOAD = new TextEncoder().encode('abcdefghijklmnopqrstuvwxyz0123456789!');
const b4 = (a: number): Uint8Array => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);

/** The quoted datagram of an ICMP error: its IPv4 addresses and protocol, and the echo request header (28 bytes in all). */
function quoted(f: DecodedFrame): { ip: { src: number; dst: number; proto: number }; echo: { type: number; id: number; seq: number }; raw: Uint8Array } {
  const q = f.payload;
  expect(q.length).toBe(28);
  const v = viewOf(q);
  return {
    ip: { src: v.getUint32(12), dst: v.getUint32(16), proto: v.getUint8(9) },
    echo: { type: v.getUint8(20), id: v.getUint16(24), seq: v.getUint16(26) },
    raw: q.subarray(20, 28),
  };
}

describe('Gateway ping to the outside', () => {
  it('relays an echo request through a ping socket and the reply back with the guest identifier, sequence and payload', () => {
    const rig = new GatewayRig();
    const frame = pingFrame({ dstIp: OUTSIDE, id: 0xbeef, seq: 3, ttl: 64 }, PAYLOAD);
    expect(rig.exchange(frame)).toEqual([]);
    expect(rig.ping.opens).toEqual([{ flow: rig.ping.opens[0]!.flow, family: 4, dst: b4(OUTSIDE), ttl: 63 }]);
    expect(rig.ping.sends).toHaveLength(1);
    expect(rig.ping.sends[0]!.message).toEqual(frame.subarray(14 + 20)); // the ICMP message exactly as the guest sent it
    rig.ping.opened(HOST);
    rig.ping.replyTo(rig.ping.sends[0]!, { ttl: 60 });
    const out = rig.port.takeDecoded();
    expect(out).toHaveLength(1);
    expect(out[0]!.ip).toMatchObject({ src: OUTSIDE, dst: GUEST_IP, proto: ipv4.PROTO_ICMP, ttl: 59 });
    expect(out[0]!.icmp).toMatchObject({ type: icmp.TYPE_ECHO_REPLY, code: 0, id: 0xbeef, seq: 3 });
    expect(out[0]!.payload).toEqual(PAYLOAD);
    expect(rig.gateway.snapshot().ping).toMatchObject({ flows: 1, requests: 1, replies: 1 });
    expect(rig.drops()).toEqual({});
  });

  it('relays a fragmented big request whole, and fragments the big reply to the MTU', () => {
    const rig = new GatewayRig();
    const big = Uint8Array.from({ length: 4000 }, (_, i) => i & 255);
    const datagram = ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_ICMP }, icmpEcho(7, 1, big));
    for (const part of fragmentDatagram(datagram, [1480, 2960])) rig.send(ipv4Frame(part));
    expect(rig.ping.sends).toHaveLength(1);
    expect(rig.ping.sends[0]!.message.subarray(8)).toEqual(big);
    rig.ping.replyTo(rig.ping.sends[0]!);
    const frames = rig.port.take();
    expect(frames.length).toBe(3);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(1514);
  });

  it("sends with the guest's TTL less one; TTL 1 expires at the gateway and opens nothing", () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: OUTSIDE, ttl: 2, seq: 1 }));
    rig.send(pingFrame({ dstIp: OUTSIDE, ttl: 5, seq: 2 }));
    expect(rig.ping.sends.map((s) => s.ttl)).toEqual([1, 4]);
    const out = rig.exchange(pingFrame({ dstIp: OUTSIDE, ttl: 1, seq: 3 }));
    expect(out[0]!.icmp).toMatchObject({ type: icmp.TYPE_TIME_EXCEEDED, code: 0 });
    expect(out[0]!.ip!.src).toBe(GW_IP);
    expect(rig.ping.sends).toHaveLength(2);
  });

  it('relays time exceeded from a router, quoting the guest header and request as the guest sent them', () => {
    const rig = new GatewayRig();
    const frame = pingFrame({ dstIp: OUTSIDE, id: 0x1234, seq: 9, ttl: 3 });
    rig.send(frame);
    rig.ping.opened(HOST);
    rig.ping.errorAbout(rig.ping.sends[0]!, icmp.TYPE_TIME_EXCEEDED, 0, ROUTER);
    const f = rig.port.takeDecoded()[0]!;
    expect(formatIp4(f.ip!.src)).toBe('203.0.113.9');
    expect(f.ip!.dst).toBe(GUEST_IP);
    expect(f.icmp).toMatchObject({ type: icmp.TYPE_TIME_EXCEEDED, code: 0 });
    const q = quoted(f);
    expect(q.ip).toMatchObject({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_ICMP });
    expect(q.raw).toEqual(frame.subarray(34, 42)); // type, code, checksum, id, seq: the guest's own
  });

  it('an error the host raised about itself (no ARP answer) comes from the gateway address', () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: ip('198.51.100.99') }));
    rig.ping.opened(HOST);
    rig.ping.errorAbout(rig.ping.sends[0]!, icmp.TYPE_DEST_UNREACH, icmp.CODE_HOST_UNREACH, HOST);
    const f = rig.port.takeDecoded()[0]!;
    expect(f.ip!.src).toBe(GW_IP);
    expect(f.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code: icmp.CODE_HOST_UNREACH });
  });

  it('passes the next-hop MTU of "fragmentation needed" on', () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: OUTSIDE }));
    rig.ping.errorAbout(rig.ping.sends[0]!, icmp.TYPE_DEST_UNREACH, icmp.CODE_FRAG_NEEDED, ROUTER, { info: 1280 });
    expect(rig.port.takeDecoded()[0]!.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code: icmp.CODE_FRAG_NEEDED, mtu: 1280 });
  });

  it('--isolated: administratively prohibited from the gateway, nothing opened; pinging the gateway still works', () => {
    const rig = new GatewayRig({ isolated: true });
    const out = rig.exchange(pingFrame({ dstIp: OUTSIDE, id: 5 }));
    expect(out).toHaveLength(1);
    expect(out[0]!.ip!.src).toBe(GW_IP);
    expect(out[0]!.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code: icmp.CODE_ADMIN_PROHIBITED });
    expect(quoted(out[0]!).echo).toMatchObject({ type: icmp.TYPE_ECHO_REQUEST, id: 5 });
    expect(rig.ping.opens).toEqual([]);
    expect(rig.drops()).toEqual({ 'ping-refused': 1 });
    expect(rig.exchange(pingFrame({ dstIp: GW_IP }))[0]!.icmp!.type).toBe(icmp.TYPE_ECHO_REPLY);
  });

  it('--no-host: the host’s own addresses are prohibited, the outside is relayed', () => {
    const hostIp = ip('192.168.1.20');
    const rig = new GatewayRig({ hostAccess: false, hostAddresses: [hostIp] });
    expect(rig.exchange(pingFrame({ dstIp: hostIp }))[0]!.icmp).toMatchObject({ type: icmp.TYPE_DEST_UNREACH, code: icmp.CODE_ADMIN_PROHIBITED });
    expect(rig.ping.opens).toEqual([]);
    rig.send(pingFrame({ dstIp: OUTSIDE }));
    expect(rig.ping.opens.map((o) => o.dst)).toEqual([b4(OUTSIDE)]);
  });

  it.each([
    ['the limited broadcast', '255.255.255.255', {}],
    ['the subnet broadcast', '10.0.2.255', {}],
    ['a multicast group', '224.0.0.1', {}],
    ['class E', '240.0.0.1', {}],
    ['another guest', '10.0.2.16', {}],
    ['this network', '0.1.2.3', {}],
    ['loopback', '127.0.0.1', {}],
    ['an outside address in a broadcast frame', '198.51.100.1', { dst: BROADCAST_MAC }],
    ['an outside address in a multicast frame', '198.51.100.1', { dst: mac('01:00:5e:00:00:01') }],
  ])('drops an echo request to %s silently (ping-refused)', (_what, dst, eth) => {
    const rig = new GatewayRig();
    expect(rig.exchange(pingFrame({ dstIp: ip(dst), ...eth }))).toEqual([]);
    expect(rig.ping.opens).toEqual([]);
    expect(rig.drops()).toEqual({ 'ping-refused': 1 });
  });

  it('ping sockets refused: the guest gets nothing, the gateway warns once and counts every request', () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: OUTSIDE, seq: 1 }));
    rig.ping.openFailed(EACCES);
    for (let seq = 2; seq <= 4; seq++) {
      rig.clock.t += 1000;
      rig.send(pingFrame({ dstIp: OUTSIDE, seq }));
    }
    expect(rig.port.take()).toEqual([]);
    expect(rig.warnings).toEqual([['denied', '']]);
    expect(rig.ping.opens).toHaveLength(1);
    expect(rig.gateway.snapshot().ping).toMatchObject({ denied: 4, replies: 0, flows: 0 });
    expect(rig.drops()).toEqual({ 'ping-unavailable': 3 });
  });

  it('closes the flows of a guest whose link closes, and drops a late reply for it', () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: OUTSIDE }));
    const sent = rig.ping.sends[0]!;
    rig.gateway.detach(rig.session);
    expect(rig.ping.closes).toEqual([sent.flow]);
    rig.ping.replyTo(sent);
    expect(rig.port.take()).toEqual([]);
    expect(rig.gateway.snapshot().ping).toMatchObject({ flows: 0, stale: 1, replies: 0 });
  });

  it('closes idle flows on sweep and stops the helper at close', () => {
    const rig = new GatewayRig();
    rig.send(pingFrame({ dstIp: OUTSIDE }));
    rig.clock.t += 60_000;
    rig.gateway.sweep();
    expect(rig.ping.closes).toHaveLength(1);
    rig.gateway.close();
    expect(rig.ping.shutdowns).toBe(1);
  });
});
