import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { parseQcow2Header } from '../qemu/image.js';
import { resolveDiskFormat } from './format-rules.js';
import { ownOverlay, prepareVmDisk, readDiskMeta, removeVmDisk, vmDiskPath, type DiskBase } from './vm-disk.js';

const MiB = 2 ** 20;

/** A private XDG cache and data home, and a base "downloaded" into the cache. */
function setup(format: 'raw' | 'qcow2' = 'qcow2', sizeMiB = 8) {
  const home = privateTmp('vmnet-disk-');
  const env = { ...process.env, XDG_CACHE_HOME: join(home, 'cache'), XDG_DATA_HOME: join(home, 'data') };
  const images = join(home, 'cache', 'vmnet', 'images');
  mkdirSync(images, { recursive: true, mode: 0o700 });
  const sha256 = 'a'.repeat(64);
  const path = join(images, `sha256-${sha256}`);
  execFileSync('qemu-img', ['create', '-q', '-f', format, path, `${sizeMiB}M`]);
  const base: DiskBase = { url: 'https://example.org/base.qcow2', path, sha256, format };
  const header = (p: string) => parseQcow2Header(readFileSync(p).subarray(0, 65536))!;
  return { home, env, images, base, header };
}

describe('prepareVmDisk', () => {
  it('makes a private qcow2 overlay naming the base and its format (never probed), kept with where it came from', async () => {
    const t = setup('raw');
    const disk = await prepareVmDisk('web', t.base, null, t.env);
    expect(disk).toBe(vmDiskPath('web', t.env));
    expect(t.header(disk)).toMatchObject({ backingFile: t.base.path, backingFormat: 'raw', size: 8 * MiB, dataFile: null });
    expect(statSync(join(disk, '..')).mode & 0o777).toBe(0o700);
    expect(statSync(join(disk, '..', '..')).mode & 0o777).toBe(0o700);
    expect(await readDiskMeta('web', t.env)).toMatchObject({ url: t.base.url, sha256: t.base.sha256, baseFormat: 'raw' });
    // Kept: a second run finds the same file.
    const before = statSync(disk).ino;
    expect(await prepareVmDisk('web', t.base, null, t.env)).toBe(disk);
    expect(statSync(disk).ino).toBe(before);
  });

  it('--disk-size: a new disk starts that large; a kept one grows; shrinking is refused in one line', async () => {
    const t = setup();
    const disk = await prepareVmDisk('big', t.base, 16 * MiB, t.env);
    expect(t.header(disk).size).toBe(16 * MiB);
    await prepareVmDisk('big', t.base, 24 * MiB, t.env);
    expect(t.header(disk).size).toBe(24 * MiB);
    await expect(prepareVmDisk('big', t.base, 16 * MiB, t.env)).rejects.toMatchObject({ code: 'E_USAGE', message: '--disk-size 16.0 MiB is smaller than VM big\'s disk (24.0 MiB): a disk only grows; vmnet rm big starts over' });
    await expect(prepareVmDisk('small', t.base, 4 * MiB, t.env)).rejects.toThrow(/--disk-size 4\.0 MiB is smaller than the image \(8\.0 MiB\): a disk only grows/);
    expect(existsSync(vmDiskPath('small', t.env))).toBe(false);
  });

  it('a kept disk made from another image, read as another format, or edited by hand is refused', async () => {
    const t = setup();
    await prepareVmDisk('web', t.base, null, t.env);
    const other = { ...t.base, sha256: 'b'.repeat(64), path: join(t.images, `sha256-${'b'.repeat(64)}`) };
    copyFileSync(t.base.path, other.path);
    await expect(prepareVmDisk('web', other, null, t.env)).rejects.toThrow(/kept disk of VM web was made from sha256:a{64}, not sha256:b{64} .*vmnet rm web starts over/);
    await expect(prepareVmDisk('web', { ...t.base, format: 'raw' }, null, t.env)).rejects.toThrow(/made over a qcow2 base, and this run reads the image as raw/);
    // Replaced by an overlay of a host file: not vmnet's.
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/hostname', '-F', 'raw', vmDiskPath('web', t.env), '1M']);
    await expect(prepareVmDisk('web', t.base, null, t.env)).rejects.toMatchObject({ code: 'E_BAD_IMAGE', message: expect.stringMatching(/is not one vmnet made: its backing file "\/etc\/hostname" is not an image of vmnet's cache; vmnet rm web starts over$/) });
    expect(await removeVmDisk('web', t.env)).toBe(true);
    expect(await removeVmDisk('web', t.env)).toBe(false);
  });
});

describe('the format rule for vmnet\'s own disks', () => {
  it('a kept disk given as a local image is qcow2 without --format; a copy elsewhere, or one over a non-cache file, is refused as any probed overlay', async () => {
    const t = setup();
    const disk = await prepareVmDisk('own', t.base, null, t.env);
    expect(await ownOverlay(disk, t.env)).toEqual({ base: t.base.path, baseFormat: 'qcow2' });
    expect(await resolveDiskFormat(disk, undefined, t.env)).toBe('qcow2');
    const copy = join(t.home, 'disk.qcow2');
    copyFileSync(disk, copy);
    await expect(resolveDiskFormat(copy, undefined, t.env)).rejects.toThrow(/looks like qcow2 with a backing file/);
    // Its base is judged too: a base that now names a file of its own is refused.
    execFileSync('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', '/etc/hostname', '-F', 'raw', t.base.path]);
    await expect(resolveDiskFormat(disk, undefined, t.env)).rejects.toThrow(/sha256-a{64} looks like qcow2 with a backing file "\/etc\/hostname"/);
    // A disk in the data directory whose base lies outside the cache is not vmnet's.
    const stray = vmDiskPath('stray', t.env);
    mkdirSync(join(stray, '..'), { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/hostname', '-F', 'raw', stray, '1M']);
    expect(await ownOverlay(stray, t.env)).toBeNull();
    await expect(resolveDiskFormat(stray, undefined, t.env)).rejects.toThrow(/looks like qcow2 with a backing file "\/etc\/hostname"/);
  });
});
