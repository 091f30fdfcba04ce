/**
 * Theory of operation: `node --import ./bench/lib/ts-loader.mjs bench/rr-tail.ts`
 * — where a 1-byte round trip's slow tail comes from. The latency row
 * (lib/measure.ts) gives a median and a 99th percentile; this runs the same
 * round trips (same topology, relay, guest and echo server as the bench,
 * lib/backends.ts) with a client that stamps every trip (CLOCK_MONOTONIC),
 * and the backend under lib/rr-probe.mjs, which records its GCs (and, with
 * --hooks, its timers, immediates, microtasks and callbacks) on the same
 * clock. For each run it prints the trips' median / p99 / p99.9 / max, how
 * the slow trips (over 3× the median and 300 µs) spread over the run's
 * tenths, how many of them overlap a GC pause, the GCs, and with --opt the
 * optimisations and deoptimisations V8 made during the run (--trace-opt
 * --trace-deopt on the backend).
 *
 * Kinds: vmnet (dist/cli/bin.js, or DIR/dist/cli/bin.js with --base DIR as
 * `base`) and node-floor (lib/node-floor.ts). --warm C×N first makes C
 * connections of N trips each (default none: the first trips of a fresh
 * backend, as bench/floor.ts measured them before RR_WARM_UP). --fifo runs
 * every process of the run (backend threads, relay, echo server, client)
 * at SCHED_FIFO priority 10, so other work on a shared machine no longer
 * preempts them: what is left is the backend's own. It changes nothing
 * system-wide and ends with the run (the kernel's RT throttling still
 * leaves others 5% of each core), but it does hold a core while a trip is
 * in flight: keep runs short.
 *
 * Flags: --only vmnet,node-floor[,base] --base DIR --trips 5000 --runs 1
 * --warm C×N --fifo --hooks --opt --gc (allocation per round trip) --alloc
 * (where it is allocated: V8's sampling heap profiler, collected objects
 * included) --node-flags "..." (more flags for the backend's node).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { ECHO_PORT, ROOT, startBackend } from './lib/backends.js';
import { Scope } from './lib/env.js';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string', default: 'vmnet,node-floor' },
    base: { type: 'string' },
    trips: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '1' },
    warm: { type: 'string', default: '0x0' },
    fifo: { type: 'boolean', default: false },
    hooks: { type: 'boolean', default: false },
    opt: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    alloc: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
  },
});
type Kind = 'vmnet' | 'node-floor' | 'base';
const KINDS = flags.only.split(',') as Kind[];
const warm = /^(\d+)x(\d+)$/.exec(flags.warm);
if (KINDS.some((k) => !['vmnet', 'node-floor', 'base'].includes(k)) || (KINDS.includes('base') && !flags.base) || !warm) {
  process.stderr.write('bench/rr-tail: --only takes vmnet,node-floor,base (base needs --base DIR); --warm takes CONNSxTRIPS\n');
  process.exit(2);
}
const TRIPS = Number(flags.trips);
const LOADER = join(ROOT, 'bench', 'lib', 'ts-loader.mjs');
const PROBE = join(ROOT, 'bench', 'lib', 'rr-probe.mjs');

/** The round-trip client: netbench rr's loop, printing "start_us duration_us" per trip. */
const CLIENT = String.raw`
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int n = atoi(argv[3]), one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *s = malloc(sizeof(double) * n), *d = malloc(sizeof(double) * n);
  char c = 'x';
  for (int i = -200; i < n; i++) {
    double t0 = now_us();
    if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) { perror("trip"); return 1; }
    if (i >= 0) { s[i] = t0; d[i] = now_us() - t0; }
  }
  for (int i = 0; i < n; i++) printf("%.1f %.1f\n", s[i], d[i]);
  return 0;
}
`;

async function buildClient(): Promise<string> {
  const path = join(tmpdir(), `vmnet-rr-tail-${createHash('sha256').update(CLIENT).digest('hex').slice(0, 12)}`);
  if (!existsSync(path)) {
    const src = `${path}.c`;
    writeFileSync(src, CLIENT);
    await promisify(execFile)('gcc', ['-O2', '-o', path, src]);
    rmSync(src);
  }
  return path;
}

/** Every descendant of `pid`. */
function descendants(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  } catch {
    return []; // none
  }
  return out.split('\n').filter(Boolean).map(Number).flatMap((k) => [k, ...descendants(k)]);
}

interface ProbeOut {
  made: Record<string, number>;
  ran: Record<string, { n: number; us: number }>;
  gcs: [kind: number, startUs: number, pauseUs: number][];
  timers: number[];
  hooks: boolean;
  heapAtStart: number;
  heapAtEnd: number;
  allocSites: [site: string, bytes: number][] | null;
}

const q = (sorted: number[], f: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * f))]!;

