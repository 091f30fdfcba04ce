/**
 * The TCP buffer budget (budget.ts) as the connection applies it: smaller
 * windows and a smaller `writable` when it is spent, never a window taken
 * back, never acknowledged data dropped, and exact accounting.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { TcpBudget } from './budget.js';
import * as C from './conn.js';
import { RecvBuffer } from './recv-buffer.js';
import { SendBuffer } from './send-buffer.js';
import { Recorder, craft, feed, pattern, prng, type Seg } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const KiB = 1024;
const w = (x: number): number => x >>> 0;

/** An established passive connection of guest `owner` (window scaling on: shift 7 for 1 MiB). */
function conn(cfg: C.TcpConfig, owner: string, port: number) {
  const rec = new Recorder();
  const c = new C.TcpConn(cfg, rec, rec, 80, port, owner);
  const giss = 1000;
  const syn = craft({ seq: giss, flags: tcp.SYN, mss: 1460, wscale: 7, sackPermitted: true, window: 65535 });
  c.openPassive(syn.h, 50000, 0);
  c.accept(0);
  const synAck = rec.one();
  feed(c, { seq: giss + 1, ack: 50001, flags: A, window: 65535 }, 1);
  expect(c.state).toBe(C.ESTABLISHED);
  return { c, rec, synAck, gseq: giss + 1, iss: 50001 };
}

describe('budget: receive side', () => {
  it('advertises what fits, never moves the right edge back, keeps what it acknowledged', () => {
    const budget = new TcpBudget(16 * 1024 * KiB, 64 * KiB);
    const cfg = C.tcpConfig({ rcvBufMax: 1024 * KiB, budget, ackDelay: 0 });
    const a = conn(cfg, 'g', 1);
    expect(a.synAck.h.window).toBe(65535); // the budget is free: a full SYN-ACK window
    // another connection of the same guest takes the share: 60 KiB the host does not read
    const b = conn(cfg, 'g', 2);
    for (let off = 0; off < 60 * KiB; off += 1460) feed(b.c, { seq: b.gseq + off, ack: b.iss, flags: A, payload: pattern(Math.min(1460, 60 * KiB - off)) }, 2);
    expect(b.c.readable).toBe(60 * KiB);
    expect(budget.used).toBeGreaterThanOrEqual(60 * KiB);
    // a's edge from its SYN-ACK stands; a sends data inside it: what the budget holds is stored and ACKed, the rest not
    const edges: number[] = [];
    a.rec.onSeg = (_c, s: Seg) => edges.push(w(s.h.ack + (s.h.window << a.c.rcvShift)));
    feed(a.c, { seq: a.gseq, ack: a.iss, flags: A, payload: pattern(12000) }, 3);
    expect(a.c.readable).toBeLessThan(12000);
    expect(a.c.readable).toBeGreaterThanOrEqual(4 * KiB); // the floor always holds
    expect(budget.counters.inOrderDropped).toBe(12000 - a.c.readable);
    const ack = a.rec.segs.at(-1)!.h;
    expect(ack.ack).toBe(w(a.gseq + a.c.readable)); // told at once: the peer resends the rest
    expect(edges.at(-1)).toBeGreaterThanOrEqual(w(a.gseq + 65535)); // the SYN-ACK's right edge stands
    // b's host reads everything and b's buffer is trimmed: a's window opens again
    const sink = new Uint8Array(60 * KiB);
    b.c.read(sink, 0, sink.length, 4);
    expect(sink).toEqual(Uint8Array.from({ length: 60 * KiB }, (_, i) => pattern(1460, 0)[i % 1460]!));
    b.c.onTimer(b.c.nextTimeout()); // bufferLinger: b's ring goes
    const got = new Uint8Array(a.c.readable);
    a.c.read(got, 0, got.length, 5);
    expect(got).toEqual(pattern(got.length));
    const before = edges.length;
    feed(a.c, { seq: a.gseq + got.length, ack: a.iss, flags: A, payload: pattern(12000 - got.length, got.length) }, 6);
    expect(a.c.readable).toBe(12000 - got.length);
    for (let i = 1; i < edges.length; i++) expect(((edges[i]! - edges[i - 1]!) | 0) >= 0).toBe(true);
    expect(edges.length).toBeGreaterThan(before);
  });

  it('keeps out-of-order data that a filled hole makes in order, whatever the budget', () => {
    const budget = new TcpBudget(1024 * KiB, 40 * KiB);
    const rb = new RecvBuffer(1024 * KiB, budget.acquire('g'));
    const d = pattern(40 * KiB);
    for (let off = 1000; off < 28 * KiB; off += 1000) expect(rb.write(off, d, off, 1000)).toBe(0); // 27 KiB out of order
    const other = budget.acquire('g');
    other.charge(other.available()); // the share is spent
    expect(rb.write(0, d, 0, 1000)).toBe(29000); // the hole is filled: everything comes in order
    const out = new Uint8Array(29000);
    rb.peek(out, 0, out.length);
    expect(out).toEqual(d.subarray(0, 29000));
  });
});

