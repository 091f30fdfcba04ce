/**
 * The CIDATA seed disk (cidata.ts) with the real mkfs.vfat and mcopy: a FAT
 * image labelled CIDATA whose root holds the three documents byte for byte,
 * and nothing of the seed left beside it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { writeCidataDisk } from './cidata.js';

describe('CIDATA seed disk', () => {
  it('holds meta-data, user-data and vendor-data under the label CIDATA', async () => {
    const dir = privateTmp('vmnet-cidata-');
    const path = join(dir, 'seed.img');
    const userData = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
    await writeCidataDisk(path, { 'meta-data': new TextEncoder().encode('{"instance-id":"i"}\n'), 'user-data': userData, 'vendor-data': new Uint8Array(0) }, dir);
    expect(readdirSync(dir)).toEqual(['seed.img']); // no document left behind
    expect(statSync(path).size).toBeGreaterThanOrEqual(1024 * 1024);
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' };
    expect(execFileSync('fatlabel', [path], { encoding: 'utf8' }).trim()).toBe('CIDATA');
    const out = join(dir, 'out');
    execFileSync('mcopy', ['-i', path, '::user-data', out], { env });
    expect(new Uint8Array(readFileSync(out))).toEqual(userData);
    expect(execFileSync('mtype', ['-i', path, '::meta-data'], { encoding: 'utf8', env })).toBe('{"instance-id":"i"}\n');
    expect(execFileSync('mdir', ['-b', '-i', path, '::'], { encoding: 'utf8', env }).trim().split('\n').sort()).toEqual(['::/meta-data', '::/user-data', '::/vendor-data']);
  });
});
