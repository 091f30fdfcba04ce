/**
 * Theory of operation: `vmnet run` as a library call. planRun() turns user
 * options into a QEMU command line and a network plan, checking everything
 * that can be checked before anything starts (image readable and its format,
 * QEMU present, forward specs, memory size); runVm() starts QEMU, keeps the
 * serial console on the terminal (or a file), and stops QEMU when asked.
 *
 * Network: until vmnet's own gateway carries TCP (the gateway issues), the
 * `user` network is QEMU's built-in user net (libslirp), with vmnet's safer
 * forward defaults (127.0.0.1 binds). The plan says so in `notes`.
 */
import { basename } from 'node:path';
import { VmnetError } from '../errors.js';
import type { ForwardSpec } from '../config/forward.js';
import { qemuArgs, macFromName, type QemuSpec, type SerialSpec } from '../qemu/args.js';
import { chooseAccel, findQemu, type Accel } from '../qemu/binary.js';
import { detectImageFormat } from '../qemu/image.js';
import { QemuProcess, type QemuExit } from '../qemu/process.js';
import { access, constants } from 'node:fs/promises';

export interface RunOptions {
  image?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  snapshot?: boolean;
  memory?: string;
  cpus?: number;
  name?: string;
  accel?: Accel | 'auto';
  qemu?: string;
  net?: 'user' | 'none';
  forwards?: ForwardSpec[];
  console?: string;
  extraArgs?: string[];
}

export interface RunPlan {
  binary: string;
  args: string[];
  spec: QemuSpec;
  /** One-line remarks for the user (accelerator fallback, network backend). */
  notes: string[];
}

/**
 * Parses a memory size: plain MiB, or with a K/M/G/T suffix.
 * @returns MiB
 * @throws VmnetError E_USAGE
 */
export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  const scale: Record<string, number> = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };
  const mib = m ? Math.floor(Number(m[1]) * scale[m[2]!.toLowerCase()]!) : NaN;
  if (!(mib >= 16)) throw new VmnetError('E_USAGE', `bad --memory ${text}: give a size such as 512M or 2G (at least 16M)`);
  return mib;
}

function parseConsole(text: string): SerialSpec {
  if (text === 'stdio' || text === 'terminal') return { kind: 'terminal' };
  if (text === 'none') return { kind: 'none' };
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new VmnetError('E_USAGE', `bad --console ${text}: use stdio, none or file:PATH`);
}

async function readable(path: string, what: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new VmnetError('E_NO_FILE', `${what} ${path} does not exist or is not readable; check the path`);
  }
}

/**
 * Validates options and builds the QEMU command line without starting anything.
 * @throws VmnetError for anything the user must fix
 */
export async function planRun(o: RunOptions): Promise<RunPlan> {
  if (!o.image && !o.kernel) throw new VmnetError('E_USAGE', 'nothing to boot: give a disk IMAGE or --kernel');
  if ((o.initrd || o.append) && !o.kernel) throw new VmnetError('E_USAGE', '--initrd and --append need --kernel');
  const notes: string[] = [];
  const format = o.image ? await detectImageFormat(o.image) : undefined;
  if (o.kernel) await readable(o.kernel, 'kernel');
  if (o.initrd) await readable(o.initrd, 'initrd');
  const memoryMiB = parseMemory(o.memory ?? '1G');
  const cpus = o.cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 256) throw new VmnetError('E_USAGE', `bad --cpus ${o.cpus}: give a whole number from 1 to 256`);
  const binary = findQemu(o.qemu);
  const { accel, note } = chooseAccel(o.accel ?? 'auto');
  if (note) notes.push(note);
  const name = o.name ?? (o.image ? basename(o.image).replace(/\.(qcow2|raw|img)$/i, '') : basename(o.kernel!));
  const nics: QemuSpec['nics'] = [];
  if ((o.net ?? 'user') === 'user') {
    nics.push({ mac: macFromName(name), backend: { kind: 'qemu-user', forwards: o.forwards ?? [] } });
    notes.push("network: QEMU's built-in user net (vmnet's own gateway takes over once it carries TCP)");
  } else if (o.forwards?.length) {
    throw new VmnetError('E_USAGE', '--forward needs a network; drop --net none');
  }
  const spec: QemuSpec = {
    accel,
    memoryMiB,
    cpus,
    name,
    serial: parseConsole(o.console ?? 'stdio'),
    nics,
    extra: o.extraArgs ?? [],
    ...(o.image ? { drive: { path: o.image, format: format!, snapshot: o.snapshot ?? false } } : {}),
    ...(o.kernel ? { kernel: o.kernel } : {}),
    ...(o.initrd ? { initrd: o.initrd } : {}),
    ...(o.append !== undefined ? { append: o.append } : {}),
  };
  return { binary, args: qemuArgs(spec), spec, notes };
}

/**
 * Starts QEMU for a plan and waits for it to exit. `stop` (e.g. on SIGINT)
 * terminates QEMU.
 * @returns QEMU's exit status
 */
export async function runVm(plan: RunPlan, onStop: (stop: () => void) => void): Promise<QemuExit> {
  const interactive = plan.spec.serial.kind === 'terminal';
  const qemu = new QemuProcess(plan.binary, plan.args, interactive ? 'inherit' : 'ignore');
  onStop(() => void qemu.kill());
  return qemu.exited;
}
