/**
 * The bundled test guest plus Linux bonding: its initramfs with a second
 * cpio archive appended (the kernel unpacks concatenated archives in
 * order), holding `bonding.ko` and the `tls.ko` it depends on, taken from
 * the same Debian kernel package the guest was built from (its manifest
 * names it; `apt-get download` + `dpkg-deb -x`, as `vmnet guest build`
 * does). The bundled guest itself is not changed; the result is cached in
 * build/bonding/<kernel release>/initramfs.gz.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { findBundledGuest, type BundledGuest } from '../../src/index.js';
import { newcArchive } from '../../src/guest/cpio.js';

/** Finds `name.ko` under a module tree. */
function findKo(root: string, name: string): string | null {
  for (const e of readdirSync(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) {
      const got = findKo(p, name);
      if (got !== null) return got;
    } else if (e.name === `${name}.ko`) return p;
  }
  return null;
}

/**
 * The bundled guest with an initramfs that also holds /lib/modules/tls.ko
 * and /lib/modules/bonding.ko (insmod them in that order).
 */
export function bondingGuest(): BundledGuest {
  const g = findBundledGuest();
  const m = JSON.parse(readFileSync(join(g.dir, 'manifest.json'), 'utf8')) as { kernelPackage: string; kernelVersion: string; kernelRelease: string };
  const out = resolve('build', 'bonding', m.kernelRelease);
  const initrd = join(out, 'initramfs.gz');
  if (!existsSync(initrd)) {
    const work = mkdtempSync(join(tmpdir(), 'vmnet-bonding-'));
    try {
      execFileSync('apt-get', ['download', `${m.kernelPackage}=${m.kernelVersion}`], { cwd: work, stdio: 'ignore' });
      const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
      if (deb === undefined) throw new Error(`apt-get download ${m.kernelPackage} left no .deb`);
      execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'x')]);
      const root = join(work, 'x', 'lib', 'modules', m.kernelRelease);
      const files = ['tls', 'bonding'].map((n) => {
        const p = findKo(root, n);
        if (p === null) throw new Error(`${m.kernelPackage} has no ${n}.ko`);
        return { kind: 'file' as const, name: `lib/modules/${n}.ko`, mode: 0o644, data: readFileSync(p) };
      });
      const extra = gzipSync(newcArchive([{ kind: 'dir', name: 'lib', mode: 0o755 }, { kind: 'dir', name: 'lib/modules', mode: 0o755 }, ...files]));
      mkdirSync(out, { recursive: true });
      writeFileSync(initrd, Buffer.concat([readFileSync(g.initrd), extra]));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return { ...g, initrd };
}
