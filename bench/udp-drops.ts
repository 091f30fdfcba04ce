/**
 * Theory of operation: where a UDP datagram is lost between the guest's
 * iperf3 and the host's (issue 15, the UDP row). One backend (vmnet or
 * passt) per run, as in bench/run.ts (bench/lib/backends.ts); for each
 * direction and offered rate, one `iperf3 -u -b RATE -l 1400` (udpRate in
 * bench/lib/scale.ts) with every counter on the path read before and after:
 *
 *   guest ns   the kernel's Udp line (/proc/net/snmp: SndbufErrors of the
 *              sender, RcvbufErrors and InErrors of the receiver) and tap0's
 *              own counters (tx_dropped: the tap's queue toward the relay;
 *              rx_dropped: frames the relay wrote that the stack refused)
 *   host ns    the Udp line again (the iperf3 server's socket, and the
 *              backend's host sockets)
 *   gateway    vmnet's counters on SIGUSR1 (its UDP NAT's sendDropped and
 *              toHost/toGuest, the link's overflow and drop reasons)
 *
 * The iperf3 receiver's loss count is the total; the deltas say which hop
 * took it. The relay writes one frame per socket write, as QEMU does (the
 * bench's default). Usage (root):
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/udp-drops.ts [--only vmnet,passt] [--rates 500,1000] [--seconds 3] [--rounds 1]
 *        [--cli NAME=PATH,...]   vmnet builds to compare, interleaved per round (default: this tree's dist/cli/bin.js)
 *        [--profile FILE.md]     a fresh gateway per run under node --cpu-prof; the summaries go to bench/results/FILE.md
 *        [--perf FILE.md]        perf record -g on the gateway's pid during each run (kernel and native
 *                                frames, which node's profiler charges to the JS caller); the top
 *                                symbols go to bench/results/FILE.md
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, ROOT, startBackend, type Backend, type BackendKind, type BackendOptions } from './lib/backends.js';
import { profileMarkdown, summarizeProfile } from './lib/cpuprofile.js';
import { Scope } from './lib/env.js';
import { udpRate } from './lib/scale.js';

type Counts = Record<string, number>;

/** The Udp counters of /proc/net/snmp in `ns` (the header line names the values line). */
async function snmpUdp(scope: Scope, b: Backend, which: 'host' | 'guest'): Promise<Counts> {
  const text = await scope.run(b[which], 'cat', ['/proc/net/snmp']);
  const lines = text.split('\n').filter((l) => l.startsWith('Udp: '));
  const names = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [`${which}.${n}`, vals[i]!]));
}

/** tap0's kernel counters in the guest ns (ip -s -j link). */
async function tapStats(scope: Scope, b: Backend): Promise<Counts> {
  const [link] = JSON.parse(await scope.run(b.guest, 'ip', ['-s', '-j', 'link', 'show', 'tap0'])) as [{ stats64: { rx: Counts; tx: Counts } }];
  return { 'tap.rx_dropped': link.stats64.rx.dropped ?? 0, 'tap.tx_dropped': link.stats64.tx.dropped ?? 0, 'tap.rx': link.stats64.rx.packets ?? 0, 'tap.tx': link.stats64.tx.packets ?? 0 };
}

