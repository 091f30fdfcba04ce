/**
 * `--no-host` (GatewayOptions.hostAccess false): NAT refuses every address
 * of the host itself — its interfaces' addresses (injected here; the server
 * reads them from os.networkInterfaces()), 127/8 and the gateway address —
 * with RST for TCP and ICMP administratively prohibited for UDP, while the
 * outside stays reachable.
 */
import { describe, expect, it } from 'vitest';
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import { GW_IP, GUEST_IP, GatewayRig, bytes, ip, ipv4Frame, ipv4Packet, pingFrame, tcpSegment, udpFrame } from '../../test/helpers/frames.js';

const HOST_ADDR = ip('192.168.7.10');
const OUTSIDE = ip('198.51.100.1');

function rig(hostAccess: boolean) {
  const r = new GatewayRig({ hostAccess, hostAddresses: [HOST_ADDR] });
  r.send(pingFrame({ dstIp: GW_IP }));
  r.port.take();
  return r;
}

const syn = (r: GatewayRig, dst: number, port: number) => {
  r.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, dst, 40000, port, { seq: 1 }))));
  return r.port.takeDecoded();
};

describe('Gateway --no-host', () => {
  it('refuses TCP to the host’s own addresses, loopback and the gateway address with RST; the outside is dialed', () => {
    const r = rig(false);
    for (const dst of [HOST_ADDR, ip('127.0.0.1'), ip('127.1.2.3'), GW_IP]) {
      const out = syn(r, dst, 22);
      expect(out).toHaveLength(1);
      expect(out[0]!.ip).toMatchObject({ src: dst, dst: GUEST_IP });
      expect(out[0]!.payload[13]! & 0x04).toBe(0x04); // RST
    }
    expect(r.tcp.dials).toEqual([]);
    expect(syn(r, OUTSIDE, 80)).toEqual([]);
    expect(r.tcp.dials.map((d) => d.host)).toEqual(['198.51.100.1']);
  });

  it('answers UDP to the host with ICMP administratively prohibited and opens no socket', () => {
    const r = rig(false);
    for (const dst of [HOST_ADDR, ip('127.0.0.53'), GW_IP]) {
      r.send(udpFrame({ dstIp: dst, dstPort: 53 }, bytes('q')));
      const out = r.port.takeDecoded();
      expect(out.map((f) => [f.icmp?.type, f.icmp?.code])).toEqual([[icmp.TYPE_DEST_UNREACH, 13]]);
    }
    r.send(udpFrame({ dstIp: OUTSIDE, dstPort: 53 }, bytes('q')));
    expect(r.host.flows.map((f) => f.host)).toEqual(['198.51.100.1']);
  });

  it('without the flag the host’s addresses are NAT destinations like any other', () => {
    const r = rig(true);
    expect(syn(r, HOST_ADDR, 22)).toEqual([]);
    expect(r.tcp.dials.map((d) => d.host)).toEqual(['192.168.7.10']);
  });
});
