/**
 * Theory of operation: memory per idle TCP connection, measured end to end.
 * The Linux kernel in a guest namespace opens N connections (default 10,000)
 * one after another through tap0 → tap-relay → the vmnet gateway → a host
 * listener (netbench srv) and leaves them idle. The gateway runs as its own
 * Node process (startGateway() from dist/, the same code the CLI runs) so its
 * RSS is the gateway's alone; it differs from `vmnet gateway` in one setting:
 * the per-guest TCP flow cap (default 4096) is raised to N + 1000, since all
 * N connections come from one guest address.
 *
 * Readings, each after a warm-up (one second of connect/echo/close, so the
 * connection paths are compiled) and a 2 s settle:
 *   RSS         /proc/PID/status VmRSS, no forced GC: what the OS sees
 *   heap        process.memoryUsage().heapUsed after global.gc()
 *               (node --expose-gc): live JS objects
 * The per-connection figure is (after − before) / N. Kernel socket memory
 * (host and guest side) is not in RSS and not counted.
 *
 * With `--breakdown` the gateway also writes a heap snapshot with each
 * reading, and the report adds where the heap bytes went: the census of the
 * two snapshots (lib/heap-census.ts), by constructor, per connection, and
 * which objects hold V8 heap-number boxes (numberHolders).
 *
 * Standalone: `node --import ./bench/lib/ts-loader.mjs bench/conn-memory.ts [N] [--breakdown]`
 * (after `npm run build`); bench/run.ts also runs it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ECHO_PORT, ROOT, startBackend } from './lib/backends.js';
import { Scope, type Proc } from './lib/env.js';
import { census, censusDiff, censusTable, numberHolders } from './lib/heap-census.js';

export interface ConnMemoryResult {
  requested: number;
  opened: number;
  failed: number;
  openSeconds: number;
  /** Gateway TCP flows while the connections are held. */
  flows: number;
  rssBeforeMB: number;
  rssAfterMB: number;
  heapBeforeMB: number;
  heapAfterMB: number;
  rssPerConnKB: number;
  heapPerConnKB: number;
  /** With `breakdown`: the heap's growth by constructor, per connection (markdown). */
  breakdown?: string;
}

export interface MemLine {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  flows: number;
  /** The heap snapshot written with this reading (gatewayScript's snapshotDir). */
  snapshot?: string;
}

/**
 * The gateway process: startGateway() with a raised per-guest cap; prints MEM
 * lines on SIGUSR2 (and writes a heap snapshot into `snapshotDir` with each).
 */
export function gatewayScript(sock: string, mtu: number, maxPerGuest: number, snapshotDir?: string): string {
  const server = pathToFileURL(join(ROOT, 'dist', 'gateway', 'server.js')).href;
  const resolv = pathToFileURL(join(ROOT, 'dist', 'services', 'dns', 'resolv-conf.js')).href;
  return `
const { startGateway } = await import(${JSON.stringify(server)});
const { parseUpstream } = await import(${JSON.stringify(resolv)});
const gw = await startGateway({ socket: ${JSON.stringify(sock)}, mtu: ${mtu}, dnsUpstreams: [parseUpstream('127.0.0.1:53')], tcpLimits: { maxPerGuest: ${maxPerGuest} } });
process.stdout.write('listening\\n');
let n = 0;
process.on('SIGUSR2', async () => {
  globalThis.gc();
  const m = process.memoryUsage();
  const dir = ${JSON.stringify(snapshotDir ?? null)};
  const snapshot = dir === null ? undefined : (await import('node:v8')).writeHeapSnapshot(dir + '/' + n + '.heapsnapshot');
  process.stdout.write('MEM' + (n++) + ' ' + JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, flows: gw.gateway.tcpNat.size, snapshot }) + '\\n');
});
process.on('SIGTERM', () => { void gw.close().then(() => process.exit(0)); });
`;
}

/** A process's resident set size (VmRSS) in bytes. */
export function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

