/**
 * Theory of operation: the names completion offers, read from the runtime
 * directory (config/runtime-dir.ts) without side effects: VMs whose owner
 * process lives (vm/state.ts liveVmNames) and the switch directories
 * present. Any failure (no runtime directory yet, a relative
 * VMNET_RUNTIME_DIR) means no names, never an error on the user's terminal.
 */
import { runtimeRoot } from '../../config/runtime-dir.js';
import { liveVmNames } from '../../vm/state.js';
import { listSwitchNames } from '../../switch/runtime.js';
import type { Names } from './complete.js';

/** Running VMs and switches of this user. */
export async function runningNames(env: NodeJS.ProcessEnv): Promise<Names> {
  try {
    const root = runtimeRoot(env);
    return { vms: await liveVmNames(root), switches: await listSwitchNames(root) };
  } catch {
    return { vms: [], switches: [] };
  }
}
