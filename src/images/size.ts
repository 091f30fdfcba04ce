/**
 * Theory of operation: byte sizes as the user types them (`--disk-size
 * 20G`) and as vmnet prints them (progress, messages). Suffixes are binary
 * (K = 1024), as in qemu-img; a size without a suffix is bytes. A disk size
 * is rounded up to whole 512-byte sectors, as qemu-img does.
 *
 * Pure.
 */
import { VmnetError } from '../errors.js';

const SCALE: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
/** A guest disk of 1 MiB is the smallest that makes sense; 1 PiB is past any real use. */
const MIN_DISK = 2 ** 20;
const MAX_DISK = 2 ** 50;

/**
 * Parses `--disk-size`.
 * @param text e.g. `20G`, `512M`, `10GiB`, `1073741824`
 * @returns bytes, a multiple of 512
 * @throws VmnetError E_USAGE
 */
export function parseDiskSize(text: string | number): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(String(text).trim());
  const bytes = m ? Number(m[1]) * SCALE[m[2]!.toLowerCase()]! : NaN;
  if (!(bytes >= MIN_DISK && bytes <= MAX_DISK)) throw new VmnetError('E_USAGE', `bad --disk-size ${text}: give a size such as 20G or 512M (1M to 1024T)`);
  return Math.ceil(bytes / 512) * 512;
}

/**
 * A byte count for people: `512 B`, `1.5 KiB`, `300.2 MiB`, `2.0 GiB`.
 * @param n bytes
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** An image past the size bound (`maxBytes`): a usage error (E_BAD_IMAGE); the download is removed, not kept to resume. */
export class ImageTooBig extends VmnetError {
  constructor(message: string) {
    super('E_BAD_IMAGE', `${message}; the download was removed`);
  }
}
