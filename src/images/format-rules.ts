/**
 * Theory of operation: the format QEMU is told for a local disk image. The
 * rule of qemu/image.ts holds (never let QEMU probe; a probed qcow2 that
 * names another file is refused unless the user vouches with --format),
 * with one exception made by vmnet for itself: a VM's kept disk in vmnet's
 * data directory (images/vm-disk.ts ownOverlay: made by vmnet, backed by an
 * image of vmnet's cache, base format stated in its header) is qcow2
 * without the user vouching, and its base is then checked the way any
 * probed image is. The header names the base's format; that must be what
 * probing the base gives, so the base's own bytes are judged too.
 */
import { VmnetError } from '../errors.js';
import { resolveImageFormat, type ImageFormat } from '../qemu/image.js';
import { ownOverlay } from './vm-disk.js';

/**
 * Decides the format of a local disk image.
 * @param path the image
 * @param requested the user's --format, or undefined
 * @param env where vmnet's data and cache directories are
 * @throws VmnetError as resolveImageFormat, for the image or (for a kept disk) its base
 */
export async function resolveDiskFormat(path: string, requested: ImageFormat | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ImageFormat> {
  if (requested === undefined) {
    const own = await ownOverlay(path, env);
    if (own) {
      const base = await resolveImageFormat(own.base);
      if (base !== own.baseFormat) throw new VmnetError('E_BAD_IMAGE', `${path} is a VM disk kept by vmnet over ${own.base} as ${own.baseFormat}, but that file reads as ${base}; refusing it`);
      return 'qcow2';
    }
  }
  return resolveImageFormat(path, requested);
}
