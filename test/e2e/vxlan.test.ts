/**
 * VXLAN between hosts, in namespaces on this machine (test/helpers/vxlan-lab.ts):
 * switch A (gateway 10.77.0.2, root) and switch B (no gateway, run as the
 * unprivileged test user) in two namespaces joined over a veth underlay by
 * VXLAN VNI 77, and the Linux kernel's own `vxlan` device in a third
 * namespace, bridged to a veth with an address. Linux-in-namespace guests
 * on A and B (TAP relayed to trunk sockets: VLAN 1 untagged, VLAN 20
 * tagged) and a real guest under TCG on B: leases from A's gateway with
 * MTU 1450 (option 26), TCP across with SHA-256, iperf3 throughput, VLAN 20
 * tagged frames carried inside VXLAN (to vmnet and to the kernel), ping and
 * TCP between the kernel side and a vmnet guest, and a datagram from a
 * sender that is no configured remote dropped and counted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchListing } from '../../src/switch/daemon.js';
import { runInNetns, ipCmd } from '../helpers/netns.js';
import { nsGuest, startLab, VNI, type Lab, type NsGuest } from '../helpers/vxlan-lab.js';
import { bootGuest, DHCP, sha256, streamNic } from './harness.js';
import { BCAST, mac, marked, markOf, streamClient, until, vlanOf } from '../helpers/switch-kit.js';

let lab: Lab;
let ga: NsGuest;
let gb: NsGuest;
let sockTrunkA = '';
let sockTrunkB = '';
const servers: ChildProcess[] = [];
const blob = randomBytes(4 * 1024 * 1024);
const www = mkdtempSync(join(tmpdir(), 'vmnet-vx-www-'));
chmodSync(www, 0o755);
writeFileSync(join(www, 'blob'), blob);

const firstLine = (s: string) => s.split('\n')[0]!.trim();

async function vxlanSnapshot(sw: Lab['swA']) {
  const all = JSON.parse(await sw.vmnet('switch', 'ls', '--json')) as SwitchListing[];
  const s = all.find((x) => x.name === sw.name);
  if (s?.state !== 'running') throw new Error(`${sw.name} not running`);
  return s.snapshot;
}

/** Starts a long-running server inside a namespace (killed in afterAll). */
function serve(ns: NsGuest['ns'] | Lab['c'], cmd: string, args: string[]): void {
  servers.push(ns.spawn(cmd, args, { stdio: 'ignore' }));
}

beforeAll(async () => {
  lab = await startLab();
  const sockA = firstLine(await lab.swA.vmnet('switch', 'socket', 'vxa', '--trunk', '20', '--native', '1'));
  const sockB = firstLine(await lab.swB.vmnet('switch', 'socket', 'vxb', '--trunk', '20', '--native', '1'));
  [sockTrunkA, sockTrunkB] = [sockA, sockB];
  ga = await nsGuest('vmnet-vxga', firstLine(await lab.swA.vmnet('switch', 'socket', 'vxa')));
  gb = await nsGuest('vmnet-vxgb', firstLine(await lab.swB.vmnet('switch', 'socket', 'vxb')));
  serve(ga.ns, 'busybox', ['httpd', '-f', '-p', '8080', '-h', www]);
  serve(gb.ns, 'busybox', ['httpd', '-f', '-p', '8080', '-h', www]);
  serve(lab.c, 'busybox', ['httpd', '-f', '-p', '10.77.0.200:8080', '-h', www]);
  serve(gb.ns, 'iperf3', ['-s', '-1']);
  serve(ga.ns, 'iperf3', ['-s', '-1']);
}, 180_000);

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await ga?.close();
  await gb?.close();
  await lab?.close();
});

