/**
 * Theory of operation: `--accel auto` remembers, for one boot of the host,
 * that KVM failed. An openable /dev/kvm proves nothing (nested
 * virtualization without an MSR QEMU needs: `failed to set MSR 0x10a`,
 * `kvm_buf_set_msrs: Assertion … failed`), so launch() tries KVM, and when
 * QEMU dies during start-up with a KVM error it starts QEMU again with TCG
 * and writes the verdict here. Later auto runs read it and go straight to
 * TCG, until the host reboots (the verdict is keyed on
 * /proc/sys/kernel/random/boot_id, which changes at every boot) or the file
 * is removed. The verdict is per QEMU binary: another binary gets its own
 * try.
 *
 * The file is `<runtime root>/accel-verdict.json` (the root is a private
 * 0700 directory of the user, state.ts), written atomically (temp file +
 * rename, 0600). Where the boot id cannot be read nothing is remembered:
 * every auto run then tries KVM first and falls back again.
 *
 * `vmnet doctor` writes the same verdict when its probe boot fails under
 * KVM (doctor/kvm-probe.ts), and removes it when the probe passes.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** File name of the verdict inside the runtime root. */
export const VERDICT_FILE = 'accel-verdict.json';

interface Verdict {
  version: 1;
  bootId: string;
  qemu: string;
  /** What is used instead of KVM. */
  accel: 'tcg';
  /** QEMU's error, one line. */
  reason: string;
  time: string;
}

/** This boot of the host, or null where the kernel does not say. */
export function bootId(): string | null {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return id || null;
  } catch {
    return null;
  }
}

/**
 * Reads the verdict for this boot and binary.
 * @param root the runtime root
 * @param qemu the QEMU binary's path
 * @returns the recorded reason and the file, or null when KVM has not failed (in this boot, for this binary)
 */
export function readKvmVerdict(root: string, qemu: string): { reason: string; file: string } | null {
  const file = join(root, VERDICT_FILE);
  const id = bootId();
  if (id === null) return null;
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.size > 64 * 1024 || st.uid !== (process.getuid?.() ?? st.uid)) return null;
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<Verdict>;
    if (v.version !== 1 || v.bootId !== id || v.qemu !== qemu || v.accel !== 'tcg') return null;
    return { reason: String(v.reason ?? ''), file };
  } catch {
    return null;
  }
}

/**
 * Forgets the verdict about `qemu` (KVM works again: `vmnet doctor`'s probe
 * passed). A verdict about another binary, or another boot, is left alone.
 * @returns whether a verdict was removed
 */
export async function clearKvmVerdict(root: string, qemu: string): Promise<boolean> {
  const v = readKvmVerdict(root, qemu);
  if (!v) return false;
  await rm(v.file, { force: true });
  return true;
}

/**
 * Records that KVM failed at QEMU's start in this boot.
 * @param root the runtime root (exists: the VM directory was claimed in it)
 * @returns the file written, or null when nothing could be remembered (no boot id)
 */
export async function writeKvmVerdict(root: string, qemu: string, reason: string): Promise<string | null> {
  const id = bootId();
  if (id === null) return null;
  const file = join(root, VERDICT_FILE);
  const v: Verdict = { version: 1, bootId: id, qemu, accel: 'tcg', reason, time: new Date().toISOString() };
  const tmp = join(root, `.${VERDICT_FILE}.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(tmp, JSON.stringify(v, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
  return file;
}
