/**
 * Link faults on a link between two switches (background daemons, as
 * `vmnet switch link` and a lab's `links:` make them): the link's port at
 * switch A is found by its peer and set by port id through the control
 * socket (`link-set`), and its egress loses what A sends to B within a
 * binomial bound of the setting; the way back (ingress) is untouched.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureSwitch, linkSwitches, removeSwitch, switchSocketFor, switchStatus } from '../../src/switch/daemon.js';
import { setSwitchLink } from '../../src/switch/vm-link.js';
import { connectStream, type StreamPort } from '../../src/link/stream-port.js';
import { BCAST, mac } from '../helpers/switch-kit.js';

const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-swlinkf-'));
const opts = { runtimeDir };
const ports: StreamPort[] = [];
afterAll(async () => {
  for (const p of ports) p.close();
  await Promise.all(['lfa', 'lfb'].map((n) => removeSwitch(n, { force: true, runtimeDir })));
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client on switch `sw` counting the test frames (ethertype 0x88b5) it gets. */
async function client(sw: string) {
  const port = await connectStream({ path: await switchSocketFor(sw, { vlan: 1 }, opts) });
  ports.push(port);
  const got = { n: 0 };
  port.onFrame = (_b, view, off, len) => void (len >= 16 && view.getUint16(off + 12) === 0x88b5 && got.n++);
  return { got, send: (src: Uint8Array) => {
    const b = new Uint8Array(64);
    b.set(BCAST, 0);
    b.set(src, 6);
    new DataView(b.buffer).setUint16(12, 0x88b5);
    port.sendFrame(b, 0, 64);
  } };
}

it('loss on switch A\'s end of a link: A→B loses a binomial share, B→A none, counted at the port', async () => {
  await Promise.all(['lfa', 'lfb'].map((n) => ensureSwitch(n, { runtimeDir, gateway: false })));
  expect(await linkSwitches('lfa', 'lfb', { vlan: 1 }, opts)).toBe(true);
  const a = await client('lfa');
  const b = await client('lfb');
  const l = await setSwitchLink('lfa', 'lfb', 'loss=30% seed=11', opts);
  expect(l.link!.egress.settings.loss).toBe(0.3);
  expect(l.link!.ingress.settings.loss).toBe(0);
  const n = 1000;
  for (let i = 0; i < n; i++) {
    a.send(mac(1));
    b.send(mac(2));
    if (i % 50 === 49) await sleep(2);
  }
  const deadline = Date.now() + 10_000;
  while (a.got.n < n && Date.now() < deadline) await sleep(20);
  await sleep(200);
  expect(a.got.n).toBe(n); // B→A: no faults that way
  const lost = n - b.got.n;
  expect(Math.abs(lost - n * 0.3)).toBeLessThan(4 * Math.sqrt(n * 0.3 * 0.7));
  const port = (await switchStatus('lfa', opts))!.snapshot.switch.ports.find((p) => p.kind === 'link' && p.peer === 'lfb')!;
  expect(port.link!.egress.counters).toMatchObject({ offered: n, lost });
  await expect(setSwitchLink('lfa', 'nosuch', 'down', opts)).rejects.toThrow(/switch lfa has no link to nosuch/);
  console.log(`switch link faults: loss=30% on lfa→lfb: ${lost}/${n} lost`);
});
