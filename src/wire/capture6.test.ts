/**
 * The IPv6 codecs against a whole real exchange: every frame of
 * test/fixtures/ipv6/guest.pcap (Linux 6.x as the guest, dnsmasq 2.90 as the
 * router; see capture.sh there) decodes through frames6.decodeFrame6, which
 * walks the extension headers and verifies every checksum; and frames built
 * by the frames6 builders for the gateway's tests decode to what was put in.
 */
import { describe, expect, it } from 'vitest';
import {
  ALL_DHCP6, capturedFrame, decodeFrame6, dhcpv6Frame, dhcpv6Repr, fragmentPacket6, GUEST6, GUEST_LL6, GW6, GW_LL6, ip6, ipv6Frame, ipv6Packet,
  macText, ndpFrame, ndpRepr, ping6Frame, readPcap, tcp6Frame, udp6Frame, udpDatagram6,
} from '../../test/helpers/frames6.js';
import { GUEST_MAC, xorshift32 } from '../../test/helpers/frames.js';
import { formatIp6, solicitedNode6 } from './addr.js';
import * as dhcpv6 from './dhcpv6.js';
import * as icmpv6 from './icmpv6.js';
import * as ipv6 from './ipv6.js';
import * as ndp from './ndp.js';
import * as eth from './ethernet.js';
import * as tcp from './tcp.js';
import * as udp from './udp.js';

