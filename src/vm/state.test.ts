import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { claimVmDir, cleanStale, inspectVmDir, processAlive, processStartTime, scanVms, type VmState } from './state.js';

const owner = (name: string, pid = process.pid): VmState => ({
  version: 1,
  name,
  pid,
  pidStart: pid === process.pid ? processStartTime(pid) : null,
  qemuPid: null,
  state: 'starting',
  accel: 'tcg',
  startedAt: Date.now(),
  image: null,
  kernel: null,
  macs: [],
});

/** A pid that ran and is gone (reaped). */
const deadPid = (): number => spawnSync('true').pid!;

function deadVmDir(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, 'state.json'), JSON.stringify(owner(name, deadPid())));
  return dir;
}

describe('VM directories', () => {
  it('a claimed directory names its owner from the first moment: a slow start (switches) is never cleaned as stale', async () => {
    const root = privateTmp('vmnet-state-');
    const { name, dir } = await claimVmDir(root, 'slow', true, owner);
    expect(name).toBe('slow');
    const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as VmState;
    expect(st).toMatchObject({ name: 'slow', pid: process.pid, state: 'starting' });
    expect(st.pidStart).not.toBeNull();
    // Old enough that a directory without an owner would count as stale.
    const old = new Date(Date.now() - 60_000);
    utimesSync(dir, old, old);
    expect((await scanVms(root)).map((e) => e.name)).toEqual(['slow']);
    await expect(claimVmDir(root, 'slow', true, owner)).rejects.toMatchObject({ code: 'E_NAME_IN_USE' });
  });

  it('of many launchers claiming one name at once, exactly one gets it', async () => {
    const root = privateTmp('vmnet-state-');
    const r = await Promise.allSettled(Array.from({ length: 8 }, () => claimVmDir(root, 'race', true, owner)));
    expect(r.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
  });

  it('the stale cleaner re-checks what it removes: a directory re-claimed by a live VM after the scan survives', async () => {
    const root = privateTmp('vmnet-state-');
    deadVmDir(root, 'reused');
    const scanned = (await inspectVmDir(root, 'reused'))!;
    expect(scanned.alive).toBe(false);
    // Between the scan and the cleanup, the dead VM's directory goes and a new launcher claims the name.
    await cleanStale(root, scanned);
    expect(existsSync(join(root, 'reused'))).toBe(false);
    const { dir } = await claimVmDir(root, 'reused', true, owner);
    await cleanStale(root, scanned);
    expect(existsSync(join(dir, 'state.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).pid).toBe(process.pid);
  });

  it('a dead owner\'s directory is cleaned and its name reused', async () => {
    const root = privateTmp('vmnet-state-');
    deadVmDir(root, 'ghost');
    expect(await scanVms(root)).toEqual([]);
    expect(existsSync(join(root, 'ghost'))).toBe(false);
    deadVmDir(root, 'ghost');
    expect((await claimVmDir(root, 'ghost', true, owner)).name).toBe('ghost');
  });
});

describe('processAlive', () => {
  it('a process killed but not yet reaped (a zombie) is not alive', async () => {
    // The inner sleep's parent is the exec'd outer sleep, which never reaps it.
    const sh = spawn('sh', ['-c', 'sleep 100 & echo $!; exec sleep 100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = Number(await new Promise<string>((r) => sh.stdout.once('data', (d: Buffer) => r(d.toString()))));
    const start = processStartTime(pid);
    expect(processAlive(pid, start)).toBe(true);
    // Until the shell has exec'd the outer sleep, it may still reap its child itself (on SIGCHLD).
    for (let i = 0; i < 500 && readFileSync(`/proc/${sh.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(`/proc/${sh.pid}/comm`, 'utf8').trim()).toBe('sleep');
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^State:\s+Z/m);
    expect(processAlive(pid, start)).toBe(false);
    expect(processAlive(pid, null)).toBe(false);
    sh.kill('SIGKILL');
  });
});