describe('VXLAN: switches that span hosts', () => {
  it('guests on both sides get leases from the one gateway on A, announcing MTU 1450 (DHCP option 26)', async () => {
    expect(ga.lease).toMatchObject({ router: '10.77.0.2', mtu: '1450' });
    expect(gb.lease).toMatchObject({ router: '10.77.0.2', mtu: '1450' });
    expect(ga.lease.ip).not.toBe(gb.lease.ip);
    const a = await vxlanSnapshot(lab.swA);
    expect(a.vxlan).toMatchObject({ vni: VNI, local: '192.168.77.1:4789', maxInnerFrame: 1464 });
    // B's guest learned behind B's VTEP, and the gateway keeps a session of its own for it.
    expect(a.vxlan!.macs.some((m) => m.remote === '192.168.77.2:4789')).toBe(true);
    expect(a.vxlan!.gatewaySessions).toBeGreaterThanOrEqual(1);
  });

  it('TCP between a guest on A and a guest on B crosses VXLAN with its SHA-256 intact; iperf3 measures it', async () => {
    const got = await runInNetns(ga.ns, 'sh', ['-c', `busybox wget -q -O - http://${gb.lease.ip}:8080/blob | busybox sha256sum`], 120_000);
    expect(got).toContain(sha256(blob));
    const back = await runInNetns(gb.ns, 'sh', ['-c', `busybox wget -q -O - http://${ga.lease.ip}:8080/blob | busybox sha256sum`], 120_000);
    expect(back).toContain(sha256(blob));
    const j = JSON.parse(await runInNetns(ga.ns, 'iperf3', ['-c', gb.lease.ip, '-t', '3', '-J'], 60_000)) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    const mbit = j.end.sum_received.bits_per_second / 1e6;
    console.log(`iperf3 A guest -> B guest over VXLAN (two vmnet switches, one stream, 3 s): ${mbit.toFixed(0)} Mbit/s`);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    // Never fragmented: the MTU kept every frame within the underlay.
    const b = await vxlanSnapshot(lab.swB);
    expect(b.vxlan!.counters.tooBig).toBe(0);
    const a = await vxlanSnapshot(lab.swA);
    const drops = (s: typeof a) => ({ txBusy: s.vxlan!.counters.txBusy, txErrors: s.vxlan!.counters.txErrors, portTxDropped: s.switch.ports.find((p) => p.name === 'vxlan')!.counters.txDropped, rx: s.vxlan!.counters.rxDatagrams, tx: s.vxlan!.counters.txDatagrams });
    console.log(`VTEP counters after the transfers: A ${JSON.stringify(drops(a))} B ${JSON.stringify(drops(b))}`);
  }, 180_000);

  it('VLAN 20 frames are carried tagged inside VXLAN, to the other vmnet switch and to the kernel', async () => {
    // Trunk clients (VLAN 20 tagged, VLAN 1 untagged) on A and B; on C the kernel's br0 passes tagged frames to h0.
    const cleanups: Array<() => unknown> = [];
    try {
      const ta = await streamClient(sockTrunkA, cleanups);
      const tb = await streamClient(sockTrunkB, cleanups);
      const cap = runInNetns(lab.c, 'tshark', ['-i', 'h0', '-a', 'duration:20', '-c', '3', '-f', 'vlan 20', '-T', 'fields', '-e', 'vlan.id', '-e', 'eth.src', '-e', 'vlan.etype'], 60_000);
      await new Promise((r) => setTimeout(r, 4000)); // tshark starts capturing
      for (let i = 1; i <= 3; i++) ta.send(marked(BCAST, mac(0x7a20), i, 20));
      await until(() => tb.got.filter((f) => vlanOf(f) === 20 && f[6 + 5] === 0x20).length === 3, 10_000);
      expect(tb.got.filter((f) => vlanOf(f) === 20 && f[6 + 5] === 0x20).map(markOf)).toEqual([1, 2, 3]);
      const out = await cap;
      expect(out.trim().split('\n')).toEqual(Array(3).fill('20\t52:54:00:00:7a:20\t0x88b5'));
      // B's VXLAN port learned the sender on VLAN 20.
      const b = await vxlanSnapshot(lab.swB);
      const vx = b.switch.ports.find((x) => x.name === 'vxlan')!;
      expect(vx.roleText).toBe('trunk 1-4094 native 1');
      expect(vx.macs).toContainEqual(expect.objectContaining({ vlan: 20, mac: '52:54:00:00:7a:20' }));
    } finally {
      for (const c of cleanups) await c();
    }
  }, 60_000);

  it('the kernel’s vxlan device talks to a vmnet guest on the same VNI: ping and TCP', async () => {
    const p = await runInNetns(lab.c, 'busybox', ['ping', '-c', '3', '-W', '2', '-I', 'h0', ga.lease.ip]);
    expect(p).toMatch(/3 packets received/);
    const got = await runInNetns(lab.c, 'sh', ['-c', `busybox wget -q -O - http://${ga.lease.ip}:8080/blob | busybox sha256sum`], 120_000);
    expect(got).toContain(sha256(blob));
    const from = await runInNetns(gb.ns, 'sh', ['-c', 'busybox wget -q -O - http://10.77.0.200:8080/blob | busybox sha256sum'], 120_000);
    expect(from).toContain(sha256(blob));
    const j = JSON.parse(await runInNetns(lab.c, 'iperf3', ['-c', ga.lease.ip, '-t', '3', '-J'], 60_000)) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    console.log(`iperf3 kernel vxlan host (C) -> vmnet guest on A (one stream, 3 s): ${(j.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    const fdb = await runInNetns(lab.c, 'bridge', ['fdb', 'show', 'dev', 'vx0']);
    expect(fdb).toMatch(/dst 192\.168\.77\.1/);
  }, 180_000);

  it('drops and counts a datagram from an address that is no configured remote', async () => {
    const before = (await vxlanSnapshot(lab.swA)).vxlan!.counters.unknownRemote;
    await ipCmd('-n', lab.c.name, 'addr', 'add', '192.168.77.9/24', 'dev', 'c0');
    // A valid VXLAN datagram (VNI 77, a broadcast frame) from 192.168.77.9.
    const js = `const d=require('node:dgram').createSocket('udp4');const b=Buffer.alloc(8+60);b[0]=8;b.writeUIntBE(${VNI},4,3);b.fill(255,8,14);b[14]=0x52;b[19]=9;b.writeUInt16BE(0x88b5,20);d.bind(0,'192.168.77.9',()=>d.send(b,4789,'192.168.77.1',()=>d.close()));`;
    await runInNetns(lab.c, process.execPath, ['-e', js]);
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await vxlanSnapshot(lab.swA)).vxlan!.counters.unknownRemote;
    }
    expect(after).toBe(before + 1);
    const a = await vxlanSnapshot(lab.swA);
    expect(a.switch.ports.flatMap((p) => p.macs.map((m) => m.mac))).not.toContain('52:00:00:00:00:09');
  }, 60_000);

  it('a real guest (TCG) behind the rootless switch B gets its lease from A and reaches both sides', async () => {
    const sockB = firstLine(await lab.swB.vmnet('switch', 'socket', 'vxb'));
    const r = await bootGuest({
      name: 'vx-guest',
      nics: streamNic(sockB),
      timeoutMs: 240_000,
      script: `${DHCP}wget -q -O - http://${ga.lease.ip}:8080/blob | sha256sum | sed 's/^/FROM-A /'
ping -c 2 -W 3 10.77.0.200 | grep -c 'bytes from' | sed 's/^/PING-KERNEL /'
wget -q -O - http://10.77.0.200:8080/blob | sha256sum | sed 's/^/FROM-KERNEL /'
`,
    });
    expect(r.exitCode, r.console).toBe(0);
    expect(r.output, r.console).toMatch(/VMNET-LEASE .*router=10\.77\.0\.2 .*mtu=1450/);
    expect(r.output, r.console).toContain(`FROM-A ${sha256(blob)}`);
    expect(r.output, r.console).toContain(`FROM-KERNEL ${sha256(blob)}`);
    expect(r.output, r.console).toMatch(/^PING-KERNEL [12]$/m);
  }, 300_000);
});
