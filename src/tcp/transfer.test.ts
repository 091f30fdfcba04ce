/**
 * The key correctness test: two TcpConn instances (one playing the guest)
 * joined by a simulated link that drops, duplicates, delays and reorders
 * segments (seeded PRNG, fake clock). Megabytes flow both ways; every byte
 * must arrive exactly once and in order, and both sides must close cleanly.
 */
import { describe, expect, it } from 'vitest';
import * as C from './conn.js';
import type { TcpConfig } from './conn.js';
import { Link, Recorder, pattern, prng, type LinkOptions } from '../../test/helpers/tcp-harness.js';
import { TcpConn, tcpConfig } from './conn.js';

/** An application endpoint: pumps a source stream in, checks the received stream. */
class App extends Recorder {
  sent = 0;
  received = 0;
  remoteFinSeen = false;
  established = false;
  conn!: TcpConn;
  link!: Link;
  readonly buf = new Uint8Array(65536);

  constructor(
    readonly toSend: number,
    readonly expect: number,
    readonly readProb: number,
    readonly rnd: () => number,
    readonly salt: number,
    readonly peerSalt: number,
  ) {
    super();
  }

  pump(): void {
    const c = this.conn;
    while (this.sent < this.toSend) {
      const n = Math.min(this.toSend - this.sent, 1 + Math.floor(this.rnd() * 40000));
      const took = c.write(pattern(n, this.sent + this.salt), this.link.now);
      this.sent += took;
      if (took < n) return;
    }
    c.shutdownWrite(this.link.now);
  }

  lastRead = 0;

  read(): void {
    const c = this.conn;
    this.lastRead = this.link.now;
    while (c.readable > 0) {
      const n = c.read(this.buf, 0, Math.min(this.buf.length, 1 + Math.floor(this.rnd() * 70000)), this.link.now);
      const want = pattern(n, this.received + this.peerSalt);
      for (let i = 0; i < n; i++) {
        if (this.buf[i] !== want[i]) throw new Error(`byte ${this.received + i} corrupted`);
      }
      this.received += n;
    }
  }

  override onEstablished(c?: TcpConn): void {
    super.onEstablished();
    if (!c) return;
    this.established = true;
    this.conn = c;
    this.pump();
  }
  override onWritable(): void {
    super.onWritable();
    this.pump();
  }
  override onData(): void {
    super.onData();
    if (this.rnd() < this.readProb) this.read();
  }
  override onRemoteFin(): void {
    super.onRemoteFin();
    this.remoteFinSeen = true;
  }
}

interface Scenario {
  name: string;
  seed: number;
  link: LinkOptions;
  cfgA: Partial<TcpConfig>;
  cfgB: Partial<TcpConfig>;
  aToB: number;
  bToA: number;
  readProb: number;
  issA: number;
  issB: number;
}

interface Stats {
  zeroWindows: number;
  probes: number;
  sacks: number;
  segments: number;
  /** Times a receiver's RCV.NXT was seen beyond the sender's SND.MAX (must stay 0). */
  aheadOfSender: number;
}

function run(sc: Scenario): { link: Link; a: App; b: App; stats: Stats } {
  const rnd = prng(sc.seed * 7919 + 1);
  const cfgA = tcpConfig(sc.cfgA);
  const cfgB = tcpConfig(sc.cfgB);
  // A plays the guest (active opener), B the gateway side (passive)
  const a = new App(sc.aToB, sc.bToA, sc.readProb, rnd, 0, 777);
  const b = new App(sc.bToA, sc.aToB, sc.readProb, rnd, 777, 0);
  const ca = new TcpConn(cfgA, a, a, 40000, 80);
  const cb = new TcpConn(cfgB, b, b, 80, 40000);
  a.conn = ca;
  b.conn = cb;
  ca.connect(sc.issA, 0);
  const syn = a.take()[0]!;
  cb.openPassive(syn.h, sc.issB, 0);
  const link = new Link({ conn: ca, rec: a }, { conn: cb, rec: b }, sc.link, sc.seed);
  a.link = link;
  b.link = link;
  const stats = { zeroWindows: 0, probes: 0, sacks: 0, segments: 0, aheadOfSender: 0 };
  link.trace = (to, s) => {
    stats.segments++;
    // The receiver can only hold what the sender has sent: otherwise its ACKs acknowledge "unsent data" and are dropped.
    const opening = (c: TcpConn): boolean => c.state === C.SYN_SENT || c.state === C.SYN_RECEIVED;
    if (!opening(ca) && !opening(cb) && (((cb.rcvNxt - ca.sndMax) | 0) > 0 || ((ca.rcvNxt - cb.sndMax) | 0) > 0)) stats.aheadOfSender++;
    if (s.h.window === 0 && (s.h.flags & 4) === 0) stats.zeroWindows++;
    if (s.h.sackCount > 0) stats.sacks++;
    // a zero-window probe: empty, SEQ = sender's SND.UNA - 1 (the sender is the side not receiving)
    if (s.payload.length === 0 && (s.h.flags & 7) === 0 && s.h.seq === ((to ? ca : cb).sndUna - 1) >>> 0) stats.probes++;
  };
  cb.accept(0);
  const done = (): boolean => ca.state === C.CLOSED && cb.state === C.CLOSED;
  const ok = link.run(done, 3_600_000, () => {
    // a slow app: reads on some onData events, else within ~50 ms (zero windows happen in between)
    if (a.established && link.now - a.lastRead > 50 * rnd()) a.read();
    if (b.established && link.now - b.lastRead > 50 * rnd()) b.read();
    if (ca.state === C.CLOSED && ca.readable > 0) a.read();
    if (cb.state === C.CLOSED && cb.readable > 0) b.read();
  });
  a.read();
  b.read();
  if (!ok) {
    const d = (c: TcpConn) => ({ st: C.STATE_NAMES[c.state], una: c.sndUna, nxt: c.sndNxt, max: c.sndMax, wnd: c.sndWnd, cwnd: c.cwnd, buf: c.sndBuf.length, rcvNxt: c.rcvNxt, readable: c.readable, free: c.rcvBuf.free, adv: c.rcvAdvEdge, next: c.nextTimeout(), rto: c.rto, retries: c.retries });
    console.log(d(ca), d(cb), stats);
  }
  if (!ok) throw new Error(`stuck at ${link.now}: A ${C.STATE_NAMES[ca.state]} B ${C.STATE_NAMES[cb.state]} sent ${a.sent}/${b.sent} rcvd ${a.received}/${b.received}`);
  return { link, a, b, stats };
}

