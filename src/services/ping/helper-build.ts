/**
 * Theory of operation: where the ping helper's executable comes from. Its C
 * source (native/ping-helper.c) ships in the package, and the system C
 * compiler builds it: at install time (npm's postinstall runs
 * native/install.mjs, which calls buildHelper()), or, when that did not
 * happen (installed with --ignore-scripts, no compiler then, a source
 * checkout), the first time a guest pings. Nothing is downloaded, and no
 * Node headers, python or node-gyp are needed: one `cc -O2` of one file.
 *
 * The executable's name carries the first 16 hex digits of the source's
 * SHA-256, so a build of another version is never run. It is looked for,
 * and built, in the package's own `build/native/` first, then in the user's
 * cache (`$XDG_CACHE_HOME/vmnet`, else `~/.cache/vmnet`, made 0700) when the
 * package directory is not writable (a global install owned by root). A
 * file is run only when it and its directory belong to the user or root and
 * nobody else may write them, so another local user cannot plant one.
 * Builds go to a private temporary name and are renamed into place, so
 * concurrent gateways never run a half-written file.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: three levels up from src/services/ping/ and from dist/services/ping/. */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The helper's C source. */
const HELPER_SOURCE = join(ROOT, 'native', 'ping-helper.c');

/** What finding or building the helper gave: its path, or one line saying why there is none. */
export type HelperResult = { path: string } | { error: string };

/** The executable's file name for the shipped source; null when the source is missing. */
export function helperFileName(): string | null {
  try {
    return `ping-helper-${createHash('sha256').update(readFileSync(HELPER_SOURCE)).digest('hex').slice(0, 16)}`;
  } catch {
    return null;
  }
}

/** The directories the helper may live in, in order: the package's, then the user's cache. */
function helperDirs(): string[] {
  const dirs = [join(ROOT, 'build', 'native')];
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : process.env.HOME ? join(homedir(), '.cache') : null;
  if (base) dirs.push(join(base, 'vmnet'));
  return dirs;
}

/** True when `path` and its directory belong to this user or root and only the owner may write them. */
function trusted(path: string): boolean {
  const uid = process.getuid?.() ?? 0;
  try {
    for (const p of [path, dirname(path)]) {
      const st = statSync(p);
      if ((st.uid !== uid && st.uid !== 0) || (st.mode & 0o022) !== 0) return false;
    }
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A helper already built for this source that is safe to run, or null.
 * @param dirs where to look (default: the package's build/native, then the user's cache)
 */
export function findHelper(dirs: readonly string[] = helperDirs()): string | null {
  const name = helperFileName();
  if (name === null) return null;
  for (const d of dirs) if (trusted(join(d, name))) return join(d, name);
  return null;
}


/** The C compiler to build with: $CC if set, else the first of cc, gcc, clang on PATH; null when none. */
export function findCompiler(): string | null {
  const cc = process.env.CC?.trim();
  const names = cc ? [cc] : ['cc', 'gcc', 'clang'];
  for (const n of names) {
    if (isAbsolute(n)) {
      if (executable(n)) return n;
      continue;
    }
    for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && executable(join(d, n))) return join(d, n);
  }
  return null;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

let building: Promise<HelperResult> | null = null;

/**
 * Builds the helper with the system C compiler into the first directory
 * that takes it, unless a build for this source is already there. Never
 * throws: a missing compiler or a failed build comes back as `{ error }`.
 */
export function buildHelper(): Promise<HelperResult> {
  building ??= build().finally(() => (building = null));
  return building;
}

async function build(): Promise<HelperResult> {
  const found = findHelper();
  if (found) return { path: found };
  const name = helperFileName();
  if (name === null) return { error: `its source ${HELPER_SOURCE} is missing` };
  const cc = findCompiler();
  if (cc === null) return { error: 'the ping helper is not built and no C compiler was found (install gcc: apt-get install gcc libc6-dev; vmnet builds it at the next try)' };
  let last = 'no directory to build it in (set HOME or XDG_CACHE_HOME)';
  for (const [i, dir] of helperDirs().entries()) {
    try {
      mkdirSync(dir, { recursive: true, mode: i === 0 ? 0o755 : 0o700 });
    } catch (e) {
      last = `cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
      continue;
    }
    const out = join(dir, name);
    const tmp = `${out}.${process.pid}.tmp`;
    const err = await new Promise<string | null>((resolve) =>
      execFile(cc, ['-O2', '-Wall', '-o', tmp, HELPER_SOURCE], { timeout: 120_000 }, (e, _o, stderr) =>
        resolve(e ? (String(stderr).split('\n').find((l) => /error/.test(l)) ?? String(stderr).split('\n')[0] ?? e.message).trim() || e.message : null),
      ),
    );
    if (err !== null) {
      rmSync(tmp, { force: true });
      // A directory we may not write: try the next; a compiler error: the same everywhere.
      if (/Permission denied|Read-only file system/.test(err)) {
        last = `cannot write ${dir}`;
        continue;
      }
      return { error: `building the ping helper with ${cc} failed: ${err}` };
    }
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
    if (trusted(out)) return { path: out };
    last = `${dir} may be written by other users: not running a helper from there`;
  }
  return { error: `the ping helper could not be built: ${last}` };
}
