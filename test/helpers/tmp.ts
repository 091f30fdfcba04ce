/** A private (0700) temporary directory for sockets and files of one test. */
import { mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function privateTmp(prefix = 'vmnet-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o700);
  return d;
}
