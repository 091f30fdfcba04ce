/**
 * Theory of operation: the image cache on disk,
 * `$XDG_CACHE_HOME/vmnet/images/` (config/user-dirs.ts), a private (0700)
 * directory:
 *
 *     sha256-<hex>                    a complete, verified image (0444), named by
 *                                     the SHA-256 of the bytes downloaded
 *     url-<key>.json                  what URL <key> gave last time: its SHA-256,
 *                                     size and validator
 *     url-<key>.<pid>-<start>-<r>.partial/
 *                                     an unfinished download of URL <key> by
 *                                     process <pid> (start time <start>):
 *                                     `data` and `meta.json` (URL, validator, size)
 *
 * Content addressing makes a finished image immutable: a URL whose file
 * changes upstream gets a second `sha256-*` file, and a VM overlay backed
 * by the first (images/vm-disk.ts) is never pulled from under it.
 *
 * Concurrency without locks: every download writes into a partial
 * directory of its own, named after its process (pid and the process's
 * start time, so a recycled pid is not mistaken for the owner). A download
 * starting adopts the largest partial directory of the same URL whose
 * process is dead, by renaming it to its own name: rename(2) is atomic, so
 * two processes cannot adopt the same one; the loser finds it gone and
 * moves on. A download that gives up (an error, a cancel) hands its
 * partial directory over by renaming it to owner pid 0, so the next try,
 * in this process or another, resumes it. A partial directory of a live process is left alone (two runs
 * racing for one URL each download it; both results are the same file).
 * A finished download is verified, made read-only and renamed to
 * `sha256-<hex>`: readers see either no file or the whole file, and
 * renaming a second identical file over it changes nothing for them.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheRoot } from '../config/user-dirs.js';
import { ensurePrivateDirSync } from '../switch/runtime.js';
import { processAlive, processStartTime } from '../vm/state.js';
import type { Validator } from './http-range.js';

/** What a URL gave the last time it was downloaded. */
export interface UrlIndex {
  url: string;
  sha256: string;
  size: number;
  validator: Validator;
  /** ms since the epoch. */
  fetchedAt: number;
}

/** What a partial download holds, beside its bytes. */
export interface PartialMeta {
  url: string;
  validator: Validator;
  total: number | null;
}

/** A partial download owned by this process. */
export interface Partial {
  dir: string;
  /** The bytes so far. */
  data: string;
  meta: PartialMeta | null;
  /** Size of `data` when claimed. */
  size: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const PARTIAL_RE = /^url-([0-9a-f]{32})\.(\d+)-(\d+)-[0-9a-f]+\.partial$/;

/**
 * Creates (if needed) and checks the image cache directory.
 * @param env environment holding XDG_CACHE_HOME / HOME
 * @returns its path
 * @throws VmnetError E_USAGE when it cannot be located, E_NO_FILE when it cannot be made private
 */
export function ensureImageCache(env: NodeJS.ProcessEnv = process.env): string {
  const root = cacheRoot(env);
  ensurePrivateDirSync(root);
  const dir = join(root, 'images');
  ensurePrivateDirSync(dir);
  return dir;
}

/** The path of the image with this SHA-256 (which may not exist). */
export function blobPath(cacheDir: string, sha256: string): string {
  if (!HEX64.test(sha256)) throw new Error(`not a SHA-256: ${sha256}`);
  return join(cacheDir, `sha256-${sha256}`);
}

/** True when the cache holds a regular file for this SHA-256. */
export async function hasBlob(cacheDir: string, sha256: string): Promise<boolean> {
  return stat(blobPath(cacheDir, sha256)).then(
    (s) => s.isFile(),
    () => false,
  );
}

/**
 * Moves a finished, verified file into the cache under its SHA-256, read-only.
 * @returns the image's path in the cache
 */
export async function installBlob(cacheDir: string, sha256: string, from: string): Promise<string> {
  const to = blobPath(cacheDir, sha256);
  await chmod(from, 0o444);
  await rename(from, to);
  return to;
}

/** Writes JSON atomically (temp file + rename), 0600. */
async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(value) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** What URL `key` gave last time, or null. */
export async function readIndex(cacheDir: string, key: string): Promise<UrlIndex | null> {
  const i = await readJson<UrlIndex>(join(cacheDir, `url-${key}.json`));
  return i && typeof i.url === 'string' && typeof i.sha256 === 'string' && HEX64.test(i.sha256) ? i : null;
}

/** Records what URL `key` gave. */
export async function writeIndex(cacheDir: string, key: string, index: UrlIndex): Promise<void> {
  await writeJson(join(cacheDir, `url-${key}.json`), index);
}

const sizeOf = (path: string): Promise<number> => stat(path).then((s) => s.size, () => 0);

/** Renames a directory aside and removes it (rm of a path someone may rename meanwhile would miss). */
async function discard(path: string): Promise<void> {
  const trash = `${path}.${randomBytes(4).toString('hex')}.trash`;
  try {
    await rename(path, trash);
  } catch {
    return; // taken by someone else
  }
  await rm(trash, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Claims a partial download of URL `key` for this process: the largest one
 * left by a dead process (renamed to this process's name), else a new,
 * empty one. Other dead processes' partial downloads of the URL are removed.
 * @param cacheDir the image cache
 * @param key the URL's key (source.ts urlKey)
 */
export async function claimPartial(cacheDir: string, key: string): Promise<Partial> {
  const own = join(cacheDir, `url-${key}.${process.pid}-${processStartTime(process.pid) ?? 0}-${randomBytes(4).toString('hex')}.partial`);
  const dead: Array<{ path: string; size: number }> = [];
  for (const name of await readdir(cacheDir)) {
    const m = PARTIAL_RE.exec(name);
    if (!m || m[1] !== key) continue;
    const pid = Number(m[2]);
    if (processAlive(pid, m[3] === '0' ? null : m[3]!)) continue;
    const path = join(cacheDir, name);
    dead.push({ path, size: await sizeOf(join(path, 'data')) });
  }
  dead.sort((a, b) => b.size - a.size);
  let adopted = false;
  for (const d of dead) {
    if (!adopted) {
      try {
        await rename(d.path, own);
        adopted = true;
        continue;
      } catch {
        /* another process adopted it first */
      }
    }
    await discard(d.path);
  }
  if (!adopted) await mkdir(own, { mode: 0o700 });
  const data = join(own, 'data');
  const meta = adopted ? await readJson<PartialMeta>(join(own, 'meta.json')) : null;
  return { dir: own, data, meta, size: adopted ? await sizeOf(data) : 0 };
}

/** Records what a partial download holds (written before its first byte). */
export async function writePartialMeta(p: Partial, meta: PartialMeta): Promise<void> {
  p.meta = meta;
  await writeJson(join(p.dir, 'meta.json'), meta);
}

/**
 * Hands a partial download over to whoever resumes it next (this process
 * included): renamed to owner pid 0, which no process is. One without a
 * byte is removed instead.
 */
export async function releasePartial(p: Partial, key: string): Promise<void> {
  if ((await sizeOf(p.data)) === 0) return dropPartial(p);
  await rename(p.dir, join(p.dir, '..', `url-${key}.0-0-${randomBytes(4).toString('hex')}.partial`)).catch(() => undefined);
}

/** Removes a partial download (after it was installed, or when it is wrong). */
export async function dropPartial(p: Partial): Promise<void> {
  await rm(p.dir, { recursive: true, force: true }).catch(() => undefined);
}
