/**
 * Theory of operation: `vmnet run --detach`. The VM needs a process that
 * keeps serving its network (the gateway is in-process), its console and its
 * control socket; a detached VM gets its own: the supervisor, which is
 * `node <vmnet>/dist/cli/bin.js run --supervised` spawned in a new session
 * (no terminal, so no SIGHUP or Ctrl-C reaches it), stdin/stdout closed,
 * stderr appended to `<runtime root>/supervisor.log`.
 *
 * Handshake over an extra pipe (fd 3): the parent writes the launch options
 * as one JSON line (already validated, paths absolute), the supervisor
 * launches and answers one JSON line: `{"ok": true, "name", "dir"}` once
 * the VM runs and its control socket listens, or `{"ok": false, "code",
 * "message", "usage"}`, which the parent rethrows as the same VmnetError (a
 * taken port is still exit 2, reported before anything keeps running). EOF
 * without an answer means the supervisor died: the parent says where its log
 * is. After the handshake the parent prints the name and exits; the
 * supervisor exits when the VM does (guest power-off, `vmnet stop`,
 * SIGTERM → graceful stop).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmnetError, type VmnetErrorCode } from '../errors.js';
import { toJson } from '../config/printable.js';
import { packageRoot } from '../guest/bundled.js';
import { launch, type VmEvent } from './launch.js';
import type { LaunchOptions } from './plan.js';
import { ensureRuntimeRoot } from './state.js';

/** The CLI entry point to re-run (dist/cli/bin.js, also when this module runs from src/ under a test runner). */
function binPath(): string {
  const here = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
  return here.includes('/dist/') ? here : join(packageRoot, 'dist', 'cli', 'bin.js');
}

type Serializable = Omit<LaunchOptions, 'env'>;

/**
 * Starts a VM under a detached supervisor process.
 * @param opts launch options (must be JSON-serialisable; env is the child's environment)
 * @returns the VM's name and directory, once it runs
 * @throws VmnetError as launch() would (same code), or E_QEMU_FAILED when the supervisor died
 */
export async function startDetached(opts: LaunchOptions, timeoutMs = 60_000): Promise<{ name: string; dir: string }> {
  const env = opts.env ?? process.env;
  const root = await ensureRuntimeRoot(env);
  const logPath = join(root, 'supervisor.log');
  const log = openSync(logPath, 'a', 0o600);
  const { env: _env, ...rest } = opts;
  const payload: Serializable = rest;
  let child;
  try {
    child = spawn(process.execPath, [binPath(), 'run', '--supervised'], { detached: true, stdio: ['ignore', 'ignore', log, 'pipe'], env, cwd: process.cwd() });
  } finally {
    closeSync(log);
  }
  const pipe = child.stdio[3] as net.Socket;
  pipe.write(JSON.stringify(payload) + '\n');
  const reply = await new Promise<string | null>((resolve) => {
    let buf = '';
    const timer = setTimeout(() => resolve(null), timeoutMs);
    pipe.setEncoding('utf8');
    pipe.on('data', (s: string) => {
      buf += s;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
    pipe.on('error', () => undefined);
    pipe.on('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
  pipe.destroy();
  child.unref();
  if (reply === null) {
    throw new VmnetError('E_QEMU_FAILED', `the VM supervisor exited without starting the VM; see ${logPath}`);
  }
  const r = JSON.parse(reply) as { ok: boolean; name?: string; dir?: string; code?: VmnetErrorCode; message?: string; usage?: boolean };
  if (!r.ok) throw new VmnetError(r.code ?? 'E_QEMU_FAILED', r.message ?? 'the VM did not start', { usage: r.usage ?? false });
  return { name: r.name!, dir: r.dir! };
}

/**
 * The supervisor's side: reads the options from fd 3, launches, answers,
 * then serves the VM until it exits.
 * @param onSignal registers the SIGINT/SIGTERM handler (graceful stop)
 * @param log where events and errors go (the supervisor log)
 * @returns the exit code of the supervisor: 0 when the VM ended cleanly or was stopped
 */
export async function runSupervised(onSignal: (h: () => void) => () => void, log: NodeJS.WritableStream): Promise<number> {
  const pipe = new net.Socket({ fd: 3, readable: true, writable: true });
  pipe.on('error', () => undefined);
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    pipe.setEncoding('utf8');
    const onData = (s: string) => {
      buf += s;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        pipe.off('data', onData);
        pipe.pause();
        resolve(buf.slice(0, nl));
      }
    };
    pipe.on('data', onData);
    pipe.once('end', () => reject(new VmnetError('E_USAGE', '--supervised is internal to vmnet run --detach')));
  });
  const opts = JSON.parse(line) as Serializable;
  const say = (s: string) => log.write(`${new Date().toISOString()} ${s}\n`);
  let vm;
  try {
    vm = await launch({ ...opts, onEvent: (e: VmEvent) => say(toJson(e)) });
  } catch (e) {
    const v = e instanceof VmnetError ? e : new VmnetError('E_QEMU_FAILED', (e as Error)?.message ?? String(e));
    say(`launch failed: ${v.message}`);
    pipe.end(JSON.stringify({ ok: false, code: v.code, message: v.message, usage: v.usage }) + '\n');
    return v.usage ? 2 : 1;
  }
  const theVm = vm;
  const off = onSignal(() => void theVm.stop());
  pipe.end(JSON.stringify({ ok: true, name: vm.name, dir: vm.dir }) + '\n');
  const exit = await vm.exited;
  off();
  say(`VM ${vm.name} ended: ${exit.reason}${exit.stop ? ` (${exit.stop})` : ''}, QEMU ${exit.signal ?? `code ${exit.code}`}`);
  return exit.reason === 'crashed' ? 1 : 0;
}
