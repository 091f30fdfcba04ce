/**
 * Theory of operation: where background switches live, and how a process
 * tells a live switch from the remains of a dead one.
 *
 *   RUNTIME/                      0700, owned by the user:
 *                                 config/runtime-dir.ts: $VMNET_RUNTIME_DIR, else
 *                                 $XDG_RUNTIME_DIR/vmnet, else $TMPDIR/vmnet-<uid>
 *   RUNTIME/switches/NAME/        0700, one per switch
 *     state.json                  written (atomically, 0600) once the switch serves:
 *                                 pid, network, gateway, created, socket paths
 *     ctl.sock                    control socket (daemon.ts): JSON requests
 *     daemon.log                  the background process's stdout and stderr
 *     ports/access-1.sock …       role sockets (server.ts)
 *
 * Nothing here is trusted. A directory that is a symlink, owned by someone
 * else or open to others is refused (or tightened, when it is ours). A
 * state.json is only a hint: a switch is live when its control socket
 * answers with the same name and pid; it is stale when its pid is gone or
 * belongs to another program (checked through /proc/PID/cmdline), and then
 * its directory is removed. A directory without state.json is a switch
 * still starting, or the remains of one that failed to: left alone for
 * {@link STARTING_GRACE_MS}, removed after.
 */
import { lstatSync, mkdirSync, chmodSync, readFileSync } from 'node:fs';
import { lstat, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VmnetError } from '../errors.js';
import { runtimeRoot } from '../config/runtime-dir.js';

/** How long a switch directory without state.json counts as "starting". */
export const STARTING_GRACE_MS = 15_000;

/** What state.json holds. */
export interface SwitchState {
  version: 1;
  name: string;
  pid: number;
  /** The gateway's network, or null for a private LAN. */
  subnet: string | null;
  gateway: boolean;
  isolated: boolean;
  mtu: number;
  pcap: string | null;
  /** ISO 8601 time the switch started serving. */
  created: string;
  /** The default role's socket (access VLAN 1). */
  socket: string;
  control: string;
}

/** Paths of one switch. */
export interface SwitchPaths {
  name: string;
  dir: string;
  state: string;
  control: string;
  log: string;
  ports: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/i;

/**
 * Checks a switch name: 1-32 letters, digits, `-` or `_`, starting with a
 * letter or digit (it becomes a directory name and part of socket paths).
 * @throws VmnetError E_USAGE with one line
 */
export function validateSwitchName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new VmnetError('E_USAGE', `bad switch name ${JSON.stringify(name)}: use 1-32 letters, digits, '-' or '_', starting with a letter or digit`);
  }
}

/**
 * The per-user runtime directory (not created).
 * @param env environment to read (default process.env)
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return runtimeRoot(env); // one resolution for VMs and switches (config/runtime-dir.ts)
}

/**
 * Creates `path` as a private (0700) directory of this user, or checks an
 * existing one: not a symlink, a directory, owned by us; group/other bits
 * are removed.
 * @throws VmnetError E_NO_FILE when it cannot be made safe
 */
export function ensurePrivateDirSync(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    const st = lstatSync(path);
    if (st.isSymbolicLink() || !st.isDirectory()) throw new Error('not a directory');
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw new Error(`owned by uid ${st.uid}, not ${uid}`);
    if ((st.mode & 0o077) !== 0) chmodSync(path, 0o700);
  } catch (e) {
    throw new VmnetError('E_NO_FILE', `cannot use ${path} as a private vmnet directory: ${(e as Error).message}`, { cause: e });
  }
}

/** Paths of switch `name` under runtime directory `rt`. */
export function switchPaths(name: string, rt: string = runtimeDir()): SwitchPaths {
  validateSwitchName(name);
  const dir = join(rt, 'switches', name);
  return { name, dir, state: join(dir, 'state.json'), control: join(dir, 'ctl.sock'), log: join(dir, 'daemon.log'), ports: join(dir, 'ports') };
}

/** Creates the runtime directory, `switches/` and the switch's own directory, all 0700. */
export function ensureSwitchDir(p: SwitchPaths): void {
  const switches = resolve(p.dir, '..');
  ensurePrivateDirSync(resolve(switches, '..'));
  ensurePrivateDirSync(switches);
  ensurePrivateDirSync(p.dir);
}

/** Names of the switch directories present (live, starting or stale). */
export async function listSwitchNames(rt: string = runtimeDir()): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(join(rt, 'switches'));
  } catch {
    return [];
  }
  return entries.filter((n) => NAME_RE.test(n)).sort();
}

/** Reads state.json; null when missing or not a valid state of switch `p.name`. */
export async function readState(p: SwitchPaths): Promise<SwitchState | null> {
  let text: string;
  try {
    const st = await lstat(p.state);
    if (!st.isFile() || st.size > 64 * 1024) return null;
    text = await readFile(p.state, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as Partial<SwitchState>;
    if (s.version !== 1 || s.name !== p.name || !Number.isInteger(s.pid) || (s.pid as number) <= 1) return null;
    if (typeof s.socket !== 'string' || typeof s.control !== 'string' || typeof s.created !== 'string') return null;
    return s as SwitchState;
  } catch {
    return null;
  }
}

/** Writes state.json atomically (temp file, fsync, rename), mode 0600. */
export async function writeState(p: SwitchPaths, state: SwitchState): Promise<void> {
  const tmp = `${p.state}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(state, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, p.state);
}

/** True while a process with this pid exists (EPERM counts: it exists). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when `pid` is alive and looks like the background process of switch
 * `name` (its command line has `switch serve NAME`). Where /proc cannot be
 * read the answer is no: a live pid alone may be a recycled one.
 */
export function pidIsSwitch(pid: number, name: string): boolean {
  if (!pidAlive(pid)) return false;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false; // cannot be checked (no /proc): not known to be the switch, so never signalled as one
  }
  const i = argv.indexOf('serve');
  return i > 0 && argv[i - 1] === 'switch' && argv[i + 1] === name;
}

/** Removes a switch directory and everything in it. */
export async function removeSwitchDir(p: SwitchPaths): Promise<void> {
  await rm(p.dir, { recursive: true, force: true });
}

/** Age of the switch directory in ms, or null when it does not exist. */
export async function switchDirAge(p: SwitchPaths): Promise<number | null> {
  try {
    const st = await lstat(p.dir);
    return Date.now() - st.mtimeMs;
  } catch {
    return null;
  }
}
