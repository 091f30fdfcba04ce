import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectImageFormat } from './image.js';

const dir = mkdtempSync(join(tmpdir(), 'vmnet-image-'));

describe('detectImageFormat', () => {
  it('reads qcow2 from the magic, not the name', async () => {
    const p = join(dir, 'disk.raw');
    writeFileSync(p, Buffer.from('514649fb00000003', 'hex'));
    expect(await detectImageFormat(p)).toBe('qcow2');
  });
  it('treats other content as raw', async () => {
    const p = join(dir, 'disk.qcow2');
    writeFileSync(p, Buffer.alloc(512));
    expect(await detectImageFormat(p)).toBe('raw');
  });
  it('rejects missing, empty and non-file paths with usage errors', async () => {
    await expect(detectImageFormat(join(dir, 'nope'))).rejects.toMatchObject({ code: 'E_NO_FILE', usage: true });
    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    await expect(detectImageFormat(empty)).rejects.toMatchObject({ code: 'E_BAD_IMAGE', usage: true });
    await expect(detectImageFormat(dir)).rejects.toMatchObject({ code: 'E_BAD_IMAGE' });
  });
});
