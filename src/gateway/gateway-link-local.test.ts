/**
 * Link-local destinations (169.254.0.0/16) are not routed (RFC 3927 §2.7: a
 * router must not forward a packet with a link-local destination): TCP gets
 * RST, UDP and ping ICMP administratively prohibited, and no host socket
 * (nor ping socket) is opened. Before, a guest's request to 169.254.169.254 was NATed to the
 * host's own link-local network: on a cloud host, the host's instance
 * metadata service and its credentials.
 */
import { describe, expect, it } from 'vitest';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import { GW_IP, GUEST_IP, GatewayRig, bytes, ip, ipv4Frame, ipv4Packet, pingFrame, tcpSegment, udpFrame } from '../../test/helpers/frames.js';

const METADATA = ip('169.254.169.254');

function rig(): GatewayRig {
  const r = new GatewayRig();
  r.send(pingFrame({ dstIp: GW_IP }));
  r.port.take();
  return r;
}

describe('link-local destinations', () => {
  it('TCP to 169.254.169.254 gets RST, and nothing is dialed', () => {
    const r = rig();
    for (const dst of [METADATA, ip('169.254.0.1')]) {
      r.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, dst, 40000, 80, { seq: 1 }))));
      const out = r.port.takeDecoded();
      expect(out).toHaveLength(1);
      expect(out[0]!.payload[13]! & 0x04).toBe(0x04);
    }
    expect(r.tcp.dials).toEqual([]);
    expect(r.gateway.tcpNat.counters.prohibited).toBe(2);
  });

  it('UDP to 169.254.169.254 gets ICMP administratively prohibited, and no socket is opened', () => {
    const r = rig();
    r.send(udpFrame({ dstIp: METADATA, dstPort: 53 }, bytes('q')));
    expect(r.port.takeDecoded().map((f) => [f.icmp?.type, f.icmp?.code])).toEqual([[icmp.TYPE_DEST_UNREACH, 13]]);
    expect(r.host.flows).toEqual([]);
  });

  it('ping to 169.254.169.254 gets ICMP administratively prohibited, and no ping socket is opened', () => {
    const r = rig();
    r.send(pingFrame({ dstIp: METADATA, id: 9 }));
    expect(r.port.takeDecoded().map((f) => [f.ip?.src, f.icmp?.type, f.icmp?.code])).toEqual([[GW_IP, icmp.TYPE_DEST_UNREACH, icmp.CODE_ADMIN_PROHIBITED]]);
    expect(r.ping.opens).toEqual([]);
    expect(r.drops()).toEqual({ 'ping-refused': 1 });
  });
});
