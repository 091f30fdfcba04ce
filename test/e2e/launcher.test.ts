/**
 * `vmnet run` and friends end to end, with real QEMU (TCG) and the bundled
 * test guest on vmnet's own gateway. Three VMs run at once (different
 * forwards): a disk boot with --snapshot that ignores the ACPI button (Ctrl-C
 * force-quits after --stop-timeout), a direct kernel boot with a writable
 * disk whose guest obeys the button (Ctrl-C powers it off through ACPI), and
 * a detached VM driven through ls, console, wait, forward add/rm and stop.
 * The guest serves HTTP with busybox httpd, started over its serial console.
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { sha256 } from './harness.js';
import { alive, APPEND, canConnect, connectUnix, freePort, httpGet, httpScript, portFree, privateRuntime, serveOverConsole, SMALL, startRun, stopAll, vmnet } from './launcher-helpers.js';

const guest = findBundledGuest();
let tmp: string;
let env: NodeJS.ProcessEnv;
let root: string;

/** Guest step: load virtio_blk and write a marker into sector 100 of /dev/vda, then read it back. */
const WRITE_DISK = `insmod /lib/modules/virtio_blk.ko
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done
echo GUEST-WAS-HERE | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null
echo "READBACK $(dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | head -c 14)"`;

beforeAll(() => ({ tmp, env, root } = privateRuntime('vmnet-launcher-')));
afterAll(() => stopAll(env)); // nothing a failed test left may keep running

