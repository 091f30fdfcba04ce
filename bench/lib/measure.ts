/**
 * Theory of operation: the measurements, each run from inside the guest
 * namespace against servers in the host namespace. Throughput is iperf3's
 * receiver-side figure (`end.sum_received`, JSON output); latency and
 * connection rate come from netbench (lib/netbench.ts). Every measurement
 * also records the CPU share of the backend process and of the relay over
 * its duration, read from /proc/PID/stat.
 */
import type { Netns } from '../../test/helpers/netns.js';
import { IPERF_PORT, ECHO_PORT } from './backends.js';
import { withCpu, type Scope } from './env.js';

export interface Cpu {
  /** % of one core; null when there is no such process (slirp4netns has no relay). */
  backend: number | null;
  relay: number | null;
}

export interface Throughput {
  gbps: number;
  retransmits: number | null;
  cpu: Cpu;
}

export interface Measured<T> {
  ok: true;
  value: T;
}
export interface Failed {
  ok: false;
  error: string;
}

/** Runs `fn`, turning an exception into a Failed cell so one bad cell does not end the run. */
export async function cell<T>(fn: () => Promise<T>): Promise<Measured<T> | Failed> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300) };
  }
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

/**
 * Runs `iperf3 ARGS` (with -J) inside `ns` and returns its parsed JSON, also
 * when iperf3 failed: it prints its error inside the JSON on stdout and
 * exits 1, and the caller reads `error` from it.
 */
export async function iperfJson<T>(scope: Scope, ns: Netns, args: string[], seconds: number): Promise<T> {
  let text: string;
  try {
    text = await scope.run(ns, 'iperf3', args, (seconds + 15) * 1000);
  } catch (e) {
    const out = ((e as Error).cause as { stdout?: string } | undefined)?.stdout;
    if (!out) throw e;
    text = out;
  }
  return JSON.parse(text) as T;
}

/**
 * iperf3 from the guest ns to `serverIp`: guest→host by default, host→guest
 * with `reverse` (-R: the host side sends over the guest's connection).
 */
export async function iperf(
  scope: Scope,
  guest: Netns,
  serverIp: string,
  o: { seconds: number; streams: number; reverse: boolean; pids: { backend: number | null; relay: number | null }; congestion?: string },
): Promise<Throughput> {
  const args = ['-c', serverIp, '-p', String(IPERF_PORT), '-t', String(o.seconds), '-J', '-P', String(o.streams)];
  if (o.reverse) args.push('-R');
  if (o.congestion) args.push('-C', o.congestion); // the Linux sender's congestion control (TCP_CONGESTION)
  // iperf3's server takes one test at a time and may still be closing the last
  // one (a cell or the warm-up just before) when the next starts: retry that.
  let run = await withCpu(o.pids, () => iperfJson<IperfJson>(scope, guest, args, o.seconds));
  for (let tries = 1; tries < 10 && run.result.error?.includes('server is busy'); tries++) {
    await new Promise((r) => setTimeout(r, 200));
    run = await withCpu(o.pids, () => iperfJson<IperfJson>(scope, guest, args, o.seconds));
  }
  const { result, cpu } = run;
  if (result.error || !result.end?.sum_received) throw new Error(`iperf3: ${result.error ?? 'no result'}`);
  return {
    gbps: result.end.sum_received.bits_per_second / 1e9,
    retransmits: result.end.sum_sent?.retransmits ?? null,
    cpu: { backend: cpu.backend ?? null, relay: cpu.relay ?? null },
  };
}

export interface Latency {
  medianUs: number;
  p99Us: number;
  meanUs: number;
  cpu: Cpu;
  /** The first warm-up connection's figures: the backend's first round trips after it started or after other traffic. */
  cold: { medianUs: number; p99Us: number };
}

/**
 * Round trips made before the measured ones, on connections of their own
 * (after netbench's own 200 on each). A Node backend runs its first few
 * thousand round trips partly in code V8 has not optimised yet: measured
 * with bench/rr-tail.ts, a fresh gateway completed about 250 optimisations
 * during its first 5,000 round trips (node-floor 45), its slow trips fell in
 * the first fifth of the run, and a second connection deoptimised code the
 * first had optimised ("wrong map"); after two warm-up connections of 2,000
 * trips, 16-26 optimisations and no deoptimisation were left. So the
 * latency row measures a warmed backend, every backend alike, and reports
 * the first connection's figures as `cold`.
 */
export const RR_WARM_UP = { connections: 2, trips: 2000 };

const rrRun = async (scope: Scope, guest: Netns, netbench: string, serverIp: string, n: number) =>
  JSON.parse(await scope.run(guest, netbench, ['rr', serverIp, String(ECHO_PORT), String(n)], 60_000)) as { median_us: number; p99_us: number; mean_us: number };

/** N round trips of 1 byte over one TCP connection (TCP_NODELAY), after RR_WARM_UP. */
export async function latency(scope: Scope, guest: Netns, netbench: string, serverIp: string, n: number, pids: { backend: number | null; relay: number | null }): Promise<Latency> {
  let cold: Latency['cold'] | null = null;
  for (let i = 0; i < RR_WARM_UP.connections; i++) {
    const w = await rrRun(scope, guest, netbench, serverIp, RR_WARM_UP.trips);
    cold ??= { medianUs: w.median_us, p99Us: w.p99_us };
  }
  const { result: j, cpu } = await withCpu(pids, () => rrRun(scope, guest, netbench, serverIp, n));
  return { medianUs: j.median_us, p99Us: j.p99_us, meanUs: j.mean_us, cpu: { backend: cpu.backend ?? null, relay: cpu.relay ?? null }, cold: cold! };
}

export interface ConnRate {
  perSecond: number;
  errors: number;
  cpu: Cpu;
}

/** Connect, 1-byte echo, close, in a loop for `seconds` (one at a time). */
export async function connRate(scope: Scope, guest: Netns, netbench: string, serverIp: string, seconds: number, pids: { backend: number | null; relay: number | null }): Promise<ConnRate> {
  const { result, cpu } = await withCpu(pids, () => scope.run(guest, netbench, ['crr', serverIp, String(ECHO_PORT), String(seconds)], (seconds + 30) * 1000));
  const j = JSON.parse(result) as { count: number; seconds: number; errors: number };
  return { perSecond: j.count / j.seconds, errors: j.errors, cpu: { backend: cpu.backend ?? null, relay: cpu.relay ?? null } };
}
