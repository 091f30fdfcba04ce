/**
 * Theory of operation: can guests ping the outside from here, and if not,
 * what one command fixes it. Two things must hold: the ping helper is built
 * (or a C compiler is there to build it: helper-build.ts), and the kernel
 * lets this process open ping sockets — net.ipv4.ping_group_range (per
 * network namespace, "1 0" by default on Debian: nobody) must include the
 * process's effective group or one of its supplementary groups, which is
 * exactly the test Linux makes in ping_init_sock(). Read-only: nothing is
 * built, opened or changed. `vmnet doctor` prints `line`; the gateway prints
 * deniedLine() once when a socket is refused.
 */
import { readFileSync } from 'node:fs';
import { findCompiler, findHelper } from './helper-build.js';

const RANGE_FILE = '/proc/sys/net/ipv4/ping_group_range';

export interface PingStatus {
  /** True when a guest's ping to the outside can work now (the helper may still be built at the first ping). */
  ok: boolean;
  /** The built helper, or null. */
  helper: string | null;
  /** The C compiler that would build it, or null. */
  compiler: string | null;
  /** Whether this process may open ping sockets; null when the kernel has no such setting. */
  socketsAllowed: boolean | null;
  /** net.ipv4.ping_group_range, or null. */
  range: readonly [number, number] | null;
  /** One line for a person: what works, or what is off and what to run. */
  line: string;
}

function readRange(): [number, number] | null {
  try {
    const [lo, hi] = readFileSync(RANGE_FILE, 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo!, hi!] : null;
  } catch {
    return null;
  }
}

/** This process's effective group and supplementary groups. */
function groups(): number[] {
  return [process.getegid?.() ?? 0, ...(process.getgroups?.() ?? [])];
}

/** True when ping_group_range lets this process open ping sockets (null: no such setting). */
function socketsAllowed(range: readonly [number, number] | null): boolean | null {
  if (range === null) return null;
  return groups().some((g) => g >= range[0] && g <= range[1]);
}

/**
 * The gateway's line when the kernel refused a ping socket (EACCES): which
 * group, what the setting is, and the sysctl that allows it.
 */
export function deniedLine(): string {
  const range = readRange();
  const gid = process.getegid?.() ?? 0;
  const now = range ? ` (net.ipv4.ping_group_range is "${range[0]} ${range[1]}")` : '';
  return `ping to the outside is off: this host does not allow ping sockets for group ${gid}${now}; allow them, as root, with: sysctl -w net.ipv4.ping_group_range="0 2147483647" (or "${gid} ${gid}" for this group alone)`;
}

/** Whether guests can ping the outside from this process, with one line saying so (for `vmnet doctor`). */
export function pingStatus(): PingStatus {
  const helper = findHelper();
  const compiler = helper === null ? findCompiler() : null;
  const range = readRange();
  const allowed = socketsAllowed(range);
  const problems: string[] = [];
  if (helper === null && compiler === null) problems.push('the ping helper is not built and no C compiler was found to build it (install gcc: apt-get install gcc libc6-dev)');
  if (allowed === false) problems.push(deniedLine().replace(/^ping to the outside is off: /, ''));
  if (allowed === null) problems.push('this kernel has no ping sockets (no net.ipv4.ping_group_range)');
  const how = helper ? `helper ${helper}` : `helper built at the first ping with ${compiler}`;
  const line = problems.length === 0 ? `ping to the outside: available (${how}; ping sockets allowed for group ${groups().find((g) => range !== null && g >= range[0] && g <= range[1])})` : `ping to the outside is off: ${problems.join('; ')}`;
  return { ok: problems.length === 0, helper, compiler, socketsAllowed: allowed, range, line };
}
