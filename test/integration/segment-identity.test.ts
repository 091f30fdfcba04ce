/**
 * Guest identity on a switch with a gateway (a segment): the link a guest
 * is known by is its switch port, as on a stand-alone gateway it is its
 * connection. Fake guests on the switch's real socket: a second port cannot
 * take the first guest's address (ARP or IPv4 from it) and so cannot divert
 * its NAT replies, and spoofing many sources from one port buys one share.
 * The NICs of one VM (per-NIC sockets, owners VM:0 and VM:1) are one guest.
 */
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startSegment } from '../../src/switch/segment.js';
import { formatMac } from '../../src/wire/addr.js';
import { arpFrame, bytes, ip, mac, pingFrame, udpFrame } from '../helpers/frames.js';
import { privateTmp } from '../helpers/tmp.js';
import { fakeGuest } from '../helpers/fake-guest.js';

const A_MAC = mac('52:54:00:00:00:0a');
const B_MAC = mac('52:54:00:00:00:0b');
const A_IP = ip('10.7.0.50');
const GW = ip('10.7.0.2');
const GW_MAC = mac('52:55:0a:07:00:02');

describe('guest identity on a segment (switch + gateway)', () => {
  it('a second switch port cannot take the first guest’s address or its NAT replies', async () => {
    const dir = privateTmp();
    const seg = await startSegment({ dir: join(dir, 'sw'), gateway: { subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    const echo = createSocket('udp4');
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    echo.on('message', (m, from) => echo.send(m, from.port, from.address));
    const a = await fakeGuest(seg.socket);
    const b = await fakeGuest(seg.socket);
    try {
      a.send(pingFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW }));
      await a.next((f) => f.icmp?.type === 0);
      // B claims A's address: gratuitous ARP, an ARP request, and IPv4 from it.
      b.send(arpFrame({ src: B_MAC, spa: A_IP, tpa: A_IP }));
      b.send(arpFrame({ src: B_MAC, spa: A_IP, tpa: GW }));
      b.send(pingFrame({ src: B_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW, seq: 9 }));
      await expect(b.next((f) => formatMac(f.eth.src) === formatMac(GW_MAC), 500)).rejects.toThrow(); // nothing from the gateway
      // A's NAT replies still come to A.
      a.send(udpFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW, srcPort: 4000, dstPort: (echo.address() as { port: number }).port }, bytes('mine')));
      const back = await a.next((f) => f.udp?.dstPort === 4000);
      expect(formatMac(back.eth.dst)).toBe(formatMac(A_MAC));
      expect(new TextDecoder().decode(back.payload)).toBe('mine');
      const snap = seg.snapshot().gateway!;
      expect(snap.drops['src-taken']).toBe(3);
      expect(snap.neighbors).toEqual([{ ip: '10.7.0.50', mac: formatMac(A_MAC) }]);
      // One port spoofing twenty sources holds eight of them.
      for (let i = 0; i < 20; i++) b.send(pingFrame({ src: B_MAC, dst: GW_MAC, srcIp: ip(`10.7.0.${100 + i}`), dstIp: GW, seq: 100 + i }));
      for (let i = 0; i < 8; i++) await b.next((f) => f.icmp?.type === 0);
      await expect(b.next((f) => f.icmp?.type === 0, 500)).rejects.toThrow();
      expect(seg.snapshot().gateway!.drops['src-limit']).toBe(12);
    } finally {
      a.close();
      b.close();
      echo.close();
      await seg.close();
    }
  });

  it('the NICs of one VM are one guest (a bond moves its address between them); another VM’s NIC is not', async () => {
    const dir = privateTmp();
    const seg = await startSegment({ dir: join(dir, 'sw'), gateway: { subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    const a0 = await fakeGuest(await seg.switch.ownerSocket({ vlan: 1 }, 'web:0'));
    const a1 = await fakeGuest(await seg.switch.ownerSocket({ vlan: 1 }, 'web:1'));
    const other = await fakeGuest(await seg.switch.ownerSocket({ vlan: 1 }, 'web2:0'));
    try {
      a0.send(pingFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW }));
      await a0.next((f) => f.icmp?.type === 0);
      // The bond failed over: the same MAC and address from the VM's other NIC, answered there.
      a1.send(pingFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW, seq: 2 }));
      await a1.next((f) => f.icmp?.type === 0);
      // Another VM (web2: a prefix of no concern) taking the address is refused as before.
      other.send(pingFrame({ src: B_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW, seq: 3 }));
      await expect(other.next((f) => formatMac(f.eth.src) === formatMac(GW_MAC), 500)).rejects.toThrow();
      expect(seg.snapshot().gateway!.drops['src-taken']).toBe(1);
    } finally {
      a0.close();
      a1.close();
      other.close();
      await seg.close();
    }
  });

  it('a port’s addresses are free once the port closes', async () => {
    const dir = privateTmp();
    const seg = await startSegment({ dir: join(dir, 'sw'), gateway: { subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    const a = await fakeGuest(seg.socket);
    try {
      a.send(pingFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW }));
      await a.next((f) => f.icmp?.type === 0);
      a.close();
      const b = await fakeGuest(seg.socket);
      try {
        let got = false;
        for (let i = 0; i < 30 && !got; i++) {
          b.send(pingFrame({ src: B_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW, seq: i }));
          got = await b.next((f) => f.icmp?.type === 0, 200).then(() => true, () => false);
        }
        expect(got).toBe(true);
      } finally {
        b.close();
      }
    } finally {
      await seg.close();
    }
  });
});

describe('names on a segment', () => {
  it('a vmnet name wins over DHCP host names and is not up for grabs while its VM has no address', async () => {
    const { DISCOVER, REQUEST } = await import('../../src/wire/dhcpv4.js');
    const { dhcpFrame, decodeDhcp } = await import('../helpers/frames.js');
    const dir = privateTmp();
    const seg = await startSegment({ dir: join(dir, 'sw'), gateway: { subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    const b = await fakeGuest(seg.socket);
    try {
      seg.setName(formatMac(A_MAC), 'web'); // VM "web" registered, not started yet
      b.send(dhcpFrame({ type: DISCOVER, chaddr: B_MAC, hostname: 'web', xid: 1 }, { src: B_MAC }));
      const offer = decodeDhcp(await b.next((f) => f.udp?.srcPort === 67));
      b.send(dhcpFrame({ type: REQUEST, chaddr: B_MAC, hostname: 'web', xid: 2, requestedIp: offer.yiaddr, serverId: GW }, { src: B_MAC }));
      await b.next((f) => f.udp?.srcPort === 67);
      expect(seg.lookupName('web')).toBeNull();
      expect(seg.lookupName('web.vmnet.internal')).toBeNull();
      // The VM comes up (a static address here): its name is its own.
      const a = await fakeGuest(seg.socket);
      try {
        a.send(pingFrame({ src: A_MAC, dst: GW_MAC, srcIp: A_IP, dstIp: GW }));
        await a.next((f) => f.icmp?.type === 0);
        expect(seg.lookupName('WEB')).toBe(A_IP);
        expect(seg.snapshot().names).toEqual([{ name: 'web', mac: formatMac(A_MAC), ip: '10.7.0.50', source: 'vmnet' }]);
      } finally {
        a.close();
      }
    } finally {
      b.close();
      await seg.close();
    }
  });
});
