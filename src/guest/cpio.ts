/**
 * Theory of operation: the test guest's initramfs is a "newc" cpio archive
 * (the format the Linux kernel unpacks into its rootfs, see the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst), written here
 * in memory so the guest build needs neither cpio nor root: every entry is
 * owned by uid/gid 0 whatever user builds it, and the archive is the same
 * bytes for the same input (mtime 0, inodes numbered in order).
 *
 * Each entry is a 110-byte ASCII header ("070701" and thirteen 8-digit hex
 * fields), the name with its NUL, padded to a multiple of 4, then the data,
 * padded to a multiple of 4. A symlink's data is its target. The archive ends
 * with the entry "TRAILER!!!". Every inode is distinct with one link, so the
 * kernel's hard-link handling (nlink ≥ 2) never applies.
 */

/** One file, directory or symlink of the archive. */
export type CpioEntry =
  | { kind: 'dir'; name: string; mode: number }
  | { kind: 'file'; name: string; mode: number; data: Uint8Array }
  | { kind: 'symlink'; name: string; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const HEADER_LEN = 110;
const TRAILER = 'TRAILER!!!';

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function header(ino: number, mode: number, nlink: number, size: number, nameSize: number): string {
  const f = (n: number) => n.toString(16).padStart(8, '0');
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  return `070701${f(ino)}${f(mode)}${f(0)}${f(0)}${f(nlink)}${f(0)}${f(size)}${f(0)}${f(0)}${f(0)}${f(0)}${f(nameSize)}${f(0)}`;
}

/**
 * Writes a newc archive.
 * @param entries in archive order: a directory before what it holds
 * @returns the archive, trailer included
 */
export function newcArchive(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const push = (ino: number, mode: number, nlink: number, name: string, data: Uint8Array) => {
    const nameBytes = Buffer.from(name + '\0', 'utf8');
    const head = Buffer.from(header(ino, mode, nlink, data.length, nameBytes.length), 'ascii');
    parts.push(head, nameBytes, Buffer.alloc(pad4(HEADER_LEN + nameBytes.length)), Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.alloc(pad4(data.length)));
  };
  let ino = 1;
  for (const e of entries) {
    const name = e.name.replace(/^\.?\/+/, '');
    if (name === '' || name.split('/').includes('..')) throw new Error(`bad cpio entry name ${JSON.stringify(e.name)}`);
    if (e.kind === 'dir') push(ino++, S_IFDIR | (e.mode & 0o7777), 2, name, new Uint8Array(0));
    else if (e.kind === 'file') push(ino++, S_IFREG | (e.mode & 0o7777), 1, name, e.data);
    else push(ino++, S_IFLNK | 0o777, 1, name, Buffer.from(e.target, 'utf8'));
  }
  push(0, 0, 1, TRAILER, new Uint8Array(0));
  return Buffer.concat(parts);
}
