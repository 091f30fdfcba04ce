/**
 * Theory of operation: the host facts `vmnet doctor` reports that are not
 * vmnet's own state: the QEMU binary and its version (vmnet talks to QEMU
 * through `-netdev stream`, new in QEMU 7.2; `vmnet gateway --tcp-port`
 * serves older ones through `-netdev socket`), util-linux setpriv (QEMU
 * dies with vmnet), the sysctls that decide what unprivileged users may do
 * (`net.ipv4.ip_unprivileged_port_start` for forwards,
 * `net.ipv4.ping_group_range` for ping to the outside, with its helper),
 * IPv6 on the host, and the
 * OpenSSH client. Each returns a Check (report.ts); reading /proc and
 * asking programs for their version is all they do.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { findOnPath, findQemu, qemuForHost } from '../qemu/binary.js';
import { findSetpriv } from '../qemu/process.js';
import { unprivilegedPortStart } from '../services/port-forward/bind.js';
import { pingStatus } from '../services/ping/status.js';
import { makeCheck as check, type Check } from './report.js';

const run = promisify(execFile);

/** `sudo ` unless the user is root. */
export const sudo = (): string => (process.getuid?.() === 0 ? '' : 'sudo ');


/** The oldest QEMU with `-netdev stream`. */
const STREAM_QEMU = [7, 2] as const;

/**
 * Parses `qemu-system-* --version`.
 * @returns [major, minor, micro], or null
 */
export function parseQemuVersion(text: string): [number, number, number] | null {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/**
 * The QEMU binary and whether it speaks `-netdev stream`.
 * @returns the check and the binary (null when there is none to use)
 */
export async function qemuCheck(explicit: string | undefined, env: NodeJS.ProcessEnv): Promise<{ check: Check; binary: string | null }> {
  let binary: string;
  try {
    binary = findQemu(explicit, env);
  } catch (e) {
    const host = qemuForHost();
    return {
      binary: null,
      check: check({ id: 'qemu', title: 'QEMU', verdict: 'fail', summary: (e as Error).message, fix: explicit ? 'pass --qemu the path of a qemu-system binary' : `${sudo()}apt-get install ${host.pkg}`, data: { binary: null } }),
    };
  }
  let text = '';
  try {
    text = (await run(binary, ['--version'], { timeout: 20_000 })).stdout;
  } catch (e) {
    return { binary: null, check: check({ id: 'qemu', title: 'QEMU', verdict: 'fail', summary: `${binary} --version failed: ${(e as Error).message.split('\n')[0]}`, fix: `reinstall ${qemuForHost().pkg}`, data: { binary } }) };
  }
  const v = parseQemuVersion(text);
  const version = v ? v.join('.') : 'unknown';
  const stream = v !== null && (v[0] > STREAM_QEMU[0] || (v[0] === STREAM_QEMU[0] && v[1] >= STREAM_QEMU[1]));
  const data = { binary, version, netdevStream: stream };
  if (stream) return { binary, check: check({ id: 'qemu', title: 'QEMU', verdict: 'ok', summary: `${binary} ${version}: -netdev stream (QEMU 7.2 or newer) for vmnet run`, data }) };
  return {
    binary: null,
    check: check({
      id: 'qemu',
      title: 'QEMU',
      verdict: 'fail',
      summary: `${binary} ${version} is older than 7.2: no -netdev stream, so vmnet run cannot wire a VM`,
      detail: ['vmnet gateway --tcp-port PORT serves an older QEMU through -netdev socket,connect=127.0.0.1:PORT'],
      fix: `install QEMU 7.2 or newer (Debian 12: ${sudo()}apt-get install ${qemuForHost().pkg}), or pass --qemu PATH`,
      data,
    }),
  };
}

/** util-linux setpriv: QEMU started through it dies with vmnet. */
export function setprivCheck(env: NodeJS.ProcessEnv): Check {
  const path = findSetpriv(env);
  if (path) return check({ id: 'setpriv', title: 'setpriv', verdict: 'ok', summary: `${path}: QEMU is killed by the kernel if vmnet dies`, fix: null, data: { path } });
  if (process.platform !== 'linux') return check({ id: 'setpriv', title: 'setpriv', verdict: 'info', summary: 'not Linux: a QEMU left by a killed vmnet is stopped by the next vmnet ls', fix: null, data: { path: null } });
  return check({
    id: 'setpriv',
    title: 'setpriv',
    verdict: 'warn',
    summary: 'util-linux setpriv is not on PATH: a QEMU whose vmnet was killed keeps running, cut off, until the next vmnet ls stops it',
    fix: `${sudo()}apt-get install util-linux`,
    data: { path: null },
  });
}

/** The unprivileged user's lowest bindable port, for forwards. */
export function portsCheck(): Check {
  const start = unprivilegedPortStart();
  const data = { ipUnprivilegedPortStart: start };
  const title = 'low ports';
  if (process.getuid?.() === 0) return check({ id: 'ports', title, verdict: 'ok', summary: `net.ipv4.ip_unprivileged_port_start = ${start}; you are root: forwards may bind any host port`, fix: null, data });
  if (start === 0) return check({ id: 'ports', title, verdict: 'ok', summary: 'net.ipv4.ip_unprivileged_port_start = 0: forwards may bind any host port', fix: null, data });
  return check({
    id: 'ports',
    title,
    verdict: 'info',
    summary: `net.ipv4.ip_unprivileged_port_start = ${start}: forwards from host ports below ${start} are refused (use -p ${Math.max(start, 1024) + 1000}:80, not -p 80:80)`,
    fix: `only if you want them: ${sudo()}sysctl -w net.ipv4.ip_unprivileged_port_start=0 (and a file in /etc/sysctl.d/ to keep it)`,
    data,
  });
}

/**
 * Ping to the outside: ping sockets for the user's groups, and the helper
 * that holds them built or buildable (services/ping/status.ts).
 */
export function pingCheck(): Check {
  const s = pingStatus();
  const data = { pingGroupRange: s.range, allowed: s.socketsAllowed, helper: s.helper, compiler: s.compiler };
  if (s.range === null) return check({ id: 'ping', title: 'ping sockets', verdict: 'info', summary: "net.ipv4.ping_group_range is not readable here: guests' pings to the outside are not relayed", fix: null, data });
  const [lo, hi] = s.range;
  const noHelper = s.helper === null && s.compiler === null;
  return check({
    id: 'ping',
    title: 'ping sockets',
    verdict: s.ok ? 'ok' : 'warn',
    summary: `net.ipv4.ping_group_range = ${lo} ${hi}: ${s.socketsAllowed ? 'your groups may' : 'no group of yours may'} open ping sockets`,
    detail: s.ok
      ? [`guests' pings to the outside are relayed through them (${s.helper ? `helper ${s.helper}` : `helper built at the first ping with ${s.compiler}`})`]
      : [
          ...(s.socketsAllowed ? [] : ["guests' pings to the outside get no reply until ping sockets are allowed (none is ever made up)"]),
          ...(noHelper ? ['the ping helper is not built and no C compiler was found to build it'] : []),
        ],
    fix: !s.socketsAllowed
      ? `${sudo()}sysctl -w net.ipv4.ping_group_range="0 2147483647" (and a file in /etc/sysctl.d/ to keep it)${noHelper ? `; ${sudo()}apt-get install gcc libc6-dev` : ''}`
      : noHelper
        ? `${sudo()}apt-get install gcc libc6-dev (vmnet builds its ping helper at the next ping)`
        : null,
    data,
  });
}

/** IPv6 on the host: addresses by scope. */
export function ipv6Check(): Check {
  let table = '';
  try {
    table = readFileSync('/proc/net/if_inet6', 'utf8');
  } catch {
    return check({
      id: 'ipv6',
      title: 'IPv6',
      verdict: 'info',
      summary: 'IPv6 is off on this host (no /proc/net/if_inet6)',
      detail: ["guests are IPv4-only anyway; IPv6 nameservers in resolv.conf are skipped for the IPv4 ones, and [::1]:PORT forwards cannot bind"],
      fix: null,
      data: { enabled: false },
    });
  }
  const rows = table.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/));
  const scope = (s: string) => rows.filter((r) => r[3] === s).length;
  const loopback = scope('10') > 0;
  const global = scope('00');
  return check({
    id: 'ipv6',
    title: 'IPv6',
    verdict: 'info',
    summary: `IPv6 is on: ${loopback ? '::1' : 'no ::1'}, ${global} global and ${scope('20')} link-local address${global === 1 ? '' : 'es'}`,
    detail: ["guests are IPv4-only (vmnet has no IPv6 inside yet); IPv6 DNS upstreams and [::1]:PORT forwards work"],
    fix: null,
    data: { enabled: true, loopback, global },
  });
}

