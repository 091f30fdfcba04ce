/**
 * Theory of operation: the bench's second table — UDP at offered rates,
 * DNS queries per second, cost under 1 to 1,000 concurrent connections and
 * memory per idle connection — for vmnet and its anchors side by side, in
 * the same invocation as the TCP matrix (run.ts calls runScale()). Each
 * backend is started fresh (lib/backends.ts, one MTU), runs every selected
 * group of rows, and is stopped; ROUNDS rounds, the even ones in reverse
 * backend order. Each cell reports its best round (highest, or lowest
 * where lower is better) and every round is listed, since other work on a
 * shared machine only ever makes a figure worse.
 *
 * Groups (run.ts --rows): udp (lib/scale.ts udpRate, both directions at
 * UDP_RATES), dns (dnsQps), conc (concurrent, rr and bulk at CONNS), rss
 * (idleRss with RSS_CONNS connections; conn-memory.ts's 10,000-connection
 * figure for vmnet is added as a row when run.ts measured it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnMemoryResult } from './conn-memory.js';
import { startBackend, type Backend, type BackendKind } from './lib/backends.js';
import { Scope } from './lib/env.js';
import type { Failed } from './lib/measure.js';
import { concurrent, dnsQps, idleRss, udpRate, writeQueryFile, UDP_LEN } from './lib/scale.js';

export type ScaleGroup = 'udp' | 'dns' | 'conc' | 'rss';
export const SCALE_GROUPS: readonly ScaleGroup[] = ['udp', 'dns', 'conc', 'rss'];

export const UDP_RATES = [100, 500, 1000, 2000];
const UDP_SECONDS = 3;
const DNS_SECONDS = 4;
/**
 * dnsperf's own default: enough queries in flight that the row measures how
 * fast a backend resolves, not only one query's round trip (with 32, every
 * backend waited more than it computed). vmnet forwards up to 256 per guest.
 */
const DNS_OUTSTANDING = 100;
const DNS_NAMES = 200_000;
export const CONNS = [1, 10, 100, 1000];
const RR_SECONDS = 2;
const BULK_SECONDS = 3;
const RSS_CONNS = 2000;

interface RowSpec {
  key: string;
  group: ScaleGroup;
  label: string;
  unit: string;
  higher: boolean;
  digits: number;
}

function rowSpecs(): RowSpec[] {
  const rows: RowSpec[] = [];
  for (const reverse of [false, true]) {
    const dir = reverse ? 'host→guest' : 'guest→host';
    for (const r of UDP_RATES) {
      rows.push({ key: `udp-${dir}-${r}`, group: 'udp', label: `UDP ${dir}, ${r} Mbit/s offered: delivered`, unit: 'Mbit/s', higher: true, digits: 0 });
      rows.push({ key: `udploss-${dir}-${r}`, group: 'udp', label: `UDP ${dir}, ${r} Mbit/s offered: lost`, unit: '%', higher: false, digits: 1 });
    }
  }
  rows.push({ key: 'dns-qps', group: 'dns', label: `DNS through the backend's resolver (${DNS_OUTSTANDING} in flight)`, unit: 'queries/s', higher: true, digits: 0 });
  rows.push({ key: 'dns-ok', group: 'dns', label: 'DNS answers that were NOERROR', unit: '%', higher: true, digits: 1 });
  rows.push({ key: 'dns-lat', group: 'dns', label: 'DNS average latency', unit: 'ms', higher: false, digits: 2 });
  for (const n of CONNS) {
    rows.push({ key: `rr-tps-${n}`, group: 'conc', label: `${n} connection(s), 1-byte round trips`, unit: 'trips/s', higher: true, digits: 0 });
    rows.push({ key: `rr-med-${n}`, group: 'conc', label: `${n} connection(s), round trip median`, unit: 'µs', higher: false, digits: 0 });
    rows.push({ key: `rr-p99-${n}`, group: 'conc', label: `${n} connection(s), round trip 99th percentile`, unit: 'µs', higher: false, digits: 0 });
  }
  for (const n of CONNS) {
    rows.push({ key: `bulk-${n}`, group: 'conc', label: `${n} connection(s), guest→host bulk`, unit: 'Gbit/s', higher: true, digits: 2 });
    rows.push({ key: `cpu-${n}`, group: 'conc', label: `${n} connection(s), backend CPU per Gbit carried`, unit: 'ms/Gbit', higher: false, digits: 0 });
  }
  rows.push({ key: 'rss', group: 'rss', label: `RSS per idle connection (${RSS_CONNS.toLocaleString('en')} connections)`, unit: 'KB', higher: false, digits: 2 });
  return rows;
}

/** One round of one backend: every row's value (absent when not measured or failed). */
interface ScaleRun {
  kind: BackendKind;
  round: number;
  values: Map<string, number>;
  errors: string[];
}

export interface ScaleResult {
  kinds: BackendKind[];
  groups: ScaleGroup[];
  rounds: number;
  mtu: number;
  frameWrites: boolean;
  runs: ScaleRun[];
}

