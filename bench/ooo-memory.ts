/**
 * Theory of operation: the worst case of TCP receive memory a guest can
 * cause, measured end to end. A hostile guest opens N connections through
 * the gateway to a host listener and sends each of them one byte out of
 * order, at the far end of the gateway's receive buffer (RCV.NXT + 1 MiB - 2
 * at MTU 1500), and never fills the hole. The byte is inside the window, so
 * the gateway keeps it (and SACKs it) until the connection ends.
 *
 * Then each connection streams STREAM bytes in order (1 MiB - 64 KiB, which
 * the host reads at once), stopping short of the hole: a receive ring that
 * was allocated for the far byte has by then been written all over, so its
 * size shows in RSS, not only in the allocator's books (untouched pages of a
 * fresh allocation are not resident).
 *
 * No kernel TCP can be made to do that, so the guest is crafted: this process
 * connects to the gateway's stream socket itself (QEMU's framing,
 * src/link/stream-port.ts) and speaks Ethernet/IPv4/TCP with the codecs in
 * src/wire, inside the gateway's window and at most WINDOW unacknowledged
 * bytes per connection, resending what is not acknowledged. The gateway
 * runs as its own Node process (startGateway() from dist/, as in
 * conn-memory.ts, with the per-guest flow cap raised to N + 1000) in a fresh
 * network namespace, with a Node sink (reads and discards) as the host
 * listener on that namespace's loopback; nothing leaves the machine.
 *
 * Readings (as conn-memory.ts): the gateway's VmRSS, and its JS heap and
 * ArrayBuffer bytes after gc(): before, once every connection holds its far
 * byte (each answered by a SACK), and after the streaming.
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/ooo-memory.ts [N]
 * (after `npm run build`; default N = 2000)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as eth from '../src/wire/ethernet.js';
import * as ipv4 from '../src/wire/ipv4.js';
import * as tcp from '../src/wire/tcp.js';
import { connectStream } from '../src/link/stream-port.js';
import { ethFrame, GUEST_IP, GW_IP, ipv4Packet, viewOf } from '../test/helpers/frames.js';
import { gatewayScript, memLine, vmRss } from './conn-memory.js';
import { Scope } from './lib/env.js';

const MB = 1024 * 1024;
const SINK_PORT = 7001;
/** In-order bytes each connection streams after its far byte. */
const STREAM = MB - 64 * 1024;
/** Unacknowledged bytes per connection while streaming. */
const WINDOW = 128 * 1024;
const SEG = 1460;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The crafted guest's initial sequence number. */
const GISN = 1_000_000;

export interface OooMemoryResult {
  requested: number;
  holding: number;
  flows: number;
  /** Readings before, with the far bytes, after the streaming. */
  readings: { label: string; rssMB: number; heapMB: number; arrayBuffersMB: number }[];
  rssPerConnKB: number;
  /** Peak RSS of the gateway over the whole run (VmHWM). */
  peakRssMB: number;
}

/** One crafted guest → gateway segment as a frame. */
function segment(h: tcp.Header, payload: Uint8Array): Uint8Array {
  h.payloadLength = payload.length;
  const seg = new Uint8Array(tcp.length(h) + payload.length);
  const v = viewOf(seg);
  const hl = tcp.emit(h, v, 0);
  seg.set(payload, hl);
  tcp.fillChecksum4(v, 0, seg.length, GUEST_IP, GW_IP);
  return ethFrame(eth.ETHERTYPE_IPV4, ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_TCP }, seg));
}

