/**
 * `vmnet run disk.qcow2` on vmnet's own network, through the built binary:
 * the bundled qcow2 disk boots through SeaBIOS with its NIC on vmnet's
 * gateway (a `-netdev stream`, not QEMU's user net), with `--gateway-ip`
 * and `--dns-ip` chosen. The guest's lease names the chosen router and DNS,
 * DNS answers at the chosen address, and a forward bound to all addresses
 * shows the guest a non-loopback client's real address (and a loopback
 * client as the gateway).
 *
 * vmnet runs inside a network namespace of the test's own, joined by a veth
 * pair to a second one where the non-loopback client runs: no address is
 * added to the host's namespace and nothing leaves the machine. One boot
 * serves every test here.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { addVethPair, createNetns, runInNetns, type Netns } from '../helpers/netns.js';
import { privateTmp } from '../helpers/tmp.js';
import { parseLease, WHO_HTTPD } from './harness.js';
import { connectUnix, serveOverConsole, SMALL, startRun, vmnet, type Running } from './launcher-helpers.js';

const NAME = 'runnet';
const GATEWAY_IP = '10.0.2.1';
const DNS_IP = '10.0.2.53';
/** vmnet's namespace and the client's, on a /24 of TEST-NET-2. */
const HOST_SIDE = '198.51.100.1';
const CLIENT_SIDE = '198.51.100.2';
/** Any port is free in a namespace created a moment ago. */
const PORT = 18080;

let hostNs: Netns;
let clientNs: Netns;
let env: NodeJS.ProcessEnv;
let run: Running;
let started: Record<string, unknown>;
let lines: string[];

beforeAll(async () => {
  hostNs = createNetns('vmnet-runnet');
  clientNs = createNetns('vmnet-client');
  await addVethPair(hostNs, 'vh0', `${HOST_SIDE}/24`, clientNs, 'vc0', `${CLIENT_SIDE}/24`);
  env = { ...process.env, XDG_RUNTIME_DIR: privateTmp('vmnet-runnet-'), VMNET_DEBUG: '' };
  delete env.VMNET_RUNTIME_DIR;
  const guest = findBundledGuest();
  run = startRun(
    [guest.diskQcow2, '--snapshot', '--name', NAME, '--gateway-ip', GATEWAY_IP, '--dns-ip', DNS_IP, '--dns-upstream', '127.0.0.1:9', '-p', `0.0.0.0:${PORT}:80`, '--console', 'none', '--stop-timeout', '1', ...SMALL],
    env,
    { cmd: ['ip', 'netns', 'exec', hostNs.name, process.execPath] },
  );
  started = await run.event('started');
  const consoleSock = await connectUnix(join(started.dir as string, 'console.sock'));
  lines = await serveOverConsole(
    consoleSock,
    consoleSock,
    `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || echo DHCP-FAILED
nslookup host.vmnet.internal ${DNS_IP} 2>&1 | tr '\\n' ' ' | sed 's/^/DNS /'; echo
ping -c 1 -W 5 ${GATEWAY_IP} | grep -c 'bytes from' | sed 's/^/PINGGW /'
${WHO_HTTPD}echo SERVING
sleep 600
`,
  );
}, 240_000);

afterAll(async () => {
  if (run && run.child.exitCode === null && run.child.signalCode === null) await vmnet(['stop', NAME, '--force'], env);
  hostNs?.delete();
  clientNs?.delete();
});

describe('vmnet run disk.qcow2 on its own network, with --gateway-ip and --dns-ip', () => {
  it('boots the qcow2 disk through SeaBIOS with its NIC on the vmnet gateway', () => {
    expect(started).toMatchObject({ name: NAME, accel: 'tcg' });
    const argv = readFileSync(`/proc/${started.qemuPid as number}/cmdline`, 'utf8').split('\0');
    expect(argv.some((a) => a.includes('format=qcow2') && a.includes('disk.qcow2'))).toBe(true);
    expect(argv).not.toContain('-kernel');
    expect(argv.find((a) => a.startsWith('stream,'))).toMatch(/^stream,id=net0,server=off,addr\.type=unix,addr\.path=/);
    expect(argv.join(' ')).not.toMatch(/-netdev user|hostfwd/);
  });

  it("leases the chosen router and DNS; DNS and ICMP answer at the chosen addresses", async () => {
    expect(lines).not.toContain('DHCP-FAILED');
    const lease = parseLease(lines.join('\n'));
    expect(lease, lines.join('\n')).toMatchObject({ ip: '10.0.2.15', router: GATEWAY_IP, dns: DNS_IP });
    expect(await run.event('lease')).toMatchObject({ address: '10.0.2.15' });
    expect(lines.find((l) => l.startsWith('DNS '))).toMatch(new RegExp(`Name:\\s+host\\.vmnet\\.internal\\s+Address: ${GATEWAY_IP.replaceAll('.', '\\.')}`));
    expect(lines).toContain('PINGGW 1');
  });

  it("a forward bound to 0.0.0.0 shows the guest a non-loopback client's real address, a loopback client as the gateway", async () => {
    const remote = await runInNetns(clientNs, 'busybox', ['wget', '-q', '-O', '-', `http://${HOST_SIDE}:${PORT}/cgi-bin/who`]);
    expect(remote).toBe(`from ${CLIENT_SIDE}\n`);
    const local = await runInNetns(hostNs, 'busybox', ['wget', '-q', '-O', '-', `http://127.0.0.1:${PORT}/cgi-bin/who`]);
    expect(local).toBe(`from ${GATEWAY_IP}\n`);
  });

  it('stops on SIGINT and leaves nothing behind', async () => {
    const dir = started.dir as string;
    run.child.kill('SIGINT');
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(existsSync(dir)).toBe(false);
  });
});
