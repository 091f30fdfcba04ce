/**
 * Theory of operation: the client side of running VMs, for `vmnet ls`,
 * `stop`, `forward`, `wait`, `console` and `rm`. A VM is found by name in the
 * runtime root (state.ts); a directory whose owner is dead is cleaned on
 * sight and reported as not running, never trusted. Everything else goes
 * through the VM's control socket (control.ts), so the process that owns
 * the VM (foreground `vmnet run`, detached supervisor, library user) does
 * the work and the answer carries its error codes. `rm` removes the disk a
 * VM run from an image URL keeps; it holds the VM's name (claims its
 * directory, as a start does) while it removes, so no run of that name can
 * start on a half-removed disk, and a running VM's disk is refused.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isVmnetError, VmnetError } from '../errors.js';
import { removeVmDisk, vmDiskDir } from '../images/vm-disk.js';
import { controlCall, type VmStatus } from './control.js';
import type { BootStatus } from './boot-stage.js';
import { unreachableWhy, type SshTarget } from './ssh.js';
import { waitForSsh, type WaitForSshOptions } from './guest-session.js';
import { FILES, claimVmDir, cleanStale, ensureRuntimeRoot, inspectVmDir, processStartTime, runtimeRoot, scanVms, validateName, type CleanedVm, type VmEntry } from './state.js';

export type { CleanedVm };
import type { VmExit } from './launch.js';

/** A VM as `vmnet ls` shows it. */
export type VmListing = VmStatus | (Omit<VmStatus, 'state'> & { state: 'starting' | 'unresponsive' });

/**
 * Lists running VMs (cleaning stale directories on the way).
 * @param env environment holding XDG_RUNTIME_DIR
 * @param opts onCleaned: told about each dead VM cleaned up
 */
export async function listVms(env: NodeJS.ProcessEnv = process.env, opts: { onCleaned?: (c: CleanedVm) => void } = {}): Promise<VmListing[]> {
  const root = runtimeRoot(env);
  const entries = await scanVms(root, opts.onCleaned);
  return Promise.all(
    entries.map(async (e): Promise<VmListing> => {
      try {
        const r = await controlCall<{ status: VmStatus }>(join(e.dir, FILES.control), { op: 'status' }, 2000);
        return r.status;
      } catch {
        const s = e.state;
        return {
          name: e.name,
          state: s?.state === 'running' ? 'unresponsive' : 'starting',
          pid: s?.pid ?? 0,
          qemuPid: s?.qemuPid ?? null,
          accel: s?.accel ?? '',
          macs: s?.macs ?? [],
          addresses: [],
          forwards: [],
          startedAt: s?.startedAt ?? 0,
          uptimeS: s ? Math.round((Date.now() - s.startedAt) / 1000) : 0,
          dir: e.dir,
          image: s?.image ?? null,
          kernel: s?.kernel ?? null,
        };
      }
    }),
  );
}

/**
 * Finds a running VM by name.
 * @throws VmnetError E_NO_VM (none, or a dead one, which is cleaned up)
 */
export async function findVm(name: string, env: NodeJS.ProcessEnv = process.env): Promise<VmEntry> {
  validateName(name);
  const root = runtimeRoot(env);
  const e = await inspectVmDir(root, name);
  if (!e) throw new VmnetError('E_NO_VM', `no VM named ${name} is running (vmnet ls lists them)`);
  if (!e.alive) {
    const c = await cleanStale(root, e);
    throw new VmnetError('E_NO_VM', `VM ${name} is not running: its process died${c?.qemuKilled ? '; its orphaned QEMU was killed' : ''} and its state was cleaned up`);
  }
  return e;
}

const ctl = (e: VmEntry) => join(e.dir, FILES.control);

/**
 * Stops a VM: ACPI power-down, wait, quit, kill (done by its owner).
 * @returns how QEMU ended; null when the VM was already dead (its leftovers are cleaned)
 */
export async function stopVm(name: string, opts: { force?: boolean; timeoutMs?: number } = {}, env: NodeJS.ProcessEnv = process.env): Promise<VmExit> {
  const e = await findVm(name, env);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const r = await controlCall<{ exit: VmExit }>(ctl(e), { op: 'stop', force: opts.force ?? false, timeoutMs }, timeoutMs + 20_000);
  return r.exit;
}

