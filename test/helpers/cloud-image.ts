/**
 * The tests' stand-in for Debian 12's genericcloud image, built by
 * `npm run cloud-image` (test/cloud-image/build.sh) into build/cloud-image,
 * or into $VMNET_CLOUD_IMAGE_DIR. A test that needs it fails, never skips,
 * when it is absent, and says how to build it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { privateTmp } from './tmp.js';

export interface CloudImage {
  dir: string;
  /** The compressed qcow2 disk (2 GiB virtual). */
  qcow2: string;
  /** Kernel version, cloud-init version, build time and sizes (build.sh writes it). */
  manifest: { kernelVersion: string; cloudInit: string; qcow2Bytes: number; buildSeconds: number };
}

/**
 * Locates the built stand-in image.
 * @throws Error naming the command that builds it
 */
export function findCloudImage(env: NodeJS.ProcessEnv = process.env): CloudImage {
  const dir = env.VMNET_CLOUD_IMAGE_DIR ?? join(import.meta.dirname, '../../build/cloud-image');
  const qcow2 = join(dir, 'disk.qcow2');
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(qcow2) || !existsSync(manifestPath)) {
    throw new Error(`the cloud image stand-in is not built (${qcow2} missing); run as root: npm run cloud-image`);
  }
  return { dir, qcow2, manifest: JSON.parse(readFileSync(manifestPath, 'utf8')) as CloudImage['manifest'] };
}

/**
 * A private directory for a test that boots the stand-in, and the environment
 * that puts vmnet's runtime, data and cache directories inside it.
 */
export function cloudTestDirs(prefix: string): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = privateTmp(prefix);
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: join(dir, 'run'), XDG_DATA_HOME: join(dir, 'data'), XDG_CACHE_HOME: join(dir, 'cache'), VMNET_DEBUG: '' };
  delete env.VMNET_RUNTIME_DIR;
  execFileSync('mkdir', ['-m', '700', '-p', env.XDG_RUNTIME_DIR!]);
  return { dir, env };
}

/** The SHA-256 of a file (hex), streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}
