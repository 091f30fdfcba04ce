/**
 * Theory of operation: builds vmnet's test guest from the host's Debian
 * packages, without root, into the guest directory (cache.ts says where and
 * how it is swapped in atomically):
 *
 *   vmlinuz        Debian's cloud kernel (linux-image-cloud-amd64 resolved to
 *                  its versioned package, fetched by `apt-get download`,
 *                  unpacked by `dpkg-deb -x`)
 *   initramfs.gz   busybox-static as the whole userland, the virtio-net
 *                  modules and a few more (recipe.ts), guest/init and the
 *                  udhcpc hook; a newc cpio written in-process (cpio.ts),
 *                  gzip by node:zlib
 *   disk.raw       a FAT image SeaBIOS boots through syslinux, holding the
 *                  same kernel and initramfs (mkfs.vfat, syslinux, mcopy)
 *   disk.qcow2     the same disk converted by qemu-img
 *   manifest.json  what it was built from; written last: its presence marks
 *                  a complete guest
 *
 * Every tool is checked before the first step (tools.ts), so a missing one
 * costs nothing. A guest is up to date when its manifest's inputs key
 * (recipe, kernel package and version, busybox's bytes) matches the host's
 * now; `vmnet guest build` rebuilds otherwise, `--force` always. One
 * progress line per step goes to `onProgress`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { VmnetError } from '../errors.js';
import { guestDir, guestDirState, installBuild, makeBuildDir, prepareGuestParent, removeLeftovers, type GuestDirSource } from './cache.js';
import { newcArchive, type CpioEntry } from './cpio.js';
import { APPEND, ASSETS, ASSETS_DIR, EXTRA_MODULES, NET_MODULES, RECIPE_FORMAT, assetKey, vmnetVersion } from './recipe.js';
import { checkGuestPrerequisites, prerequisitesMessage, type KernelPackage } from './tools.js';

/** manifest.json of a built guest. */
export interface GuestManifest {
  format: number;
  vmnet: string;
  assetKey: string;
  /** Digest of everything the guest was built from (see the theory). */
  inputsKey: string;
  kernelPackage: string;
  kernelVersion: string;
  /** The kernel release (`uname -r` in the guest). */
  kernelRelease: string;
  busyboxSha256: string;
  /** The kernel command line the disk image boots with. */
  append: string;
  builtAt: string;
}

export interface BuildGuestOptions {
  /** Where to build (default: cache.ts guestDir()). */
  dir?: string;
  /** Rebuild even when up to date. */
  force?: boolean;
  /** Receives one line per step. */
  onProgress?: (line: string) => void;
  /** PATH for the tools, HOME / XDG_CACHE_HOME / VMNET_GUEST_DIR. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface BuildGuestResult {
  dir: string;
  /** False when the guest there was up to date and kept. */
  built: boolean;
  manifest: GuestManifest;
  elapsedMs: number;
}

/**
 * Reads a guest directory's manifest.
 * @returns it, or null when absent or unreadable (an incomplete or foreign directory)
 */
export function readManifest(dir: string): Partial<GuestManifest> | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as unknown;
    return m !== null && typeof m === 'object' ? (m as Partial<GuestManifest>) : null;
  } catch {
    return null;
  }
}

/** Runs one tool (its absolute path); its failure becomes E_GUEST_BUILD with its last words. */
function tool(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: { ...opts.env, LC_ALL: 'C' }, maxBuffer: 16 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      if (!err) return resolveRun(stdout);
      const tail = `${stderr}\n${stdout}`.trim().split('\n').filter((l) => l && !/unsandboxed/.test(l)).slice(-3).join(' | ');
      reject(new VmnetError('E_GUEST_BUILD', `building the test guest: ${basename(cmd)} ${args.join(' ')} failed: ${tail || err.message}`, { cause: err }));
    });
  });
}

