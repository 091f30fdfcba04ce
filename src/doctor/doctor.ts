/**
 * Theory of operation: `vmnet doctor` — what works on this host and what to
 * do about what does not, modelled on `limactl info` and `podman info` but
 * with a verdict and the command to run for every subject (report.ts). The
 * checks run one after another (the KVM probe boots QEMU twice, under a
 * second on a working host); the only things written are the runtime
 * directory (created as `vmnet run` would) and the KVM verdict the launcher
 * reads (vmnet-checks.ts).
 */
import { vmnetVersion } from '../guest/recipe.js';
import { ipv6Check, nodeCheck, pingCheck, portsCheck, qemuCheck, setprivCheck, sshCheck } from './host-checks.js';
import { cacheDirCheck, dataDirCheck, guestCheck, kvmCheck, runtimeDirCheck } from './vmnet-checks.js';
import type { DoctorReport } from './report.js';

export interface DoctorOptions {
  /** QEMU binary (default qemu-system-<host arch> on PATH). */
  qemu?: string;
  /** PATH, HOME, XDG_* and VMNET_* as vmnet run would see them. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Deadline of each probe boot, ms. Default 20000. */
  probeTimeoutMs?: number;
}

/**
 * Checks the host.
 * @returns every check with its verdict and fix; `ok` when none failed
 */
export async function runDoctor(o: DoctorOptions = {}): Promise<DoctorReport> {
  const env = o.env ?? process.env;
  const qemu = await qemuCheck(o.qemu, env);
  const checks = [
    qemu.check,
    await kvmCheck(qemu.binary, env, { timeoutMs: o.probeTimeoutMs ?? 20_000 }),
    setprivCheck(env),
    await runtimeDirCheck(env),
    await guestCheck(env),
    cacheDirCheck(env),
    dataDirCheck(env),
    await sshCheck(env),
    portsCheck(),
    pingCheck(),
    ipv6Check(),
    nodeCheck(),
  ];
  return {
    ok: checks.every((c) => c.verdict !== 'fail'),
    vmnet: vmnetVersion(),
    node: process.versions.node,
    platform: process.platform,
    arch: process.arch,
    uid: process.getuid?.() ?? null,
    checks,
  };
}
