/**
 * The CLI's view of the outside world, injected so commands can be tested
 * in-process: output streams, environment, and the signal source.
 */
import type { Readable, Writable } from 'node:stream';

export interface CliIo {
  /** Terminal input for interactive consoles (absent in tests). */
  stdin?: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /**
   * Registers a handler for `signals` (default SIGINT and SIGTERM); returns a
   * function that removes it. While registered, the signals do not kill the process.
   */
  onSignal(handler: (signal: NodeJS.Signals) => void, signals?: NodeJS.Signals[]): () => void;
  /** True when stdin and stdout are a terminal. */
  isTty: boolean;
}

/**
 * The real process's I/O. A write error on stdout or stderr (EPIPE: `vmnet
 * ls | head -1`) never crashes the process; commands that stream (run,
 * console) listen for it themselves and stop in order.
 */
export function processIo(): CliIo {
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    isTty: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    onSignal(handler, signals = ['SIGINT', 'SIGTERM']) {
      const h = (s: NodeJS.Signals) => handler(s);
      for (const s of signals) process.on(s, h);
      return () => {
        for (const s of signals) process.off(s, h);
      };
    },
  };
}
