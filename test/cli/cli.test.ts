/**
 * The built `vmnet` binary as a user meets it: real help, one-line errors
 * with exit code 2, no stack traces.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '../../dist/cli/bin.js');

function vmnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, VMNET_DEBUG: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function expectOneLineUsageError(r: { code: number; stdout: string; stderr: string }, pattern: RegExp) {
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/^vmnet: .+\n$/);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\bat .*\.(js|ts):\d+/);
}

describe('vmnet CLI', () => {
  it('prints real help', async () => {
    const r = await vmnet('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('vmnet run [image]');
    expect(r.stdout).toContain('vmnet demo');
  });
  it('prints real help for run', async () => {
    const r = await vmnet('run', '--help');
    expect(r.code).toBe(0);
    for (const flag of ['--forward', '--snapshot', '--kernel', '--memory', '--accel', '--dry-run', '--console']) expect(r.stdout).toContain(flag);
  });
  it('rejects an unknown flag with one line and exit 2', async () => {
    expectOneLineUsageError(await vmnet('run', 'x.img', '--bogus'), /bogus/);
  });
  it('rejects an unknown command', async () => {
    expectOneLineUsageError(await vmnet('frobnicate'), /frobnicate/);
  });
  it('rejects a missing image', async () => {
    expectOneLineUsageError(await vmnet('run', '/nonexistent/disk.img', '--dry-run'), /\/nonexistent\/disk\.img/);
  });
  it('rejects a missing kernel', async () => {
    expectOneLineUsageError(await vmnet('run', '--kernel', '/nonexistent/vmlinuz', '--dry-run'), /kernel/);
  });
  it('rejects a malformed forward', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--forward', '22', '--dry-run'), /--forward 22/);
  });
  it('prints the QEMU command line with --dry-run, detecting the format from content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    const img = join(dir, 'disk.img');
    writeFileSync(img, Buffer.from('514649fb00000003', 'hex'));
    const r = await vmnet('run', img, '--accel', 'tcg', '-m', '512M', '--forward', '2222:22', '--dry-run', '--', '-no-reboot');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`file=${img},format=qcow2,if=virtio`);
    expect(r.stdout).toContain('hostfwd=tcp:127.0.0.1:2222-:22');
    expect(r.stdout).toMatch(/-m 512M .*-no-reboot/);
  });
});
