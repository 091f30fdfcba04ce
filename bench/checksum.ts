/**
 * Theory of operation: a micro-benchmark of the Internet checksum paths in
 * src/wire/checksum.ts, used to choose WASM_MIN_IN_PLACE and WASM_MIN_COPY
 * (wasm/README.md):
 *
 * - `JS loop`: `sumJs` over a plain buffer;
 * - `wasm in place`: `sumWasm` over a `simdBuffer` (bytes already in the
 *   kernel's memory, as the gateway's outgoing frames are);
 * - `copy + wasm`: `sumWasm` over a plain buffer (copied into the scratch);
 * - `sum plain` / `sum in place`: the dispatcher `sum` as callers see it,
 *   with the thresholds applied.
 *
 * Each run starts at offset 34, where a TCP segment starts in an Ethernet
 * frame. Every variant has its own loop, so each call site stays
 * monomorphic as in the real callers. A cell is the fastest of ROUNDS
 * timings of about TARGET_MS each, after a warm-up. Prints a markdown table.
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/checksum.ts [bytes...]
 *
 * Sizes given on the command line (each <= 65536) replace the default set.
 */
import { cpus } from 'node:os';
import { bestNs, observed } from './lib/micro.js';
import { WASM_MIN_COPY, WASM_MIN_IN_PLACE, accelerated, simdBuffer, sum, sumJs, sumWasm } from '../src/wire/checksum.js';

const SIZES = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [20, 32, 64, 128, 160, 176, 256, 576, 1460, 9000, 65000];
const OFFSET = 34;
const ROUNDS = 7;
const TARGET_MS = 40;

type Loop = (v: DataView, len: number, calls: number) => number;

const loops: Record<'js' | 'wasm' | 'sum', Loop> = {
  js: (v, len, calls) => {
    let s = 0;
    for (let i = 0; i < calls; i++) s += sumJs(v, OFFSET, len);
    return s;
  },
  wasm: (v, len, calls) => {
    let s = 0;
    for (let i = 0; i < calls; i++) s += sumWasm(v, OFFSET, len);
    return s;
  },
  sum: (v, len, calls) => {
    let s = 0;
    for (let i = 0; i < calls; i++) s += sum(v, OFFSET, len);
    return s;
  },
};

/** Deterministic xorshift bytes into `b`. */
function fill(b: Uint8Array): void {
  let x = 0x2545f491;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
}

function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Nanoseconds per call: the fastest of ROUNDS timed runs. */
function measure(loop: Loop, v: DataView, len: number): number {
  return bestNs((calls) => loop(v, len, calls), ROUNDS, TARGET_MS);
}

function cell(ns: number, len: number): string {
  const text = ns < 100 ? ns.toFixed(1) : ns.toFixed(0);
  return `${text} ns · ${(len / ns).toFixed(1)} GB/s`;
}

const plain = new Uint8Array(OFFSET + 65536);
const inPlace = simdBuffer(OFFSET + 65536);
fill(plain);
inPlace.set(plain);
const pv = viewOf(plain);
const iv = viewOf(inPlace);

const rows: string[] = [];
for (const len of SIZES) {
  const js = measure(loops.js, pv, len);
  const wasmInPlace = measure(loops.wasm, iv, len);
  const copy = measure(loops.wasm, pv, len);
  const dispatchPlain = measure(loops.sum, pv, len);
  const dispatchInPlace = measure(loops.sum, iv, len);
  rows.push(
    `| ${len} | ${cell(js, len)} | ${cell(wasmInPlace, len)} | ${cell(copy, len)} | ${cell(dispatchPlain, len)} | ${cell(dispatchInPlace, len)} |`,
  );
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`Node ${process.version}, ${cpu} (${cpus().length} cores); wasm kernel ${accelerated ? 'on' : 'OFF'}; thresholds ${WASM_MIN_IN_PLACE} in place, ${WASM_MIN_COPY} copied; offset ${OFFSET}; best of ${ROUNDS}.`);
console.log('');
console.log('| bytes | JS loop | wasm in place | copy + wasm | `sum` plain | `sum` in place |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
if (observed() === 0.5) console.log(observed()); // keeps the sums observable
