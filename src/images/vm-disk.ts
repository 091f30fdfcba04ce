/**
 * Theory of operation: the disk a VM run from an image URL keeps. A cached
 * image is never written: each VM name gets a qcow2 overlay backed by it,
 * `$XDG_DATA_HOME/vmnet/vms/NAME/disk.qcow2` (directories 0700), with
 * `image.json` saying where it came from (URL, SHA-256, base format). It is
 * kept across runs of that name until `vmnet rm NAME`.
 *
 * Trust. QEMU is told `format=qcow2` for the overlay and the overlay names
 * its base's format (`-F`), so QEMU probes neither. The overlay's header is
 * vmnet's own writing (the guest writes only into its clusters), but it is
 * still read back on every run and must name exactly the cached base
 * expected (`sha256-<hex>` in the image cache) with the expected format,
 * and no data file: an overlay edited or replaced by hand is refused, not
 * trusted. The base is checked the way any image is (resolveImageFormat:
 * a probed qcow2 base naming a file of its own is refused unless the user
 * vouches with --format qcow2), by the caller, on every run.
 * {@link ownOverlay} applies the same rule to a path given as a local
 * image, so `vmnet run ~/.local/share/vmnet/vms/web/disk.qcow2` is not
 * refused by vmnet's own probe rule.
 *
 * Size: a new overlay has the base's virtual size, or `--disk-size` when
 * larger; `--disk-size` on a kept overlay grows it (qemu-img resize) and
 * never shrinks it: shrinking would cut off whatever the guest keeps at
 * the end of its disk.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VmnetError } from '../errors.js';
import { cacheRoot, dataRoot } from '../config/user-dirs.js';
import { parseQcow2Header, type ImageFormat, type Qcow2Info } from '../qemu/image.js';
import { ensurePrivateDirSync } from '../switch/runtime.js';
import { createOverlay, growImage } from './qemu-img.js';
import { formatBytes } from './size.js';
import { formatDigest } from './source.js';

/** image.json: where a kept disk came from. */
export interface DiskMeta {
  version: 1;
  url: string;
  /** SHA-256 of the bytes downloaded: the base is `sha256-<this>` in the image cache. */
  sha256: string;
  baseFormat: ImageFormat;
  /** ms since the epoch. */
  createdAt: number;
}

/** The cached base a disk is made over. */
export interface DiskBase {
  url: string;
  path: string;
  sha256: string;
  format: ImageFormat;
}

const DISK = 'disk.qcow2';
const META = 'image.json';
const BLOB_RE = /^sha256-([0-9a-f]{64})$/;

/** The directory of VM `name`'s kept disk (not created). */
export function vmDiskDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(dataRoot(env), 'vms', name);
}

/** The kept disk of VM `name` (may not exist). */
export function vmDiskPath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(vmDiskDir(name, env), DISK);
}

