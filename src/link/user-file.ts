/**
 * Theory of operation: opening, for writing, a file the user named on the
 * command line (`--pcap FILE`, `--console file:PATH`), often in a shared
 * directory such as /tmp where another local user may have planted
 * something first.
 *
 * - The last path component is opened with O_NOFOLLOW: a symbolic link
 *   there (say /tmp/capture.pcap -> ~/.bashrc) is refused, never followed.
 *   Links in the directories above are the user's own business.
 * - The file is created 0600 when missing (O_CREAT without O_TRUNC), then
 *   judged on the open descriptor (fstat, so nothing can be swapped in
 *   between): a regular file must belong to this user and have no other
 *   hard link, and only then is it truncated (ftruncate) when asked; a FIFO
 *   or a character device (a pipe to Wireshark, /dev/null) is written as is,
 *   never truncated; anything else (directory, block device, socket) is
 *   refused. Opening a FIFO waits for its reader, as open(2) does.
 *
 * Errors are one-line VmnetErrors (E_NO_FILE, a usage error) naming the
 * path and what to do, raised before anything starts.
 */
import { close, constants, fstat, ftruncate, open } from 'node:fs';
import { promisify } from 'node:util';
import { VmnetError } from '../errors.js';

// Raw descriptors, not FileHandles (which close themselves when collected).
const openFd = promisify(open);
const fstatFd = promisify(fstat);
const truncateFd = promisify(ftruncate);
const closeFd = promisify(close);

export type UserFileMode = 'truncate' | 'append';

/**
 * Opens a file the user named, for writing, without following a planted symlink.
 * @param path the file
 * @param mode 'truncate' (a regular file starts empty) or 'append'
 * @param what how the message names it, e.g. "pcap file"
 * @returns a raw file descriptor (the caller closes it)
 * @throws VmnetError E_NO_FILE
 */
export async function openUserFile(path: string, mode: UserFileMode, what: string): Promise<number> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (mode === 'append' ? constants.O_APPEND : 0);
  let fd: number;
  try {
    fd = await openFd(path, flags, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new VmnetError('E_NO_FILE', `${what} ${path} is a symbolic link; vmnet does not follow links for files it writes: give the real path`, { cause: e });
    if (code === 'EISDIR') throw new VmnetError('E_NO_FILE', `${what} ${path} is not a regular file (a directory); name a file`, { cause: e });
    throw new VmnetError('E_NO_FILE', `cannot open ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fstatFd(fd);
    if (st.isFile()) {
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new VmnetError('E_NO_FILE', `${what} ${path} belongs to another user (uid ${st.uid}); remove it or pick another path`);
      if (st.nlink > 1) throw new VmnetError('E_NO_FILE', `${what} ${path} has other hard links; remove it or pick another path`);
      if (mode === 'truncate') await truncateFd(fd, 0);
    } else if (!st.isFIFO() && !st.isCharacterDevice()) {
      throw new VmnetError('E_NO_FILE', `${what} ${path} is not a regular file, FIFO or character device; name a file`);
    }
  } catch (e) {
    await closeFd(fd).catch(() => undefined);
    if (e instanceof VmnetError) throw e;
    throw new VmnetError('E_NO_FILE', `cannot use ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  return fd;
}
