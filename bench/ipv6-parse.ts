/**
 * Theory of operation: a micro-benchmark of what the gateway pays per
 * received TCP segment to get from the IP header to the TCP fields, IPv6
 * against IPv4, with the codecs of src/wire (issue 14):
 *
 * - `IPv4 + TCP`: ipv4.parse (the header checksum included) + tcp.parse;
 * - `IPv6 + TCP`: ipv6.parse (both addresses copied into the header's own
 *   arrays) + ipv6.walk (no extension header) + tcp.parse;
 * - `IPv6 (4×u32 addrs) + TCP`: the same with the addresses read into eight
 *   numbers instead, the representation addr.ts did not choose (a local
 *   variant of ipv6.parse, for the comparison only);
 * - `IPv6 + HbH + TCP`: one Hop-by-Hop header (Router Alert + PadN) walked;
 * - `verify4` / `verify6`: the TCP checksum of a 1448-byte segment with each
 *   pseudo-header;
 * - one flow-table lookup among 256 keys: `Map.get` keyed by an IPv4 number,
 *   by the IPv6 string key (`ip6Key`), by a BigInt of the four words, and a
 *   probe of an open-addressing table keyed by the four u32 words read from
 *   the packet's view (a sketch of what the gateway could use, local here).
 *
 * The segment carries the timestamps option (32-byte TCP header), as data
 * segments between Linux hosts do, and sits at offset 14 (after Ethernet).
 * Every variant has its own loop so each call site stays monomorphic. The
 * allocation column is the growth of the heap over 50,000 calls after a
 * forced GC, per call (0 means the loop allocates nothing; needs
 * --expose-gc, else "n/a"). Prints a markdown table.
 *
 *   node --expose-gc --import ./bench/lib/ts-loader.mjs bench/ipv6-parse.ts
 */
import { cpus } from 'node:os';
import * as ipv4 from '../src/wire/ipv4.js';
import * as ipv6 from '../src/wire/ipv6.js';
import * as tcp from '../src/wire/tcp.js';
import { ip6Key, parseIp6 } from '../src/wire/addr.js';
import { bestNs, observed } from './lib/micro.js';

const ROUNDS = 7;
const TARGET_MS = 40;
const OFFSET = 14;

const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const SRC6 = parseIp6('fd00:76:6d6e:0:5054:ff:fe12:3456')!;
const DST6 = parseIp6('2001:db8::8:800:200c:417a')!;
const SRC4 = 0x0a00020f;
const DST4 = 0xc0000201;

/** A frame: Ethernet gap, IP header (+ optional Hop-by-Hop), TCP header with timestamps, payload. */
function frame(version: 4 | 6, hopByHop: boolean, payload: number): { b: Uint8Array; tcpOffset: number; tcpLength: number } {
  const th = { ...tcp.blank(), srcPort: 40000, dstPort: 443, seq: 0x12345678, ack: 0x9abcdef0, flags: tcp.ACK | tcp.PSH, window: 502, hasTimestamps: true, tsVal: 1, tsEcr: 2 };
  const tl = tcp.length(th) + payload;
  const ext = hopByHop ? 8 : 0;
  const il = version === 4 ? ipv4.HEADER_LEN : ipv6.HEADER_LEN + ext;
  const b = new Uint8Array(OFFSET + il + tl);
  const v = viewOf(b);
  for (let i = OFFSET + il + tcp.length(th); i < b.length; i++) b[i] = i & 0xff;
  if (version === 4) {
    ipv4.emit({ ...ipv4.blank(), totalLength: il + tl, proto: ipv4.PROTO_TCP, src: SRC4, dst: DST4 }, v, OFFSET);
  } else {
    ipv6.emit({ ...ipv6.blank(), payloadLength: ext + tl, nextHeader: hopByHop ? ipv6.NH_HOP_BY_HOP : ipv6.NH_TCP, src: SRC6, dst: DST6 }, v, OFFSET);
    if (hopByHop) b.set([ipv6.NH_TCP, 0, ipv6.OPT_ROUTER_ALERT, 2, 0, 0, ipv6.OPT_PADN, 0], OFFSET + ipv6.HEADER_LEN);
  }
  tcp.emit(th, v, OFFSET + il);
  if (version === 4) tcp.fillChecksum4(v, OFFSET + il, tl, SRC4, DST4);
  else tcp.fillChecksum6(v, OFFSET + il, tl, SRC6, DST6);
  return { b, tcpOffset: OFFSET + il, tcpLength: tl };
}

