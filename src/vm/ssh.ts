/**
 * Theory of operation: reaching a seeded guest with the system's OpenSSH
 * client (`ssh`, `scp`), for `vmnet ssh`, `exec`, `cp`, `wait --ssh` and the
 * library's `vm.exec()` / `copyTo()` / `copyFrom()`.
 *
 * The target: the VM's SSH forward on 127.0.0.1:PORT, the login user its
 * seed created, vmnet's own key (ssh-keys.ts; IdentitiesOnly, so agent keys
 * and ~/.ssh keys are not offered), and the known_hosts file vmnet wrote in
 * the VM's runtime directory with the exact host key from the seed:
 * `StrictHostKeyChecking=yes`, host key algorithm ed25519 only. Nothing
 * trusts a key on first use.
 *
 * One master connection per VM (OpenSSH ControlMaster): `ensureMaster()`
 * runs `true` with ControlMaster=auto, which authenticates and, the first
 * time, leaves the master in the background (ControlPersist ends it after 10
 * idle minutes, and it ends with the VM's connection), so every later
 * command rides the existing session and costs no key exchange. Its socket is `ssh.sock` in
 * the VM's runtime directory, or, when that path would pass what a unix
 * socket path may hold (108 bytes, minus the 17 OpenSSH adds to a
 * temporary name), a short one in a private directory under /tmp.
 *
 * Failures to reach the guest at all are told apart from the command's own
 * failures: starting the master (authentication included) is a step of its
 * own, its stderr classified (`classify`), and a command's exit status 255
 * counts as the command's only while the master is still there afterwards
 * (`ssh -O check`). Such failures throw VmnetError E_UNREACHABLE; the CLI
 * gives them exit code 125.
 *
 * A remote command is one string for the guest's shell: argv words are
 * quoted for POSIX sh (`'…'`), `--workdir` is a `cd` before it, `--env` an
 * `env K=V` prefix, `--user` a `sudo -n -u U --` prefix (the login user
 * has passwordless sudo).
 */
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmnetError } from '../errors.js';
import { ensurePrivateDirSync } from '../switch/runtime.js';

/** Where the SSH forward listens. */
export const SSH_HOST = '127.0.0.1';
/** The master connection lingers this long without a session. */
export const CONTROL_PERSIST_S = 600;

/** Everything needed to reach a guest over SSH. */
export interface SshTarget {
  port: number;
  user: string;
  /** vmnet's private key. */
  identity: string;
  /** The known_hosts file holding the guest's host key for [127.0.0.1]:port. */
  knownHosts: string;
  /** The master connection's socket. */
  controlPath: string;
}

/** Most bytes of a unix socket path (sun_path, 108 with its NUL), less OpenSSH's temporary suffix (17). */
const MAX_CONTROL_PATH = 107 - 17;

/**
 * Why vmnet cannot log in to a running VM (the message of its E_UNREACHABLE).
 * @param name the VM's name
 * @param forwardPort its SSH forward's host port, or null when it has none
 */
export function unreachableWhy(name: string, forwardPort: number | null): string {
  return forwardPort === null
    ? `VM ${name} has no SSH forward (started with --no-ssh, without --net user, or a --kernel boot without --cloud-init on)`
    : `VM ${name} was not seeded by vmnet (--cloud-init off): vmnet has no key or host key for it; use ssh -p ${forwardPort} yourself`;
}

/**
 * The master connection's socket for a VM: in its runtime directory, else a
 * short path in a private directory of the user's under /tmp.
 * @param vmDir the VM's runtime directory
 */
export function controlPathFor(vmDir: string): string {
  const inDir = join(vmDir, 'ssh.sock');
  if (Buffer.byteLength(inDir) <= MAX_CONTROL_PATH) return inDir;
  const short = join(tmpdir(), `vmnet-ssh-${process.getuid?.() ?? 'u'}`);
  ensurePrivateDirSync(short);
  return join(short, createHash('sha256').update(vmDir).digest('hex').slice(0, 16));
}

/**
 * OpenSSH options for a target (ssh and scp alike): identity, strict host
 * key checking against vmnet's known_hosts, the master connection, timeouts.
 */
