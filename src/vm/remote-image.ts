/**
 * Theory of operation: the two steps a launch from an image URL adds.
 *
 * 1. Before the VM's name is claimed: the base image is fetched
 *    (images/download.ts; a cache hit costs nothing) and its format
 *    decided as for any image (a probed qcow2 naming another file is
 *    refused unless --format qcow2). Without --digest, a VM name that
 *    already has a kept disk pins the digest to that disk's base, so the
 *    VM keeps booting the image it was made from (and a cleared cache is
 *    filled again with exactly that file, or the run fails saying so).
 *    `vmnet run --detach` does this step in the foreground process, where
 *    the progress is shown, and hands the supervisor the digest, so the
 *    supervisor only ever finds the image in the cache.
 * 2. Once the name is claimed (no other run of that name can be between
 *    this step and the VM's end): the VM's kept disk is made or checked
 *    and grown (images/vm-disk.ts) and becomes the drive QEMU is given,
 *    always `format=qcow2`.
 */
import { VmnetError } from '../errors.js';
import { resolveImageFormat } from '../qemu/image.js';
import { fetchImage, type DownloadEvent } from '../images/download.js';
import { prepareVmDisk, readDiskMeta, type DiskBase } from '../images/vm-disk.js';
import type { ResolvedLaunch, RemoteImage } from './plan.js';
import { peekName, runtimeRoot } from './state.js';

/**
 * Fetches the base image of an image URL and decides its format.
 * @param r the resolved launch (with `remote`)
 * @param hooks download events; a cancel signal (the partial download is kept)
 * @throws VmnetError as fetchImage and resolveImageFormat; E_INTERRUPTED when cancelled
 */
export async function fetchRemoteBase(r: ResolvedLaunch & { remote: RemoteImage }, hooks: { onEvent?: (e: DownloadEvent) => void; signal?: AbortSignal } = {}): Promise<DiskBase> {
  const name = await peekName(runtimeRoot(r.env), r.baseName, r.explicitName);
  const kept = r.remote.digest === null ? await readDiskMeta(name, r.env) : null;
  const digest = r.remote.digest ?? (kept?.url === r.remote.url ? kept.sha256 : null);
  let got;
  try {
    got = await fetchImage(r.remote.url, {
      digest,
      ...(kept && digest === kept.sha256 ? { digestFrom: `the base of VM ${name}'s kept disk; vmnet rm ${name} starts over from the new image` } : {}),
      env: r.env,
      ...(hooks.onEvent ? { onEvent: hooks.onEvent } : {}),
      ...(hooks.signal ? { signal: hooks.signal } : {}),
    });
  } catch (e) {
    if (!hooks.signal?.aborted) throw e;
    const why = typeof hooks.signal.reason === 'string' ? hooks.signal.reason : 'aborted';
    throw new VmnetError('E_INTERRUPTED', `${why}: the download of ${r.remote.url} was cancelled; what arrived is kept, and the next run resumes it`);
  }
  const format = await resolveImageFormat(got.path, r.remote.format);
  return { url: got.url, path: got.path, sha256: got.sha256, format };
}

/**
 * Makes the drive of a VM from an image URL: its kept disk over the base.
 * @param name the claimed VM name
 */
export async function remoteDrive(r: ResolvedLaunch & { remote: RemoteImage }, name: string, base: DiskBase): Promise<NonNullable<ResolvedLaunch['drive']>> {
  const path = await prepareVmDisk(name, base, r.remote.diskSize, r.env);
  return { path, format: 'qcow2', snapshot: r.remote.snapshot };
}
