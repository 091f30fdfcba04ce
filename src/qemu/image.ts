/**
 * Theory of operation: a disk image's format is either stated by the user
 * (`--format raw|qcow2`, `format` in launch()) or read from its first bytes,
 * never guessed from its name; QEMU is always told the format explicitly
 * (`-drive …,format=`), so it never probes.
 *
 * Why probing is dangerous. A raw image is guest-writable: the guest owns
 * its first sector. A guest that writes a qcow2 header there, naming a
 * backing file (or an external data file) such as /etc/shadow or a host
 * disk, turns the next probed start into "QEMU opens that host file for the
 * guest" (QEMU's and libvirt's guidance: never probe an image a guest could
 * have written). So a *probed* qcow2 may not name any other file: one with a
 * backing file or an external data file is refused before QEMU starts, with
 * the file it names; `--format qcow2` says the user vouches for the image
 * and lets it through (its backing chain is then QEMU's business, as with
 * `qemu-img`). `--format raw` hands even a qcow2-looking file to QEMU as
 * raw bytes.
 *
 * The qcow2 header (QEMU docs/interop/qcow2.txt), big-endian:
 *
 *     0  magic "QFI\xfb"            4  version (2 or 3)
 *     8  backing_file_offset (u64) 16  backing_file_size (u32)
 *    20  cluster_bits              24  size (u64: the virtual disk size)
 *    72  incompatible_features (v3 only; bit 2: external data file)
 *   100  header_length (v3 only; 72 for v2)
 *
 * Header extensions follow the header (at 72 for v2, at header_length for
 * v3), each `type u32, length u32, data` padded to 8 bytes, ending with type
 * 0, and all inside the first cluster (before the backing file name, when
 * there is one). Type 0xe2792aca holds the backing file's format (what
 * `qemu-img create -F` wrote; without it QEMU would probe the backing
 * file). Type 0x44415441 ("DATA") holds the external data file's
 * name; QEMU opens it only when incompatible bit 2 is set, and refuses the
 * image without a data file when the bit is set and no name is given. The
 * check here is stricter than QEMU on purpose: any backing_file_offset, any
 * data-file bit, a malformed extension area, or a version other than 2 and 3
 * is refused when probed.
 */
import { open, stat } from 'node:fs/promises';
import { VmnetError } from '../errors.js';
import { toJson } from '../config/printable.js';

export type ImageFormat = 'qcow2' | 'raw';

const QCOW2_MAGIC = 0x514649fb;
const V2_HEADER_LEN = 72;
const V3_MIN_HEADER_LEN = 104;
/** Incompatible feature bit 2: the guest data lives in an external data file. */
const INCOMPAT_DATA_FILE = 1n << 2n;
/** Header extension "DATA": external data file name. */
const EXT_DATA_FILE = 0x44415441;
/** Header extension: the backing file's format name. */
const EXT_BACKING_FORMAT = 0xe2792aca;
/** QEMU's limits: clusters of 512 B to 2 MiB; names up to 1023 bytes. */
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
const MAX_NAME = 1023;

/** What a qcow2 header says about other files. */
export interface Qcow2Info {
  version: number;
  /** The virtual disk size, bytes. */
  size: number;
  /** The backing file's name as written in the image, or null. */
  backingFile: string | null;
  /** The backing file's format as written in the image (`-F`), or null (QEMU would probe it). */
  backingFormat: string | null;
  /** The external data file's name, '' when the bit is set without a name, or null. */
  dataFile: string | null;
  /** The header is not one QEMU would open as given (refused when probed). */
  malformed: string | null;
}

/**
 * Reads what a qcow2 header (the first cluster of the file) refers to.
 * Pure: works on the bytes given.
 * @param head the file's first bytes (at least the first cluster, or the whole file when shorter)
 * @returns null when the bytes do not start with the qcow2 magic
 */
