/**
 * Who a gateway's port forwards go to, and whose names it answers, when
 * several guests share it: fake guests on the gateway's real socket and a
 * real host client. A forward that names no guest goes to the owner — the
 * first connection that got an address, kept until it closes — never to
 * whichever guest sent a frame last; a VM name vmnet gave wins over DHCP
 * host names.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.js';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { formatIp4, formatMac } from '../../src/wire/addr.js';
import { DNS_IP, GW_IP, arpFrame, decodeDhcp, dhcpFrame, dnsQuery, ip, mac, pingFrame, udpFrame, type DecodedFrame } from '../helpers/frames.js';
import { privateTmp } from '../helpers/tmp.js';
import { fakeGuest, type FakeGuest } from '../helpers/fake-guest.js';

const A_MAC = mac('52:54:00:00:00:0a');
const B_MAC = mac('52:54:00:00:00:0b');

/** DISCOVER + REQUEST; resolves the leased address. */
async function lease(g: FakeGuest, chaddr: Uint8Array, hostname?: string): Promise<number> {
  g.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr, xid: 1, hostname }, { src: chaddr }));
  const offer = decodeDhcp(await g.next((f) => f.udp?.srcPort === 67));
  g.send(dhcpFrame({ type: dhcp.REQUEST, chaddr, xid: 2, hostname, requestedIp: offer.yiaddr, serverId: GW_IP }, { src: chaddr }));
  const ack = decodeDhcp(await g.next((f) => f.udp?.srcPort === 67));
  expect(ack.messageType).toBe(dhcp.ACK);
  return ack.yiaddr;
}

const isSyn = (f: DecodedFrame, port: number) => f.ip?.proto === 6 && ((f.payload[2]! << 8) | f.payload[3]!) === port && (f.payload[13]! & 0x12) === 0x02;

/** Opens a host connection to the forward (left pending; destroyed by the caller). */
const dial = (port: number) => {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  return s;
};

describe('port forwards without a named guest', () => {
  it('go to the owner (first guest with an address), not to a second guest that just sent a frame', async () => {
    const dir = privateTmp();
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.1', port: 9 }], forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 8080 }] });
    const a = await fakeGuest(join(dir, 'gw.sock'));
    const b = await fakeGuest(join(dir, 'gw.sock'));
    const clients: ReturnType<typeof dial>[] = [];
    try {
      const aIp = await lease(a, A_MAC);
      // The second connection sends one frame of each kind from its own address.
      b.send(arpFrame({ src: B_MAC, spa: ip('10.0.2.77'), tpa: GW_IP }));
      b.send(pingFrame({ src: B_MAC, srcIp: ip('10.0.2.77'), dstIp: GW_IP }));
      await b.next((f) => f.icmp?.type === 0);
      expect(gw.gateway.primaryGuest()).toBe(aIp);
      clients.push(dial(hostPort));
      const syn = await a.next((f) => isSyn(f, 8080));
      expect(syn.ip!.dst).toBe(aIp);
      await expect(b.next((f) => isSyn(f, 8080), 300)).rejects.toThrow();
      expect(await gw.probeGuestPort(8080, 300)).not.toBe('no-guest');
      // The owner closes: the next guest with an address owns the gateway.
      a.close();
      for (let i = 0; i < 50 && gw.gateway.primaryGuest() === aIp; i++) await new Promise((r) => setTimeout(r, 20));
      expect(gw.gateway.primaryGuest()).toBe(ip('10.0.2.77'));
      clients.push(dial(hostPort));
      expect((await b.next((f) => isSyn(f, 8080))).ip!.dst).toBe(ip('10.0.2.77'));
    } finally {
      for (const c of clients) c.destroy();
      b.close();
      await gw.close();
    }
  });
});

describe('names at a gateway', () => {
  it('the VM name vmnet gave wins over a DHCP host name another guest sends', async () => {
    const dir = privateTmp();
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
    gw.names.set(formatMac(A_MAC), 'myvm'); // as `vmnet run --name myvm` does for its NIC
    const b = await fakeGuest(join(dir, 'gw.sock'));
    const a = await fakeGuest(join(dir, 'gw.sock'));
    try {
      const bIp = await lease(b, B_MAC, 'myvm');
      const ask = async (id: number) => {
        b.send(udpFrame({ src: B_MAC, srcIp: bIp, dstIp: DNS_IP, dstPort: 53, srcPort: 30000 + id }, dnsQuery('myvm', 'A', id)));
        const r = await b.next((f) => f.udp?.srcPort === 53 && f.udp.dstPort === 30000 + id);
        return dnsPacket.decode(Buffer.from(r.payload));
      };
      const before = await ask(1);
      expect((before.flags ?? 0) & 0xf).toBe(0); // NOERROR: the name exists (NODATA), it is not the other guest's
      expect(before.answers).toEqual([]);
      const aIp = await lease(a, A_MAC, 'something-else');
      const after = await ask(2);
      expect(after.answers?.map((x) => (x as { data: string }).data)).toEqual([formatIp4(aIp)]);
      expect(gw.names.lookup('myvm')).toBe(aIp);
    } finally {
      a.close();
      b.close();
      await gw.close();
    }
  });
});
