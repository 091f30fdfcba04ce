/**
 * Theory of operation: whether KVM really runs a guest on this host, found
 * by running one. An openable /dev/kvm proves nothing (nested
 * virtualization without an MSR QEMU sets at reset: `failed to set MSR
 * 0x10a`, then `kvm_buf_set_msrs: Assertion … failed`), so the probe boots
 * the smallest guest there is: a 1 MiB raw disk whose boot sector is
 *
 *   B0 31     mov al, 0x31
 *   E6 F4     out 0xf4, al     ; QEMU's isa-debug-exit: QEMU exits with (0x31 << 1) | 1 = 99
 *   F4 EB FD  hlt; jmp $-1
 *
 * SeaBIOS loads it from a virtio disk and runs it, so exit status 99 means
 * the firmware and the guest's own code ran under the accelerator. QEMU's
 * command line is the launcher's own (qemu/args.ts: `-accel kvm -cpu host`),
 * so what fails here fails in `vmnet run`.
 *
 * The same probe runs under TCG first: if TCG cannot pass it, the probe
 * itself does not work with this QEMU and says nothing about KVM (no
 * verdict). A KVM probe that does not finish within the timeout (a KVM that
 * starts but stalls: "KVM internal error", or a vCPU spinning in the host
 * kernel) fails too. QEMU is started tied to this process (setpriv
 * --pdeathsig) and killed at the deadline.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuArgs } from '../qemu/args.js';
import type { Accel } from '../qemu/binary.js';
import { findSetpriv, QemuProcess } from '../qemu/process.js';

/** QEMU's exit status when the probe's boot sector ran. */
const PASSED = (0x31 << 1) | 1;

/** The probe disk: a boot sector that exits QEMU through isa-debug-exit, padded to 1 MiB (SeaBIOS ignores a shorter virtio disk). */
export function probeDisk(): Buffer {
  const disk = Buffer.alloc(1 << 20);
  Buffer.from([0xb0, 0x31, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]).copy(disk, 0);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

export interface ProbeResult {
  /** The guest's code ran: QEMU exited with the probe's status. */
  passed: boolean;
  /** QEMU's last words, one line, when it did not pass. */
  reason: string | null;
  /** The deadline passed with QEMU still running (killed). */
  stalled: boolean;
  elapsedMs: number;
}

/**
 * Boots the probe guest once.
 * @param binary qemu-system binary
 * @param accel the accelerator to try
 * @param timeoutMs deadline for QEMU to exit
 */
export async function probeBoot(binary: string, accel: Accel, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ProbeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vmnet-probe-'));
  const started = Date.now();
  try {
    const disk = join(dir, 'probe.img');
    await writeFile(disk, probeDisk(), { mode: 0o600 });
    const args = qemuArgs({
      accel,
      memoryMiB: 32,
      cpus: 1,
      name: 'vmnet-kvm-probe',
      drive: { path: disk, format: 'raw', snapshot: true },
      serial: { kind: 'none' },
      nics: [],
      extra: ['-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
    });
    const q = new QemuProcess(binary, args, 'ignore', { dieWithParent: findSetpriv(env) });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'stalled'>((r) => (timer = setTimeout(() => r('stalled'), timeoutMs)));
    const outcome = await Promise.race([q.exited.catch((e: unknown) => ({ code: null, signal: null, stderr: (e as Error).message })), deadline]);
    clearTimeout(timer);
    const elapsedMs = Date.now() - started;
    if (outcome === 'stalled') {
      await q.kill(1000).catch(() => undefined);
      return { passed: false, reason: `the probe guest did not finish within ${Math.round(timeoutMs / 1000)} s (QEMU started; the guest stalled)`, stalled: true, elapsedMs };
    }
    if (outcome.code === PASSED) return { passed: true, reason: null, stalled: false, elapsedMs };
    const words = outcome.stderr.trim().split('\n').filter((l) => l.trim());
    const status = outcome.signal ? `killed by ${outcome.signal}` : `exit status ${outcome.code}`;
    return { passed: false, reason: `${words.slice(-2).join(' | ') || 'no error message'} (${status})`, stalled: false, elapsedMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
