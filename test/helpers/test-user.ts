/**
 * The unprivileged user rootless e2e tests run things as: `vmnet-test`,
 * created (with a home) when missing. Needs root.
 */
import { execFileSync } from 'node:child_process';

export const TEST_USER = 'vmnet-test';

/** Creates the test user if missing; returns its uid and primary gid. */
export function ensureTestUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, TEST_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', ['-m', TEST_USER], { stdio: 'pipe' });
    return { uid: id('-u'), gid: id('-g') };
  }
}
