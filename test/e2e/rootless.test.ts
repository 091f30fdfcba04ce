/**
 * `vmnet run` as an unprivileged user: no root, no TAP, no capabilities.
 * As root (CI), the test creates the user `vmnet-test` if missing and runs
 * every vmnet command through `runuser -u vmnet-test`, with XDG_RUNTIME_DIR
 * unset so the per-user fallback directory in /tmp is used; run by a normal
 * user, it runs as that user. The guest files are copied to a directory the
 * user can read. Checks: the VM boots and serves through a forward, QEMU runs
 * as the user, the runtime directory is the user's and 0700, and `vmnet stop`
 * by the user ends it with nothing left behind.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { APPEND, BIN, freePort, httpGet, httpScript, portFree, serveOverConsole, SMALL, startRun, vmnet } from './launcher-helpers.js';

const USER = 'vmnet-test';
const asRoot = process.getuid?.() === 0;

function ensureUser(): number {
  if (!asRoot) return process.getuid!();
  try {
    execFileSync('id', ['-u', USER], { stdio: 'pipe' });
  } catch {
    execFileSync('useradd', ['-m', USER], { stdio: 'pipe' });
  }
  return Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
}

describe('rootless', () => {
  const uid = ensureUser();
  const cmd = asRoot ? ['runuser', '-u', USER, '--', process.execPath] : [process.execPath];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: asRoot ? `/home/${USER}` : process.env.HOME, LANG: 'C' };
  let name = '';
  afterAll(async () => {
    if (name) await vmnet(['stop', name, '--force'], env, { cmd });
  });

  it(`vmnet run works as an unprivileged user (uid ${uid})`, async () => {
    expect(uid).not.toBe(0);
    const g = findBundledGuest();
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-rootless-'));
    chmodSync(dir, 0o755);
    for (const f of [g.kernel, g.initrd]) {
      copyFileSync(f, join(dir, f.split('/').pop()!));
      chmodSync(join(dir, f.split('/').pop()!), 0o644);
    }
    expect(statSync(BIN).mode & 0o004).toBe(0o004);
    const port = await freePort();
    name = 'rootless';
    const run = startRun(['--kernel', join(dir, 'vmlinuz'), '--initrd', join(dir, 'initramfs.gz'), '--append', APPEND, '--name', name, '--forward', `${port}:80`, '--console', 'none', ...SMALL], env, { cmd });
    const started = await run.event('started');
    const vmDir = started.dir as string;
    expect(vmDir).toBe(join(tmpdir(), `vmnet-${uid}`, name));
    for (const d of [join(tmpdir(), `vmnet-${uid}`), vmDir]) {
      const st = statSync(d);
      expect(st.uid).toBe(uid);
      expect(st.mode & 0o777).toBe(0o700);
    }
    // QEMU runs as the user.
    const qemuPid = started.qemuPid as number;
    expect(Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${qemuPid}/status`, 'utf8'))![1])).toBe(uid);

    // The console, as the user, through `vmnet console`.
    const [c0, ...cArgs] = cmd;
    const con = spawn(c0!, [...cArgs, BIN, 'console', name], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    await serveOverConsole(con.stdout, con.stdin, httpScript('hello from an unprivileged VM'));
    const wait = await vmnet(['wait', name, '--port', '80'], env, { cmd });
    expect(wait.code, wait.stderr).toBe(0);
    expect(await httpGet(port)).toBe('hello from an unprivileged VM\n');
    con.stdin.end();

    const stop = await vmnet(['stop', name, '--timeout', '2'], env, { cmd });
    expect(stop.code, stop.stderr).toBe(0);
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    name = '';
    expect(existsSync(vmDir)).toBe(false);
    expect(await portFree(port)).toBe(true);
  });
});
