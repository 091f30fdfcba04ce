/**
 * Theory of operation: what a cloud image costs with vmnet, on the tests'
 * Debian 12 genericcloud stand-in (test/cloud-image/build.sh) under TCG:
 *
 *   boot to SSH  `vmnet run IMAGE --snapshot --detach` then `vmnet wait NAME
 *                --ssh`, wall clock from the run to ready, with the stages
 *                the gateway saw on the way (first frame, lease, seed
 *                fetched, port 22), read from `wait --ssh`'s own lines.
 *   exec         `vmnet exec NAME -- true`, the master connection warm, N
 *                times: median and spread. Beside it, to show where the time
 *                goes: the CLI alone (`vmnet ls`: Node start, yargs, the
 *                control socket), `ssh … true` over the master (what vmnet
 *                adds nothing to), and `ssh … true` with a new connection
 *                each time (ControlPath=none: key exchange and login, what
 *                the master saves).
 *
 * lima's figures: lima publishes no benchmark of boot-to-SSH or of
 * `limactl shell` latency; what its tracker and users report is quoted in
 * the results file with links (see LIMA below), not measured here (no
 * macOS, no internet).
 *
 * Run as root (the stand-in is built by debootstrap) after `npm run build`
 * and `npm run cloud-image`:
 *   node --import ./bench/lib/ts-loader.mjs bench/cloud.ts [--rounds 1] [--execs 20] [--cpus 1]
 * Prints a markdown report and writes bench/results/cloud.md.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { findCloudImage } from '../test/helpers/cloud-image.js';
import { CLI, ROOT } from './lib/backends.js';
import { bootStatusOf } from '../src/vm/manage.js';

const execP = promisify(execFile);
const { values: flags } = parseArgs({ options: { rounds: { type: 'string', default: '1' }, execs: { type: 'string', default: '20' }, cpus: { type: 'string', default: '1' } } });
const ROUNDS = Number(flags.rounds);
const EXECS = Number(flags.execs);

/** The lima figures found (issue tracker and pull requests; none are lima's own benchmarks). */
const LIMA = [
  '- lima publishes no boot-to-SSH or per-command benchmark (its docs and repository, searched in this project\'s library, have none).',
  '- lima PR #4874 (2026-04, https://github.com/lima-vm/lima/pull/4874): the ubuntu-26.04 template is "not default yet, as the first boot takes 2 minutes" (a cloud-init bug).',
  '- lima issue #858 (2022-05, https://github.com/lima-vm/lima/issues/858): a user measured `limactl start default` at 23.4 s total (macOS, hardware-accelerated), archlinux 4 min 26 s.',
  '- rancher-desktop-2 PR #258 (2026-03, https://github.com/rancher-sandbox/rancher-desktop-2/pull/258): on Intel CI runners a lima VM\'s first boot takes over 2 minutes, "SSH port alone takes ~1m46s"; lima\'s own tests wait 300 s.',
  '- lima runs every `limactl shell` over an SSH ControlMaster (ControlPersist=yes, issue #1939 shows its ssh command line, which also has StrictHostKeyChecking=no and UserKnownHostsFile=/dev/null); no latency figure for one command was found.',
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr, ms: performance.now() - t0 }));
  });
}

const vmnet = (args: string[], env: NodeJS.ProcessEnv) => run(process.execPath, [CLI, ...args], env);

function stats(ms: number[]): { median: number; p10: number; p90: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p10: at(0.1), p90: at(0.9) };
}
const fmt = (x: { median: number; p10: number; p90: number }) => `${x.median.toFixed(0)} ms (p10 ${x.p10.toFixed(0)}, p90 ${x.p90.toFixed(0)})`;

