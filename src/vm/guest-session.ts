/**
 * Theory of operation: what the library and the CLI do with a seeded guest
 * over SSH (ssh.ts), given its target and a way to read its boot status:
 *
 * - waitForSsh: ready when vmnet's master connection to the guest is up
 *   (which needs sshd to answer and accept vmnet's key). While waiting it
 *   reads the boot status (boot-stage.ts) about once a second, tries SSH
 *   only once port 22 answers the gateway's own SYN, reports each new stage,
 *   and when time runs out says where the boot stands.
 * - exec: one command, its stdout and stderr kept apart, its exit status;
 *   the guest being unreachable is an error (E_UNREACHABLE), not a status.
 * - copy: scp in either direction.
 */
import { execFile } from 'node:child_process';
import { VmnetError } from '../errors.js';
import { bootStage, type BootStatus, type Stage } from './boot-stage.js';
import { commandStatus, ensureMaster, masterAlive, remoteCommand, scpArgs, spawnSsh, tryMaster, type CopyEnd, type RemoteOptions, type SshFailure, type SshTarget } from './ssh.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface WaitForSshOptions {
  /** Default 300 s. */
  timeoutMs?: number;
  /** Told each new stage (and 'ready' at the end). */
  onStage?: (stage: Stage) => void;
}

/**
 * Waits until a command can run in the guest over SSH.
 * @param target how vmnet logs in; null for a VM vmnet did not seed (it can only be waited for up to port 22)
 * @param status reads the VM's boot status (probing port 22 once it has a lease)
 * @throws VmnetError E_TIMEOUT naming the stage reached; E_UNREACHABLE when port 22 answers a VM vmnet cannot log in to; whatever `status` throws (the VM ended)
 */
export async function waitForSsh(name: string, target: SshTarget | null, status: () => Promise<BootStatus>, o: WaitForSshOptions = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 300_000;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const s = await status();
    let failure: SshFailure | null = null;
    if (s.port22 === 'open' && target === null) throw new VmnetError('E_UNREACHABLE', `VM ${name}: port 22 answers, but vmnet cannot log in: it did not seed this VM (--cloud-init off)`);
    if (s.port22 === 'open' && target !== null) {
      const why = await tryMaster(target, Math.max(5000, Math.min(30_000, deadline - Date.now())));
      if (why === null) {
        o.onStage?.({ key: 'ready', text: `ready: SSH accepts vmnet's key (${((Date.now() - s.startedAt) / 1000).toFixed(1)} s after start)` });
        return;
      }
      failure = why.kind;
    }
    const stage = bootStage(s, failure);
    if (stage.key !== last) {
      last = stage.key;
      o.onStage?.(stage);
    }
    if (Date.now() >= deadline) throw new VmnetError('E_TIMEOUT', `VM ${name}: SSH not ready within ${Math.round(timeoutMs / 1000)} s: ${stage.text}`);
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
  }
}

export interface ExecOptions extends RemoteOptions {
  /** Bytes for the command's stdin (default: none, stdin is /dev/null). */
  input?: string | Uint8Array;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in the guest and collects its output.
 * @param cmd argv (each word quoted for the guest's shell) or one shell command line
 * @throws VmnetError E_UNREACHABLE when the guest cannot be reached (or is lost mid-way)
 */
export async function execCollect(name: string, target: SshTarget, cmd: string[] | string, o: ExecOptions = {}): Promise<ExecResult> {
  await ensureMaster(name, target);
  const line = typeof cmd === 'string' ? (o.user || o.workdir || o.env ? remoteCommand(['sh', '-c', cmd], o) : cmd) : remoteCommand(cmd, o);
  const child = spawnSsh(target, line, { stdin: o.input !== undefined, stdio: [o.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  if (o.input !== undefined) {
    child.stdin!.on('error', () => undefined); // a command that does not read its input
    child.stdin!.end(o.input);
  }
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  return { code: await commandStatus(name, target, code, signal), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/**
 * Copies between the host and the guest with scp.
 * @throws VmnetError E_UNREACHABLE when the guest cannot be reached; E_USAGE with scp's message when the copy fails
 */
export async function copy(name: string, target: SshTarget, from: CopyEnd, to: CopyEnd, recursive = false): Promise<void> {
  await ensureMaster(name, target);
  await new Promise<void>((resolve, reject) => {
    execFile('scp', scpArgs(target, from, to, recursive), (e, _out, stderr) => {
      if (!e) return resolve();
      const message = String(stderr).trim().split('\n').pop() || e.message;
      const code = typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 255;
      void (async () => {
        if (code === 255 && !(await masterAlive(target))) reject(new VmnetError('E_UNREACHABLE', `lost the SSH connection to VM ${name} while copying`));
        else reject(new VmnetError('E_COPY', `copy failed: ${message}`));
      })();
    });
  });
}
