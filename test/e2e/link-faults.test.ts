/**
 * Link faults seen by a real guest (the bundled busybox guest under TCG, one
 * NIC on a switch with a gateway): `vmnet link set VM down` stops its pings
 * to the gateway, `up` brings them back, and `loss=20%` on the way to the VM
 * loses the share of echo replies the setting says (a binomial bound), which
 * the port's counters account for. The steps are driven from the guest's
 * console lines: the guest pings once a second and reports each result; the
 * test changes the link when it reads the line it waits for. No wall-clock
 * assertion.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { findBundledGuest, launch, setLink, showLink } from '../../src/index.js';
import type { VmLink } from '../../src/switch/vm-link.js';
import { HOLD_SCRIPT, runConsoleScript } from '../../src/guest/console.js';
import { ensureSwitch, removeSwitch } from '../../src/switch/daemon.js';
import { expectBinomialPingLoss } from '../helpers/ping-loss.js';

const GW = '10.0.11.2'; // the gateway's address on the switch's subnet
const COUNT = 200;
const LOSS = 0.2;

it('link down stops a guest ping, up restores it, loss=20% loses a binomial share of its replies', async () => {
  const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-linkf-'));
  const env = { ...process.env, VMNET_RUNTIME_DIR: runtimeDir, XDG_RUNTIME_DIR: '' };
  const opts = { runtimeDir };
  await ensureSwitch('faults', { subnet: '10.0.11.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }], runtimeDir });
  const guest = findBundledGuest();
  const vm = await launch({ kernel: guest.kernel, initrd: guest.initrd, append: guest.append, accel: 'tcg', memory: '256M', cpus: 1, name: 'flaky', net: ['switch:faults'], env });
  const steps: string[] = [];
  try {
    const script = `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || exit 3
n=0; ok=0
while [ $ok -lt 3 ]; do n=$((n+1)); [ $n -gt 30 ] && exit 4; ping -c1 -W1 ${GW} >/dev/null 2>&1 && ok=$((ok+1)); done
echo STEP-UP
n=0
until ! ping -c1 -W1 ${GW} >/dev/null 2>&1; do n=$((n+1)); [ $n -gt 60 ] && exit 5; done
echo STEP-DOWN-SEEN
fails=0
until ping -c1 -W1 ${GW} >/dev/null 2>&1; do fails=$((fails+1)); [ $fails -eq 3 ] && echo STEP-STILL-DOWN; [ $fails -gt 60 ] && exit 6; done
echo STEP-UP-AGAIN
n=0
while [ ! -e /tmp/go ]; do n=$((n+1)); [ $n -gt 60 ] && exit 7; sleep 1; ping -c1 -W1 ${GW} >/dev/null 2>&1 || touch /tmp/go; done
echo STEP-LOSS
ping -q -c ${COUNT} -i 0.05 -W 3 ${GW}
${HOLD_SCRIPT}
`;
    const onLine = (line: string) => {
      const m = /^STEP-[A-Z-]+$/.exec(line.trim());
      if (m === null) return;
      steps.push(m[0]);
      if (m[0] === 'STEP-UP') void setLink('flaky', 'down', opts);
      if (m[0] === 'STEP-STILL-DOWN') void setLink('flaky:0', 'up', opts);
      // The guest waits for a lost marker ping to know the loss is in force.
      if (m[0] === 'STEP-UP-AGAIN') void setLink('flaky', `loss=${LOSS * 100}% seed=16`, opts);
    };
    // The port's counters, read while the guest holds (its port closes when it powers off after the script).
    let link: VmLink | undefined;
    const onHold = async () => void ([link] = await showLink('flaky:0', opts));
    const r = await runConsoleScript(vm.serial, vm.serial, script, { onLine, onHold, timeoutMs: 300_000 });
    expect(r.exitCode, r.output).toBe(0);
    expect(steps).toEqual(['STEP-UP', 'STEP-DOWN-SEEN', 'STEP-STILL-DOWN', 'STEP-UP-AGAIN', 'STEP-LOSS']);
    // Replies (to the VM) are lost with p = 0.2: within 4 standard deviations of the binomial.
    const lost = expectBinomialPingLoss(r.output, COUNT, LOSS);
    expect(link).toBeDefined();
    const c = link!.link!.egress.counters;
    expect(link!.owner).toBe('flaky:0');
    expect(c.lost).toBeGreaterThanOrEqual(lost); // the replies, plus whatever else the VM lost (the marker pings' replies, ARP)
    expect(link!.link!.ingress.counters.down).toBeGreaterThan(0); // its pings while down (nothing came its way to lose)
    console.log(`link-faults e2e: ${lost}/${COUNT} echo replies lost at loss=${LOSS * 100}%; port counters ${JSON.stringify(c)}`);
  } finally {
    await vm.stop({ timeoutMs: 2000 });
    await removeSwitch('faults', { force: true, runtimeDir });
  }
});
