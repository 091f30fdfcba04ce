/**
 * The cloud-init seed service at the DNS address, port 80, through the
 * gateway's TCP NAT (sans-IO rig, real node:http behind the Duplex adapter):
 * refused while no seed is held (as before it existed); the VM whose MAC
 * the seed names gets its documents and the fetches are counted; another
 * guest link with the token gets 403, a wrong token 404, other methods 405,
 * a body 400; a user-data larger than the send buffer streams to a guest
 * that reads slowly, with nothing overrun; the per-guest connection bound.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { DNS_IP, GUEST2_MAC, GUEST_MAC, GatewayRig, bytes, ip, settle } from '../../test/helpers/frames.js';
import { GuestConn } from '../../test/helpers/guest-tcp.js';
import { formatMac } from '../wire/addr.js';
import type { SeedFiles } from '../services/metadata/seeds.js';

const files = (userData = 'user-data of the VM\n'): SeedFiles => ({ 'meta-data': bytes('instance-id: i-1\n'), 'user-data': bytes(userData), 'vendor-data': new Uint8Array(0) });

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  rst: boolean;
}

let nextPort = 41000;

/** Sends one request on a new connection to DNS_IP:80 and reads until the gateway's FIN (or RST). */
async function request(rig: GatewayRig, text: string, o: { from?: GuestConn['from']; window?: number; readSlowly?: boolean } = {}): Promise<Reply> {
  const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: nextPort++, ...(o.from ? { from: o.from } : {}), window: o.window ?? 65535 });
  await settle();
  g.establish();
  g.write(bytes(text), false);
  for (let i = 0; i < 2000 && !g.finSeen && !g.rstSeen; i++) {
    await settle(1);
    g.take();
    g.send({ flags: tcp.ACK });
  }
  const all = Buffer.concat(g.received);
  const split = all.indexOf('\r\n\r\n');
  const head = all.subarray(0, Math.max(0, split)).toString().split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of head.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  return { status: Number(head[0]?.split(' ')[1] ?? 0), headers, body: all.subarray(split + 4), rst: g.rstSeen };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 10.0.2.3\r\nConnection: close\r\n\r\n`;

describe('the seed service at 10.0.2.3:80', () => {
  it('is refused (RST) while the gateway holds no seed', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false });
    await settle();
    g.take();
    expect(g.rstSeen).toBe(true);
  });

  it('serves the VM whose MAC the seed names, and counts what it fetched', async () => {
    const rig = new GatewayRig();
    const path = rig.seeds.add(formatMac(GUEST_MAC), files());
    expect(path).toMatch(/^\/vmnet\/[0-9a-f]{32}\/$/);
    rig.clock.t = 5000;
    const meta = await request(rig, get(`${path}meta-data`));
    expect(meta.status).toBe(200);
    expect(meta.body.toString()).toBe('instance-id: i-1\n');
    const user = await request(rig, get(`${path}user-data`));
    expect(user.body.toString()).toBe('user-data of the VM\n');
    const vendor = await request(rig, get(`${path}vendor-data`));
    expect([vendor.status, vendor.body.length, vendor.headers['content-length']]).toEqual([200, 0, '0']);
    expect(rig.seeds.fetches(formatMac(GUEST_MAC))).toEqual({ count: 3, firstAt: 5000, lastAt: 5000, documents: ['meta-data', 'user-data', 'vendor-data'], refused: 0 });
    const none = await request(rig, get(`${path}network-config`));
    expect(none.status).toBe(404);
    expect(rig.gateway.tcpNat.counters.hostOverruns).toBe(0);
  });

  it("gives another guest link 403 for the VM's seed (token and all), 404 for a wrong token, 405 for POST, 400 for a body", async () => {
    const rig = new GatewayRig();
    const path = rig.seeds.add(formatMac(GUEST_MAC), files());
    // The VM itself, first: its link holds its MAC and address.
    expect((await request(rig, get(`${path}meta-data`))).status).toBe(200);
    const other = { ip: ip('10.0.2.16'), mac: GUEST2_MAC, ...rig.attachLink() };
    const stolen = await request(rig, get(`${path}user-data`), { from: other });
    expect(stolen.status).toBe(403);
    expect(stolen.body.length).toBe(0);
    expect(stolen.headers.connection).toBe('close');
    expect(rig.seeds.fetches(formatMac(GUEST_MAC))!.refused).toBe(1);
    expect(rig.seeds.fetches(formatMac(GUEST_MAC))!.count).toBe(1);
    expect((await request(rig, get(`/vmnet/${'0'.repeat(32)}/user-data`), { from: other })).status).toBe(404);
    expect((await request(rig, get('/'))).status).toBe(404);
    const post = await request(rig, `POST ${path}user-data HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    const body = await request(rig, `GET ${path}user-data HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`);
    expect(body.status).toBe(400);
    expect(rig.seeds.counters).toEqual({ served: 1, notFound: 2, forbidden: 1, badMethod: 1 });
  });

  it('a guest using the MAC of the VM from a link that does not hold it is refused too', async () => {
    const rig = new GatewayRig();
    const path = rig.seeds.add(formatMac(GUEST2_MAC), files()); // a VM that has not sent a frame yet
    const r = await request(rig, get(`${path}user-data`)); // the rig's guest uses GUEST_MAC, not the seed's
    expect(r.status).toBe(403);
  });

  it('streams a 2 MiB user-data to a guest with a small window: whole, nothing overrun', async () => {
    const rig = new GatewayRig();
    const big = 'x'.repeat(2 * 1024 * 1024 - 1) + '\n';
    const path = rig.seeds.add(formatMac(GUEST_MAC), files(big));
    const r = await request(rig, get(`${path}user-data`), { window: 8192 });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(big.length);
    expect(r.body.toString() === big).toBe(true);
    expect(rig.gateway.tcpNat.counters.hostOverruns).toBe(0);
  });

  it('refuses (RST) a guest past its bound of open connections', async () => {
    const rig = new GatewayRig({ seedLimits: { perGuest: 2 } });
    rig.seeds.add(formatMac(GUEST_MAC), files());
    for (const port of [42000, 42001]) {
      const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port });
      await settle();
      g.establish();
    }
    const third = new GuestConn(rig, { dst: DNS_IP, dstPort: 80, dialed: false, port: 42002 });
    await settle();
    third.take();
    expect(third.rstSeen).toBe(true);
    expect(rig.seedHttp.counters.refusedConnections).toBe(1);
  });
});
