/**
 * The key correctness test: two TcpConn instances (one playing the guest)
 * joined by a simulated link that drops, duplicates, delays and reorders
 * segments (seeded PRNG, fake clock). Megabytes flow both ways; every byte
 * must arrive exactly once and in order, and both sides must close cleanly.
 *
 * Invariants checked on every segment, in every scenario:
 * - a retransmission never reaches past SND.MAX;
 * - no data beyond the right window edge, neither the one the sender knows
 *   nor the one the receiver advertised;
 * - the right edge a side advertises never moves back;
 * - nothing acknowledged is lost: the bytes a side took in order are the
 *   bytes its application read plus those still readable;
 * - a receiver never holds more than its sender sent;
 * - cwnd is a whole number of bytes (BBR's model is in fractions).
 * Every scenario runs under both congestion controllers (Reno and BBR).
 * The seed sweep adds small and shrinking windows: tiny buffers, a memory
 * budget that another "connection" keeps taking and giving back (windows
 * shrink, in-window data is refused), and a middlebox that retracts the
 * advertised window.
 */
import { describe, expect, it } from 'vitest';
import * as C from './conn.js';
import type { TcpConfig } from './conn.js';
import * as tcp from '../wire/tcp.js';
import { TcpBudget, type BudgetAccount } from './budget.js';
import { Link, Recorder, encode, pattern, prng, type LinkOptions, type Seg } from '../../test/helpers/tcp-harness.js';
import { TcpConn, tcpConfig } from './conn.js';
import { CC_NAMES, type CcName } from './cc/types.js';

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
  /** Each side's buffers charge a budget of this share, which a hog keeps taking and giving back. */
  budget?: number;
  /** Probability that the link retracts the window of a segment (a middlebox shrinking it). */
  shrink?: number;
  /** Whether a reset (of both sides) is an acceptable outcome instead of a complete transfer. */
  resetOk?: boolean;
}

interface Stats {
  zeroWindows: number;
  probes: number;
  sacks: number;
  segments: number;
  /** Times a receiver's RCV.NXT was seen beyond the sender's SND.MAX (must stay 0). */
  aheadOfSender: number;
  /** Invariant violations (each must stay empty). */
  beyondMax: string[];
  beyondEdge: string[];
  edgeBack: string[];
  lost: string[];
  /** A cwnd that is not a whole number of bytes. */
  fractional: string[];
  /** Times a budget held a buffer back (both sides). */
  budgetLimited: number;
}

