/**
 * The test guest built from Debian packages for real (apt-get download of
 * the cloud kernel, busybox-static, mkfs.vfat/syslinux/mcopy, qemu-img),
 * twice at once into one empty directory, then booted; and a host missing
 * tools told so before anything starts.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGuest } from '../../src/guest/build.js';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { runTestGuest } from '../../src/guest/boot.js';
import { findOnPath } from '../../src/qemu/binary.js';
import { privateTmp } from '../helpers/tmp.js';
import { BIN } from './launcher-helpers.js';

describe('guest build', () => {
  it('names every missing tool before anything starts, and leaves nothing behind', async () => {
    const t = privateTmp('vmnet-gb-');
    const bin = join(t, 'bin');
    mkdirSync(bin);
    for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb']) symlinkSync(findOnPath(tool)!, join(bin, tool));
    const lines: string[] = [];
    const dir = join(t, 'guest');
    const err = await buildGuest({ dir, env: { PATH: bin }, onProgress: (l) => lines.push(l) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_NO_TOOL' });
    expect((err as Error).message).toMatch(/missing syslinux \(syslinux\), mcopy \(mtools\), qemu-img \(qemu-utils\); run: (sudo )?apt-get install syslinux mtools qemu-utils$/);
    expect(lines).toEqual([]);
    expect(readdirSync(t)).toEqual(['bin']);
  });

  it('never replaces a directory that holds something other than a test guest, --force or not', async () => {
    const t = privateTmp('vmnet-gb-');
    const home = join(t, 'home');
    mkdirSync(home);
    writeFileSync(join(home, 'precious'), 'mine');
    for (const force of [false, true]) {
      const err = await buildGuest({ dir: home, force }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_USAGE' });
      expect((err as Error).message).toBe(`${home} is not empty and holds no test guest: refusing to build over it; give an empty or new directory`);
    }
    writeFileSync(join(t, 'file'), 'x');
    await expect(buildGuest({ dir: join(t, 'file') })).rejects.toThrow(`${join(t, 'file')} exists and is not a directory`);
    expect(readdirSync(t).sort()).toEqual(['file', 'home']);
    expect(readdirSync(home)).toEqual(['precious']);
  });

  it.runIf(process.getuid?.() === 0)('a directory the user cannot write is one line saying so, not an internal error', async () => {
    const t = privateTmp('vmnet-gb-');
    chmodSync(t, 0o755); // root's, readable by all, writable by root only
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('runuser', ['-u', 'nobody', '--', process.execPath, BIN, 'guest', 'build', '--dir', join(t, 'guest')], { env: { PATH: process.env.PATH, HOME: '/nonexistent' } });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('close', (code) => resolve({ code, out }));
    });
    expect(r.code).toBe(2);
    expect(r.out).toContain(`vmnet: cannot build the test guest in ${join(t, 'guest')}: ${t} is not writable for you (EACCES); give a directory of yours with --dir or VMNET_GUEST_DIR\n`);
    expect(readdirSync(t)).toEqual([]);
  });

  it('two builds at once into an empty directory: both succeed, one guest is installed whole, it boots, and a third call keeps it', async () => {
    const dir = join(privateTmp('vmnet-gb-'), 'guest');
    const progress: string[][] = [[], []];
    const results = await Promise.all(progress.map((p) => buildGuest({ dir, onProgress: (l) => p.push(l) })));
    expect(results.filter((r) => r.built)).toHaveLength(1);
    const winner = progress[results.findIndex((r) => r.built)]!;
    // One line per step, in order, then where it went.
    expect(winner.map((l) => /\[(\d)\/5\]/.exec(l)?.[1]).filter(Boolean)).toEqual(['1', '2', '3', '4', '5']);
    expect(winner.at(-1)).toMatch(new RegExp(`^vmnet guest: done in [\\d.]+ s: ${dir}$`));
    expect(progress[results.findIndex((r) => !r.built)]!.at(-1)).toMatch(/another build finished first; using it/);
    expect(readdirSync(join(dir, '..'))).toEqual(['guest']);
    expect(readdirSync(dir).sort()).toEqual(['disk.qcow2', 'disk.raw', 'initramfs.gz', 'manifest.json', 'vmlinuz']);

    const guest = findBundledGuest({ VMNET_GUEST_DIR: dir });
    expect(guest.append).toBe(results[0]!.manifest.append);
    for (const boot of ['kernel', 'disk-qcow2'] as const) {
      const r = await runTestGuest({ guest, boot, script: 'uname -r; ls /lib/modules | wc -l', timeoutMs: 90_000 });
      expect(r.exitCode, r.output).toBe(0);
      expect(r.output.trim().split('\n')).toEqual([results[0]!.manifest.kernelRelease, '11']);
    }

    const again: string[] = [];
    const third = await buildGuest({ dir, onProgress: (l) => again.push(l) });
    expect(third.built).toBe(false);
    expect(again).toEqual([expect.stringMatching(/^vmnet guest: up to date in /)]);
    expect(existsSync(join(dir, 'manifest.json'))).toBe(true);
  });
});
