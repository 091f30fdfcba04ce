/**
 * Theory of operation: what the switch adds to the gateway's per-frame
 * path on a segment, in process, with no sockets and no kernel: CPU time per
 * frame of the sans-IO engine (src/switch/switch.ts) against building the
 * same frame straight into a port's output, as the gateway does on the user
 * NIC. On a shared machine the socket benchmarks (bench/switch.ts) move by
 * ±30% between runs; this does not, so it says what the switch costs.
 *
 * The output port mimics StreamPort's in-place contract (reserveFrame …
 * commitFrame into a 1 MiB staging area, sendFrame copying into it); the
 * gateway's port is an in-process sink that takes frames and honours
 * backpressure, with a static MAC, as on a segment. The gateway's frames
 * get their Ethernet and IP headers written (the payload is the same work
 * either way and is not written). Frames go in batches of 32 per macrotask,
 * about one socket read's worth; the engine's clock is the server's
 * (clock.ts, read once per macrotask) or, for comparison, performance.now()
 * read per frame, as before clock.ts.
 *
 * Cells, per MTU (a full-size TCP segment each):
 *   direct        reserve in the output, write the header, commit (user NIC)
 *   cut-through   the same through Switch.reserveInput(port, len, dst) /
 *                 commitInput: the frame is processed and committed in place
 *   arena + copy  reserveInput without a destination: built in the switch's
 *                 arena, then copied into the output (before cut-through;
 *                 still the path of a frame sent from inside a delivery)
 *   ACK in        a guest's 66-byte ACK through the switch to the gateway
 * Each cell is the best of ROUNDS runs of N frames, in ns of CPU time
 * (user + system) per frame, after a warm-up, less the cost of the batches'
 * macrotasks alone; then what the switch adds per GB carried, with one ACK
 * per two segments. The copy is measured warm in cache (one arena slot,
 * 1 MiB of output): in a real run it costs more (about 3 µs per 64 KiB in
 * the profiles of bench/switch.ts --profile).
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/switch-path.ts [ROUNDS]
 */
import { macrotaskClock } from '../src/switch/clock.js';
import { Switch } from '../src/switch/switch.js';
import type { SwitchPort } from '../src/switch/types.js';
import { Output } from './lib/output.js';

const ROUNDS = Number(process.argv[2]) || 7;
const N = 200_000;
const BATCH = 32;
const GW_MAC = Uint8Array.of(0x52, 0x55, 10, 0, 2, 2);
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);

/** Ethernet + IPv4 + TCP headers of a frame from the gateway to the guest. */
function header(): Uint8Array {
  const h = new Uint8Array(54);
  h.set(GUEST_MAC, 0);
  h.set(GW_MAC, 6);
  h[12] = 0x08;
  h[14] = 0x45;
  return h;
}

interface Rig {
  sw: Switch;
  gw: SwitchPort;
  guest: SwitchPort;
  out: Output;
  ack: Uint8Array;
  ackView: DataView;
}

function rig(mtu: number, now: () => number): Rig {
  const sw = new Switch({ mtu, now });
  const gw = sw.addPort({ sendFrame: () => true, drained: () => {} }, { name: 'gateway', staticMacs: [GW_MAC], stormLimit: false });
  const out = new Output();
  const guest = sw.addPort(out, { name: 'guest' });
  const ack = new Uint8Array(66);
  ack.set(GW_MAC, 0);
  ack.set(GUEST_MAC, 6);
  ack[12] = 0x08;
  const ackView = new DataView(ack.buffer);
  sw.input(guest, ack, ackView, 0, ack.length); // the guest's MAC is learned
  return { sw, gw, guest, out, ack, ackView };
}

type Cell = 'direct' | 'cut-through' | 'arena + copy' | 'ACK in';

function one(r: Rig, cell: Cell, len: number, hdr: Uint8Array): void {
  if (cell === 'ACK in') {
    r.sw.input(r.guest, r.ack, r.ackView, 0, r.ack.length);
    return;
  }
  if (cell === 'direct') {
    r.out.reserveFrame(len);
    r.out.frameBuffer().set(hdr, r.out.frameOffset());
    r.out.commitFrame(len);
    return;
  }
  r.sw.reserveInput(r.gw, len, cell === 'cut-through' ? GUEST_MAC : undefined);
  r.sw.inputBuffer().set(hdr, r.sw.inputOffset());
  r.sw.commitInput(len);
}

/** CPU ns per frame over N frames, BATCH per macrotask (`cell` null: the batches alone, to subtract). */
async function run(r: Rig, cell: Cell | null, len: number, hdr: Uint8Array): Promise<number> {
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i += BATCH) {
    if (cell !== null) for (let j = 0; j < BATCH; j++) one(r, cell, len, hdr);
    await new Promise<void>((res) => setImmediate(res));
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / N;
}

const hdr = header();
const lines: string[] = ['| MTU | switch clock | direct | cut-through | arena + copy | ACK in | switch adds per GB: cut-through + ACKs | arena + copy + ACKs |', '|---:|---|---:|---:|---:|---:|---:|---:|'];
const clocks = { 'once per macrotask': () => macrotaskClock(), 'read per frame': () => () => performance.now() };
for (const mtu of [1500, 65520]) for (const [clockName, clock] of Object.entries(clocks)) {
  const r = rig(mtu, clock());
  const len = mtu + 14;
  const best: Record<Cell, number> = { direct: Infinity, 'cut-through': Infinity, 'arena + copy': Infinity, 'ACK in': Infinity };
  const cells = Object.keys(best) as Cell[];
  for (const c of cells) await run(r, c, len, hdr); // warm-up
  let batches = Infinity;
  for (let k = 0; k < ROUNDS; k++) {
    batches = Math.min(batches, await run(r, null, len, hdr));
    for (const c of cells) best[c] = Math.min(best[c], await run(r, c, len, hdr));
  }
  for (const c of cells) best[c] -= batches;
  if (r.sw.counters.cutThrough === 0 || r.sw.counters.reentrantDropped !== 0) throw new Error(`unexpected counters ${JSON.stringify(r.sw.counters)}`);
  const segmentsPerGb = 1e9 / (mtu - 40);
  const perGb = (seg: number) => `${(((seg - best.direct + best['ACK in'] / 2) * segmentsPerGb) / 1e6).toFixed(1)} ms`;
  const ns = (c: Cell) => `${best[c].toFixed(0)} ns`;
  lines.push(`| ${mtu} | ${clockName} | ${ns('direct')} | ${ns('cut-through')} | ${ns('arena + copy')} | ${ns('ACK in')} | ${perGb(best['cut-through'])} | ${perGb(best['arena + copy'])} |`);
}
process.stdout.write(`CPU time per frame, best of ${ROUNDS} runs of ${N} frames (Node ${process.version}):\n\n${lines.join('\n')}\n`);
