/**
 * Theory of operation: `npm run bench` — vmnet's gateway against libslirp
 * (slirp4netns) and passt, with the Linux kernel's TCP in a network
 * namespace as the guest (lib/backends.ts has the topology). In one
 * invocation, for MTU 1500 and 65520 and each backend in turn:
 *
 *   iperf3 guest→host and host→guest (-R), 1 and 4 streams, SECONDS each
 *   (after WARMUP_SECONDS each way, unmeasured)
 *   latency: median of RR_TRIPS 1-byte round trips on one connection
 *   connections/s: connect, 1-byte echo, close, in a loop for CRR_SECONDS
 *
 * and, with --family 6 (the default is 4,6), the four throughput rows again
 * over IPv6: the guest takes a SLAAC address from each backend's router
 * advertisements and dials the backend's IPv6 address for the host
 * (lib/backends.ts); latency and connections/s stay IPv4 rows,
 * plus the relay baseline (two relays back to back, no user-mode network in
 * between), the loss row (loss.ts: goodput with 5 % loss + 5 % reordering
 * each way, vmnet's sender against Linux's, LOSS_SECONDS per run, once per
 * round), conn-memory.ts (10,000 idle connections) and the second table
 * (scale.ts: UDP at offered rates, DNS queries/s, 1 to 1,000 concurrent
 * connections, RSS per idle connection) at the first --mtu.
 * Prints a markdown report and writes it to bench/results/latest.md.
 *
 * The whole matrix runs ROUNDS times (default 2; the second round in the
 * reverse backend order) and each cell reports its best round: work from
 * other processes on the machine only ever makes a cell worse, so the best
 * of two is the steadier figure. Every round's value is listed too.
 *
 * Flags: --seconds N (iperf3 time, default 3), --rounds N, --mtu 1500,65520,
 * --family 4,6 (the address families of the throughput rows),
 * --out NAME (the report's file in bench/results/, default latest.md, or
 * profile.md with --profile),
 * --only vmnet,libslirp,passt, --no-memory, --no-baseline, --no-loss,
 * --rows tcp,udp,dns,conc,rss (which row groups; tcp is the matrix above),
 * --relay-batch (the relay batches a poll round's frames into one socket
 * write instead of one write per frame as QEMU does),
 * --profile (instead of the table: profile the vmnet gateway with
 * node --cpu-prof during one guest→host and one host→guest iperf3 run, and
 * during the latency + connections/s runs and the DNS row, at each --mtu; writes
 * bench/results/profile.md).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildTapRelay } from '../test/helpers/tap-relay.js';
import { connMemory, connMemoryMarkdown, type ConnMemoryResult } from './conn-memory.js';
import { LOSS_RUNS, lossMarkdown, lossRound, type LossOptions, type LossRound } from './loss.js';
import { dnsQueryFile, dnsRow, runScale, scaleMarkdown, SCALE_GROUPS, type ScaleGroup, type ScaleResult } from './scale.js';
import { ROOT, startBackend, startRelayPair, TAP_TXQUEUELEN, type Backend, type BackendKind, type Family } from './lib/backends.js';
import { profileMarkdown, summarizeProfile } from './lib/cpuprofile.js';
import { Scope } from './lib/env.js';
import { buildNetbench } from './lib/netbench.js';
import { cell, connRate, iperf, latency, RR_WARM_UP, type ConnRate, type Failed, type Latency, type Measured, type Throughput } from './lib/measure.js';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    mtu: { type: 'string', default: '1500,65520' },
    family: { type: 'string', default: '4,6' },
    out: { type: 'string' },
    only: { type: 'string', default: 'vmnet,libslirp,passt' },
    'no-memory': { type: 'boolean', default: false },
    'no-baseline': { type: 'boolean', default: false },
    'no-loss': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    rows: { type: 'string', default: ['tcp', ...SCALE_GROUPS].join(',') },
    'relay-batch': { type: 'boolean', default: false },
  },
});
const ROWS = flags.rows.split(',');
const unknownRows = ROWS.filter((r) => r !== 'tcp' && !(SCALE_GROUPS as readonly string[]).includes(r));
if (unknownRows.length) {
  process.stderr.write(`bench: --rows ${unknownRows.join(',')}: unknown (use tcp,${SCALE_GROUPS.join(',')})\n`);
  process.exit(2);
}
const FAMILIES = [...new Set(flags.family.split(','))].map(Number) as Family[];
if (!FAMILIES.length || FAMILIES.some((f) => f !== 4 && f !== 6)) {
  process.stderr.write(`bench: --family ${flags.family}: use 4, 6 or 4,6\n`);
  process.exit(2);
}
const outFile = flags.out ?? (flags.profile ? 'profile.md' : 'latest.md');
if (!/^[\w.-]+\.md$/.test(outFile)) {
  process.stderr.write(`bench: --out ${outFile}: a file name in bench/results/ ending in .md\n`);
  process.exit(2);
}
const SCALE = SCALE_GROUPS.filter((g) => ROWS.includes(g));
const FRAME_WRITES = !flags['relay-batch'];
const SECONDS = Number(flags.seconds);
const ROUNDS = Math.max(1, Number(flags.rounds));
const MTUS = flags.mtu.split(',').map(Number);
const KINDS = flags.only.split(',') as BackendKind[];
const RR_TRIPS = 5000;
const CRR_SECONDS = 3;
/**
 * Each backend first carries WARMUP_SECONDS of iperf3 each way, unmeasured:
 * a cell then shows the backend's steady state, not a fresh process's start.
 * The first cell (guest→host, 1 stream) used to pay the gateway's JIT
 * compilation: cold, its CPU per Gbit was 1.4-1.5× the warm figure, passt's
 * the same cold or warm (bench/results/tput3-ab-1500.md).
 */
