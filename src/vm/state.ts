/**
 * Theory of operation: where running VMs live on the host, and how a dead
 * one is told from a live one.
 *
 * Root: config/runtime-dir.ts (`$VMNET_RUNTIME_DIR`, else
 * `$XDG_RUNTIME_DIR/vmnet`, else `<tmpdir>/vmnet-<uid>`), shared with the
 * switches. The root is created 0700 and then checked with lstat: a
 * directory, not a symlink, owned by this user, no group/other bits.
 * Anything else (another user planted it) is refused, never used.
 *
 * One directory per VM, `<root>/<NAME>`, 0700. It holds the sockets
 * (gateway, QMP, serial, console, control), the serial log and state.json.
 * A claim is atomic and names its owner from the first moment: the
 * launcher makes a private `.claim-*` directory, writes state.json there
 * (its pid and that process's start time from /proc/PID/stat, so a recycled
 * pid does not pass for the owner) and renames the directory to `<NAME>`.
 * The rename fails when `<NAME>` exists with content, so two launchers
 * cannot both get a name, and nobody ever sees a VM directory without an
 * owner (however long the start takes: switches may take seconds).
 *
 * Stale directories. A directory whose owner is gone (pid dead, or pid
 * reused by another process) is stale: its contents are never trusted. The
 * cleaner first checks that the directory is still the one it judged (same
 * inode), renames it aside (atomic, so two cleaners never collide), then
 * judges what it moved once more: a live owner's directory (the name was
 * re-claimed in between) goes back. Only then does it kill an orphaned QEMU,
 * when /proc/PID/cmdline shows it was started on this very directory, and
 * remove the directory. A directory without state.json (made by an older
 * vmnet, or by hand) counts as stale once its mtime is a few seconds old;
 * `.claim-*` and `.stale-*` leftovers of a dead owner are removed the same way.
 */
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile, chmod } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VmnetError } from '../errors.js';
import { runtimeRoot } from '../config/runtime-dir.js';
import { escapeOption } from '../qemu/args.js';

export { runtimeRoot };

/** state.json: what `vmnet ls` and the stale cleaner may read about a VM. */
export interface VmState {
  version: 1;
  name: string;
  /** The process serving the VM: foreground `vmnet run`, the detached supervisor, or a library user. */
  pid: number;
  /** That process's start time (/proc/PID/stat field 22), null where /proc is missing. */
  pidStart: string | null;
  qemuPid: number | null;
  state: 'starting' | 'running';
  accel: string;
  /** ms since the epoch. */
  startedAt: number;
  image: string | null;
  kernel: string | null;
  macs: string[];
}

/** File names inside a VM directory. */
export const FILES = {
  state: 'state.json',
  qmp: 'qmp.sock',
  serial: 'serial.sock',
  console: 'console.sock',
  control: 'control.sock',
  serialLog: 'serial.log',
  log: 'vmnet.log',
  knownHosts: 'known_hosts',
  net: (i: number) => `net${i}.sock`,
} as const;

/** Longest VM name: keeps every socket path well under the 108-byte sun_path limit. */
export const MAX_NAME = 40;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Names used by other parts of the runtime root (switches live in `switches/`). */
const RESERVED = new Set(['switches', 'vms', 'run', 'tmp', 'labs']);
/** A directory without state.json younger than this may be a claim being prepared. */
const UNBORN_GRACE_MS = 5000;
/** Leftovers of a claim or a cleanup in the root. */
const LEFTOVER_RE = /^\.(claim|stale)-/;

const uid = (): number => process.getuid?.() ?? 0;

/**
 * Creates (if needed) and checks the runtime root.
 * @returns its path
 * @throws VmnetError E_USAGE when it exists but is not a private directory of this user
 */
