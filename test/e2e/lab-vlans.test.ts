/**
 * The VLAN lab of examples/labs/vlans.yaml, booted: hosts on two VLANs of
 * one switch (edge) reach each other only through the router VM, whose
 * switch (core) is cabled to edge by a trunk link carrying both VLANs; the
 * isolated segment reaches neither.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleSocket, labDown, labStatus, labUp, loadLab, type LabSpec } from '../../src/index.js';
import { switchStatus } from '../../src/switch/daemon.js';
import { GuestShell } from '../helpers/guest-shell.js';

const FILE = new URL('../../examples/labs/vlans.yaml', import.meta.url).pathname;
const runtime = mkdtempSync(join(tmpdir(), 'vmnet-lab-vlans-'));
const env = { ...process.env, VMNET_RUNTIME_DIR: runtime };
let lab: LabSpec;
const sh: Record<string, GuestShell> = {};

/** Runs a command in a guest and expects it to succeed. */
async function ok(vm: string, cmd: string): Promise<string> {
  const r = await sh[vm]!.run(cmd);
  expect(r.code, `${vm}: ${cmd}\n${r.out}`).toBe(0);
  return r.out;
}

beforeAll(async () => {
  lab = await loadLab(FILE);
  const done = await labUp(lab, { env });
  expect(done.map((a) => a.op)).toEqual(['create-switch', 'create-switch', 'create-switch', 'link', 'start-vm', 'start-vm', 'start-vm', 'start-vm']);
  for (const vm of ['router', 'h10', 'h20', 'lone']) sh[vm] = await GuestShell.open(await consoleSocket(vm, env));
  // NICs come up in the order of the file: eth0 is the first.
  const st = await labStatus(lab, { env });
  const macs = Object.fromEntries(st.vms.map((v) => [v.name, v.nics.map((n) => n.mac)]));
  expect((await ok('router', 'cat /sys/class/net/eth0/address /sys/class/net/eth1/address')).trim().split('\n')).toEqual(macs.router);
  await ok('router', 'ip addr add 10.10.0.1/24 dev eth0 && ip addr add 10.20.0.1/24 dev eth1 && echo 1 > /proc/sys/net/ipv4/ip_forward');
  await ok('h10', 'ip addr add 10.10.0.10/24 dev eth0 && ip route add default via 10.10.0.1');
  await ok('h20', 'ip addr add 10.20.0.10/24 dev eth0 && ip route add default via 10.20.0.1');
}, 300_000);

afterAll(async () => {
  for (const s of Object.values(sh)) s.close();
  if (lab) await labDown(lab.name, { env });
});

describe('two VLANs and a router VM', () => {
  it('h10 reaches h20 through the router: one hop (TTL 63), both ways, across the trunk link', async () => {
    const there = await ok('h10', 'ping -c 3 -W 5 10.20.0.10');
    expect(there).toMatch(/from 10\.20\.0\.10: seq=\d+ ttl=63/);
    const back = await ok('h20', 'ping -c 2 -W 5 10.10.0.10');
    expect(back).toMatch(/from 10\.10\.0\.10: seq=\d+ ttl=63/);
    // The frames crossed the link: its port on core carried them both ways, on the trunk.
    const core = (await switchStatus('core', { runtimeDir: runtime }))!;
    const link = core.snapshot.switch.ports.find((p) => p.kind === 'link');
    expect(link).toMatchObject({ peer: 'edge', roleText: 'trunk 10,20 native 1' });
    expect(link!.counters.rxFrames).toBeGreaterThan(4);
    expect(link!.counters.txFrames).toBeGreaterThan(4);
  });

  it('without the router forwarding, the VLANs do not reach each other', async () => {
    await ok('router', 'echo 0 > /proc/sys/net/ipv4/ip_forward');
    expect((await sh.h10!.run('ping -c 2 -W 2 10.20.0.10')).code).not.toBe(0);
    await ok('router', 'echo 1 > /proc/sys/net/ipv4/ip_forward');
    await ok('h10', 'ping -c 1 -W 5 10.20.0.10');
  });

  it('no way around the router: h20 put on h10\'s link by a route gets no ARP answer (the VLANs are two LANs)', async () => {
    await ok('h10', 'ip route add 10.20.0.10/32 dev eth0');
    expect((await sh.h10!.run('ping -c 2 -W 2 10.20.0.10')).code).not.toBe(0);
    expect(await ok('h10', 'ip neigh show 10.20.0.10')).toMatch(/FAILED|INCOMPLETE/);
    await ok('h10', 'ip route del 10.20.0.10/32 dev eth0');
  });

  it('the isolated segment gets its lease and reaches neither VLAN', async () => {
    expect(await ok('lone', 'udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 20 -T 1')).toMatch(/VMNET-LEASE iface=eth0 ip=10\.99\.0\.15 /);
    expect((await sh.lone!.run('ping -c 1 -W 2 10.10.0.10')).code).not.toBe(0);
    expect((await sh.lone!.run('ping -c 1 -W 2 10.20.0.10')).code).not.toBe(0);
    const st = await labStatus(lab, { env });
    expect(st.vms.find((v) => v.name === 'lone')!.nics[0]!.ip).toBe('10.99.0.15');
    expect(st.links).toEqual([{ a: 'core', b: 'edge', role: 'trunk 10,20 native 1', up: true, impair: null, link: null }]);
  });

  it('down leaves no switch, VM or lab behind', async () => {
    for (const s of Object.values(sh)) s.close();
    const actions = await labDown(lab.name, { env });
    expect(actions!.map((a) => a.op).sort()).toEqual(['remove-switch', 'remove-switch', 'remove-switch', 'stop-vm', 'stop-vm', 'stop-vm', 'stop-vm']);
    expect(readdirSync(runtime).sort()).toEqual(['supervisor.log', 'switches']);
    expect(readdirSync(join(runtime, 'switches'))).toEqual([]);
  });
});
