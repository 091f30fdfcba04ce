import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { newcArchive, type CpioEntry } from './cpio.js';

const ENTRIES: CpioEntry[] = [
  { kind: 'dir', name: 'bin', mode: 0o755 },
  { kind: 'file', name: 'bin/busybox', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { kind: 'symlink', name: 'bin/sh', target: 'busybox' },
  { kind: 'dir', name: 'etc', mode: 0o755 },
  // Sizes 0..3 past a multiple of 4 exercise every padding case.
  { kind: 'file', name: 'etc/a', mode: 0o644, data: Buffer.from('') },
  { kind: 'file', name: 'etc/bb', mode: 0o600, data: Buffer.from('x') },
  { kind: 'file', name: 'etc/ccc', mode: 0o644, data: Buffer.from('xy') },
  { kind: 'file', name: 'etc/dddd', mode: 0o644, data: Buffer.from('xyz') },
  { kind: 'file', name: 'init', mode: 0o755, data: Buffer.alloc(5000, 7) },
];

describe('newc cpio writer', () => {
  it('writes an archive GNU cpio lists and unpacks to the same names, modes, contents and links', () => {
    const archive = newcArchive(ENTRIES);
    expect(archive.length % 4).toBe(0);
    const dir = privateTmp('vmnet-cpio-');
    const list = execFileSync('cpio', ['-it', '--quiet'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    expect(list).toEqual(ENTRIES.map((e) => e.name));
    execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { input: archive, cwd: dir });
    for (const e of ENTRIES) {
      const p = join(dir, e.name);
      const st = lstatSync(p);
      if (e.kind === 'dir') expect(st.isDirectory()).toBe(true);
      if (e.kind === 'symlink') expect(readlinkSync(p)).toBe(e.target);
      if (e.kind === 'file') {
        expect(st.mode & 0o7777).toBe(e.mode);
        expect(readFileSync(p).equals(Buffer.from(e.data))).toBe(true);
      }
    }
  });

  it('is the same bytes for the same input, owned by root whoever builds it', () => {
    const a = newcArchive(ENTRIES);
    expect(a.equals(newcArchive(ENTRIES))).toBe(true);
    const verbose = execFileSync('cpio', ['-itv', '--quiet'], { input: a, encoding: 'utf8' });
    for (const line of verbose.trim().split('\n')) expect(line).toMatch(/^\S+\s+\d+\s+root\s+root\s/);
  });

  it('refuses names that climb out of the archive root', () => {
    expect(() => newcArchive([{ kind: 'dir', name: '../etc', mode: 0o755 }])).toThrow(/bad cpio entry name/);
    expect(() => newcArchive([{ kind: 'dir', name: '/', mode: 0o755 }])).toThrow(/bad cpio entry name/);
  });
});