/** Opens `count` connections, each holding one out-of-order byte, and reports the gateway's memory. */
export async function oooMemory(count = 2000, log: (s: string) => void = () => {}): Promise<OooMemoryResult> {
  const scope = new Scope();
  try {
    const ns = scope.netns('vb-ooo');
    const sinkJs = `require('net').createServer((s) => { s.on('error', () => {}); s.resume(); }).listen(${SINK_PORT}, '127.0.0.1', () => console.log('listening'));`;
    const sink = scope.spawn(ns, process.execPath, ['-e', sinkJs], 'sink');
    await sink.waitFor(/listening/);
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-bench-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const sock = join(dir, 'gw.sock');
    const gw = scope.spawn(ns, process.execPath, ['--expose-gc', '--input-type=module', '-e', gatewayScript(sock, 1500, count + 1000)], 'vmnet gateway');
    await gw.waitFor(/listening/);
    const port = await connectStream({ path: sock });
    scope.defer(() => port.close());

    // Per connection (by guest port): the gateway's ISN once its SYN-ACK came, whether a SACK came
    // back, and the highest ACK number seen.
    const iss = new Map<number, number>();
    const sacked = new Set<number>();
    const acked = new Map<number, number>();
    /** The gateway's right edge per port (the last window it advertised, scaled by its SYN-ACK's shift). */
    const edge = new Map<number, number>();
    const shift = new Map<number, number>();
    const rx = { e: eth.blank(), ip: ipv4.blank(), t: tcp.blank() };
    port.onFrame = (buf, _v, off, len) => {
      const v = viewOf(buf);
      if (!eth.parse(v, off, len, rx.e) || rx.e.ethertype !== eth.ETHERTYPE_IPV4) return;
      if (!ipv4.parse(v, rx.e.payloadOffset, rx.e.payloadLength, rx.ip) || rx.ip.proto !== ipv4.PROTO_TCP) return;
      if (!tcp.parse(v, rx.ip.payloadOffset, rx.ip.payloadLength, rx.t)) return;
      const t = rx.t;
      if ((t.flags & (tcp.SYN | tcp.ACK)) === (tcp.SYN | tcp.ACK)) {
        iss.set(t.dstPort, t.seq);
        shift.set(t.dstPort, Math.max(0, t.wscale));
        return;
      }
      if (t.sackCount > 0) sacked.add(t.dstPort);
      if ((t.flags & tcp.ACK) === 0) return;
      if (((t.ack - (acked.get(t.dstPort) ?? GISN)) | 0) > 0) acked.set(t.dstPort, t.ack);
      const e = (t.ack + (t.window << (shift.get(t.dstPort) ?? 0))) >>> 0;
      if (((e - (edge.get(t.dstPort) ?? GISN)) | 0) > 0) edge.set(t.dstPort, e);
    };
    const send = (f: Uint8Array) => port.sendFrame(f, 0, f.length);
    const waitUntil = async (ok: () => boolean, what: string, ms = 30_000) => {
      const end = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`ooo-memory: ${what}`);
        await sleep(20);
      }
    };

    const readings: OooMemoryResult['readings'] = [];
    const reading = async (label: string) => {
      await sleep(5000); // buffers emptied linger 1 s before they are freed
      const rss = vmRss(gw.pid);
      const m = await memLine(gw);
      readings.push({ label, rssMB: rss / MB, heapMB: m.heapUsed / MB, arrayBuffersMB: m.arrayBuffers / MB });
      return m;
    };
    await reading('before');
    log(`ooo-memory: gateway pid ${gw.pid}; opening ${count} connections`);
    const h = tcp.blank();
    const BATCH = 200;
    const allPorts: number[] = [];
    for (let first = 0; first < count; first += BATCH) {
      const ports: number[] = [];
      for (let i = first; i < Math.min(count, first + BATCH); i++) ports.push(20000 + i);
      allPorts.push(...ports);
      for (const p of ports) {
        tcp.clearOptions(h);
        Object.assign(h, { srcPort: p, dstPort: SINK_PORT, seq: GISN, ack: 0, flags: tcp.SYN, window: 65535, mss: 1460, wscale: 7, sackPermitted: true });
        send(segment(h, new Uint8Array(0)));
      }
      await waitUntil(() => ports.every((p) => iss.has(p)), `no SYN-ACK for some of ports ${ports[0]}..`);
      for (const p of ports) {
        tcp.clearOptions(h);
        // complete the handshake, send one byte in order (the receive ring exists), then one byte at
        // the far end of the 1 MiB receive buffer, and never the bytes in between
        Object.assign(h, { srcPort: p, dstPort: SINK_PORT, seq: GISN + 1, ack: (iss.get(p)! + 1) >>> 0, flags: tcp.ACK, window: 65535 });
        send(segment(h, new Uint8Array(0)));
        send(segment(h, new Uint8Array([0x41])));
        h.seq = GISN + 1 + MB - 2;
        send(segment(h, new Uint8Array([0x42])));
      }
      await waitUntil(() => ports.every((p) => sacked.has(p)), `no SACK for some of ports ${ports[0]}..`);
    }
    const holding = sacked.size;
    await reading('far bytes held');
    log(`ooo-memory: streaming ${STREAM} bytes in order on each`);
    // A sender as plain as it gets: inside the gateway's window, at most WINDOW unacknowledged, and
    // everything unacknowledged again after 300 ms without progress (the gateway may refuse bytes
    // inside its window when the memory budget is spent: it resends, as after a loss).
    const rel = (x: number) => (x - (GISN + 1)) | 0;
    for (let first = 0; first < allPorts.length; first += BATCH) {
      const ports = allPorts.slice(first, first + BATCH);
      const sent = new Map(ports.map((p) => [p, 1]));
      const progress = new Map(ports.map((p) => [p, { ack: -1, at: Date.now() }]));
      const deadline = Date.now() + 120_000;
      while (ports.some((p) => rel(acked.get(p)!) < 1 + STREAM)) {
        if (Date.now() > deadline) throw new Error(`ooo-memory: streaming stalled on ports ${ports[0]}..`);
        for (const p of ports) {
          const a = rel(acked.get(p)!);
          if (a >= 1 + STREAM) continue;
          const pr = progress.get(p)!;
          if (pr.ack !== a) Object.assign(pr, { ack: a, at: Date.now() });
          else if (Date.now() - pr.at > 300) {
            sent.set(p, a); // go back
            pr.at = Date.now();
          }
          let off = Math.max(sent.get(p)!, a);
          const end = Math.min(1 + STREAM, a + WINDOW, rel(edge.get(p)!));
          while (off < end) {
            const n = Math.min(SEG, end - off);
            tcp.clearOptions(h);
            Object.assign(h, { srcPort: p, dstPort: SINK_PORT, seq: (GISN + 1 + off) >>> 0, ack: (iss.get(p)! + 1) >>> 0, flags: tcp.ACK, window: 65535 });
            send(segment(h, new Uint8Array(n)));
            off += n;
          }
          sent.set(p, off);
        }
        await sleep(10);
      }
    }
    const after = await reading('after streaming');
    const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'));
    const r0 = readings[0]!;
    const r2 = readings[2]!;
    return {
      requested: count,
      holding,
      flows: after.flows,
      readings,
      rssPerConnKB: ((r2.rssMB - r0.rssMB) * 1024) / Math.max(1, holding),
      peakRssMB: peak ? Number(peak[1]) / 1024 : NaN,
    };
  } finally {
    await scope.close();
  }
}

/** One markdown paragraph + table for the results file. */
export function oooMemoryMarkdown(r: OooMemoryResult): string {
  return [
    `### Memory: ${r.holding.toLocaleString('en-US')} guest connections each holding one out-of-order byte (vmnet gateway)`,
    '',
    `${r.holding} of ${r.requested} connections hold a byte 1 MiB - 2 past RCV.NXT (each SACKed), then stream ${STREAM} bytes in order short of it; ` +
      `the gateway held ${r.flows} TCP flows. RSS per connection (after streaming − before): **${r.rssPerConnKB.toFixed(1)} KB**; ` +
      `peak RSS (VmHWM) **${r.peakRssMB.toFixed(0)} MB**.`,
    '',
    '| | RSS (VmRSS) | JS heap used (after gc()) | ArrayBuffers (after gc()) |',
    '|---|---:|---:|---:|',
    ...r.readings.map((x) => `| ${x.label} | ${x.rssMB.toFixed(1)} MB | ${x.heapMB.toFixed(1)} MB | ${x.arrayBuffersMB.toFixed(1)} MB |`),
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 2000);
  const r = await oooMemory(n, (s) => process.stderr.write(`${s}\n`));
  process.stdout.write(oooMemoryMarkdown(r));
}
