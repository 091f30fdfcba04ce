/**
 * Theory of operation: one QEMU child process. Its stderr is kept (the last
 * few KiB) so that a failed start or a crash can be reported with QEMU's own
 * words; `exited` resolves once with the exit status. Stopping escalates:
 * the caller may first ask the guest (QMP, console), then `kill()` sends
 * SIGTERM and, after a grace period, SIGKILL, so no QEMU is ever orphaned.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { VmnetError } from '../errors.js';

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
   *   terminal reaches only vmnet (which then powers the guest down in order)
   */
  constructor(binary: string, args: string[], stdio: 'pipe' | 'inherit' | 'ignore' = 'pipe', opts: { detached?: boolean } = {}) {
    this.child = spawn(binary, args, { stdio: [stdio, stdio, 'pipe'], detached: opts.detached ?? false });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-STDERR_KEEP);
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', (e) => {
        this.done = true;
        reject(new VmnetError('E_QEMU_FAILED', `cannot start ${binary}: ${e.message}`, { cause: e }));
      });
      this.child.once('close', (code, signal) => {
        this.done = true;
        resolve({ code, signal, stderr: this.stderrTail });
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
