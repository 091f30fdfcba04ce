/**
 * A cabling loop between two real switch processes: switch A and switch B
 * (`vmnet switch` daemons, no gateway) joined twice by stream relays (what a
 * lab's switch-to-switch cable is today: a process connected to a port
 * socket of each switch, copying bytes both ways). A raw guest on each
 * switch keeps broadcasting, as an ARP that gets no answer would. The loop
 * must be found and one port blocked within seconds, each switch's CPU time
 * over the whole window must stay a bounded share of a core (without loop
 * protection each spins a core at 100 %), the log must say which ports, and
 * unicast between the two guests must work afterwards. Then the CLI lifts
 * the block: with the loop still cabled it is found again; with one cable
 * gone the port stays unblocked and traffic flows.
 *
 * The same loop made of two switch links (`vmnet switch link` both ways:
 * shared ports, loop-guard.ts): each switch blocks its own guest's MAC on
 * its links instead of a link port, nothing circulates, CPU stays bounded,
 * no VM port and no link is blocked, and unicast works.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSwitch, linkSwitches, removeSwitch, switchStatus, type SwitchInfo } from '../../src/switch/daemon.js';
import type { PortSnapshot } from '../../src/switch/server.js';
import { cliRunner } from '../helpers/cli.js';
import { cpuSeconds } from '../helpers/cpu.js';
import { markOf, marked, streamClient } from '../helpers/switch-kit.js';
import { privateTmp } from '../helpers/tmp.js';

const BCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);
const X = Uint8Array.of(0x52, 0x54, 0, 0xaa, 0, 1);
const Y = Uint8Array.of(0x52, 0x54, 0, 0xbb, 0, 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What a cable runs: a connection to each socket, bytes copied both ways, exit when either ends. */
const CABLE = `
const net = require('node:net');
const [a, b] = [net.connect(process.argv[1]), net.connect(process.argv[2])];
for (const s of [a, b]) { s.on('error', () => process.exit(0)); s.on('close', () => process.exit(0)); }
a.pipe(b); b.pipe(a);
`;

/** A cable between two switch sockets, in a process of its own (as a lab's link would be); returns its cutter. */
function cable(pathA: string, pathB: string): () => void {
  const child = spawn(process.execPath, ['-e', CABLE, pathA, pathB], { stdio: 'ignore' });
  const cut = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  cleanups.push(cut);
  return cut;
}

async function blockedPorts(name: string, rt: string): Promise<PortSnapshot[]> {
  const st = await switchStatus(name, { runtimeDir: rt });
  return st?.snapshot.switch.ports.filter((p) => p.blocked !== null) ?? [];
}

/** Two gateway-less switch daemons, with a raw guest on each (X on the first, Y on the second). */
async function twoSwitches(names: readonly [string, string], rt: string) {
  const [A, B]: SwitchInfo[] = await Promise.all(names.map((n) => createSwitch(n, { runtimeDir: rt, gateway: false })));
  cleanups.push(() => Promise.all(names.map((n) => removeSwitch(n, { runtimeDir: rt, force: true }).catch(() => {}))));
  const x = await streamClient(A!.socket, cleanups);
  const y = await streamClient(B!.socket, cleanups);
  const cpu0 = [cpuSeconds(A!.pid)!, cpuSeconds(B!.pid)!];
  /** Each switch's CPU time since it started, as a share of a core over `secs`. */
  const cpuShare = (secs: number) => [(cpuSeconds(A!.pid)! - cpu0[0]!) / secs, (cpuSeconds(B!.pid)! - cpu0[1]!) / secs];
  return { A: A!, B: B!, x, y, cpuShare };
}

/** A burst of broadcasts from both guests (booting: DHCP, ARP, neighbour discovery), then one each every 100 ms; returns its stopper. */
function chatter(x: { send(b: Uint8Array): unknown }, y: { send(b: Uint8Array): unknown }): () => void {
  let mark = 0;
  const both = () => {
    x.send(marked(BCAST, X, ++mark & 0x7f));
    y.send(marked(BCAST, Y, ++mark & 0x7f));
  };
  for (let i = 0; i < 100; i++) both();
  const timer = setInterval(both, 100);
  const stop = () => clearInterval(timer);
  cleanups.push(stop);
  return stop;
}

