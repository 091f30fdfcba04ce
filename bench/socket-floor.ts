/**
 * Theory of operation: what Node itself costs per idle TCP connection, with
 * no vmnet state at all — the floor under conn-memory.ts's figure.
 *
 * Two Node processes on loopback: a listener that accepts N connections and
 * holds them, and a dialer that opens N connections to it with the gateway's
 * own dialTcp (dist/services/tcp-nat/host-stream.js, one events object
 * shared by all: the gateway's is the flow, which conn-memory.ts counts as
 * vmnet's), then holds them idle. The dialer is measured as
 * conn-memory.ts measures the gateway: VmRSS without a forced GC and the JS
 * heap after gc(), before and with the connections, per connection.
 * `--bare` dials with net.connect() and one 'error' listener only: Node's
 * own minimum for a connected socket. `--breakdown` adds the heap's growth
 * by constructor (heap snapshots, lib/heap-census.ts; RSS is then inflated
 * by the snapshot's own allocations).
 *
 * Standalone (after `npm run build`): `node --import ./bench/lib/ts-loader.mjs bench/socket-floor.ts [N] [--bare] [--breakdown]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { vmRss } from './conn-memory.js';
import { ROOT } from './lib/backends.js';
import { census, censusDiff, censusTable } from './lib/heap-census.js';

const SERVER = `
const net = require('node:net');
const held = [];
const srv = net.createServer({ allowHalfOpen: true }, (s) => { held.push(s); s.on('error', () => {}); });
srv.listen(0, '127.0.0.1', () => process.stdout.write('PORT ' + srv.address().port + '\\n'));
`;

function dialer(port: number, n: number, bare: boolean, snapDir: string | null): string {
  const hostStream = pathToFileURL(join(ROOT, 'dist', 'services', 'tcp-nat', 'host-stream.js')).href;
  return `
import net from 'node:net';
import { writeHeapSnapshot } from 'node:v8';
import { dialTcp } from ${JSON.stringify(hostStream)};
const snapDir = ${JSON.stringify(snapDir)};
const held = [];
const bare = ${bare};
function mem(tag) {
  globalThis.gc();
  const m = process.memoryUsage();
  const snapshot = snapDir === null ? undefined : writeHeapSnapshot(snapDir + '/' + tag + '.heapsnapshot');
  process.stdout.write(tag + ' ' + JSON.stringify({ heapUsed: m.heapUsed, snapshot }) + '\\n');
}
// One events object for every dialed socket (the gateway's is the flow, counted as vmnet's):
// it counts connects so that a batch of dials can be awaited.
let waiting = 0;
let wake = () => {};
const noop = () => {};
const events = { connected: () => { if (--waiting === 0) wake(); }, refused: noop, failed: noop, data: noop, end: noop, reset: noop, drain: noop };
function onBareConnect() { events.connected(); }
function dialBatch(k) {
  waiting = k;
  const done = new Promise((r) => (wake = r));
  for (let i = 0; i < k; i++) {
    if (bare) {
      const s = net.connect({ host: '127.0.0.1', port: ${port} }, onBareConnect);
      s.on('error', noop);
      held.push(s);
    } else held.push(dialTcp('127.0.0.1', ${port}, 10000, events));
  }
  return done;
}
for (let i = 0; i < 2; i++) await dialBatch(100); // warm up: code compiled
for (const s of held.splice(0)) s.destroy();
await new Promise((r) => setTimeout(r, 1000));
mem('BEFORE');
process.stdin.once('data', async () => {
  for (let i = 0; i < ${n}; i += 100) await dialBatch(Math.min(100, ${n} - i));
  await new Promise((r) => setTimeout(r, 2000));
  process.stdout.write('OPENED ' + held.length + '\\n');
  process.stdin.once('data', () => mem('AFTER'));
});
`;
}

function lineOf(p: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const on = (d: Buffer) => {
      buf += d.toString();
      const l = buf.split('\n').find((x) => x.startsWith(prefix + ' '));
      if (l !== undefined) {
        p.stdout!.off('data', on);
        resolve(l.slice(prefix.length + 1));
      }
    };
    p.stdout!.on('data', on);
    p.once('exit', (c) => reject(new Error(`exited ${c} before ${prefix}`)));
  });
}

export interface SocketFloor {
  opened: number;
  rssPerConnKB: number;
  heapPerConnKB: number;
  /** With `breakdown`: the heap's growth by constructor, per connection (markdown). */
  breakdown?: string;
}

interface Mem {
  heapUsed: number;
  snapshot?: string;
}

/** Holds `n` idle dialed sockets in a bare Node process and reports its memory per connection. */
export async function socketFloor(n: number, bare: boolean, breakdown = false): Promise<SocketFloor> {
  const snapDir = breakdown ? mkdtempSync(join(tmpdir(), 'vmnet-heap-')) : null;
  const srv = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = Number(await lineOf(srv, 'PORT'));
    const cli = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', dialer(port, n, bare, snapDir)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const before = JSON.parse(await lineOf(cli, 'BEFORE')) as Mem;
      await new Promise((r) => setTimeout(r, 500));
      const rssBefore = vmRss(cli.pid!);
      cli.stdin!.write('go\n');
      const opened = Number(await lineOf(cli, 'OPENED'));
      const rssAfter = vmRss(cli.pid!);
      cli.stdin!.write('mem\n');
      const after = JSON.parse(await lineOf(cli, 'AFTER')) as Mem;
      const k = Math.max(1, opened);
      const table = before.snapshot && after.snapshot ? censusTable(censusDiff(census(before.snapshot), census(after.snapshot)), k) : undefined;
      return { opened, rssPerConnKB: (rssAfter - rssBefore) / k / 1024, heapPerConnKB: (after.heapUsed - before.heapUsed) / k / 1024, breakdown: table };
    } finally {
      cli.kill();
    }
  } finally {
    srv.kill();
    if (snapDir !== null) rmSync(snapDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const n = Number(args.find((a) => !a.startsWith('--')) ?? 10_000);
  const bare = args.includes('--bare');
  const r = await socketFloor(n, bare, args.includes('--breakdown'));
  process.stdout.write(
    `Node ${process.version}, ${r.opened} idle dialed sockets (${bare ? 'bare net.connect' : "host-stream.ts's dialTcp"}): ` +
      `RSS ${r.rssPerConnKB.toFixed(2)} KB, JS heap ${r.heapPerConnKB.toFixed(2)} KB per connection\n`,
  );
  if (r.breakdown !== undefined) process.stdout.write(`\nHeap growth by object (heap snapshots after gc(), self sizes):\n\n${r.breakdown}`);
}
