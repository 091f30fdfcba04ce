/**
 * Theory of operation: everything the bench starts goes through one Scope,
 * which remembers each namespace and child process and undoes them all in
 * close() — on success, on a thrown error, and on SIGINT/SIGTERM (the
 * process-wide hook below closes every open scope before exiting). Children
 * are stopped by their own pid (SIGTERM, then SIGKILL after 2 s), never by
 * name. Namespaces come from test/helpers/netns.ts: only loopback until the
 * bench adds a veth pair whose both ends stay inside the same namespace, or
 * a TAP whose other side is a relay or a user-mode backend — nothing routes
 * off the machine.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { cpuSeconds } from '../../test/helpers/cpu.js';
import { createNetns, type Netns } from '../../test/helpers/netns.js';

const execFileP = promisify(execFile);

/** A child process with its output collected. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  /** Waits until stdout+stderr match `re`; rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const openScopes = new Set<Scope>();
let hooked = false;
function hookSignals(): void {
  if (hooked) return;
  hooked = true;
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    void Promise.allSettled([...openScopes].map((s) => s.close())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

export class Scope {
  readonly #procs: Proc[] = [];
  readonly #netns: Netns[] = [];
  readonly #cleanups: (() => unknown)[] = [];
  #closing: Promise<void> | null = null;

  constructor() {
    hookSignals();
    openScopes.add(this);
  }

  /** A fresh namespace (loopback up), deleted by close(). */
  netns(prefix: string): Netns {
    const ns = createNetns(prefix);
    this.#netns.push(ns);
    return ns;
  }

  /** Runs `cmd args…` to completion (inside `ns` if given) and returns stdout. */
  async run(ns: Netns | null, cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
    const [file, argv] = ns ? ['ip', ['netns', 'exec', ns.name, cmd, ...args]] : [cmd, args];
    try {
      const { stdout } = await execFileP(file, argv, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${[cmd, ...args].join(' ')} failed: ${(err.stderr || err.message).trim().split('\n').slice(-3).join(' | ')}`, { cause: e });
    }
  }

  /** Starts a long-running child (inside `ns` if given); stopped by close(). */
  spawn(ns: Netns | null, cmd: string, args: string[], name = cmd, opts: SpawnOptions = {}): Proc {
    const child = ns ? ns.spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }) : spawnPlain(cmd, args, opts);
    let out = '';
    let err = '';
    const waiters = new Set<() => void>();
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      out += d;
      for (const w of waiters) w();
    });
    child.stderr?.on('data', (d: string) => {
      err += d;
      for (const w of waiters) w();
    });
    const exited = new Promise<number | null>((res) => {
      child.once('exit', (code) => res(code));
      child.once('error', (e) => {
        err += String(e);
        res(-1);
      });
    });
    if (child.pid === undefined) throw new Error(`${name} did not start`);
    const proc: Proc = {
      child,
      pid: child.pid,
      name,
      stdout: () => out,
      stderr: () => err,
      exited,
      waitFor(re, timeoutMs = 10_000) {
        return new Promise<void>((resolve, reject) => {
          const check = () => {
            if (!re.test(out + err)) return;
            done();
            resolve();
          };
          const t = setTimeout(() => {
            done();
            reject(new Error(`${name}: no ${re} within ${timeoutMs} ms; output: ${(out + err).trim().slice(-400)}`));
          }, timeoutMs);
          const done = () => {
            clearTimeout(t);
            waiters.delete(check);
          };
          void exited.then((c) => {
            if (!waiters.has(check)) return;
            done();
            if (re.test(out + err)) resolve();
            else reject(new Error(`${name} exited (${c}): ${(out + err).trim().slice(-400)}`));
          });
          waiters.add(check);
          check();
        });
      },
      async stop(signal = 'SIGTERM') {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill(signal);
        // Generous: a gateway run with --cpu-prof writes its profile on the way out.
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      },
    };
    this.#procs.push(proc);
    return proc;
  }

  /** Registers an extra undo step (run in reverse order by close()). */
  defer(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }

  /** Stops every child, runs the undo steps, deletes the namespaces. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      openScopes.delete(this);
      await Promise.allSettled(this.#procs.reverse().map((p) => p.stop()));
      for (const fn of this.#cleanups.reverse()) {
        try {
          await fn();
        } catch {
          /* best effort */
        }
      }
      for (const ns of this.#netns) ns.delete();
    })();
    return this.#closing;
  }
}

function spawnPlain(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/**
 * Sets the sysctls a connection-rate run needs, inside one namespace. IPv6
 * is turned off unless `ipv6`; with it, links made afterwards (tap0) take
 * router advertisements (accept_ra 2: also if forwarding were on, RFC 4861
 * §6.3.4) and skip duplicate address detection (accept_dad 0: the guest is
 * alone on its link, and DAD would hold its SLAAC address tentative for a
 * second, RFC 4862 §5.4).
 */
export async function tuneNetns(scope: Scope, ns: Netns, o: { ipv6?: boolean } = {}): Promise<void> {
  const v6 = '/proc/sys/net/ipv6/conf';
  await scope.run(ns, 'sh', [
    '-c',
    'echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse; echo "1024 65000" > /proc/sys/net/ipv4/ip_local_port_range; ' +
      (o.ipv6
        ? `echo 2 > ${v6}/default/accept_ra; echo 0 > ${v6}/default/accept_dad; echo 0 > ${v6}/all/disable_ipv6; echo 0 > ${v6}/default/disable_ipv6`
        : `echo 1 > ${v6}/all/disable_ipv6; echo 1 > ${v6}/default/disable_ipv6`),
  ]);
}

export { cpuSeconds };

/** Measures the CPU share (% of one core) each pid used while `fn` ran. */
export async function withCpu<T>(pids: Record<string, number | null>, fn: () => Promise<T>): Promise<{ result: T; cpu: Record<string, number | null> }> {
  const before: Record<string, number | null> = {};
  for (const [k, pid] of Object.entries(pids)) before[k] = pid === null ? null : cpuSeconds(pid);
  const t0 = performance.now();
  const result = await fn();
  const secs = (performance.now() - t0) / 1000;
  const cpu: Record<string, number | null> = {};
  for (const [k, pid] of Object.entries(pids)) {
    const a = before[k];
    const b = pid === null ? null : cpuSeconds(pid);
    cpu[k] = a === null || a === undefined || b === null ? null : (100 * (b - a)) / secs;
  }
  return { result, cpu };
}

/** Retries `fn` until it resolves or `timeoutMs` passes. */
export async function retry<T>(fn: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`);
}
