/**
 * `vmnet switch create --vxlan …` through the built CLI: usage errors are
 * one line and exit 2; a switch on loopback shows its VTEP in create and ls;
 * a taken UDP port is reported by create itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cliRunner } from '../helpers/cli.js';
import { privateTmp } from '../helpers/tmp.js';

const env = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C', VMNET_RUNTIME_DIR: privateTmp() };
const vmnet = cliRunner(env);
const port = 30000 + Math.floor(Math.random() * 20000);
afterAll(async () => {
  await vmnet('switch', 'rm', 'vxcli', '--force');
});

describe('vmnet switch create --vxlan', () => {
  it('refuses bad VXLAN flags with one line and exit code 2', async () => {
    for (const [args, msg] of [
      [['--vxlan-remote', '192.0.2.1'], /go with --vxlan VNI/],
      [['--vxlan', '16777216', '--vxlan-remote', '192.0.2.1'], /bad --vxlan 16777216/],
      [['--vxlan', '5'], /at least one --vxlan-remote/],
      [['--vxlan', '5', '--vxlan-remote', '239.1.2.3'], /unicast/],
      [['--vxlan', '5', '--vxlan-remote', '192.0.2.1', '--vxlan-local', 'host.example'], /--vxlan-local/],
    ] as const) {
      const r = await vmnet('switch', 'create', 'vxbad', ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('creates a VXLAN switch, lists its VTEP, and reports a taken port at create', async () => {
    const c = await vmnet('switch', 'create', 'vxcli', '--no-gateway', '--vxlan', '9', '--vxlan-remote', `127.0.0.1:${port + 1}`, '--vxlan-local', `127.0.0.1:${port}`);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`VXLAN VNI 9 on 127.0.0.1:${port} -> 127.0.0.1:${port + 1}, inner frames up to 1464 B`);
    const ls = await vmnet('switch', 'ls');
    expect(ls.stdout).toMatch(/port \d+ {2}vxlan {2}trunk 1-4094 native 1/);
    expect(ls.stdout).toContain(`remote 127.0.0.1:${port + 1}`);
    const taken = await vmnet('switch', 'create', 'vxcli2', '--vxlan', '9', '--vxlan-remote', `127.0.0.1:${port + 1}`, '--vxlan-local', `127.0.0.1:${port}`);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/in use/);
  }, 30_000);
});
