/**
 * Theory of operation: a disk image's format is read from its first bytes,
 * never guessed from its name. qcow2 starts with the magic "QFI\xfb"
 * (QEMU's docs/interop/qcow2.txt); anything else that is a readable, non-empty
 * regular file is treated as raw. Telling QEMU the format explicitly keeps it
 * from probing (and from the raw-image probing warning).
 */
import { open, stat } from 'node:fs/promises';
import { VmnetError } from '../errors.js';

export type ImageFormat = 'qcow2' | 'raw';

const QCOW2_MAGIC = 0x514649fb;

/**
 * Detects the format of a disk image.
 * @param path image file
 * @returns 'qcow2' or 'raw'
 * @throws VmnetError E_NO_FILE when missing or unreadable, E_BAD_IMAGE when empty or not a file
 */
export async function detectImageFormat(path: string): Promise<ImageFormat> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile() && !st.isBlockDevice()) throw new VmnetError('E_BAD_IMAGE', `${path} is not a disk image file`);
    size = st.size;
  } catch (e) {
    if (e instanceof VmnetError) throw e;
    throw new VmnetError('E_NO_FILE', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}; check the path`, { cause: e });
  }
  if (size === 0) throw new VmnetError('E_BAD_IMAGE', `${path} is empty; give a raw or qcow2 disk image`);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new VmnetError('E_NO_FILE', `cannot open image ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}; check its permissions`, { cause: e });
  }
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead === 4 && new DataView(head.buffer).getUint32(0) === QCOW2_MAGIC) return 'qcow2';
    return 'raw';
  } finally {
    await fh.close();
  }
}