async function step(run: ScaleRun, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    run.errors.push(`${what}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300)}`);
  }
}

/** The DNS row's run (dnsperf with the table's settings) against a started backend. */
export function dnsRow(scope: Scope, b: Backend, queryFile: string): ReturnType<typeof dnsQps> {
  return dnsQps(scope, b.guest, b.dnsIp, { queryFile, seconds: DNS_SECONDS, outstanding: DNS_OUTSTANDING, pids: { backend: b.backend.pid, relay: b.relayPid } });
}

/** Writes the DNS row's query file into `dir`. */
export const dnsQueryFile = (dir: string): string => writeQueryFile(join(dir, 'queries.txt'), DNS_NAMES);

async function runOne(kind: BackendKind, round: number, o: { groups: ScaleGroup[]; mtu: number; frameWrites: boolean; queryFile: string; log: (s: string) => void }): Promise<ScaleRun> {
  const run: ScaleRun = { kind, round, values: new Map(), errors: [] };
  const scope = new Scope();
  const set = (k: string, v: number) => run.values.set(k, v);
  try {
    const b = await startBackend(scope, kind, o.mtu, { frameWrites: o.frameWrites });
    const pids = { backend: b.backend.pid, relay: b.relayPid };
    // RSS first, on a fresh process: after the bulk runs a process's RSS already holds
    // freed memory (Node's heap, malloc arenas) that new connections reuse unseen.
    if (o.groups.includes('rss'))
      await step(run, 'idle RSS', async () => {
        const r = await idleRss(scope, b.guest, b.netbench, b.serverIp, RSS_CONNS, b.backend.pid);
        set('rss', r.perConnKb);
      });
    if (o.groups.includes('udp'))
      for (const reverse of [false, true]) {
        const dir = reverse ? 'host→guest' : 'guest→host';
        for (const mbps of UDP_RATES)
          await step(run, `UDP ${dir} ${mbps}M`, async () => {
            const u = await udpRate(scope, b.guest, b.serverIp, { mbps, reverse, seconds: UDP_SECONDS, pids });
            set(`udp-${dir}-${mbps}`, u.deliveredMbps);
            set(`udploss-${dir}-${mbps}`, u.lossPct);
          });
      }
    if (o.groups.includes('dns'))
      await step(run, 'DNS', async () => {
        const d = await dnsRow(scope, b, o.queryFile);
        if (d.completedPct < 90) throw new Error(`dnsperf: only ${d.completedPct}% of queries answered`);
        set('dns-qps', d.qps);
        set('dns-ok', d.noErrorPct);
        set('dns-lat', d.avgLatencyMs);
      });
    if (o.groups.includes('conc')) {
      for (const n of CONNS)
        await step(run, `${n} conns rr`, async () => {
          const c = await concurrent(scope, b.guest, b.netbench, b.serverIp, { conns: n, seconds: RR_SECONDS, mode: 'rr', pids });
          set(`rr-tps-${n}`, c.tps);
          set(`rr-med-${n}`, c.medianUs);
          set(`rr-p99-${n}`, c.p99Us);
        });
      for (const n of CONNS)
        await step(run, `${n} conns bulk`, async () => {
          const c = await concurrent(scope, b.guest, b.netbench, b.serverIp, { conns: n, seconds: BULK_SECONDS, mode: 'bulk', pids });
          set(`bulk-${n}`, c.gbps);
          // % of a core over the run ÷ Gbit/s = core-seconds per Gbit; ×1000 for ms.
          if (c.cpu.backend !== null && c.gbps > 0) set(`cpu-${n}`, (c.cpu.backend / 100 / c.gbps) * 1000);
        });
    }
    const dead = await Promise.race([b.backend.exited.then((c) => `exited (${c})`), Promise.resolve(null)]);
    if (dead) run.errors.push(`${kind} ${dead} during the run: ${b.backend.stderr().trim().slice(-300)}`);
  } catch (e) {
    run.errors.push(`setup: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  } finally {
    await scope.close();
  }
  const v = (k: string, d = 0) => (run.values.has(k) ? run.values.get(k)!.toFixed(d) : 'x');
  o.log(
    `  round ${round} ${kind}: udp g→h ${UDP_RATES.map((r) => v(`udp-guest→host-${r}`)).join('/')} Mbit/s, dns ${v('dns-qps')} q/s, ` +
      `rr ${CONNS.map((n) => v(`rr-tps-${n}`)).join('/')} trips/s, bulk ${CONNS.map((n) => v(`bulk-${n}`, 2)).join('/')} Gbit/s, rss ${v('rss', 2)} KB` +
      (run.errors.length ? ` — ${run.errors.length} error(s)` : ''),
  );
  return run;
}

/** Runs the selected groups for every backend, `rounds` times. */
export async function runScale(o: { kinds: BackendKind[]; groups: ScaleGroup[]; rounds: number; mtu: number; frameWrites: boolean; log: (s: string) => void }): Promise<ScaleResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-dnsq-'));
  try {
    const queryFile = dnsQueryFile(dir);
    const runs: ScaleRun[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      o.log(`scale rows, round ${round}, MTU ${o.mtu}`);
      for (const kind of round % 2 ? o.kinds : [...o.kinds].reverse()) runs.push(await runOne(kind, round, { ...o, queryFile }));
    }
    return { kinds: o.kinds, groups: o.groups, rounds: o.rounds, mtu: o.mtu, frameWrites: o.frameWrites, runs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const NAMES: Record<BackendKind, string> = { vmnet: 'vmnet', libslirp: 'libslirp', passt: 'passt' };

/** The second table (best round per cell, ratios), every round, and the errors, as markdown. */
export function scaleMarkdown(s: ScaleResult, mem: ConnMemoryResult | Failed | null): string {
  const rows = rowSpecs().filter((r) => s.groups.includes(r.group));
  const vals = (kind: BackendKind, key: string) =>
    s.runs
      .filter((r) => r.kind === kind)
      .sort((a, b) => a.round - b.round)
      .map((r) => r.values.get(key) ?? null);
  const best = (kind: BackendKind, row: RowSpec): number | null => {
    const vs = vals(kind, row.key).filter((v): v is number => v !== null && Number.isFinite(v));
    if (!vs.length) return null;
    return row.higher ? Math.max(...vs) : Math.min(...vs);
  };
  const has = (k: BackendKind) => s.kinds.includes(k);
  const ratio = (row: RowSpec, base: BackendKind) => {
    const v = best('vmnet', row);
    const b = best(base, row);
    if (v === null || b === null || b === 0) return '—';
    const r = v / b;
    return `${r.toFixed(2)}${(row.higher ? r >= 1 : r <= 1) ? ' ✓' : ' ✗'}`;
  };
  const head = ['measurement', 'unit', ...s.kinds.map((k) => NAMES[k])];
  if (has('vmnet') && has('libslirp')) head.push('vmnet / libslirp');
  if (has('vmnet') && has('passt')) head.push('vmnet / passt');
  const out: string[] = [
    `## UDP, DNS, concurrency and memory per connection (MTU ${s.mtu})`,
    '',
    `Same topology; each backend started fresh per round. UDP: \`iperf3 -u -b RATE -l ${UDP_LEN} -t ${UDP_SECONDS}\`, the receiver's rate and loss. ` +
      `DNS: \`dnsperf -q ${DNS_OUTSTANDING} -l ${DNS_SECONDS}\` over ${DNS_NAMES.toLocaleString('en')} distinct names, to the backend's DNS address, answered by \`netbench dns\` on the host ns's 127.0.0.1:53. ` +
      `Concurrency: \`netbench conc\`, N connections at once from one epoll loop: 1-byte round trips for ${RR_SECONDS} s, or ${BULK_SECONDS} s of 64 KiB writes into discard connections (the rate the host side received). ` +
      `CPU per Gbit: the backend process's CPU time (all threads) over the bulk run ÷ Gbit carried. ` +
      `RSS: the backend's VmRSS with ${RSS_CONNS.toLocaleString('en')} idle connections (\`netbench hold\`) minus before, per connection. ` +
      `${s.rounds} round(s), best round per cell; ratios are vmnet ÷ anchor, ✓ where vmnet is at least as good.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  ];
  for (const row of rows) {
    const cells = [row.label, row.unit, ...s.kinds.map((k) => best(k, row)).map((v) => (v === null ? 'failed' : v.toFixed(row.digits)))];
    if (has('vmnet') && has('libslirp')) cells.push(ratio(row, 'libslirp'));
    if (has('vmnet') && has('passt')) cells.push(ratio(row, 'passt'));
    out.push(`| ${cells.join(' | ')} |`);
  }
  if (mem && !('ok' in mem) && s.groups.includes('rss')) {
    const cells = [`RSS per idle connection, vmnet alone (conn-memory.ts, ${mem.opened.toLocaleString('en')} connections)`, 'KB', ...s.kinds.map((k) => (k === 'vmnet' ? mem.rssPerConnKB.toFixed(2) : '—'))];
    if (has('vmnet') && has('libslirp')) cells.push('—');
    if (has('vmnet') && has('passt')) cells.push('—');
    out.push(`| ${cells.join(' | ')} |`);
  }
  out.push('');
  if (s.rounds > 1) {
    out.push('### Every round (second table)', '', 'Values per round (1 / 2 / …), same units as above; x = failed.', '');
    const rh = ['measurement', ...s.kinds.map((k) => NAMES[k])];
    out.push(`| ${rh.join(' | ')} |`, `|${rh.map(() => '---').join('|')}|`);
    for (const row of rows) out.push(`| ${row.label} | ${s.kinds.map((k) => vals(k, row.key).map((v) => (v === null ? 'x' : v.toFixed(row.digits))).join(' / ')).join(' | ')} |`);
    out.push('');
  }
  const errors = s.runs.flatMap((r) => r.errors.map((e) => `round ${r.round} ${r.kind}: ${e}`));
  if (errors.length) out.push('### Failures (second table)', '', ...errors.map((e) => `- ${e}`), '');
  return out.join('\n');
}