function run(sc: Scenario, cc: CcName): { link: Link; a: App; b: App; stats: Stats } {
  const rnd = prng(sc.seed * 7919 + 1);
  const cfgA = tcpConfig({ cc, ...sc.cfgA, ...(sc.budget ? { budget: new TcpBudget(1 << 30, sc.budget) } : {}) });
  const cfgB = tcpConfig({ cc, ...sc.cfgB, ...(sc.budget ? { budget: new TcpBudget(1 << 30, sc.budget) } : {}) });
  // A plays the guest (active opener), B the gateway side (passive)
  const a = new App(sc.aToB, sc.bToA, sc.readProb, rnd, 0, 777);
  const b = new App(sc.bToA, sc.aToB, sc.readProb, rnd, 777, 0);
  const ca = new TcpConn(cfgA, a, a, 40000, 80, 'guest');
  const cb = new TcpConn(cfgB, b, b, 80, 40000, 'guest');
  // the other "connections" of each side's guest: they take and give back memory at random
  const hogs: BudgetAccount[] = [cfgA, cfgB].flatMap((c) => (c.budget ? [c.budget.acquire('guest')] : []));
  a.conn = ca;
  b.conn = cb;
  ca.connect(sc.issA, 0);
  const syn = a.take()[0]!;
  cb.openPassive(syn.h, sc.issB, 0);
  const link = new Link({ conn: ca, rec: a }, { conn: cb, rec: b }, sc.link, sc.seed);
  a.link = link;
  b.link = link;
  const stats: Stats = { zeroWindows: 0, probes: 0, sacks: 0, segments: 0, aheadOfSender: 0, beyondMax: [], beyondEdge: [], edgeBack: [], lost: [], fractional: [], budgetLimited: 0 };
  const conns = [ca, cb];
  const synced = (c: TcpConn): boolean => c.state >= C.ESTABLISHED;
  const lastEdge = [NaN, NaN];
  const lt = (x: number, y: number): boolean => ((x - y) | 0) < 0;
  link.filter = (to, s: Seg) => {
    const x = conns[1 - to]!;
    const y = conns[to]!;
    const f = s.h.flags;
    const at = `seed ${sc.seed} t=${link.now.toFixed(1)} ${to ? 'A→B' : 'B→A'}`;
    if ((f & (tcp.RST | tcp.SYN)) === 0 && (f & tcp.ACK) !== 0) {
      const e = (s.h.ack + (s.h.window << x.rcvShift)) >>> 0;
      if (!Number.isNaN(lastEdge[1 - to]!) && lt(e, lastEdge[1 - to]!)) stats.edgeBack.push(`${at}: edge ${e} after ${lastEdge[1 - to]}`);
      else lastEdge[1 - to] = e;
    }
    if (s.payload.length > 0 && synced(x) && synced(y)) {
      const end = (s.h.seq + s.payload.length) >>> 0;
      if (lt(s.h.seq, x.sndMax) && lt(x.sndMax, end)) stats.beyondMax.push(`${at}: ${s.h.seq}+${s.payload.length} SND.MAX ${x.sndMax}`);
      if (lt((x.sndUna + x.sndWnd) >>> 0, end)) stats.beyondEdge.push(`${at}: ends ${end}, sender's edge ${(x.sndUna + x.sndWnd) >>> 0}`);
      if (lt(y.rcvAdvEdge, end)) stats.beyondEdge.push(`${at}: ends ${end}, receiver's edge ${y.rcvAdvEdge}`);
    }
    return true;
  };
  if (sc.shrink) {
    const p = sc.shrink;
    link.rewrite = (_to, s: Seg) => {
      if ((s.h.flags & (tcp.RST | tcp.SYN)) !== 0 || rnd() >= p) return null;
      const h = { ...s.h, sack: s.h.sack.slice(), window: Math.floor(s.h.window * rnd() * rnd()) };
      return encode(h, null, 0, s.payload);
    };
  }
  /** Bytes a side took in order must be what its app read plus what is still readable. */
  const checkHeld = (c: TcpConn, app: App): void => {
    if (!synced(c)) return;
    const inOrder = ((c.rcvNxt - c.rcv.irs - 1) | 0) - (c.remoteFinished ? 1 : 0);
    if (inOrder !== app.received + c.readable) stats.lost.push(`seed ${sc.seed} t=${link.now}: took ${inOrder}, read ${app.received} + readable ${c.readable}`);
    if (!Number.isInteger(c.cwnd)) stats.fractional.push(`seed ${sc.seed} t=${link.now}: cwnd ${c.cwnd}`);
  };
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
  if (process.env.TRACE_SEED === String(sc.seed)) {
    const prev = link.trace!;
    const d = (c: TcpConn) => `${C.STATE_NAMES[c.state]} una=${c.sndUna} nxt=${c.sndNxt} max=${c.sndMax} wnd=${c.sndWnd} buf=${c.sndBuf.length} rcvNxt=${c.rcvNxt} adv=${c.rcvAdvEdge} rd=${c.readable} room=${c.rcvBuf.room} rto=${c.rto} retries=${c.retries} cwnd=${c.cwnd}`;
    link.trace = (to, s, now) => {
      prev(to, s, now);
      if (now > Number(process.env.TRACE_FROM ?? 0) && now < Number(process.env.TRACE_TO ?? 1e9))
        console.log(`${now.toFixed(1)} ${to ? 'A→B' : 'B→A'} seq=${s.h.seq} ack=${s.h.ack} f=${s.h.flags} w=${s.h.window} len=${s.payload.length} sack=${s.h.sackCount}\n   A: ${d(ca)}\n   B: ${d(cb)}`);
    };
  }
  const done = (): boolean => ca.state === C.CLOSED && cb.state === C.CLOSED;
  const ok = link.run(done, 3_600_000, () => {
    // a slow app: reads on some onData events, else within ~50 ms (zero windows happen in between)
    if (a.established && link.now - a.lastRead > 50 * rnd()) a.read();
    if (b.established && link.now - b.lastRead > 50 * rnd()) b.read();
    // ackBatch: a batch of segments (one read from the link, as the gateway's NAT sees it) ends here or later
    if (cfgA.ackBatch && rnd() < 0.3) ca.endBatch(link.now);
    if (cfgB.ackBatch && rnd() < 0.3) cb.endBatch(link.now);
    if (ca.state === C.CLOSED && ca.readable > 0) a.read();
    if (cb.state === C.CLOSED && cb.readable > 0) b.read();
    for (const h of hogs) {
      if (rnd() >= 0.02) continue;
      h.credit(h.used);
      h.charge(Math.floor(rnd() * h.budget.perGuest)); // its other connections take or free memory
    }
    checkHeld(ca, a);
    checkHeld(cb, b);
  });
  a.read();
  b.read();
  checkHeld(ca, a);
  checkHeld(cb, b);
  stats.budgetLimited = (cfgA.budget?.counters.limited ?? 0) + (cfgB.budget?.counters.limited ?? 0);
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
  {
    // The engine keeps sequence numbers signed (wire/seq): both directions cross 2^31, where the signed form wraps.
    name: '2 MB each way with SACK and timestamps, both sequence spaces across 2^31, 3% loss',
    seed: 4,
    link: { loss: 0.03, reorder: 0.05, delay: 1, jitter: 2, dup: 0.01 },
    cfgA: {},
    cfgB: {},
    aToB: 2 * MB,
    bToA: 2 * MB,
    readProb: 0.8,
    issA: 0x7fff8000,
    issB: 0x7ffffff0,
  },
];

