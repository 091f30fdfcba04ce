/**
 * `vmnet wait NAME --ssh` on a guest that gets a lease but never fetches its
 * seed and never listens on port 22 (the bundled busybox guest, seeded with
 * --cloud-init on: it has no cloud-init and no sshd): it reports the stages
 * it sees while waiting and its timeout message names where the boot
 * stands, the lease with its time, the seed not fetched, port 22 closed.
 * (A guest with no frame at all is the cloud image stand-in with
 * --cloud-init off, in cloud-image.test.ts.) A VM without an SSH forward
 * (--no-ssh) is refused at once with exit 125, not waited for.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, statSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { APPEND, connectUnix, privateRuntime, serveOverConsole, SMALL, vmnet } from './launcher-helpers.js';

const NAME = 'sshwait-bb';
const { tmp, env, root } = privateRuntime('vmnet-sshwait-');
env.XDG_DATA_HOME = join(tmp, 'data');
// As a home directory usually is: others may traverse the test's directories, so only vmnet's own modes protect its files.
chmodSync(tmp, 0o755);
mkdirSync(env.XDG_DATA_HOME, { mode: 0o755 });
chmodSync(env.XDG_DATA_HOME, 0o755);
let running = false;

afterAll(async () => {
  if (running) await vmnet(['stop', NAME, '--force'], env);
});

/**
 * What vmnet keeps for SSH to a running seeded VM (its key, the VM's host
 * key, known_hosts, the master connection's socket directory) is 0600 in
 * 0700 directories, and another local user (nobody) can read none of it nor
 * reach the socket's directory.
 */
async function checkPrivateToOthers(): Promise<void> {
  const ls = JSON.parse((await vmnet(['ls', '--json'], env)).stdout) as Array<{ name: string; ssh: { identity: string; knownHosts: string; controlPath: string } }>;
  const ssh = ls.find((v) => v.name === NAME)!.ssh;
  const hostKey = join(env.XDG_DATA_HOME!, 'vmnet', 'vms', NAME, 'ssh_host_ed25519_key');
  const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
  expect([ssh.identity, ssh.knownHosts, hostKey].map(mode)).toEqual(['600', '600', '600']);
  expect([dirname(ssh.identity), dirname(ssh.knownHosts), dirname(ssh.controlPath), dirname(hostKey), join(env.XDG_DATA_HOME!, 'vmnet'), root].map(mode)).toEqual(['700', '700', '700', '700', '700', '700']);
  const asNobody = (...cmd: string[]) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd], { encoding: 'utf8' });
  // The check can fail: nobody does read a file of the same tree that is not vmnet's own.
  execFileSync('sh', ['-c', `echo visible > ${join(tmp, 'visible')}; chmod 644 ${join(tmp, 'visible')}`]);
  expect(asNobody('cat', join(tmp, 'visible')).stdout).toBe('visible\n');
  for (const p of [ssh.identity, ssh.knownHosts, hostKey]) expect(asNobody('cat', p).status, p).not.toBe(0);
  for (const d of [dirname(ssh.controlPath), join(root, NAME)]) expect(asNobody('ls', d).status, d).not.toBe(0);
}

describe('vmnet wait --ssh names the stage it timed out in', () => {
  it('a guest with a lease, no seed fetch, nothing on port 22', { timeout: 300_000 }, async () => {
    const guest = findBundledGuest();
    const run = await vmnet(['run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--cloud-init', 'on', '--detach', '--name', NAME, '--console', 'none', ...SMALL], env);
    expect(run.code, run.stderr).toBe(0);
    running = true;
    const con = await connectUnix(join(root, NAME, 'console.sock'));
    try {
      await serveOverConsole(con, con, 'udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || echo DHCP-FAILED\necho SERVING\nsleep 600\n');
    } finally {
      con.destroy();
    }
    const w = await vmnet(['wait', NAME, '--ssh', '--timeout', '8'], env);
    expect(w.code, w.stderr).toBe(1);
    const lines = w.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(new RegExp(`^vmnet: VM ${NAME}: SSH not ready within 8 s: DHCP lease 10\\.0\\.2\\.15 [\\d.]+ s after start; seed not fetched yet; port 22 closed \\(nothing listens yet\\)$`));
    expect(lines[0]).toMatch(new RegExp(`^vmnet: ${NAME}: DHCP lease 10\\.0\\.2\\.15 `));
    await checkPrivateToOthers();
    const stop = await vmnet(['stop', NAME, '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    running = false;
  });

  it('a VM without an SSH forward: wait --ssh and exec say so at once, exit 125', { timeout: 120_000 }, async () => {
    const guest = findBundledGuest();
    const run = await vmnet(['run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--cloud-init', 'on', '--no-ssh', '--detach', '--name', NAME, '--console', 'none', ...SMALL], env);
    expect(run.code, run.stderr).toBe(0);
    running = true;
    const t0 = Date.now();
    const w = await vmnet(['wait', NAME, '--ssh', '--timeout', '60'], env);
    expect(Date.now() - t0).toBeLessThan(30_000); // not the timeout: there is nothing to wait for
    expect([w.code, w.stderr]).toEqual([125, `vmnet: VM ${NAME} has no SSH forward (started with --no-ssh, without --net user, or a --kernel boot without --cloud-init on)\n`]);
    const x = await vmnet(['exec', NAME, '--', 'true'], env);
    expect([x.code, x.stderr]).toEqual([125, `vmnet: VM ${NAME} has no SSH forward (started with --no-ssh, without --net user, or a --kernel boot without --cloud-init on)\n`]);
    const stop = await vmnet(['stop', NAME, '--force'], env);
    expect(stop.code, stop.stderr).toBe(0);
    running = false;
  });
});