/** The addresses-as-numbers variant of ipv6.parse, for the comparison row only. */
interface Words6 {
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  s0: number;
  s1: number;
  s2: number;
  s3: number;
  d0: number;
  d1: number;
  d2: number;
  d3: number;
}
function parseWords(v: DataView, o: number, len: number, out: Words6): boolean {
  if (len < 40 || v.getUint8(o) >>> 4 !== 6) return false;
  const pl = v.getUint16(o + 4);
  if (40 + pl > len) return false;
  out.payloadLength = pl;
  out.nextHeader = v.getUint8(o + 6);
  out.hopLimit = v.getUint8(o + 7);
  out.s0 = v.getUint32(o + 8);
  out.s1 = v.getUint32(o + 12);
  out.s2 = v.getUint32(o + 16);
  out.s3 = v.getUint32(o + 20);
  out.d0 = v.getUint32(o + 24);
  out.d1 = v.getUint32(o + 28);
  out.d2 = v.getUint32(o + 32);
  out.d3 = v.getUint32(o + 36);
  return true;
}

const f4 = frame(4, false, 0);
const f6 = frame(6, false, 0);
const f6h = frame(6, true, 0);
const s4 = frame(4, false, 1448);
const s6 = frame(6, false, 1448);
const v4 = viewOf(f4.b);
const v6 = viewOf(f6.b);
const v6h = viewOf(f6h.b);
const vs4 = viewOf(s4.b);
const vs6 = viewOf(s6.b);
const h4 = ipv4.blank();
const h6 = ipv6.blank();
const w6: Words6 = { payloadLength: 0, nextHeader: 0, hopLimit: 0, s0: 0, s1: 0, s2: 0, s3: 0, d0: 0, d1: 0, d2: 0, d3: 0 };
const chain = ipv6.blankChain();
const th = tcp.blank();

const keys4 = Array.from({ length: 256 }, (_, i) => (0x0a000000 + i * 7919) >>> 0);
const keys6 = keys4.map((k) => {
  const a = SRC6.slice();
  new DataView(a.buffer).setUint32(12, k);
  return a;
});
const map4 = new Map(keys4.map((k, i) => [k, i]));
const map6 = new Map(keys6.map((k, i) => [ip6Key(k), i]));
const words = (a: Uint8Array, i: number): number => ((a[i]! << 24) | (a[i + 1]! << 16) | (a[i + 2]! << 8) | a[i + 3]!) >>> 0;
const big = (a: Uint8Array): bigint => (BigInt(words(a, 0)) << 96n) | (BigInt(words(a, 4)) << 64n) | (BigInt(words(a, 8)) << 32n) | BigInt(words(a, 12));
const mapBig = new Map(keys6.map((k, i) => [big(k), i]));
const views6 = keys6.map((k) => viewOf(k));

/** Open addressing, linear probing, keys as four u32 words in one Uint32Array; no allocation per lookup. */
class WordTable {
  readonly mask = 1023;
  readonly keys = new Uint32Array(1024 * 4);
  readonly values = new Int32Array(1024).fill(-1);
  slot(a: number, b: number, c: number, d: number): number {
    const h = Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ Math.imul(d, 0xc2b2ae35), 0x27d4eb2f);
    return (h ^ (h >>> 15)) & this.mask;
  }
  set(v: DataView, o: number, value: number): void {
    const a = v.getUint32(o), b = v.getUint32(o + 4), c = v.getUint32(o + 8), d = v.getUint32(o + 12);
    let i = this.slot(a, b, c, d);
    while (this.values[i] !== -1) i = (i + 1) & this.mask;
    this.keys.set([a, b, c, d], i * 4);
    this.values[i] = value;
  }
  get(v: DataView, o: number): number {
    const a = v.getUint32(o), b = v.getUint32(o + 4), c = v.getUint32(o + 8), d = v.getUint32(o + 12);
    const k = this.keys;
    for (let i = this.slot(a, b, c, d); this.values[i] !== -1; i = (i + 1) & this.mask) {
      if (k[i * 4] === a && k[i * 4 + 1] === b && k[i * 4 + 2] === c && k[i * 4 + 3] === d) return this.values[i]!;
    }
    return -1;
  }
}
const table = new WordTable();
views6.forEach((v, i) => table.set(v, 0, i));

