/**
 * Child processes tests start (often inside a network namespace): their
 * stdout collected line by line and awaitable, stderr kept for failure
 * messages, and a stop that escalates from SIGTERM to SIGKILL.
 */
import type { ChildProcess } from 'node:child_process';

/** A child whose stdout lines are collected and can be awaited. */
export interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  waitLine(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
}

/** Follows a child started with stdout and stderr piped; `what` names it in errors. */
export function track(child: ChildProcess, what: string): Proc {
  const lines: string[] = [];
  let err = '';
  let partial = '';
  let exited: number | null | undefined;
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 100_000) err += d;
  });
  child.once('exit', (c, sig) => {
    exited = c ?? (sig ? -1 : null);
    for (const w of waiters) w();
  });
  return {
    child,
    lines,
    stderr: () => err,
    waitLine(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        const check = (): void => {
          for (const l of lines) {
            const m = re.exec(l);
            if (m) {
              done();
              return resolve(m);
            }
          }
          if (exited !== undefined) {
            done();
            reject(new Error(`${what} exited (${exited}) before printing ${re}\nstdout:\n${lines.join('\n')}\nstderr:\n${err}`));
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
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}
