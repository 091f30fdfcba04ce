/**
 * DNS fair share end to end: a real gateway (startGateway: unix socket,
 * stream framing, the real DNS forwarder and its UDP pool) with a real
 * loopback upstream whose zone hole.test is dead (queries recorded, never
 * answered). Five fake guests on five connections, each with its own MAC
 * and address: four keep flooding the dead zone (more than their 256 slots
 * each, so the 1024 slots stay taken for as long as the test runs), then
 * the fifth asks for known.test once. Before the fair share it got
 * SERVFAIL (the table full); now one flood query gives way and the fifth
 * guest gets the upstream's answer. Traffic stays on 127.0.0.1.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { fakeGuest, type FakeGuest } from '../helpers/fake-guest.js';
import { DNS_IP, dnsQuery, ip, mac, udpFrame, type DecodedFrame } from '../helpers/frames.js';
import { privateTmp } from '../helpers/tmp.js';

type Dns = DecodedPacket & { rcode: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dnsOf = (f: DecodedFrame) => dnsPacket.decode(Buffer.from(f.payload)) as Dns;

let gw: RunningGateway | null = null;
let upstream: TestDnsServer | null = null;
const guests: FakeGuest[] = [];
let dir = '';

afterAll(async () => {
  for (const g of guests) g.close();
  await gw?.close();
  await upstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('gateway DNS: guests flooding a dead zone cannot deny DNS to another guest', () => {
  it('four guests keep 1024 queries to a dead zone in flight; a fifth guest’s query is answered', async () => {
    upstream = await startDnsServer({ 'known.test': '192.0.2.10' }, { silentFor: /\.hole\.test$/ });
    dir = privateTmp('vmnet-dnsfair-');
    gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.1', port: upstream.port }] });
    for (let n = 1; n <= 5; n++) guests.push(await fakeGuest(join(dir, 'gw.sock')));
    const from = (n: number) => ({ src: mac(`52:54:00:00:0f:0${n}`), srcIp: ip(`10.0.2.${30 + n}`), dstIp: DNS_IP, dstPort: 53 });
    const flood = (round: number) => {
      for (let n = 1; n <= 4; n++)
        for (let i = 0; i < 100; i++) guests[n - 1]!.send(udpFrame({ ...from(n), srcPort: 20000 + i }, dnsQuery(`g${n}-${round}-${i}.hole.test`, 'A', i)));
    };
    const dns = () => gw!.snapshot().dns;
    // Fill the table (4 × 256), then keep flooding so that slots freed by the 4 s deadline are taken again.
    let round = 0;
    while (dns().forwarded < 1024 && round < 50) {
      flood(round++);
      await sleep(20);
    }
    expect(dns().forwarded).toBe(1024);
    const keepFlooding = setInterval(() => flood(round++), 50);
    try {
      // Let the upstream's socket drain the burst (what overflowed its receive buffer is lost, and stays in flight here).
      for (let seen = -1; upstream.queries.length !== seen; ) {
        seen = upstream.queries.length;
        await sleep(100);
      }
      const before = dns();
      expect(before.overload).toBeGreaterThan(0); // the flooders are at their caps
      guests[4]!.send(udpFrame({ ...from(5), srcPort: 42000 }, dnsQuery('known.test', 'A', 0x4242)));
      const reply = dnsOf(await guests[4]!.next((f) => f.udp?.dstPort === 42000, 10_000));
      expect(reply).toMatchObject({ id: 0x4242, rcode: 'NOERROR' });
      expect(reply.answers?.map((a) => `${a.type} ${String((a as { data?: unknown }).data)}`)).toEqual(['A 192.0.2.10']);
      expect(dns().evicted).toBeGreaterThanOrEqual(1);
      expect(upstream.queries).toContain('known.test');
    } finally {
      clearInterval(keepFlooding);
    }
  }, 60_000);
});
