/**
 * Theory of operation: telling a compressed or archived image from a disk
 * image, by name before a download (so a format vmnet cannot use is
 * refused before any byte is fetched) and by content after it (the magic
 * numbers of RFC 1952 §2.3.1 gzip, the xz file format §2.1.1.1, RFC 8878
 * §3.1.1 zstd, bzip2's "BZh", and POSIX ustar's "ustar" at offset 257).
 * The content decides: a `.img` that is gzip inside is decompressed, a
 * `.gz` whose bytes are a plain disk is used as it is.
 *
 * gzip and xz are decompressed (decompress.ts says how); zstd, bzip2 and
 * tar archives get a message saying what to do instead.
 *
 * Pure.
 */

export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'tar';

const SUFFIXES: Array<{ suffix: string; kind: Compression }> = [
  { suffix: '.tar.gz', kind: 'tar' },
  { suffix: '.tar.xz', kind: 'tar' },
  { suffix: '.tar.zst', kind: 'tar' },
  { suffix: '.tar.bz2', kind: 'tar' },
  { suffix: '.tgz', kind: 'tar' },
  { suffix: '.tar', kind: 'tar' },
  { suffix: '.gz', kind: 'gzip' },
  { suffix: '.xz', kind: 'xz' },
  { suffix: '.zst', kind: 'zstd' },
  { suffix: '.bz2', kind: 'bzip2' },
];

/** Bytes needed by {@link compressionFromMagic}. */
export const MAGIC_BYTES = 512;

/**
 * The compression (or archive) a file name says, with the suffix that says it.
 * @param name a file name
 */
export function compressionFromName(name: string): { kind: Compression; suffix: string } | null {
  const lower = name.toLowerCase();
  const hit = SUFFIXES.find((s) => lower.endsWith(s.suffix) && lower.length > s.suffix.length);
  return hit ? { kind: hit.kind, suffix: name.slice(-hit.suffix.length) } : null;
}

const startsWith = (head: Uint8Array, bytes: number[], at = 0): boolean => head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b);

/**
 * The compression (or archive) a file's first bytes show, or null for anything else.
 * @param head at least the first {@link MAGIC_BYTES} bytes (fewer when the file is shorter)
 */
export function compressionFromMagic(head: Uint8Array): Compression | null {
  if (startsWith(head, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (startsWith(head, [0x42, 0x5a, 0x68])) return 'bzip2';
  if (startsWith(head, [0x75, 0x73, 0x74, 0x61, 0x72], 257)) return 'tar';
  return null;
}

/**
 * What to tell the user about a format vmnet does not unpack.
 * @param kind the compression
 * @param what the URL or file, for the message
 */
export function unsupportedMessage(kind: Compression, what: string): string {
  switch (kind) {
    case 'tar':
      return `${what} is a tar archive, not a disk image: download it, extract the disk image (tar -xf) and run that file`;
    case 'zstd':
      return `${what} is zstd-compressed: vmnet does not decompress zstd; download it, run zstd -d on it and run the result`;
    case 'bzip2':
      return `${what} is bzip2-compressed: vmnet does not decompress bzip2; download it, run bunzip2 on it and run the result`;
    default:
      return `${what} is ${kind}-compressed`;
  }
}
