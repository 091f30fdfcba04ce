/**
 * The built `vmnet` binary as a user meets it: real help, one-line errors
 * with exit code 2, no stack traces.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
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

function vmnetEnv(extra: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, VMNET_DEBUG: '', VMNET_RUNTIME_DIR: '', ...extra } }, (err, stdout, stderr) => {
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
    for (const flag of ['--forward', '--snapshot', '--kernel', '--memory', '--accel', '--dry-run', '--console', '--detach', '--json', '--net', '--isolated', '--dns-record', '--pcap', '--mtu', '--stop-timeout']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain('Ctrl-]');
  });
  it('lists the VM commands in help', async () => {
    const r = await vmnet('--help');
    for (const c of ['vmnet ls', 'vmnet stop <name>', 'vmnet forward <action> <name> [spec]', 'vmnet wait <name>', 'vmnet console <name>']) expect(r.stdout).toContain(c);
  });
  it('--dry-run --json prints the plan as JSON and creates nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'web.img'), Buffer.alloc(1024));
    const rt = mkdtempSync(join(tmpdir(), 'vmnet-cli-rt-'));
    const r = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'run', join(dir, 'web.img'), '--accel', 'tcg', '--net', 'user,mac=52:54:00:aa:bb:cc', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.name).toBe('web');
    expect(plan.dir).toBe(join(rt, 'vmnet', 'web'));
    expect(plan.command).toContain('virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc');
    expect(plan.command).toContain('-S');
    expect(existsSync(join(rt, 'vmnet'))).toBe(false);
  });
  it('--net none drops the NIC; forwards without a network are a usage error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    const r = await vmnet('run', join(dir, 'd.img'), '--accel', 'tcg', '--net', 'none', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('-netdev');
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--net', 'none', '--forward', '22:22', '--dry-run'), /need --net user/);
  });
  it('--net is repeatable: a user NIC and a switch port (started on demand, so a dry run shows a placeholder)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    const r = await vmnet('run', join(dir, 'd.img'), '--accel', 'tcg', '--net', 'user', '--net', 'switch:lab,vlan=5,mac=52:54:00:00:00:05', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^nic 1 52:54:00:00:00:05: switch lab \(access vlan 5; started on demand\)/m);
    expect(r.stdout).toContain('-device virtio-net-pci,netdev=net1,mac=52:54:00:00:00:05');
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--net', 'user', '--net', 'user', '--dry-run'), /only one --net user/);
  });
  it('rejects bad VM names and bad --net values', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--name', '../x', '--dry-run'), /bad VM name/);
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--net', 'bridge', '--dry-run'), /bad --net bridge/);
    expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--console', 'tty9', '--dry-run'), /bad --console/);
  });
  it('stop, forward, wait and console name a VM that does not run: one line, exit 1', async () => {
    const rt = mkdtempSync(join(tmpdir(), 'vmnet-cli-rt-'));
    for (const args of [['stop', 'nope'], ['forward', 'ls', 'nope'], ['wait', 'nope', '--port', '22'], ['console', 'nope']]) {
      const r = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^vmnet: no VM named nope is running.*\n$/);
    }
    const ls = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'ls', '--json');
    expect(ls.stdout).toBe('[]\n');
  });
  it('switch create: --no-host and --no-host-loopback need a gateway; bad gateway flags are one line, exit 2', async () => {
    const rt = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'switch', 'create', 'lan', '--no-host'), /--no-host-loopback and --no-host need a gateway/);
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'switch', 'create', 'lan', '--no-gateway', '--no-host-loopback'), /need a gateway/);
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'switch', 'create', 'lan', '--subnet', '10.7.0.0/24', '--no-gateway'), /--subnet is the gateway's network and --no-gateway asks for none/);
    expectOneLineUsageError(await vmnet('gateway', '--socket', join(rt, 'g.sock'), '--tcp-per-guest', '0'), /bad --tcp-per-guest 0/);
    expectOneLineUsageError(await vmnet('gateway', '--socket', join(rt, 'g.sock'), '--dhcp-leases-per-link', '0'), /bad DHCP leases per link 0/);
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'switch', 'create', 'lan', '--no-gateway', '--no-ipv6'), /--no-ipv6 and --subnet6 need a gateway/);
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, 'switch', 'create', 'lan', '--subnet', '10.7.0.0/24', '--subnet6', 'fd00::/48'), /bad --subnet6 fd00::\/48: expected a unicast IPv6 \/64/);
    expectOneLineUsageError(await vmnet('gateway', '--socket', join(rt, 'g.sock'), '--subnet6', 'fe80::/64'), /bad --subnet6 fe80::\/64/);
    expectOneLineUsageError(await vmnet('gateway', '--socket', join(rt, 'g.sock'), '--no-ipv6', '--subnet6', 'fd00::/64'), /contradict/);
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
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '1M']); // a qcow2 named .img
    const r = await vmnet('run', img, '--accel', 'tcg', '-m', '512M', '--forward', '2222:22', '--dry-run', '--', '-no-reboot');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`file=${img},format=qcow2,if=virtio`);
    // --net user is vmnet's own gateway: QEMU gets a stream netdev, never -netdev user/hostfwd.
    expect(r.stdout).not.toContain('hostfwd');
    expect(r.stdout).toMatch(/-netdev stream,id=net0,server=off,addr\.type=unix,addr\.path=\S+\/disk\/net0\.sock/);
    expect(r.stdout).toMatch(/^forward 127\.0\.0\.1:2222:22\/tcp -> guest port 22\/tcp$/m);
    expect(r.stdout).toMatch(/^nic 0 52:54:00:[0-9a-f:]{8}: vmnet gateway/m);
    expect(r.stdout).toMatch(/-m 512M .*-no-reboot/);
  });
  it('--pcap and --console file: never follow a symlink planted at the path, nor write to what is not a regular file or FIFO', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    const rt = mkdtempSync(join(tmpdir(), 'vmnet-cli-rt-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const trap = join(dir, 'capture');
    symlinkSync(victim, trap);
    const kernel = join(dir, 'vmlinuz');
    writeFileSync(kernel, 'not really a kernel');
    // /bin/false stands in for QEMU: were it reached, the run would end with exit 1, after the files were opened.
    const base = ['run', '--kernel', kernel, '--qemu', '/bin/false', '--accel', 'tcg', '--console', 'none'];
    const pcap = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, ...base, '--pcap', trap);
    expectOneLineUsageError(pcap, /capture is a symbolic link/);
    const con = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, ...base.slice(0, -2), '--console', `file:${trap}`);
    expectOneLineUsageError(con, /capture is a symbolic link/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expectOneLineUsageError(await vmnetEnv({ XDG_RUNTIME_DIR: rt }, ...base, '--pcap', dir), /not a regular file/);
    // A regular file of the user is truncated (pcap) or appended to (console copy); a FIFO is written without truncation.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    let got = 0;
    reader.stdout.on('data', (b: Buffer) => (got += b.length));
    const readerDone = new Promise((r) => reader.on('close', r));
    const viaFifo = await vmnetEnv({ XDG_RUNTIME_DIR: rt }, ...base, '--pcap', fifo);
    expect(viaFifo.code, viaFifo.stderr).toBe(1); // QEMU (/bin/false) failed: the pcap was opened
    await readerDone;
    expect(got).toBe(24); // the pcap file header went through the FIFO
  });
  it('a closed stdout is no crash: vmnet run --dry-run | head -c 5', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('bash', ['-c', `"$@" | head -c 5 >/dev/null; exit \${PIPESTATUS[0]}`, 'sh', process.execPath, BIN, 'run', join(dir, 'd.img'), '--accel', 'tcg', '--dry-run', ...Array.from({ length: 200 }, (_, i) => ['--dns-record', `n${i}.test=10.0.2.${i % 250}`]).flat()], (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
  it('arguments after -- reach QEMU verbatim', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    const extra = ['-append', '1e3', '-m', '0x100', '-name', '007', '-smp', '2.50', '-device', 'virtio-rng-pci,max-bytes=1e3'];
    const r = await vmnet('run', join(dir, 'd.img'), '--accel', 'tcg', '--dry-run', '--json', '--', ...extra);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { command: string[] }).command.slice(-extra.length)).toEqual(extra);
  });
  it('refuses, before anything starts, QEMU options after -- that would take QEMU away from vmnet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-cli-'));
    writeFileSync(join(dir, 'd.img'), Buffer.alloc(1024));
    for (const [args, re] of [
      [['-daemonize'], /-daemonize: QEMU would leave vmnet/],
      [['--daemonize'], /--daemonize: QEMU would leave vmnet/],
      [['-no-shutdown'], /-no-shutdown: .*power-off/],
      [['-action', 'reboot=shutdown,shutdown=pause'], /-action shutdown=pause: .*power-off/],
    ] as Array<[string[], RegExp]>) {
      expectOneLineUsageError(await vmnet('run', join(dir, 'd.img'), '--accel', 'tcg', '--dry-run', '--', ...args), re);
    }
    // The same words as values of other options are no options.
    const ok = await vmnet('run', join(dir, 'd.img'), '--accel', 'tcg', '--dry-run', '--', '-append', '-daemonize', '-nographic', '-no-reboot');
    expect(ok.code, ok.stderr).toBe(0);
  });
});