const WARMUP_SECONDS = 1;
/** The loss row's iperf3 time: random loss makes short runs swing more than the clean ones. */
const LOSS: LossOptions = { seconds: 10, seed: 1, runs: LOSS_RUNS };
const RESULTS = join(ROOT, 'bench', 'results');

const log = (s: string) => process.stderr.write(`${s}\n`);
type Cell<T> = Measured<T> | Failed;

interface BackendRun {
  kind: BackendKind;
  mtu: number;
  family: Family;
  round: number;
  setup: string | null;
  g2h1: Cell<Throughput> | null;
  g2h4: Cell<Throughput> | null;
  h2g1: Cell<Throughput> | null;
  h2g4: Cell<Throughput> | null;
  rr: Cell<Latency> | null;
  crr: Cell<ConnRate> | null;
}

/** One backend, one MTU, one family: the throughput cells, and over IPv4 latency and connections/s. */
async function runBackend(kind: BackendKind, mtu: number, family: Family, round: number): Promise<BackendRun> {
  const r: BackendRun = { kind, mtu, family, round, setup: null, g2h1: null, g2h4: null, h2g1: null, h2g4: null, rr: null, crr: null };
  const scope = new Scope();
  try {
    const b = await startBackend(scope, kind, mtu, { frameWrites: FRAME_WRITES, family });
    const pids = { backend: b.backend.pid, relay: b.relayPid };
    const tp = (streams: number, reverse: boolean) => cell(() => iperf(scope, b.guest, b.serverIp, { seconds: SECONDS, streams, reverse, pids }));
    await warmUp(scope, b);
    r.g2h1 = await tp(1, false);
    r.g2h4 = await tp(4, false);
    r.h2g1 = await tp(1, true);
    r.h2g4 = await tp(4, true);
    if (family === 4) {
      r.rr = await cell(() => latency(scope, b.guest, b.netbench, b.serverIp, RR_TRIPS, pids));
      r.crr = await cell(() => connRate(scope, b.guest, b.netbench, b.serverIp, CRR_SECONDS, pids));
    }
    const dead = await Promise.race([b.backend.exited.then((c) => `exited (${c})`), Promise.resolve(null)]);
    if (dead) r.setup = `${kind} ${dead} during the run: ${b.backend.stderr().trim().slice(-300)}`;
  } catch (e) {
    r.setup = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  } finally {
    await scope.close();
  }
  const fmt = (c: Cell<Throughput> | null) => (c?.ok ? c.value.gbps.toFixed(2) : 'x');
  log(`  round ${round} ${kind} mtu ${mtu} IPv${family}: g→h ${fmt(r.g2h1)}/${fmt(r.g2h4)} h→g ${fmt(r.h2g1)}/${fmt(r.h2g4)} Gbit/s` + (r.setup ? ` — ${r.setup}` : ''));
  return r;
}