async function runOne(kind: Kind, client: string): Promise<void> {
  const scope = new Scope();
  const out = join(tmpdir(), `vmnet-rr-tail-${process.pid}-${kind}.json`);
  rmSync(out, { force: true });
  process.env.RR_PROBE_OUT = out;
  process.env.RR_PROBE_HOOKS = flags.hooks ? '1' : '0';
  process.env.RR_PROBE_ALLOC = flags.alloc ? '1' : '0';
  try {
    const nodeFlags = [...(flags.opt ? ['--trace-opt', '--trace-deopt'] : []), ...(flags.gc ? ['--trace-gc'] : []), ...flags['node-flags'].split(' ').filter(Boolean), '--import', PROBE];
    const cli = join(kind === 'base' ? flags.base! : ROOT, 'dist', 'cli', 'bin.js');
    const b = await startBackend(scope, 'vmnet', 1500, {
      frameWrites: true,
      nodeFlags,
      vmnetArgs: kind === 'node-floor' ? (s) => ['--import', LOADER, join(ROOT, 'bench', 'lib', 'node-floor.ts'), s] : (s, m) => [cli, 'gateway', '--socket', s, '--mtu', String(m), '--dns-upstream', '127.0.0.1:53'],
    });
    const load = loadavg()[0]!;
    if (flags.fifo) {
      for (const p of descendants(process.pid)) {
        try {
          execFileSync('chrt', ['-a', '-f', '-p', '10', String(p)], { stdio: 'ignore' });
        } catch {
          // exited since pgrep listed it (a setup command)
        }
      }
    }
    const trip = (n: number) => scope.run(b.guest, flags.fifo ? 'chrt' : client, [...(flags.fifo ? ['-f', '10', client] : []), b.serverIp, String(ECHO_PORT), String(n)], 120_000);
    for (let i = 0; i < Number(warm![1]); i++) await trip(Number(warm![2]));
    process.kill(b.backend.pid, 'SIGUSR1');
    await new Promise((r) => setTimeout(r, 100)); // the probe's window opens on the backend's next turn
    const stdoutBefore = b.backend.stdout().length;
    const t = (await trip(TRIPS)).trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number]);
    process.kill(b.backend.pid, 'SIGUSR2');
    for (let i = 0; i < 50 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 50));
    const p = JSON.parse(readFileSync(out, 'utf8')) as ProbeOut;
    const d = t.map((x) => x[1]).sort((x, y) => x - y);
    const first = t[0]![0];
    const end = t.at(-1)![0] + t.at(-1)![1];
    const secs = (end - first) / 1e6;
    const med = q(d, 0.5);
    const thr = Math.max(300, 3 * med);
    const gcs = p.gcs.filter((g) => g[1] + g[2] >= first && g[1] <= end);
    const tenths = new Array<number>(10).fill(0);
    let onGc = 0;
    t.forEach(([s, dur], i) => {
      if (dur <= thr) return;
      tenths[Math.floor((i * 10) / t.length)]!++;
      if (gcs.some((g) => g[1] < s + dur && g[1] + g[2] > s)) onGc++;
    });
    const lines = [
      `${kind}, load ${load.toFixed(1)}${flags.fifo ? ', SCHED_FIFO' : ''}, warm-up ${flags.warm}: ${t.length} trips in ${secs.toFixed(2)} s; median ${med.toFixed(0)} µs, p99 ${q(d, 0.99).toFixed(0)}, p99.9 ${q(d, 0.999).toFixed(0)}, max ${d.at(-1)!.toFixed(0)}`,
      `  slow trips (> ${thr.toFixed(0)} µs): ${tenths.reduce((x, y) => x + y, 0)}, per tenth of the run ${tenths.join(' ')}; overlapping a GC pause ${onGc}`,
      `  GCs: ${gcs.length} (${(gcs.length / secs).toFixed(1)}/s; kinds ${[...new Set(gcs.map((g) => g[0]))].join(',')}), pauses µs ${gcs.map((g) => g[2].toFixed(0)).join(' ')}`,
    ];
    if (p.hooks) {
      lines.push(`  made per trip: ${Object.entries(p.made).map(([k, v]) => `${k} ${(v / TRIPS).toFixed(2)}`).join(', ')}`);
      lines.push(`  callbacks: ${Object.entries(p.ran).map(([k, v]) => `${k} ${v.n} (${(v.us / v.n).toFixed(1)} µs each)`).join(', ')}; Timeout callbacks ${(p.timers.length / secs).toFixed(1)}/s`);
    }
    const o = b.backend.stdout().slice(stdoutBefore).split('\n');
    if (flags.gc) {
      // "Scavenge 13.7 (19.0) -> 10.3 (19.0) MB": what each GC in the window freed, plus the heap's growth.
      const freed = o.map((l) => /(?:Scavenge|Mark-Compact)[^ ]* ([\d.]+) \([\d.]+\) -> ([\d.]+)/.exec(l)).reduce((sum, m) => sum + (m ? (Number(m[1]) - Number(m[2])) * 1024 * 1024 : 0), 0);
      const allocated = freed + p.heapAtEnd - p.heapAtStart;
      lines.push(`  allocated in the window: ${(allocated / 1024 / 1024).toFixed(1)} MB, ${(allocated / TRIPS / 1024).toFixed(2)} KB per round trip (--trace-gc; MB rounded to 0.1 per GC)`);
    }
    if (p.allocSites) {
      lines.push(`  allocated (sampled, objects already collected included), bytes per round trip by function: ${p.allocSites.filter(([, n]) => n / TRIPS >= 16).map(([f, n]) => `${f} ${(n / TRIPS).toFixed(0)}`).join('; ')}`);
    }
    if (process.env.RR_TAIL_DUMP) writeFileSync(process.env.RR_TAIL_DUMP, b.backend.stdout());
    if (flags.opt) {
      const deopts = o.filter((l) => /^\[bailout/.test(l));
      const reasons = [...new Set(deopts.map((l) => /reason: ([^)]*)\).*<JSFunction ([^ ]*)/.exec(l)).map((m) => (m ? `${m[2]} (${m[1]})` : '?')))];
      lines.push(`  V8 during the run: ${o.filter((l) => /completed (optimizing|compiling)/.test(l)).length} optimisations completed, ${deopts.length} deoptimisations${reasons.length ? `: ${reasons.slice(0, 12).join(', ')}` : ''}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(out, { force: true });
    await scope.close();
  }
}

const client = await buildClient();
for (let run = 0; run < Number(flags.runs); run++) {
  for (const kind of run % 2 === 0 ? KINDS : [...KINDS].reverse()) await runOne(kind, client);
}
