/**
 * `vmnet up|status|down LAB.yaml` from the command line: a file with
 * mistakes is refused before anything starts, one line per mistake with
 * file, line and field; and, as the unprivileged user vmnet-test, a lab is
 * brought up, brought up again (nothing changes), edited (only what was
 * edited changes), shown (--json, --dot through Graphviz) and taken down
 * (nothing left). Needs root (runuser, the test user).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureTestUser, TEST_USER } from '../helpers/test-user.js';
import { freePort } from '../helpers/ports.js';

const BIN = new URL('../../dist/cli/bin.js', import.meta.url).pathname;

/** Runs the CLI, as the test user when `user` is set; resolves with its exit code and output. */
function vmnet(args: string[], env: NodeJS.ProcessEnv, user = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cmd = user ? ['runuser', '-u', TEST_USER, '--', process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const alive = (pid: number): boolean => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

describe('vmnet up/status/down', () => {
  it('a file with mistakes: one line per mistake (file:line:col: field: message), exit 2, nothing started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-lab-bad-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `switches:
  lan:
    subnet: 10.0.5.0/33
    gatway: true
vms:
  web:
    guest: test
    memory: lots
    nics:
      - switch: lna
        vlan: 5000
`,
    );
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, VMNET_RUNTIME_DIR: join(dir, 'run') };
    const r = await vmnet(['up', file], env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `${file}:4:5: switches.lan.gatway: unknown field "gatway" (known: subnet, gateway, isolated, host, host-loopback, mtu, dns, vlans)`,
      `${file}:11:15: vms.web.nics[0].vlan: must be a VLAN id 1-4094`,
    ]);
    // Schema right, meaning wrong: the checks of meaning, the same way.
    writeFileSync(file, readFileSync(file, 'utf8').replace('    gatway: true\n', '').replace('vlan: 5000', 'vlan: 1'));
    const r2 = await vmnet(['status', file], env);
    expect(r2.code).toBe(2);
    expect(r2.stderr.trimEnd().split('\n')).toEqual([
      `${file}:3:13: switches.lan.subnet: expected an IPv4 CIDR from /8 to /29, e.g. 10.0.2.0/24`,
      `${file}:7:13: vms.web.memory: give a size such as 512M or 2G (at least 16M)`,
      `${file}:9:17: vms.web.nics[0].switch: no switch "lna" in this file (switches: lan)`,
    ]);
    expect(readdirSync(dir)).toEqual(['bad.yaml']); // no runtime directory: nothing started
  });

  it('as an unprivileged user: up, up again (nothing changes), edits change only what was edited, status --json/--dot, down leaves nothing', { timeout: 600_000 }, async () => {
    const { uid } = ensureTestUser();
    expect(uid).not.toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-lab-user-'));
    chmodSync(dir, 0o755);
    chownSync(dir, uid, -1);
    const run = join(dir, 'run');
    const file = join(dir, 'solo.yaml');
    const [p1, p2] = [await freePort(), await freePort()];
    const text = `name: solo
switches:
  net: { subnet: 10.0.8.0/24 }
vms:
  solo:
    guest: test
    memory: 192M
    cpus: 1
    accel: tcg
    nics: [{ switch: net }]
    forwards: ["${p1}:80"]
`;
    writeFileSync(file, text);
    chmodSync(file, 0o644);
    const env = { PATH: process.env.PATH, HOME: `/home/${TEST_USER}`, LANG: 'C', VMNET_RUNTIME_DIR: run };
    try {
      const up = await vmnet(['up', file], env, true);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(up.stdout.split('\n')).toEqual(['solo: created switch net (new)', 'solo: started VM solo (new)', 'solo: up (2 changes)', '']);

      const st = JSON.parse((await vmnet(['status', file, '--json'], env, true)).stdout) as { up: boolean; switches: Array<{ pid: number; state: string }>; vms: Array<{ pid: number; state: string; forwards: string[] }> };
      expect(st.up).toBe(true);
      const [swPid, vmPid] = [st.switches[0]!.pid, st.vms[0]!.pid];
      expect(uidOf(swPid)).toBe(uid);
      expect(uidOf(vmPid)).toBe(uid);
      expect(st.vms[0]!.forwards).toEqual([`127.0.0.1:${p1}:80/tcp`]);

      const again = await vmnet(['up', file], env, true);
      expect(again.code).toBe(0);
      expect(again.stdout).toBe('solo: up to date, nothing changed\n');

      // One forward more: added live, nothing restarted.
      writeFileSync(file, text.replace(`["${p1}:80"]`, `["${p1}:80", "${p2}:22"]`));
      const fwd = await vmnet(['up', file], env, true);
      expect(fwd.stdout).toBe(`solo: added forward 127.0.0.1:${p2}:22/tcp to VM solo (new)\nsolo: up (1 change)\n`);
      // Less memory: that VM restarts, the switch stays.
      writeFileSync(file, text.replace(`["${p1}:80"]`, `["${p1}:80", "${p2}:22"]`).replace('memory: 192M', 'memory: 160M'));
      const mem = await vmnet(['up', file], env, true);
      expect(mem.stdout).toBe('solo: stopped VM solo (changed: memoryMiB 192 → 160)\nsolo: started VM solo (changed: memoryMiB 192 → 160)\nsolo: up (2 changes)\n');
      const st2 = JSON.parse((await vmnet(['status', file, '--json'], env, true)).stdout) as typeof st;
      expect(st2.switches[0]!.pid).toBe(swPid);
      expect(st2.vms[0]!.pid).not.toBe(vmPid);
      expect(alive(vmPid)).toBe(false);
      expect(st2.vms[0]!.forwards.sort()).toEqual([`127.0.0.1:${p1}:80/tcp`, `127.0.0.1:${p2}:22/tcp`].sort());

      // A link fault: set live on the running VM's port, one line; status shows it and what it did.
      const faulty = text.replace(`["${p1}:80"]`, `["${p1}:80", "${p2}:22"]`).replace('memory: 192M', 'memory: 160M').replace('nics: [{ switch: net }]', 'nics: [{ switch: net, impair: { delay: 20ms, seed: 5 } }]');
      writeFileSync(file, faulty);
      const imp = await vmnet(['up', file], env, true);
      expect(imp.stdout).toBe('solo: set link faults on VM solo eth0: delay=20ms seed=5 (new)\nsolo: up (1 change)\n');
      const txt = await vmnet(['status', file], env, true);
      expect(txt.stdout).toMatch(/^ {4}faults delay=20ms seed=5\n {4}egress \(to the VM\): offered \d+ delivered \d+ lost 0 /m);
      const st3 = JSON.parse((await vmnet(['status', file, '--json'], env, true)).stdout) as { vms: Array<{ pid: number; nics: Array<{ impair: string; link: { egress: { settings: { delayMs: number } } } }> }> };
      expect(st3.vms[0]!.pid).toBe(st2.vms[0]!.pid);
      expect(st3.vms[0]!.nics[0]!.impair).toBe('delay=20ms seed=5');
      expect(st3.vms[0]!.nics[0]!.link.egress.settings.delayMs).toBe(20);
      // A bad fault: the parser's message at its line, nothing changed.
      writeFileSync(file, faulty.replace('delay: 20ms', 'delay: soon'));
      const bad = await vmnet(['up', file], env, true);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^\S+solo\.yaml:\d+:\d+: vms\.solo\.nics\[0\]\.impair\.delay: bad link setting "delay=soon": give a time such as 50ms/);
      writeFileSync(file, faulty);

      const dot = await vmnet(['status', file, '--dot'], env, true);
      expect(dot.code).toBe(0);
      const svg = execFileSync('dot', ['-Tsvg'], { input: dot.stdout, encoding: 'utf8' });
      expect(svg).toContain('gateway 10.0.8.2');
      expect(svg).toContain('solo');
      expect(svg).toContain('faults: delay=20ms seed=5');

      const down = await vmnet(['down', file], env, true);
      expect(down.code).toBe(0);
      expect(down.stdout).toBe('solo: stopped VM solo (down)\nsolo: removed switch net (down)\nsolo: down\n');
      expect(alive(swPid)).toBe(false);
      expect(alive(st2.vms[0]!.pid)).toBe(false);
      expect(readdirSync(run).sort()).toEqual(['supervisor.log', 'switches']);
      expect(readdirSync(join(run, 'switches'))).toEqual([]);
      expect((await vmnet(['down', file], env, true)).stdout).toBe('solo: was not up\n');
    } finally {
      await vmnet(['down', file], env, true);
    }
  });
});