export function sshOptions(t: SshTarget): string[] {
  const o = (k: string, v: string | number) => ['-o', `${k}=${v}`];
  return [
    '-i', t.identity,
    ...o('IdentitiesOnly', 'yes'),
    ...o('UserKnownHostsFile', t.knownHosts),
    ...o('StrictHostKeyChecking', 'yes'),
    ...o('HostKeyAlgorithms', 'ssh-ed25519'),
    ...o('ControlPath', t.controlPath),
    ...o('ControlMaster', 'auto'),
    ...o('ControlPersist', CONTROL_PERSIST_S),
    ...o('ConnectTimeout', 15),
    ...o('ServerAliveInterval', 5),
    ...o('ServerAliveCountMax', 6),
  ];
}

/** `ssh` arguments that reach the guest: options, port, USER@127.0.0.1 (a command may follow). */
export function sshArgs(t: SshTarget): string[] {
  return [...sshOptions(t), '-p', String(t.port), `${t.user}@${SSH_HOST}`];
}

/** Quotes a word for POSIX sh. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RemoteOptions {
  /** Run as this user (sudo -n -u). */
  user?: string;
  /** Change to this directory first. */
  workdir?: string;
  /** Environment variables for the command. */
  env?: Record<string, string>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The command line the guest's shell runs for `argv`.
 * @throws VmnetError E_USAGE for an empty argv or a bad variable name
 */
export function remoteCommand(argv: string[], o: RemoteOptions = {}): string {
  if (argv.length === 0) throw new VmnetError('E_USAGE', 'no command given (vmnet exec NAME -- CMD ARGS…)');
  const words: string[] = [];
  if (o.user !== undefined) words.push('sudo', '-n', '-u', shQuote(o.user), '--');
  const env = Object.entries(o.env ?? {});
  if (env.length) {
    for (const [k] of env) if (!ENV_NAME.test(k)) throw new VmnetError('E_USAGE', `bad --env ${k}: a variable name is letters, digits and _, not starting with a digit`);
    words.push('env', ...env.map(([k, v]) => shQuote(`${k}=${v}`)));
  }
  // env and sudo read every leading NAME=VALUE word as an assignment, a command
  // named `./a=b` included: past them, such a command is run through sh's exec.
  if (words.length && argv[0]!.includes('=')) words.push('/bin/sh', '-c', shQuote('exec "$@"'), 'sh');
  words.push(...argv.map(shQuote));
  const cmd = words.join(' ');
  return o.workdir !== undefined ? `cd -- ${shQuote(o.workdir)} && exec ${cmd}` : `exec ${cmd}`;
}

/** What stopped ssh from reaching the guest, from its stderr. */
export type SshFailure = 'key-refused' | 'host-key' | 'refused' | 'closed' | 'timeout' | 'other';

/** Classifies an ssh connection failure by its message. */
export function classifySshFailure(stderr: string): SshFailure {
  if (/Permission denied/.test(stderr)) return 'key-refused';
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No (?:ED25519 )?host key is known/i.test(stderr)) return 'host-key';
  if (/Connection refused/.test(stderr)) return 'refused';
  if (/timed out/i.test(stderr)) return 'timeout';
  if (/Connection (?:closed|reset)|kex_exchange_identification|Broken pipe/.test(stderr)) return 'closed';
  return 'other';
}

/** One line for a failure kind. */
export function describeSshFailure(kind: SshFailure, stderr: string): string {
  switch (kind) {
    case 'key-refused':
      return "the guest refused vmnet's key (its user or key was not set up: was it seeded? --cloud-init off, or a disk seeded by another tool)";
    case 'host-key':
      return "the guest's host key is not the one vmnet gave it (user-data that sets ssh_keys, or a disk seeded elsewhere)";
    case 'refused':
      return 'nothing accepts connections on the SSH forward';
    case 'timeout':
      return 'the guest did not answer in time';
    case 'closed':
      return 'the guest closed the connection before SSH started (sshd not up yet?)';
    default:
      return `ssh failed: ${lastLine(stderr)}`;
  }
}

const lastLine = (s: string): string => s.trim().split('\n').filter(Boolean).pop() ?? 'no message';