async function main(): Promise<void> {
  const image = findCloudImage();
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-bench-cloud-'));
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: join(dir, 'run'), XDG_DATA_HOME: join(dir, 'data'), VMNET_DEBUG: '' };
  delete env.VMNET_RUNTIME_DIR;
  await execP('mkdir', ['-m', '700', '-p', env.XDG_RUNTIME_DIR!]);
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  const head = await execP('git', ['-C', ROOT, 'log', '-1', '--format=%h %cs']).then((r) => r.stdout.trim(), () => 'unknown');
  say(`# Cloud image: boot to SSH and one exec`);
  say('');
  say(`${new Date().toISOString()}, commit ${head}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Linux ${release()}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start.`);
  say(`Image: the stand-in (kernel ${image.manifest.kernelVersion}, cloud-init ${image.manifest.cloudInit}), TCG, ${flags.cpus} vCPU, 1 GiB, \`--snapshot\`.`);
  say('');
  say('| round | boot to SSH | first frame | DHCP lease | seed fetched (first–last document) |');
  say('|---|---|---|---|---|');
  const name = 'bench-cloud';
  const execMs: number[] = [];
  const cliMs: number[] = [];
  const muxMs: number[] = [];
  const freshMs: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const t0 = performance.now();
      const r = await vmnet(['run', image.qcow2, '--snapshot', '--detach', '--name', name, '--accel', 'tcg', '--cpus', String(flags.cpus), '-m', '1G', '--console', 'none', '--dns-upstream', '127.0.0.1:9'], env);
      if (r.code !== 0) throw new Error(`vmnet run failed: ${r.stderr}`);
      const w = await vmnet(['wait', name, '--ssh', '--timeout', '600'], env);
      const total = (performance.now() - t0) / 1000;
      if (w.code !== 0) throw new Error(`vmnet wait --ssh failed: ${w.stderr}`);
      // What the gateway saw, from the VM's own boot status (seconds after the VM started).
      const b = await bootStatusOf(name, env);
      const t = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : `${((ms - b.startedAt) / 1000).toFixed(1)} s`);
      say(`| ${round} | **${total.toFixed(1)} s** | ${t(b.firstFrameAt)} | ${t(b.lease?.at)} | ${t(b.seedFetch?.firstAt)}–${t(b.seedFetch?.lastAt)} |`);
      if (round === ROUNDS) {
        const st = JSON.parse((await vmnet(['ls', '--json'], env)).stdout) as Array<{ name: string; ssh: { port: number; user: string; identity: string; knownHosts: string; controlPath: string } }>;
        const ssh = st.find((v) => v.name === name)!.ssh;
        const base = ['-i', ssh.identity, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${ssh.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-p', String(ssh.port)];
        await vmnet(['exec', name, '--', 'true'], env); // warms the master
        for (let i = 0; i < EXECS; i++) {
          execMs.push((await vmnet(['exec', name, '--', 'true'], env)).ms);
          cliMs.push((await vmnet(['ls'], env)).ms);
          muxMs.push((await run('ssh', [...base, '-o', `ControlPath=${ssh.controlPath}`, `${ssh.user}@127.0.0.1`, 'true'], env)).ms);
          freshMs.push((await run('ssh', [...base, '-o', 'ControlPath=none', `${ssh.user}@127.0.0.1`, 'true'], env)).ms);
        }
      }
      await vmnet(['stop', name, '--force'], env);
    }
  } finally {
    await vmnet(['stop', name, '--force'], env).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  say('');
  say('Boot to SSH is `vmnet run --detach` to `vmnet wait --ssh` returning (wall clock); the stage columns are what the gateway recorded, in seconds after the VM started.');
  say('');
  say(`One command, ${EXECS} runs each, the VM idle:`);
  say('');
  say('| what | time |');
  say('|---|---|');
  say(`| \`vmnet exec NAME -- true\` (master warm) | **${fmt(stats(execMs))}** |`);
  say(`| \`vmnet ls\` (the CLI's own cost: Node, yargs, the control socket) | ${fmt(stats(cliMs))} |`);
  say(`| \`ssh … true\` over vmnet's master connection | ${fmt(stats(muxMs))} |`);
  say(`| \`ssh … true\` with a new connection each time (no master) | ${fmt(stats(freshMs))} |`);
  say('');
  say('## lima');
  say('');
  for (const l of LIMA) say(l);
  say('');
  say(`Load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (TCG guests and Node share the cores with whatever else runs: compare within one run).`);
  writeFileSync(join(ROOT, 'bench', 'results', 'cloud.md'), lines.join('\n') + '\n');
}

await main();