/** Adds a forward to a running VM. @returns the forward as formatted by the VM */
export async function addForward(name: string, spec: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const r = await controlCall<{ forward: string }>(ctl(await findVm(name, env)), { op: 'forward-add', spec });
  return r.forward;
}

/** Removes a forward from a running VM. @throws VmnetError E_USAGE when it has no such forward */
export async function removeForward(name: string, spec: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await controlCall(ctl(await findVm(name, env)), { op: 'forward-rm', spec });
}

/** A running VM's forwards. */
export async function listForwards(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const r = await controlCall<{ forwards: string[] }>(ctl(await findVm(name, env)), { op: 'forward-ls' });
  return r.forwards;
}

/**
 * Waits until a running VM's guest answers the gateway's SYN on `port`.
 * @returns the guest's address
 */
export async function waitForVmPort(name: string, port: number, timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const r = await controlCall<{ address: string | null }>(ctl(await findVm(name, env)), { op: 'wait-port', port, timeoutMs }, timeoutMs + 5000);
  return r.address;
}

/**
 * How vmnet logs in to a running VM over SSH.
 * @throws VmnetError E_NO_VM when it is not running; E_UNREACHABLE when it has no SSH forward or vmnet did not seed it
 */
export async function sshTargetOf(name: string, env: NodeJS.ProcessEnv = process.env): Promise<SshTarget> {
  const { target, problem } = await sshOf(name, env);
  if (target === null) throw new VmnetError('E_UNREACHABLE', problem);
  return target;
}

/**
 * The SSH target of a running VM, or null and why there is none.
 * @throws VmnetError E_UNREACHABLE when it has no SSH forward at all (nothing to wait for either)
 */
async function sshOf(name: string, env: NodeJS.ProcessEnv): Promise<{ target: SshTarget; problem: null } | { target: null; problem: string }> {
  const { status } = await controlCall<{ status: VmStatus }>(ctl(await findVm(name, env)), { op: 'status' });
  const s = status.ssh;
  if (!s) throw new VmnetError('E_UNREACHABLE', unreachableWhy(name, null));
  if (s.user === null || s.identity === null || s.knownHosts === null || s.controlPath === null) {
    return { target: null, problem: unreachableWhy(name, s.port) };
  }
  return { target: { port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts, controlPath: s.controlPath }, problem: null };
}

/** What the VM's gateway saw of its boot (port 22 probed once it has a lease). */
export async function bootStatusOf(name: string, env: NodeJS.ProcessEnv = process.env): Promise<BootStatus> {
  const r = await controlCall<{ boot: BootStatus }>(ctl(await findVm(name, env)), { op: 'boot-status' }, 10_000);
  return r.boot;
}

/**
 * Waits until VM `name` runs a command over SSH (`vmnet wait NAME --ssh`).
 * @throws VmnetError E_TIMEOUT naming the stage the boot reached
 */
export async function waitForVmSsh(name: string, opts: WaitForSshOptions = {}, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { target } = await sshOf(name, env);
  await waitForSsh(name, target, () => bootStatusOf(name, env), opts);
}

/** The console socket of a running VM (raw bytes both ways). */
export async function consoleSocket(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return join((await findVm(name, env)).dir, FILES.console);
}

/**
 * Removes what is kept for VM `name`: its disk (made when it was run from an
 * image URL) and its SSH host key (made when vmnet seeded it).
 * @returns the directory removed
 * @throws VmnetError E_NAME_IN_USE while the VM runs; E_NO_VM when nothing is kept for it
 */
export async function removeVm(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  validateName(name);
  const dir = vmDiskDir(name, env);
  const root = await ensureRuntimeRoot(env);
  let claim;
  try {
    claim = await claimVmDir(root, name, true, () => ({ version: 1, name, pid: process.pid, pidStart: processStartTime(process.pid), qemuPid: null, state: 'starting', accel: '', startedAt: Date.now(), image: null, kernel: null, macs: [] }));
  } catch (e) {
    if (isVmnetError(e) && e.code === 'E_NAME_IN_USE') throw new VmnetError('E_NAME_IN_USE', `VM ${name} is running; stop it first (vmnet stop ${name}), then remove its disk`);
    throw e;
  }
  try {
    if (!(await removeVmDisk(name, env))) throw new VmnetError('E_NO_VM', `VM ${name} has nothing kept (${dir}): a VM run from an image URL keeps its disk there, a seeded VM its SSH host key`);
  } finally {
    await rm(claim.dir, { recursive: true, force: true });
  }
  return dir;
}
