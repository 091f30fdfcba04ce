/**
 * Theory of operation: the one place that says where vmnet keeps its
 * per-user runtime state (VM directories, switches, the accelerator
 * verdict), so VMs, switches and every command agree.
 *
 * `$VMNET_RUNTIME_DIR` (absolute; a relative value is an error, since
 * processes with different working directories would disagree), else
 * `$XDG_RUNTIME_DIR/vmnet` when XDG_RUNTIME_DIR is absolute (the XDG Base
 * Directory spec: a relative value must be ignored), else
 * `<tmpdir>/vmnet-<uid>`. Only the path is decided here; creating it and
 * checking that it is a private directory of the user is the caller's
 * business (vm/state.ts, switch/runtime.ts).
 */
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { VmnetError } from '../errors.js';

/**
 * The runtime root path (not created).
 * @param env environment holding VMNET_RUNTIME_DIR / XDG_RUNTIME_DIR
 * @throws VmnetError E_USAGE when VMNET_RUNTIME_DIR is relative
 */
export function runtimeRoot(env: NodeJS.ProcessEnv = process.env): string {
  const own = env.VMNET_RUNTIME_DIR;
  if (own) {
    if (!isAbsolute(own)) throw new VmnetError('E_USAGE', `VMNET_RUNTIME_DIR must be an absolute path, not ${JSON.stringify(own)}`);
    return normalize(own).replace(/(.)\/$/, '$1');
  }
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'vmnet');
  return join(tmpdir(), `vmnet-${process.getuid?.() ?? 'user'}`);
}
