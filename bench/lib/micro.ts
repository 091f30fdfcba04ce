/**
 * Theory of operation: the timing loop of the micro-benchmarks
 * (bench/checksum.ts, bench/ipv6-parse.ts). A run calls the measured code
 * `calls` times and returns a number the caller keeps observable, so the
 * JIT cannot drop the work. The call count grows until one run takes about
 * a quarter of `targetMs`, is then scaled to about `targetMs`, and the cell
 * is the fastest of `rounds` runs (the least disturbed by the other
 * processes on a shared machine).
 */
import { performance } from 'node:perf_hooks';

let sink = 0;

/**
 * Nanoseconds per call: the fastest of `rounds` timed runs of `run`.
 * @param run calls the measured code `calls` times; returns any number
 * @param rounds timed runs after calibration
 * @param targetMs about how long each run takes
 */
export function bestNs(run: (calls: number) => number, rounds: number, targetMs: number): number {
  let calls = 1;
  for (;;) {
    const t0 = performance.now();
    sink += run(calls);
    const ms = performance.now() - t0;
    if (ms >= targetMs / 4) {
      calls = Math.max(1, Math.round((calls * targetMs) / ms));
      break;
    }
    calls *= 4;
  }
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    sink += run(calls);
    best = Math.min(best, ((performance.now() - t0) * 1e6) / calls);
  }
  return best;
}

/** The accumulated results: print it when it is impossible, so the work stays observable. */
export const observed = (): number => sink;
