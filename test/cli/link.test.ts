/**
 * `vmnet link set|show` as a user runs it (the built CLI as a child
 * process): against a background switch with one port that came in on a
 * per-NIC socket, as a VM's NIC does (owner `lab1:0`). Good settings change
 * the port and show up in `link show` (text and JSON); bad input is one line
 * on stderr and exit code 2.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSwitch, removeSwitch, switchSocketFor } from '../../src/switch/daemon.js';
import { connectStream, type StreamPort } from '../../src/link/stream-port.js';
import { cliRunner } from '../helpers/cli.js';

const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-linkcli-'));
const vmnet = cliRunner({ ...process.env, VMNET_RUNTIME_DIR: runtimeDir, XDG_RUNTIME_DIR: '' });
let nic: StreamPort;

beforeAll(async () => {
  await ensureSwitch('linkcli', { runtimeDir });
  nic = await connectStream({ path: await switchSocketFor('linkcli', { vlan: 1 }, { runtimeDir, owner: 'lab1:0' }) });
});
afterAll(async () => {
  nic?.close();
  await removeSwitch('linkcli', { force: true, runtimeDir });
});

describe('vmnet link', () => {
  it('sets faults on a VM NIC and shows them, as text and JSON', async () => {
    const set = await vmnet('link', 'set', 'lab1', 'loss=5%', 'delay=50ms', 'jitter=5ms', 'rate=10mbit', 'seed=7');
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^lab1:0 {2}switch linkcli port \d+ {2}up$/m);
    expect(set.stdout).toContain('egress (to VM): delay=50ms jitter=5ms loss=5% rate=10mbit  seed 7');
    const down = await vmnet('link', 'set', 'lab1:0', 'down');
    expect(down.code).toBe(0);
    const show = await vmnet('link', 'show', 'lab1', '--json');
    expect(show.code).toBe(0);
    const [l] = JSON.parse(show.stdout) as Array<{ switch: string; owner: string; link: { egress: { settings: { down: boolean; loss: number } }; ingress: { settings: { down: boolean } } } }>;
    expect(l).toMatchObject({ switch: 'linkcli', owner: 'lab1:0' });
    expect(l!.link.egress.settings).toMatchObject({ down: true, loss: 0.05 });
    expect(l!.link.ingress.settings.down).toBe(true);
    const clear = await vmnet('link', 'set', 'lab1', 'clear');
    expect(clear.stdout).toMatch(/up\n {2}egress \(to VM\): ok/);
  });

  it.each([
    [['link', 'set', 'lab1', 'loss=5'], /bad link setting "loss=5": give a percentage/],
    [['link', 'set', 'lab1', 'warp=9'], /known settings/],
    [['link', 'set', 'lab1', 'reorder=5%'], /reorder needs a delay/],
    [['link', 'set', 'lab1'], /no link setting given/],
    [['link', 'set', 'nosuchvm', 'down'], /no switch port of nosuchvm/],
    [['link', 'set', 'bad name!', 'down'], /bad link target/],
    [['link', 'frob', 'lab1'], /./],
  ])('vmnet %j: one line, exit 2', async (args, re) => {
    const r = await vmnet(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr.trim().split('\n').length <= 1 || args[1] === 'frob').toBe(true); // yargs prints usage for an unknown action
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
