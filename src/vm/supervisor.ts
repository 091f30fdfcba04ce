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
 * launches and answers one JSON line: `{"ok": true, "name", "dir",
 * "events"}` once the VM runs and its control socket listens (events: what
 * launch() reported up to `started`, e.g. an `accel-fallback`), or `{"ok": false, "code",
 * "message", "usage"}`, which the parent rethrows as the same VmnetError (a
 * taken port is still exit 2, reported before anything keeps running). EOF
 * without an answer means the supervisor died, no answer within the time
 * limit that it hangs: either way the parent says what it knows (pid, the
 * VM it claimed, QEMU's pid, the log) and a supervisor still running is
 * told to give up. An image URL is fetched by the parent before the
 * supervisor exists (its progress reaches the user live, and a long download
 * is no handshake timeout); the supervisor gets the digest of what was
 * fetched and finds it in the cache. After the handshake the parent prints the name and exits; the
 * supervisor exits when the VM does (guest power-off, `vmnet stop`,
 * SIGTERM → graceful stop; a second signal forces). Its signal handlers are
 * installed before anything else: a signal during the start cancels it
 * (nothing is left) and the parent reports E_INTERRUPTED. Its log lines
 * carry its pid (the log is shared by every supervisor of the user).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmnetError, type VmnetErrorCode } from '../errors.js';
import { toJson } from '../config/printable.js';
import { packageRoot } from '../guest/bundled.js';
import { launch, type Vm, type VmEvent } from './launch.js';
import type { LaunchOptions } from './plan.js';
import { ensureRuntimeRoot, scanVms } from './state.js';
import { resolveLaunch } from './plan.js';
import { fetchRemoteBase } from './remote-image.js';
import { formatDigest, isImageUrl } from '../images/source.js';

/** The CLI entry point to re-run (dist/cli/bin.js, also when this module runs from src/ under a test runner). */
function binPath(): string {
  const here = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
  return here.includes('/dist/') ? here : join(packageRoot, 'dist', 'cli', 'bin.js');
}

type Serializable = Omit<LaunchOptions, 'env'>;

/**
 * Starts a VM under a detached supervisor process.
 * @param opts launch options (must be JSON-serialisable; env is the child's environment);
 *   onEvent hears the download of an image URL as it happens
 * @returns the VM's name and directory, once it runs
 * @param cancel aborting it cancels the start (the supervisor then reports E_INTERRUPTED)
 * @throws VmnetError as launch() would (same code), or E_QEMU_FAILED when the supervisor died
 */
export async function startDetached(opts: LaunchOptions & { onEvent?: (e: VmEvent) => void }, timeoutMs = 60_000, cancel?: AbortSignal): Promise<{ name: string; dir: string; events: VmEvent[] }> {
  const env = opts.env ?? process.env;
  const root = await ensureRuntimeRoot(env);
  const { env: _env, onEvent, ...rest } = opts;
  const payload: Serializable = rest;
  const resolved = rest.image && isImageUrl(rest.image) ? await resolveLaunch(opts) : null;
  if (resolved?.remote) {
    const base = await fetchRemoteBase({ ...resolved, remote: resolved.remote }, { ...(onEvent ? { onEvent } : {}), ...(cancel ? { signal: cancel } : {}) });
    payload.digest = formatDigest(base.sha256);
  }
  const logPath = join(root, 'supervisor.log');
  const log = openSync(logPath, 'a', 0o600);
  let child;
  try {
    child = spawn(process.execPath, [binPath(), 'run', '--supervised'], { detached: true, stdio: ['ignore', 'ignore', log, 'pipe'], env, cwd: process.cwd() });
  } finally {
    closeSync(log);
  }
  const pipe = child.stdio[3] as net.Socket;
  pipe.write(JSON.stringify(payload) + '\n');
  // Cancelled while waiting (Ctrl-C on `vmnet run --detach`): the same signal makes the supervisor cancel its start and answer E_INTERRUPTED.
  const onCancel = () => child.kill(/^SIG(INT|TERM|HUP)$/.test(String(cancel?.reason)) ? (String(cancel?.reason) as NodeJS.Signals) : 'SIGTERM');
  cancel?.addEventListener('abort', onCancel, { once: true });
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
  cancel?.removeEventListener('abort', onCancel);
  pipe.destroy();
  child.unref();
  if (reply === null) throw await noReply(child, root, logPath, timeoutMs);
  const r = JSON.parse(reply) as { ok: boolean; name?: string; dir?: string; events?: VmEvent[]; code?: VmnetErrorCode; message?: string; usage?: boolean };
  if (!r.ok) throw new VmnetError(r.code ?? 'E_QEMU_FAILED', r.message ?? 'the VM did not start', { usage: r.usage ?? false });
  // The parent reported the download; the supervisor's cache hit is no news.
  return { name: r.name!, dir: r.dir!, events: (r.events ?? []).filter((e) => e.event !== 'download') };
}