/** WARMUP_SECONDS of one stream each way, unmeasured (a failure here shows in the cells that follow). */
async function warmUp(scope: Scope, b: Backend): Promise<void> {
  for (const reverse of [false, true]) await cell(() => iperf(scope, b.guest, b.serverIp, { seconds: WARMUP_SECONDS, streams: 1, reverse, pids: { backend: null, relay: null } }));
}

interface Baseline {
  mtu: number;
  result: Cell<Throughput & { relayCpu: (number | null)[] }>;
}

/** Two relays back to back through a splice: the relay path's own ceiling. */
async function relayBaseline(mtu: number): Promise<Baseline> {
  const scope = new Scope();
  try {
    const result = await cell(async () => {
      const p = await startRelayPair(scope, mtu);
      // Both relays count: each carries the data one way and the ACKs the other.
      const t = await iperf(scope, p.a, '10.9.0.2', { seconds: SECONDS, streams: 1, reverse: false, pids: { backend: p.relayPids[0]!, relay: p.relayPids[1]! } });
      return { ...t, relayCpu: [t.cpu.backend, t.cpu.relay] };
    });
    log(`  relay pair mtu ${mtu}: ${result.ok ? result.value.gbps.toFixed(2) + ' Gbit/s' : result.error}`);
    return { mtu, result };
  } finally {
    await scope.close();
  }
}

// ---------------------------------------------------------------- report

const NAMES: Record<BackendKind, string> = { vmnet: 'vmnet', libslirp: 'libslirp', passt: 'passt' };

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

