/**
 * Gateway shutdown over real sockets: close() stops the forwards' listeners
 * before it waits for draining connections, so a host client that arrives
 * during that grace is refused instead of starting a connection the
 * forward's listener would then wait for (a listener closes only once its
 * accepted sockets are gone, and nothing would close this one); and it
 * closes the DNS forwarder's pooled upstream sockets, and the host sockets
 * of guest connections still being dialed.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.js';
import * as ipv4 from '../../src/wire/ipv4.js';
import * as tcp from '../../src/wire/tcp.js';
import { blackholePort } from '../helpers/blackhole.js';
import { fakeGuest } from '../helpers/fake-guest.js';
import { DNS_IP, dnsQuery, GUEST_IP, GW_IP, ipv4Frame, ipv4Packet, tcpSegment, udpFrame } from '../helpers/frames.js';
import { freePort } from '../helpers/ports.js';
import { privateTmp } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('gateway close', () => {
  it('refuses forwarded connections from its start, so one arriving while drains finish cannot keep it open', async () => {
    const hostPort = await freePort();
    const gw = await startGateway({
      socket: join(privateTmp(), 'gw.sock'),
      dnsUpstreams: [{ host: '127.0.0.1', port: 9 }],
      forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 22, guest: '10.0.2.15' }],
    });
    // A drain in progress at shutdown: the grace takes a while, and a host client comes meanwhile.
    const nat = gw.gateway.tcpNat;
    const closeAll = nat.closeAll.bind(nat);
    let client: Promise<string> = Promise.resolve('not tried');
    nat.closeAll = (graceMs) => {
      client = new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: hostPort });
        s.on('connect', () => resolve('accepted'));
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      return Promise.all([closeAll(graceMs), client.then(() => sleep(200))]).then(() => undefined);
    };
    const closed = gw.close().then(() => 'closed');
    expect(await Promise.race([closed, sleep(5000).then(() => 'still closing after 5 s')])).toBe('closed');
    expect(await client).toBe('ECONNREFUSED');
  });

  it('closes the host socket of a guest connection still being dialed (a SYN nobody answers)', async () => {
    const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const dir = privateTmp();
    const hole = await blackholePort(); // a SYN nobody answers
    try {
      const port = hole.port;
      const before = tcpSockets();
      const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
      const g = await fakeGuest(join(dir, 'gw.sock'));
      g.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, GW_IP, 40001, port, { seq: 1000, flags: tcp.SYN }))));
      for (let i = 0; i < 100 && tcpSockets() === before; i++) await sleep(10);
      expect(tcpSockets()).toBe(before + 1); // the dial, in flight
      g.close();
      await gw.close();
      await sleep(50);
      // Before, the reset waited for a 'connect' that never comes: the socket stayed until the kernel gave up on the SYN.
      expect(tcpSockets()).toBe(before);
    } finally {
      hole.close();
    }
  });

  it('closes the DNS upstream sockets: the ports it asked from are free once close() returns', async () => {
    const upstream = createSocket('udp4');
    const from = new Set<number>();
    upstream.on('message', (m, r) => {
      from.add(r.port);
      const d = dnsPacket.decode(m);
      upstream.send(dnsPacket.encode({ id: d.id, type: 'response', flags: 0x0180, questions: d.questions, answers: [{ type: 'A', name: 'up.test', ttl: 30, data: '192.0.2.9' }] }), r.port, r.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    const dir = privateTmp();
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.1', port: upstream.address().port }] });
    const g = await fakeGuest(join(dir, 'gw.sock'));
    const bindable = (port: number) =>
      new Promise<boolean>((res) => {
        const probe = createSocket('udp4');
        probe.once('error', () => probe.close(() => res(false)));
        probe.bind(port, '127.0.0.1', () => probe.close(() => res(true)));
      });
    try {
      for (let id = 1; id <= 4; id++) {
        g.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: 40000 + id }, dnsQuery('up.test', 'A', id)));
        const f = await g.next((f) => f.udp?.srcPort === 53 && f.udp.dstPort === 40000 + id);
        expect(dnsPacket.decode(Buffer.from(f.payload)).answers?.[0]).toMatchObject({ data: '192.0.2.9' });
      }
      // The forwarder keeps its sockets between queries...
      expect(from.size).toBeGreaterThan(0);
      for (const port of from) expect(await bindable(port)).toBe(false);
    } finally {
      g.close();
      await gw.close();
      await new Promise<void>((r) => upstream.close(() => r()));
    }
    // ...and closes every one of them with the gateway.
    for (const port of from) expect(await bindable(port)).toBe(true);
  });
});
