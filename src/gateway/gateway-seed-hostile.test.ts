/**
 * The seed service against a hostile guest (sans-IO rig, real node:http
 * behind the Duplex adapter, short time bounds): headers sent a byte at a
 * time (slowloris) are cut at the connection's lifetime; a request line past
 * the head bound is refused and counted; a flood of pipelined requests gets
 * at most the per-connection number of answers and then the connection
 * ends; a guest that never reads its answer is reset at the idle bound;
 * connections from several guests past the total bound are refused; and
 * encoded, dotted or otherwise bent paths never reach a document. Every case
 * ends with the connection gone from the service and from the TCP NAT.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { formatMac } from '../wire/addr.js';
import { DNS_IP, GUEST2_MAC, GUEST_MAC, GatewayRig, bytes, ip, settle } from '../../test/helpers/frames.js';
import { GuestConn } from '../../test/helpers/guest-tcp.js';
import type { SeedFiles } from '../services/metadata/seeds.js';
import type { SeedHttpLimits } from '../services/metadata/seed-http.js';

const files = (userData = 'user-data of the VM\n'): SeedFiles => ({ 'meta-data': bytes('instance-id: i-1\n'), 'user-data': bytes(userData), 'vendor-data': new Uint8Array(0) });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let nextPort = 43000;

function setup(limits: Partial<SeedHttpLimits> = {}): { rig: GatewayRig; path: string } {
  // A short idle bound: after our FIN, a guest that never sends its own holds the connection that long.
  const rig = new GatewayRig({ seedLimits: { idleMs: 300, ...limits } });
  return { rig, path: rig.seeds.add(formatMac(GUEST_MAC), files()) };
}

async function open(rig: GatewayRig, window = 65535): Promise<GuestConn> {
  const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: nextPort++, window });
  await settle();
  g.establish();
  return g;
}

/** Reads (ACKing what came) until FIN or RST, or `ms` of real time. */
async function drain(g: GuestConn, ms: number): Promise<string> {
  const until = Date.now() + ms;
  while (!g.finSeen && !g.rstSeen && Date.now() < until) {
    await sleep(5);
    g.take();
    g.send({ flags: tcp.ACK });
  }
  return Buffer.concat(g.received).toString('latin1');
}

/** The connection is gone from the seed service (at the latest at its idle bound) and from the NAT. */
async function gone(rig: GatewayRig): Promise<void> {
  for (let i = 0; i < 400 && (rig.seedHttp.size > 0 || rig.gateway.tcpNat.size > 0); i++) await sleep(5);
  expect(rig.seedHttp.size).toBe(0);
  for (let i = 0; i < 10; i++) {
    rig.clock.t += 60_000; // TIME-WAIT, retransmissions to a guest that stopped answering
    rig.gateway.tcpNat.runTimers();
  }
  expect(rig.gateway.tcpNat.size).toBe(0);
}