export async function ensureRuntimeRoot(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const root = runtimeRoot(env);
  try {
    await mkdir(root, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new VmnetError('E_USAGE', `cannot create ${root}: its parent does not exist (is XDG_RUNTIME_DIR right?)`);
    if (code !== 'EEXIST') throw new VmnetError('E_USAGE', `cannot create the runtime directory ${root}: ${(e as Error).message}`);
  }
  await checkPrivateDir(root);
  return root;
}

async function checkPrivateDir(dir: string): Promise<void> {
  const st = await lstat(dir);
  if (!st.isDirectory() || st.isSymbolicLink()) throw new VmnetError('E_USAGE', `${dir} is not a directory; remove it or set XDG_RUNTIME_DIR`);
  if (st.uid !== uid()) throw new VmnetError('E_USAGE', `${dir} belongs to another user (uid ${st.uid}); refusing to use it (set XDG_RUNTIME_DIR to a private directory)`);
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/**
 * Checks a VM name given by the user.
 * @throws VmnetError E_USAGE
 */
export function validateName(name: string): string {
  if (!NAME_RE.test(name) || name.length > MAX_NAME) {
    throw new VmnetError('E_USAGE', `bad VM name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most ${MAX_NAME} characters`);
  }
  if (RESERVED.has(name)) throw new VmnetError('E_USAGE', `VM name ${name} is reserved; pick another`);
  return name;
}

/** A name derived from a file name: extension dropped, other characters replaced. */
export function nameFromPath(path: string): string {
  const base = basename(path).replace(/\.(qcow2|raw|img|iso|vmdk|vdi)$/i, '');
  let n = base.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, MAX_NAME - 4);
  if (!n || RESERVED.has(n)) n = `vm-${n}`.replace(/-$/, '');
  return n;
}

/** Fields of /proc/PID/stat after comm (field 3 onwards), or null. */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** /proc/PID/stat field 22 (start time in clock ticks since boot), or null. */
export function processStartTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/**
 * True when pid runs and (where known) is the process that started at
 * `start`. A zombie (killed, not yet reaped: /proc/PID/stat state Z) is
 * not alive. Where /proc cannot be read, a live pid counts as alive: the
 * safe answer for "may its directory be removed?".
 */
export function processAlive(pid: number, start: string | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const f = statFields(pid);
  if (f === null) return true;
  if (f[0] === 'Z' || f[0] === 'X') return false;
  return start === null || f[19] === start;
}

/** Reads state.json; null when missing or unreadable. */
export async function readState(dir: string): Promise<VmState | null> {
  try {
    const s = JSON.parse(await readFile(join(dir, FILES.state), 'utf8')) as VmState;
    if (s && s.version === 1 && typeof s.pid === 'number' && typeof s.name === 'string') return s;
    return null;
  } catch {
    return null;
  }
}

/** Writes state.json atomically (temp file + rename), mode 0600. */
export async function writeState(dir: string, state: VmState): Promise<void> {
  const tmp = join(dir, `.state.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, join(dir, FILES.state));
}

/** One VM directory as found on disk. */
export interface VmEntry {
  name: string;
  dir: string;
  state: VmState | null;
  /** The owner process is alive. */
  alive: boolean;
  /** The directory's inode when judged (a later cleanup checks it is still the same directory). */
  ino: number;
}

/** What a stale cleanup removed. */
export interface CleanedVm {
  name: string;
  /** The dead owner (null: the directory named none). */
  ownerPid: number | null;
  /** The QEMU the directory named, and whether it was still running (and was killed). */
  qemuPid: number | null;
  qemuKilled: boolean;
}

/** Judges a directory: its state and whether its owner lives. */
async function judge(dir: string): Promise<{ state: VmState | null; alive: boolean; ino: number } | null> {
  let st;
  try {
    st = await lstat(dir);
    if (!st.isDirectory()) return null;
  } catch {
    return null;
  }
  const state = await readState(dir);
  if (state) return { state, alive: processAlive(state.pid, state.pidStart), ino: st.ino };
  // No owner: alive only while young (a claim being prepared, or a hand-made directory just created).
  return { state: null, alive: Date.now() - st.mtimeMs < UNBORN_GRACE_MS, ino: st.ino };
}

/** Inspects one VM directory. */
export async function inspectVmDir(root: string, name: string): Promise<VmEntry | null> {
  const dir = join(root, name);
  const j = await judge(dir);
  return j ? { name, dir, ...j } : null;
}

/** The runtime root's entries, sorted; none when it cannot be read. */
async function rootEntries(root: string): Promise<string[]> {
  try {
    return (await readdir(root)).sort();
  } catch {
    return [];
  }
}

/**
 * Every VM directory under the root, stale ones cleaned (and left out).
 * @param onCleaned told about each stale VM removed on the way
 */
export async function scanVms(root: string, onCleaned?: (c: CleanedVm) => void): Promise<VmEntry[]> {
  const out: VmEntry[] = [];
  for (const name of await rootEntries(root)) {
    if (LEFTOVER_RE.test(name)) {
      const j = await judge(join(root, name));
      if (j && !j.alive) await rm(join(root, name), { recursive: true, force: true }).catch(() => undefined);
      continue;
    }
    if (name.startsWith('.') || !NAME_RE.test(name) || RESERVED.has(name)) continue;
    const e = await inspectVmDir(root, name);
    if (!e) continue;
    if (e.alive) out.push(e);
    else {
      const c = await cleanStale(root, e);
      if (c) onCleaned?.(c);
    }
  }
  return out;
}

/**
 * Names of the VMs whose owner lives, read without cleaning anything (shell
 * completion runs on every Tab and must not change state).
 */
export async function liveVmNames(root: string): Promise<string[]> {
  const live: string[] = [];
  for (const name of await rootEntries(root)) {
    if (!NAME_RE.test(name) || RESERVED.has(name)) continue;
    if ((await inspectVmDir(root, name))?.alive) live.push(name);
  }
  return live;
}

/**
 * Removes a dead VM's directory, re-checking that it is the directory that
 * was judged and that its owner is still dead once it has been moved aside;
 * kills its QEMU if it outlived its owner (only a process whose command
 * line names this directory).
 * @returns what was cleaned, or null when nothing was (gone, cleaned by
 *   someone else, or no longer stale)
 */
export async function cleanStale(root: string, e: VmEntry): Promise<CleanedVm | null> {
  const now = await judge(e.dir);
  if (!now || now.ino !== e.ino || now.alive) return null;
  const trash = join(root, `.stale-${e.name}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(e.dir, trash);
  } catch {
    return null; // another cleaner got there first
  }
  const moved = await judge(trash);
  if (!moved || moved.ino !== e.ino || moved.alive) {
    // Not what was judged (re-claimed in between): put it back.
    await rename(trash, e.dir).catch(() => undefined);
    return null;
  }
  const q = moved.state?.qemuPid ?? null;
  let killed = false;
  if (q && processAlive(q, null)) {
    try {
      // QEMU's command line holds the socket in its option syntax: `path=<dir with ',' doubled>/qmp.sock,`.
      const argv = readFileSync(`/proc/${q}/cmdline`, 'utf8').split('\0');
      const needle = `path=${escapeOption(join(e.dir, FILES.qmp))},`;
      if (argv.some((a) => a.includes(needle))) {
        process.kill(q, 'SIGKILL');
        killed = true;
      }
    } catch {
      /* not ours, or gone */
    }
  }
  await rm(trash, { recursive: true, force: true }).catch(() => undefined);
  return { name: e.name, ownerPid: moved.state?.pid ?? null, qemuPid: q, qemuKilled: killed };
}

/**
 * Claims a VM directory: `<root>/<name>`, or for a derived name the first
 * free of name, name-2, name-3, … A stale directory of the same name is
 * cleaned and the name reused. The directory appears with state.json
 * already in it (see the theory of operation).
 * @param explicit true when the user chose the name: a live VM of that name is an error
 * @param owner the state to write for a name (this process as the owner)
 * @returns the name and the directory
 * @throws VmnetError E_NAME_IN_USE
 */
export async function claimVmDir(root: string, base: string, explicit: boolean, owner: (name: string) => VmState): Promise<{ name: string; dir: string }> {
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base.slice(0, MAX_NAME - 1 - String(i).length)}-${i}`;
    const dir = join(root, name);
    for (let attempt = 0; attempt < 3; attempt++) {
      const tmp = await mkdtemp(join(root, '.claim-'));
      try {
        await writeState(tmp, owner(name));
        // rename() replaces an empty directory: never claim over an existing one.
        if (await lstat(dir).then(() => true, () => false)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
        await rename(tmp, dir);
        await checkPrivateDir(dir);
        return { name, dir };
      } catch (e) {
        await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY' && code !== 'ENOTDIR') throw e;
      }
      const entry = await inspectVmDir(root, name);
      if (entry && !entry.alive) {
        await cleanStale(root, entry);
        continue; // retry the same name
      }
      if (!entry) continue; // gone meanwhile
      break;
    }
    if (explicit) throw new VmnetError('E_NAME_IN_USE', `a VM named ${name} is already running; pick another --name or stop it (vmnet stop ${name})`);
  }
  throw new VmnetError('E_NAME_IN_USE', `no free VM name derived from ${base}; pass --name`);
}

/**
 * Picks the name a launch would claim, without creating anything (dry runs).
 */
export async function peekName(root: string, base: string, explicit: boolean): Promise<string> {
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base.slice(0, MAX_NAME - 1 - String(i).length)}-${i}`;
    const e = await inspectVmDir(root, name);
    if (!e || !e.alive) return name;
    if (explicit) throw new VmnetError('E_NAME_IN_USE', `a VM named ${name} is already running; pick another --name or stop it (vmnet stop ${name})`);
  }
  throw new VmnetError('E_NAME_IN_USE', `no free VM name derived from ${base}; pass --name`);
}