export function parseQcow2Header(head: Uint8Array): Qcow2Info | null {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength < 8 || v.getUint32(0) !== QCOW2_MAGIC) return null;
  const version = v.getUint32(4);
  const info: Qcow2Info = { version, size: 0, backingFile: null, backingFormat: null, dataFile: null, malformed: null };
  if (version !== 2 && version !== 3) {
    info.malformed = `qcow2 version ${version} (QEMU reads versions 2 and 3)`;
    return info;
  }
  if (head.byteLength < V2_HEADER_LEN) {
    info.malformed = 'truncated qcow2 header';
    return info;
  }
  const backingOff = v.getBigUint64(8);
  const backingLen = v.getUint32(16);
  const clusterBits = v.getUint32(20);
  info.size = Number(v.getBigUint64(24));
  const text = (off: number, len: number) => Buffer.from(head.buffer, head.byteOffset + off, len).toString('latin1');
  if (backingOff !== 0n) {
    const off = Number(backingOff);
    info.backingFile = backingOff + BigInt(backingLen) <= BigInt(head.byteLength) && backingLen <= MAX_NAME ? text(off, backingLen) : '(name beyond the header)';
  }
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    info.malformed = `qcow2 cluster_bits ${clusterBits}`;
    return info;
  }
  let extStart = V2_HEADER_LEN;
  let incompatible = 0n;
  if (version === 3) {
    if (head.byteLength < V3_MIN_HEADER_LEN) {
      info.malformed = 'truncated qcow2 v3 header';
      return info;
    }
    incompatible = v.getBigUint64(72);
    extStart = v.getUint32(100);
    if (extStart < V3_MIN_HEADER_LEN || extStart % 8 !== 0) {
      info.malformed = `qcow2 header_length ${extStart}`;
      return info;
    }
  }
  // Extensions end at the backing file name, else at the end of the first cluster.
  const clusterEnd = 2 ** clusterBits;
  const extEnd = Math.min(backingOff !== 0n && backingOff < BigInt(clusterEnd) ? Number(backingOff) : clusterEnd, head.byteLength);
  let dataName: string | null = null;
  for (let at = extStart; ; ) {
    if (at + 8 > extEnd) {
      // QEMU stops quietly where the cluster (or file) ends without an end marker; so do we.
      break;
    }
    const type = v.getUint32(at);
    const len = v.getUint32(at + 4);
    if (type === 0) break;
    if (at + 8 + len > extEnd) {
      info.malformed = `qcow2 header extension 0x${type.toString(16)} runs past the first cluster`;
      break;
    }
    if (type === EXT_DATA_FILE) dataName = text(at + 8, Math.min(len, MAX_NAME));
    if (type === EXT_BACKING_FORMAT) info.backingFormat = text(at + 8, Math.min(len, 32));
    at += 8 + Math.ceil(len / 8) * 8;
  }
  if ((incompatible & INCOMPAT_DATA_FILE) !== 0n) info.dataFile = dataName ?? '';
  return info;
}

/** Quotes a name taken from an image (guest-writable bytes) for a one-line message: no control character left raw. */
const quoteName = (s: string): string => toJson(s);

/** Bytes read from the start of an image: the largest qcow2 cluster. */
const HEAD_BYTES = 2 ** MAX_CLUSTER_BITS;

/**
 * Decides the format QEMU is told for a disk image, refusing a probed qcow2
 * that names other files.
 * @param path image file (or block device)
 * @param requested the user's `--format`, or undefined to read it from the file
 * @returns 'qcow2' or 'raw'
 * @throws VmnetError E_NO_FILE when missing or unreadable; E_BAD_IMAGE when
 *   empty, not a file, a probed qcow2 with a backing or data file (or a header
 *   QEMU would not read as is), or `--format qcow2` on a file that is not qcow2
 */
export async function resolveImageFormat(path: string, requested?: ImageFormat): Promise<ImageFormat> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile() && !st.isBlockDevice()) throw new VmnetError('E_BAD_IMAGE', `${path} is not a disk image file`);
    size = st.isBlockDevice() ? HEAD_BYTES : st.size; // stat gives 0 for a block device
  } catch (e) {
    if (e instanceof VmnetError) throw e;
    throw new VmnetError('E_NO_FILE', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}; check the path`, { cause: e });
  }
  if (size === 0 && requested !== 'raw') throw new VmnetError('E_BAD_IMAGE', `${path} is empty; give a raw or qcow2 disk image`);
  if (requested === 'raw') return 'raw';
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new VmnetError('E_NO_FILE', `cannot open image ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}; check its permissions`, { cause: e });
  }
  let info: Qcow2Info | null;
  try {
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    info = parseQcow2Header(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
  if (requested === 'qcow2') {
    if (!info) throw new VmnetError('E_BAD_IMAGE', `--format qcow2, but ${path} is not a qcow2 image (no QFI\\xfb magic); drop --format or use --format raw`);
    return 'qcow2';
  }
  if (!info) return 'raw';
  const trust = 'pass --format qcow2 if you trust this image, or --format raw to boot its bytes as a raw disk';
  if (info.backingFile !== null) {
    throw new VmnetError('E_BAD_IMAGE', `${path} looks like qcow2 with a backing file ${quoteName(info.backingFile)}: a probed image may not open other files (a guest can write such a header into a raw disk); ${trust}`);
  }
  if (info.dataFile !== null) {
    throw new VmnetError('E_BAD_IMAGE', `${path} looks like qcow2 with an external data file ${info.dataFile ? quoteName(info.dataFile) : '(unnamed)'}: a probed image may not open other files (a guest can write such a header into a raw disk); ${trust}`);
  }
  if (info.malformed !== null) throw new VmnetError('E_BAD_IMAGE', `${path} starts like qcow2 but has ${info.malformed}; ${trust}`);
  return 'qcow2';
}
