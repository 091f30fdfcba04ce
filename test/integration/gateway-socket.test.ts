/**
 * The gateway as a process-level service, driven by a fake guest over its
 * real unix socket (QEMU's stream framing): it follows a resolv.conf it
 * watches without a restart, and serves several connections at once, each
 * with its own lease.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.js';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { privateTmp } from '../helpers/tmp.js';
import { fakeGuest } from '../helpers/fake-guest.js';
import { DNS_IP, decodeDhcp, decodeFrame, dhcpFrame, dnsQuery, mac, udpFrame, type DecodedFrame } from '../helpers/frames.js';

// resolv.conf has no port syntax, so the two upstreams listen on port 53 of
// two loopback addresses (the suite runs as root, like CI).
let a: TestDnsServer;
let b: TestDnsServer;
beforeAll(async () => {
  a = await startDnsServer({ 'where.test': '192.0.2.1' }, { host: '127.0.0.11', port: 53 });
  b = await startDnsServer({ 'where.test': '192.0.2.2' }, { host: '127.0.0.12', port: 53 });
});
afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
});


const dnsAnswer = (f: DecodedFrame) => dnsPacket.decode(Buffer.from(f.payload)).answers?.[0];

describe('gateway over its unix socket', () => {
  it('follows changes of the resolv.conf it watches, without a restart', async () => {
    const dir = privateTmp();
    const conf = join(dir, 'resolv.conf');
    writeFileSync(conf, 'nameserver 127.0.0.11\n');
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), resolvConf: conf });
    const g = await fakeGuest(join(dir, 'gw.sock'));
    try {
      const ask = async (id: number) => {
        g.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: 30000 + id }, dnsQuery('where.test', 'A', id)));
        return dnsAnswer(await g.next((f) => f.udp?.srcPort === 53 && f.udp.dstPort === 30000 + id));
      };
      expect(await ask(1)).toMatchObject({ name: 'where.test', data: '192.0.2.1' });
      // Replace the file the way resolvconf/NetworkManager do: write aside, rename over.
      writeFileSync(conf + '.new', '# VPN came up\nnameserver 127.0.0.12\n');
      renameSync(conf + '.new', conf);
      let answer: unknown;
      for (let id = 2; id < 40; id++) {
        answer = await ask(id);
        if ((answer as { data?: string })?.data === '192.0.2.2') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(answer).toMatchObject({ data: '192.0.2.2' });
      expect(b.queries).toContain('where.test');
    } finally {
      g.close();
      await gw.close();
    }
  });

  it('gives each connection its own lease', async () => {
    const dir = privateTmp();
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.11', port: 53 }] });
    try {
      const guests = await Promise.all([0, 1, 2].map(() => fakeGuest(join(dir, 'gw.sock'))));
      const offers = await Promise.all(
        guests.map(async (g, i) => {
          const chaddr = mac(`52:54:00:00:00:0${i + 1}`);
          g.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr, xid: 100 + i }, { src: chaddr }));
          return decodeDhcp(await g.next((f) => f.udp?.srcPort === 67));
        }),
      );
      expect(offers.map((o) => o.messageType)).toEqual([dhcp.OFFER, dhcp.OFFER, dhcp.OFFER]);
      expect(new Set(offers.map((o) => o.yiaddr)).size).toBe(3);
      for (const g of guests) g.close();
    } finally {
      await gw.close();
    }
  });
});

describe('UDP port forwards', () => {
  it('carries datagrams from a host client to the guest and replies back, added and removed at run time', async () => {
    const { createSocket } = await import('node:dgram');
    const { GUEST_IP, GW_IP, pingFrame } = await import('../helpers/frames.js');
    const dir = privateTmp();
    const gw = await startGateway({ socket: join(dir, 'gw.sock'), dnsUpstreams: [{ host: '127.0.0.11', port: 53 }] });
    const g = await fakeGuest(join(dir, 'gw.sock'));
    const client = createSocket('udp4');
    try {
      // The guest makes itself known (static address), then a forward is added.
      g.send(pingFrame({ dstIp: GW_IP }));
      await g.next((f) => f.icmp?.type === 0);
      const probe = createSocket('udp4');
      await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
      const hostPort = probe.address().port;
      probe.close();
      await gw.forwards.add({ proto: 'udp', bindAddress: '127.0.0.1', hostPort, guestPort: 5353 });
      expect(gw.forwards.list()).toEqual([{ proto: 'udp', bindAddress: '127.0.0.1', hostPort, guestPort: 5353 }]);
      await expect(gw.forwards.add({ proto: 'udp', bindAddress: '127.0.0.1', hostPort, guestPort: 1 })).rejects.toMatchObject({ code: 'E_USAGE' });

      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      const replies: string[] = [];
      client.on('message', (m) => replies.push(m.toString()));
      client.send('hello guest', hostPort, '127.0.0.1');
      const inbound = await g.next((f) => f.udp?.dstPort === 5353);
      expect(new TextDecoder().decode(inbound.payload)).toBe('hello guest');
      // A loopback client appears as the gateway address with the client's own port.
      expect(inbound.ip?.src).toBe(GW_IP);
      expect(inbound.udp?.srcPort).toBe(client.address().port);
      g.send(udpFrame({ srcIp: GUEST_IP, srcPort: 5353, dstIp: GW_IP, dstPort: inbound.udp!.srcPort }, new TextEncoder().encode('hello host')));
      for (let i = 0; i < 50 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(replies).toEqual(['hello host']);

      expect(await gw.forwards.remove({ proto: 'udp', hostPort })).toBe(true);
      expect(gw.forwards.list()).toEqual([]);
      // The host port is free again.
      const again = createSocket('udp4');
      await new Promise<void>((r) => again.bind(hostPort, '127.0.0.1', r));
      again.close();
    } finally {
      client.close();
      g.close();
      await gw.close();
    }
  });

  it('refuses a host port that is taken, before anything starts', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const dir = privateTmp();
    try {
      await expect(startGateway({ socket: join(dir, 'gw.sock'), forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: port, guestPort: 22 }] })).rejects.toMatchObject({
        code: 'E_PORT_IN_USE',
        message: expect.stringContaining(`127.0.0.1:${port}/tcp is already in use`),
      });
    } finally {
      taken.close();
    }
  });
});

describe('vmnet gateway --fd', () => {
  it('serves a guest on an inherited stream socket and exits when it closes', async () => {
    const { createServer, connect } = await import('node:net');
    const { spawn } = await import('node:child_process');
    const { GW_IP, pingFrame } = await import('../helpers/frames.js');
    const { StreamPort } = await import('../../src/link/stream-port.js');
    const dir = privateTmp();
    const path = join(dir, 'pair.sock');
    // A connected socket pair: the accepted end goes to the gateway as fd 3.
    const accepted = new Promise<import('node:net').Socket>((resolve) => {
      const srv = createServer((s) => {
        srv.close();
        resolve(s);
      });
      srv.listen(path);
    });
    await new Promise((r) => setTimeout(r, 50));
    const client = connect(path);
    const serverSide = await accepted;
    serverSide.pause();
    const bin = join(import.meta.dirname, '../../dist/cli/bin.js');
    const child = spawn(process.execPath, [bin, 'gateway', '--fd', '3', '--dns-upstream', '127.0.0.11:53'], { stdio: ['ignore', 'pipe', 'pipe', serverSide] });
    serverSide.destroy(); // the child holds its own copy of the descriptor
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    const port = new StreamPort(client);
    const replies: number[] = [];
    port.onFrame = (buf, _v, off, len) => replies.push(decodeFrame(buf.slice(off, off + len)).icmp?.type ?? -1);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 50 && !replies.includes(0); i++) {
      const f = pingFrame({ dstIp: GW_IP, seq: i });
      port.sendFrame(f, 0, f.length);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(replies).toContain(0);
    port.close();
    expect(await exited).toBe(0);
    expect(out).toContain('serving the guest on fd 3');
  });
});
