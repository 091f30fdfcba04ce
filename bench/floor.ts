/**
 * Theory of operation: `node --import ./bench/lib/ts-loader.mjs bench/floor.ts`
 * — vmnet's 1-byte round trip and connections/s beside the floor Node and
 * the relay set under them. Same topology, guest and measurements as the
 * main bench's latency and connections/s rows (lib/backends.ts,
 * lib/measure.ts: netbench rr, 5,000 round trips after two warm-up
 * connections (RR_WARM_UP), median; netbench crr,
 * connect + 1-byte echo + close for CRR_SECONDS), for:
 *
 *   vmnet       the gateway (dist/cli/bin.js)
 *   node-floor  lib/node-floor.ts in the gateway's place: a bare Node TCP
 *               relay (SYN → dial, data ↔ host socket, FIN ↔ end), the same
 *               relay and host echo server; what any Node program pays
 *   base        with --base DIR: the gateway of another build (DIR/dist/cli/bin.js),
 *               for an A/B of two builds in interleaved rounds
 *   libslirp, passt   the anchors, as in the main bench (no relay for libslirp)
 *
 * Each round runs every kind once (the order reversed every other round, so
 * neither side always runs first on a machine whose load moves); the table
 * gives each cell's best round, and every round is listed with the load
 * average at its start. Writes bench/results/floor.md (--out NAME to change).
 * Flags: --rounds N (3), --mtu 1500,65520, --only vmnet,node-floor[,base,libslirp,passt],
 * --base DIR, --crr-seconds N (3).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startBackend, type BackendKind } from './lib/backends.js';
import { Scope } from './lib/env.js';
import { cell, connRate, latency, RR_WARM_UP, type ConnRate, type Failed, type Latency, type Measured } from './lib/measure.js';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    mtu: { type: 'string', default: '1500,65520' },
    only: { type: 'string', default: 'vmnet,node-floor' },
    base: { type: 'string' },
    'crr-seconds': { type: 'string', default: '3' },
    out: { type: 'string', default: 'floor.md' },
  },
});
type Kind = 'vmnet' | 'node-floor' | 'base' | 'libslirp' | 'passt';
const KINDS = flags.only.split(',') as Kind[];
const known: Kind[] = ['vmnet', 'node-floor', 'base', 'libslirp', 'passt'];
if (KINDS.some((k) => !known.includes(k)) || (KINDS.includes('base') && flags.base === undefined) || !/^[\w.-]+\.md$/.test(flags.out)) {
  process.stderr.write(`bench/floor: --only takes ${known.join(',')} (base needs --base DIR); --out a file name ending in .md\n`);
  process.exit(2);
}
const ROUNDS = Math.max(1, Number(flags.rounds));
const MTUS = flags.mtu.split(',').map(Number);
const RR_TRIPS = 5000;
const CRR_SECONDS = Number(flags['crr-seconds']);
const LOADER = join(ROOT, 'bench', 'lib', 'ts-loader.mjs');
const FLOOR = join(ROOT, 'bench', 'lib', 'node-floor.ts');

interface Run {
  kind: Kind;
  mtu: number;
  round: number;
  load: number;
  rr: Measured<Latency> | Failed;
  crr: Measured<ConnRate> | Failed;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

async function runOne(kind: Kind, mtu: number, round: number): Promise<Run> {
  const scope = new Scope();
  const load = loadavg()[0]!;
  try {
    const backendKind: BackendKind = kind === 'libslirp' || kind === 'passt' ? kind : 'vmnet';
    const vmnetArgs =
      kind === 'node-floor'
        ? (sock: string) => ['--import', LOADER, FLOOR, sock]
        : kind === 'base'
        ? (sock: string, m: number) => [join(flags.base!, 'dist', 'cli', 'bin.js'), 'gateway', '--socket', sock, '--mtu', String(m), '--dns-upstream', '127.0.0.1:53']
        : undefined;
    const b = await startBackend(scope, backendKind, mtu, { frameWrites: true, ...(vmnetArgs ? { vmnetArgs } : {}) });
    const pids = { backend: b.backend.pid, relay: b.relayPid };
    const rr = await cell(() => latency(scope, b.guest, b.netbench, b.serverIp, RR_TRIPS, pids));
    const crr = await cell(() => connRate(scope, b.guest, b.netbench, b.serverIp, CRR_SECONDS, pids));
    return { kind, mtu, round, load, rr, crr };
  } finally {
    await scope.close();
  }
}

const fmt = (c: Measured<Latency> | Measured<ConnRate> | Failed | undefined, pick: (v: Latency & ConnRate) => number): string =>
  c === undefined ? '—' : c.ok ? pick(c.value as Latency & ConnRate).toFixed(0) : 'failed';

const runs: Run[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const order = round % 2 === 1 ? KINDS : [...KINDS].reverse();
  for (const mtu of MTUS) {
    for (const kind of order) {
      log(`round ${round}, MTU ${mtu}: ${kind}`);
      runs.push(await runOne(kind, mtu, round));
    }
  }
}

const best = (kind: Kind, mtu: number, which: 'rr' | 'crr'): number | null => {
  const vals = runs
    .filter((r) => r.kind === kind && r.mtu === mtu && r[which].ok)
    .map((r) => (which === 'rr' ? (r.rr as Measured<Latency>).value.medianUs : (r.crr as Measured<ConnRate>).value.perSecond));
  if (!vals.length) return null;
  return which === 'rr' ? Math.min(...vals) : Math.max(...vals);
};
const loads = runs.map((r) => r.load);
const out: string[] = [
  '# vmnet beside the Node + relay floor',
  '',
  `- Date: ${new Date().toISOString()}`,
  `- Machine: ${cpus().length} CPUs, Linux ${release()}, Node ${process.version}`,
  `- Load average (1 min) at the rounds' starts: ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}`,
  `- ${ROUNDS} round(s), order reversed every other round; best round per cell, all rounds below.`,
  `- Latency: netbench rr, ${RR_TRIPS} 1-byte round trips after ${RR_WARM_UP.connections} warm-up connections of ${RR_WARM_UP.trips}, median (µs, lower is better); "cold" is the first warm-up connection. Connections/s: netbench crr for ${CRR_SECONDS} s.`,
  '',
  `| measurement | ${KINDS.join(' | ')} |`,
  `|---|${KINDS.map(() => '---:').join('|')}|`,
];
for (const mtu of MTUS) {
  out.push(`| latency, MTU ${mtu} (µs) | ${KINDS.map((k) => best(k, mtu, 'rr')?.toFixed(0) ?? '—').join(' | ')} |`);
  out.push(`| connections/s, MTU ${mtu} | ${KINDS.map((k) => best(k, mtu, 'crr')?.toFixed(0) ?? '—').join(' | ')} |`);
}
out.push('', '## Every round', '', '| round | MTU | load | kind | latency µs (p99) | cold µs (p99) | conn/s | backend CPU, latency / conn/s |', '|---|---|---|---|---|---|---|---|');
for (const r of runs) {
  const cpu = (c: Measured<Latency> | Measured<ConnRate> | Failed) => (c.ok && c.value.cpu.backend !== null ? `${c.value.cpu.backend.toFixed(0)}%` : '—');
  out.push(
    `| ${r.round} | ${r.mtu} | ${r.load.toFixed(1)} | ${r.kind} | ${fmt(r.rr, (v) => v.medianUs)} (${fmt(r.rr, (v) => v.p99Us)}) | ${fmt(r.rr, (v) => v.cold.medianUs)} (${fmt(r.rr, (v) => v.cold.p99Us)}) | ${fmt(r.crr, (v) => v.perSecond)} | ${cpu(r.rr)} / ${cpu(r.crr)} |`,
  );
}
for (const r of runs) {
  if (!r.rr.ok) out.push('', `round ${r.round} ${r.kind} MTU ${r.mtu} latency: ${r.rr.error}`);
  if (!r.crr.ok) out.push('', `round ${r.round} ${r.kind} MTU ${r.mtu} conn/s: ${r.crr.error}`);
}
const text = out.join('\n');
process.stdout.write(`${text}\n`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', flags.out), `${text}\n`);
log(`wrote bench/results/${flags.out}`);
