/**
 * A throwaway Linux network namespace for tests that must be sure nothing
 * leaves the machine: only `lo` is up, there is no other interface and no
 * route out, so a connect() to anything but 127.0.0.0/8 fails with
 * ENETUNREACH. Needs root (`ip netns add`). Unix sockets are files, not
 * network objects, so a process inside can still serve a socket path that
 * processes outside connect to.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface Netns {
  readonly name: string;
  /** argv prefix that runs a command inside: `ip netns exec NAME`. */
  readonly execPrefix: readonly string[];
  /**
   * Starts `cmd args…` inside the namespace. `ip netns exec` execs the
   * command in place (no fork), so the child's pid is the command's pid.
   */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs a command inside and returns its stdout (throws on failure). */
  run(cmd: string, args: string[]): string;
  /** Deletes the namespace; idempotent, never throws. */
  delete(): void;
}

/** Throws a clear error unless running as root. */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} needs root (ip netns): run the test suite as root, as CI does`);
}

/** Names of the namespaces that exist now. */
export function listNetns(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** Creates `PREFIX-PID-RANDOM` with only loopback up. */
export function createNetns(prefix = 'vmnet-test'): Netns {
  requireRoot('createNetns');
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  let deleted = false;
  const del = (): void => {
    if (deleted) return;
    deleted = true;
    try {
      execFileSync('ip', ['netns', 'delete', name], { stdio: ['ignore', 'ignore', 'ignore'] });
    } catch {
      /* already gone */
    }
  };
  try {
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    del();
    throw e;
  }
  const execPrefix = ['ip', 'netns', 'exec', name] as const;
  return {
    name,
    execPrefix,
    spawn: (cmd, args, opts = {}) => spawn('ip', ['netns', 'exec', name, cmd, ...args], opts),
    run: (cmd, args) => execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    delete: del,
  };
}

// ---------------------------------------------------------------------------
// Added for the kernel-as-guest tests (tcp-loss, nat-outside): devices and
// probes inside namespaces. Async where a test's in-process gateway must keep
// serving while the command runs (execFileSync would block its event loop).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs `ip …` (async); throws with ip's stderr. */
export async function ipCmd(...args: string[]): Promise<string> {
  try {
    return (await execFileAsync('ip', args, { encoding: 'utf8' })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
  }
}

/** Runs `cmd args…` inside the namespace without blocking the event loop; resolves with stdout. */
export async function runInNetns(ns: Netns, cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    return (await execFileAsync('ip', ['netns', 'exec', ns.name, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`in ${ns.name}: ${cmd} ${args.join(' ')} failed: ${err.message.trim()}\nstdout: ${err.stdout ?? ''}\nstderr: ${err.stderr ?? ''}`);
  }
}

/** Creates a persistent TAP device `name` inside the namespace and sets it up (no address). */
export async function addTap(ns: Netns, name: string): Promise<void> {
  await ipCmd('-n', ns.name, 'tuntap', 'add', 'dev', name, 'mode', 'tap');
  await ipCmd('-n', ns.name, 'link', 'set', name, 'up');
}

/**
 * A veth pair between two namespaces, each end up with its address (CIDR,
 * e.g. 198.51.100.1/24). Deleting either namespace deletes the pair.
 */
export async function addVethPair(a: Netns, aName: string, aCidr: string, b: Netns, bName: string, bCidr: string): Promise<void> {
  await ipCmd('-n', a.name, 'link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  await ipCmd('-n', a.name, 'addr', 'add', aCidr, 'dev', aName);
  await ipCmd('-n', b.name, 'addr', 'add', bCidr, 'dev', bName);
  await ipCmd('-n', a.name, 'link', 'set', aName, 'up');
  await ipCmd('-n', b.name, 'link', 'set', bName, 'up');
}

/**
 * Whether `tc qdisc … netem` works on this kernel (sch_netem built in or
 * loadable): tried on a TAP in a scratch namespace. Returns the error text
 * when it does not.
 */
export async function netemAvailable(): Promise<{ ok: true } | { ok: false; why: string }> {
  const ns = createNetns('vmnet-netem-probe');
  try {
    await addTap(ns, 'probe0');
    await execFileAsync('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'add', 'dev', 'probe0', 'root', 'netem', 'loss', '1%', 'delay', '1ms'], { encoding: 'utf8' });
    return { ok: true };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, why: (err.stderr || err.message).trim() };
  } finally {
    ns.delete();
  }
}

/**
 * The namespace's TCP counters: /proc/net/snmp `Tcp:` and /proc/net/netstat
 * `TcpExt:` (read from inside, where /proc/net is the namespace's own), e.g.
 * RetransSegs, TCPLostRetransmit, TCPSackRecovery, TCPTimeouts, TCPOFOQueue.
 */
export async function netnsTcpCounters(ns: Netns): Promise<Record<string, number>> {
  const text = await runInNetns(ns, 'cat', ['/proc/net/snmp', '/proc/net/netstat']);
  const out: Record<string, number> = {};
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const h = lines[i]!.split(/\s+/);
    const v = lines[i + 1]!.split(/\s+/);
    if (h[0] !== v[0] || (h[0] !== 'Tcp:' && h[0] !== 'TcpExt:')) continue;
    for (let k = 1; k < h.length && k < v.length; k++) out[h[k]!] = Number(v[k]);
    i++;
  }
  return out;
}
