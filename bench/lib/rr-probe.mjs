/**
 * Theory of operation: a preload (`node --import bench/lib/rr-probe.mjs`)
 * for the backend that bench/rr-tail.ts measures. SIGUSR1 starts a window,
 * SIGUSR2 ends it and writes what happened in it to $RR_PROBE_OUT as JSON:
 * every GC (perf_hooks 'gc' entries: kind, start, pause) and, with
 * RR_PROBE_HOOKS=1, async_hooks counts: resources made per type (Timeout,
 * Immediate, Microtask, TickObject...), callbacks run per type with their
 * total time, and each Timeout callback's start; and the heap in use at
 * both ends of the window (with --trace-gc, rr-tail.ts adds what the
 * scavenges freed to tell how much the window allocated). Times are CLOCK_MONOTONIC
 * µs, the clock the round-trip client stamps its trips with, so a slow trip
 * can be matched with what the backend was doing during it. The hooks cost
 * time of their own (a few µs per callback): leave them off when the
 * figures, not the counts, matter.
 */
import { createHook } from 'node:async_hooks';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { Session } from 'node:inspector';

const out = process.env.RR_PROBE_OUT;
const hooksOn = process.env.RR_PROBE_HOOKS === '1';
const offset = Number(process.hrtime.bigint()) / 1e3 - performance.now() * 1e3;
const mono = (ms) => ms * 1e3 + offset;

let made = {};
let ran = {};
let gcs = [];
let timers = [];
let heapAtStart = 0;
const started = new Map();
const types = new Map();
const hook = createHook({
  init(id, type) {
    made[type] = (made[type] ?? 0) + 1;
    types.set(id, type);
  },
  before(id) {
    started.set(id, performance.now());
  },
  after(id) {
    const t0 = started.get(id);
    if (t0 === undefined) return;
    started.delete(id);
    // Resources made before the window (the QEMU link's socket) have no type here.
    const type = types.get(id) ?? 'older';
    const r = (ran[type] ??= { n: 0, us: 0 });
    r.n++;
    r.us += (performance.now() - t0) * 1e3;
    if (type === 'Timeout') timers.push(mono(t0));
  },
  destroy(id) {
    types.delete(id);
  },
});
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([e.detail?.kind ?? 0, mono(e.startTime), e.duration * 1e3]);
}).observe({ entryTypes: ['gc'] });
// RR_PROBE_ALLOC=1: V8's sampling heap profiler over the window, counting objects the GC already
// collected too, so it says where the window's garbage was allocated (self bytes per function).
const allocOn = process.env.RR_PROBE_ALLOC === '1';
const session = allocOn ? new Session() : null;
session?.connect();
let allocSites = null;
process.on('SIGUSR1', () => {
  session?.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
  made = {};
  ran = {};
  gcs = [];
  timers = [];
  heapAtStart = getHeapStatistics().used_heap_size;
  if (hooksOn) hook.enable();
});
process.on('SIGUSR2', () => {
  hook.disable();
  if (session) {
    session.post('HeapProfiler.stopSampling', (err, r) => {
      const sites = new Map();
      const walk = (n) => {
        const f = n.callFrame;
        const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules|bench)\//, '$1/')}:${f.lineNumber + 1}`;
        sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        for (const c of n.children) walk(c);
      };
      if (!err) walk(r.profile.head);
      allocSites = [...sites].sort((a, b) => b[1] - a[1]).slice(0, 25);
      write();
    });
    return;
  }
  write();
});
function write() {
  if (out) writeFileSync(out, JSON.stringify({ made, ran, gcs, timers, hooks: hooksOn, heapAtStart, heapAtEnd: getHeapStatistics().used_heap_size, allocSites }));
}
