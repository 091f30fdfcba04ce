/**
 * Theory of operation: running an OpenSSH program (ssh, scp) for a command
 * as the user's own child. On a terminal its stdio is this process's (so
 * ssh sees the terminal: a login shell, `-t`); otherwise its stdout and
 * stderr are piped to the CLI's streams, kept apart, and stdin is piped
 * only when asked for. SIGINT, SIGTERM and SIGHUP to vmnet are passed on
 * to the child (which decides), never kill vmnet under it; a closed stdout
 * ends the child.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { CliIo } from './io.js';

/** stdio for the child: inherited on a terminal, else pipes (stdin only when `stdin`). */
export function childStdio(io: CliIo, o: { stdin: boolean; tty: boolean }): StdioOptions {
  if (io.isTty || o.tty) return [o.stdin || o.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'];
  return [o.stdin && io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
}

/**
 * Wires a started child to the CLI's streams and signals and waits for it.
 * @returns its exit code and signal
 */
export async function waitChild(io: CliIo, child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const off = io.onSignal((sig) => child.kill(sig), ['SIGINT', 'SIGTERM', 'SIGHUP']);
  if (child.stdin && io.stdin) {
    child.stdin.on('error', () => undefined);
    io.stdin.pipe(child.stdin);
  }
  const onOutError = () => child.kill('SIGTERM');
  io.stdout.on('error', onOutError);
  child.stdout?.pipe(io.stdout, { end: false });
  child.stderr?.pipe(io.stderr, { end: false });
  try {
    return await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
  } finally {
    off();
    io.stdout.off('error', onOutError);
    if (child.stdin && io.stdin) io.stdin.unpipe(child.stdin);
  }
}