function machine(): string[] {
  const commit = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']) ? ' (src/ has uncommitted changes)' : '';
  const pkg = (p: string) => sh('dpkg-query', ['-W', '-f', '${Version}', p]);
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Commit: ${commit}${dirty}`,
    `- Machine: ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? '?'}), Linux ${release()}, Node ${process.version}`,
    `- Anchors: passt ${pkg('passt')}, slirp4netns ${pkg('slirp4netns')} (libslirp ${pkg('libslirp0')}), iperf3 ${pkg('iperf3')}, dnsperf ${pkg('dnsperf')}`,
    `- Relay: ${FRAME_WRITES ? 'one socket write per frame (as QEMU writes)' : 'batched socket writes (--relay-batch)'}; guest tap txqueuelen ${TAP_TXQUEUELEN}`,
  ];
}

const ok = <T>(c: Cell<T> | null): T | null => (c?.ok ? c.value : null);
const pctStr = (x: number | null) => (x === null ? '—' : `${x.toFixed(0)}%`);

function ratio(v: number | null, base: number | null, higherIsBetter: boolean, mark: boolean): string {
  if (v === null || base === null || base === 0) return '—';
  const r = v / base;
  const good = higherIsBetter ? r >= 1 : r <= 1;
  return `${r.toFixed(2)}${mark ? (good ? ' ✓' : ' ✗') : ''}`;
}

type CellKey = 'g2h1' | 'g2h4' | 'h2g1' | 'h2g4' | 'rr' | 'crr';
type AnyValue = { cpu: { backend: number | null; relay: number | null } };

interface Row {
  label: string;
  unit: string;
  mtu: number;
  family: Family;
  key: CellKey;
  higher: boolean;
  digits: number;
}

/** A cell's headline number. */
function metric(key: CellKey, v: AnyValue): number {
  if (key === 'rr') return (v as Latency).medianUs;
  if (key === 'crr') return (v as ConnRate).perSecond;
  return (v as Throughput).gbps;
}

function memorySection(mem: ConnMemoryResult | Failed | null): string[] {
  if (!mem) return [];
  return ['## Memory', '', 'ok' in mem ? `conn-memory failed: ${mem.error}` : connMemoryMarkdown(mem), ''];
}

function report(
  runs: BackendRun[],
  baselines: Baseline[],
  loss: LossRound[],
  mem: ConnMemoryResult | Failed | null,
  load: { start: number[]; end: number[] },
): string {
  /** Every round's successful value of one cell. */
  const values = (kind: BackendKind, mtu: number, family: Family, key: CellKey): AnyValue[] =>
    runs
      .filter((r) => r.kind === kind && r.mtu === mtu && r.family === family)
      .flatMap((r) => {
        const c = r[key];
        return c?.ok ? [c.value as AnyValue] : [];
      });
  /** The best round's value (highest, or lowest for latency). */
  const best = (kind: BackendKind, mtu: number, family: Family, key: CellKey): AnyValue | null => {
    const vs = values(kind, mtu, family, key);
    if (!vs.length) return null;
    const higher = key !== 'rr';
    return vs.reduce((a, b) => ((higher ? metric(key, b) > metric(key, a) : metric(key, b) < metric(key, a)) ? b : a));
  };
  const rows: Row[] = [];
  for (const family of FAMILIES)
    for (const mtu of MTUS) {
      for (const [key, label] of [
        ['g2h1', 'guest→host, 1 stream'],
        ['g2h4', 'guest→host, 4 streams'],
        ['h2g1', 'host→guest, 1 stream'],
        ['h2g4', 'host→guest, 4 streams'],
      ] as const) {
        rows.push({ label: `${family === 6 ? 'IPv6 ' : ''}${label}, MTU ${mtu}`, unit: 'Gbit/s', mtu, family, key, higher: true, digits: 2 });
      }
    }
  if (FAMILIES.includes(4))
    for (const mtu of MTUS) {
      rows.push({ label: `latency, 1-byte round trip (median), MTU ${mtu}`, unit: 'µs', mtu, family: 4, key: 'rr', higher: false, digits: 0 });
      rows.push({ label: `connections/s (connect, 1-byte echo, close), MTU ${mtu}`, unit: 'conn/s', mtu, family: 4, key: 'crr', higher: true, digits: 0 });
    }
  const has = (k: BackendKind) => KINDS.includes(k);
  const head = ['measurement', 'unit', ...KINDS.map((k) => NAMES[k])];
  if (has('vmnet') && has('libslirp')) head.push('vmnet / libslirp');
  if (has('vmnet') && has('passt')) head.push('vmnet / passt');
  const out: string[] = [
    '# vmnet benchmark',
    '',
    ...machine(),
    `- Load average (1 min) at start ${load.start[0]?.toFixed(2)}, at end ${load.end[0]?.toFixed(2)}: other work on the machine moves every figure; compare within one run.`,
    `- Guest: Linux TCP in a network namespace. Throughput: iperf3 -t ${SECONDS}, receiver-side rate, after ${WARMUP_SECONDS} s each way unmeasured. Latency: ${RR_TRIPS} round trips after ${RR_WARM_UP.connections} warm-up connections of ${RR_WARM_UP.trips}. Connections/s: ${CRR_SECONDS} s loop.`,
    ...(FAMILIES.includes(6)
      ? [
          '- IPv6 rows: the guest takes a SLAAC address from the backend\'s router advertisements and dials the host\'s ::1 through the backend: vmnet fd0d:b4b8:6ba1::2, libslirp fd00::2 (slirp4netns --enable-ipv6), passt 2001:db8:200::2 (its copied default gateway; passt without -4).',
        ]
      : []),
    `- ${ROUNDS} round(s) of the whole matrix; each cell shows its best round (all rounds are listed below).`,
    '',
  ];
  if (!runs.length) {
    // --rows without tcp: only the second table (and memory) follow.
    return [...out, ...memorySection(mem)].join('\n');
  }
  out.push(
    '## Results',
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  );
  const num = (kind: BackendKind, row: Row) => {
    const v = best(kind, row.mtu, row.family, row.key);
    return v ? metric(row.key, v) : null;
  };
  for (const row of rows) {
    const cells = [row.label, row.unit, ...KINDS.map((k) => num(k, row)).map((v) => (v === null ? 'failed' : v.toFixed(row.digits)))];
    if (has('vmnet') && has('libslirp')) cells.push(ratio(num('vmnet', row), num('libslirp', row), row.higher, true));
    if (has('vmnet') && has('passt')) cells.push(ratio(num('vmnet', row), num('passt', row), row.higher, false));
    out.push(`| ${cells.join(' | ')} |`);
  }
  out.push(
    '',
    "Ratios are vmnet ÷ anchor. ✓ / ✗: does vmnet meet the issue's target of at least libslirp (for latency lower is better, so ✓ means ≤).",
    '',
  );

  // CPU shares: show the relay is not the bottleneck.
  const keys: CellKey[] = ['g2h1', 'g2h4', 'h2g1', 'h2g4', 'rr', 'crr'];
  out.push('## CPU during each run (% of one core: backend process / relay), best round', '');
  const cpuHead = ['backend, MTU', 'g→h 1', 'g→h 4', 'h→g 1', 'h→g 4', 'latency', 'conn/s'];
  out.push(`| ${cpuHead.join(' | ')} |`, `|${cpuHead.map(() => '---').join('|')}|`);
  let relayMax = 0;
  for (const r of runs)
    for (const k of keys) {
      const v = r[k];
      if (v?.ok && v.value.cpu.relay !== null) relayMax = Math.max(relayMax, v.value.cpu.relay);
    }
  for (const family of FAMILIES)
    for (const mtu of MTUS)
      for (const k of KINDS) {
        const cells = keys.map((key) => {
          const v = best(k, mtu, family, key);
          return v ? `${pctStr(v.cpu.backend)} / ${pctStr(v.cpu.relay)}` : '—';
        });
        out.push(`| ${NAMES[k]} ${mtu}${family === 6 ? ' IPv6' : ''} | ${cells.join(' | ')} |`);
      }
  out.push('');

  out.push('## The relay is not the bottleneck', '');
  out.push(
    `In every backend run above (all rounds) the relay used at most **${relayMax.toFixed(0)}%** of one core; it is a single-threaded poll loop, so it limits a run only near 100%.`,
    '',
  );
  if (baselines.length) {
    out.push(
      'Relay pair: two namespaces, each with its tap relayed by tap-relay to one unix socket, the two streams spliced by `netbench xconn` — the relay on both ends and no user-mode network between (iperf3, 1 stream). Each relay here carries the data one way and the ACKs the other, and three user processes share the two cores with both kernels, so this is a floor for the relay path, not its ceiling.',
      '',
      '| MTU | relay pair, Gbit/s | relay CPU (each) |',
      '|---|---:|---|',
    );
    for (const b of baselines) {
      const v = ok(b.result);
      out.push(`| ${b.mtu} | ${v ? v.gbps.toFixed(2) : `failed: ${(b.result as Failed).error}`} | ${v ? v.relayCpu.map(pctStr).join(', ') : '—'} |`);
    }
    out.push('');
  }

  if (ROUNDS > 1) {
    out.push('## Every round', '', `Values per round (1 / 2 / …), same units as above.`, '');
    const rh = ['measurement', ...KINDS.map((k) => NAMES[k])];
    out.push(`| ${rh.join(' | ')} |`, `|${rh.map(() => '---').join('|')}|`);
    for (const row of rows) {
      const cells = KINDS.map((k) => {
        const rs = runs.filter((r) => r.kind === k && r.mtu === row.mtu && r.family === row.family).sort((a, b) => a.round - b.round);
        return rs
          .map((r) => {
            const c = r[row.key];
            return c?.ok ? metric(row.key, c.value).toFixed(row.digits) : 'x';
          })
          .join(' / ');
      });
      out.push(`| ${row.label} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }

  const failures = runs.flatMap((r) => {
    const errs: string[] = [];
    const what = `round ${r.round} ${r.kind} ${r.mtu} IPv${r.family}`;
    if (r.setup) errs.push(`${what}: ${r.setup}`);
    for (const k of keys) {
      const c = r[k];
      if (c && !c.ok) errs.push(`${what} ${k}: ${c.error}`);
    }
    return errs;
  });
  if (failures.length) out.push('## Failures', '', ...failures.map((f) => `- ${f}`), '');

  if (loss.length) out.push(lossMarkdown(loss, LOSS));
  return [...out, ...memorySection(mem)].join('\n');
}

