import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isVmnetError } from '../errors.js';
import { encodeFrames } from '../../test/helpers/fuzz-frames.js';
import { frame as buildFrame, marked, markOf, streamClient, until, vlanOf } from '../../test/helpers/switch-kit.js';
import { roleSocketName, startSwitch, type RunningSwitch, type SwitchServerOptions } from './server.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'vmnet-sw-'));
  chmodSync(root, 0o700);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
async function start(opts: Partial<SwitchServerOptions> = {}): Promise<RunningSwitch> {
  const sw = await startSwitch({ dir: join(root, `sw${seq++}`), ...opts });
  cleanups.push(() => sw.close());
  return sw;
}

const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, n);
const BCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);

const frame = marked;
const client = (path: string) => streamClient(path, cleanups);

describe('startSwitch', () => {
  it('two ports on the default socket exchange frames; directories are private', async () => {
    const sw = await start();
    expect(sw.socket).toBe(join(sw.dir, 'ports', 'access-1.sock'));
    expect(statSync(sw.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(sw.dir, 'ports')).mode & 0o777).toBe(0o700);
    expect(statSync(sw.socket).mode & 0o777).toBe(0o600);
    const a = await client(sw.socket);
    const b = await client(sw.socket);
    await until(() => sw.switch.ports().length === 2);
    a.send(frame(BCAST, mac(1), 1));
    await until(() => b.got.length === 1);
    b.send(frame(mac(1), mac(2), 2));
    await until(() => a.got.length === 1);
    expect(markOf(a.got[0]!)).toBe(2);
    expect(markOf(b.got[0]!)).toBe(1);
    // A burst in both directions, unicast after learning.
    for (let i = 0; i < 200; i++) {
      a.send(frame(mac(2), mac(1), i & 0xff));
      b.send(frame(mac(1), mac(2), i & 0xff));
    }
    await until(() => a.got.length === 201 && b.got.length === 201);
    expect(a.got.slice(1).map(markOf)).toEqual(Array.from({ length: 200 }, (_, i) => i & 0xff));
    const snap = sw.snapshot();
    expect(snap.ports).toHaveLength(2);
    expect(snap.ports.map((p) => p.macs.map((m) => m.mac))).toEqual([['52:54:00:12:34:01'], ['52:54:00:12:34:02']]);
    expect(snap.ports[0]).toMatchObject({ kind: 'stream', roleText: 'access 1', socket: sw.socket, counters: { rxFrames: 201, txFrames: 201 } });
    expect(snap.sockets).toEqual([{ role: { vlan: 1 }, roleText: 'access 1', path: sw.socket, ports: 2 }]);
    expect(snap.counters.forwarded).toBe(401);
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
  });

  it('role sockets: access VLANs are isolated, a trunk sees both tagged', async () => {
    const sw = await start();
    const p10 = await sw.socketFor({ vlan: 10 });
    expect(await sw.socketFor({ vlan: 10 })).toBe(p10);
    const p20 = await sw.socketFor({ vlan: 20 });
    const pt = await sw.socketFor({ trunk: [20, 10] });
    expect(p10).toBe(join(sw.dir, 'ports', 'access-10.sock'));
    expect(pt).toBe(join(sw.dir, 'ports', 'trunk-10_20.sock'));
    expect(await sw.socketFor({ vlan: 1 })).toBe(sw.socket);
    const [a10, b10, a20, t] = await Promise.all([client(p10), client(p10), client(p20), client(pt)]);
    const u = await client(sw.socket);
    await until(() => sw.switch.ports().length === 5);
    a10.send(frame(BCAST, mac(1), 1));
    a20.send(frame(BCAST, mac(2), 2));
    t.send(frame(BCAST, mac(3), 3, 20));
    await until(() => t.got.length === 2 && b10.got.length === 1 && a20.got.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(t.got.map((f) => [vlanOf(f), markOf(f)]).sort()).toEqual([
      [10, 1],
      [20, 2],
    ]);
    expect(b10.got.map(markOf)).toEqual([1]);
    expect(a10.got).toHaveLength(0);
    expect(a20.got.map((f) => [vlanOf(f), markOf(f)])).toEqual([[-1, 3]]);
    expect(u.got).toHaveLength(0);
    expect(sw.snapshot().sockets.map((s) => [s.roleText, s.ports])).toEqual([
      ['access 1', 1],
      ['access 10', 2],
      ['access 20', 1],
      ['trunk 10,20', 1],
    ]);
  });

  it('names role sockets canonically and hashes names that would not fit', async () => {
    expect(roleSocketName({ trunk: [10, 20, 21, 22, 30] })).toBe('trunk-10_20-22_30.sock');
    expect(roleSocketName({ trunk: [10], native: 1 })).toBe('trunk-10-native-1.sock');
    expect(roleSocketName({ trunk: [], native: 5 })).toBe('trunk-native-5.sock');
    const sw = await start();
    const many = Array.from({ length: 40 }, (_, i) => i * 3 + 2);
    const p = await sw.socketFor({ trunk: many });
    expect(p).toMatch(/trunk-h[0-9a-f]{12}\.sock$/);
    expect(await sw.socketFor({ trunk: [...many].reverse() })).toBe(p);
    const err = await sw.socketFor({ vlan: 4095 }).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code === 'E_USAGE').toBe(true);
  });

  it('a lying length prefix closes that port alone; the others keep working', async () => {
    const sw = await start();
    const a = await client(sw.socket);
    const b = await client(sw.socket);
    const liar = net.connect({ path: sw.socket });
    cleanups.push(() => liar.destroy());
    await until(() => sw.switch.ports().length === 3);
    // A real frame first, so the liar has a learned MAC to lose.
    liar.write(encodeFrames([frame(BCAST, mac(9), 9)]));
    await until(() => sw.switch.size === 1);
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(0x7fff0000);
    liar.write(Buffer.concat([bad, Buffer.alloc(100)]));
    await until(() => sw.switch.ports().length === 2);
    expect(sw.switch.size).toBe(0);
    expect(sw.snapshot().connectionsClosed).toEqual({ oversize: 1 });
    a.send(frame(BCAST, mac(1), 1));
    await until(() => b.got.length === 2);
    expect(b.got.map(markOf)).toEqual([9, 1]);
  });

  it('a VM that stops reading is queued 3 MiB past its port\'s congestion, then tail-dropped', async () => {
    const sw = await start();
    const a = await client(sw.socket);
    const slow = net.connect({ path: sw.socket });
    cleanups.push(() => slow.destroy());
    slow.pause(); // never reads: its port fills and stays congested
    await until(() => sw.switch.ports().length === 2);
    slow.write(encodeFrames([frame(BCAST, mac(2), 2)]));
    await until(() => sw.switch.size === 1);
    const big = buildFrame({ dst: mac(2), src: mac(1), type: 0x88b5, payload: 1500 });
    const port = sw.snapshot().ports.find((p) => p.macs.length === 1)!;
    const counters = () => sw.snapshot().ports.find((p) => p.id === port.id)!.counters;
    const total = Math.ceil((6 * 1024 * 1024) / big.length);
    for (let i = 0; i < total; i++) {
      a.send(big);
      if (i % 64 === 63) await until(() => a.port.queuedBytes < 512 * 1024); // the client's own queue stays small
    }
    await until(() => counters().txFrames + counters().txDropped === total);
    const c = counters();
    // Before queueBytes, the drop started at the 256 KiB high-water mark (plus what the kernel took): 300-400 frames.
    expect(c.txFrames * big.length).toBeGreaterThan(3 * 1024 * 1024 + 256 * 1024);
    expect(c.txFrames * big.length).toBeLessThan(4 * 1024 * 1024 + 1024 * 1024); // bounded: the rest is dropped
    expect(c.txDropped).toBeGreaterThan(0);
  });

  it('a prefix shorter than the frame turns the rest into garbage that is counted, not thrown', async () => {
    const sw = await start();
    const b = await client(sw.socket);
    const s = net.connect({ path: sw.socket });
    cleanups.push(() => s.destroy());
    await until(() => sw.switch.ports().length === 2);
    const f = frame(BCAST, mac(5), 5);
    const pre = Buffer.alloc(4);
    pre.writeUInt32BE(10); // claims 10 bytes, then garbage follows
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(6);
    s.write(Buffer.concat([pre, f.subarray(0, 10), tail, Buffer.alloc(6)]));
    await until(() => sw.switch.counters.drops.runt === 2);
    expect(sw.switch.ports()).toHaveLength(2);
    expect(b.got).toHaveLength(0);
  });

  it('a port hanging up mid-frame is closed and forgotten', async () => {
    const sw = await start();
    const a = await client(sw.socket);
    const s = net.connect({ path: sw.socket });
    await until(() => sw.switch.ports().length === 2);
    const f = frame(BCAST, mac(7), 7);
    const pre = Buffer.alloc(4);
    pre.writeUInt32BE(f.length);
    s.write(Buffer.concat([pre, f, pre, f.subarray(0, 20)]));
    await until(() => a.got.length === 1);
    s.end();
    await until(() => sw.switch.ports().length === 1);
    expect(sw.snapshot().connectionsClosed).toEqual({ 'mid-frame': 1 });
    expect(sw.switch.size).toBe(0);
  });

  it('writes a pcap with each frame once, tagged with its VLAN', async () => {
    const pcapPath = join(root, `cap${seq}.pcap`);
    const sw = await start({ pcap: pcapPath });
    const p10 = await sw.socketFor({ vlan: 10 });
    const a = await client(sw.socket);
    const b = await client(sw.socket);
    const c = await client(p10);
    await until(() => sw.switch.ports().length === 3);
    a.send(frame(BCAST, mac(1), 1));
    c.send(frame(BCAST, mac(3), 3));
    await until(() => b.got.length === 1 && sw.switch.counters.frames === 2);
    await sw.close();
    const file = readFileSync(pcapPath);
    expect(statSync(pcapPath).mode & 0o777).toBe(0o600);
    expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(file.readUInt32LE(16)).toBe(1522); // snaplen = max frame (two tags)
    const recs: Uint8Array[] = [];
    for (let o = 24; o < file.length; ) {
      const incl = file.readUInt32LE(o + 8);
      recs.push(file.subarray(o + 16, o + 16 + incl));
      o += 16 + incl;
    }
    expect(recs.map((r) => [vlanOf(r), markOf(r)]).sort()).toEqual([
      [1, 1],
      [10, 3],
    ]);
    expect(sw.snapshot().pcap).toMatchObject({ records: 2, path: pcapPath });
  });

  it('internal ports exchange frames with stream ports, replies included', async () => {
    const sw = await start();
    const a = await client(sw.socket);
    await until(() => sw.switch.ports().length === 1);
    const out = new Uint8Array(64); // a peer that reuses one output buffer
    const seen: number[] = [];
    const gw = sw.addInternalPort(
      {
        sendFrame(buf, off, len) {
          seen.push(markOf(buf.subarray(off, off + len)));
          // Answer synchronously, as the gateway does for ARP.
          out.set(frame(buf.subarray(off + 6, off + 12), mac(0xfe), 0xee));
          gw.sendFrame(out, 0, 64);
        },
      },
      { name: 'gateway' },
    );
    a.send(frame(BCAST, mac(1), 1));
    await until(() => a.got.length === 1);
    expect(seen).toEqual([1]);
    expect(markOf(a.got[0]!)).toBe(0xee);
    expect(sw.switch.lookup(1, mac(0xfe))).toBe(gw.port);
    expect(sw.snapshot().ports.find((p) => p.name === 'gateway')).toMatchObject({ kind: 'internal', socket: null });
    gw.remove();
    expect(sw.switch.lookup(1, mac(0xfe))).toBeNull();
  });

  it('honours an explicit socket path, rejects bad options, closes cleanly', async () => {
    const dir = join(root, `explicit${seq++}`);
    const sock = join(root, `default${seq}.sock`);
    const sw = await startSwitch({ dir, socket: sock, mtu: 9000 });
    expect(sw.socket).toBe(sock);
    expect(await sw.socketFor({ vlan: 1 })).toBe(sock);
    const p = await sw.socketFor({ trunk: [5], native: 1 });
    expect(p).toBe(join(dir, 'ports', 'trunk-5-native-1.sock'));
    const c = await client(sock);
    await until(() => sw.switch.ports().length === 1);
    expect(sw.snapshot().maxFrame).toBe(9022);
    await sw.close();
    await sw.close();
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(p)).toBe(false);
    await until(() => c.port.closed);
    const e1 = await sw.socketFor({ vlan: 2 }).catch((e: unknown) => e);
    expect(isVmnetError(e1) && e1.code === 'E_CLOSED').toBe(true);
    for (const bad of [{}, { dir: join(root, 'x'), mtu: 5 }, { dir: join(root, 'y'), ageingMs: -1 }]) {
      const err = await startSwitch(bad).catch((e: unknown) => e);
      expect(isVmnetError(err) && err.code === 'E_USAGE').toBe(true);
    }
    // A second switch on the same directory: the socket is in use.
    const first = await start();
    const err = await startSwitch({ dir: first.dir }).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code === 'E_PORT_IN_USE').toBe(true);
  });
});

