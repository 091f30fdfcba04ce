/**
 * Theory of operation: the checks of `vmnet doctor` about vmnet's own
 * machinery on this host.
 *
 * KVM: `--accel auto` picks KVM when /dev/kvm opens, and an openable
 * /dev/kvm proves nothing, so the check boots the probe guest
 * (kvm-probe.ts) under TCG (does the probe work with this QEMU?) and then
 * under KVM with the launcher's own CPU flags. A failure under KVM is
 * written where the launcher's fallback keeps its verdict
 * (vm/accel-verdict.ts: the runtime root, this boot of the host, this
 * binary), so `vmnet run` after `vmnet doctor` goes straight to TCG; a pass
 * removes an earlier verdict about the same binary.
 *
 * The runtime directory (VM and switch sockets, the verdict) is created if
 * missing and checked private exactly as `vmnet run` does (vm/state.ts);
 * the cache and data directories (config/user-dirs.ts) and the test guest
 * are only looked at, with the guest build's prerequisites checked so a
 * missing tool is named before `vmnet demo`.
 */
import { lstatSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { chooseAccel } from '../qemu/binary.js';
import { clearKvmVerdict, writeKvmVerdict } from '../vm/accel-verdict.js';
import { ensureRuntimeRoot, runtimeRoot } from '../vm/state.js';
import { guestDir } from '../guest/cache.js';
import { cacheRoot, dataRoot } from '../config/user-dirs.js';
import { findBundledGuest } from '../guest/bundled.js';
import { guestInputs, readManifest } from '../guest/build.js';
import { checkGuestPrerequisites, prerequisitesMessage } from '../guest/tools.js';
import { probeBoot } from './kvm-probe.js';
import { sudo } from './host-checks.js';
import { makeCheck as check, type Check } from './report.js';

const TCG_NOTE = 'TCG (software emulation) will be used: slower than KVM; everything else works the same';

/** Who owns /dev/kvm and how, for the fix. */
function kvmAccessFix(device: string): string {
  try {
    const st = statSync(device);
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    if (st.gid !== 0 && (st.mode & 0o060) === 0o060) return `${sudo()}usermod -aG $(stat -c %G ${device}) ${userInfo().username}, then log in again (${device} is ${mode}, group gid ${st.gid})`;
    return `give your user access to ${device} (it is ${mode}, owned by uid ${st.uid}): Debian's udev rule makes it 0660 group kvm when the kvm group exists, then ${sudo()}usermod -aG kvm ${userInfo().username}`;
  } catch {
    return `give your user read-write access to ${device}`;
  }
}

/**
 * Whether KVM runs a guest here; records the verdict where the launcher reads it.
 * @param binary the QEMU binary (null: no usable QEMU, nothing probed)
 */
export async function kvmCheck(binary: string | null, env: NodeJS.ProcessEnv, opts: { timeoutMs: number; device?: string }): Promise<Check> {
  const id = 'kvm';
  const title = 'KVM';
  const device = opts.device ?? '/dev/kvm';
  if (process.platform !== 'linux') return check({ id, title, verdict: 'info', summary: `not Linux: vmnet run --accel auto uses ${chooseAccel('auto', device).accel}`, data: { usable: false, accel: chooseAccel('auto', device).accel } });
  if (!binary) return check({ id, title, verdict: 'info', summary: 'not probed: no usable QEMU (see above)', data: { usable: null } });
  const open = chooseAccel('auto', device);
  if (open.accel !== 'kvm') {
    const missing = open.note?.includes('ENOENT');
    return check({
      id,
      title,
      verdict: missing ? 'info' : 'warn',
      summary: missing ? `not usable: no ${device} (no hardware virtualization, or the kvm module is not loaded)` : `not usable: ${open.note?.replace(/^KVM not usable \((.*?)\).*$/, '$1') ?? device}`,
      detail: [TCG_NOTE],
      fix: missing ? null : kvmAccessFix(device),
      data: { usable: false, device, reason: open.note ?? null, accel: 'tcg' },
    });
  }
  const tcg = await probeBoot(binary, 'tcg', opts.timeoutMs, env);
  if (!tcg.passed) {
    return check({
      id,
      title,
      verdict: 'warn',
      summary: `not probed: the probe guest fails under TCG too (${tcg.reason}), so it says nothing about KVM`,
      detail: ['vmnet run --accel auto tries KVM and falls back to TCG if QEMU dies of a KVM error at start'],
      fix: 'report this with the output of vmnet doctor --json',
      data: { usable: null, tcgProbe: tcg },
    });
  }
  const kvm = await probeBoot(binary, 'kvm', opts.timeoutMs, env);
  // Where the verdict lives; an unusable runtime directory is its own failed check (runtimeDirCheck).
  const root = await ensureRuntimeRoot(env).catch(() => null);
  if (kvm.passed) {
    const cleared = root !== null && (await clearKvmVerdict(root, binary));
    return check({
      id,
      title,
      verdict: 'ok',
      summary: `KVM runs a guest here (probe boot ${kvm.elapsedMs} ms; TCG ${tcg.elapsedMs} ms)`,
      detail: cleared && root ? [`removed the earlier verdict that KVM fails from ${join(root, 'accel-verdict.json')}`] : [],
      data: { usable: true, accel: 'kvm', probeMs: kvm.elapsedMs, tcgProbeMs: tcg.elapsedMs },
    });
  }
  const reason = kvm.reason ?? 'unknown';
  const file = root === null ? null : await writeKvmVerdict(root, binary, reason).catch(() => null);
  return check({
    id,
    title,
    verdict: 'warn',
    summary: `not usable: ${kvm.stalled ? reason : `QEMU failed to start a KVM guest: ${reason}`}`,
    detail: [
      `${device} opens, but a guest does not run under KVM here (the probe boots under TCG in ${tcg.elapsedMs} ms)`,
      TCG_NOTE,
      file
        ? `remembered for this boot of the host in ${file}: vmnet run goes straight to TCG`
        : `not remembered (${root === null ? 'the runtime directory is unusable: see below' : 'no boot id'}): vmnet run tries KVM first and falls back to TCG each time`,
    ],
    fix: file ? `nothing; to try KVM again: rm ${file} (or vmnet run --accel kvm)` : null,
    data: { usable: false, accel: 'tcg', reason, stalled: kvm.stalled, verdictFile: file, probeMs: kvm.elapsedMs, tcgProbeMs: tcg.elapsedMs },
  });
}

/** Mode, owner and whether it is private, of a directory. */
function describeDir(path: string): { exists: boolean; mode: string | null; mine: boolean; private: boolean } {
  try {
    const st = lstatSync(path);
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    return { exists: true, mode, mine: st.uid === process.getuid?.(), private: st.isDirectory() && !st.isSymbolicLink() && (st.mode & 0o077) === 0 };
  } catch {
    return { exists: false, mode: null, mine: false, private: false };
  }
}

/** Where vmnet's runtime state goes, created and checked as vmnet run does. */
export async function runtimeDirCheck(env: NodeJS.ProcessEnv): Promise<Check> {
  const id = 'runtime-dir';
  const title = 'runtime dir';
  const from = env.VMNET_RUNTIME_DIR ? 'VMNET_RUNTIME_DIR' : env.XDG_RUNTIME_DIR?.startsWith('/') ? 'XDG_RUNTIME_DIR' : 'fallback: XDG_RUNTIME_DIR is unset';
  let root: string;
  try {
    root = await ensureRuntimeRoot(env);
  } catch (e) {
    let path = '';
    try {
      path = runtimeRoot(env);
    } catch {
      /* the message says why */
    }
    return check({ id, title, verdict: 'fail', summary: (e as Error).message, fix: 'set XDG_RUNTIME_DIR (or VMNET_RUNTIME_DIR) to a private directory of yours', data: { path } });
  }
  const d = describeDir(root);
  return check({ id, title, verdict: 'ok', summary: `${root} (${d.mode}, yours; ${from}): VM and switch sockets, the KVM verdict`, data: { path: root, mode: d.mode, source: from } });
}

/** Counts of what a directory's subdirectories hold, e.g. "images/ (2), guest/ (1)". */
function contents(root: string, subdirs: string[]): { text: string; counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  for (const d of subdirs) {
    try {
      counts[d] = readdirSync(join(root, d)).filter((n) => !n.startsWith('.') && !n.endsWith('.json') && !n.endsWith('.partial')).length;
    } catch {
      counts[d] = 0;
    }
  }
  return { text: subdirs.map((d) => `${d}/ (${counts[d]})`).join(', '), counts };
}

/**
 * One of vmnet's own per-user directories (config/user-dirs.ts): private
 * and ours, or not created yet.
 */
function userDirCheck(id: string, title: string, locate: () => string, holds: string, subdirs: string[]): Check {
  let root: string;
  try {
    root = locate();
  } catch (e) {
    return check({ id, title, verdict: 'warn', summary: (e as Error).message, fix: 'set HOME (or the XDG variable named)', data: { path: null } });
  }
  const d = describeDir(root);
  if (!d.exists) return check({ id, title, verdict: 'info', summary: `${root}: not created yet (${holds}; made 0700 on first use)`, data: { path: root, exists: false } });
  const c = contents(root, subdirs);
  const data = { path: root, exists: true, mode: d.mode, ...c.counts };
  if (!d.mine || !d.private) {
    return check({ id, title, verdict: 'warn', summary: `${root} is ${d.mine ? `open to others (${d.mode})` : 'not yours'}: vmnet refuses to use it`, fix: d.mine ? `chmod 700 ${root}` : `remove ${root} (as its owner), or set the XDG variable to a directory of yours`, data });
  }
  return check({ id, title, verdict: 'ok', summary: `${root} (${d.mode}, yours): ${c.text}`, data });
}

/** vmnet's cache: downloaded images and test guests. */
export const cacheDirCheck = (env: NodeJS.ProcessEnv): Check =>
  userDirCheck('cache-dir', 'cache dir', () => cacheRoot(env), 'downloaded images and the test guest', ['images', 'guest']);

/** vmnet's data: each VM's kept disk. */
export const dataDirCheck = (env: NodeJS.ProcessEnv): Check => userDirCheck('data-dir', 'data dir', () => dataRoot(env), "each VM's kept disk", ['vms']);

/** The test guest: built or not, from what, and whether it could be built now. */
export async function guestCheck(env: NodeJS.ProcessEnv): Promise<Check> {
  const id = 'guest';
  const title = 'test guest';
  let where: ReturnType<typeof guestDir>;
  try {
    where = guestDir(env);
  } catch (e) {
    return check({ id, title, verdict: 'warn', summary: (e as Error).message, fix: 'set HOME, XDG_CACHE_HOME or VMNET_GUEST_DIR', data: {} });
  }
  const pre = await checkGuestPrerequisites({ env });
  const cannot = prerequisitesMessage(pre, 'it cannot be built here');
  const fix = /run: (.*?)(?:;|$)/.exec(cannot ?? '')?.[1] ?? null;
  let built = true;
  try {
    findBundledGuest(env);
  } catch {
    built = false;
  }
  const data: Record<string, unknown> = { dir: where.dir, source: where.source, built, buildable: cannot === null };
  if (!built) {
    if (cannot) return check({ id, title, verdict: 'warn', summary: `not built, and ${cannot}`, fix: fix ?? 'see above', data });
    const size = pre.kernel?.size ? ` (downloads ${(pre.kernel.size / 1e6).toFixed(0)} MB)` : '';
    return check({ id, title, verdict: 'info', summary: `not built yet: vmnet demo builds it on first use in ${where.dir}${size}`, fix: 'nothing (or build it now: vmnet guest build)', data });
  }
  const m = readManifest(where.dir);
  data.kernelPackage = m?.kernelPackage ?? null;
  const current = pre.kernel && pre.busybox ? (await guestInputs(pre.kernel, pre.busybox)).inputsKey : null;
  const stale = current !== null && m?.inputsKey !== undefined && m.inputsKey !== current;
  data.upToDate = current === null ? null : !stale;
  const what = m?.kernelPackage ? `${m.kernelPackage} ${m.kernelVersion ?? ''}`.trim() : 'an earlier build';
  if (stale) return check({ id, title, verdict: 'info', summary: `built in ${where.dir} from ${what}; a newer kernel or busybox is installed`, fix: 'vmnet guest build (rebuilds it)', data });
  return check({ id, title, verdict: 'ok', summary: `built in ${where.dir} (${where.source}) from ${what}`, detail: cannot ? [`a rebuild would fail: ${cannot}`] : [], data });
}