// ---------------------------------------------------------------- profile mode

async function profile(): Promise<void> {
  const out: string[] = ['# vmnet gateway CPU profile', '', ...machine(), ''];
  for (const mtu of MTUS) for (const mode of ['g2h', 'h2g', 'conn', 'dns'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-prof-'));
    const scope = new Scope();
    let what = '?';
    let window: { fromMs: number; toMs: number } | undefined;
    try {
      const spawned = performance.now();
      const b = await startBackend(scope, 'vmnet', mtu, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`], frameWrites: FRAME_WRITES });
      const pids = { backend: b.backend.pid, relay: b.relayPid };
      if (mode === 'g2h' || mode === 'h2g') await warmUp(scope, b); // profile the steady state, as the table measures it
      const from = performance.now() - spawned;
      if (mode === 'dns') {
        const d = await dnsRow(scope, b, dnsQueryFile(dir));
        what = `${d.qps.toFixed(0)} queries/s, ${d.avgLatencyMs.toFixed(2)} ms average; gateway CPU ${pctStr(d.cpu.backend)}`;
      } else if (mode === 'conn') {
        const l = await latency(scope, b.guest, b.netbench, b.serverIp, RR_TRIPS, pids);
        const c = await connRate(scope, b.guest, b.netbench, b.serverIp, CRR_SECONDS, pids);
        what = `latency ${l.medianUs.toFixed(0)} µs, then ${c.perSecond.toFixed(0)} conn/s; gateway CPU ${pctStr(c.cpu.backend)}`;
      } else {
        const t = await iperf(scope, b.guest, b.serverIp, { seconds: 5, streams: 1, reverse: mode === 'h2g', pids });
        what = `${t.gbps.toFixed(2)} Gbit/s, gateway CPU ${pctStr(t.cpu.backend)}, relay ${pctStr(t.cpu.relay)}`;
      }
      // Profile time starts a little after the spawn (Node's boot), so this window errs towards earlier samples.
      window = { fromMs: from, toMs: performance.now() - spawned };
      await b.backend.stop('SIGTERM'); // the profile is written at a clean exit
    } finally {
      await scope.close();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    const title =
      mode === 'dns'
        ? `DNS: dnsperf through the gateway's resolver (the second table's DNS row), MTU ${mtu} (${what})`
        : mode === 'conn'
        ? `latency (${RR_TRIPS} round trips) then connections/s (${CRR_SECONDS} s), MTU ${mtu} (${what})`
        : `${mode === 'h2g' ? 'host→guest' : 'guest→host'}, 1 stream, MTU ${mtu}, iperf3 5 s (${what})`;
    if (!file) out.push(`### ${title}`, '', 'no .cpuprofile written (the gateway did not exit cleanly)', '');
    else out.push(profileMarkdown(title, summarizeProfile(join(dir, file), ROOT, window)));
    rmSync(dir, { recursive: true, force: true });
  }
  const text = out.join('\n');
  process.stdout.write(`${text}\n`);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, outFile), `${text}\n`);
  log(`wrote ${join(RESULTS, outFile)}`);
}