/** The OpenSSH client: ssh-keygen makes the keys a seeded guest gets, ssh and scp reach it (vmnet ssh, exec, cp). */
export async function sshCheck(env: NodeJS.ProcessEnv): Promise<Check> {
  const path = findOnPath('ssh', env);
  const missing = ['ssh', 'ssh-keygen', 'scp'].filter((p) => findOnPath(p, env) === null);
  if (!path || missing.length) {
    return check({ id: 'ssh', title: 'OpenSSH', verdict: 'warn', summary: `no ${missing.join(', ')} on PATH: disk images cannot be seeded with keys (run them with --cloud-init off), and vmnet ssh, exec and cp cannot reach guests`, fix: `${sudo()}apt-get install openssh-client`, data: { path, missing } });
  }
  let version = 'unknown version';
  try {
    const r = await run(path, ['-V'], { timeout: 10_000 });
    version = (r.stderr || r.stdout).trim().split('\n')[0] ?? version;
  } catch (e) {
    version = String((e as { stderr?: string }).stderr ?? '').trim().split('\n')[0] || version;
  }
  return check({ id: 'ssh', title: 'OpenSSH', verdict: 'ok', summary: `${version}: cloud images are seeded with vmnet's key; vmnet ssh, exec and cp NAME reach them`, fix: null, data: { path, version } });
}

/** Node itself. */
export function nodeCheck(): Check {
  const major = Number(process.versions.node.split('.')[0]);
  const ok = major >= 20;
  return check({
    id: 'node',
    title: 'Node.js',
    verdict: ok ? 'ok' : 'fail',
    summary: `${process.version}${ok ? '' : ': vmnet needs Node 20 or newer'}`,
    fix: ok ? null : 'install Node 20 or newer (https://nodejs.org/ or your distribution)',
    data: { version: process.versions.node },
  });
}