/** Links between switches (server.ts, "Links between switches"). */
describe('switch links', () => {
  it('a trunk link carries its VLANs between two switches, each to its own VLAN, and nothing else; both ends know it is a link', async () => {
    const a = await start();
    const b = await start();
    const trunk = { trunk: [10, 20], native: 1 };
    const path = await b.linkSocket('a', trunk);
    expect(path).toBe(join(b.dir, 'ports', 'link-a.sock'));
    expect(await b.linkSocket('a', trunk)).toBe(path); // the same socket again
    expect(await a.link('b', path, trunk)).toBe(true);
    expect(await a.link('b', path, trunk)).toBe(false); // idempotent
    const a10 = await client(await a.socketFor({ vlan: 10 }));
    const a30 = await client(await a.socketFor({ vlan: 30 }));
    const b10 = await client(await b.socketFor({ vlan: 10 }));
    const b20 = await client(await b.socketFor({ vlan: 20 }));
    const b1 = await client(b.socket);
    const b30 = await client(await b.socketFor({ vlan: 30 }));
    await until(() => a.switch.ports().length === 3 && b.switch.ports().length === 5);
    a10.send(marked(BCAST, mac(1), 1));
    await until(() => b10.got.length === 1);
    expect(markOf(b10.got[0]!)).toBe(1);
    expect(vlanOf(b10.got[0]!)).toBe(-1); // untagged at the access port
    // Unicast back, learned across the link.
    b10.send(marked(mac(1), mac(2), 2));
    await until(() => a10.got.length === 1);
    expect(markOf(a10.got[0]!)).toBe(2);
    // VLAN 30 exists on both switches but the link does not carry it.
    a30.send(marked(BCAST, mac(3), 3));
    await new Promise((r) => setTimeout(r, 100));
    expect(b30.got).toHaveLength(0);
    expect(b20.got).toHaveLength(0);
    expect(b1.got).toHaveLength(0);
    const la = a.snapshot().ports.filter((p) => p.kind === 'link');
    const lb = b.snapshot().ports.filter((p) => p.kind === 'link');
    expect(la).toMatchObject([{ peer: 'b', name: 'link-b', roleText: 'trunk 10,20 native 1' }]);
    expect(lb).toMatchObject([{ peer: 'a', name: 'link-a', roleText: 'trunk 10,20 native 1', socket: path }]);
    expect(la[0]!.macs.map((m) => m.mac)).toEqual(['52:54:00:12:34:02']);
    expect(lb[0]!.macs.map((m) => m.mac)).toEqual(['52:54:00:12:34:01']);
  });

  it('unlink cuts it at either end; a peer that goes away takes the link with it, and linking again works', async () => {
    const a = await start();
    const b = await startSwitch({ dir: join(root, `sw${seq++}`) });
    const role = { trunk: [10] };
    await a.link('b', await b.linkSocket('a', role), role);
    await until(() => b.switch.ports().length === 1);
    expect(await a.unlink('b')).toBe(true);
    expect(await a.unlink('b')).toBe(false);
    await until(() => a.switch.ports().length === 0 && b.switch.ports().length === 0);
    expect(await b.unlink('a')).toBe(true); // its socket goes too
    expect(existsSync(join(b.dir, 'ports', 'link-a.sock'))).toBe(false);
    await a.link('b', await b.linkSocket('a', role), role);
    await until(() => a.switch.ports().length === 1 && b.switch.ports().length === 1);
    // Cut at the far end: the socket and its port go, and with them the near end's port.
    expect(await b.unlink('a')).toBe(true);
    await until(() => a.switch.ports().length === 0 && b.switch.ports().length === 0);
    await a.unlink('b');
    await a.link('b', await b.linkSocket('a', role), role);
    await b.close();
    await until(() => a.switch.ports().length === 0);
    const c = await start();
    expect(await a.link('b', await c.linkSocket('a', role), role)).toBe(true);
    await until(() => c.switch.ports().length === 1);
  });

  it('a link to a socket where nothing listens fails with E_NO_FILE and leaves nothing', async () => {
    const a = await start();
    await expect(a.link('x', join(root, 'nothing.sock'), { trunk: [10] })).rejects.toMatchObject({ code: 'E_NO_FILE' });
    expect(a.switch.ports()).toHaveLength(0);
    expect(await a.unlink('x')).toBe(false);
  });
});