describe.concurrent('vmnet run (real QEMU, test guest)', () => {
  it('disk boot with --snapshot and a forward: curl answers, the disk is unchanged, Ctrl-C force-quits a guest that ignores ACPI; name and port clashes are clear errors', async ({ expect }) => {
    const disk = join(tmp, 'snap.raw');
    copyFileSync(guest.diskRaw, disk);
    const before = sha256(readFileSync(disk));
    const port = await freePort();
    const run = startRun([disk, '--snapshot', '--name', 'lt-disk', '--forward', `${port}:80`, '--console', 'none', '--stop-timeout', '3', ...SMALL], env);
    const started = await run.event('started');
    expect(started).toMatchObject({ name: 'lt-disk', accel: 'tcg', forwards: [`127.0.0.1:${port}:80/tcp`] });
    expect(statSync(join(root, 'lt-disk')).mode & 0o777).toBe(0o700);

    // While it runs: the same name, and the same host port, are refused before QEMU starts.
    const nameClash = await vmnet(['run', '--kernel', guest.kernel, '--name', 'lt-disk', '--console', 'none', ...SMALL], env);
    expect(nameClash.code).toBe(2);
    expect(nameClash.stderr).toMatch(/^vmnet: a VM named lt-disk is already running.*\n$/);
    const portClash = await vmnet(['run', '--kernel', guest.kernel, '--name', 'lt-clash', '--forward', `${port}:80`, '--console', 'none', ...SMALL], env);
    expect(portClash.code).toBe(2);
    expect(portClash.stderr).toMatch(new RegExp(`^vmnet: cannot forward 127\\.0\\.0\\.1:${port}:80/tcp: host port .* already in use.*\\n$`));
    expect(existsSync(join(root, 'lt-clash'))).toBe(false);

    const consoleSock = await connectUnix(join(root, 'lt-disk', 'console.sock'));
    const lines = await serveOverConsole(consoleSock, consoleSock, httpScript('hello from the disk boot', WRITE_DISK));
    expect(lines).toContain('READBACK GUEST-WAS-HERE');
    const wait = await vmnet(['wait', 'lt-disk', '--port', '80', '--timeout', '60'], env);
    expect(wait.code, wait.stderr).toBe(0);
    expect(await httpGet(port)).toBe('hello from the disk boot\n');
    const lease = await run.event('lease');
    expect(lease).toMatchObject({ mac: (started.macs as string[])[0], address: '10.0.2.15' });
    expect((await run.event('ready')).port).toBe(80);

    const t0 = Date.now();
    run.child.kill('SIGINT');
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2500); // it waited for the guest first
    expect(run.events.at(-1)).toMatchObject({ event: 'exited', reason: 'stopped', stop: 'quit', code: 0 });
    expect(existsSync(join(root, 'lt-disk'))).toBe(false);
    expect(await portFree(port)).toBe(true);
    expect(sha256(readFileSync(disk))).toBe(before);
  });

  it('direct kernel boot with a writable disk: curl answers, writes persist, Ctrl-C powers the guest off through ACPI', async ({ expect }) => {
    const disk = join(tmp, 'rw.raw');
    copyFileSync(guest.diskRaw, disk);
    const before = sha256(readFileSync(disk));
    const port = await freePort();
    const run = startRun(
      [disk, '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', `${APPEND} vmnet.acpi=1`, '--name', 'lt-kernel', '--forward', `${port}:80`, '--console', 'none', ...SMALL],
      env,
    );
    await run.event('started');
    const consoleSock = await connectUnix(join(root, 'lt-kernel', 'console.sock'));
    const lines = await serveOverConsole(consoleSock, consoleSock, httpScript('hello from the kernel boot', WRITE_DISK));
    expect(lines).toContain('READBACK GUEST-WAS-HERE');
    const wait = await vmnet(['wait', 'lt-kernel', '--port', '80'], env);
    expect(wait.code, wait.stderr).toBe(0);
    expect(await httpGet(port)).toBe('hello from the kernel boot\n');

    const ls = await vmnet(['ls', '--json'], env);
    const me = (JSON.parse(ls.stdout) as Array<Record<string, unknown>>).find((v) => v.name === 'lt-kernel');
    expect(me).toMatchObject({ state: 'running', accel: 'tcg', addresses: ['10.0.2.15'], forwards: [`127.0.0.1:${port}:80/tcp`], kernel: guest.kernel, image: disk });

    run.child.kill('SIGINT');
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    // Powered off through ACPI, not quit after --stop-timeout: the outcome, no wall-clock bound.
    expect(run.events.at(-1)).toMatchObject({ event: 'exited', reason: 'stopped', stop: 'acpi', code: 0 });
    expect(existsSync(join(root, 'lt-kernel'))).toBe(false);
    expect(await portFree(port)).toBe(true);
    expect(sha256(readFileSync(disk))).not.toBe(before); // without --snapshot the guest's write landed
  });

  it('--detach, ls --json, console, wait, forward add/ls/rm on the running VM, stop', async ({ expect }) => {
    const [p1, p2] = [await freePort(), await freePort()];
    const start = await vmnet(['run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--detach', '--name', 'lt-det', '--forward', `${p1}:80`, ...SMALL], env);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toBe('lt-det\n');

    const ls = await vmnet(['ls', '--json'], env);
    const me = (JSON.parse(ls.stdout) as Array<Record<string, unknown>>).find((v) => v.name === 'lt-det')!;
    expect(me).toMatchObject({ state: 'running', accel: 'tcg', forwards: [`127.0.0.1:${p1}:80/tcp`] });
    const qemuPid = me.qemuPid as number;
    const ownerPid = me.pid as number;
    expect(alive(qemuPid) && alive(ownerPid)).toBe(true);
    expect(ownerPid).not.toBe(process.pid);

    // Drive the guest through `vmnet console` with plain pipes.
    const con = spawn(process.execPath, [join(import.meta.dirname, '../../dist/cli/bin.js'), 'console', 'lt-det'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    await serveOverConsole(con.stdout, con.stdin, httpScript('hello from the detached VM'));
    const wait = await vmnet(['wait', 'lt-det', '--port', '80'], env);
    expect(wait.code, wait.stderr).toBe(0);
    expect(wait.stdout).toMatch(/ready on 10\.0\.2\.15/);
    expect(await httpGet(p1)).toBe('hello from the detached VM\n');

    const add = await vmnet(['forward', 'add', 'lt-det', `${p2}:80`], env);
    expect(add.code, add.stderr).toBe(0);
    expect(await httpGet(p2)).toBe('hello from the detached VM\n');
    const fls = await vmnet(['forward', 'ls', 'lt-det'], env);
    expect(fls.stdout.split('\n').filter(Boolean).sort()).toEqual([`127.0.0.1:${p1}:80/tcp`, `127.0.0.1:${p2}:80/tcp`].sort());
    const dup = await vmnet(['forward', 'add', 'lt-det', `${p1}:80`], env);
    expect(dup.code).toBe(2);
    const rm = await vmnet(['forward', 'rm', 'lt-det', `${p2}:80`], env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(await canConnect(p2)).toBe(false);

    con.stdin.end();
    const stop = await vmnet(['stop', 'lt-det', '--timeout', '2'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/^lt-det stopped/);
    expect(existsSync(join(root, 'lt-det'))).toBe(false);
    expect(alive(qemuPid)).toBe(false);
    expect(await portFree(p1)).toBe(true);
    const ls2 = await vmnet(['ls', '--json'], env);
    expect((JSON.parse(ls2.stdout) as Array<{ name: string }>).map((v) => v.name)).not.toContain('lt-det');
    // The supervisor exits right after its VM.
    for (let i = 0; i < 50 && alive(ownerPid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(ownerPid)).toBe(false);
    const again = await vmnet(['stop', 'lt-det'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no VM named lt-det/);
  });
});

describe('vmnet state directories', () => {
  it('a dead VM directory is detected as stale and cleaned, never trusted', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const dir = join(root, 'lt-ghost');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    mkdirSync(dir, { mode: 0o700 });
    // A pid that is not running: spawn and reap a short process.
    const dead = await new Promise<number>((r) => {
      const p = spawn('true');
      p.on('exit', () => r(p.pid!));
    });
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 1, name: 'lt-ghost', pid: dead, pidStart: null, qemuPid: null, state: 'running', accel: 'tcg', startedAt: 0, image: null, kernel: null, macs: [] }));
    const ls = await vmnet(['ls', '--json'], env);
    expect(JSON.parse(ls.stdout).map((v: { name: string }) => v.name)).not.toContain('lt-ghost');
    expect(existsSync(dir)).toBe(false);
  });
});
