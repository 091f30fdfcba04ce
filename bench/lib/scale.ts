/**
 * Theory of operation: the measurements of the bench's second table, each
 * run from inside the guest namespace against servers in the host namespace
 * (lib/backends.ts), each recording the backend's (and the relay's) CPU over
 * its duration like lib/measure.ts does:
 *
 *   udpRate    iperf3 -u at one offered rate (-b, 1,400-byte datagrams, so
 *              one datagram per frame at MTU 1500), guest→host or host→guest
 *              (-R); the receiver's rate and iperf3's loss count (datagrams
 *              the receiver never saw, from its sequence numbers)
 *   dnsQps     dnsperf against the backend's DNS address, which forwards to
 *              `netbench dns` on the host ns's 127.0.0.1:53; a query file of
 *              distinct names (no answer can come from a cache)
 *   concurrent netbench conc: N connections driven at once, 1-byte round
 *              trips (transactions/s, median and 99th percentile) or bulk
 *              writes into discard connections (the rate the host side
 *              received, and the backend's CPU time per Gbit carried)
 *   idleRss    netbench hold: the backend's VmRSS before and with N idle
 *              connections, the difference per connection
 *
 * iperf3's UDP counters: `end.sum_received` is the receiver's byte count
 * (what arrived), `end.sum.lost_percent` the receiver's loss from the
 * datagrams' sequence numbers (RFC 4737 style: missing, not reordered).
 */
import { writeFileSync } from 'node:fs';
import type { Netns } from '../../test/helpers/netns.js';
import { vmRss } from '../conn-memory.js';
import { DNS_PORT, ECHO_PORT, IPERF_PORT } from './backends.js';
import { withCpu, type Scope } from './env.js';
import { iperfJson, type Cpu } from './measure.js';

type Pids = { backend: number | null; relay: number | null };
const cpuOf = (c: Record<string, number | null>): Cpu => ({ backend: c.backend ?? null, relay: c.relay ?? null });

/** UDP datagram size: one datagram per 1500-byte frame (1,400 + 8 + 20 + 14). */
export const UDP_LEN = 1400;

export interface UdpRate {
  offeredMbps: number;
  deliveredMbps: number;
  lossPct: number;
  cpu: Cpu;
}

interface IperfUdpJson {
  error?: string;
  end?: { sum?: { lost_percent?: number }; sum_received?: { bits_per_second: number } };
}

/** iperf3 -u at `mbps` offered for `seconds`, guest→host (or host→guest with `reverse`). */
export async function udpRate(scope: Scope, guest: Netns, serverIp: string, o: { mbps: number; reverse: boolean; seconds: number; pids: Pids }): Promise<UdpRate> {
  const args = ['-c', serverIp, '-p', String(IPERF_PORT), '-u', '-b', `${o.mbps}M`, '-l', String(UDP_LEN), '-t', String(o.seconds), '-J'];
  if (o.reverse) args.push('-R');
  const { result, cpu } = await withCpu(o.pids, () => iperfJson<IperfUdpJson>(scope, guest, args, o.seconds));
  const recv = result.end?.sum_received;
  if (result.error || !recv) throw new Error(`iperf3 -u: ${result.error ?? 'no result'}`);
  return { offeredMbps: o.mbps, deliveredMbps: recv.bits_per_second / 1e6, lossPct: result.end?.sum?.lost_percent ?? NaN, cpu: cpuOf(cpu) };
}

