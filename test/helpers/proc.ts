/**
 * Child processes tests start (often inside a network namespace): their
 * stdout collected line by line and awaitable, stderr kept for failure
 * messages, the exit awaitable, and a stop that escalates from SIGTERM to
 * SIGKILL.
 */
import type { ChildProcess } from 'node:child_process';

/** A child whose stdout lines are collected and can be awaited. */
export interface Proc {
  child: ChildProcess;
  pid: number;
  lines: string[];
  stderr: () => string;
  /** Resolves with the exit code (-1 for a signal). */
  exited: Promise<number | null>;
  /** The exit code once exited, else undefined. */
  exitCode: () => number | null | undefined;
  /** The first stdout line from index `from` on that matches `re`; rejects on exit or timeout. */
  waitLine(re: RegExp, timeoutMs: number, from?: number): Promise<RegExpExecArray>;
}

/** Follows a child started with stdout and stderr piped; `what` names it in errors. */
export function track(child: ChildProcess, what: string): Proc {
  const lines: string[] = [];
  let err = '';
  let partial = '';
  let code: number | null | undefined;
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 200_000) err += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? -1 : null);
      for (const w of waiters) w();
      resolve(code);
    }),
  );
  return {
    child,
    pid: child.pid!,
    lines,
    stderr: () => err,
    exited,
    exitCode: () => code,
    waitLine(re, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        const check = (): void => {
          for (let i = from; i < lines.length; i++) {
            const m = re.exec(lines[i]!);
            if (m) {
              done();
              return resolve(m);
            }
          }
          if (code !== undefined) {
            done();
            reject(new Error(`${what} exited (${code}) before printing ${re}\nstdout:\n${lines.join('\n')}\nstderr:\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${what} to print ${re}\nstdout:\n${lines.join('\n')}\nstderr:\n${err}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the child is gone. */
export async function stopProc(p: Proc | null): Promise<void> {
  if (!p || p.exitCode() !== undefined) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
  await p.exited;
  clearTimeout(t);
}