/** vmnet's counters: SIGUSR1 makes the gateway print them on stdout. */
async function gatewayCounters(b: Backend): Promise<Counts> {
  if (b.kind !== 'vmnet') return {};
  const before = b.backend.stdout().length;
  process.kill(b.backend.pid, 'SIGUSR1');
  const re = /vmnet gateway: counters \(SIGUSR1\) (\{.*\})\n/;
  for (let i = 0; i < 100; i++) {
    const m = re.exec(b.backend.stdout().slice(before));
    if (m) {
      const s = JSON.parse(m[1]!) as { udp: Counts; drops: Counts; linkOverflow: number };
      const out: Counts = { 'gw.linkOverflow': s.linkOverflow };
      for (const [k, v] of Object.entries(s.udp ?? {})) out[`gw.udp.${k}`] = v;
      for (const [k, v] of Object.entries(s.drops)) out[`gw.drop.${k}`] = v;
      return out;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('vmnet gateway: no counters after SIGUSR1');
}

async function all(scope: Scope, b: Backend): Promise<Counts> {
  return { ...(await snmpUdp(scope, b, 'guest')), ...(await snmpUdp(scope, b, 'host')), ...(await tapStats(scope, b)), ...(await gatewayCounters(b)) };
}

const INTERESTING = /RcvbufErrors|SndbufErrors|InErrors|NoPorts|dropped|Dropped|Overflow|refused|errors|udp-/;

/** One backend under test: an anchor, or vmnet from one build. */
interface Subject {
  name: string;
  kind: BackendKind;
  cli: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', default: 'vmnet,passt' },
      rates: { type: 'string', default: '500,1000' },
      seconds: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '1' },
      mtu: { type: 'string', default: '1500' },
      cli: { type: 'string', default: `vmnet=${CLI}` },
      profile: { type: 'string' },
      perf: { type: 'string' },
    },
  });
  const subjects: Subject[] = [];
  for (const kind of values.only.split(',') as BackendKind[]) {
    if (kind !== 'vmnet') subjects.push({ name: kind, kind, cli: '' });
    else for (const c of values.cli.split(',')) subjects.push({ name: c.split('=')[0]!, kind, cli: c.split('=')[1]! });
  }
  const rates = values.rates.split(',').map(Number);
  const seconds = Number(values.seconds);
  const profiles: string[] = [];
  const perfs: string[] = [];
  const runs = async (s: Subject, cases: { reverse: boolean; mbps: number }[], round: number) => {
    const scope = new Scope();
    const dir = values.profile ? mkdtempSync(join(tmpdir(), 'vmnet-udp-prof-')) : null;
    try {
      const opts: BackendOptions = { frameWrites: true };
      if (s.kind === 'vmnet') opts.vmnetArgs = (sock, mtu) => [s.cli, 'gateway', '--socket', sock, '--mtu', String(mtu), '--dns-upstream', '127.0.0.1:53'];
      if (dir) opts.nodeFlags = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
      const spawned = performance.now();
      const b = await startBackend(scope, s.kind, Number(values.mtu), opts);
      const from = performance.now() - spawned;
      const pids = { backend: b.backend.pid, relay: b.relayPid };
      let what = '';
      for (const { reverse, mbps } of cases) {
        const c0 = await all(scope, b);
        const perfData = values.perf ? join(tmpdir(), `vmnet-udp-${process.pid}-${perfs.length}.perf`) : null;
        // From 0.5 s into the run until 0.5 s before its end: the steady state only.
        const perf = perfData ? scope.run(null, 'sh', ['-c', `sleep 0.5; exec perf record -q -g -p ${b.backend.pid} -o ${perfData} -- sleep ${seconds - 1}`], (seconds + 20) * 1000) : null;
        const u = await udpRate(scope, b.guest, b.serverIp, { mbps, reverse, seconds, pids });
        const c1 = await all(scope, b);
        const delta = Object.entries(c1)
          .map(([k, v]) => [k, v - (c0[k] ?? 0)] as const)
          .filter(([k, d]) => d !== 0 && INTERESTING.test(k));
        const extra = Object.entries(c1)
          .filter(([k]) => /toHost|toGuest|InDatagrams|OutDatagrams/.test(k))
          .map(([k, v]) => `${k} ${v - (c0[k] ?? 0)}`);
        const load = (await scope.run(null, 'cat', ['/proc/loadavg'])).split(' ').slice(0, 3).join(' ');
        what = `${reverse ? 'host→guest' : 'guest→host'} ${mbps} Mbit/s offered: delivered ${u.deliveredMbps.toFixed(0)}, lost ${u.lossPct.toFixed(1)}%, gateway CPU ${u.cpu.backend?.toFixed(0)}%, load ${load}`;
        if (perf && perfData) {
          await perf;
          const top = async (sort: string, n: number) => {
            const text = await scope.run(null, 'perf', ['report', '-i', perfData, '--no-children', '--sort', sort, '--stdio', '-g', 'none', '--percent-limit', '0.5'], 60_000);
            return text.split('\n').filter((l) => l.trim() && !l.startsWith('#')).slice(0, n).join('\n');
          };
          const [byDso, bySym] = [await top('dso', 8), await top('dso,sym', 25)];
          rmSync(perfData, { force: true });
          perfs.push(`### ${s.name}, ${what}\n\n\`\`\`\n${byDso}\n\n${bySym}\n\`\`\`\n`);
        }
        process.stdout.write(
          `round ${round} ${s.name} ${reverse ? 'host→guest' : 'guest→host'} ${mbps} Mbit/s: delivered ${u.deliveredMbps.toFixed(0)}, lost ${u.lossPct.toFixed(1)}%, ` +
            `cpu backend ${u.cpu.backend?.toFixed(0)}% relay ${u.cpu.relay?.toFixed(0)}%, load ${load}\n` +
            `  drops: ${delta.map(([k, d]) => `${k} ${d}`).join(', ') || '(none counted)'}\n  carried: ${extra.join(', ')}\n`,
        );
      }
      if (dir) {
        const window = { fromMs: from, toMs: performance.now() - spawned };
        await b.backend.stop('SIGTERM'); // the profile is written at a clean exit
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        profiles.push(file ? profileMarkdown(`${s.name}, ${what}`, summarizeProfile(join(dir, file), ROOT, window)) : `### ${what}\n\nno .cpuprofile written\n`);
      }
    } finally {
      await scope.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  };
  const cases = [false, true].flatMap((reverse) => rates.map((mbps) => ({ reverse, mbps })));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const s of subjects) {
      // Profiles: one gateway per case, so each profile holds one direction and rate.
      if (values.profile && s.kind === 'vmnet') for (const c of cases) await runs(s, [c], round);
      else await runs(s, cases, round);
    }
  }
  if (values.perf) writeFileSync(join(ROOT, 'bench', 'results', values.perf), `# vmnet gateway, perf record -g (bench/udp-drops.ts --perf)\n\n${perfs.join('\n')}\n`);
  if (values.profile) writeFileSync(join(ROOT, 'bench', 'results', values.profile), `# vmnet gateway CPU profile, UDP (bench/udp-drops.ts)\n\n${profiles.join('\n')}\n`);
}

await main();
