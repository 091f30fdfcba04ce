/**
 * Theory of operation: the two qemu-img commands vmnet runs on a VM's kept
 * disk, always with every format stated (`-f` for the overlay, `-F` for its
 * base), so qemu-img never probes either file:
 *
 *     qemu-img create -q -f qcow2 -b BASE -F raw|qcow2 OVERLAY [SIZE]
 *     qemu-img resize -q -f qcow2 OVERLAY SIZE
 *
 * qemu-img comes with QEMU (Debian: qemu-utils). Its failure is reported
 * with its own last line.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VmnetError } from '../errors.js';
import { findOnPath } from '../qemu/binary.js';
import type { ImageFormat } from '../qemu/image.js';

const run = promisify(execFile);

function qemuImg(env: NodeJS.ProcessEnv): string {
  const p = findOnPath('qemu-img', env);
  if (!p) throw new VmnetError('E_NO_QEMU', 'qemu-img not found on PATH; install it (Debian/Ubuntu: apt-get install qemu-utils)');
  return p;
}

async function exec(env: NodeJS.ProcessEnv, args: string[], what: string): Promise<void> {
  try {
    await run(qemuImg(env), args, { env });
  } catch (e) {
    if (e instanceof VmnetError) throw e;
    const err = e as { stderr?: string; message: string };
    const last = (err.stderr ?? '').trim().split('\n').at(-1) || err.message;
    throw new VmnetError('E_QEMU_FAILED', `qemu-img could not ${what}: ${last}`, { cause: e });
  }
}

/**
 * Creates a qcow2 overlay of `base`.
 * @param size virtual size in bytes, or null for the base's
 */
export function createOverlay(path: string, base: string, baseFormat: ImageFormat, size: number | null, env: NodeJS.ProcessEnv): Promise<void> {
  return exec(env, ['create', '-q', '-f', 'qcow2', '-b', base, '-F', baseFormat, path, ...(size !== null ? [String(size)] : [])], `create the disk ${path}`);
}

/** Grows a qcow2 image to `size` bytes. */
export function growImage(path: string, size: number, env: NodeJS.ProcessEnv): Promise<void> {
  return exec(env, ['resize', '-q', '-f', 'qcow2', path, String(size)], `grow the disk ${path}`);
}
