/**
 * Theory of operation: what the test guest is made of, in one place, so the
 * builder (build.ts), the cache (cache.ts) and the finder (bundled.ts) agree.
 * The shipped assets live in `guest/` at the package root (`/init` and the
 * udhcpc lease hook); the rest comes from the host's Debian packages at
 * build time (the cloud kernel, busybox-static).
 *
 * The asset key is a digest of everything shipped that shapes the guest:
 * the recipe's format number, the assets' bytes, the module lists and the
 * kernel command line. It names the cache directory (with the version), so
 * installs of the same vmnet share one guest and a changed recipe never
 * picks up a guest built from another. It needs no external command, so a
 * lookup stays cheap; what the host contributes (kernel package, busybox)
 * is recorded in the manifest and checked by `vmnet guest build`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: two levels above this file in both src/ and dist/. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The shipped guest assets. */
export const ASSETS_DIR = join(packageRoot, 'guest');
export const ASSETS = { init: 'init', udhcpcScript: 'udhcpc.script' } as const;

/** Bumped whenever build.ts changes what it makes from the same inputs. */
export const RECIPE_FORMAT = 1;

/** virtio-net and what it needs, in load order (guest/init loads them). */
export const NET_MODULES = ['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net'] as const;

/**
 * Copied, never loaded by default: the ACPI power button and the input
 * event device busybox acpid reads (loaded with vmnet.acpi=1), and
 * virtio_blk for tests that write to their disk (insmod gives /dev/vda).
 */
export const EXTRA_MODULES = ['evdev', 'button', 'virtio_blk'] as const;

/** The kernel command line (no_timer_check: a loaded TCG host otherwise panics with "IO-APIC + timer doesn't work"). */
export const APPEND = 'console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check';

/** vmnet's version, from the package.json beside dist/ and src/. */
export function vmnetVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

/** Hex SHA-256 of the shipped recipe (see the theory above). */
export function assetKey(): string {
  const h = createHash('sha256');
  h.update(`format ${RECIPE_FORMAT}\nmodules ${NET_MODULES.join(' ')} ${EXTRA_MODULES.join(' ')}\nappend ${APPEND}\n`);
  for (const f of Object.values(ASSETS)) h.update(`${f}\n`).update(readFileSync(join(ASSETS_DIR, f)));
  return h.digest('hex');
}
