/**
 * Theory of operation: small parsers shared by `vmnet run` and `launch()`.
 * (The launcher itself is launch.ts; plan.ts checks options before start.)
 */
import { VmnetError } from '../errors.js';

/**
 * Parses a memory size: plain MiB, or with a K/M/G/T suffix.
 * @returns MiB
 * @throws VmnetError E_USAGE
 */
export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  const scale: Record<string, number> = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };
  const mib = m ? Math.floor(Number(m[1]) * scale[m[2]!.toLowerCase()]!) : NaN;
  if (!(mib >= 16)) throw new VmnetError('E_USAGE', `bad --memory ${text}: give a size such as 512M or 2G (at least 16M)`);
  return mib;
}