describe('the seed service against a hostile guest', () => {
  it('slowloris: a head sent a byte at a time, each within the idle bound, is reset at the lifetime bound', async () => {
    const { rig, path } = setup({ idleMs: 200, lifetimeMs: 600 });
    const g = await open(rig);
    const head = `GET ${path}meta-data HTTP/1.1\r\nHost: 10.0.2.3\r\nX-Slow: ${'a'.repeat(200)}`;
    const t0 = Date.now();
    for (let i = 0; i < head.length && !g.rstSeen; i++) {
      g.write(bytes(head[i]!), false);
      await sleep(20);
      g.take();
    }
    expect(g.rstSeen).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(Buffer.concat(g.received).length).toBe(0);
    expect(rig.seeds.fetches(formatMac(GUEST_MAC))!.count).toBe(0);
    await gone(rig);
  });

  it('a request line past the head bound is refused and counted, nothing served', async () => {
    const { rig, path } = setup({ maxHeaderBytes: 4096 });
    const g = await open(rig);
    g.write(bytes(`GET ${path}meta-data${'/x'.repeat(8000)} HTTP/1.1\r\nHost: 10.0.2.3\r\n\r\n`), false);
    const got = await drain(g, 2000);
    expect(g.finSeen || g.rstSeen).toBe(true);
    expect(got).not.toMatch(/200 OK/);
    expect(rig.seedHttp.counters.badRequests).toBe(1);
    expect(rig.seeds.counters.served).toBe(0);
    await gone(rig);
  });

  it('a pipelining flood gets at most requestsPerConnection answers, then the connection ends', async () => {
    const { rig, path } = setup({ requestsPerConnection: 4 });
    const g = await open(rig);
    const one = `GET ${path}meta-data HTTP/1.1\r\nHost: 10.0.2.3\r\n\r\n`;
    // 300 requests, sent as the gateway's window allows.
    const flood = bytes(one.repeat(300));
    for (let o = 0; o < flood.length && !g.finSeen && !g.rstSeen; o += 8192) {
      g.write(flood.subarray(o, Math.min(flood.length, o + 8192)), false);
      await sleep(2);
      g.take();
    }
    const got = await drain(g, 3000);
    expect(g.finSeen || g.rstSeen).toBe(true);
    const answered = got.match(/HTTP\/1\.1 200 OK/g)?.length ?? 0;
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThanOrEqual(4);
    expect(rig.seeds.counters.served).toBeLessThanOrEqual(4);
    await gone(rig);
  });

  it('a guest that never reads its answer (window closed) is reset at the idle bound', async () => {
    const rig = new GatewayRig({ seedLimits: { idleMs: 200, lifetimeMs: 60_000 } });
    const path = rig.seeds.add(formatMac(GUEST_MAC), files('y'.repeat(1024 * 1024)));
    const g = await open(rig, 4096);
    g.write(bytes(`GET ${path}user-data HTTP/1.1\r\nHost: 10.0.2.3\r\n\r\n`), false);
    // Take what comes but never acknowledge it: the guest's window stays full.
    for (let i = 0; i < 200 && !g.rstSeen; i++) {
      await sleep(5);
      for (const s of rig.port.takeDecoded()) if (s.payload.length > 0 && (s.payload[13]! & tcp.RST) !== 0) g.rstSeen = true;
    }
    expect(g.rstSeen).toBe(true);
    expect(rig.gateway.tcpNat.counters.hostOverruns).toBe(0);
    await gone(rig);
  });

  it('many parallel connections from several guests: the total bound refuses (RST) past it, counted; freed ones are usable again', async () => {
    const { rig } = setup({ perGuest: 8, total: 3 });
    const other = { ip: ip('10.0.2.16'), mac: GUEST2_MAC, ...rig.attachLink() };
    const conns: GuestConn[] = [];
    for (const from of [undefined, undefined, other]) {
      const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: nextPort++, ...(from ? { from } : {}) });
      await settle();
      g.establish();
      conns.push(g);
    }
    const fourth = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: nextPort++, from: other });
    await settle();
    fourth.take();
    expect(fourth.rstSeen).toBe(true);
    expect(rig.seedHttp.counters.refusedConnections).toBe(1);
    expect(rig.seedHttp.size).toBe(3);
    conns[0]!.send({ flags: tcp.RST | tcp.ACK });
    await settle();
    expect(rig.seedHttp.size).toBe(2);
    const fifth = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: nextPort++, from: other });
    await settle();
    fifth.establish();
    expect(fifth.rstSeen).toBe(false);
    expect(rig.seedHttp.size).toBe(3);
  });

  it.each([
    ['percent-encoded document', (p: string) => `${p}%6deta-data`],
    ['percent-encoded slash', (p: string) => `${p.slice(0, -1)}%2fmeta-data`],
    ['dot segments', (p: string) => `${p}../${p.slice('/vmnet/'.length)}meta-data`],
    ['a double slash in front', (p: string) => `/${p}meta-data`],
    ['an absolute-form target', (p: string) => `http://10.0.2.3${p}meta-data`],
    ['a query', (p: string) => `${p}meta-data?x=1`],
    ['a trailing slash', (p: string) => `${p}meta-data/`],
    ['upper-case token', (p: string) => `${p.toUpperCase()}meta-data`],
    ['the token alone', (p: string) => p],
    ['no token', () => '/vmnet//meta-data'],
    ['a NUL byte', (p: string) => `${p}meta-data%00`],
  ])('%s: 404, nothing served', async (_what, target) => {
    const { rig, path } = setup();
    const g = await open(rig);
    g.write(bytes(`GET ${target(path)} HTTP/1.1\r\nHost: 10.0.2.3\r\nConnection: close\r\n\r\n`), false);
    const got = await drain(g, 2000);
    expect(got).toMatch(/^HTTP\/1\.1 40[04] /);
    expect(rig.seeds.counters.served).toBe(0);
    expect(rig.seeds.fetches(formatMac(GUEST_MAC))!.count).toBe(0);
    await gone(rig);
  });
});
