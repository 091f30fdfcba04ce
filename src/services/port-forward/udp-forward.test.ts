/**
 * UDP port forwards under many host clients (issue 11, item 9): the flow
 * table is bounded and evicts the least recently used flow, the search for a
 * free guest-side port always ends, a forward whose guest changes leaves no
 * stale endpoint behind, and guest replies cannot grow the socket's send
 * queue. The forward runs over a fake socket: 64,513 real client sockets
 * would prove nothing more about the table.
 */
import { EventEmitter } from 'node:events';
import * as dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { parseIp4, type Ip4 } from '../../wire/addr.js';
import type { ForwardSpec } from '../../config/forward.js';
import { burst, burstSize } from '../../../test/helpers/udp-burst.js';
import { RECV_BUFFER } from '../udp-nat/node-udp.js';
import { MAX_SEND_QUEUE, UdpForward, type UdpForwardSocket } from './udp-forward.js';

const GW = parseIp4('10.0.2.2') as Ip4;
const GUEST = parseIp4('10.0.2.15') as Ip4;
const SPEC: ForwardSpec = { proto: 'udp', bindAddress: '127.0.0.1', hostPort: 5353, guestPort: 53 };

class FakeSocket extends EventEmitter implements UdpForwardSocket {
  readonly sent: Array<{ port: number; address: string; bytes: number }> = [];
  queued = 0;
  send(msg: Uint8Array, port: number, address: string): void {
    this.sent.push({ port, address, bytes: msg.length });
  }
  getSendQueueCount(): number {
    return this.queued;
  }
  close(): void {}
  client(address: string, port: number): void {
    const rinfo: dgram.RemoteInfo = { address, port, family: 'IPv4', size: 1 };
    this.emit('message', Buffer.from([1]), rinfo);
  }
}

function rig(over: { maxFlows?: number; guest?: () => Ip4 | null } = {}) {
  const socket = new FakeSocket();
  const toGuest: Array<{ srcIp: Ip4; srcPort: number; guestIp: Ip4 }> = [];
  let t = 0;
  const fwd = UdpForward.over(SPEC, socket, {
    guestIp: over.guest ?? (() => GUEST),
    gatewayIp: GW,
    sendToGuest: (srcIp, srcPort, guestIp) => void toGuest.push({ srcIp, srcPort, guestIp }),
    now: () => t,
    idleMs: 60_000,
    ...(over.maxFlows !== undefined ? { maxFlows: over.maxFlows } : {}),
  });
  return { socket, fwd, toGuest, advance: (ms: number) => (t += ms) };
}

