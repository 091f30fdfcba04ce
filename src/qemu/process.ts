/**
 * Theory of operation: one QEMU child process. Its stderr is kept (the last
 * few KiB) so that a failed start or a crash can be reported with QEMU's own
 * words; `exited` resolves once with the exit status. Stopping escalates:
 * the caller may first ask the guest (QMP, console), then `kill()` sends
 * SIGTERM and, after a grace period, SIGKILL.
 *
 * QEMU never outlives its owner. QEMU runs in its own session (a terminal's
 * Ctrl-C and hang-up reach vmnet, which stops the guest in order), so when
 * vmnet dies without stopping it (kill -9, a crash) nothing would end QEMU,
 * and its stream netdev does not reconnect: a guest silently cut off. With
 * `dieWithParent`, QEMU is started through util-linux `setpriv --pdeathsig
 * SIGKILL --` (Linux prctl(PR_SET_PDEATHSIG), kept across setpriv's exec of
 * QEMU, so the pid is QEMU's): the kernel kills QEMU when the thread that
 * spawned it ends. Node spawns children from its main thread, which lives as
 * long as the process (measured: QEMU is gone within ~0.1 s of a kill -9 of
 * vmnet); a QemuProcess made on a worker thread would die with that worker.
 * SIGKILL rather than SIGTERM: a QEMU whose owner vanished is a power cut
 * either way, and SIGKILL cannot be ignored or delayed by a stuck main loop.
 * Where setpriv is missing (not Linux, or util-linux without it) QEMU is
 * spawned directly and the stale cleaner (vm/state.ts) kills an orphan
 * later.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { VmnetError } from '../errors.js';
import { findOnPath } from './binary.js';

/** util-linux setpriv on PATH, or null. */
export function findSetpriv(env: NodeJS.ProcessEnv = process.env): string | null {
  if (process.platform !== 'linux') return null;
  return findOnPath('setpriv', env);
}

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The tail of QEMU's stderr. */
  stderr: string;
}

const STDERR_KEEP = 8192;

export class QemuProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<QemuExit>;
  private stderrTail = '';
  private done = false;

  /**
   * Starts QEMU.
   * @param binary path of qemu-system-*
   * @param args argv from qemuArgs()
   * @param stdio 'pipe' to drive the serial console (stdio chardev) from code, 'inherit' for a terminal
   * @param opts detached: run QEMU in its own session, so a Ctrl-C on the
   *   terminal reaches only vmnet (which then powers the guest down in order);
   *   dieWithParent: the path of setpriv (findSetpriv()) to have the kernel
   *   SIGKILL QEMU when this process dies
   */
  constructor(binary: string, args: string[], stdio: 'pipe' | 'inherit' | 'ignore' = 'pipe', opts: { detached?: boolean; dieWithParent?: string | null } = {}) {
    const [cmd, argv] = opts.dieWithParent ? [opts.dieWithParent, ['--pdeathsig', 'SIGKILL', '--', binary, ...args]] : [binary, args];
    this.child = spawn(cmd, argv, { stdio: [stdio, stdio, 'pipe'], detached: opts.detached ?? false });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-STDERR_KEEP);
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', (e) => {
        this.done = true;
        reject(new VmnetError('E_QEMU_FAILED', `cannot start ${binary}: ${e.message}`, { cause: e }));
      });
      // 'close' (stdio drained) normally follows 'exit' at once; a child QEMU left holding its
      // stderr (a wrapper script's) must not delay the end, so 'exit' plus a short grace decides.
      this.child.once('exit', (code, signal) => {
        let settled = false;
        const settle = () => {
          if (settled) return;
          settled = true;
          clearTimeout(grace);
          this.child.stderr?.destroy(); // a handle held open by a grandchild must not keep this process alive
          this.done = true;
          resolve({ code, signal, stderr: this.stderrTail });
        };
        const grace = setTimeout(settle, 500);
        this.child.once('close', settle);
      });
    });
    // Callers that never await `exited` must not see an unhandled rejection.
    this.exited.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return !this.done;
  }

  /** The last lines QEMU wrote to stderr. */
  get stderr(): string {
    return this.stderrTail;
  }

  /**
   * Terminates QEMU: SIGTERM, then SIGKILL after `graceMs`.
   * @returns the exit status
   */
  async kill(graceMs = 3000): Promise<QemuExit> {
    if (this.done) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
