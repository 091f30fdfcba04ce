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
  /** Registers a handler for SIGINT/SIGTERM; returns a function that removes it. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** True when stdin and stdout are a terminal. */
  isTty: boolean;
}

/** The real process's I/O. */
export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    isTty: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    onSignal(handler) {
      const h = (s: NodeJS.Signals) => handler(s);
      process.on('SIGINT', h);
      process.on('SIGTERM', h);
      return () => {
        process.off('SIGINT', h);
        process.off('SIGTERM', h);
      };
    },
  };
}
