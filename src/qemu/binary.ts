/**
 * Theory of operation: find the qemu-system binary for the host's
 * architecture on PATH (or take the one the user named), and pick an
 * accelerator. `auto` picks KVM only when /dev/kvm can be opened read-write;
 * when it exists but cannot be opened, TCG is the fallback and the caller is
 * told why. An openable /dev/kvm is no proof that KVM works (nested
 * virtualization lacking an MSR kills QEMU at start): launch() starts QEMU
 * again with TCG when {@link kvmStartFailure} recognises QEMU's error.
 */
import { accessSync, constants, openSync, closeSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { VmnetError } from '../errors.js';

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };

/** The Debian package that provides qemu-system for an architecture name. */
const PACKAGE: Record<string, string> = { x86_64: 'qemu-system-x86', aarch64: 'qemu-system-arm', ppc64: 'qemu-system-ppc', riscv64: 'qemu-system-misc', s390x: 'qemu-system-s390x' };

/** The host arch's qemu-system binary name and the Debian package that provides it. */
export function qemuForHost(): { name: string; pkg: string } {
  const arch = ARCH[process.arch] ?? process.arch;
  return { name: `qemu-system-${arch}`, pkg: PACKAGE[arch] ?? `qemu-system for ${arch}` };
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds an executable by name on PATH.
 * @param name a command name (no slash)
 * @param env environment holding PATH
 * @returns its absolute path, or null
 */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * Resolves the QEMU binary.
 * @param explicit a path or command name given by the user, or undefined for the host arch's default
 * @param env environment holding PATH
 * @returns absolute path of an executable qemu-system binary
 * @throws VmnetError E_NO_QEMU naming the package to install
 */
export function findQemu(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const host = qemuForHost();
  const name = explicit ?? host.name;
  if (name.includes('/')) {
    if (isExecutable(name)) return name;
    throw new VmnetError('E_NO_QEMU', `QEMU binary ${name} is missing or not executable; check --qemu`, { usage: true });
  }
  const found = findOnPath(name, env);
  if (found) return found;
  throw new VmnetError('E_NO_QEMU', `${name} not found on PATH; install it (Debian/Ubuntu: apt-get install ${host.pkg}) or pass --qemu PATH`);
}

export type Accel = 'kvm' | 'tcg' | 'hvf';

/**
 * Chooses the accelerator for `auto`.
 * @returns the accelerator and, when falling back to TCG, a one-line reason
 */
export function chooseAccel(requested: Accel | 'auto', kvmDevice = '/dev/kvm'): { accel: Accel; note?: string } {
  if (requested !== 'auto') return { accel: requested };
  if (process.platform === 'darwin') return { accel: 'hvf' };
  try {
    closeSync(openSync(kvmDevice, 'r+'));
    return { accel: 'kvm' };
  } catch (e) {
    return { accel: 'tcg', note: `KVM not usable (${kvmDevice}: ${(e as NodeJS.ErrnoException).code ?? 'error'}); using TCG software emulation, which is slower` };
  }
}

/**
 * Tells whether QEMU's stderr, after it died during start-up, blames KVM
 * (`failed to set MSR 0x10a`, `kvm_buf_set_msrs: Assertion … failed`,
 * `Could not access KVM kernel module`, `failed to initialize kvm`, `KVM
 * internal error`, `kvm_init_vcpu: … failed`), not merely a path with
 * "kvm" in it: a false verdict would send later runs to TCG for nothing.
 * @param stderr QEMU's stderr
 */
export function kvmStartFailure(stderr: string): boolean {
  return /failed to (?:set|get) MSR|\bkvm_[a-z_]+[:(]|\bKVM[: ]|failed to initiali[sz]e kvm|Could not access KVM/i.test(stderr);
}
