/**
 * Theory of operation: what the host needs before the test guest can be
 * built (guest/build.ts) or booted (`vmnet demo`), checked all at once so
 * that one message names every missing piece with the Debian package that
 * provides it, before anything is downloaded or half-built.
 *
 * The guest is built from Debian packages without root: apt-get downloads
 * the cloud kernel's .deb into a directory of the user (`apt-get download`
 * needs no root, only the package lists that `apt-get update` writes, which
 * are world-readable), dpkg-deb unpacks it, busybox-static is the whole
 * userland (it must be statically linked: the initramfs has no libc, and
 * Debian's `busybox` package is dynamic), mkfs.vfat + syslinux + mcopy make
 * a disk SeaBIOS boots, qemu-img converts it to qcow2. The initramfs itself
 * is written in-process (cpio.ts, node:zlib), so neither cpio nor gzip is
 * needed. Debian's cloud kernel exists for amd64 only: other architectures
 * are told so.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { delimiter } from 'node:path';
import { promisify } from 'node:util';
import { findOnPath, findQemu, qemuForHost } from '../qemu/binary.js';
import { isVmnetError } from '../errors.js';

const run = promisify(execFile);

/** A command the guest build runs, and the Debian package that has it. */
export interface ToolNeed {
  tool: string;
  pkg: string;
}

/** The guest build's commands (busybox and the apt lists are checked apart). */
export const GUEST_TOOLS: readonly ToolNeed[] = [
  { tool: 'apt-get', pkg: 'apt' },
  { tool: 'apt-cache', pkg: 'apt' },
  { tool: 'dpkg-deb', pkg: 'dpkg' },
  { tool: 'mkfs.vfat', pkg: 'dosfstools' },
  { tool: 'syslinux', pkg: 'syslinux' },
  { tool: 'mcopy', pkg: 'mtools' },
  { tool: 'qemu-img', pkg: 'qemu-utils' },
];

/** The meta-package naming Debian's current cloud kernel. */
export const KERNEL_META = 'linux-image-cloud-amd64';

/**
 * Where Debian keeps system tools (mkfs.vfat is in /usr/sbin), which a
 * normal user's PATH does not name (/etc/profile gives them
 * /usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games).
 */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * Finds a tool the guest build runs: on PATH, else in the sbin directories.
 * @returns its absolute path, or null
 */
export function findTool(tool: string, env: NodeJS.ProcessEnv = process.env): string | null {
  return findOnPath(tool, env) ?? findOnPath(tool, { PATH: SBIN.join(delimiter) });
}

/** Places busybox-static installs to (usrmerge makes them one). */
const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox'];

/**
 * Tells whether an ELF executable is statically linked: it has no PT_INTERP
 * program header (ELF specification, "Program Header"; 32- and 64-bit, either
 * byte order). Not an ELF file: false.
 * @param head the file's first bytes (its program headers included; 4 KiB is plenty)
 */
