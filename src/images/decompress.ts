/**
 * Theory of operation: unpacking a compressed image into the cache.
 *
 * gzip is decompressed with Node's own zlib. xz is decompressed by the xz
 * tool of XZ Utils (`xz -dc`, Debian's xz-utils, installed on nearly every
 * Linux system) when it is on PATH: the reference implementation, no npm
 * package (docs/dependencies.md says why); without it the user is told to
 * install it or to decompress the image first. Either way the output goes
 * to a file of this process (the caller renames it into place when whole),
 * and a decoder error (a truncated or corrupt stream) fails the whole step.
 * The output is counted as it is written: past `maxBytes` (a decompression
 * bomb, a few kilobytes that expand to terabytes) the step stops with
 * ImageTooBig.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { VmnetError } from '../errors.js';
import { findOnPath } from '../qemu/binary.js';
import { formatBytes, ImageTooBig } from './size.js';

/**
 * The xz tool, or a one-line error saying what to do.
 * @param what the URL, for the message
 * @throws VmnetError E_BAD_IMAGE when xz is not on PATH
 */
export function requireXz(what: string, env: NodeJS.ProcessEnv = process.env): string {
  const xz = findOnPath('xz', env);
  if (!xz) throw new VmnetError('E_BAD_IMAGE', `${what} is xz-compressed and the xz tool is not on PATH: install it (Debian/Ubuntu: apt-get install xz-utils), or decompress the image yourself and run the file`);
  return xz;
}

/** Passes bytes through, failing with ImageTooBig once more than `max` have passed. */
function bounded(max: number, what: string): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      n += chunk.length;
      if (n > max) done(new ImageTooBig(`${what} expands to more than ${formatBytes(max)}, the most vmnet unpacks (maxBytes)`));
      else done(null, chunk);
    },
  });
}

/**
 * Decompresses `src` into `dest` (created 0600).
 * @param kind gzip or xz
 * @param what the URL, for messages
 * @param o PATH (xz), the most bytes to write, a cancel signal
 * @throws VmnetError E_BAD_IMAGE when the stream is corrupt or xz is missing; ImageTooBig past `o.maxBytes`
 */
export async function decompress(kind: 'gzip' | 'xz', src: string, dest: string, what: string, o: { env?: NodeJS.ProcessEnv; maxBytes: number; signal?: AbortSignal }): Promise<void> {
  const { env = process.env, signal } = o;
  const out = createWriteStream(dest, { mode: 0o600, flags: 'wx' });
  if (kind === 'gzip') {
    try {
      await pipeline(createReadStream(src), createGunzip(), bounded(o.maxBytes, what), out, { signal });
    } catch (e) {
      if (signal?.aborted || e instanceof ImageTooBig) throw e;
      throw new VmnetError('E_BAD_IMAGE', `${what}: gzip data is corrupt (${(e as Error).message})`, { cause: e });
    }
    return;
  }
  const xz = spawn(requireXz(what, env), ['-dc', '--', src], { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let stderr = '';
  xz.stderr.setEncoding('utf8');
  xz.stderr.on('data', (s: string) => (stderr = (stderr + s).slice(-1000)));
  const exited = new Promise<number | null>((resolve) => {
    xz.once('error', () => resolve(null));
    xz.once('close', (code) => resolve(code));
  });
  let tooBig: ImageTooBig | null = null;
  try {
    await pipeline(xz.stdout, bounded(o.maxBytes, what), out);
  } catch (e) {
    if (signal?.aborted) throw e;
    if (e instanceof ImageTooBig) tooBig = e;
    xz.kill();
  }
  const code = await exited;
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
  if (tooBig) throw tooBig;
  if (code !== 0) throw new VmnetError('E_BAD_IMAGE', `${what}: xz could not decompress it (${stderr.trim().split('\n').at(-1) || `exit ${code}`})`);
}
