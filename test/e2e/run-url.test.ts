/**
 * `vmnet run URL`, end to end through the built CLI, against a local HTTP
 * server serving the bundled test guest's disk (build/guest/disk.qcow2, which
 * SeaBIOS boots through syslinux): the digest is checked (a wrong one is
 * refused with exit 2 before QEMU starts), a connection cut halfway is
 * resumed with a range request, progress events are emitted, the cached base
 * is never written (its SHA-256 is the same after two runs that wrote to the
 * disk), the VM's kept overlay grows with --disk-size and a second run of the
 * same name reads what the first wrote, `vmnet rm` is refused while the VM
 * runs and removes the kept disk after. Two boots in all.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { runConsoleScript } from '../../src/guest/console.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { connectUnix, privateRuntime, qemuWrapper, SMALL, stopAll, until, vmnet } from './launcher-helpers.js';

const guest = findBundledGuest();
const disk = readFileSync(guest.diskQcow2);
const digest = createHash('sha256').update(disk).digest('hex');
const fileSha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const MiB = 2 ** 20;
/** Sectors where the guest writes its markers: inside the base's 48 MiB (free FAT clusters), and in the part --disk-size added. */
const SECTOR_IN_BASE = 47 * 2048;
const SECTOR_GROWN = 56 * 2048;

let tmp: string;
let env: NodeJS.ProcessEnv;
let root: string;
let srv: ImageServer;
let q: ReturnType<typeof qemuWrapper>;
let images: string;
let vms: string;

beforeAll(async () => {
  ({ tmp, env, root } = privateRuntime('vmnet-url-'));
  env = { ...env, XDG_CACHE_HOME: join(tmp, 'cache'), XDG_DATA_HOME: join(tmp, 'data') };
  images = join(tmp, 'cache', 'vmnet', 'images');
  vms = join(tmp, 'data', 'vmnet', 'vms');
  q = qemuWrapper(tmp);
  srv = await startImageServer({
    // The first response is cut halfway through.
    '/guest/disk.qcow2': { body: disk, cutAfter: disk.length >> 1 },
    '/wrong/disk.qcow2': { body: disk },
    '/plain/disk.qcow2': { body: Buffer.from('not a disk, but not empty either') },
  });
  // An image whose qcow2 header names a host file as its backing file: downloaded, but probed like any image.
  const evil = join(tmp, 'evil.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/hostname', '-F', 'raw', evil, '64M']);
  srv.files.set('/evil/disk.qcow2', { body: readFileSync(evil) });
});
afterAll(async () => {
  await stopAll(env);
  await srv?.close();
});

type Ev = Record<string, unknown> & { event: string; phase?: string };
const ndjson = (out: string): Ev[] => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Ev);
const cacheFiles = () => (existsSync(images) ? readdirSync(images) : []);

/** Runs a script in the detached VM over its console socket; the guest powers off after it, and the VM ends. */
async function inGuest(name: string, script: string): Promise<{ exitCode: number; output: string }> {
  const con = await connectUnix(join(root, name, 'console.sock'));
  try {
    return await runConsoleScript(con, con, script, { timeoutMs: 180_000 });
  } finally {
    con.destroy();
    await until(() => (existsSync(join(root, name)) ? undefined : true), 60_000, `VM ${name} to end`);
  }
}

const WAIT_VDA = `insmod /lib/modules/virtio_blk.ko
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "SECTORS $(cat /sys/block/vda/size)"
`;