export function isStaticElf(head: Uint8Array): boolean {
  if (head.length < 52 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return false;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = is64 ? Number(v.getBigUint64(32, le)) : v.getUint32(28, le);
  const phentsize = v.getUint16(is64 ? 54 : 42, le);
  const phnum = v.getUint16(is64 ? 56 : 44, le);
  if (phentsize < 4 || phoff + phentsize * phnum > head.length) return false;
  for (let i = 0; i < phnum; i++) {
    if (v.getUint32(phoff + i * phentsize, le) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

function readHead(path: string): Uint8Array | null {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(4096);
      return b.subarray(0, readSync(fd, b, 0, b.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/**
 * A statically linked busybox with the applets the guest uses.
 * @param places where busybox-static installs it, looked at before PATH
 * @returns its path, or why there is none
 */
export async function findStaticBusybox(env: NodeJS.ProcessEnv = process.env, places: readonly string[] = BUSYBOX_PATHS): Promise<{ path: string } | { problem: string }> {
  const candidates = [...places, findOnPath('busybox', env)].filter((p): p is string => p !== null);
  let dynamic: string | null = null;
  for (const p of candidates) {
    const head = readHead(p);
    if (!head) continue;
    if (!isStaticElf(head)) {
      dynamic ??= p;
      continue;
    }
    try {
      const { stdout } = await run(p, ['--list'], { timeout: 10_000 });
      if (stdout.split('\n').includes('udhcpc')) return { path: p };
    } catch {
      /* not runnable: next */
    }
  }
  return { problem: dynamic ? `${dynamic} is dynamically linked (the guest has no libc)` : 'no busybox' };
}

/** What `apt-cache` says about the kernel to download. */
export interface KernelPackage {
  /** e.g. linux-image-6.1.0-57-cloud-amd64 */
  name: string;
  /** The package version, e.g. 6.1.192-3 */
  version: string;
  /** Download size in bytes (0 when apt does not say). */
  size: number;
}

/**
 * Resolves the cloud kernel meta-package to the versioned kernel package
 * through the apt lists (no network).
 * @returns the package, or null when the lists do not know it (apt-get update never ran)
 */
export async function resolveKernelPackage(env: NodeJS.ProcessEnv = process.env): Promise<KernelPackage | null> {
  const aptEnv = { ...env, LC_ALL: 'C' };
  let name: string | undefined;
  try {
    const { stdout } = await run('apt-cache', ['depends', KERNEL_META], { env: aptEnv, timeout: 60_000 });
    name = /Depends: (linux-image-\d\S*)/.exec(stdout)?.[1];
  } catch {
    return null;
  }
  if (!name) return null;
  try {
    const { stdout } = await run('apt-cache', ['show', '--no-all-versions', name], { env: aptEnv, timeout: 60_000 });
    const version = /^Version: (\S+)/m.exec(stdout)?.[1];
    if (!version) return null;
    return { name, version, size: Number(/^Size: (\d+)/m.exec(stdout)?.[1] ?? 0) };
  } catch {
    return null;
  }
}

/**
 * Which distribution this is (os-release(5)).
 * @returns its ID and PRETTY_NAME, or null when the file is not there
 */
export function readOsRelease(path = '/etc/os-release'): { id: string; pretty: string } | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const field = (k: string) => new RegExp(`^${k}=(?:"([^"]*)"|(\\S*))`, 'm').exec(text)?.slice(1).find((v) => v !== undefined);
  const id = field('ID') ?? 'linux';
  return { id, pretty: field('PRETTY_NAME') ?? id };
}

/** The result of a prerequisites check. */
export interface Prerequisites {
  /** Missing commands with their packages, QEMU included when asked for. */
  missing: ToolNeed[];
  /** The apt lists do not know the kernel (apt-get update never ran). */
  aptListsMissing: boolean;
  /** One-line problems no package install fixes (architecture, no apt at all). */
  problems: string[];
  /** Each GUEST_TOOLS command found, by name: its absolute path. */
  tools: Record<string, string>;
  /** The static busybox, when there is one. */
  busybox: string | null;
  kernel: KernelPackage | null;
}

/**
 * Checks everything the guest build needs, and QEMU when asked.
 * @param opts.qemu check the QEMU binary too (true: the host arch's default; a string: that binary)
 * @param opts.osRelease the os-release file saying which distribution this is (default /etc/os-release)
 */
export async function checkGuestPrerequisites(opts: { qemu?: string | true; env?: NodeJS.ProcessEnv; osRelease?: string } = {}): Promise<Prerequisites> {
  const env = opts.env ?? process.env;
  const missing: ToolNeed[] = [];
  const problems: string[] = [];
  if (opts.qemu !== undefined) {
    const named = opts.qemu === true ? undefined : opts.qemu;
    try {
      findQemu(named, env);
    } catch (e) {
      if (!isVmnetError(e)) throw e;
      const host = qemuForHost();
      // A binary the user named is theirs to fix; the default one is a package.
      if (named === undefined || named === host.name) missing.push({ tool: host.name, pkg: host.pkg });
      else problems.push(e.message);
    }
  }
  if (process.arch !== 'x64') problems.push(`the test guest is built from Debian's amd64 cloud kernel and this host is ${process.arch}: build it on an amd64 host and set VMNET_GUEST_DIR to its directory`);
  const tools: Record<string, string> = {};
  for (const t of GUEST_TOOLS) {
    const path = findTool(t.tool, env);
    if (path) tools[t.tool] = path;
  }
  const noApt = GUEST_TOOLS.filter((t) => t.pkg === 'apt' || t.pkg === 'dpkg').some((t) => !tools[t.tool]);
  if (noApt) problems.push('this host has no apt-get, apt-cache or dpkg-deb: the test guest is built from Debian packages; build it on Debian or Ubuntu and set VMNET_GUEST_DIR to its directory');
  for (const t of GUEST_TOOLS) if (t.pkg !== 'apt' && t.pkg !== 'dpkg' && !tools[t.tool]) missing.push(t);
  const bb = await findStaticBusybox(env);
  if ('problem' in bb) missing.push({ tool: `a static busybox (${bb.problem})`, pkg: 'busybox-static' });
  const kernel = noApt ? null : await resolveKernelPackage(env);
  // On Debian an unknown kernel means lists never fetched; elsewhere (Ubuntu has no such package) no update helps.
  const distro = readOsRelease(opts.osRelease);
  const notDebian = !noApt && kernel === null && distro !== null && distro.id !== 'debian';
  if (notDebian) problems.push(`the test guest is built from Debian's ${KERNEL_META}, which ${distro.pretty} does not have: build it on Debian 12 (vmnet guest build --dir DIR) and set VMNET_GUEST_DIR to a copy of DIR`);
  return { missing, aptListsMissing: !noApt && kernel === null && !notDebian, problems, tools, busybox: 'path' in bb ? bb.path : null, kernel };
}

/**
 * The one message naming everything missing and the command that installs
 * it, or null when nothing is missing.
 * @param what what cannot be done, e.g. "cannot build the test guest"
 * @param asRoot whether the user is root (no sudo in the command shown)
 */
export function prerequisitesMessage(p: Prerequisites, what: string, asRoot = process.getuid?.() === 0): string | null {
  if (p.missing.length === 0 && p.problems.length === 0 && !p.aptListsMissing) return null;
  const sudo = asRoot ? '' : 'sudo ';
  const parts: string[] = [];
  if (p.missing.length) parts.push(`missing ${p.missing.map((m) => `${m.tool} (${m.pkg})`).join(', ')}`);
  if (p.aptListsMissing) parts.push(`the apt package lists do not know ${KERNEL_META} (apt-get update has not run; apt-get download itself needs no root)`);
  const cmds: string[] = [];
  if (p.aptListsMissing) cmds.push(`${sudo}apt-get update`);
  if (p.missing.length) cmds.push(`${sudo}apt-get install ${[...new Set(p.missing.map((m) => m.pkg))].join(' ')}`);
  if (cmds.length) parts.push(`run: ${cmds.join(' && ')}`);
  parts.push(...p.problems);
  return `${what}: ${parts.join('; ')}`;
}
