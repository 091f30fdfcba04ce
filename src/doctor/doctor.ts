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
import { makeCheck, type Check, type DoctorReport } from './report.js';

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
  const checks = [qemu.check];
  const steps: Array<[string, string, () => Check | Promise<Check>]> = [
    ['kvm', 'KVM', () => kvmCheck(qemu.binary, env, { timeoutMs: o.probeTimeoutMs ?? 20_000 })],
    ['setpriv', 'setpriv', () => setprivCheck(env)],
    ['runtime-dir', 'runtime dir', () => runtimeDirCheck(env)],
    ['guest', 'test guest', () => guestCheck(env)],
    ['cache-dir', 'cache dir', () => cacheDirCheck(env)],
    ['data-dir', 'data dir', () => dataDirCheck(env)],
    ['ssh', 'OpenSSH', () => sshCheck(env)],
    ['ports', 'low ports', () => portsCheck()],
    ['ping', 'ping sockets', () => pingCheck()],
    ['ipv6', 'IPv6', () => ipv6Check()],
    ['node', 'Node.js', () => nodeCheck()],
  ];
  for (const [id, title, run] of steps) {
    try {
      checks.push(await run());
    } catch (e) {
      // A check that breaks is reported like any other finding; the rest still run.
      checks.push(makeCheck({ id, title, verdict: 'warn', summary: `the check itself failed: ${(e as Error)?.message ?? String(e)}`, fix: 'report this with the output of vmnet doctor --json' }));
    }
  }
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