describe('UdpForward', () => {
  it('a client on every port 1024-65535 and then one more: the table stays bounded and the search ends', () => {
    const r = rig();
    for (let p = 1024; p <= 65535; p++) r.socket.client('127.0.0.1', p);
    r.socket.client('127.0.0.2', 5000); // wants 10.0.2.2:5000 too
    expect(r.fwd.flows).toBe(4096);
    expect(r.fwd.counters.evicted).toBe(65536 - 1024 + 1 - 4096);
    const last = r.toGuest.at(-1)!;
    expect(last.srcIp).toBe(GW);
    // The newest flow has an endpoint of its own, and a reply to it reaches that client.
    expect(r.fwd.fromGuest(GUEST, 53, GW, last.srcPort, new Uint8Array([9]))).toBe(true);
    expect(r.socket.sent.at(-1)).toMatchObject({ address: '127.0.0.2', port: 5000 });
  });

  it('two loopback clients on the same port get distinct guest-side endpoints', () => {
    const r = rig({ maxFlows: 8 });
    r.socket.client('127.0.0.1', 7000);
    r.socket.client('127.0.0.2', 7000);
    const [a, b] = r.toGuest;
    expect(a!.srcPort).toBe(7000);
    expect(b!.srcPort).not.toBe(7000);
    r.fwd.fromGuest(GUEST, 53, GW, b!.srcPort, new Uint8Array(1));
    expect(r.socket.sent.at(-1)).toMatchObject({ address: '127.0.0.2', port: 7000 });
  });

  it('evicts the least recently used flow, and replies keep a flow young', () => {
    const r = rig({ maxFlows: 2 });
    r.socket.client('127.0.0.1', 2000);
    r.socket.client('127.0.0.1', 2001);
    r.fwd.fromGuest(GUEST, 53, GW, 2000, new Uint8Array(1)); // 2000 is used again
    r.socket.client('127.0.0.1', 2002); // evicts 2001
    expect(r.fwd.fromGuest(GUEST, 53, GW, 2001, new Uint8Array(1))).toBe(false);
    expect(r.fwd.fromGuest(GUEST, 53, GW, 2000, new Uint8Array(1))).toBe(true);
    expect(r.fwd.counters.evicted).toBe(1);
  });

  it('a forward whose guest changes leaves no stale endpoint behind', () => {
    let guest = GUEST;
    const r = rig({ guest: () => guest });
    r.socket.client('127.0.0.1', 3000);
    guest = parseIp4('10.0.2.16') as Ip4;
    r.socket.client('127.0.0.1', 3000);
    expect(r.fwd.flows).toBe(1);
    // The old guest's reply no longer matches anything; the new one's does.
    expect(r.fwd.fromGuest(GUEST, 53, GW, 3000, new Uint8Array(1))).toBe(false);
    expect(r.fwd.fromGuest(guest, 53, GW, 3000, new Uint8Array(1))).toBe(true);
    r.advance(61_000);
    r.fwd.sweep(61_000);
    expect(r.fwd.flows).toBe(0);
    r.socket.client('127.0.0.3', 3000); // the endpoint is free again
    expect(r.toGuest.at(-1)!.srcPort).toBe(3000);
  });

  it('drops guest replies while the send queue is full, counted', () => {
    const r = rig();
    r.socket.client('127.0.0.1', 4000);
    r.socket.queued = MAX_SEND_QUEUE;
    expect(r.fwd.fromGuest(GUEST, 53, GW, 4000, new Uint8Array(1))).toBe(true);
    expect(r.socket.sent).toEqual([]);
    expect(r.fwd.counters.sendDropped).toBe(1);
  });

  it('a taken guest-side port costs amortized constant work, however the taken ports are laid out', () => {
    const r = rig();
    // 4096 endpoints 10000..14095, made youngest-last from the top down: every eviction frees the top
    // one, so a search that starts at the client's own port walks past 4,095 taken ports each time.
    for (let p = 14095; p >= 10000; p--) r.socket.client('127.0.0.1', p);
    const table = (r.fwd as unknown as { byEndpoint: Map<number, unknown> }).byEndpoint;
    let probes = 0;
    const has = table.has.bind(table);
    table.has = (k: number) => (probes++, has(k));
    const N = 5000;
    for (let i = 0; i < N; i++) r.socket.client(`127.0.${1 + (i >> 8)}.${i & 255}`, 10000); // each wants 10.0.2.2:10000
    expect(r.fwd.flows).toBe(4096);
    expect(new Set(r.toGuest.slice(-N).map((x) => x.srcPort)).size).toBeGreaterThan(4000); // distinct endpoints
    expect(probes).toBeLessThan(N * 4); // was about N * 4,000
  });

  // The same receive buffer as a NAT flow's (udp-nat/node-udp.ts): with the kernel's
  // default (208 KiB) a host client's burst lost all but some 90 datagrams of 1,400 bytes.
  it('the bound socket holds a burst of 1,400-byte datagrams sent while the gateway is busy (real socket)', async () => {
    let got = 0;
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    const probe = dgram.createSocket('udp4'); // a free UDP port for the forward
    const hostPort = await new Promise<number>((r) => probe.bind(0, '127.0.0.1', () => r(probe.address().port)));
    probe.close();
    const fwd = await UdpForward.open({ ...SPEC, hostPort }, {
      guestIp: () => GUEST,
      gatewayIp: GW,
      sendToGuest: () => void got++,
      now: () => 0,
      idleMs: 60_000,
    });
    try {
      const n = burstSize(RECV_BUFFER);
      expect(await burst(client, hostPort, n, () => got)).toBe(n);
    } finally {
      client.close();
      fwd.close();
    }
  });
});
