/**
 * Links between switches (server.ts, "Links between switches"): two switch
 * servers cabled by a trunk carry the trunk's VLANs tagged and its native
 * VLAN untagged, and nothing else; a link is idempotent per name, shows as
 * kind `link`, and is gone when either end goes.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { marked, markOf, streamClient, until, vlanOf } from '../../test/helpers/switch-kit.js';
import { startSwitch, type RunningSwitch } from './server.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'vmnet-link-'));
  chmodSync(root, 0o700);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
async function start(): Promise<RunningSwitch> {
  const sw = await startSwitch({ dir: join(root, `sw${seq++}`) });
  cleanups.push(() => sw.close());
  return sw;
}
const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, n);
const BCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);
const client = (path: string) => streamClient(path, cleanups);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('switch links', () => {
  it('a trunk link carries its VLANs between two switches, each to its own VLAN, and nothing else', async () => {
    const a = await start();
    const b = await start();
    const trunk = { trunk: [10, 20], native: 1 };
    expect(await a.link('b', await b.socketFor(trunk), trunk)).toBe(true);
    expect(await a.link('b', await b.socketFor(trunk), trunk)).toBe(false); // idempotent
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
    await sleep(100);
    expect(b30.got).toHaveLength(0);
    expect(b20.got).toHaveLength(0);
    expect(b1.got).toHaveLength(0);
    const snapA = a.snapshot();
    const l = snapA.ports.find((p) => p.kind === 'link');
    expect(l).toMatchObject({ link: 'b', roleText: expect.stringContaining('10') });
    expect(snapA.ports.filter((p) => p.kind === 'link')).toHaveLength(1);
    expect(l!.macs.map((m) => m.mac)).toEqual(['52:54:00:12:34:02']);
  });

  it('unlink cuts it; a peer that goes away takes the link with it, and linking again works', async () => {
    const a = await start();
    const b = await startSwitch({ dir: join(root, `sw${seq++}`) });
    const role = { trunk: [10] };
    await a.link('b', await b.socketFor(role), role);
    await until(() => b.switch.ports().length === 1);
    expect(a.unlink('b')).toBe(true);
    expect(a.unlink('b')).toBe(false);
    await until(() => a.switch.ports().length === 0 && b.switch.ports().length === 0);
    await a.link('b', await b.socketFor(role), role);
    await until(() => a.switch.ports().length === 1);
    await b.close();
    await until(() => a.switch.ports().length === 0);
    const c = await start();
    expect(await a.link('b', await c.socketFor(role), role)).toBe(true);
    await until(() => c.switch.ports().length === 1);
  });

  it('a link to a socket where nothing listens fails with E_NO_FILE and leaves nothing', async () => {
    const a = await start();
    await expect(a.link('x', join(root, 'nothing.sock'), { trunk: [10] })).rejects.toMatchObject({ code: 'E_NO_FILE' });
    expect(a.switch.ports()).toHaveLength(0);
    expect(a.unlink('x')).toBe(false);
  });
});