/** What VM `name`'s kept disk was made from, or null when it has none. */
export async function readDiskMeta(name: string, env: NodeJS.ProcessEnv = process.env): Promise<DiskMeta | null> {
  try {
    const m = JSON.parse(await readFile(join(vmDiskDir(name, env), META), 'utf8')) as DiskMeta;
    return m?.version === 1 && typeof m.sha256 === 'string' && typeof m.url === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** The first cluster of a qcow2 file, parsed; null when not qcow2. */
async function readHeader(path: string): Promise<Qcow2Info | null> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(2 ** 21);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return parseQcow2Header(b.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/**
 * Checks an overlay vmnet made: qcow2, well-formed, no data file, backed by
 * an image of vmnet's cache with its format stated.
 * @returns the base's SHA-256, path and format, its virtual size; or a reason it is not one
 */
async function checkOverlay(path: string, env: NodeJS.ProcessEnv): Promise<{ sha256: string; base: string; baseFormat: ImageFormat; size: number } | { reason: string }> {
  const h = await readHeader(path);
  if (!h) return { reason: 'it is not a qcow2 image' };
  if (h.malformed !== null) return { reason: `it has ${h.malformed}` };
  if (h.dataFile !== null) return { reason: 'it names an external data file' };
  if (h.backingFile === null) return { reason: 'it has no backing file' };
  const m = BLOB_RE.exec(basename(h.backingFile));
  if (!m || h.backingFile !== join(cacheRoot(env), 'images', basename(h.backingFile))) return { reason: `its backing file ${JSON.stringify(h.backingFile)} is not an image of vmnet's cache` };
  if (h.backingFormat !== 'raw' && h.backingFormat !== 'qcow2') return { reason: `its backing format is ${JSON.stringify(h.backingFormat)}, not raw or qcow2` };
  return { sha256: m[1]!, base: h.backingFile, baseFormat: h.backingFormat, size: h.size };
}

/**
 * When `path` is the kept disk of a VM (in vmnet's data directory, made by
 * vmnet over an image of its cache), the base it names and that base's format.
 * @returns null for any other file
 */
export async function ownOverlay(path: string, env: NodeJS.ProcessEnv = process.env): Promise<{ base: string; baseFormat: ImageFormat } | null> {
  let real: string;
  let vms: string;
  try {
    real = await realpath(path);
    vms = await realpath(join(dataRoot(env), 'vms'));
  } catch {
    return null;
  }
  if (basename(real) !== DISK || dirname(dirname(real)) !== vms) return null;
  const c = await checkOverlay(real, env);
  return 'reason' in c ? null : { base: c.base, baseFormat: c.baseFormat };
}

/**
 * Makes (or checks and grows) VM `name`'s kept disk over `base`.
 * @param diskSize wanted virtual size in bytes, or null
 * @returns the overlay's path
 * @throws VmnetError E_USAGE (a smaller --disk-size than the disk has, a disk made from another
 *   image), E_BAD_IMAGE (an overlay that is not vmnet's), E_QEMU_FAILED (qemu-img failed)
 */
export async function prepareVmDisk(name: string, base: DiskBase, diskSize: number | null, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const root = dataRoot(env);
  ensurePrivateDirSync(root);
  ensurePrivateDirSync(join(root, 'vms'));
  const dir = vmDiskDir(name, env);
  ensurePrivateDirSync(dir);
  const path = join(dir, DISK);
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) {
    // The base's virtual size decides whether --disk-size is a growth.
    const baseSize = base.format === 'raw' ? (await stat(base.path)).size : ((await readHeader(base.path))?.size ?? 0);
    if (diskSize !== null && diskSize < baseSize) {
      throw new VmnetError('E_USAGE', `--disk-size ${formatBytes(diskSize)} is smaller than the image (${formatBytes(baseSize)}): a disk only grows`);
    }
    const tmp = join(dir, `.${DISK}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await createOverlay(tmp, base.path, base.format, diskSize !== null && diskSize > baseSize ? diskSize : null, env);
      const meta: DiskMeta = { version: 1, url: base.url, sha256: base.sha256, baseFormat: base.format, createdAt: Date.now() };
      await writeFile(join(dir, META), JSON.stringify(meta) + '\n', { mode: 0o600 });
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
    return path;
  }
  const c = await checkOverlay(path, env);
  if ('reason' in c) throw new VmnetError('E_BAD_IMAGE', `the kept disk of VM ${name} (${path}) is not one vmnet made: ${c.reason}; vmnet rm ${name} starts over`);
  if (c.sha256 !== base.sha256) {
    throw new VmnetError('E_USAGE', `the kept disk of VM ${name} was made from ${formatDigest(c.sha256)}, not ${formatDigest(base.sha256)} (${base.url}); vmnet rm ${name} starts over from this image, or pick another --name`);
  }
  if (c.baseFormat !== base.format) {
    throw new VmnetError('E_USAGE', `the kept disk of VM ${name} was made over a ${c.baseFormat} base, and this run reads the image as ${base.format}; drop --format, or vmnet rm ${name} to start over`);
  }
  if (diskSize !== null && diskSize < c.size) {
    throw new VmnetError('E_USAGE', `--disk-size ${formatBytes(diskSize)} is smaller than VM ${name}'s disk (${formatBytes(c.size)}): a disk only grows; vmnet rm ${name} starts over`);
  }
  if (diskSize !== null && diskSize > c.size) await growImage(path, diskSize, env);
  return path;
}

/**
 * Removes VM `name`'s kept disk (the caller makes sure the VM is not running).
 * @returns false when it had none
 */
export async function removeVmDisk(name: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const dir = vmDiskDir(name, env);
  const there = await stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!there) return false;
  await rm(dir, { recursive: true, force: true });
  return true;
}