describe('budget: send side', () => {
  it('writable is what the budget allows; onWritable fires at half of that; the host is paused, not the buffer grown', () => {
    const budget = new TcpBudget(16 * 1024 * KiB, 64 * KiB);
    const cfg = C.tcpConfig({ sndBufMax: 1024 * KiB, budget, ackDelay: 0 });
    const a = conn(cfg, 'g', 1);
    expect(a.c.writable).toBe(64 * KiB + 4 * KiB); // its floor and the guest's whole share
    const other = budget.acquire('g');
    other.charge(other.available() - 12 * KiB); // another connection of the guest holds the rest
    expect(a.c.writable).toBe(16 * KiB);
    expect(a.c.write(pattern(40 * KiB), 2)).toBe(16 * KiB);
    expect(a.c.sndBuf.capacity).toBe(16 * KiB);
    expect(a.c.writable).toBe(0);
    a.rec.take();
    a.rec.log.length = 0;
    // the guest acknowledges half: onWritable (the relay resumes the host socket)
    feed(a.c, { seq: a.gseq, ack: a.iss + 8 * KiB, flags: A, window: 65535 }, 3);
    expect(a.rec.log).toContain('writable');
    expect(a.c.writable).toBe(8 * KiB);
  });
});

describe('budget: accounting', () => {
  it('charges exactly the storage buffers hold, under random traffic with a tight budget', () => {
    const r = prng(9);
    const budget = new TcpBudget(1024 * KiB, 96 * KiB);
    const acct = budget.acquire('g');
    const rbs = [0, 1, 2].map(() => new RecvBuffer(64 * KiB, acct));
    const sbs = [0, 1, 2].map(() => new SendBuffer(64 * KiB, acct));
    const total = 300_000;
    const d = pattern(total);
    const nxt = [0, 0, 0];
    const read = [0, 0, 0];
    const out = new Uint8Array(64 * KiB);
    for (let step = 0; step < 20000; step++) {
      const i = Math.floor(r() * 3);
      const b = rbs[i]!;
      const rel = r() < 0.5 ? 0 : Math.floor(r() * Math.min(b.free, 40000));
      const len = Math.min(1 + Math.floor(r() * 3000), b.free - rel, total - nxt[i]! - rel);
      if (len > 0) {
        const adv = b.write(rel, d, nxt[i]! + rel, len);
        if (adv > 0) nxt[i]! += adv;
      }
      if (r() < 0.3) {
        const n = b.peek(out, 0, Math.floor(r() * 30000));
        expect(Buffer.from(out.buffer, 0, n).equals(d.subarray(read[i]!, read[i]! + n))).toBe(true);
        read[i]! += b.consume(n);
      }
      if (r() < 0.05) b.release();
      const s = sbs[i]!;
      if (r() < 0.3) s.write(d, 0, Math.floor(r() * 20000));
      if (r() < 0.3) s.drop(Math.floor(r() * 20000));
      if (r() < 0.05) s.release();
      expect(acct.used).toBe(rbs.reduce((n, x) => n + x.capacity, 0) + sbs.reduce((n, x) => n + x.capacity, 0));
      // never beyond the share, but for the floors (a 4 KiB ring each) and holes being filled
      expect(acct.used).toBeLessThanOrEqual(96 * KiB + 6 * 4 * KiB + 3 * 64 * KiB);
    }
    for (const b of rbs) b.dispose();
    for (const s of sbs) {
      s.drop(s.length);
      s.release();
    }
    expect(acct.used).toBe(0);
  });
});
