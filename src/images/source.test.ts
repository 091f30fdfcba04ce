import { describe, expect, it } from 'vitest';
import { formatDigest, isImageUrl, parseDigest, parseImageUrl, urlFileName, urlKey } from './source.js';
import { compressionFromMagic, compressionFromName } from './compression.js';
import { formatBytes, parseDiskSize } from './size.js';

describe('image URLs', () => {
  it('tells URLs from paths; only http and https are fetched', () => {
    expect(isImageUrl('https://example.org/a.qcow2')).toBe(true);
    expect(isImageUrl('HTTP://example.org/a')).toBe(true);
    expect(isImageUrl('ftp://example.org/a')).toBe(true);
    expect(isImageUrl('./disk.qcow2')).toBe(false);
    expect(isImageUrl('/srv/images/a:b.qcow2')).toBe(false);
    expect(isImageUrl('c:/disk')).toBe(false);
    expect(parseImageUrl('https://example.org/x/debian.qcow2#frag').href).toBe('https://example.org/x/debian.qcow2');
    expect(() => parseImageUrl('ftp://example.org/a')).toThrow(/uses ftp: vmnet downloads http:\/\/ and https:\/\/ images only/);
    expect(() => parseImageUrl('http://')).toThrow(/bad image URL/);
    expect(() => parseImageUrl('https://user:secret@example.org/a')).toThrow(/user name or password/);
    expect(() => parseImageUrl('https://user:secret@example.org/a')).not.toThrow(/secret/);
  });
  it('names: the last path segment without its compression suffix; keys: stable per URL', () => {
    expect(urlFileName(new URL('https://h/images/debian-12-genericcloud-amd64.qcow2'))).toBe('debian-12-genericcloud-amd64.qcow2');
    expect(urlFileName(new URL('https://h/a/disk.raw.xz'))).toBe('disk.raw');
    expect(urlFileName(new URL('https://h/a/my%20disk.img.gz'))).toBe('my disk.img');
    expect(urlFileName(new URL('https://h/'))).toBe('h');
    expect(urlKey(new URL('https://h/a'))).toMatch(/^[0-9a-f]{32}$/);
    expect(urlKey(new URL('https://h/a'))).toBe(urlKey(new URL('https://h/a#x')));
    expect(urlKey(new URL('https://h/a'))).not.toBe(urlKey(new URL('https://h/b')));
  });
});

describe('digests', () => {
  const hex = 'ab'.repeat(32);
  it('parses sha256:HEX (any case) and refuses everything else in one line', () => {
    expect(parseDigest(`sha256:${hex.toUpperCase()}`)).toBe(hex);
    expect(formatDigest(hex)).toBe(`sha256:${hex}`);
    expect(() => parseDigest(hex)).toThrow(/expected sha256: and 64 hex digits/);
    expect(() => parseDigest(`sha256:${hex}0`)).toThrow(/bad --digest/);
    expect(() => parseDigest(`sha512:${hex}${hex}`)).toThrow(/sha512 is not supported, only sha256/);
    expect(() => parseDigest('sha256:zz')).toThrow(expect.objectContaining({ code: 'E_USAGE', usage: true }));
  });
});

describe('compression', () => {
  it('by name, archives before compressors', () => {
    expect(compressionFromName('a.qcow2.xz')).toEqual({ kind: 'xz', suffix: '.xz' });
    expect(compressionFromName('a.IMG.GZ')).toEqual({ kind: 'gzip', suffix: '.GZ' });
    expect(compressionFromName('disk.tar.xz')).toEqual({ kind: 'tar', suffix: '.tar.xz' });
    expect(compressionFromName('a.zst')?.kind).toBe('zstd');
    expect(compressionFromName('a.qcow2')).toBeNull();
    expect(compressionFromName('.gz')).toBeNull();
  });
  it('by magic', () => {
    expect(compressionFromMagic(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(compressionFromMagic(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0]))).toBe('xz');
    expect(compressionFromMagic(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(compressionFromMagic(Buffer.from('BZh91AY'))).toBe('bzip2');
    const tar = Buffer.alloc(512);
    tar.write('ustar', 257);
    expect(compressionFromMagic(tar)).toBe('tar');
    expect(compressionFromMagic(Buffer.from('QFI\xfb', 'latin1'))).toBeNull();
    expect(compressionFromMagic(Buffer.alloc(0))).toBeNull();
  });
});

describe('sizes', () => {
  it('parses binary suffixes, rounds to sectors, refuses nonsense', () => {
    expect(parseDiskSize('20G')).toBe(20 * 2 ** 30);
    expect(parseDiskSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseDiskSize('1.5g')).toBe(1.5 * 2 ** 30);
    expect(parseDiskSize(String(2 ** 20 + 1))).toBe(2 ** 20 + 512);
    expect(() => parseDiskSize('-1G')).toThrow(/bad --disk-size -1G/);
    expect(() => parseDiskSize('1K')).toThrow(/bad --disk-size/);
    expect(() => parseDiskSize('20X')).toThrow(/bad --disk-size/);
  });
  it('formats', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(300 * 2 ** 20)).toBe('300 MiB');
    expect(formatBytes(2 * 2 ** 30)).toBe('2.0 GiB');
  });
});
