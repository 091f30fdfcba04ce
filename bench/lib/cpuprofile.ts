/**
 * Theory of operation: reads a V8 .cpuprofile (`node --cpu-prof`) and ranks
 * self time — the time a sample's top frame was that function — by function
 * and by source file. Sample i's time is timeDeltas[i + 1] (the gap until
 * the next sample), the convention Chrome DevTools uses.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  /** Share of the profile's busy time (everything but "(idle)"). */
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  functions: SelfTime[];
  files: SelfTime[];
  /**
   * Each sample charged to the innermost frame of vmnet's own code (dist/ or
   * src/) on its stack: where time spent in Node internals and native calls
   * (socket writes, Buffer allocation) comes from.
   */
  vmnetFrames: SelfTime[];
}

function where(url: string, line: number, root: string): string {
  if (!url) return '';
  let p = url;
  if (url.startsWith('file://')) p = relative(root, fileURLToPath(url));
  return line >= 0 ? `${p}:${line + 1}` : p;
}

const OWN = /\/(dist|src)\//;

/**
 * Summarises a .cpuprofile file; paths are shown relative to `root`. With
 * `window` ({fromMs, toMs} after the profile's start) only samples inside it
 * count (e.g. the iperf3 run, not the process's start-up).
 */
export function summarizeProfile(path: string, root: string, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const prof = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const own = new Map<string, { name: string; where: string; us: number }>();
  const file = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    const n = byId.get(prof.samples[i]!);
    const dt = prof.timeDeltas[i + 1] ?? 0;
    if (!n || dt <= 0) continue;
    if (window && (t / 1000 < window.fromMs || t / 1000 > window.toMs)) continue;
    total += dt;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    const name = cf.functionName || '(anonymous)';
    const w = where(cf.url, cf.lineNumber, root);
    const key = `${name}@${w}`;
    const e = fn.get(key) ?? { name, where: w, us: 0 };
    e.us += dt;
    fn.set(key, e);
    const f = cf.url ? where(cf.url, -1, root) : name;
    file.set(f, (file.get(f) ?? 0) + dt);
    let m: ProfileNode | undefined = n;
    while (m && !OWN.test(m.callFrame.url)) m = byId.get(parent.get(m.id) ?? -1);
    const oname = m ? m.callFrame.functionName || '(anonymous)' : '(no vmnet frame: Node internals, GC, idle loop)';
    const ow = m ? where(m.callFrame.url, m.callFrame.lineNumber, root) : '';
    const okey = `${oname}@${ow}`;
    const oe = own.get(okey) ?? { name: oname, where: ow, us: 0 };
    oe.us += dt;
    own.set(okey, oe);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    functions: [...fn.values()].sort((a, b) => b.us - a.us).map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, pct: pct(e.us) })),
    files: [...file.entries()].sort((a, b) => b[1] - a[1]).map(([f, us]) => ({ name: f, where: '', ms: us / 1000, pct: pct(us) })),
    vmnetFrames: [...own.values()].sort((a, b) => b.us - a.us).map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, pct: pct(e.us) })),
  };
}

/** Markdown tables of the top `n` functions and files by self time. */
export function profileMarkdown(title: string, s: ProfileSummary, n = 15): string {
  const lines = [
    `### ${title}`,
    '',
    `Profile length ${(s.totalMs / 1000).toFixed(1)} s; busy (not idle) ${(s.busyMs / 1000).toFixed(2)} s. Shares are of busy time.`,
    '',
    '| # | function (self time) | where | ms | % busy |',
    '|---|---|---|---:|---:|',
    ...s.functions.slice(0, n).map((f, i) => `| ${i + 1} | \`${f.name}\` | ${f.where} | ${f.ms.toFixed(0)} | ${f.pct.toFixed(1)} |`),
    '',
    '| file (self time) | ms | % busy |',
    '|---|---:|---:|',
    ...s.files.slice(0, 10).map((f) => `| ${f.name} | ${f.ms.toFixed(0)} | ${f.pct.toFixed(1)} |`),
    '',
    'Charged to the innermost vmnet frame (self time of that function plus the Node internals and native calls it made):',
    '',
    '| # | vmnet function | where | ms | % busy |',
    '|---|---|---|---:|---:|',
    ...s.vmnetFrames.slice(0, 12).map((f, i) => `| ${i + 1} | \`${f.name}\` | ${f.where} | ${f.ms.toFixed(0)} | ${f.pct.toFixed(1)} |`),
    '',
  ];
  return lines.join('\n');
}