let memSeq = 0;
/** Asks the gateway process (gatewayScript) for a MEM line: memory after gc(), flow count. */
export async function memLine(p: Proc): Promise<MemLine> {
  const tag = `MEM${memSeq++} `;
  p.child.kill('SIGUSR2');
  await p.waitFor(new RegExp(`${tag}\\{.*\\}\\n`), 120_000);
  const line = p.stdout().split('\n').find((l) => l.startsWith(tag))!;
  return JSON.parse(line.slice(tag.length)) as MemLine;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

/**
 * Opens `count` idle guest connections through the gateway and reports its
 * memory; with `breakdown`, also the heap's growth by constructor.
 */
export async function connMemory(count = 10_000, log: (s: string) => void = () => {}, breakdown = false): Promise<ConnMemoryResult> {
  const scope = new Scope();
  memSeq = 0;
  const snapDir = breakdown ? mkdtempSync(join(tmpdir(), 'vmnet-heap-')) : undefined;
  try {
    const b = await startBackend(scope, 'vmnet', 1500, {
      nodeFlags: ['--expose-gc'],
      vmnetArgs: (sock, mtu) => ['--input-type=module', '-e', gatewayScript(sock, mtu, count + 1000, snapDir)],
    });
    log(`conn-memory: gateway pid ${b.backend.pid}; warming up`);
    await scope.run(b.guest, b.netbench, ['crr', b.serverIp, String(ECHO_PORT), '1'], 30_000);
    await sleep(2000);
    const before = await memLine(b.backend);
    await sleep(500);
    const rssBefore = vmRss(b.backend.pid);
    log(`conn-memory: opening ${count} connections`);
    const hold = scope.spawn(b.guest, b.netbench, ['hold', b.serverIp, String(ECHO_PORT), String(count)], 'netbench hold', {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    await hold.waitFor(/"opened"/, 300_000);
    const h = JSON.parse(hold.stdout().trim().split('\n').pop()!) as { opened: number; failed: number; seconds: number };
    await sleep(2000);
    const rssAfter = vmRss(b.backend.pid);
    const after = await memLine(b.backend);
    hold.child.stdin?.end();
    const n = Math.max(1, h.opened);
    const table =
      before.snapshot && after.snapshot
        ? censusTable(censusDiff(census(before.snapshot), census(after.snapshot)), n) +
          '\nHeap numbers (16-byte boxes) by the object holding them, growth per connection:\n\n' +
          censusTable(censusDiff(numberHolders(before.snapshot), numberHolders(after.snapshot)), n, 12)
        : undefined;
    return {
      requested: count,
      opened: h.opened,
      failed: h.failed,
      openSeconds: h.seconds,
      flows: after.flows,
      rssBeforeMB: rssBefore / MB,
      rssAfterMB: rssAfter / MB,
      heapBeforeMB: before.heapUsed / MB,
      heapAfterMB: after.heapUsed / MB,
      rssPerConnKB: (rssAfter - rssBefore) / n / 1024,
      heapPerConnKB: (after.heapUsed - before.heapUsed) / n / 1024,
      breakdown: table,
    };
  } finally {
    await scope.close();
    if (snapDir !== undefined) rmSync(snapDir, { recursive: true, force: true });
  }
}

/** One markdown paragraph + table for the results file. */
export function connMemoryMarkdown(r: ConnMemoryResult): string {
  const verdict = r.rssAfterMB < 200 ? 'under' : 'OVER';
  return [
    `### Memory: ${r.opened.toLocaleString('en-US')} idle guest connections (vmnet gateway)`,
    '',
    `${r.opened} of ${r.requested} opened in ${r.openSeconds.toFixed(1)} s (${r.failed} failed); the gateway held ${r.flows} TCP flows. ` +
      `RSS with them: **${r.rssAfterMB.toFixed(0)} MB** (${verdict} the 200 MB target).`,
    '',
    '| | before | with the connections | per connection |',
    '|---|---:|---:|---:|',
    `| RSS (VmRSS, no forced GC) | ${r.rssBeforeMB.toFixed(1)} MB | ${r.rssAfterMB.toFixed(1)} MB | ${r.rssPerConnKB.toFixed(2)} KB |`,
    `| JS heap used (after gc()) | ${r.heapBeforeMB.toFixed(1)} MB | ${r.heapAfterMB.toFixed(1)} MB | ${r.heapPerConnKB.toFixed(2)} KB |`,
    '',
    ...(r.breakdown === undefined ? [] : ['Heap growth by object (heap snapshots after gc(), self sizes):', '', r.breakdown]),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const n = Number(args.find((a) => !a.startsWith('--')) ?? 10_000);
  const r = await connMemory(n, (s) => process.stderr.write(`${s}\n`), args.includes('--breakdown'));
  process.stdout.write(connMemoryMarkdown(r));
}