const MB = 1 << 20;
const lossy: LinkOptions = { loss: 0.03, reorder: 0.05, delay: 1, jitter: 2, dup: 0.01 };

const scenarios: Scenario[] = [
  {
    name: '5 MB one way + 1 MB back, all options, ISNs near 2^32, 3% loss, reordering',
    seed: 1,
    link: lossy,
    cfgA: {},
    cfgB: {},
    aToB: 5 * MB,
    bToA: 1 * MB,
    readProb: 0.7,
    issA: 0xffff0000,
    issB: 0xfffffff0,
  },
  {
    name: '5 MB without SACK/timestamps/scaling, small buffers (zero windows), 2% loss',
    seed: 2,
    link: { loss: 0.02, reorder: 0.1, delay: 0.5, jitter: 3, dup: 0.02 },
    cfgA: { sack: false, timestamps: false, windowScaling: false, rcvBufMax: 16384, sndBufMax: 20000 },
    cfgB: { sack: false, timestamps: false, windowScaling: false, rcvBufMax: 12000, sndBufMax: 30000 },
    aToB: 5 * MB,
    bToA: 256 * 1024,
    readProb: 0.3,
    issA: 0x7ffffff0,
    issB: 0xfffffffe,
  },
  {
    name: '5 MB with heavy loss (10%) and large windows (4 MiB buffers)',
    seed: 3,
    link: { loss: 0.1, reorder: 0.1, delay: 2, jitter: 2, dup: 0 },
    cfgA: { rcvBufMax: 4 * MB, sndBufMax: MB, ackDelay: 0 },
    cfgB: { rcvBufMax: 4 * MB, sndBufMax: MB, maxRetries: 15 },
    aToB: 5 * MB,
    bToA: 5 * MB,
    readProb: 0.9,
    issA: 123456789,
    issB: 0xffffffff,
  },
];

describe('transfer over a lossy, reordering link (ours vs ours)', () => {
  for (const sc of scenarios) {
    it(sc.name, () => {
      const { link, a, b, stats } = run(sc);
      const cs = (c: TcpConn) => [c.nRto, c.nFastRetransmit, c.nRetransmit];
      console.log(sc.name, { simulatedMs: Math.round(link.now), dropped: link.dropped, ...stats, rtoFrRtxA: cs(a.conn), rtoFrRtxB: cs(b.conn) });
      console.log("DBG", a.resets, b.resets, a.conn.nTlp, b.conn.nTlp, a.conn.nLostRetransmit, b.conn.nLostRetransmit);
      expect(b.received).toBe(sc.aToB);
      expect(a.received).toBe(sc.bToA);
      expect(a.remoteFinSeen && b.remoteFinSeen).toBe(true);
      expect(a.resets).toEqual([]);
      expect(b.resets).toEqual([]);
      expect(a.closed).toBe(1);
      expect(b.closed).toBe(1);
      expect(link.dropped).toBeGreaterThan(0);
      expect(stats.aheadOfSender).toBe(0);
    });
  }

  it('a few more seeds (1 MB each way, mixed options)', () => {
    for (let seed = 10; seed < 16; seed++) {
      const r = prng(seed);
      const sc: Scenario = {
        name: `seed ${seed}`,
        seed,
        link: { loss: r() * 0.08, reorder: r() * 0.2, delay: 0.2 + r() * 3, jitter: r() * 4, dup: r() * 0.03 },
        cfgA: { sack: r() < 0.5, timestamps: r() < 0.5, rcvBufMax: 8192 + Math.floor(r() * 300000), ackDelay: r() < 0.5 ? 0 : 40 },
        cfgB: { sack: r() < 0.5, timestamps: r() < 0.5, sndBufMax: 4096 + Math.floor(r() * 300000) },
        aToB: MB,
        bToA: MB,
        readProb: 0.2 + r() * 0.8,
        issA: Math.floor(r() * 2 ** 32),
        issB: (0xffffffff - Math.floor(r() * 5000)) >>> 0,
      };
      const { a, b } = run(sc);
      expect([seed, b.received, a.received]).toEqual([seed, MB, MB]);
      expect([seed, a.resets.length + b.resets.length]).toEqual([seed, 0]);
    }
  });
});
