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