describe('IPv6 capture and frame builders', () => {
  it('decodes every captured frame with valid checksums', () => {
    const frames = readPcap(new URL('../../test/fixtures/ipv6/guest.pcap', import.meta.url).pathname);
    expect(frames.length).toBe(37);
    const kinds = new Map<string, number>();
    for (const [i, f] of frames.entries()) {
      let d;
      try {
        d = decodeFrame6(f);
      } catch (err) {
        throw new Error(`frame ${i + 1}: ${(err as Error).message}`);
      }
      const kind = d.ndp ? `ndp${d.ndp.type}` : d.dhcp ? `dhcpv6-${d.dhcp.msgType}` : d.icmp ? `icmpv6-${d.icmp.type}` : d.tcp ? 'tcp' : d.udp ? 'udp' : 'other';
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    expect(Object.fromEntries(kinds)).toEqual({
      'icmpv6-143': 9, ndp133: 1, ndp134: 2, ndp135: 5, ndp136: 2, 'dhcpv6-11': 1, 'dhcpv6-7': 2, 'dhcpv6-1': 1, 'dhcpv6-2': 1, 'dhcpv6-3': 1,
      'icmpv6-128': 1, 'icmpv6-129': 1, tcp: 8, udp: 1, 'icmpv6-1': 1,
    });
    expect(macText(decodeFrame6(capturedFrame(12)).eth.dst)).toBe('52:54:00:12:34:56');
  });

  it('builds guest frames that decode to what was put in', () => {
    const ping = decodeFrame6(ping6Frame({ dstIp: GW6, id: 7, seq: 9 }, new Uint8Array([1, 2, 3])));
    expect([formatIp6(ping.ip.src), ping.icmp!.type, ping.icmp!.id, ping.icmp!.seq, [...ping.payload]]).toEqual([formatIp6(GUEST6), 128, 7, 9, [1, 2, 3]]);
    const rs = decodeFrame6(ndpFrame(ndpRepr(icmpv6.TYPE_ROUTER_SOLICIT, {}, { sourceLinkAddr: GUEST_MAC }), { dstIp: ip6('ff02::2') }));
    expect([macText(rs.eth.dst), rs.ip.hopLimit, rs.ndp!.type, macText(rs.ndp!.options.sourceLinkAddr)]).toEqual(['33:33:00:00:00:02', 255, 133, '52:54:00:12:34:56']);
    const dad = decodeFrame6(ndpFrame(ndpRepr(icmpv6.TYPE_NEIGHBOR_SOLICIT, { target: GUEST6 }), { srcIp: ip6('::'), dstIp: solicitedNode6(GUEST6) }));
    expect(ndp.checkIp(dad.ndp!, dad.ip.hopLimit, dad.ip.src, dad.ip.dst)).toBe(true);
    const u = decodeFrame6(udp6Frame({ dstIp: GW6, dstPort: 53 }, new Uint8Array(5)));
    expect([u.udp!.dstPort, u.payload.length]).toEqual([53, 5]);
    const t = decodeFrame6(tcp6Frame({ dstIp: GW6, dstPort: 80, mss: 1440 }));
    expect([t.tcp!.dstPort, t.tcp!.flags, t.tcp!.mss]).toEqual([80, 2, 1440]);
    const info = decodeFrame6(dhcpv6Frame(dhcpv6Repr({}, { clientId: dhcpv6.duidLl(GUEST_MAC), oro: [23, 24], elapsedTime: 0 })));
    expect([formatIp6(info.ip.src), formatIp6(info.ip.dst), macText(info.eth.dst), info.dhcp!.msgType, info.dhcp!.options.oro]).toEqual([
      formatIp6(GUEST_LL6), formatIp6(ALL_DHCP6), '33:33:00:01:00:02', dhcpv6.INFORMATION_REQUEST, [23, 24],
    ]);
    expect(formatIp6(GW_LL6)).toBe('fe80::5055:aff:fe00:202');
  });

  it('builds fragments that the walk reports for reassembly, and decodeFrame6 refuses bad checksums', () => {
    const packet = ipv6Packet({ src: GUEST6, dst: GW6, nextHeader: ipv6.NH_UDP }, udpDatagram6(GUEST6, GW6, 1, 2, new Uint8Array(3000)));
    const frags = fragmentPacket6(packet, [1448, 2896], 0x1234);
    const walked = frags.map((f) => decodeFrame6(ipv6Frame(f)).chain);
    expect(walked.map((c) => [c.fragment, c.fragOffset, c.fragMore, c.fragId, c.fragDataLength])).toEqual([
      [true, 0, true, 0x1234, 1448], [true, 1448, true, 0x1234, 1448], [true, 2896, false, 0x1234, 112],
    ]);
    const bad = udp6Frame({ dstIp: GW6, dstPort: 53 }, new Uint8Array(5));
    bad[bad.length - 1] = 1;
    expect(() => decodeFrame6(bad)).toThrow(/udp: missing or bad checksum/);
  });

  it('parses mutated and truncated captured frames through every layer without throwing or reading past the frame', () => {
    const frames = readPcap(new URL('../../test/fixtures/ipv6/guest.pcap', import.meta.url).pathname);
    const rnd = xorshift32(0x6d6e);
    const e = eth.blank();
    const h = ipv6.blank();
    const c = ipv6.blankChain();
    const i6 = icmpv6.blank();
    const n = ndp.blank();
    const u = udp.blank();
    const d = dhcpv6.blank();
    const t = tcp.blank();
    let deep = 0;
    for (let round = 0; round < 4000; round++) {
      const f = frames[rnd.int(frames.length)]!.slice();
      for (let k = rnd.int(4); k >= 0; k--) f[14 + rnd.int(f.length - 14)] = rnd.chance(0.5) ? rnd.int(256) : rnd.int(3);
      const len = rnd.chance(0.3) ? 14 + rnd.int(f.length - 13) : f.length;
      const v = new DataView(f.buffer, 0, len); // a read past len throws RangeError
      expect(() => {
        if (!eth.parse(v, 0, len, e) || !ipv6.parse(v, e.payloadOffset, e.payloadLength, h)) return;
        if (!ipv6.walk(v, e.payloadOffset, e.payloadLength, c) || c.action !== ipv6.ACTION_NONE || c.fragment) return;
        deep++;
        if (c.proto === ipv6.NH_ICMPV6 && icmpv6.parse(v, c.offset, c.length, i6)) {
          icmpv6.verify(v, c.offset, c.length, h.src, h.dst);
          ndp.parse(v, c.offset, c.length, n);
        } else if (c.proto === ipv6.NH_UDP && udp.parse(v, c.offset, c.length, u)) {
          udp.verify6(v, c.offset, u.length, h.src, h.dst);
          dhcpv6.parse(v, u.payloadOffset, u.payloadLength, d);
        } else if (c.proto === ipv6.NH_TCP && tcp.parse(v, c.offset, c.length, t)) {
          tcp.verify6(v, c.offset, c.length, h.src, h.dst);
        }
      }).not.toThrow();
    }
    expect(deep).toBeGreaterThan(1000); // most mutants still reach the upper layers
  });
});
