/**
 * Theory of operation: throughput A/B of vmnet builds against passt, in one
 * invocation. On a shared machine a cell moves 2-5× between runs minutes
 * apart, so comparing a change with its base only means something when both
 * (and the anchor) run side by side: each round runs every backend once per
 * cell, in an order that alternates between rounds, and every round is
 * listed with the load average.
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/tput-ab.ts \
 *     --vmnet base=/tmp/base/dist/cli/bin.js,new=dist/cli/bin.js --passt \
 *     --cells g2h1,h2g1 --mtu 1500 --rounds 3 --seconds 3 [--syscalls] [--out NAME]
 *
 * Cells: g2h1, g2h4, h2g1, h2g4 (direction and streams). Each cell starts
 * its backend afresh; a variant whose name ends in `+warm` (`--passt-warm`
 * for passt) first carries a 2 s transfer the same way, unmeasured, so its
 * cell shows the steady state (the gateway's JIT compilation done). With --syscalls the
 * vmnet gateways run under `perf record` of their read/write/writev system
 * calls, and the report gives per second: reads of the QEMU socket and the
 * bytes each returned, writes to it, writes to host sockets, and the
 * frames each way on the guest's tap (so frames per read and ACK frames per
 * data frame); with --cycles, a `perf record -g` of each backend's cycles
 * (passt's too) instead (--keep DIR keeps the perf.data files). perf slows
 * the gateway a little; compare like with like. This checkout's own
 * dist/cli/bin.js must exist (lib/backends.ts checks it, whichever build a
 * variant runs): do not rebuild while it runs.
 * Writes bench/results/NAME (default tput-ab-latest.md).
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildTapRelay } from '../test/helpers/tap-relay.js';
import { ROOT, startBackend } from './lib/backends.js';
import { Scope } from './lib/env.js';
import { buildNetbench } from './lib/netbench.js';
import { iperf } from './lib/measure.js';

const { values: flags } = parseArgs({
  options: {
    vmnet: { type: 'string', default: `new=${join(ROOT, 'dist', 'cli', 'bin.js')}` },
    passt: { type: 'boolean', default: false },
    'passt-warm': { type: 'boolean', default: false },
    cells: { type: 'string', default: 'g2h1,g2h4,h2g1,h2g4' },
    mtu: { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    syscalls: { type: 'boolean', default: false },
    cycles: { type: 'boolean', default: false },
    keep: { type: 'string' },
    out: { type: 'string', default: 'tput-ab-latest.md' },
  },
});

interface Variant {
  name: string;
  cli: string | null; // null: passt
}
const variants: Variant[] = flags.vmnet.split(',').map((s) => {
  const [name, cli] = s.split('=');
  return { name: name!, cli: resolve(cli!) };
});
if (flags.passt) variants.push({ name: 'passt', cli: null });
if (flags['passt-warm']) variants.push({ name: 'passt+warm', cli: null });
/** A variant named …+warm carries a 2 s transfer the same way before the measured one (JIT compilation, caches). */
const warm = (v: Variant) => v.name.endsWith('+warm');
const CELLS = flags.cells.split(',');
const MTUS = flags.mtu.split(',').map(Number);
const ROUNDS = Number(flags.rounds);
const SECONDS = Number(flags.seconds);

interface Sys {
  readsPerS: number;
  bytesPerRead: number;
  qemuWritesPerS: number;
  hostWritesPerS: number;
  rxFramesPerS: number; // guest → gateway
  txFramesPerS: number; // gateway → guest
}
interface Row {
  variant: string;
  mtu: number;
  cell: string;
  round: number;
  gbps: number | null;
  error?: string;
  cpuBackend: number | null;
  cpuRelay: number | null;
  load: string;
  sys?: Sys;
  cycles?: string;
}

const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