/**
 * The error for a handshake without an answer, saying what is known: the
 * supervisor's pid, whether it still runs, the VM it claimed and QEMU's pid
 * (from the state.json it owns), and its log. A supervisor still running
 * is told to give up (SIGTERM cancels its start: nothing is left) rather
 * than left to start a VM nobody waits for.
 */
async function noReply(child: ChildProcess, root: string, logPath: string, timeoutMs: number): Promise<VmnetError> {
  const pid = child.pid ?? 0;
  const running = child.exitCode === null && child.signalCode === null;
  const vm = (await scanVms(root)).find((e) => e.state?.pid === pid);
  const what = vm ? `it was starting VM ${vm.name}${vm.state?.qemuPid ? ` (QEMU pid ${vm.state.qemuPid} spawned)` : ' (QEMU not spawned yet)'}` : 'it had not claimed a VM directory';
  if (!running) {
    const how = child.signalCode ?? `code ${child.exitCode}`;
    return new VmnetError('E_QEMU_FAILED', `the VM supervisor (pid ${pid}) exited (${how}) without starting the VM; ${what}; its log: ${logPath}`);
  }
  child.kill('SIGTERM');
  const gone = await new Promise<boolean>((r) => {
    const t = setTimeout(() => r(false), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      r(true);
    });
  });
  return new VmnetError('E_TIMEOUT', `the VM supervisor (pid ${pid}) did not report within ${Math.round(timeoutMs / 1000)} s; ${what}; ${gone ? 'it was told to give up' : 'it was told to give up but still runs'}; its log: ${logPath}`);
}

/**
 * The supervisor's side: reads the options from fd 3, launches, answers,
 * then serves the VM until it exits.
 * @param onSignal registers the SIGINT/SIGTERM handler (graceful stop)
 * @param log where events and errors go (the supervisor log)
 * @returns the exit code of the supervisor: 0 when the VM ended cleanly or was stopped
 */
export async function runSupervised(onSignal: (h: (signal: NodeJS.Signals) => void) => () => void, log: NodeJS.WritableStream): Promise<number> {
  const say = (s: string) => log.write(`${new Date().toISOString()} [${process.pid}] ${s}\n`);
  // Stop requests count from the first moment: one during the start cancels it, later ones force.
  const cancel = new AbortController();
  let vm: Vm | undefined;
  let requests = 0;
  const off = onSignal((sig) => {
    requests++;
    if (!vm) {
      if (requests === 1) {
        say(`${sig}: cancelling the start`);
        cancel.abort(sig);
      }
      return;
    }
    if (requests === 1) {
      say(`${sig}: stopping VM ${vm.name}`);
      void vm.stop({ by: sig });
    } else {
      say(`${sig}: forcing VM ${vm.name} off`);
      void vm.stop({ force: true, by: sig });
    }
  });
  const pipe = new net.Socket({ fd: 3, readable: true, writable: true });
  pipe.on('error', () => undefined);
  const reply = (r: Record<string, unknown>) => pipe.end(JSON.stringify(r) + '\n');
  const early: VmEvent[] = [];
  try {
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
    vm = await launch({
      ...opts,
      signal: cancel.signal,
      onEvent: (e: VmEvent) => {
        say(toJson(e));
        if (!vm) early.push(e);
      },
    });
  } catch (e) {
    off();
    const v = e instanceof VmnetError ? e : new VmnetError('E_QEMU_FAILED', (e as Error)?.message ?? String(e));
    say(`launch failed: ${v.message}`);
    reply({ ok: false, code: v.code, message: v.message, usage: v.usage });
    return v.usage ? 2 : 1;
  }
  const theVm = vm;
  if (cancel.signal.aborted) void theVm.stop({ by: String(cancel.signal.reason) }); // a signal raced the end of the start
  reply({ ok: true, name: vm.name, dir: vm.dir, events: early });
  const exit = await vm.exited;
  off();
  say(`VM ${vm.name} ended: ${exit.reason}${exit.stop ? ` (${exit.stop}${exit.by ? `, asked by ${exit.by}` : ''})` : ''}, QEMU ${exit.signal ?? `code ${exit.code}`}`);
  return exit.reason === 'crashed' ? 1 : 0;
}
