/**
 * The built `vmnet` binary's cloud-init and SSH edges that need no guest:
 * the seed in the --dry-run plan (SMBIOS serial, CIDATA disk without a user
 * NIC, the login user), the seed options refused with one line and exit 2,
 * and vmnet exec / cp / ssh / wait --ssh on a VM that is not running
 * (exec and cp exit 125: the guest cannot be reached; usage mistakes 2).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '../../dist/cli/bin.js');
const rt = mkdtempSync(join(tmpdir(), 'vmnet-cli-rt-'));
const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
writeFileSync(join(dir, 'web.img'), Buffer.alloc(1024));
const img = join(dir, 'web.img');

function vmnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, VMNET_DEBUG: '', VMNET_RUNTIME_DIR: '', XDG_RUNTIME_DIR: rt, XDG_DATA_HOME: join(dir, 'data') } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const oneLine = (r: { code: number; stderr: string }, code: number, pattern: RegExp) => {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(/^vmnet: [^\n]+\n$/);
  expect(r.stderr).toMatch(pattern);
};

describe('cloud-init seed in the plan', () => {
  it('a disk image is seeded over the network: the SMBIOS serial names the seed URL, the plan names the user and the SSH forward', async () => {
    const r = await vmnet('run', img, '--accel', 'tcg', '--user', 'dev', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { command: string[]; network: string[] };
    expect(plan.command[plan.command.indexOf('-smbios') + 1]).toBe('type=1,serial=ds=nocloud-net;s=http://10.0.2.3/vmnet/TOKEN/');
    expect(plan.network.join('\n')).toMatch(/^cloud-init: user dev with vmnet's key; seed served at http:\/\/10\.0\.2\.3\/vmnet\/TOKEN\/ to this VM's MAC only/m);
    expect(plan.network.join('\n')).toMatch(/^ssh: a forward from a free 127\.0\.0\.1 port/m);
  });

  it('without a user NIC the seed is a CIDATA disk; --cloud-init off and --kernel boots have none; a disk image keeps its SSH forward unseeded', async () => {
    const disk = JSON.parse((await vmnet('run', img, '--accel', 'tcg', '--net', 'none', '--dry-run', '--json')).stdout) as { command: string[]; dir: string };
    expect(disk.command).toContain(`file=${join(disk.dir, 'seed.img')},format=raw,if=virtio,readonly=on`);
    expect(disk.command).not.toContain('-smbios');
    const off = JSON.parse((await vmnet('run', img, '--accel', 'tcg', '--cloud-init', 'off', '--dry-run', '--json')).stdout) as { command: string[]; network: string[] };
    expect(off.command).not.toContain('-smbios');
    expect(off.network.join('\n')).not.toMatch(/cloud-init/);
    // A disk image gets its SSH forward unseeded too (the image may bring its own keys); --no-ssh drops it.
    expect(off.network.join('\n')).toMatch(/^ssh: a forward from a free 127\.0\.0\.1 port/m);
    const noSsh = JSON.parse((await vmnet('run', img, '--accel', 'tcg', '--cloud-init', 'off', '--no-ssh', '--dry-run', '--json')).stdout) as { network: string[] };
    expect(noSsh.network.join('\n')).not.toMatch(/cloud-init|ssh:/);
  });

  it('refuses contradictory or bad seed options in one line, exit 2', async () => {
    const pub = join(dir, 'k.pub');
    writeFileSync(pub, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 me\n');
    oneLine(await vmnet('run', img, '--cloud-init', 'off', '--ssh-key', pub, '--dry-run'), 2, /--cloud-init off and a seed option/);
    oneLine(await vmnet('run', img, '--user', 'root', '--dry-run'), 2, /bad --user root: root is a system account/);
    oneLine(await vmnet('run', img, '--ssh-key', join(dir, 'web.img'), '--dry-run'), 2, /--ssh-key .* line 1 is not an OpenSSH public key/);
    writeFileSync(join(dir, 'u.yaml'), 'users: []\n');
    oneLine(await vmnet('run', img, '--user-data', join(dir, 'u.yaml'), '--dry-run'), 2, /does not start with a line cloud-init knows/);
    oneLine(await vmnet('run', img, '--net', 'none', '--cloud-init-seed', 'net', '--dry-run'), 2, /--cloud-init-seed net .* needs --net user/);
  });
});

describe('reaching a VM that is not running', () => {
  it('exec and cp exit 125 with one line; wait --ssh and ssh say it is not running; usage mistakes exit 2', async () => {
    oneLine(await vmnet('exec', 'nosuch', '--', 'true'), 125, /no VM named nosuch is running/);
    oneLine(await vmnet('cp', join(dir, 'web.img'), 'nosuch:/tmp/x'), 125, /no VM named nosuch is running/);
    oneLine(await vmnet('wait', 'nosuch', '--ssh', '--timeout', '1'), 1, /no VM named nosuch is running/);
    oneLine(await vmnet('ssh', 'nosuch'), 1, /no VM named nosuch is running/);
    oneLine(await vmnet('exec', 'nosuch'), 2, /no command given/);
    oneLine(await vmnet('exec', 'nosuch', '--env', 'A-B=1', '--', 'true'), 2, /bad --env A-B/);
    oneLine(await vmnet('wait', 'nosuch'), 2, /give one of --port P or --ssh/);
    oneLine(await vmnet('cp', 'a', 'b'), 2, /neither side names a VM/);
    oneLine(await vmnet('cp', 'x:a', 'y:b'), 2, /both sides name a VM/);
  });
});
