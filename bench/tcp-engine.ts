/**
 * Theory of operation: a micro-benchmark of the sans-IO TCP engine alone
 * (src/tcp/conn.ts and its modules), used to check that a change to the
 * engine does not slow its hot paths: segment output, ACK processing, the
 * receive path and, with loss, SACK recovery.
 *
 * Two `TcpConn`s are joined in memory, with no sockets, timers or checksums:
 * each segment is emitted into a reused frame (`tcp.emit`, then the payload
 * copied out of the send buffer, as the gateway does), parsed back into a
 * reused header and handed to the other side from a FIFO of preallocated
 * frames. A fake clock advances 10 µs per delivered segment, so the timers
 * (delayed ACK, RTO, TLP) run as they would on a fast link. The receiving
 * application consumes everything on each `onData`; the sending application
 * refills the send buffer on each `onWritable`.
 *
 * Scenarios (each moves BYTES one way, MTU 1500, default configuration):
 *   clean    no loss: the steady-state data path
 *   loss 1%  every 100th data segment dropped (deterministic): fast
 *            retransmit, SACK scoreboard, recovery
 * A cell is the best of ROUNDS runs (default 7), in MB of payload per second
 * of the process's CPU time (user + system: steadier than wall time on a
 * shared machine), after a warm-up run.
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/tcp-engine.ts [MB] [ROUNDS]
 */
import * as tcp from '../src/wire/tcp.js';
import { TcpConn, tcpConfig, type TcpEvents, type TcpOutput } from '../src/tcp/conn.js';
import type { SendBuffer } from '../src/tcp/send-buffer.js';

const MB = 1 << 20;
const BYTES = (Number(process.argv[2]) || 256) * MB;
const ROUNDS = Number(process.argv[3]) || 7;
const FRAMES = 4096;
const FRAME_LEN = 1600;

/** A FIFO of preallocated frames between the two connections. */
class Wire {
  readonly frames = Array.from({ length: FRAMES }, () => new Uint8Array(FRAME_LEN));
  readonly views = this.frames.map((f) => new DataView(f.buffer));
  readonly to = new Uint8Array(FRAMES);
  readonly lens = new Uint32Array(FRAMES);
  head = 0;
  count = 0;
  dataSegs = 0;
  constructor(readonly dropEvery: number) {}
}

function run(dropEvery: number): number {
  const cfg = tcpConfig();
  const wire = new Wire(dropEvery);
  const chunk = new Uint8Array(64 * 1024);
  const sink = new Uint8Array(256 * 1024);
  let now = 0;
  let sent = 0;
  let received = 0;
  const conns: TcpConn[] = [];
  const pump = (c: TcpConn): void => {
    while (sent < BYTES) {
      const took = c.write(chunk.subarray(0, Math.min(chunk.length, BYTES - sent)), now);
      sent += took;
      if (took === 0) return;
    }
  };
  const mk = (side: 0 | 1): TcpOutput & TcpEvents => ({
    segment(_c, h: tcp.Header, data: SendBuffer, off: number) {
      if (wire.count === FRAMES) throw new Error('wire full');
      const len = h.payloadLength;
      if (len > 0 && wire.dropEvery > 0 && ++wire.dataSegs % wire.dropEvery === 0) return;
      const i = (wire.head + wire.count) % FRAMES;
      const hl = tcp.emit(h, wire.views[i]!, 0);
      if (len > 0) data.copyOut(off, len, wire.frames[i]!, hl);
      wire.to[i] = 1 - side;
      wire.lens[i] = hl + len;
      wire.count++;
    },
    linkBlocked: () => false,
    onEstablished(c) {
      if (side === 0) pump(c);
    },
    onData(c) {
      while (c.readable > 0) received += c.read(sink, 0, sink.length, now);
    },
    onRemoteFin() {},
    onWritable(c) {
      pump(c);
    },
    onReset() {
      throw new Error('reset');
    },
    onClosed() {},
    onProbe() {},
  });
  const a = mk(0);
  const b = mk(1);
  conns.push(new TcpConn(cfg, a, a, 40000, 80), new TcpConn(cfg, b, b, 80, 40000));
  const rx = tcp.blank();
  conns[0]!.connect(1, now);
  // the SYN is in the wire; B opens passively from it
  const i0 = wire.head;
  tcp.parse(wire.views[i0]!, 0, wire.lens[i0]!, rx);
  wire.head = (wire.head + 1) % FRAMES;
  wire.count--;
  conns[1]!.openPassive(rx, 0x7fff0000, now);
  conns[1]!.accept(now);
  const t0 = process.cpuUsage();
  while (received < BYTES) {
    if (wire.count === 0) {
      // nothing in flight: run the earliest timer (RTO, TLP, delayed ACK)
      const t = Math.min(conns[0]!.nextTimeout(), conns[1]!.nextTimeout());
      if (t === Infinity) throw new Error(`stuck at ${received}`);
      now = Math.max(now, t);
      for (const c of conns) if (c.nextTimeout() <= now) c.onTimer(now);
      continue;
    }
    const i = wire.head;
    wire.head = (wire.head + 1) % FRAMES;
    wire.count--;
    now += 0.01;
    if (!tcp.parse(wire.views[i]!, 0, wire.lens[i]!, rx)) throw new Error('bad segment');
    const dst = conns[wire.to[i]!]!;
    dst.onSegment(rx, wire.frames[i]!, now);
    for (const c of conns) if (c.nextTimeout() <= now) c.onTimer(now);
  }
  const t = process.cpuUsage(t0);
  return BYTES / MB / ((t.user + t.system) / 1e6);
}

const scenarios: [string, number][] = (process.env.ONLY_LOSS ? [['loss 1%', 100]] : process.env.ONLY_CLEAN ? [['clean', 0]] : [
  ['clean', 0],
  ['loss 1%', 100],
]) as [string, number][];
const rows: string[] = [];
for (const [name, drop] of scenarios) {
  run(drop); // warm-up
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) best = Math.max(best, run(drop));
  rows.push(`| ${name} | ${best.toFixed(0)} |`);
}
process.stdout.write(`| scenario (${BYTES / MB} MB, MTU 1500) | MB per CPU second |\n|---|---:|\n${rows.join('\n')}\n`);
