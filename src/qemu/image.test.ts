import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseQcow2Header, resolveImageFormat } from './image.js';

const dir = mkdtempSync(join(tmpdir(), 'vmnet-image-'));

/** A hand-made qcow2 header: version, backing file name, data-file bit and extension. */
function header(o: { version: 2 | 3; backing?: string; dataFile?: string; dataBit?: boolean; extLen?: number }): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(o.version, 4);
  b.writeUInt32BE(16, 20); // cluster_bits: 64 KiB
  let ext = 72;
  if (o.version === 3) {
    b.writeUInt32BE(104, 100);
    if (o.dataBit ?? o.dataFile !== undefined) b.writeBigUInt64BE(4n, 72);
    ext = 104;
  }
  if (o.dataFile !== undefined || o.extLen !== undefined) {
    const name = Buffer.from(o.dataFile ?? '');
    b.writeUInt32BE(0x44415441, ext);
    b.writeUInt32BE(o.extLen ?? name.length, ext + 4);
    name.copy(b, ext + 8);
  }
  if (o.backing) {
    b.writeBigUInt64BE(1024n, 8);
    b.writeUInt32BE(o.backing.length, 16);
    b.write(o.backing, 1024, 'latin1');
  }
  return b;
}

describe('parseQcow2Header', () => {
  it('reads backing files in v2 and v3 headers', () => {
    expect(parseQcow2Header(header({ version: 2, backing: '/etc/shadow' }))).toMatchObject({ version: 2, backingFile: '/etc/shadow', dataFile: null, malformed: null });
    expect(parseQcow2Header(header({ version: 3, backing: '/dev/sda' }))).toMatchObject({ version: 3, backingFile: '/dev/sda', dataFile: null });
  });
  it('reads the external data file (incompatible bit 2 + extension 0x44415441); the bit alone counts too', () => {
    expect(parseQcow2Header(header({ version: 3, dataFile: '/root/.ssh/id_ed25519' }))).toMatchObject({ dataFile: '/root/.ssh/id_ed25519', backingFile: null });
    expect(parseQcow2Header(header({ version: 3, dataBit: true }))).toMatchObject({ dataFile: '' });
    // The extension without the bit: QEMU ignores the name.
    expect(parseQcow2Header(header({ version: 3, dataFile: '/x', dataBit: false }))).toMatchObject({ dataFile: null });
  });
  it('is not qcow2 without the magic; flags versions and extension areas QEMU would not read', () => {
    expect(parseQcow2Header(Buffer.alloc(512))).toBeNull();
    const v1 = header({ version: 2 });
    v1.writeUInt32BE(1, 4);
    expect(parseQcow2Header(v1)?.malformed).toMatch(/version 1/);
    expect(parseQcow2Header(header({ version: 3, extLen: 0xffffff }))?.malformed).toMatch(/runs past/);
    expect(parseQcow2Header(header({ version: 3 }).subarray(0, 80))?.malformed).toMatch(/truncated/);
  });
  it('agrees with images qemu-img writes (v2 and v3, backing file, external data file, plain)', () => {
    const img = (name: string, ...args: string[]) => {
      const p = join(dir, name);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args, p, '1M'], { stdio: 'pipe' });
      return readFileSync(p);
    };
    expect(parseQcow2Header(img('plain.qcow2'))).toEqual({ version: 3, size: 2 ** 20, backingFile: null, backingFormat: null, dataFile: null, malformed: null });
    expect(parseQcow2Header(img('v2.qcow2', '-o', 'compat=0.10', '-u', '-b', '/etc/hostname', '-F', 'raw'))).toMatchObject({ version: 2, backingFile: '/etc/hostname', backingFormat: 'raw', malformed: null });
    expect(parseQcow2Header(img('v3b.qcow2', '-u', '-b', '/etc/hostname', '-F', 'qcow2'))).toMatchObject({ version: 3, backingFile: '/etc/hostname', backingFormat: 'qcow2', malformed: null });
    const data = join(dir, 'data.raw');
    expect(parseQcow2Header(img('ext.qcow2', '-o', `data_file=${data}`))).toMatchObject({ version: 3, dataFile: data, backingFile: null, malformed: null });
  });
});

describe('resolveImageFormat', () => {
  it('reads qcow2 from the magic, not the name; other content is raw', async () => {
    const q = join(dir, 'disk.raw');
    writeFileSync(q, header({ version: 3 }));
    expect(await resolveImageFormat(q)).toBe('qcow2');
    const r = join(dir, 'disk.qcow2');
    writeFileSync(r, Buffer.alloc(512));
    expect(await resolveImageFormat(r)).toBe('raw');
  });
  it('refuses a probed qcow2 naming a backing or data file, with the name and the flag; --format decides without probing', async () => {
    const b = join(dir, 'guest-wrote-this.img');
    writeFileSync(b, header({ version: 2, backing: '/etc/shadow\x1b[2J' }));
    const err = await resolveImageFormat(b).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_BAD_IMAGE', usage: true });
    expect((err as Error).message).toContain('backing file "/etc/shadow\\u001b[2J"');
    expect((err as Error).message).toContain('--format qcow2');
    expect((err as Error).message).not.toContain('\n');
    const d = join(dir, 'data.img');
    writeFileSync(d, header({ version: 3, dataFile: '/dev/nvme0n1' }));
    await expect(resolveImageFormat(d)).rejects.toThrow(/external data file "\/dev\/nvme0n1".*--format qcow2/);
    expect(await resolveImageFormat(b, 'qcow2')).toBe('qcow2');
    expect(await resolveImageFormat(b, 'raw')).toBe('raw');
    expect(await resolveImageFormat(d, 'raw')).toBe('raw');
  });
  it('--format qcow2 on a file that is not qcow2 is refused before QEMU', async () => {
    const r = join(dir, 'plain.raw');
    writeFileSync(r, Buffer.alloc(512));
    await expect(resolveImageFormat(r, 'qcow2')).rejects.toMatchObject({ code: 'E_BAD_IMAGE' });
  });
  it('rejects missing, empty and non-file paths with usage errors', async () => {
    await expect(resolveImageFormat(join(dir, 'nope'))).rejects.toMatchObject({ code: 'E_NO_FILE', usage: true });
    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    await expect(resolveImageFormat(empty)).rejects.toMatchObject({ code: 'E_BAD_IMAGE', usage: true });
    await expect(resolveImageFormat(dir)).rejects.toMatchObject({ code: 'E_BAD_IMAGE' });
  });
});
