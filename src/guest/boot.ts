/**
 * Theory of operation: boot the bundled test guest under QEMU with the given
 * NICs, run one script in it over the serial console (console.ts), and make
 * sure QEMU is gone afterwards whatever happened (also when this process is
 * killed: QEMU is started with a parent-death signal, qemu/process.ts). Used by `vmnet demo` and by
 * the end-to-end test harness. TCG by default: the guest boots in about 2 s
 * and KVM is not trusted on every machine.
 */
import { VmnetError } from '../errors.js';
import { qemuArgs, macFromName, type NicBackend } from '../qemu/args.js';
import { findQemu, type Accel } from '../qemu/binary.js';
import { findSetpriv, QemuProcess } from '../qemu/process.js';
import { ensureBundledGuest, type BundledGuest } from './bundled.js';
import { runConsoleScript, type ScriptResult } from './console.js';

export type GuestBoot = 'kernel' | 'disk-raw' | 'disk-qcow2';

export interface TestGuestOptions {
  /** Shell script run inside the guest. */
  script: string;
  /** Guest name: QEMU -name, hostname, MAC derivation. */
  name?: string;
  /** One entry per NIC. */
  nics?: Array<{ backend: NicBackend; mac?: string }>;
  /** Direct kernel boot (default) or SeaBIOS from the bundled disk image. */
  boot?: GuestBoot;
  /** Discard writes to the disk image (default true for disk boots). */
  snapshot?: boolean;
  accel?: Accel;
  memoryMiB?: number;
  qemu?: string;
  timeoutMs?: number;
  onLine?: (line: string, inScript: boolean) => void;
  /** Run while the guest holds at HOLD_SCRIPT (console.ts), before it powers off. */
  onHold?: () => Promise<void>;
  /** The guest to boot (default: the bundled one, built first when missing: ensureBundledGuest()). */
  guest?: BundledGuest;
  /** Progress lines of that build. */
  onGuestBuild?: (line: string) => void;
}

export interface TestGuestResult extends ScriptResult {
  /** QEMU's stderr tail. */
  stderr: string;
  /** Milliseconds from start to the script's end. */
  elapsedMs: number;
}

/**
 * Boots the test guest, runs the script and powers the guest off.
 * @returns the script's exit status and output
 * @throws VmnetError E_NO_TOOL, E_GUEST_BUILD (building a missing guest), E_NO_QEMU, E_TIMEOUT, E_GUEST_PROTOCOL (with QEMU's stderr)
 */
export async function runTestGuest(opts: TestGuestOptions): Promise<TestGuestResult> {
  const guest = opts.guest ?? (await ensureBundledGuest({ ...(opts.onGuestBuild ? { onProgress: opts.onGuestBuild } : {}), qemu: opts.qemu ?? true }));
  const name = opts.name ?? 'vmnet-guest';
  const boot = opts.boot ?? 'kernel';
  const binary = findQemu(opts.qemu);
  const spec = {
    accel: opts.accel ?? 'tcg',
    memoryMiB: opts.memoryMiB ?? 256,
    cpus: 1,
    name,
    serial: { kind: 'stdio' } as const,
    nics: (opts.nics ?? []).map((n, i) => ({ mac: n.mac ?? macFromName(name, i), backend: n.backend })),
    extra: ['-no-reboot'],
    ...(boot === 'kernel'
      ? { kernel: guest.kernel, initrd: guest.initrd, append: `${guest.append} vmnet.hostname=${name}` }
      : { drive: { path: boot === 'disk-raw' ? guest.diskRaw : guest.diskQcow2, format: boot === 'disk-raw' ? 'raw' : 'qcow2', snapshot: opts.snapshot ?? true } as const }),
  };
  const started = Date.now();
  // Tied to this process (setpriv --pdeathsig): a killed demo or test run leaves no guest running.
  const qemu = new QemuProcess(binary, qemuArgs(spec), 'pipe', { dieWithParent: findSetpriv() });
  try {
    const exitedEarly = qemu.exited.then((x) => {
      throw new VmnetError('E_QEMU_FAILED', `QEMU exited (code ${x.code}) before the script finished: ${x.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    });
    exitedEarly.catch(() => undefined);
    const result = await Promise.race([
      runConsoleScript(qemu.child.stdout!, qemu.child.stdin!, opts.script, { onLine: opts.onLine, onHold: opts.onHold, timeoutMs: opts.timeoutMs ?? 120_000 }),
      exitedEarly,
    ]);
    return { ...result, stderr: qemu.stderr, elapsedMs: Date.now() - started };
  } finally {
    // The guest powers itself off after the script; give it a moment, then make sure.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((r) => (timer = setTimeout(r, 5000)));
    await Promise.race([qemu.exited.catch(() => undefined), grace]);
    clearTimeout(timer);
    await qemu.kill(2000).catch(() => undefined);
  }
}
