/**
 * VXLAN interop with Open vSwitch (package openvswitch-switch; fails, never
 * skips, when it is missing): ovsdb-server and ovs-vswitchd run in a
 * namespace of their own with the userspace datapath (this kernel has no
 * openvswitch module), a `vxlan` port on bridge br-int (VNI 78) toward a
 * vmnet switch in another namespace, the underlay on OVS bridge br-phy (a
 * veth). br-int's internal port takes a DHCP lease from the vmnet gateway
 * (MTU 1450), pings a Linux guest on the vmnet switch and fetches a blob
 * from it (SHA-256).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetns, ipCmd, runInNetns, type Netns } from '../helpers/netns.js';
import { nsGuest, startSwitch, type NsGuest, type SwitchHandle } from '../helpers/vxlan-lab.js';
import { sha256 } from './harness.js';

const run = promisify(execFile);
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('VXLAN interop with Open vSwitch', () => {
  it('an OVS vxlan port (userspace datapath) and a vmnet switch form one segment: DHCP, ping, TCP', async () => {
    const a = createNetns('vmnet-ovsa');
    cleanups.push(() => a.delete());
    const d = createNetns('vmnet-ovsd');
    cleanups.push(() => d.delete());
    await ipCmd('-n', a.name, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'd0', 'netns', d.name);
    await ipCmd('-n', a.name, 'addr', 'add', '192.168.78.1/24', 'dev', 'a0');
    await ipCmd('-n', a.name, 'link', 'set', 'a0', 'up');
    await ipCmd('-n', d.name, 'link', 'set', 'd0', 'up');
    // OVS's userspace datapath reads the veth raw: the UDP checksums a veth leaves to "hardware" must be finished.
    await runInNetns(a, 'ethtool', ['-K', 'a0', 'tx', 'off']);
    const sw: SwitchHandle = await startSwitch(a, 'ovsa', null, ['--subnet', '10.78.0.0/24', '--isolated', '--vxlan', '78', '--vxlan-remote', '192.168.78.4']);
    cleanups.push(() => sw.vmnet('switch', 'rm', 'ovsa', '--force').catch(() => {}));
    const g: NsGuest = await nsGuest('vmnet-ovsg', (await sw.vmnet('switch', 'socket', 'ovsa')).split('\n')[0]!.trim());
    cleanups.push(() => g.close());
    const www = mkdtempSync(join(tmpdir(), 'vmnet-ovs-www-'));
    chmodSync(www, 0o755);
    const blob = randomBytes(2 * 1024 * 1024);
    writeFileSync(join(www, 'blob'), blob);
    const httpd: ChildProcess = g.ns.spawn('busybox', ['httpd', '-f', '-p', '8080', '-h', www], { stdio: 'ignore' });
    cleanups.push(() => httpd.kill('SIGKILL'));

    const ovs = await startOvs(d);
    cleanups.push(ovs.stop);
    const vsctl = (...args: string[]) => runInNetns(d, 'ovs-vsctl', [`--db=unix:${ovs.dir}/db.sock`, ...args]);
    await vsctl('--no-wait', 'init');
    await vsctl('add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=netdev');
    await vsctl('add-port', 'br-phy', 'd0');
    await ipCmd('-n', d.name, 'addr', 'add', '192.168.78.4/24', 'dev', 'br-phy');
    await ipCmd('-n', d.name, 'link', 'set', 'br-phy', 'up');
    await vsctl('add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev');
    await vsctl('add-port', 'br-int', 'vx0', '--', 'set', 'interface', 'vx0', 'type=vxlan', 'options:remote_ip=192.168.78.1', 'options:key=78');
    await ipCmd('-n', d.name, 'link', 'set', 'br-int', 'up');
    await runInNetns(d, 'ethtool', ['-K', 'br-int', 'tx', 'off']);

    const script = join(www, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] || exit 0\nip addr add "$ip/${mask:-24}" dev "$interface"\necho "LEASE ip=$ip mtu=$mtu router=$router"\n', { mode: 0o755 });
    const lease = await runInNetns(d, 'busybox', ['udhcpc', '-i', 'br-int', '-s', script, '-n', '-q', '-t', '20', '-T', '1'], 60_000);
    expect(lease).toMatch(/LEASE ip=10\.78\.0\.\d+ mtu=1450 router=10\.78\.0\.2/);
    const ping = await runInNetns(d, 'busybox', ['ping', '-c', '3', '-W', '2', g.lease.ip]);
    expect(ping).toMatch(/3 packets received/);
    const got = await runInNetns(d, 'sh', ['-c', `busybox wget -q -O - http://${g.lease.ip}:8080/blob | busybox sha256sum`], 60_000);
    expect(got).toContain(sha256(blob));
    const snap = JSON.parse(await sw.vmnet('switch', 'ls', '--json')) as Array<{ snapshot: { vxlan: { counters: Record<string, number>; remotes: Array<{ remote: string; macs: number }> } } }>;
    const vx = snap[0]!.snapshot.vxlan;
    expect(vx.remotes).toEqual([expect.objectContaining({ remote: '192.168.78.4:4789', macs: expect.any(Number) })]);
    expect(vx.remotes[0]!.macs).toBeGreaterThanOrEqual(1);
    expect(vx.counters).toMatchObject({ unknownRemote: 0, malformed: 0, badVni: 0, tooBig: 0 });
  }, 120_000);
});

/** ovsdb-server and ovs-vswitchd inside `ns`, everything in a private directory. */
async function startOvs(ns: Netns): Promise<{ dir: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-ovs-'));
  try {
    await run('ovsdb-tool', ['create', join(dir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema']);
  } catch (e) {
    throw new Error(`Open vSwitch is needed for this test (apt-get install openvswitch-switch): ${(e as Error).message}`);
  }
  const env = { ...process.env, OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir, OVS_SYSCONFDIR: dir };
  const procs = [
    ns.spawn('ovsdb-server', [join(dir, 'conf.db'), `--remote=punix:${dir}/db.sock`, `--log-file=${dir}/ovsdb.log`], { env, stdio: 'ignore' }),
  ];
  for (let i = 0; i < 100; i++) {
    try {
      await run('test', ['-S', join(dir, 'db.sock')]);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  procs.push(ns.spawn('ovs-vswitchd', [`unix:${dir}/db.sock`, `--log-file=${dir}/vswitchd.log`], { env, stdio: 'ignore' }));
  return {
    dir,
    async stop() {
      for (const p of procs.reverse()) {
        p.kill('SIGTERM');
        await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
      }
    },
  };
}