/** The result of running a program to its end. */
interface Ran {
  code: number;
  stderr: string;
}

function run(bin: string, args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && e.code === 'ENOENT') resolve({ code: 127, stderr: `${bin}: not found (install OpenSSH's client: apt-get install openssh-client)` });
      else resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 255, stderr: String(stderr) });
    });
  });
}

/** True when the VM's master connection is up. */
export async function masterAlive(t: SshTarget): Promise<boolean> {
  return (await run('ssh', [...sshOptions(t), '-O', 'check', '-p', String(t.port), `${t.user}@${SSH_HOST}`], 5000)).code === 0;
}

/**
 * Makes sure the VM's master connection is up (starting it authenticates).
 * @returns null when it is, else why not (kind and one line)
 */
export async function tryMaster(t: SshTarget, timeoutMs = 30_000): Promise<{ kind: SshFailure; message: string } | null> {
  // `true` over ControlMaster=auto: the first caller becomes the master (ControlPersist moves it to the
  // background, its stdio on /dev/null), later ones ride it; two that race both succeed and the loser
  // just exits (an `ssh -f -N` loser would stay behind as a stray connection).
  const r = await run('ssh', [...sshOptions(t), '-o', 'BatchMode=yes', '-T', '-p', String(t.port), `${t.user}@${SSH_HOST}`, 'true'], timeoutMs);
  if (r.code === 0) return null;
  if (r.code === 127) return { kind: 'other', message: r.stderr };
  const kind = classifySshFailure(r.stderr);
  return { kind, message: describeSshFailure(kind, r.stderr) };
}

/**
 * Like tryMaster, for commands that need the guest.
 * @throws VmnetError E_UNREACHABLE naming the VM and why
 */
export async function ensureMaster(name: string, t: SshTarget): Promise<void> {
  const why = await tryMaster(t);
  if (why) throw new VmnetError('E_UNREACHABLE', `cannot reach VM ${name} over SSH (127.0.0.1:${t.port}): ${why.message}`);
}

/**
 * Starts `ssh` with the remote command (or a login shell without one).
 * @param tty allocate a terminal (-tt)
 * @param stdio the child's stdio; without stdin ssh reads /dev/null (-n)
 */
export function spawnSsh(t: SshTarget, command: string | null, o: { tty?: boolean; stdin?: boolean; stdio: StdioOptions }): ChildProcess {
  const args = [...sshOptions(t), '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  if (o.tty) args.push('-tt');
  else args.push('-T');
  if (!o.stdin) args.push('-n');
  args.push('-p', String(t.port), `${t.user}@${SSH_HOST}`);
  if (command !== null) args.push('--', command);
  return spawn('ssh', args, { stdio: o.stdio });
}

/**
 * The exit status of a finished ssh: the command's, unless ssh itself lost the guest.
 * @throws VmnetError E_UNREACHABLE when ssh exited 255 and the master connection is gone
 */
export async function commandStatus(name: string, t: SshTarget, code: number | null, signal: NodeJS.Signals | null): Promise<number> {
  if (code === 255 && !(await masterAlive(t))) throw new VmnetError('E_UNREACHABLE', `lost the SSH connection to VM ${name} while the command ran`);
  if (code !== null) return code;
  return 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : signal === 'SIGINT' ? 2 : 1);
}

/** A side of a copy: a local path, or a path in the guest. */
export type CopyEnd = { local: string } | { remote: string };

/**
 * `scp` arguments copying between the host and the guest (OpenSSH 9's scp
 * speaks SFTP; the guest needs its sftp-server, as Debian's openssh-server has).
 */
export function scpArgs(t: SshTarget, from: CopyEnd, to: CopyEnd, recursive: boolean): string[] {
  const end = (e: CopyEnd) => ('local' in e ? (e.local.includes(':') && !e.local.startsWith('/') && !e.local.startsWith('.') ? `./${e.local}` : e.local) : `${t.user}@[${SSH_HOST}]:${e.remote}`);
  return [...sshOptions(t), '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-P', String(t.port), ...(recursive ? ['-r'] : []), '--', end(from), end(to)];
}