describe('switch loops', () => {
  it('two switches joined twice: found and blocked within seconds, CPU bounded, unicast works; unblock from the CLI', { timeout: 120_000 }, async () => {
    const rt = privateTmp();
    const env = { ...process.env, VMNET_RUNTIME_DIR: rt };
    const cli = cliRunner(env);
    const names = ['loop-a', 'loop-b'] as const;
    const { A, B, x, y, cpuShare } = await twoSwitches(names, rt);
    const rx0 = x.port.rx.frames + y.port.rx.frames;
    const t0 = performance.now();
    cable(A.socket, B.socket);
    const second = cable(A.socket, B.socket);
    await sleep(200); // both cables connected
    const stopChatter = chatter(x, y);

    let blocked: Array<{ sw: string; port: PortSnapshot }> = [];
    let foundAfterMs = -1;
    while (performance.now() - t0 < 15_000) {
      await sleep(250);
      blocked = (await Promise.all(names.map(async (n) => (await blockedPorts(n, rt)).map((port) => ({ sw: n, port }))))).flat();
      if (blocked.length > 0) {
        foundAfterMs = performance.now() - t0;
        break;
      }
    }
    expect(blocked.length, 'a loop port blocked within 15 s').toBeGreaterThan(0);
    // Let it run on with the block in place, then look at the whole window's CPU.
    await sleep(Math.max(0, 6000 - (performance.now() - t0)));
    const secs = (performance.now() - t0) / 1000;
    const share = cpuShare(secs);
    const flood = x.port.rx.frames + y.port.rx.frames - rx0;
    console.log(
      `switch loop: blocked after ${(foundAfterMs / 1000).toFixed(1)} s; over ${secs.toFixed(1)} s: CPU A ${(share[0]! * 100).toFixed(0)}%, B ${(share[1]! * 100).toFixed(0)}% of a core; the guests received ${flood} frames`,
    );
    // Generous for a loaded 2-core machine; an unprotected loop takes each switch to a core when it
    // can get one (on a machine at load 10 it still took 15 % each, and flooded each guest with
    // ~160,000 frames/s: that count is the sharper check).
    for (const s of share) expect(s).toBeLessThan(0.5);
    expect(flood).toBeLessThan(30_000);
    stopChatter();

    // One port of one switch: a loop port (not a guest's).
    blocked = (await Promise.all(names.map(async (n) => (await blockedPorts(n, rt)).map((port) => ({ sw: n, port }))))).flat();
    const logs = () => names.map((n) => readFileSync(join(rt, 'switches', n, 'daemon.log'), 'utf8')).join('');
    expect(blocked, logs()).toHaveLength(1);
    const { sw, port } = blocked[0]!;
    // The lowest flapping MAC is X's, local to A: A is the switch that acts (loop-guard.ts).
    expect(sw).toBe('loop-a');
    const guestMacs = ['52:54:00:aa:00:01', '52:54:00:bb:00:02'];
    expect(guestMacs).toContain(port.blocked!.mac);
    const log = readFileSync(join(rt, 'switches', sw, 'daemon.log'), 'utf8');
    expect(log).toContain(`port ${port.id} (access-1) blocked: MAC ${port.blocked!.mac} on VLAN 1 kept moving between it and port ${port.blocked!.otherPort} (access-1)`);
    expect(log).toContain(`vmnet switch unblock ${sw} ${port.id}`);

    // Unicast between the guests, exactly once each way (the loop is broken, the other cable carries it).
    await sleep(300);
    x.got.length = 0;
    y.got.length = 0;
    y.send(marked(BCAST, Y, 100));
    await sleep(300);
    x.send(marked(Y, X, 101));
    await sleep(300);
    y.send(marked(X, Y, 102));
    await sleep(500);
    expect(x.got.map(markOf)).toEqual([100, 102]);
    expect(y.got.map(markOf)).toEqual([101]);

    // The CLI: a port that is not blocked, a port that does not exist, then the real one.
    const other = sw === names[0] ? names[1] : names[0];
    expect((await cli('switch', 'unblock', sw, '1')).stdout).toMatch(/port 1 (was not blocked|unblocked)/);
    const bad = await cli('switch', 'unblock', other, '999');
    expect([bad.code, bad.stderr]).toEqual([2, `vmnet: switch ${other} has no port 999 (see vmnet switch ls)\n`]);
    const ls = await cli('switch', 'ls');
    expect(ls.stdout).toContain(`BLOCKED (loop protection): MAC ${port.blocked!.mac} on VLAN 1`);
    // Unblocked with the loop still cabled: found and blocked again.
    expect((await cli('switch', 'unblock', sw, String(port.id))).stdout).toContain(`port ${port.id} unblocked`);
    x.send(marked(BCAST, X, 103));
    const t1 = performance.now();
    let again = 0;
    while (again === 0 && performance.now() - t1 < 15_000) {
      x.send(marked(BCAST, X, 104));
      await sleep(250);
      again = (await Promise.all(names.map((n) => blockedPorts(n, rt)))).flat().length;
    }
    expect(again).toBe(1);
    // One cable gone (its two ports go with it): unblocked for good, and a broadcast crosses once.
    second();
    const portsLeft = async () => (await Promise.all(names.map(async (n) => (await switchStatus(n, { runtimeDir: rt }))!.snapshot.switch.ports.length))).reduce((a, b) => a + b);
    for (let i = 0; i < 100 && (await portsLeft()) > 4; i++) await sleep(50);
    expect(await portsLeft()).toBe(4);
    for (const n of names) for (const p of await blockedPorts(n, rt)) expect((await cli('switch', 'unblock', n, String(p.id))).code).toBe(0);
    await sleep(500);
    x.got.length = 0;
    y.got.length = 0;
    y.send(marked(BCAST, Y, 105));
    await sleep(1500);
    expect(x.got.map(markOf)).toEqual([105]);
    expect((await Promise.all(names.map((n) => blockedPorts(n, rt)))).flat()).toEqual([]);
  });

  it('two switches joined twice by links: each blocks its own guest\'s MAC on its links, nothing circulates, CPU bounded, unicast works', { timeout: 120_000 }, async () => {
    const rt = privateTmp();
    const names = ['lnk-a', 'lnk-b'] as const;
    const { x, y, cpuShare } = await twoSwitches(names, rt);
    const t0 = performance.now();
    expect(await linkSwitches(names[0], names[1], { vlan: 1 }, { runtimeDir: rt })).toBe(true);
    expect(await linkSwitches(names[1], names[0], { vlan: 1 }, { runtimeDir: rt })).toBe(true);
    const stopChatter = chatter(x, y);
    await sleep(6000);
    stopChatter();
    const secs = (performance.now() - t0) / 1000;
    const share = cpuShare(secs);
    const ports = async (n: string) => (await switchStatus(n, { runtimeDir: rt }))!.snapshot.switch.ports;
    const [pa, pb] = await Promise.all(names.map(ports));
    console.log(`links loop: over ${secs.toFixed(1)} s: CPU A ${(share[0]! * 100).toFixed(0)}%, B ${(share[1]! * 100).toFixed(0)}% of a core; MAC blocks A ${pa!.flatMap((p) => p.macBlocks).length}, B ${pb!.flatMap((p) => p.macBlocks).length}`);
    for (const c of share) expect(c).toBeLessThan(0.5);
    // Each switch's own guest's MAC is blocked on (at least) one of its links; no port is blocked.
    expect(new Set(pa!.filter((p) => p.kind === 'link').flatMap((p) => p.macBlocks.map((b) => b.mac)))).toEqual(new Set(['52:54:00:aa:00:01']));
    expect(new Set(pb!.filter((p) => p.kind === 'link').flatMap((p) => p.macBlocks.map((b) => b.mac)))).toEqual(new Set(['52:54:00:bb:00:02']));
    expect([...pa!, ...pb!].filter((p) => p.blocked !== null)).toEqual([]);
    const log = readFileSync(join(rt, 'switches', names[0], 'daemon.log'), 'utf8');
    expect(log).toMatch(/\(link-lnk-b\): MAC 52:54:00:aa:00:01 on VLAN 1 kept arriving here although it lives on port \d+ \(access-1\)/);
    const ls = await cliRunner({ ...process.env, VMNET_RUNTIME_DIR: rt })('switch', 'ls');
    expect(ls.stdout).toMatch(/MAC BLOCKED here \(loop protection\): 52:54:00:aa:00:01 on VLAN 1 lives on port \d+; frames with that source from any other port are dropped; vmnet switch unblock lnk-a \d+/);
    // Quiet: nothing circulates (a guest gets nothing more).
    await sleep(500);
    x.got.length = 0;
    y.got.length = 0;
    await sleep(1000);
    expect(x.got.length + y.got.length).toBe(0);
    // Unicast both ways arrives (once per link at most).
    x.send(marked(Y, X, 101));
    await sleep(300);
    y.send(marked(X, Y, 102));
    await sleep(500);
    expect(new Set(y.got.map(markOf))).toEqual(new Set([101]));
    expect(new Set(x.got.map(markOf))).toEqual(new Set([102]));
  });
});
