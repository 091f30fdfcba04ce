/**
 * Example: a vitest test that boots a VM with vmnet, waits for a port and
 * asserts something over the network. In your project, import from 'vmnet'
 * (here: the source tree) and boot your own image, e.g.
 *
 *   const vm = await launch({ image: 'web.qcow2', snapshot: true, forwards: ['8080:80'] });
 *   await vm.waitForPort(80);
 *
 * This one boots vmnet's bundled test guest (built on first use into
 * ~/.cache/vmnet/guest: ensureBundledGuest), whose console takes a script:
 * it gets a DHCP lease and serves a page with busybox httpd.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, ensureBundledGuest, type Vm, type VmEvent } from '../src/index.js';
import { runConsoleScript } from '../src/guest/console.js';

let vm: Vm;
let port: number;
const events: VmEvent[] = [];

beforeAll(async () => {
  const guest = await ensureBundledGuest();
  port = await freePort();
  vm = await launch({
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: guest.append,
    accel: 'tcg',
    memory: '256M',
    cpus: 1,
    name: 'example-web',
    forwards: [`${port}:80`],
    dnsRecords: ['db.example=10.0.2.100'],
    env: { ...process.env, XDG_RUNTIME_DIR: mkdtempSync(join(tmpdir(), 'vmnet-example-')) },
    onEvent: (e) => events.push(e),
  });
  // The test guest's console protocol: send a script once it is ready.
  void runConsoleScript(
    vm.serial,
    vm.serial,
    `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1
echo "hello from $(hostname), db.example is $(nslookup db.example 10.0.2.3 | awk '/^Address/ {a=$NF} END {print a}')" > /var/www/index.html
httpd -p 80 -h /var/www
sleep 600
`,
  ).catch(() => undefined);
  await vm.waitForPort(80, { timeoutMs: 90_000 });
});

afterAll(async () => {
  await vm?.stop({ timeoutMs: 2000 });
});

it('serves HTTP through a port forward', async () => {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  expect(res.status).toBe(200);
  expect(await res.text()).toMatch(/^hello from .*, db\.example is 10\.0\.2\.100\n$/);
  expect(vm.address).toBe('10.0.2.15');
});

it('adds a forward at run time', async () => {
  const extra = await freePort();
  await vm.forwards.add(`${extra}:80`);
  const res = await fetch(`http://127.0.0.1:${extra}/`);
  expect(res.status).toBe(200);
  expect(vm.forwards.list().map((f) => f.hostPort).sort()).toEqual([port, extra].sort());
  expect(await vm.forwards.remove(`${extra}:80`)).toBe(true);
});

it('reports lifecycle events and cleans up on stop', async () => {
  expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['started', 'lease', 'forward', 'ready']));
  const dir = vm.dir;
  const exitEvent = new Promise((r) => vm.once('exit', r));
  const exit = await vm.stop({ timeoutMs: 2000 });
  expect(exit.reason).toBe('stopped');
  expect(await exitEvent).toEqual(exit);
  const { existsSync } = await import('node:fs');
  expect(existsSync(dir)).toBe(false);
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
