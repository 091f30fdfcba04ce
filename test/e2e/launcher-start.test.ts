/**
 * How `vmnet run` starts QEMU, end to end with real QEMU and the test guest:
 * which image format QEMU is told (a probed qcow2 that names a host file is
 * refused before QEMU exists; `--format qcow2` vouches for it), and a
 * detached VM from a qcow2 overlay serving a forward to a listener on the
 * guest's port 22. A `--qemu` wrapper logs every QEMU start, so "QEMU was
 * never started" is observed, not assumed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { privateTmp } from '../helpers/tmp.js';
import { alive, APPEND, BIN, connectUnix, consoleMatch, freePort, goneWithin, NC22_SCRIPT, portFree, privateRuntime, qemuWrapper, running, serveOverConsole, SMALL, startRun, stopAll, until, vmnet } from './launcher-helpers.js';

const guest = findBundledGuest();
const SMALL_NO_ACCEL = ['-m', '256M', '--cpus', '1'];
let tmp: string;
let env: NodeJS.ProcessEnv;
let root: string;
/** One QEMU wrapper for the file: the KVM verdict is kept per QEMU binary. */
let q: ReturnType<typeof qemuWrapper>;

beforeAll(() => {
  ({ tmp, env, root } = privateRuntime('vmnet-lstart-'));
  q = qemuWrapper(tmp);
});
afterAll(() => stopAll(env));

/** Does QEMU with -accel kvm die at start on this host (FACTS.md: it does on the project's machines)? */
function kvmDiesAtStart(): string | null {
  try {
    execFileSync('qemu-system-x86_64', ['-accel', 'kvm', '-cpu', 'host', '-nodefaults', '-display', 'none', '-no-user-config', '-S', '-qmp', 'null'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 3000 });
    return null;
  } catch (e) {
    const err = e as { stderr?: Buffer; signal?: string };
    return err.signal === 'SIGTERM' ? null : String(err.stderr ?? '');
  }
}

