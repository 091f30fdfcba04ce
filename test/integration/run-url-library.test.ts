/**
 * The library side of image URLs without booting anything: launch() of an
 * image URL cancelled mid-download (E_INTERRUPTED, the partial download kept,
 * nothing claimed), and planLaunch() (`vmnet run URL --dry-run`) showing the
 * kept disk the VM would get without downloading.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from '../../src/vm/launch.js';
import { planLaunch } from '../../src/vm/plan.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { privateTmp } from '../helpers/tmp.js';

let srv: ImageServer;
let tmp: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  srv = await startImageServer({ '/slow/disk.qcow2': { body: randomBytes(4 << 20), delayMs: 20 } });
  tmp = privateTmp('vmnet-urllib-');
  env = { ...process.env, XDG_RUNTIME_DIR: tmp, XDG_CACHE_HOME: join(tmp, 'cache'), XDG_DATA_HOME: join(tmp, 'data') };
  delete env.VMNET_RUNTIME_DIR;
});
afterAll(() => srv.close());

describe('launch({ image: URL })', () => {
  it('a cancel during the download: E_INTERRUPTED saying the download is kept; no VM directory, no kept disk', async () => {
    const ac = new AbortController();
    const err = (await launch({
      image: srv.url('/slow/disk.qcow2'),
      name: 'lib-url',
      accel: 'tcg',
      env,
      signal: ac.signal,
      onEvent: (e) => e.event === 'download' && e.phase === 'start' && setTimeout(() => ac.abort('SIGINT'), 100),
    }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('E_INTERRUPTED');
    expect(err.message).toBe(`SIGINT: the download of ${srv.url('/slow/disk.qcow2')} was cancelled; what arrived is kept, and the next run resumes it`);
    expect(readdirSync(join(tmp, 'cache', 'vmnet', 'images')).filter((n) => n.endsWith('.partial'))).toHaveLength(1);
    expect(existsSync(join(tmp, 'vmnet', 'lib-url'))).toBe(false);
    expect(existsSync(join(tmp, 'data', 'vmnet', 'vms', 'lib-url'))).toBe(false);
  });

  it('planLaunch (dry run): the kept disk the VM would boot, named from the URL; nothing downloaded or created', async () => {
    const n = srv.log.length;
    const plan = await planLaunch({ image: srv.url('/slow/disk.qcow2'), accel: 'tcg', env });
    expect(plan.name).toBe('disk');
    const disk = join(tmp, 'data', 'vmnet', 'vms', 'disk', 'disk.qcow2');
    expect(plan.args.join(' ')).toContain(`file=${disk},format=qcow2,if=virtio`);
    expect(plan.notes.at(-1)).toBe(`disk: ${disk}, a new qcow2 overlay over ${srv.url('/slow/disk.qcow2')} (downloaded into the image cache unless it is there)`);
    expect(srv.log.length).toBe(n);
    expect(existsSync(join(tmp, 'data', 'vmnet', 'vms'))).toBe(false);
  });
});
