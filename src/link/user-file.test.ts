import { chownSync, closeSync, linkSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openUserFile } from './user-file.js';

const dir = mkdtempSync(join(tmpdir(), 'vmnet-userfile-'));

describe('openUserFile', () => {
  it('creates 0600, truncates or appends to a regular file of the user', async () => {
    const p = join(dir, 'new.pcap');
    closeSync(await openUserFile(p, 'truncate', 'pcap file'));
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeFileSync(p, 'old');
    let fd = await openUserFile(p, 'truncate', 'pcap file');
    writeSync(fd, 'new');
    closeSync(fd);
    expect(readFileSync(p, 'utf8')).toBe('new');
    fd = await openUserFile(p, 'append', 'console file');
    writeSync(fd, '+more');
    closeSync(fd);
    expect(readFileSync(p, 'utf8')).toBe('new+more');
  });
  it('refuses a symlink, another user\'s file, a file with other hard links and a directory, changing nothing', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, join(dir, 'link'));
    await expect(openUserFile(join(dir, 'link'), 'truncate', 'pcap file')).rejects.toThrow(/symbolic link/);
    linkSync(victim, join(dir, 'hard'));
    await expect(openUserFile(join(dir, 'hard'), 'truncate', 'pcap file')).rejects.toThrow(/other hard links/);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    await expect(openUserFile(dir, 'truncate', 'pcap file')).rejects.toMatchObject({ code: 'E_NO_FILE', usage: true });
    if (process.getuid?.() === 0) {
      const theirs = join(dir, 'theirs');
      writeFileSync(theirs, 'planted');
      chownSync(theirs, 65534, 65534);
      await expect(openUserFile(theirs, 'truncate', 'pcap file')).rejects.toThrow(/belongs to another user \(uid 65534\)/);
      expect(readFileSync(theirs, 'utf8')).toBe('planted');
    }
  });
  it('writes a character device as it is', async () => {
    closeSync(await openUserFile('/dev/null', 'truncate', 'pcap file'));
  });
});
