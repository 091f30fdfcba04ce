/**
 * Helpers shared by the launcher e2e tests: run the built `vmnet` binary,
 * collect its NDJSON events, start an HTTP server inside the test guest over
 * its console socket, find free host ports.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import net from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { runConsoleScript } from '../../src/guest/console.js';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { privateTmp } from '../helpers/tmp.js';

/** The CLI under test (VMNET_TEST_BIN: another build, e.g. to show a test failing on main's). */
export const BIN = process.env.VMNET_TEST_BIN ?? join(import.meta.dirname, '../../dist/cli/bin.js');
export const APPEND = findBundledGuest().append;
/** Flags every test VM gets: TCG (KVM is not trusted here), small. */
export const SMALL = ['--accel', 'tcg', '-m', '256M', '--cpus', '1'];

export interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `vmnet ARGS` to completion. */
export function vmnet(args: string[], env: NodeJS.ProcessEnv, opts: { cmd?: string[] } = {}): Promise<Done> {
  const [cmd, ...pre] = opts.cmd ?? [process.execPath];
  return new Promise((resolve) => {
    const p = spawn(cmd!, [...pre, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export interface Running {
  child: ChildProcess;
  events: Array<Record<string, unknown> & { event: string }>;
  stderr: () => string;
  /** Resolves with the first event of that type. */
  event(type: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  done: Promise<Done>;
}

/** Starts `vmnet run ARGS --json` in the foreground and follows its events. */
export function startRun(args: string[], env: NodeJS.ProcessEnv, opts: { cmd?: string[] } = {}): Running {
  const [cmd, ...pre] = opts.cmd ?? [process.execPath];
  const child = spawn(cmd!, [...pre, BIN, 'run', ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Running['events'] = [];
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    out += s;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        events.push(JSON.parse(line));
      } catch {
        /* not an event */
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<Done>((resolve) =>
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w();
      resolve({ code, signal, stdout: JSON.stringify(events), stderr: err });
    }),
  );
  const event = (type: string, timeoutMs = 90_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} event within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
      const check = () => {
        const e = events.find((x) => x.event === type);
        if (e) {
          clearTimeout(timer);
          resolve(e);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`vmnet run exited before ${type}; stderr: ${err}`));
        } else waiters.push(check);
      };
      check();
    });
  return { child, events, stderr: () => err, event, done };
}

/** Guest script: DHCP, an optional extra step, then busybox httpd on port 80 serving `body`; prints SERVING and stays up. */
export function httpScript(body: string, extra = ''): string {
  return `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || echo DHCP-FAILED
${extra}
echo '${body}' > /var/www/index.html
httpd -p 80 -h /var/www
echo SERVING
sleep 600
`;
}

/**
 * Drives the test guest's console protocol over (readable, writable) until
 * the script prints SERVING; returns every script line seen so far.
 */
export function serveOverConsole(input: Readable, output: Writable, script: string, timeoutMs = 120_000): Promise<string[]> {
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`guest did not print SERVING within ${timeoutMs} ms; lines: ${lines.join(' | ')}`)), timeoutMs);
    runConsoleScript(input, output, script, {
      timeoutMs: 900_000,
      onLine: (line, inScript) => {
        if (!inScript) return;
        lines.push(line);
        if (line === 'SERVING') {
          clearTimeout(timer);
          resolve(lines);
        }
      },
    }).catch(() => undefined); // ends when the VM does
  });
}

/** Connects to a unix socket (a VM's console.sock). */
export function connectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

export { freePort } from '../helpers/ports.js';

/** True when 127.0.0.1:port can be bound (nobody holds it). */
export async function portFree(port: number): Promise<boolean> {
  const s = createServer();
  const ok = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => r(true));
  });
  if (ok) await new Promise((r) => s.close(r));
  return ok;
}

/** GET http://127.0.0.1:port/ → body (throws on failure). */
export async function httpGet(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) });
  return res.text();
}

/** Does a TCP connect to 127.0.0.1:port succeed? */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * A `--qemu` wrapper that logs each start (its pid, its parent's pid and
 * argv, one line) to `<dir>/<tag>-calls.log`, optionally sleeps, and then
 * execs the real qemu-system binary (same pid), so a test can tell whether,
 * and how, QEMU was started, and act at that moment.
 */
export function qemuWrapper(dir: string, tag = 'qemu', opts: { delayS?: number } = {}): { path: string; calls(): string[] } {
  const log = join(dir, `${tag}-calls.log`);
  const path = join(dir, `${tag}-wrapper.sh`);
  const real = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  const delay = opts.delayS ? `sleep ${opts.delayS}\n` : '';
  writeFileSync(path, `#!/bin/sh\necho "$$ $PPID $*" >> '${log}'\n${delay}exec '${real}' "$@"\n`, { mode: 0o755 });
  return { path, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []) };
}

/** Guest script: DHCP, then a busybox nc listener on port 22 that prints what it got (GOT ...); prints SERVING first. */
export const NC22_SCRIPT = `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || echo DHCP-FAILED
( nc -l -p 22 < /dev/null > /tmp/got 2>&1; echo "GOT $(cat /tmp/got)" ) &
sleep 0.5
echo SERVING
sleep 600
`;

/** A process that runs: exists and is not a zombie. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls until `pid` no longer runs; returns the ms it took, or null after `ms`. */
export async function goneWithin(pid: number, ms: number): Promise<number | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (!running(pid)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return running(pid) ? null : Date.now() - t0;
}

/** Polls `check` every 20 ms until it returns a value (not undefined); throws after `ms`. */
export async function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A private runtime directory for one test file: XDG_RUNTIME_DIR points there, VMNET_RUNTIME_DIR is unset. */
export function privateRuntime(prefix: string): { tmp: string; env: NodeJS.ProcessEnv; root: string } {
  const tmp = privateTmp(prefix);
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: tmp, VMNET_DEBUG: '' };
  delete env.VMNET_RUNTIME_DIR;
  return { tmp, env, root: join(tmp, 'vmnet') };
}

/** Stops every VM of a runtime directory (afterAll: nothing a failed test left may keep running). */
export async function stopAll(env: NodeJS.ProcessEnv): Promise<void> {
  const ls = await vmnet(['ls', '--json'], env);
  for (const v of JSON.parse(ls.stdout || '[]') as Array<{ name: string }>) await vmnet(['stop', v.name, '--force'], env);
}

/** Waits until what a console socket prints (from now on) matches `re`; returns the match. */
export function consoleMatch(sock: net.Socket, re: RegExp, timeoutMs = 90_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`console did not print ${re} within ${timeoutMs} ms; tail: ${buf.slice(-500)}`)), timeoutMs);
    const onData = (b: Buffer) => {
      buf = (buf + b.toString('latin1')).slice(-65536);
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        sock.off('data', onData);
        resolve(m);
      }
    };
    sock.on('data', onData);
  });
}
