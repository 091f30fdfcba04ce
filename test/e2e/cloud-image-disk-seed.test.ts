/**
 * The CIDATA fallback (`--cloud-init-seed disk`) on the cloud image stand-in
 * (Debian 12's cloud-init 22.4.2), under TCG: `vmnet run IMAGE --snapshot
 * --cloud-init-seed disk --detach --name NAME`, then `vmnet wait NAME --ssh`.
 * cloud-init found its NoCloud seed on the FAT disk vmnet made (its
 * `subplatform` names a config disk, not an http:// seed), set the VM name
 * as the hostname from that disk's meta-data and vmnet's user and key from
 * its user-data; the gateway's seed service was never asked (no TCP to
 * 10.0.2.3:80 in the pcap, no SMBIOS serial on QEMU's command line), and
 * the image file is byte for byte what it was (`--snapshot`).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudTestDirs, findCloudImage, sha256File, type CloudImage } from '../helpers/cloud-image.js';
import { vmnet, type Done } from './launcher-helpers.js';

const NAME = `cidata-${randomBytes(2).toString('hex')}`;

let image: CloudImage;
let dir: string;
let env: NodeJS.ProcessEnv;
let running = false;
let shaBefore: string;
const got = {} as { run: Done; plan: Done; wait: Done; hostname: Done; subplatform: Done; meta: Done; stop: Done };

const pcap = () => join(dir, 'gateway.pcap');
const consoleLog = () => join(dir, 'console.log');

beforeAll(async () => {
  image = findCloudImage();
  ({ dir, env } = cloudTestDirs('vmnet-cidata-'));
  shaBefore = await sha256File(image.qcow2);
  const args = [image.qcow2, '--snapshot', '--cloud-init-seed', 'disk', '--name', NAME, '--accel', 'tcg', '--cpus', '1', '-m', '1G', '--console', `file:${consoleLog()}`, '--pcap', pcap(), '--dns-upstream', '127.0.0.1:9', '--stop-timeout', '90'];
  got.plan = await vmnet(['run', ...args, '--dry-run', '--json'], env);
  got.run = await vmnet(['run', ...args, '--detach'], env);
  expect(got.run.code, got.run.stderr).toBe(0);
  running = true;
  got.wait = await vmnet(['wait', NAME, '--ssh', '--timeout', '480'], env);
  const tail = existsSync(consoleLog()) ? readFileSync(consoleLog(), 'utf8').slice(-3000) : '(no console log)';
  expect(got.wait.code, `${got.wait.stderr}\nconsole:\n${tail}`).toBe(0);
  got.hostname = await vmnet(['exec', NAME, '--', 'hostname'], env);
  got.subplatform = await vmnet(['exec', NAME, '--user', 'root', '--', 'cloud-init', 'query', 'subplatform'], env);
  got.meta = await vmnet(['exec', NAME, '--user', 'root', '--', 'cloud-init', 'query', 'ds.meta_data.local-hostname'], env);
  got.stop = await vmnet(['stop', NAME], env);
  running = false;
}, 900_000);

afterAll(async () => {
  if (running) await vmnet(['stop', NAME, '--force'], env);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('--cloud-init-seed disk on the cloud image stand-in', () => {
  it('the plan has a CIDATA disk and no SMBIOS seed serial', () => {
    expect(got.plan.code, got.plan.stderr).toBe(0);
    const plan = JSON.parse(got.plan.stdout) as { command: string[]; dir: string };
    expect(plan.command).toContain(`file=${join(plan.dir, 'seed.img')},format=raw,if=virtio,readonly=on`);
    expect(plan.command).not.toContain('-smbios');
  });

  it('boots to SSH with the seed from the disk: the VM name as hostname, cloud-init names a config disk', () => {
    expect(got.hostname).toMatchObject({ code: 0, stdout: `${NAME}\n`, stderr: '' });
    expect(got.subplatform.code, got.subplatform.stderr).toBe(0);
    expect(got.subplatform.stdout).toMatch(/^config-disk \(\/dev\/[a-z0-9]+\)\n$/);
    expect(got.meta.stdout).toBe(`${NAME}\n`);
    expect(got.stop.code, got.stop.stderr).toBe(0);
  });

  it('never asked the gateway for a seed: no TCP to 10.0.2.3:80 in the pcap', () => {
    const out = execFileSync('tshark', ['-r', pcap(), '-Y', 'tcp', '-T', 'fields', '-e', 'ip.dst', '-e', 'tcp.dstport'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rows = out.trim().split('\n').map((l) => l.split('\t'));
    expect(rows.some(([dst, port]) => dst === '10.0.2.3' && port === '80')).toBe(false);
    // SSH did cross the gateway (the forward to port 22), so the capture is not empty.
    expect(rows.some(([, port]) => port === '22')).toBe(true);
  });

  it('left the image file byte for byte as it was (--snapshot)', async () => {
    expect(await sha256File(image.qcow2)).toBe(shaBefore);
  });
});
