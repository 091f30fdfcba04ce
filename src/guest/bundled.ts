/**
 * Theory of operation: vmnet ships a small test guest (Debian's cloud kernel
 * and a busybox initramfs, see test/guest/build.sh). It is built once on the
 * machine (`npm run guest`) into build/guest of the package, or into
 * $VMNET_GUEST_DIR. This module finds it and says how to build it when absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmnetError } from '../errors.js';

export interface BundledGuest {
  dir: string;
  kernel: string;
  initrd: string;
  diskRaw: string;
  diskQcow2: string;
  /** Kernel command line the disk image boots with. */
  append: string;
}

/** The package root: two levels above this file in both src/ and dist/. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Locates the built test guest.
 * @throws VmnetError E_NO_GUEST with the command that builds it
 */
export function findBundledGuest(env: NodeJS.ProcessEnv = process.env): BundledGuest {
  const dir = env.VMNET_GUEST_DIR ?? join(packageRoot, 'build', 'guest');
  const g: BundledGuest = {
    dir,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initramfs.gz'),
    diskRaw: join(dir, 'disk.raw'),
    diskQcow2: join(dir, 'disk.qcow2'),
    append: 'console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check',
  };
  for (const f of [g.kernel, g.initrd, g.diskRaw, g.diskQcow2]) {
    if (!existsSync(f)) throw new VmnetError('E_NO_GUEST', `the test guest is not built (${f} missing); run: npm run guest`);
  }
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { append?: string };
    if (m.append) g.append = m.append;
  } catch {
    /* manifest is optional */
  }
  return g;
}
