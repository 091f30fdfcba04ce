/**
 * A VM's life with `vmnet run` in the foreground, end to end with real QEMU
 * (TCG) and the test guest: what ends it (signals, a closed terminal, kill
 * -9 of vmnet, a closed stdout) and that QEMU never outlives vmnet.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { APPEND, BIN, connectUnix, consoleMatch, goneWithin, privateRuntime, running, serveOverConsole, SMALL, startRun, stopAll, until, vmnet } from './launcher-helpers.js';

const guest = findBundledGuest();
let tmp: string;
let env: NodeJS.ProcessEnv;
let root: string;

beforeAll(() => ({ tmp, env, root } = privateRuntime('vmnet-llife-')));
afterAll(() => stopAll(env));

/** `vmnet ls --json` entry of a VM. */
async function lsEntry(name: string): Promise<Record<string, unknown> | undefined> {
  const ls = await vmnet(['ls', '--json'], env);
  return (JSON.parse(ls.stdout) as Array<Record<string, unknown>>).find((v) => v.name === name);
}

describe('QEMU never outlives vmnet', () => {
  it('kill -9 of a foreground vmnet run: QEMU is gone within seconds, and the next vmnet ls says what it cleaned up', async () => {
    const run = startRun(['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'lf-kill', '--console', 'none', ...SMALL], env);
    const started = await run.event('started');
    const me = (await lsEntry('lf-kill'))!;
    const qemuPid = me.qemuPid as number;
    // pid is vmnet's process in both the started event and ls --json; qemuPid is QEMU's in both.
    expect([started.pid, started.qemuPid]).toEqual([run.child.pid, qemuPid]);
    expect(me.pid).toBe(run.child.pid);
    expect(running(qemuPid)).toBe(true);
    run.child.kill('SIGKILL');
    await run.done;
    const took = await goneWithin(qemuPid, 5000);
    expect(took, 'QEMU still running 5 s after vmnet was killed').not.toBeNull();
    const ls = await vmnet(['ls'], env);
    expect(ls.code).toBe(0);
    expect(ls.stderr).toMatch(new RegExp(`^vmnet: cleaned up VM lf-kill: its vmnet process \\(pid ${run.child.pid}\\) had died; its QEMU \\(pid ${qemuPid}\\) (had exited|was killed)\\n$`));
    expect(ls.stdout).toBe('no VMs running\n');
  });

  it('SIGHUP (the terminal closed) stops the VM like SIGTERM: the guest powers off through ACPI, nothing is left; --console file: kept a copy', async () => {
    const copy = join(tmp, 'console-copy.txt');
    const run = startRun(['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', `${APPEND} vmnet.acpi=1`, '--name', 'lf-hup', '--console', `file:${copy}`, ...SMALL], env);
    await run.event('started');
    const qemuPid = (await lsEntry('lf-hup'))!.qemuPid as number;
    const con = await connectUnix(join(root, 'lf-hup', 'console.sock'));
    await consoleMatch(con, /VMNET-READY/); // acpid runs from here on
    run.child.kill('SIGHUP');
    const done = await run.done;
    con.destroy();
    expect(done.code, done.stderr).toBe(0);
    expect(run.events.at(-1)).toMatchObject({ event: 'exited', reason: 'stopped', stop: 'acpi', by: 'SIGHUP' });
    expect(running(qemuPid)).toBe(false);
    expect(readFileSync(copy, 'latin1')).toMatch(/VMNET-NIC eth0 [\s\S]*VMNET-READY/);
  });

  it('kill -9 of vmnet demo: the test guest\'s QEMU dies with it', async () => {
    const demo = spawn(process.execPath, [BIN, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise((r) => demo.on('close', r));
    const children = () => readFileSync(`/proc/${demo.pid}/task/${demo.pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    // QEMU proper: argv[0] is qemu-system-* once setpriv has exec'd it.
    const qemuPid = await until(() => children().find((p) => /qemu-system-[^/]*$/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]!)), 30_000, 'the demo\'s QEMU');
    demo.kill('SIGKILL');
    await closed;
    expect(await goneWithin(qemuPid, 5000), 'QEMU still running 5 s after vmnet demo was killed').not.toBeNull();
  });
});

/** Resident memory of a process, MiB. */
const rssMiB = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('console clients and the serial log', () => {
  it('a console.sock client that never reads while the guest prints MBs: vmnet\'s memory stays bounded, the client is cut off (counted), serial.log is rotated, and the stop does not wait for the client', async () => {
    const MB = Number(process.env.VMNET_CONSOLE_FLOOD_MB ?? 2);
    const run = startRun(['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'lf-flood', '--console', 'none', ...SMALL], env);
    await run.event('started');
    const vmnetPid = run.child.pid!;
    const dir = join(root, 'lf-flood');
    const slow = await connectUnix(join(dir, 'console.sock'));
    slow.pause(); // never reads
    let slowClosed = false;
    slow.on('close', () => (slowClosed = true));
    slow.on('error', () => undefined);
    const rss0 = rssMiB(vmnetPid);
    const driver = await connectUnix(join(dir, 'console.sock'));
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(vmnetPid))), 200);
    const flood = serveOverConsole(driver, driver, `yes vmnet-flood-line | head -c ${MB * 1_000_000}\necho\necho SERVING\nsleep 600\n`, 280_000);
    // `vmnet console NAME | head -c 20` while the guest prints: the closed stdout detaches it (no EPIPE crash).
    const piped = spawn('bash', ['-c', `"$@" | head -c 20 >/dev/null; echo "console-exit=\${PIPESTATUS[0]}" >&2`, 'sh', process.execPath, BIN, 'console', 'lf-flood'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let pipedErr = '';
    piped.stderr.on('data', (d) => (pipedErr += d));
    const pipedDone = new Promise((r) => piped.on('close', r));
    const lines = await flood;
    clearInterval(sampler);
    await pipedDone;
    expect(pipedErr).toBe('console-exit=0\n');
    expect(lines.at(-1)).toBe('SERVING');
    // The guest printed MB MB (more with the tty's CR LF): a client holding all of it would have grown vmnet by that much.
    expect(peak - rss0, `RSS ${rss0.toFixed(0)} -> peak ${peak.toFixed(0)} MiB`).toBeLessThan(24);
    const me = (await lsEntry('lf-flood'))!;
    expect(me.console).toMatchObject({ slowClientsCut: 1 });
    slow.resume(); // it finds its connection closed once it reads again
    await until(() => (slowClosed ? true : undefined), 10_000, 'the slow client to see its connection closed');
    const log = statSync(join(dir, 'serial.log')).size;
    const old = statSync(join(dir, 'serial.log.1')).size;
    expect(log).toBeLessThanOrEqual(1024 * 1024);
    expect(old).toBeLessThanOrEqual(1024 * 1024);
    expect(readFileSync(join(dir, 'serial.log.1'), 'latin1')).toContain('vmnet-flood-line');

    // A second client that stops reading now must not hold up the stop.
    const stuck = await connectUnix(join(dir, 'console.sock'));
    stuck.pause();
    stuck.on('error', () => undefined);
    const t0 = Date.now();
    const stop = await vmnet(['stop', 'lf-flood', '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await run.done).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    stuck.destroy();
    driver.destroy();
  });
});

describe('output streams', () => {
  it('vmnet run … | head -c 20: no EPIPE crash; the closed stdout stops the VM in order and nothing is left', async () => {
    const qemuLog = join(tmp, 'epipe-qemu.txt');
    const sh = `"$@" | head -c 20 > ${tmp}/epipe-head.txt; echo "vmnet-exit=\${PIPESTATUS[0]}" >&2`;
    const args = [process.execPath, BIN, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', `${APPEND} vmnet.acpi=1`, '--name', 'lf-pipe', '--stop-timeout', '20', ...SMALL];
    const p = spawn('bash', ['-c', sh, 'sh', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => {
      stderr += d;
      const m = /QEMU pid (\d+)/.exec(stderr);
      if (m) writeFileSync(qemuLog, m[1]!);
    });
    const closed = new Promise((r) => p.on('close', r));
    // A closed pipe shows at the next write: once head has its 20 bytes, make the guest print again.
    const headFile = join(tmp, 'epipe-head.txt');
    await until(() => (existsSync(headFile) && statSync(headFile).size === 20 && existsSync(join(root, 'lf-pipe', 'console.sock')) ? true : undefined), 90_000, 'head to get 20 bytes');
    const con = await connectUnix(join(root, 'lf-pipe', 'console.sock'));
    await consoleMatch(con, /VMNET-READY/);
    con.write('VMNET-SHELL\n');
    await closed;
    con.destroy();
    expect(stderr).toMatch(/vmnet-exit=0\n$/);
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(stderr).toMatch(/vmnet: stdout closed: powering lf-pipe down through ACPI/);
    expect(stderr).toMatch(/vmnet: VM lf-pipe stopped \(stdout closed\): the guest powered off/);
    expect(readFileSync(join(tmp, 'epipe-head.txt')).length).toBe(20);
    expect(running(Number(readFileSync(qemuLog, 'utf8')))).toBe(false);
    expect(existsSync(join(root, 'lf-pipe'))).toBe(false);
  });
});

describe('stop requests: the second one forces, the last line names the first', () => {
  it('the foreground console on a pseudo-terminal: keys reach the guest, Ctrl-] stops it and Ctrl-C then forces', async () => {
    const cmd = [process.execPath, BIN, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'lf-pty', '--stop-timeout', '60', '--console', 'terminal', ...SMALL]
      .map((a) => `'${a}'`)
      .join(' ');
    // script(1) gives vmnet a terminal; its stdin is what we type, its stdout what the terminal shows.
    const term = spawn('script', ['-qfec', `exec ${cmd}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    term.stdout.on('data', (d: Buffer) => (screen += d.toString('latin1')));
    const closed = new Promise<number | null>((r) => term.on('close', (code) => r(code)));
    const shows = (text: string | RegExp, what: string) => until(() => (typeof text === 'string' ? screen.includes(text) : text.test(screen)) || undefined, 90_000, `${what}; screen: ${screen.slice(-400)}`);
    await shows('VMNET-READY', 'the guest on the terminal');
    term.stdin.write('VMNET-SHELL\n');
    await shows('interactive shell', 'the guest shell');
    term.stdin.write('echo $((6*7))-typed\n');
    await shows('42-typed', 'the guest computing what was typed');
    term.stdin.write('\x1d'); // Ctrl-]
    await shows(/Ctrl-\]: powering lf-pty down through ACPI \(up to 60 s; Ctrl-C forces it off\)/, 'the Ctrl-] message');
    term.stdin.write('\x03'); // the terminal is cooked again: Ctrl-C is SIGINT
    expect(await closed).toBe(0);
    expect(screen).toMatch(/SIGINT: forcing lf-pty off/);
    expect(screen).toMatch(/VM lf-pty stopped \(Ctrl-\]\): forced: QEMU was told to quit/);
    expect(existsSync(join(root, 'lf-pty'))).toBe(false);
  });

  it('closing the terminal (SIGHUP, then every write fails) asks the guest once and does not force', async () => {
    const cmd = [process.execPath, BIN, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'lf-close', '--stop-timeout', '60', ...SMALL].map((a) => `'${a}'`).join(' ');
    const term = spawn('script', ['-qfec', `exec ${cmd}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let screen = '';
    term.stdout.on('data', (d: Buffer) => (screen += d.toString('latin1')));
    await until(() => (screen.includes('VMNET-READY') ? true : undefined), 90_000, `the guest on the terminal; screen: ${screen.slice(-300)}`);
    const me = (await lsEntry('lf-close'))!;
    term.kill('SIGKILL'); // the terminal goes away: the kernel hangs up its session
    await new Promise((r) => term.on('close', r));
    await new Promise((r) => setTimeout(r, 2000));
    // The guest ignores the ACPI button: a graceful stop is still waiting, a forced one would be over.
    expect(running(me.qemuPid as number)).toBe(true);
    expect(running(me.pid as number)).toBe(true);
    const stop = await vmnet(['stop', 'lf-close', '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await goneWithin(me.pid as number, 5000)).not.toBeNull();
  });

  it('SIGTERM twice: the second forces at once; the last line names SIGTERM', async () => {
    const run = startRun(['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'lf-term', '--console', 'none', '--stop-timeout', '60', ...SMALL], env);
    await run.event('started');
    run.child.kill('SIGTERM');
    await until(() => (/SIGTERM: powering lf-term down/.test(run.stderr()) ? true : undefined), 10_000, 'the first SIGTERM message');
    run.child.kill('SIGTERM');
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/SIGTERM: forcing lf-term off/);
    expect(run.events.at(-1)).toMatchObject({ event: 'exited', reason: 'stopped', stop: 'quit', by: 'SIGTERM' });
  });

  it('the --detach supervisor: SIGTERM twice forces too', async () => {
    const start = await vmnet(['run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--detach', '--name', 'lf-sup', '--stop-timeout', '60', ...SMALL], env);
    expect(start.code, start.stderr).toBe(0);
    const me = (await lsEntry('lf-sup'))!;
    const [supervisor, qemu] = [me.pid as number, me.qemuPid as number];
    process.kill(supervisor, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    expect(running(qemu)).toBe(true); // the guest ignores the button: still waiting
    process.kill(supervisor, 'SIGTERM');
    expect(await goneWithin(qemu, 15_000)).not.toBeNull();
    expect(await goneWithin(supervisor, 5000)).not.toBeNull();
    expect(readFileSync(join(root, 'supervisor.log'), 'utf8')).toMatch(new RegExp(`\\[${supervisor}\\] VM lf-sup ended: stopped \\(quit, asked by SIGTERM\\)`));
  });
});
