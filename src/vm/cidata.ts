/**
 * Theory of operation: the fallback seed on a disk, for images whose
 * cloud-init cannot take a network seed (`--cloud-init-seed disk`): a FAT
 * file system labelled `CIDATA` holding `meta-data`, `user-data` and
 * `vendor-data` at its root, which cloud-init's ds-identify recognises by its
 * label (cloud-init docs "datasources/nocloud": "vfat or iso9660 file system
 * ... volume label cidata"). Made without root and without genisoimage:
 * `mkfs.vfat -C` makes the image file, `mcopy` writes into it (dosfstools
 * and mtools, already needed to build the test guest).
 *
 * The seed carries the guest's SSH host private key: the image lives in the
 * VM's runtime directory (0700) and goes with it; the documents are written
 * to a private temporary directory inside it for mcopy and removed at once.
 * QEMU gets the image read-only, `format=raw` stated (it never probes).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VmnetError } from '../errors.js';
import { findOnPath } from '../qemu/binary.js';
import { SEED_DOCUMENTS, type SeedFiles } from '../services/metadata/seeds.js';

const exec = promisify(execFile);

/** The file system label cloud-init looks for. */
export const CIDATA_LABEL = 'CIDATA';

/** Size of the image in KiB: the documents, with room for FAT's own structures, at least 1 MiB. */
export function cidataKiB(files: SeedFiles): number {
  const bytes = SEED_DOCUMENTS.reduce((a, d) => a + files[d].length + 4096, 0);
  return Math.max(1024, Math.ceil((bytes * 1.1) / 1024) + 256);
}

/**
 * Writes a CIDATA seed image at `path` (which must not exist).
 * @param dir a private directory of the VM's for the documents while mcopy reads them
 * @throws VmnetError E_NO_FILE when mkfs.vfat or mcopy is missing, E_QEMU_FAILED when one fails
 */
export async function writeCidataDisk(path: string, files: SeedFiles, dir: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const mkfs = findOnPath('mkfs.vfat', env) ?? findOnPath('mkfs.fat', env);
  const mcopy = findOnPath('mcopy', env);
  if (!mkfs || !mcopy) throw new VmnetError('E_NO_FILE', `--cloud-init-seed disk needs ${mkfs ? 'mcopy (mtools)' : 'mkfs.vfat (dosfstools)'} on PATH (Debian: apt-get install dosfstools mtools), or use --cloud-init-seed net`);
  const run = async (bin: string, args: string[]) => {
    try {
      await exec(bin, args, { env: { ...env, MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' } });
    } catch (e) {
      const x = e as { stderr?: string; message: string };
      throw new VmnetError('E_QEMU_FAILED', `making the cloud-init seed disk failed: ${bin}: ${(x.stderr || x.message).trim().split('\n')[0]}`);
    }
  };
  await run(mkfs, ['-C', '-n', CIDATA_LABEL, path, String(cidataKiB(files))]);
  const tmp = await mkdtemp(join(dir, '.seed-'));
  try {
    const docs = SEED_DOCUMENTS.map((d) => join(tmp, d));
    await Promise.all(SEED_DOCUMENTS.map((d, i) => writeFile(docs[i]!, files[d], { mode: 0o600 })));
    await run(mcopy, ['-i', path, '-o', ...docs, '::']);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