/** Writes a dnsperf query file of `n` distinct A queries and returns its path. */
export function writeQueryFile(path: string, n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`q${i}.bench.test A`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

export interface DnsQps {
  qps: number;
  completedPct: number;
  /** Share of the completed queries answered NOERROR (the rest: SERVFAIL and co.). */
  noErrorPct: number;
  avgLatencyMs: number;
  cpu: Cpu;
}

/**
 * Parses dnsperf's summary: "Queries completed: N (P%)", "Response codes:
 * NOERROR N (P%), …" (a SERVFAIL is completed too, so NOERROR is what
 * counts), "Queries per second:", "Average Latency (s):".
 */
export function parseDnsperf(text: string): { qps: number; completedPct: number; noErrorPct: number; avgLatencyMs: number } {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf: no ${re.source} in its output: ${text.trim().slice(-300)}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completedPct: num(/Queries completed:\s+\d+\s+\(([\d.]+)%\)/),
    noErrorPct: Number(/NOERROR \d+ \(([\d.]+)%\)/.exec(text)?.[1] ?? 0),
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

/** dnsperf for `seconds` against `dnsIp` with `outstanding` queries in flight at most. */
export async function dnsQps(scope: Scope, guest: Netns, dnsIp: string, o: { queryFile: string; seconds: number; outstanding: number; pids: Pids }): Promise<DnsQps> {
  const args = ['-s', dnsIp, '-p', String(DNS_PORT), '-d', o.queryFile, '-l', String(o.seconds), '-q', String(o.outstanding), '-t', '2'];
  const { result, cpu } = await withCpu(o.pids, () => scope.run(guest, 'dnsperf', args, (o.seconds + 20) * 1000));
  return { ...parseDnsperf(result), cpu: cpuOf(cpu) };
}

export interface Concurrent {
  conns: number;
  /** rr: transactions per second over all connections; bulk: 0. */
  tps: number;
  medianUs: number;
  p99Us: number;
  /** bulk: what the host side received, Gbit/s; rr: 0. */
  gbps: number;
  errors: number;
  cpu: Cpu;
}

/** N connections at once through the backend, round trips or bulk (netbench conc). */
export async function concurrent(scope: Scope, guest: Netns, netbench: string, serverIp: string, o: { conns: number; seconds: number; mode: 'rr' | 'bulk'; pids: Pids }): Promise<Concurrent> {
  const args = ['conc', serverIp, String(ECHO_PORT), String(o.conns), String(o.seconds), o.mode];
  // Opening 1,000 connections one by one through a user-mode network takes a while on a loaded machine.
  const { result, cpu } = await withCpu(o.pids, () => scope.run(guest, netbench, args, (o.seconds + 60) * 1000));
  const j = JSON.parse(result) as { conns: number; seconds: number; trips: number; median_us: number; p99_us: number; bytes: number; errors: number };
  if (o.mode === 'bulk' && j.bytes < 0) throw new Error('netbench conc: the server did not report its byte count');
  // A connection that dies mid-run leaves the loop; more than 1% of them and the figure is not the N asked for.
  if (j.errors > Math.max(0, o.conns * 0.01)) throw new Error(`netbench conc: ${j.errors} of ${o.conns} connections failed during the run`);
  return {
    conns: j.conns,
    tps: j.trips / j.seconds,
    medianUs: j.median_us,
    p99Us: j.p99_us,
    gbps: o.mode === 'bulk' ? (j.bytes * 8) / j.seconds / 1e9 : 0,
    errors: j.errors,
    cpu: cpuOf(cpu),
  };
}

const rssKb = (pid: number) => vmRss(pid) / 1024;

export interface IdleRss {
  conns: number;
  beforeKb: number;
  withKb: number;
  perConnKb: number;
}

/**
 * Opens `n` idle connections through the backend (netbench hold, which
 * keeps them until its stdin closes), waits for them to settle and reads
 * the backend's RSS before and with them. No forced GC on either side.
 */
export async function idleRss(scope: Scope, guest: Netns, netbench: string, serverIp: string, n: number, backendPid: number): Promise<IdleRss> {
  const beforeKb = rssKb(backendPid);
  const hold = scope.spawn(guest, netbench, ['hold', serverIp, String(ECHO_PORT), String(n)], 'netbench hold', { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await hold.waitFor(/"opened"/, 120_000);
    const j = JSON.parse(hold.stdout().trim().split('\n').pop()!) as { opened: number; failed: number };
    // A few connections may time out through a loaded backend; count what was held.
    if (j.opened < n * 0.95) throw new Error(`netbench hold: ${j.opened} of ${n} connections opened`);
    await new Promise((r) => setTimeout(r, 500));
    const withKb = rssKb(backendPid);
    return { conns: j.opened, beforeKb, withKb, perConnKb: (withKb - beforeKb) / j.opened };
  } finally {
    hold.child.stdin?.end();
    await hold.stop();
  }
}
