/**
 * Theory of operation: where the test guest lives, and how a build gets
 * there without anyone seeing half of it.
 *
 * Where, first match wins:
 *  1. `$VMNET_GUEST_DIR`: exactly that directory (made by anyone; used as is);
 *  2. `build/guest` at the package root, when it exists: a clone of vmnet's
 *     repository after `npm run guest` (an installed package has none);
 *  3. vmnet's cache (config/user-dirs.ts: `$XDG_CACHE_HOME/vmnet`, else
 *     `~/.cache/vmnet`), `guest/<version>-<asset key>`, shared by every
 *     install of the same vmnet version.
 *     `vmnet` and `vmnet/guest` there are private directories of the user
 *     (0700, owned, not symlinks), since what they hold is booted.
 *
 * A guest directory is complete when its manifest.json is there. A build
 * never writes into it: it builds in a fresh `.vmnet-guest-build-<pid>-*` directory
 * beside it (same file system) and renames that into place, atomically. A
 * second build running at the same time builds its own; whoever renames
 * second finds the name taken, throws its copy away and uses the winner's.
 * Replacing a guest (`--force`, or inputs that changed) renames the old one
 * aside (`.vmnet-guest-old-<pid>-*`) first and removes it after. A guest dir that is a
 * symlink (a worktree sharing another checkout's build) is replaced at its
 * target. Leftovers of builds whose process is gone are removed by the next
 * build.
 */
import { dirname, join, resolve } from 'node:path';
import { existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { cacheRoot } from '../config/user-dirs.js';
import { ensurePrivateDirSync } from '../switch/runtime.js';
import { processAlive } from '../vm/state.js';
import { assetKey, packageRoot, vmnetVersion } from './recipe.js';

/** Where the guest directory came from. */
export type GuestDirSource = 'VMNET_GUEST_DIR' | 'clone' | 'cache';

/** `<vmnet's cache>/guest` (config/user-dirs.ts): every cached guest, one directory per version and recipe. */
export const guestCacheRoot = (env: NodeJS.ProcessEnv = process.env): string => join(cacheRoot(env), 'guest');

/**
 * Where the test guest is (or will be built).
 * @param clone a clone's build directory (default: build/guest at the package root)
 * @returns the directory and which rule chose it
 */
export function guestDir(env: NodeJS.ProcessEnv = process.env, clone = join(packageRoot, 'build', 'guest')): { dir: string; source: GuestDirSource } {
  if (env.VMNET_GUEST_DIR) return { dir: resolve(env.VMNET_GUEST_DIR), source: 'VMNET_GUEST_DIR' };
  if (existsSync(clone)) return { dir: clone, source: 'clone' };
  return { dir: join(guestCacheRoot(env), `${vmnetVersion()}-${assetKey().slice(0, 12)}`), source: 'cache' };
}

/**
 * The directory a build replaces: `dir` itself, or the target of a symlink there.
 * Creates the parents (private ones for the cache).
 */
export async function prepareGuestParent(dir: string, source: GuestDirSource, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (source === 'cache') {
    ensurePrivateDirSync(cacheRoot(env));
    ensurePrivateDirSync(guestCacheRoot(env));
  } else {
    await mkdir(dirname(dir), { recursive: true });
  }
  try {
    if (lstatSync(dir).isSymbolicLink()) return realpathSync(dir);
  } catch {
    /* absent */
  }
  return dir;
}

/**
 * What is at a guest directory's path: a build may only replace an empty
 * directory or a test guest (manifest.json and vmlinuz), never anything else
 * a user pointed `--dir` or VMNET_GUEST_DIR at.
 */
export function guestDirState(dir: string): 'absent' | 'empty' | 'guest' | 'foreign' | 'not-a-directory' {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) return 'not-a-directory';
    names = readdirSync(dir);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'foreign';
  }
  if (names.length === 0) return 'empty';
  return names.includes('manifest.json') && names.includes('vmlinuz') ? 'guest' : 'foreign';
}

const LEFTOVER_RE = /^\.vmnet-guest-(?:build|old)-(\d+)-/;

/** Removes `.vmnet-guest-build-*` and `.vmnet-guest-old-*` directories beside `dir` whose process is gone. */
export async function removeLeftovers(dir: string): Promise<void> {
  const parent = dirname(dir);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  for (const n of names) {
    const m = LEFTOVER_RE.exec(n);
    if (m && !processAlive(Number(m[1]), null)) await rm(join(parent, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A fresh, private directory beside `dir` to build in. */
export async function makeBuildDir(dir: string): Promise<string> {
  return mkdtemp(join(dirname(dir), `.vmnet-guest-build-${process.pid}-`));
}

const taken = (e: unknown) => ['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '');

/**
 * Moves a finished build into place.
 * @param tmp the build directory (from makeBuildDir)
 * @param dir where the guest goes
 * @param replace whether an existing guest there is replaced
 * @returns 'installed', or 'lost' when another build got there first (tmp is removed; use theirs)
 */
export async function installBuild(tmp: string, dir: string, replace: boolean): Promise<'installed' | 'lost'> {
  let old: string | null = null;
  if (replace) {
    old = join(dirname(dir), `.vmnet-guest-old-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await rename(dir, old);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      old = null;
    }
  }
  try {
    await rename(tmp, dir);
    return 'installed';
  } catch (e) {
    if (!taken(e)) throw e;
    await rm(tmp, { recursive: true, force: true });
    return 'lost';
  } finally {
    if (old) await rm(old, { recursive: true, force: true }).catch(() => undefined);
  }
}
