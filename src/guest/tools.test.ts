import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { checkGuestPrerequisites, findStaticBusybox, findTool, GUEST_TOOLS, isStaticElf, prerequisitesMessage, readOsRelease } from './tools.js';
import { findOnPath } from '../qemu/binary.js';

/** A PATH directory holding symlinks to the named host commands only. */
function pathWith(tools: string[]): string {
  const bin = join(privateTmp('vmnet-tools-'), 'bin');
  mkdirSync(bin);
  for (const t of tools) symlinkSync(findOnPath(t)!, join(bin, t));
  return bin;
}

/** An apt configuration whose package lists are empty (apt-get update never ran). */
function emptyAptLists(): string {
  const d = privateTmp('vmnet-apt-');
  mkdirSync(join(d, 'lists', 'partial'), { recursive: true });
  writeFileSync(join(d, 'apt.conf'), `Dir::State::Lists "${join(d, 'lists')}";\nDir::Cache "${d}";\n`);
  return join(d, 'apt.conf');
}

describe('guest build prerequisites', () => {
  it('tells a static ELF from a dynamic one and from anything else', () => {
    expect(isStaticElf(readFileSync('/bin/busybox'))).toBe(true); // busybox-static
    expect(isStaticElf(readFileSync('/bin/ls'))).toBe(false); // has PT_INTERP
    expect(isStaticElf(Buffer.from('#!/bin/sh\n'.padEnd(64)))).toBe(false);
    expect(isStaticElf(new Uint8Array(10))).toBe(false);
  });

  it('finds nothing missing on a host set up by the README', async () => {
    const p = await checkGuestPrerequisites({ qemu: true });
    expect(prerequisitesMessage(p, 'x')).toBeNull();
    expect(p.kernel?.name).toMatch(/^linux-image-\d.*-cloud-amd64$/);
    expect(p.busybox).not.toBeNull();
  });

  it('names every missing tool with its Debian package, QEMU included, in one message with one install command', async () => {
    const PATH = pathWith(['apt-get', 'apt-cache', 'dpkg-deb', 'qemu-img']);
    const p = await checkGuestPrerequisites({ qemu: true, env: { PATH } });
    const msg = prerequisitesMessage(p, 'cannot build the test guest', false)!;
    expect(msg).toContain('qemu-system-x86_64 (qemu-system-x86)');
    expect(msg).toContain('syslinux (syslinux)');
    expect(msg).toContain('mcopy (mtools)');
    expect(msg).toContain('run: sudo apt-get install qemu-system-x86 syslinux mtools');
    expect(msg.split('\n')).toHaveLength(1);
    expect(prerequisitesMessage(p, 'x', true)).toContain('run: apt-get install qemu-system-x86 ');
  });

  it('finds system tools in the sbin directories a normal user\'s PATH lacks (mkfs.vfat is in /usr/sbin)', () => {
    const PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games'; // a Debian user's, from /etc/profile
    expect(findOnPath('mkfs.vfat', { PATH })).toBeNull();
    expect(findTool('mkfs.vfat', { PATH })).toMatch(/^\/(usr\/)?sbin\/mkfs\.vfat$/);
    expect(findTool('no-such-tool-here', { PATH })).toBeNull();
  });

  it('says to run apt-get update when the package lists do not know the kernel, and chains it before the install', async () => {
    const PATH = pathWith(GUEST_TOOLS.map((t) => t.tool).filter((t) => t !== 'mcopy'));
    const p = await checkGuestPrerequisites({ env: { PATH, APT_CONFIG: emptyAptLists() } });
    expect(p.aptListsMissing).toBe(true);
    const msg = prerequisitesMessage(p, 'cannot build the test guest', false)!;
    expect(msg).toMatch(/apt package lists do not know linux-image-cloud-amd64/);
    expect(msg).toContain('run: sudo apt-get update && sudo apt-get install mtools');
  });

  it('on a distribution without Debian\'s cloud kernel, says where to build the guest instead of asking for apt-get update', async () => {
    const t = privateTmp('vmnet-os-');
    writeFileSync(join(t, 'os-release'), 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n');
    const p = await checkGuestPrerequisites({ env: { PATH: process.env.PATH, APT_CONFIG: emptyAptLists() }, osRelease: join(t, 'os-release') });
    expect(p.aptListsMissing).toBe(false);
    expect(prerequisitesMessage(p, 'cannot build the test guest')).toBe(
      "cannot build the test guest: the test guest is built from Debian's linux-image-cloud-amd64, which Ubuntu 24.04.1 LTS does not have: build it on Debian 12 (vmnet guest build --dir DIR) and set VMNET_GUEST_DIR to a copy of DIR",
    );
    expect(readOsRelease('/etc/os-release')?.id).toBe('debian'); // this project's machines
  });

  it('says a host without apt cannot build the guest itself, and how to use one built elsewhere', async () => {
    const PATH = pathWith(['mkfs.vfat', 'syslinux', 'mcopy', 'qemu-img']);
    const p = await checkGuestPrerequisites({ env: { PATH } });
    expect(p.aptListsMissing).toBe(false);
    expect(prerequisitesMessage(p, 'cannot build the test guest')).toMatch(/no apt-get, apt-cache or dpkg-deb: .*set VMNET_GUEST_DIR/);
  });

  it('refuses a dynamically linked busybox (the initramfs has no libc)', async () => {
    const bin = pathWith([]);
    symlinkSync('/bin/ls', join(bin, 'busybox'));
    expect(await findStaticBusybox({ PATH: bin }, [])).toEqual({ problem: `${join(bin, 'busybox')} is dynamically linked (the guest has no libc)` });
    expect(await findStaticBusybox({ PATH: pathWith([]) }, [])).toEqual({ problem: 'no busybox' });
    expect(await findStaticBusybox({ PATH: '' })).toEqual({ path: '/bin/busybox' });
  });
});