const rows: Array<[string, (calls: number) => number]> = [
  [
    'IPv4 + TCP (header checksum included)',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) if (ipv4.parse(v4, OFFSET, f4.b.length - OFFSET, h4) && tcp.parse(v4, h4.payloadOffset, h4.payloadLength, th)) s += th.tsVal;
      return s;
    },
  ],
  [
    'IPv6 + TCP',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) {
        if (ipv6.parse(v6, OFFSET, f6.b.length - OFFSET, h6) && ipv6.walk(v6, OFFSET, f6.b.length - OFFSET, chain) && tcp.parse(v6, chain.offset, chain.length, th)) s += th.tsVal;
      }
      return s;
    },
  ],
  [
    'IPv6 (4×u32 addresses) + TCP',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) {
        if (parseWords(v6, OFFSET, f6.b.length - OFFSET, w6) && ipv6.walk(v6, OFFSET, f6.b.length - OFFSET, chain) && tcp.parse(v6, chain.offset, chain.length, th)) s += th.tsVal;
      }
      return s;
    },
  ],
  [
    'IPv6 + Hop-by-Hop + TCP',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) {
        if (ipv6.parse(v6h, OFFSET, f6h.b.length - OFFSET, h6) && ipv6.walk(v6h, OFFSET, f6h.b.length - OFFSET, chain) && tcp.parse(v6h, chain.offset, chain.length, th)) s += th.tsVal;
      }
      return s;
    },
  ],
  [
    'tcp.verify4, 1480-byte segment',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) if (tcp.verify4(vs4, s4.tcpOffset, s4.tcpLength, SRC4, DST4)) s++;
      return s;
    },
  ],
  [
    'tcp.verify6, 1480-byte segment',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) if (tcp.verify6(vs6, s6.tcpOffset, s6.tcpLength, SRC6, DST6)) s++;
      return s;
    },
  ],
  [
    'Map.get(IPv4 number)',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) s += map4.get(keys4[i & 255]!)!;
      return s;
    },
  ],
  [
    'Map.get(ip6Key(address))',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) s += map6.get(ip6Key(keys6[i & 255]!))!;
      return s;
    },
  ],
  [
    'Map.get(BigInt of the 4 words)',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) s += mapBig.get(big(keys6[i & 255]!))!;
      return s;
    },
  ],
  [
    'open-addressing probe, 4 words from the view',
    (calls) => {
      let s = 0;
      for (let i = 0; i < calls; i++) s += table.get(views6[i & 255]!, 0);
      return s;
    },
  ],
];

/** Heap bytes allocated per call over `calls` calls, or null without --expose-gc. */
function allocated(run: (calls: number) => number, calls: number): number | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return null;
  gc();
  const before = process.memoryUsage().heapUsed;
  run(calls);
  return Math.max(0, process.memoryUsage().heapUsed - before) / calls;
}

const results: string[] = [];
for (const [name, run] of rows) {
  const ns = bestNs(run, ROUNDS, TARGET_MS);
  const bytes = allocated(run, 50_000);
  results.push(`| ${name} | ${ns < 100 ? ns.toFixed(1) : ns.toFixed(0)} ns | ${bytes === null ? 'n/a' : bytes.toFixed(1)} |`);
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`Node ${process.version}, ${cpu} (${cpus().length} cores); best of ${ROUNDS} runs of about ${TARGET_MS} ms.`);
console.log('');
console.log('| per segment | time | bytes allocated per call |');
console.log('|---|---:|---:|');
for (const r of results) console.log(r);
if (observed() === 0.5) console.log(observed()); // keeps the results observable
