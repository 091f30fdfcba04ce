/**
 * Theory of operation: where a lab keeps its record (plan.ts, LabRecord)
 * and how two `vmnet up`s of one lab are kept apart.
 *
 *   RUNTIME/labs/                 0700 (RUNTIME: config/runtime-dir.ts)
 *   RUNTIME/labs/NAME/            0700, one per lab that is up
 *     state.json                  the record, rewritten (temp file + rename,
 *                                 0600) before each start and after each stop
 *     lock                        held while up or down runs: created with
 *                                 O_EXCL, holds the holder's pid; a lock
 *                                 whose pid is gone is taken over
 *
 * `down` removes the directory last, so a lab that is down leaves nothing
 * in the runtime directory. The record is only a hint of ownership: what
 * runs is always observed (apply.ts); a record that does not parse counts
 * as none.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmnetError } from '../errors.js';
import { ensurePrivateDirSync, pidAlive } from '../switch/runtime.js';
import type { LabRecord } from './plan.js';

/** Paths of lab `name` under runtime directory `rt`. */
export function labPaths(rt: string, name: string): { dir: string; state: string; lock: string } {
  const dir = join(rt, 'labs', name);
  return { dir, state: join(dir, 'state.json'), lock: join(dir, 'lock') };
}

/** Reads the lab's record; null when it has none (never up, or down). */
export async function readRecord(rt: string, name: string): Promise<LabRecord | null> {
  try {
    const r = JSON.parse(await readFile(labPaths(rt, name).state, 'utf8')) as LabRecord;
    if (r?.version !== 1 || r.name !== name || typeof r.switches !== 'object' || typeof r.vms !== 'object' || typeof r.links !== 'object') return null;
    return r;
  } catch {
    return null;
  }
}

/** Writes the lab's record atomically, creating its directory (0700) on first use. */
export async function writeRecord(rt: string, rec: LabRecord): Promise<void> {
  const p = labPaths(rt, rec.name);
  ensurePrivateDirSync(join(rt, 'labs'));
  ensurePrivateDirSync(p.dir);
  const tmp = join(p.dir, `.state.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(tmp, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, p.state);
}

/** Removes the lab's directory (record and lock), and `labs/` when no other lab is left in it. */
export async function removeLabDir(rt: string, name: string): Promise<void> {
  await rm(labPaths(rt, name).dir, { recursive: true, force: true });
  await rmdir(join(rt, 'labs')).catch(() => undefined); // ENOTEMPTY: other labs are up
}

/**
 * Takes the lab's lock for the length of an up or down.
 * @returns its release
 * @throws VmnetError E_NAME_IN_USE when a live process holds it
 */
export async function lockLab(rt: string, name: string): Promise<() => Promise<void>> {
  const p = labPaths(rt, name);
  ensurePrivateDirSync(join(rt, 'labs'));
  ensurePrivateDirSync(p.dir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(p.lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => void (await rm(p.lock, { force: true }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(await readFile(p.lock, 'utf8').catch(() => ''));
      // A lock without a pid yet is one being taken right now (open, then write): held, unless old.
      const young = Date.now() - ((await stat(p.lock).catch(() => null))?.mtimeMs ?? 0) < 10_000;
      if ((Number.isInteger(holder) && holder > 1 && pidAlive(holder)) || (!(holder > 1) && young)) {
        throw new VmnetError('E_NAME_IN_USE', `lab ${name} is being changed by another vmnet (pid ${holder}); wait for it, or remove ${p.lock} if that process is not vmnet`);
      }
      await rm(p.lock, { force: true });
    }
  }
  throw new VmnetError('E_NAME_IN_USE', `cannot take the lock ${p.lock} of lab ${name}`);
}
