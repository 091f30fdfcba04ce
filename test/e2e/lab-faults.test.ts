/**
 * Link faults from a topology file, on a real guest (the bundled busybox
 * guest under TCG): `impair: loss=20% seed=16` on a VM's NIC loses a
 * binomial share of the echo replies the gateway sends it, which the port's
 * counters (lab status) account for; the file edited to `impair: down` and
 * brought up again changes only that port, live (one action, the same VM
 * pid), and the guest's pings stop; the impair removed from the file clears
 * the port and they come back. A link's impair is applied at the end the
 * file names first. No wall-clock assertion.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleSocket, labDown, labStatus, labUp, loadLab, type LabSpec } from '../../src/index.js';
import { GuestShell } from '../helpers/guest-shell.js';
import { expectBinomialPingLoss } from '../helpers/ping-loss.js';

const dir = mkdtempSync(join(tmpdir(), 'vmnet-lab-faults-'));
const runtime = join(dir, 'run');
const env = { ...process.env, VMNET_RUNTIME_DIR: runtime, XDG_RUNTIME_DIR: '' };
const FILE = join(dir, 'faults.yaml');
const GW = '10.0.13.2';
const COUNT = 200;
const LOSS = 0.2;
const lab = (impair: string) => `name: faults
switches:
  lan: { subnet: 10.0.13.0/24, isolated: true }
  far: {}
vms:
  flaky:
    guest: test
    memory: 192M
    cpus: 1
    accel: tcg
    nics:
      - switch: lan
${impair}
links:
  - between: [lan, far]
    impair: { delay: 10ms, seed: 3 }
`;
let spec: LabSpec;
let sh: GuestShell;
/** `up` of the file as it is now: the lines it prints. */
const up = async (impair: string): Promise<string[]> => {
  writeFileSync(FILE, lab(impair));
  spec = await loadLab(FILE);
  const lines: string[] = [];
  await labUp(spec, { env, onAction: (line) => lines.push(line) }); // the lines `vmnet up` prints
  return lines;
};
const nic = async () => (await labStatus(spec, { env })).vms[0]!;

beforeAll(async () => {
  expect(await up('        impair: loss=20% seed=16')).toEqual([
    'created switch lan (new)',
    'created switch far (new)',
    'linked lan — far (new)',
    'started VM flaky (new)',
    'set link faults on VM flaky eth0: loss=20% seed=16 (new)',
    'set link faults on link lan → far: delay=10ms seed=3 (new)',
  ]);
  sh = await GuestShell.open(await consoleSocket('flaky', env), 240_000);
  const dhcp = await sh.run('udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 30 -T 1', 120_000);
  expect(dhcp.code, dhcp.out).toBe(0);
}, 300_000);

afterAll(async () => {
  sh?.close();
  if (spec) await labDown(spec.name, { env });
});

describe('impair in a lab file', () => {
  it('loss=20% on a NIC: a binomial share of the replies to the VM lost, counted at its port; the link has its delay', async () => {
    const r = await sh.run(`ping -q -c ${COUNT} -i 0.05 -W 3 ${GW}; true`, 240_000);
    const lost = expectBinomialPingLoss(r.out, COUNT, LOSS);
    const st = await labStatus(spec, { env });
    const n = st.vms[0]!.nics[0]!;
    expect(n.impair).toBe('loss=20% seed=16');
    expect(n.link!.egress.settings).toMatchObject({ loss: LOSS, seed: 16, down: false });
    expect(n.link!.ingress.settings.loss).toBe(0); // the default direction: to the VM
    expect(n.link!.egress.counters.lost).toBeGreaterThanOrEqual(lost); // the replies, and whatever else came its way (ARP, DHCP)
    expect(st.links[0]).toMatchObject({ a: 'lan', b: 'far', up: true, impair: 'delay=10ms seed=3' });
    expect(st.links[0]!.link!.egress.settings).toMatchObject({ delayMs: 10, seed: 3 });
    console.log(`lab faults e2e: ${lost}/${COUNT} echo replies lost at loss=20%; port counters ${JSON.stringify(n.link!.egress.counters)}`);
  }, 300_000);

  it('the file edited to down: up changes that port alone, live (same VM pid); pings stop, counted as down', async () => {
    const pid = (await nic()).pid;
    expect(pid).not.toBeNull();
    expect(await up('        impair: { down: true }')).toEqual(['set link faults on VM flaky eth0: down (changed: loss=20% seed=16 → down)']);
    expect(await up('        impair: { down: true }')).toEqual([]); // idempotent
    const r = await sh.run(`ping -c 3 -W 1 ${GW}`, 60_000);
    expect(r.code, r.out).not.toBe(0);
    const v = await nic();
    expect(v.pid).toBe(pid);
    expect(v.nics[0]!.link!.egress.settings).toMatchObject({ down: true, loss: 0 }); // exactly what the file says: the loss is gone
    expect(v.nics[0]!.link!.ingress.counters.down).toBeGreaterThanOrEqual(3); // its echo requests
    expect(JSON.parse(readFileSync(join(runtime, 'labs', 'faults', 'state.json'), 'utf8')).vms.flaky.nics[0].impair).toBe('down');
  }, 120_000);

  it('the impair removed: the port is cleared, pings come back, the VM still the same', async () => {
    const pid = (await nic()).pid;
    expect(await up('')).toEqual(['cleared link faults on VM flaky eth0 (no longer in the file)']);
    const r = await sh.run(`ping -c 3 -W 5 ${GW}`, 60_000);
    expect(r.code, r.out).toBe(0);
    const v = await nic();
    expect(v.pid).toBe(pid);
    expect(v.nics[0]!.impair).toBeNull();
    expect(v.nics[0]!.link!.egress.settings).toMatchObject({ down: false, loss: 0, delayMs: 0 });
  }, 120_000);
});
