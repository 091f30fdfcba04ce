/**
 * Listening on a unix socket that only its owner may use: listen, then
 * chmod 0600. Callers keep such sockets in a 0700 directory as well, which
 * closes the short window between the two steps.
 */
import { chmod } from 'node:fs/promises';
import type { Server } from 'node:net';

/**
 * Starts `server` on unix socket `path`, mode 0600.
 * @throws the listen or chmod error as Node reports it (the caller words it)
 */
export async function listenPrivate(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
}