/** Every `.ko` under a directory, by module name. */
async function findModules(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) found.set(e.name.slice(0, -3), join(d, e.name));
    }
  };
  await walk(root);
  return found;
}

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The initramfs: busybox and its applets, the modules, /init and its files. */
async function initramfs(busybox: string, modules: Map<string, string>, env: NodeJS.ProcessEnv): Promise<{ gz: Buffer; applets: number }> {
  const applets = (await tool(busybox, ['--list'], { env }))
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => /^[\w.[-]+$/.test(s) && s !== 'busybox')
    .sort();
  const entries: CpioEntry[] = ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'lib', 'lib/modules', 'var', 'var/www', 'root'].map((name) => ({ kind: 'dir' as const, name, mode: 0o755 }));
  entries.push({ kind: 'file', name: 'bin/busybox', mode: 0o755, data: await readFile(busybox) });
  for (const a of applets) entries.push({ kind: 'symlink', name: `bin/${a}`, target: 'busybox' });
  for (const m of [...NET_MODULES, ...EXTRA_MODULES]) entries.push({ kind: 'file', name: `lib/modules/${m}.ko`, mode: 0o644, data: await readFile(modules.get(m)!) });
  entries.push(
    { kind: 'file', name: 'init', mode: 0o755, data: await readFile(join(ASSETS_DIR, ASSETS.init)) },
    { kind: 'file', name: 'etc/udhcpc.script', mode: 0o755, data: await readFile(join(ASSETS_DIR, ASSETS.udhcpcScript)) },
    { kind: 'file', name: 'etc/passwd', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
    { kind: 'file', name: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\n') },
    { kind: 'file', name: 'etc/hosts', mode: 0o644, data: Buffer.from('127.0.0.1 localhost\n') },
  );
  return { gz: gzipSync(newcArchive(entries), { level: 9 }), applets: applets.length };
}

/** Why the guest cannot be built where it was asked for, in words the user can act on. */
function placeError(dir: string, e: unknown): VmnetError {
  if (e instanceof VmnetError) return e;
  const err = e as NodeJS.ErrnoException;
  const where = err.path ? dirname(err.path) : dir;
  if (err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS') {
    return new VmnetError('E_USAGE', `cannot build the test guest in ${dir}: ${where} is not writable for you (${err.code}); give a directory of yours with --dir or VMNET_GUEST_DIR`, { cause: e });
  }
  return new VmnetError('E_NO_FILE', `cannot build the test guest in ${dir}: ${err.message}`, { cause: e });
}

/**
 * What a guest built now would be built from (its manifest's inputsKey:
 * recipe, kernel package and version, busybox's bytes).
 * @param kernel the kernel package apt offers
 * @param busybox the static busybox
 */
export async function guestInputs(kernel: KernelPackage, busybox: string): Promise<{ inputsKey: string; busyboxSha256: string; assetKey: string }> {
  const busyboxSha256 = sha256(await readFile(busybox));
  const key = assetKey();
  return { inputsKey: sha256(`${key}\n${kernel.name} ${kernel.version}\n${busyboxSha256}\n`), busyboxSha256, assetKey: key };
}

/**
 * Builds the test guest, or keeps the one there when it is up to date.
 * @returns where it is, whether it was built, and its manifest
 * @throws VmnetError E_NO_TOOL (naming every missing package) and E_USAGE (a directory that is not a guest or not writable) before anything starts; E_GUEST_BUILD or E_NO_FILE when a step fails (nothing is left behind)
 */
export async function buildGuest(o: BuildGuestOptions = {}): Promise<BuildGuestResult> {
  const env = o.env ?? process.env;
  const say = o.onProgress ?? (() => undefined);
  const started = Date.now();
  const where: { dir: string; source: GuestDirSource } = o.dir ? { dir: resolve(o.dir), source: 'VMNET_GUEST_DIR' } : guestDir(env);
  const pre = await checkGuestPrerequisites({ env });
  const problem = prerequisitesMessage(pre, 'cannot build the test guest');
  if (problem) throw new VmnetError('E_NO_TOOL', problem);
  const kernel = pre.kernel as KernelPackage;
  const busybox = pre.busybox as string;
  const bin = pre.tools;
  const { inputsKey, busyboxSha256, assetKey: keyOfAssets } = await guestInputs(kernel, busybox);
  const state = guestDirState(where.dir);
  if (state === 'not-a-directory') throw new VmnetError('E_USAGE', `${where.dir} exists and is not a directory; give a directory for the test guest`);
  if (state === 'foreign') throw new VmnetError('E_USAGE', `${where.dir} is not empty and holds no test guest: refusing to build over it; give an empty or new directory`);
  const existing = state === 'guest' ? readManifest(where.dir) : null;
  if (!o.force && existing?.inputsKey === inputsKey) {
    say(`vmnet guest: up to date in ${where.dir} (${kernel.name} ${kernel.version})`);
    return { dir: where.dir, built: false, manifest: existing as GuestManifest, elapsedMs: Date.now() - started };
  }
  const why = o.force ? 'rebuilding (--force)' : existing ? `rebuilding (built from ${existing.kernelPackage ?? '?'} ${existing.kernelVersion ?? ''}, another busybox or recipe)` : `building it (first use: a ${kernel.size ? mb(kernel.size) : 'kernel'} download, then a few seconds)`;
  let target: string;
  let tmp: string;
  try {
    target = await prepareGuestParent(where.dir, where.source, env);
    await removeLeftovers(target);
    tmp = await makeBuildDir(target);
  } catch (e) {
    throw placeError(where.dir, e);
  }
  say(`vmnet guest: ${why} in ${where.dir}`);
  try {
    // The cache is private (0700, cache.ts); a directory named by the user stays readable as before.
    if (where.source !== 'cache') await chmod(tmp, 0o755);
    const work = join(tmp, '.work');
    await mkdir(join(work, 'deb'), { recursive: true });
    say(`vmnet guest: [1/5] downloading ${kernel.name} ${kernel.version}${kernel.size ? ` (${mb(kernel.size)})` : ''} with apt-get download`);
    await tool(bin['apt-get']!, ['download', '-q', `${kernel.name}=${kernel.version}`], { cwd: join(work, 'deb'), env });
    const deb = (await readdir(join(work, 'deb'))).find((f) => f.startsWith(`${kernel.name}_`) && f.endsWith('.deb'));
    if (!deb) throw new VmnetError('E_GUEST_BUILD', `building the test guest: apt-get download ${kernel.name} left no .deb`);

    say(`vmnet guest: [2/5] unpacking the kernel and its modules (dpkg-deb -x)`);
    const release = kernel.name.slice('linux-image-'.length);
    await tool(bin['dpkg-deb']!, ['-x', join(work, 'deb', deb), join(work, 'kernel')], { env });
    await copyFile(join(work, 'kernel', 'boot', `vmlinuz-${release}`), join(tmp, 'vmlinuz'));
    const modules = await findModules(join(work, 'kernel', 'lib', 'modules', release));
    const absent = [...NET_MODULES, ...EXTRA_MODULES].filter((m) => !modules.has(m));
    if (absent.length) throw new VmnetError('E_GUEST_BUILD', `building the test guest: ${kernel.name} has no ${absent.map((m) => `${m}.ko`).join(', ')}`);

    const { gz, applets } = await initramfs(busybox, modules, env);
    await writeFile(join(tmp, 'initramfs.gz'), gz);
    say(`vmnet guest: [3/5] initramfs: busybox (${applets} applets), ${NET_MODULES.length + EXTRA_MODULES.length} modules, /init (${mb(gz.length)})`);

    say('vmnet guest: [4/5] bootable disk: FAT image with syslinux, the kernel and the initramfs (mkfs.vfat, syslinux, mcopy)');
    const raw = join(tmp, 'disk.raw');
    await writeFile(raw, '');
    await truncate(raw, 48 << 20);
    await tool(bin['mkfs.vfat']!, ['-n', 'VMNET', raw], { env });
    await tool(bin['syslinux']!, ['--install', raw], { env });
    await writeFile(join(work, 'syslinux.cfg'), `DEFAULT vmnet\nPROMPT 0\nTIMEOUT 0\nLABEL vmnet\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND ${APPEND}\n`);
    for (const [src, name] of [[join(tmp, 'vmlinuz'), 'vmlinuz'], [join(tmp, 'initramfs.gz'), 'initrd.gz'], [join(work, 'syslinux.cfg'), 'syslinux.cfg']] as const) {
      await tool(bin['mcopy']!, ['-i', raw, src, `::${name}`], { env });
    }

    say('vmnet guest: [5/5] qcow2 copy of the disk (qemu-img convert)');
    await tool(bin['qemu-img']!, ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, join(tmp, 'disk.qcow2')], { env });
    await rm(work, { recursive: true, force: true });

    const manifest: GuestManifest = {
      format: RECIPE_FORMAT,
      vmnet: vmnetVersion(),
      assetKey: keyOfAssets,
      inputsKey,
      kernelPackage: kernel.name,
      kernelVersion: kernel.version,
      kernelRelease: release,
      busyboxSha256,
      append: APPEND,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    const outcome = await installBuild(tmp, target, state === 'guest');
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (outcome === 'lost') {
      say(`vmnet guest: another build finished first; using it (${secs} s)`);
      return { dir: where.dir, built: false, manifest: (readManifest(target) as GuestManifest | null) ?? manifest, elapsedMs: Date.now() - started };
    }
    say(`vmnet guest: done in ${secs} s: ${where.dir}`);
    return { dir: where.dir, built: true, manifest, elapsedMs: Date.now() - started };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw placeError(where.dir, e); // a full disk, a directory gone under us: one line, not an internal error
  }
}
