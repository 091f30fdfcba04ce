/**
 * Theory of operation: vmnet ships the recipe of a small test guest
 * (Debian's cloud kernel and a busybox initramfs, guest/build.ts), not the
 * guest itself: it is built on the machine on first use, into the user's
 * cache, `$VMNET_GUEST_DIR`, or a clone's build/guest (cache.ts says which).
 * findBundledGuest() only looks; ensureBundledGuest() builds it when it is
 * missing, which is what `vmnet demo` and runTestGuest() do.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VmnetError, isVmnetError } from '../errors.js';
import { buildGuest, readManifest } from './build.js';
import { guestDir } from './cache.js';
import { APPEND } from './recipe.js';
import { checkGuestPrerequisites, prerequisitesMessage } from './tools.js';

export { packageRoot } from './recipe.js';

export interface BundledGuest {
  dir: string;
  kernel: string;
  initrd: string;
  diskRaw: string;
  diskQcow2: string;
  /** Kernel command line the disk image boots with. */
  append: string;
}

/**
 * Locates the built test guest.
 * @param env VMNET_GUEST_DIR, HOME, XDG_CACHE_HOME
 * @throws VmnetError E_NO_GUEST with the command that builds it
 */
export function findBundledGuest(env: NodeJS.ProcessEnv = process.env): BundledGuest {
  const { dir } = guestDir(env);
  const g: BundledGuest = {
    dir,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initramfs.gz'),
    diskRaw: join(dir, 'disk.raw'),
    diskQcow2: join(dir, 'disk.qcow2'),
    append: APPEND,
  };
  for (const f of [g.kernel, g.initrd, g.diskRaw, g.diskQcow2]) {
    if (!existsSync(f)) throw new VmnetError('E_NO_GUEST', `the test guest is not built (${f} missing); run: vmnet guest build (vmnet demo builds it on first use)`);
  }
  const m = readManifest(dir);
  if (typeof m?.append === 'string' && m.append) g.append = m.append;
  return g;
}

export interface EnsureGuestOptions {
  env?: NodeJS.ProcessEnv;
  /** Receives one line per build step. */
  onProgress?: (line: string) => void;
  /**
   * Also check the QEMU binary that will boot the guest (true: the host
   * arch's default), in the same message as the build's tools, before the
   * build starts.
   */
  qemu?: string | true;
}

/**
 * The test guest, built first when it is missing (a 27 MB download, then a
 * few seconds; one progress line per step).
 * @throws VmnetError E_NO_TOOL naming every missing package (QEMU's too when
 *   asked) before anything starts; E_GUEST_BUILD when a step fails
 */
export async function ensureBundledGuest(opts: EnsureGuestOptions = {}): Promise<BundledGuest> {
  const env = opts.env ?? process.env;
  try {
    return findBundledGuest(env);
  } catch (e) {
    if (!isVmnetError(e) || e.code !== 'E_NO_GUEST') throw e;
  }
  if (opts.qemu !== undefined) {
    const problem = prerequisitesMessage(await checkGuestPrerequisites({ env, qemu: opts.qemu }), 'cannot build and boot the test guest');
    if (problem) throw new VmnetError('E_NO_TOOL', problem);
  }
  await buildGuest({ env, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  return findBundledGuest(env);
}