/** The per-segment invariants (see the file comment) held throughout. */
function expectInvariants(stats: Stats): void {
  expect(stats.aheadOfSender).toBe(0);
  expect(stats.beyondMax).toEqual([]);
  expect(stats.beyondEdge).toEqual([]);
  expect(stats.edgeBack).toEqual([]);
  expect(stats.lost).toEqual([]);
  expect(stats.fractional.slice(0, 3)).toEqual([]);
}

describe.each(CC_NAMES)('transfer over a lossy, reordering link (ours vs ours), congestion control %s', (cc) => {
  for (const sc of scenarios) {
    it(sc.name, () => {
      const { link, a, b, stats } = run(sc, cc);
      const cs = (c: TcpConn) => [c.nRto, c.nFastRetransmit, c.nRetransmit];
      console.log(sc.name, { simulatedMs: Math.round(link.now), dropped: link.dropped, ...stats, rtoFrRtxA: cs(a.conn), rtoFrRtxB: cs(b.conn) });
      expect(b.received).toBe(sc.aToB);
      expect(a.received).toBe(sc.bToA);
      expect(a.remoteFinSeen && b.remoteFinSeen).toBe(true);
      expect(a.resets).toEqual([]);
      expect(b.resets).toEqual([]);
      expect(a.closed).toBe(1);
      expect(b.closed).toBe(1);
      expect(link.dropped).toBeGreaterThan(0);
      expectInvariants(stats);
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
      const { a, b, stats } = run(sc, cc);
      expect([seed, b.received, a.received]).toEqual([seed, MB, MB]);
      expect([seed, a.resets.length + b.resets.length]).toEqual([seed, 0]);
      expectInvariants(stats);
    }
  });

  it('the loss row\'s link over many seeds: 5% loss + 5% reordering each way, SACK and timestamps (RACK-TLP, PRR, undo)', () => {
    const sum = { rto: 0, fast: 0, tlp: 0, lostRtx: 0, undo: 0, dropped: 0 };
    for (let seed = 100; seed < 160; seed++) {
      const r = prng(seed);
      const side = (): Partial<TcpConfig> => ({ sack: true, timestamps: r() < 0.8, ackDelay: r() < 0.5 ? 0 : 40 });
      const sc: Scenario = {
        name: `seed ${seed}`,
        seed,
        link: { loss: 0.05, reorder: 0.05, delay: 0.1 + r() * 2, jitter: r() * 0.5, dup: r() * 0.01 },
        cfgA: side(),
        cfgB: side(),
        aToB: 64 * 1024 + Math.floor(r() * 192 * 1024),
        bToA: 64 * 1024 + Math.floor(r() * 192 * 1024),
        readProb: 0.3 + r() * 0.7,
        issA: Math.floor(r() * 2 ** 32),
        issB: (0xffffffff - Math.floor(r() * 5000)) >>> 0,
      };
      const { link, a, b, stats } = run(sc, cc);
      expectInvariants(stats);
      expect([seed, b.received, a.received]).toEqual([seed, sc.aToB, sc.bToA]);
      expect([seed, a.resets.length + b.resets.length, a.closed, b.closed]).toEqual([seed, 0, 1, 1]);
      for (const c of [a.conn, b.conn]) {
        sum.rto += c.nRto;
        sum.fast += c.nFastRetransmit;
        sum.tlp += c.nTlp;
        sum.lostRtx += c.nLostRetransmit;
        sum.undo += c.nUndo;
      }
      sum.dropped += link.dropped;
    }
    console.log('loss-row link, 60 seeds:', sum);
    // the sweep exercises what it is for: RACK's recoveries, probes, lost retransmissions found, undo
    expect(sum.fast).toBeGreaterThan(sum.rto);
    expect(sum.tlp).toBeGreaterThan(0);
    expect(sum.lostRtx).toBeGreaterThan(0);
    expect(sum.undo).toBeGreaterThan(0);
  });

  it('batched ACKs (the gateway\'s ackBatch: one ACK per batch of segments) over many seeds, with loss and reordering', () => {
    for (let seed = 200; seed < 230; seed++) {
      const r = prng(seed);
      const sc: Scenario = {
        name: `seed ${seed}`,
        seed,
        link: { loss: r() * 0.05, reorder: r() * 0.05, delay: 0.1 + r() * 2, jitter: r() * 0.5, dup: r() * 0.01 },
        cfgA: { sack: r() < 0.7, timestamps: r() < 0.7 },
        cfgB: { sack: r() < 0.7, timestamps: r() < 0.7, ackBatch: true, rcvBufMax: 8192 + Math.floor(r() * 300000) },
        aToB: 256 * 1024 + Math.floor(r() * 256 * 1024),
        bToA: 16 * 1024,
        readProb: 0.3 + r() * 0.7,
        issA: Math.floor(r() * 2 ** 32),
        issB: (0xffffffff - Math.floor(r() * 5000)) >>> 0,
      };
      const { a, b, stats } = run(sc, cc);
      expectInvariants(stats);
      expect([seed, b.received, a.received]).toEqual([seed, sc.aToB, sc.bToA]);
      expect([seed, a.resets.length + b.resets.length, a.closed, b.closed]).toEqual([seed, 0, 1, 1]);
    }
  });

  it('small and shrinking windows with RTOs, over many seeds (tiny buffers, a squeezed budget, a window-retracting middlebox)', () => {
    const outcome = { complete: 0, reset: 0, withRto: 0, rtos: 0, budgetLimited: 0, shrunk: 0 };
    for (let seed = 20; seed < 60; seed++) {
      const r = prng(seed);
      const side = (): Partial<TcpConfig> => ({
        sack: r() < 0.7,
        timestamps: r() < 0.7,
        windowScaling: r() < 0.7,
        rcvBufMax: 500 + Math.floor(r() * 16000),
        sndBufMax: 2000 + Math.floor(r() * 20000),
        ackDelay: r() < 0.5 ? 0 : 40,
      });
      const sc: Scenario = {
        name: `seed ${seed}`,
        seed,
        link: { loss: 0.02 + r() * 0.1, reorder: r() * 0.15, delay: 0.2 + r() * 2, jitter: r() * 3, dup: r() * 0.02 },
        cfgA: side(),
        cfgB: side(),
        aToB: 48 * 1024 + Math.floor(r() * 64 * 1024),
        bToA: 48 * 1024 + Math.floor(r() * 64 * 1024),
        readProb: 0.1 + r() * 0.6,
        issA: Math.floor(r() * 2 ** 32),
        issB: (0xffffffff - Math.floor(r() * 5000)) >>> 0,
        ...(r() < 0.5 ? { budget: 16 * 1024 + Math.floor(r() * 48 * 1024) } : {}),
        ...(r() < 0.5 ? { shrink: 0.1 } : {}),
      };
      const { a, b, stats } = run(sc, cc);
      expectInvariants(stats);
      const rtos = a.conn.nRto + b.conn.nRto;
      outcome.rtos += rtos;
      if (rtos > 0) outcome.withRto++;
      outcome.budgetLimited += stats.budgetLimited;
      if (sc.shrink) outcome.shrunk++;
      if (a.resets.length + b.resets.length > 0) {
        // a reset is an outcome only if it reaches both sides, and what arrived is a correct prefix (App.read checks)
        expect([seed, a.resets.length > 0, b.resets.length > 0]).toEqual([seed, true, true]);
        outcome.reset++;
      } else {
        expect([seed, b.received, a.received]).toEqual([seed, sc.aToB, sc.bToA]);
        expect([seed, a.closed, b.closed]).toEqual([seed, 1, 1]);
        outcome.complete++;
      }
    }
    console.log('small/shrinking windows:', outcome);
    // the sweep does exercise what it is for
    expect(outcome.withRto).toBeGreaterThanOrEqual(15);
    expect(outcome.budgetLimited).toBeGreaterThan(0);
    expect(outcome.shrunk).toBeGreaterThanOrEqual(10);
    expect(outcome.complete).toBe(40); // at these loss rates, no reset is expected (seed 46 was an ACK war)
  });
});