describe('vmnet run --accel', () => {
  it('auto: when KVM dies at start, QEMU is started again with TCG, said in one line and an event, and remembered for this boot; --accel kvm fails loudly', async () => {
    const kvmError = kvmDiesAtStart();
    const n0 = q.calls().length;
    const run = startRun(['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'ls-auto', '--console', 'none', '--qemu', q.path, ...SMALL_NO_ACCEL], env);
    const started = await run.event('started');
    const verdict = join(root, 'accel-verdict.json');
    if (kvmError !== null) {
      expect(kvmError).toMatch(/kvm|MSR/i);
      expect(started.accel).toBe('tcg');
      const fb = run.events.find((e) => e.event === 'accel-fallback')!;
      expect(fb).toMatchObject({ from: 'kvm', to: 'tcg', remembered: verdict });
      expect(fb.reason).toMatch(/kvm|MSR/i);
      expect(run.events.indexOf(fb)).toBeLessThan(run.events.indexOf(run.events.find((e) => e.event === 'started')!));
      expect(q.calls().slice(n0).map((c) => /-accel (\w+)/.exec(c)![1])).toEqual(['kvm', 'tcg']);
      expect(run.stderr()).toMatch(/^vmnet: KVM failed when QEMU started .*; started again with TCG .*\n/m);
      const v = JSON.parse(readFileSync(verdict, 'utf8')) as Record<string, unknown>;
      expect(v.bootId).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    } else {
      // KVM works on this host: auto uses it and nothing is remembered.
      expect(started.accel).toBe('kvm');
      expect(existsSync(verdict)).toBe(false);
    }
    const stop = await vmnet(['stop', 'ls-auto', '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await run.done).code).toBe(0);

    if (kvmError !== null) {
      const kvm = await vmnet(['run', '--kernel', guest.kernel, '--name', 'ls-kvm', '--console', 'none', '--accel', 'kvm', ...SMALL_NO_ACCEL], env);
      expect(kvm.code).toBe(1);
      expect(kvm.stderr).toMatch(/^vmnet: QEMU failed to start: .*(kvm|MSR).*\n$/i);
      expect(existsSync(join(root, 'ls-kvm'))).toBe(false);
    }
  });
});

describe('QEMU failing at start', () => {
  it('exits 1 with the tail of QEMU\'s stderr, and leaves nothing', async () => {
    const r = await vmnet(['run', '--kernel', guest.kernel, '--name', 'ls-bad', '--console', 'none', ...SMALL, '--', '-device', 'no-such-device-model'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vmnet: QEMU failed to start: .*'no-such-device-model' is not a valid device model name\n$/);
    expect(existsSync(join(root, 'ls-bad'))).toBe(false);
  });
});

describe('vmnet run: disk image formats', () => {
  it('a probed qcow2 naming a host file as its backing file exits 2 before QEMU starts; --format raw passes it as raw', async () => {
    const evil = join(tmp, 'guest-disk.img');
    // What a guest can write into the first sector of its own raw disk: a qcow2 header whose backing file is a host file.
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/hostname', '-F', 'raw', evil, '64M']);
    const n0 = q.calls().length;
    const r = await vmnet(['run', evil, '--qemu', q.path, '--name', 'ls-evil', '--console', 'none', '--accel', 'tcg', ...SMALL_NO_ACCEL], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vmnet: .*guest-disk\.img looks like qcow2 with a backing file "\/etc\/hostname".*--format qcow2.*\n$/);
    expect(q.calls().slice(n0)).toEqual([]); // QEMU never ran
    expect(existsSync(join(root, 'ls-evil'))).toBe(false);
    const raw = await vmnet(['run', evil, '--format', 'raw', '--accel', 'tcg', '--dry-run'], env);
    expect(raw.code, raw.stderr).toBe(0);
    expect(raw.stdout).toContain(`file=${evil},format=raw,if=virtio`);
  });

  it('--format qcow2 vouches: a qcow2 overlay of the test disk boots detached with no --accel (straight to TCG where KVM failed before) and serves a forward to a listener on guest port 22', async () => {
    const overlay = join(tmp, 'overlay.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', guest.diskQcow2, '-F', 'qcow2', overlay]);
    const probed = await vmnet(['run', overlay, '--dry-run'], env);
    expect(probed.code).toBe(2); // probed, it names a file: refused
    expect(probed.stderr).toContain(`backing file "${guest.diskQcow2}"`);

    const port = await freePort();
    const n0 = q.calls().length;
    const remembered = existsSync(join(root, 'accel-verdict.json'));
    const start = await vmnet(['run', overlay, '--format', 'qcow2', '--detach', '--json', '--name', 'ls-ovl', '-p', `${port}:22`, '--qemu', q.path, ...SMALL_NO_ACCEL], env);
    expect(start.code, start.stderr).toBe(0);
    // --detach --json prints JSON: the events of the start, `started` last.
    const events = start.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = events.at(-1)!;
    expect(started).toMatchObject({ event: 'started', name: 'ls-ovl', forwards: [`127.0.0.1:${port}:22/tcp`] });
    // After the run above (same runtime directory, same boot) KVM's verdict is known: one QEMU start, straight to TCG.
    // Run alone, the supervisor falls back itself.
    const accels = q.calls().slice(n0).map((c) => /-accel (\w+)/.exec(c)![1]);
    const kvmFails = kvmDiesAtStart() !== null;
    expect(accels).toEqual(!kvmFails ? ['kvm'] : remembered ? ['tcg'] : ['kvm', 'tcg']);
    const ls = JSON.parse((await vmnet(['ls', '--json'], env)).stdout) as Array<Record<string, unknown>>;
    const me = ls.find((v) => v.name === 'ls-ovl')!;
    // pid is the process serving the VM (here the supervisor) in both; qemuPid is QEMU in both.
    expect([started.pid, started.qemuPid]).toEqual([me.pid, me.qemuPid]);
    expect(me.pid).not.toBe(me.qemuPid);
    expect(readFileSync(`/proc/${me.qemuPid}/cmdline`, 'utf8')).toContain(`file=${overlay},format=qcow2,if=virtio`);

    const con = await connectUnix(join(root, 'ls-ovl', 'console.sock'));
    await serveOverConsole(con, con, NC22_SCRIPT);
    const got = consoleMatch(con, /GOT (\S*)/);
    const wait = await vmnet(['wait', 'ls-ovl', '--port', '22', '--timeout', '60'], env);
    expect(wait.code, wait.stderr).toBe(0);
    const c = net.createConnection(port, '127.0.0.1');
    await new Promise<void>((r, j) => c.once('connect', r).once('error', j));
    c.end('byte-crossed');
    expect((await got)[1]).toBe('byte-crossed');
    c.destroy();
    con.destroy();

    const stop = await vmnet(['stop', 'ls-ovl', '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(alive(me.qemuPid as number)).toBe(false);
    expect(await portFree(port)).toBe(true);
  });
});

/** VM directories (and claim/stale leftovers) in a runtime root; switches excluded. */
const vmDirs = (r: string) => (existsSync(r) ? readdirSync(r).filter((n) => n !== 'switches' && !n.endsWith('.json') && !n.endsWith('.log')) : []);

describe('a stop request during start-up leaves nothing behind', () => {
  it('SIGTERM to a foreground vmnet run while its switch starts, right after QEMU is spawned, and while QEMU connects: no QEMU, no directory, no port', async () => {
    const rt = privateTmp('vmnet-lstart-sig-');
    const e2 = { ...env, XDG_RUNTIME_DIR: rt };
    const r2 = join(rt, 'vmnet');
    const w = qemuWrapper(rt, 'slow', { delayS: 0.5 });
    const cases: Array<{ at: string; args: string[]; when: () => boolean }> = [
      // The switch is started on demand: the VM directory exists (with its owner) long before QEMU.
      { at: 'switch start', args: ['--net', 'switch:lss1', '--net', 'user'], when: () => existsSync(join(r2, 'ls-sig', 'state.json')) },
      // The wrapper logged its start and sleeps before becoming QEMU: spawned, nothing connected yet.
      { at: 'QEMU spawned', args: [], when: () => w.calls().length > n0 },
      { at: 'QEMU connecting', args: [], when: () => w.calls().length > n0 && Date.now() - seen > 700 },
    ];
    let n0 = 0;
    let seen = 0;
    for (const c of cases) {
      n0 = w.calls().length;
      seen = 0;
      const port = await freePort();
      const run = spawn(process.execPath, [BIN, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--name', 'ls-sig', '--console', 'none', '--stop-timeout', '1', '-p', `${port}:80`, '--qemu', w.path, ...c.args, ...SMALL], { env: e2, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      run.stderr.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => run.on('close', (code) => r(code)));
      await until(() => {
        if (!seen && w.calls().length > n0) seen = Date.now();
        return c.when() ? true : undefined;
      }, 60_000, c.at);
      run.kill('SIGTERM');
      const code = await closed;
      if (c.at === 'QEMU connecting' && /VM ls-sig running/.test(stderr)) {
        // The start won the race: an ordinary stop, just as clean.
        expect(code, `${c.at}: ${stderr}`).toBe(0);
        expect(stderr).toMatch(/VM ls-sig stopped \(SIGTERM\)/);
      } else {
        expect(code, `${c.at}: ${stderr}`).toBe(1);
        expect(stderr, c.at).toMatch(/SIGTERM: the start of VM ls-sig was cancelled; nothing is left running\n$/);
      }
      for (const line of w.calls().slice(n0)) expect(await goneWithin(Number(line.split(' ')[0]), 3000), `${c.at}: QEMU left running`).not.toBeNull();
      expect(vmDirs(r2), c.at).toEqual([]);
      expect(await portFree(port), c.at).toBe(true);
    }
    await vmnet(['switch', 'rm', 'lss1'], e2);
  });

  it('SIGTERM to the --detach supervisor, or SIGINT to vmnet run --detach, during start-up: the start is cancelled and reported, nothing is left', async () => {
    for (const target of ['supervisor', 'parent'] as const) {
      const rt = privateTmp('vmnet-lstart-sup-');
      const e2 = { ...env, XDG_RUNTIME_DIR: rt };
      const w = qemuWrapper(rt, 'slow', { delayS: 1 });
      const parent = spawn(process.execPath, [BIN, 'run', '--kernel', guest.kernel, '--detach', '--name', 'ls-sup', '--qemu', w.path, ...SMALL], { env: e2, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      parent.stderr.on('data', (d) => (stderr += d));
      const code = new Promise<number | null>((r) => parent.on('close', (c) => r(c)));
      const [qemuPid, supervisorPid] = (await until(() => w.calls()[0], 30_000, 'QEMU start')).split(' ').map(Number) as [number, number];
      if (target === 'supervisor') process.kill(supervisorPid, 'SIGTERM');
      else parent.kill('SIGINT');
      expect(await code, `${target}: ${stderr}`).toBe(1);
      const sig = target === 'supervisor' ? 'SIGTERM' : 'SIGINT';
      expect(stderr, target).toMatch(new RegExp(`^vmnet: ${sig}: the start of VM ls-sup was cancelled; nothing is left running\\n$`));
      expect(await goneWithin(qemuPid, 3000), target).not.toBeNull();
      expect(await goneWithin(supervisorPid, 3000), target).not.toBeNull();
      expect(vmDirs(join(rt, 'vmnet')), target).toEqual([]);
    }
  });

  it('the stale cleaner finds an orphaned QEMU when the runtime path holds a comma (QEMU sees it as ,,)', async () => {
    const rt = privateTmp('vmnet-lstart-a,b-');
    // PATH without setpriv: QEMU is not tied to vmnet, so kill -9 of vmnet orphans it.
    const e2 = { ...env, XDG_RUNTIME_DIR: rt, PATH: '/nonexistent' };
    const qemu = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
    const run = startRun(['--kernel', guest.kernel, '--name', 'ls-comma', '--console', 'none', '--qemu', qemu, ...SMALL], e2);
    await run.event('started');
    const state = JSON.parse(readFileSync(join(rt, 'vmnet', 'ls-comma', 'state.json'), 'utf8')) as { qemuPid: number };
    expect(readFileSync(`/proc/${state.qemuPid}/cmdline`, 'utf8')).toContain('vmnet-lstart-a,,b-');
    run.child.kill('SIGKILL');
    await run.done;
    expect(running(state.qemuPid)).toBe(true); // orphaned
    const ls = await vmnet(['ls'], e2);
    expect(ls.stderr).toMatch(new RegExp(`cleaned up VM ls-comma: .*its QEMU \\(pid ${state.qemuPid}\\) was killed`));
    expect(await goneWithin(state.qemuPid, 3000)).not.toBeNull();
  });
});

describe('--detach handshake', () => {
  it('a supervisor that does not report in time: the error says what is known (its pid, the VM, its log), and the start is cancelled', async () => {
    const rt = privateTmp('vmnet-lstart-hs-');
    const w = qemuWrapper(rt, 'stuck', { delayS: 60 });
    const { startDetached } = await import('../../src/vm/supervisor.js');
    const err = (await startDetached({ kernel: guest.kernel, name: 'ls-hs', qemu: w.path, accel: 'tcg', memory: '256M', cpus: 1, env: { ...env, XDG_RUNTIME_DIR: rt } }, 8000).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('E_TIMEOUT');
    const supervisor = Number(/supervisor \(pid (\d+)\)/.exec(err.message)?.[1]);
    expect(err.message).toMatch(/^the VM supervisor \(pid \d+\) did not report within 8 s; it was starting VM ls-hs \(QEMU pid \d+ spawned\); it was told to give up; its log: .*supervisor\.log$/);
    expect(await goneWithin(supervisor, 5000)).not.toBeNull();
    const qemuPid = Number(w.calls()[0]!.split(' ')[0]);
    expect(await goneWithin(qemuPid, 5000)).not.toBeNull();
    expect(vmDirs(join(rt, 'vmnet'))).toEqual([]);
  });
});