// ---------------------------------------------------------------- main

if (process.getuid?.() !== 0) {
  log('bench: needs root (network namespaces, TAP devices)');
  process.exit(2);
}
await buildTapRelay();
await buildNetbench();
if (flags.profile) {
  await profile();
} else {
  const started = Date.now();
  const load = { start: loadavg(), end: [] as number[] };
  const baselines: Baseline[] = [];
  if (!flags['no-baseline']) {
    log('relay baseline');
    for (const mtu of MTUS) baselines.push(await relayBaseline(mtu));
  }
  const runs: BackendRun[] = [];
  if (ROWS.includes('tcp')) for (let round = 1; round <= ROUNDS; round++)
    for (const mtu of MTUS)
      for (const family of FAMILIES) {
        log(`round ${round}, MTU ${mtu}, IPv${family}`);
        for (const kind of round % 2 ? KINDS : [...KINDS].reverse()) runs.push(await runBackend(kind, mtu, family, round));
      }
  const loss: LossRound[] = [];
  if (!flags['no-loss'] && KINDS.includes('vmnet'))
    for (let round = 1; round <= ROUNDS; round++) {
      log(`loss round ${round}`);
      loss.push(await lossRound({ ...LOSS, runs: round % 2 ? LOSS.runs : [...LOSS.runs].reverse() }, round, log));
    }
  let mem: ConnMemoryResult | Failed | null = null;
  if (!flags['no-memory']) {
    log('conn-memory (10,000 idle connections)');
    mem = await connMemory(10_000, log).catch((e: unknown) => ({ ok: false as const, error: e instanceof Error ? e.message : String(e) }));
  }
  let scale: ScaleResult | null = null;
  if (SCALE.length) scale = await runScale({ kinds: KINDS, groups: SCALE as ScaleGroup[], rounds: ROUNDS, mtu: MTUS[0]!, frameWrites: FRAME_WRITES, log });
  load.end = loadavg();
  const text = report(runs, baselines, loss, mem, load) + (scale ? `\n${scaleMarkdown(scale, mem)}` : '');
  process.stdout.write(`${text}\n`);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, outFile), `${text}\n`);
  log(`wrote ${join(RESULTS, outFile)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