/** Counts of the guest tap (in the guest ns): packets sent (to the gateway) and received. */
function tapPackets(ns: string): { tx: number; rx: number } {
  const j = JSON.parse(execFileSync('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'tap0'], { encoding: 'utf8' })) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>;
  return { tx: j[0]!.stats64.tx.packets, rx: j[0]!.stats64.rx.packets };
}

/** The gateway's fd of the QEMU connection: the unix socket among its fds (the listener is another one). */
function perfSummary(file: string, seconds: number, qemuFds: Set<number>): Omit<Sys, 'rxFramesPerS' | 'txFramesPerS'> {
  const text = execFileSync('perf', ['script', '-i', file, '-F', 'tid,event,trace'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  let reads = 0;
  let readBytes = 0;
  let qemuWrites = 0;
  let hostWrites = 0;
  const pendingRead = new Map<number, boolean>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+syscalls:(sys_enter_read|sys_exit_read|sys_enter_write|sys_enter_writev):\s*(.*)$/.exec(line);
    if (!m) continue;
    const tid = Number(m[1]);
    const fd = /fd: (0x[0-9a-f]+)/.exec(m[3]!);
    if (m[2] === 'sys_enter_read') pendingRead.set(tid, fd !== null && qemuFds.has(Number(fd[1])));
    else if (m[2] === 'sys_exit_read') {
      const ret = Number(/0x[0-9a-f]+$/.exec(m[3]!.trim())?.[0] ?? 0); // errors (-EAGAIN) print as huge values
      if (pendingRead.get(tid) && ret > 0 && ret < 2 ** 31) {
        reads++;
        readBytes += ret;
      }
      pendingRead.delete(tid);
    } else if (fd) {
      if (qemuFds.has(Number(fd[1]))) qemuWrites++;
      else hostWrites++;
    }
  }
  return { readsPerS: reads / seconds, bytesPerRead: reads ? readBytes / reads : 0, qemuWritesPerS: qemuWrites / seconds, hostWritesPerS: hostWrites / seconds };
}

/**
 * The socket fds `pid` has before the iperf run (above stdio): the QEMU
 * connection, the listener, the DNS sockets. Host sockets are made during
 * the run, and of these only the QEMU connection is read or written in it.
 */
function socketFds(pid: number): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (Number(fd) > 2 && readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) out.add(Number(fd));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

async function one(v: Variant, mtu: number, cellName: string, round: number): Promise<Row> {
  const scope = new Scope();
  const reverse = cellName.startsWith('h2g');
  const streams = Number(cellName.slice(3));
  const row: Row = { variant: v.name, mtu, cell: cellName, round, gbps: null, cpuBackend: null, cpuRelay: null, load: load() };
  const dir = mkdtempSync(join(tmpdir(), 'tput-ab-'));
  try {
    const b = await startBackend(scope, v.cli ? 'vmnet' : 'passt', mtu, {
      frameWrites: true,
      ...(v.cli ? { vmnetArgs: (sock: string, m: number) => [v.cli!, 'gateway', '--socket', sock, '--mtu', String(m), '--dns-upstream', '127.0.0.1:53'] } : {}),
    });
    const pid = b.backend.pid!;
    let perf: ReturnType<typeof spawn> | null = null;
    const perfFile = join(dir, 'perf.data');
    if (warm(v)) await iperf(scope, b.guest, b.serverIp, { seconds: 2, streams, reverse, pids: { backend: null, relay: null } });
    const qemuFds = socketFds(pid);
    const before = tapPackets(b.guest.name);
    const started = performance.now();
    if (flags.cycles) {
      perf = spawn('perf', ['record', '-q', '-o', perfFile, '-F', '2000', '-g', '-p', String(pid)], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 300));
    } else if (flags.syscalls && v.cli) {
      perf = spawn('perf', ['record', '-q', '-o', perfFile, '-e', 'syscalls:sys_enter_read,syscalls:sys_exit_read,syscalls:sys_enter_write,syscalls:sys_enter_writev', '-p', String(pid)], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 300));
    }
    const t = await iperf(scope, b.guest, b.serverIp, { seconds: SECONDS, streams, reverse, pids: { backend: pid, relay: b.relayPid } });
    const elapsed = (performance.now() - started) / 1000;
    const after = tapPackets(b.guest.name);
    row.gbps = t.gbps;
    row.cpuBackend = t.cpu.backend;
    row.cpuRelay = t.cpu.relay;
    if (perf) {
      if (!qemuFds.size) process.stderr.write(`no connected unix socket found before the run\n`);
      perf.kill('SIGINT');
      await new Promise((r) => perf!.once('exit', r));
      if (flags.keep) copyFileSync(perfFile, join(flags.keep, `${v.name}-${mtu}-${cellName}-${round}.data`));
      if (flags.cycles) {
        row.cycles = execFileSync('perf', ['report', '-i', perfFile, '--no-children', '--sort', 'dso,sym', '--stdio', '-g', 'none', '--percent-limit', '0.7'], { encoding: 'utf8', maxBuffer: 1 << 28 })
          .split('\n')
          .filter((l) => /^\s+\d/.test(l))
          .join('\n');
      } else row.sys = { ...perfSummary(perfFile, elapsed, qemuFds), rxFramesPerS: (after.tx - before.tx) / elapsed, txFramesPerS: (after.rx - before.rx) / elapsed };
    }
  } catch (e) {
    row.error = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
  } finally {
    await scope.close();
    rmSync(dir, { recursive: true, force: true });
  }
  row.load += ` → ${load()}`;
  return row;
}

await buildTapRelay();
await buildNetbench();
const rows: Row[] = [];
const startedAt = new Date().toISOString();
for (let round = 1; round <= ROUNDS; round++)
  for (const mtu of MTUS)
    for (const c of CELLS)
      for (const v of round % 2 ? variants : [...variants].reverse()) {
        const r = await one(v, mtu, c, round);
        rows.push(r);
        process.stderr.write(`round ${round} MTU ${mtu} ${c} ${v.name}: ${r.gbps?.toFixed(2) ?? r.error} Gbit/s (load ${r.load})\n`);
      }

/** The backend's CPU time per Gbit carried, in ms (% of one core × 10 ÷ Gbit/s). */
const perGbit = (r: Row): number | null => (r.gbps && r.cpuBackend !== null ? (r.cpuBackend * 10) / r.gbps : null);
const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f = (n: number | null | undefined, d = 2) => (n === null || n === undefined ? '—' : n.toFixed(d));
const out = [
  `# Throughput A/B: ${variants.map((v) => v.name).join(', ')}`,
  '',
  `- Started ${startedAt}; \`bench/tput-ab.ts --vmnet ${flags.vmnet}${flags.passt ? ' --passt' : ''}${flags['passt-warm'] ? ' --passt-warm' : ''} --cells ${flags.cells} --mtu ${flags.mtu} --rounds ${ROUNDS} --seconds ${SECONDS}${flags.syscalls ? ' --syscalls' : ''}\``,
  `- ${variants.filter((v) => v.cli).map((v) => `${v.name}: ${v.cli}`).join('; ')}`,
  '',
  '| MTU | cell | round | backend | Gbit/s | CPU backend % | CPU relay % | backend ms CPU/Gbit | load (1/5/15 min, start → end) |' + (flags.syscalls ? ' QEMU reads/s | bytes/read | QEMU writes/s | host writes/s | frames from guest/s | frames to guest/s |' : ''),
  '|---|---|---|---|---:|---:|---:|---:|---|' + (flags.syscalls ? '---:|---:|---:|---:|---:|---:|' : ''),
  ...rows.map(
    (r) =>
      `| ${r.mtu} | ${r.cell} | ${r.round} | ${r.variant} | ${r.gbps === null ? `failed: ${r.error}` : f(r.gbps)} | ${f(r.cpuBackend, 0)} | ${f(r.cpuRelay, 0)} | ${f(perGbit(r), 0)} | ${r.load} |` +
      (flags.syscalls ? (r.sys ? ` ${f(r.sys.readsPerS, 0)} | ${f(r.sys.bytesPerRead, 0)} | ${f(r.sys.qemuWritesPerS, 0)} | ${f(r.sys.hostWritesPerS, 0)} | ${f(r.sys.rxFramesPerS, 0)} | ${f(r.sys.txFramesPerS, 0)} |` : ' | | | | | |') : ''),
  ),
  '',
  ...rows.filter((r) => r.cycles).flatMap((r) => [`### perf: ${r.variant}, MTU ${r.mtu}, ${r.cell}, round ${r.round} (${f(r.gbps)} Gbit/s)`, '', '```', r.cycles!, '```', '']),
  '## Best of the rounds (Gbit/s), and the median backend CPU per Gbit (ms)',
  '',
  `| MTU | cell | ${variants.map((v) => v.name).join(' | ')} | ${variants.map((v) => `${v.name} ms/Gbit`).join(' | ')} |`,
  `|---|---|${variants.map(() => '---:|---:').join('|')}|`,
  ...MTUS.flatMap((mtu) =>
    CELLS.map((c) => {
      const of = (v: Variant) => rows.filter((r) => r.mtu === mtu && r.cell === c && r.variant === v.name);
      const best = variants.map((v) => Math.max(...of(v).map((r) => r.gbps ?? 0)));
      const cpu = variants.map((v) => median(of(v).map(perGbit).filter((x): x is number => x !== null)));
      return `| ${mtu} | ${c} | ${best.map((b) => f(b)).join(' | ')} | ${cpu.map((b) => f(b, 0)).join(' | ')} |`;
    }),
  ),
  '',
].join('\n');
process.stdout.write(out);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', flags.out), out);
