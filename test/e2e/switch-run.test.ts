/**
 * A VM whose only NIC is a switch port, launched with the library: its
 * forwards and readiness probe go through the switch's gateway, addressed by
 * the VM's name (resolved to its lease), and are removed when it stops.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { launch, findBundledGuest } from '../../src/index.js';
import { runConsoleScript } from '../../src/guest/console.js';
import { freePort } from '../helpers/ports.js';
import { ensureSwitch, removeSwitch, switchForwardList } from '../../src/switch/daemon.js';

it('forwards to a VM on a switch by its name, and probes it there', async () => {
  const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-swrun-'));
  const env = { ...process.env, VMNET_RUNTIME_DIR: runtimeDir, XDG_RUNTIME_DIR: '' };
  await ensureSwitch('fwdlab', { subnet: '10.0.9.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }], runtimeDir });
  const guest = findBundledGuest();
  const port = await freePort();
  const vm = await launch({
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: guest.append,
    accel: 'tcg',
    memory: '256M',
    cpus: 1,
    name: 'swweb',
    net: ['switch:fwdlab'],
    forwards: [`${port}:80`],
    env,
  });
  try {
    void runConsoleScript(vm.serial, vm.serial, `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 -x hostname:swweb
echo "hello from the switch" > /var/www/index.html
httpd -p 80 -h /var/www
sleep 600
`).catch(() => undefined);
    await vm.waitForPort(80, { timeoutMs: 90_000 });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await res.text()).toBe('hello from the switch\n');
    expect((await switchForwardList('fwdlab', { runtimeDir })).map((f) => f.guest)).toEqual(['swweb']);
  } finally {
    await vm.stop({ timeoutMs: 2000 });
  }
  expect(await switchForwardList('fwdlab', { runtimeDir })).toEqual([]);
  await removeSwitch('fwdlab', { force: true, runtimeDir });
});