describe('vmnet run URL', () => {
  it('a wrong digest: the download is removed, exit 2 in one line, QEMU never started, nothing kept', async () => {
    const wrong = '0'.repeat(64);
    const r = await vmnet(['run', srv.url('/wrong/disk.qcow2'), '--digest', `sha256:${wrong}`, '--name', 'url-wrong', '--detach', '--json', '--qemu', q.path, ...SMALL], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`vmnet: ${srv.url('/wrong/disk.qcow2')} is not the expected image (--digest): expected sha256:${wrong}, got sha256:${digest} (15.3 MiB); the download was removed\n`);
    expect(q.calls()).toEqual([]);
    expect(cacheFiles()).toEqual([]); // no image, no partial download, no index
    expect(existsSync(join(root, 'url-wrong'))).toBe(false);
    expect(existsSync(join(vms, 'url-wrong'))).toBe(false);
    // The events got as far as the download.
    expect(ndjson(r.stdout).map((e) => e.phase)).toContain('start');
  });

  it('plain HTTP without a digest is warned about; bad URLs, unreachable hosts and a downloaded qcow2 naming a host file exit 2 in one line', async () => {
    const r = await vmnet(['run', srv.url('/plain/disk.qcow2'), '--name', 'url-plain', '--qemu', '/bin/false', '--console', 'none', ...SMALL], env);
    expect(r.stderr).toContain(`vmnet: warning: ${srv.url('/plain/disk.qcow2')} comes over plain HTTP and no --digest checks it: anyone on the way can change the image (pass --digest sha256:HEX)\n`);
    expect(r.stderr).toMatch(/^vmnet: downloading http:\S+ \(32 B\)$/m);
    expect(r.code).toBe(1); // /bin/false is no QEMU: the download was not the problem
    for (const [args, re] of [
      [['https://'], /^vmnet: bad image URL "https:\/\/": not a valid URL\n$/],
      [[srv.url('/missing.qcow2')], /^vmnet: cannot download http:\/\/127\.0\.0\.1:\d+\/missing\.qcow2: HTTP 404 Not Found\n$/],
      [['http://127.0.0.1:9/x.qcow2'], /^vmnet: cannot download http:\/\/127\.0\.0\.1:9\/x\.qcow2: 127\.0\.0\.1:9 refused the connection\n$/],
      [[srv.url('/guest/disk.qcow2'), '--digest', 'md5:abc'], /^vmnet: bad --digest "md5:abc": md5 is not supported, only sha256/],
      // (after the download's own lines: this one is downloaded first)
      [[srv.url('/evil/disk.qcow2')], /\nvmnet: \S+\/sha256-[0-9a-f]{64} looks like qcow2 with a backing file "\/etc\/hostname": [^\n]*--format qcow2[^\n]*\n$/],
    ] as const) {
      const x = await vmnet(['run', ...args, '--name', 'url-bad', '--qemu', q.path, ...SMALL], env);
      expect(x.code, x.stderr).toBe(2);
      expect(x.stderr).toMatch(re);
    }
    expect(q.calls()).toEqual([]);
    expect(existsSync(join(vms, 'url-bad'))).toBe(false);
  });

  const marks = { base: `MARK-BASE-${randomBytes(6).toString('hex')}`, grown: `MARK-GROWN-${randomBytes(6).toString('hex')}` };

  it('--digest --detach --json: a cut download is resumed (Range + If-Range), progress is reported, the VM boots the cached base through its kept overlay grown by --disk-size, and writes to it', async () => {
    const r = await vmnet(['run', srv.url('/guest/disk.qcow2'), '--digest', `sha256:${digest}`, '--disk-size', '64M', '--name', 'url-vm', '--detach', '--json', '--qemu', q.path, ...SMALL], env);
    expect(r.code, r.stderr).toBe(0);
    const events = ndjson(r.stdout);
    const phases = events.filter((e) => e.event === 'download').map((e) => e.phase);
    expect(phases[0]).toBe('start');
    expect(phases).toContain('retry');
    expect(phases.at(-1)).toBe('done');
    const starts = events.filter((e) => e.phase === 'start');
    expect(starts[0]).toMatchObject({ bytes: 0, resumed: false, total: disk.length });
    expect(starts.at(-1)).toMatchObject({ resumed: true, total: disk.length });
    expect(starts.at(-1)!.bytes as number).toBeGreaterThan(0);
    expect(events.filter((e) => e.phase === 'progress').at(-1)).toMatchObject({ bytes: disk.length, total: disk.length });
    expect(events.find((e) => e.phase === 'done')).toMatchObject({ sha256: digest, path: join(images, `sha256-${digest}`) });
    expect(events.at(-1)).toMatchObject({ event: 'started', name: 'url-vm' });
    // What crossed the wire: a whole response cut short, then the rest asked for under the same validator.
    const reqs = srv.log.filter((x) => x.path === '/guest/disk.qcow2');
    expect(reqs.map((x) => x.status)).toEqual([200, 206]);
    expect(reqs[1]!.range).toBe(`bytes=${starts.at(-1)!.bytes}-`);
    expect(reqs[1]!.ifRange).toBe(`"${digest.slice(0, 16)}"`);

    const base = join(images, `sha256-${digest}`);
    expect(fileSha(base)).toBe(digest);
    expect(statSync(base).mode & 0o777).toBe(0o444);
    const overlay = join(vms, 'url-vm', 'disk.qcow2');
    const started = events.at(-1)!;
    expect(readFileSync(`/proc/${started.qemuPid}/cmdline`, 'utf8')).toContain(`file=${overlay},format=qcow2,if=virtio`);
    expect(q.calls()).toHaveLength(1);

    const res = await inGuest(
      'url-vm',
      `${WAIT_VDA}printf '%s' '${marks.base}' | dd of=/dev/vda bs=512 seek=${SECTOR_IN_BASE} conv=notrunc 2>/dev/null
printf '%s' '${marks.grown}' | dd of=/dev/vda bs=512 seek=${SECTOR_GROWN} conv=notrunc 2>/dev/null
sync
echo WROTE
`,
    );
    expect(res.exitCode, res.output).toBe(0);
    expect(res.output).toContain(`SECTORS ${(64 * MiB) / 512}`);
    expect(res.output).toContain('WROTE');
    // The guest wrote into its disk; the cached image is untouched.
    expect(fileSha(base)).toBe(digest);
  });

  it('a second run of the same name: no download, the disk keeps what the first run wrote; --disk-size never shrinks; vmnet rm is refused while it runs, and removes the disk after', async () => {
    const n0 = srv.log.length;
    const shrink = await vmnet(['run', srv.url('/guest/disk.qcow2'), '--disk-size', '32M', '--name', 'url-vm', '--detach', '--qemu', q.path, ...SMALL], env);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toBe(`vmnet: --disk-size 32.0 MiB is smaller than VM url-vm's disk (64.0 MiB): a disk only grows; vmnet rm url-vm starts over\n`);
    expect(q.calls()).toHaveLength(1);

    const r = await vmnet(['run', srv.url('/guest/disk.qcow2'), '--name', 'url-vm', '--detach', '--json', '--qemu', q.path, ...SMALL], env);
    expect(r.code, r.stderr).toBe(0);
    const events = ndjson(r.stdout);
    expect(events.filter((e) => e.event === 'download')).toEqual([expect.objectContaining({ phase: 'cached', sha256: digest })]);
    expect(srv.log.length).toBe(n0); // not a single request
    expect(r.stderr).not.toContain('warning'); // the kept disk pins the digest

    const busy = await vmnet(['rm', 'url-vm'], env);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toBe('vmnet: VM url-vm is running; stop it first (vmnet stop url-vm), then remove its disk\n');

    const res = await inGuest(
      'url-vm',
      `${WAIT_VDA}echo "BASE $(dd if=/dev/vda bs=512 skip=${SECTOR_IN_BASE} count=1 2>/dev/null | head -c ${marks.base.length})"
echo "GROWN $(dd if=/dev/vda bs=512 skip=${SECTOR_GROWN} count=1 2>/dev/null | head -c ${marks.grown.length})"
`,
    );
    expect(res.exitCode, res.output).toBe(0);
    expect(res.output).toContain(`SECTORS ${(64 * MiB) / 512}`);
    expect(res.output).toContain(`BASE ${marks.base}`);
    expect(res.output).toContain(`GROWN ${marks.grown}`);
    expect(fileSha(join(images, `sha256-${digest}`))).toBe(digest);

    const rm = await vmnet(['rm', 'url-vm'], env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(join(vms, 'url-vm'))).toBe(false);
    expect(existsSync(join(images, `sha256-${digest}`))).toBe(true); // the image stays cached
    const again = await vmnet(['rm', 'url-vm'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^vmnet: VM url-vm has nothing kept .*\n$/);
  });
});
