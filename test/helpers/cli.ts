/** Runs the built CLI (dist/cli/bin.js) as a child process, as a user would. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(new URL('../..', import.meta.url).pathname, 'dist/cli/bin.js');

/** What one CLI run left: its exit code and output. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A runner of `vmnet ARGS…` in the given environment (e.g. VMNET_RUNTIME_DIR).
 * @returns a function resolving with the exit code and output, never rejecting on a non-zero exit
 */
export function cliRunner(env: NodeJS.ProcessEnv): (...args: string[]) => Promise<CliResult> {
  return async (...args) => {
    try {
      const r = await run(process.execPath, [BIN, ...args], { env });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout, stderr: x.stderr };
    }
  };
}
