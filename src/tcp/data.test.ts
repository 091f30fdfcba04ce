import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { drain, established, feed, pattern } from '../../test/helpers/tcp-harness.js';

const A = tcp.ACK;
const w = (x: number): number => x >>> 0;

describe('data transfer', () => {
  it('carries data both ways across the 2^32 wrap', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { isn: 0xfffffff0, giss: 0xfffffffa });
    // guest → us: 20 bytes straddling the wrap
    const p = pattern(20);
    feed(conn, { seq: gseq, ack: iss, flags: A | tcp.PSH, payload: p }, 1);
    expect(rec.log).toEqual(['data']);
    expect(conn.rcvNxt).toBe((gseq + 20) >>> 0);
    const ack = rec.one().h;
    expect(ack.ack).toBe((gseq + 20) >>> 0);
    expect(drain(conn, 2)).toEqual(p);
    feed(conn, { seq: (gseq + 20) >>> 0, ack: iss, flags: A, payload: pattern(10, 20) }, 3);
    expect(drain(conn, 3)).toEqual(pattern(10, 20));
    expect(rec.one().h.ack).toBe(w(gseq + 30));
    // us → guest: 5000 bytes straddling the wrap
    const out = pattern(5000);
    expect(conn.write(out, 4)).toBe(5000);
    const segs = rec.take();
    expect(segs.map((s) => s.payload.length)).toEqual([1460, 1460, 1460, 620]);
    expect(segs.map((s) => s.h.seq)).toEqual([iss, iss + 1460, iss + 2920, iss + 4380].map((x) => x >>> 0));
    const got = new Uint8Array(5000);
    let o = 0;
    for (const s of segs) got.set(s.payload, ((o += s.payload.length), o - s.payload.length));
    expect(got).toEqual(out);
    expect(conn.sndNxt >>> 0).toBe((iss + 5000) >>> 0);
    feed(conn, { seq: (gseq + 30) >>> 0, ack: (iss + 5000) >>> 0, flags: A }, 5);
    expect(conn.sndUna >>> 0).toBe((iss + 5000) >>> 0);
    expect(conn.sndBuf.length).toBe(0);
    expect(conn.nextTimeout()).toBe(5 + 1000); // only buffer trim left
  });

  it('delays ACKs: every second segment, or after ackDelay', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 40 });
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(1000) }, 10);
    expect(rec.take()).toEqual([]);
    expect(conn.nextTimeout()).toBe(50);
    feed(conn, { seq: gseq + 1000, ack: iss, flags: A, payload: pattern(1000) }, 20);
    expect(rec.one().h.ack).toBe(w(gseq + 2000));
    feed(conn, { seq: gseq + 2000, ack: iss, flags: A, payload: pattern(10) }, 30);
    expect(rec.take()).toEqual([]);
    conn.onTimer(70);
    expect(rec.one().h.ack).toBe(w(gseq + 2010));
    // data we send piggybacks the pending ACK
    feed(conn, { seq: gseq + 2010, ack: iss, flags: A, payload: pattern(10) }, 80);
    conn.write(pattern(5), 81);
    const s = rec.one();
    expect(s.h.ack).toBe(w(gseq + 2020));
    expect(s.payload.length).toBe(5);
    expect(conn.nextTimeout()).toBeGreaterThan(120); // no delayed ACK pending any more
  });

  it('with ackBatch, acknowledges a batch of segments once, at its end; a lone segment keeps its delayed ACK', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 40, ackBatch: true }, { sack: true });
    // five in-order segments in one batch: no ACK until endBatch, then one for all of them
    for (let i = 0; i < 5; i++) feed(conn, { seq: w(gseq + i * 1000), ack: iss, flags: A, payload: pattern(1000, i * 1000) }, 10);
    expect(rec.take()).toEqual([]);
    expect(conn.nextTimeout()).toBe(50); // the delayed-ACK timer stays armed as a backstop
    conn.endBatch(10);
    expect(rec.one().h.ack).toBe(w(gseq + 5000));
    conn.endBatch(10);
    expect(rec.take()).toEqual([]); // nothing owed any more
    // a lone segment: endBatch leaves it to the delayed-ACK timer
    feed(conn, { seq: w(gseq + 5000), ack: iss, flags: A, payload: pattern(10) }, 20);
    conn.endBatch(20);
    expect(rec.take()).toEqual([]);
    conn.onTimer(60);
    expect(rec.one().h.ack).toBe(w(gseq + 5010));
    // out of order: the duplicate ACK with SACK still goes at once, inside the batch
    feed(conn, { seq: w(gseq + 6010), ack: iss, flags: A, payload: pattern(1000) }, 70);
    const dup = rec.one().h;
    expect([dup.ack, dup.sackCount]).toEqual([w(gseq + 5010), 1]);
    // the hole filled: immediate ACK too
    feed(conn, { seq: w(gseq + 5010), ack: iss, flags: A, payload: pattern(1000) }, 71);
    expect(rec.one().h.ack).toBe(w(gseq + 7010));
    expect(drain(conn, 72).length).toBe(7010);
  });

  it('without ackBatch, acknowledges every second segment inside the batch (endBatch owes nothing then)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 40 });
    for (let i = 0; i < 4; i++) feed(conn, { seq: w(gseq + i * 1000), ack: iss, flags: A, payload: pattern(1000) }, 10);
    expect(rec.take().map((s) => s.h.ack)).toEqual([w(gseq + 2000), w(gseq + 4000)]);
    conn.endBatch(10);
    expect(rec.take()).toEqual([]);
  });

  it('buffers out-of-order segments, SACKs them and delivers when the hole fills', () => {
    const { conn, rec, iss, gseq } = established({}, { sack: true, giss: 0xfffff000 });
    const data = pattern(5000);
    const seg = (from: number, len: number, now: number) =>
      feed(conn, { seq: (gseq + from) >>> 0, ack: iss, flags: A, payload: data.subarray(from, from + len) }, now);
    seg(1000, 1000, 1); // hole 0..1000
    let a = rec.one().h;
    expect(a.ack).toBe(gseq);
    expect([a.sackCount, a.sack[0], a.sack[1]]).toEqual([1, (gseq + 1000) >>> 0, (gseq + 2000) >>> 0]);
    seg(3000, 1000, 2); // second hole 2000..3000
    a = rec.one().h;
    expect(a.sackCount).toBe(2);
    expect(a.sack.slice(0, 4)).toEqual([gseq + 3000, gseq + 4000, gseq + 1000, gseq + 2000].map(w)); // most recent first
    expect(conn.readable).toBe(0);
    expect(rec.log).toEqual([]);
    seg(500, 1000, 3); // overlaps the first hole's end and the first block
    a = rec.one().h;
    expect(a.ack).toBe(gseq);
    seg(0, 500, 4); // fills the first hole: 0..2000 in order
    a = rec.one().h;
    expect(a.ack).toBe((gseq + 2000) >>> 0);
    expect(a.sackCount).toBe(1);
    expect(conn.readable).toBe(2000);
    expect(rec.log).toEqual(['data']);
    seg(2000, 1000, 5);
    expect(rec.one().h.ack).toBe((gseq + 4000) >>> 0); // filled hole → immediate ACK, no SACK left
    seg(4000, 1000, 6);
    expect(drain(conn, 7)).toEqual(data);
    expect(conn.rcvBuf.ooo.count).toBe(0);
  });

  it('acks duplicates and segments left of the window, trims partial overlaps', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 });
    const data = pattern(300);
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: data.subarray(0, 200) }, 1);
    rec.take();
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: data.subarray(0, 100) }, 2);
    expect(rec.one().h.ack).toBe(w(gseq + 200));
    feed(conn, { seq: gseq + 100, ack: iss, flags: A, payload: data.subarray(100, 300) }, 3);
    expect(rec.one().h.ack).toBe(w(gseq + 300));
    expect(drain(conn, 4)).toEqual(data);
  });
});

describe('flow control', () => {
  it('advertises free receive space, shrinks as the app does not read, reopens with a window update', () => {
    const { conn, rec, iss, gseq } = established({ rcvBufMax: 8192, ackDelay: 0, windowScaling: false });
    let seqNo = gseq;
    const wins: number[] = [];
    for (let i = 0; i < 6; i++) {
      feed(conn, { seq: seqNo, ack: iss, flags: A, payload: pattern(1460) }, i);
      seqNo += 1460;
      wins.push(rec.one().h.window);
    }
    // free: 8192-1460*k; the right edge never moves back
    expect(wins).toEqual([6732, 5272, 3812, 2352, 892, 0].map((x) => x));
    expect(conn.readable).toBe(8760 > 8192 ? 8192 : 8760);
    // 6th segment only partly fit (892 bytes); the rest was trimmed
    expect(conn.rcvNxt).toBe(w(gseq + 8192));
    // zero window: a data segment is not accepted, but answered
    feed(conn, { seq: gseq + 8192, ack: iss, flags: A, payload: pattern(100) }, 10);
    const z = rec.one().h;
    expect([z.ack, z.window]).toEqual([w(gseq + 8192), 0]);
    // reading a little does not reopen (SWS avoidance: < 1 MSS)
    conn.consume(1000, 11);
    expect(rec.take()).toEqual([]);
    // reading a full MSS sends a window update
    conn.consume(1000, 12);
    const u = rec.one().h;
    expect(u.window).toBe(2000);
    expect(u.ack).toBe(w(gseq + 8192));
  });

  it('lets a window update wait for the response while the peer has 32 KiB of window left and a request is unacknowledged, sends it at once otherwise', () => {
    // The SYN-ACK's window is unscaled (64 KiB); the first read opens the scaled one.
    const { conn, rec, iss, gseq } = established({ rcvBufMax: 1024 * 1024 }, { wscale: 7 });
    feed(conn, { seq: gseq, ack: iss, flags: A | tcp.PSH, payload: pattern(1) }, 1);
    expect(rec.take()).toEqual([]); // a delayed ACK is owed
    drain(conn, 2); // the host took the byte: the window could grow from 64 KiB to 1 MiB
    expect(rec.take()).toEqual([]); // ... but 64 KiB is still open: no segment of its own
    conn.write(pattern(1), 3); // the response carries the ACK and the new window
    const r = rec.one().h;
    expect([r.ack, r.window << conn.rcvShift]).toEqual([w(gseq + 1), 1024 * 1024]);
    expect(conn.nextTimeout()).not.toBe(3 + 40); // nothing owed any more

    // Bulk data: a full segment unacknowledged, read at once — the update (and its ACK) goes now,
    // or a sender clocked by our ACKs would wait for the delayed-ACK timer.
    const bulk = established({ rcvBufMax: 1024 * 1024 }, { wscale: 7 });
    feed(bulk.conn, { seq: bulk.gseq, ack: bulk.iss, flags: A, payload: pattern(1460) }, 1);
    expect(bulk.rec.take()).toEqual([]);
    drain(bulk.conn, 2);
    expect(bulk.rec.one().h.ack).toBe(w(bulk.gseq + 1460));

    // The same at MTU 65520, where the 64 KiB the SYN-ACK offered is less than two segments.
    const jumbo = established({ mtu: 65520, rcvBufMax: 4 * 1024 * 1024 }, { wscale: 7, mss: 65480 });
    feed(jumbo.conn, { seq: jumbo.gseq, ack: jumbo.iss, flags: A | tcp.PSH, payload: pattern(1) }, 1);
    drain(jumbo.conn, 2);
    expect(jumbo.rec.take()).toEqual([]);

    // Nearly closed window (under 32 KiB left): the update goes at once.
    const small = established({ rcvBufMax: 4096, windowScaling: false });
    feed(small.conn, { seq: small.gseq, ack: small.iss, flags: A, payload: pattern(1460) }, 1);
    feed(small.conn, { seq: small.gseq + 1460, ack: small.iss, flags: A, payload: pattern(1460) }, 2);
    small.rec.take();
    drain(small.conn, 3);
    const u = small.rec.one().h;
    expect([u.ack, u.window]).toEqual([w(small.gseq + 2920), 4096]);
  });

  it('respects the peer window, stops at zero, probes with backoff and resumes', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 3000 });
    expect(conn.write(pattern(10000), 0)).toBe(10000);
    let segs = rec.take();
    expect(segs.map((s) => s.payload.length)).toEqual([1460, 1460]); // 3000 window; 80 left < MSS is SWS
    feed(conn, { seq: gseq, ack: iss + 2920, flags: A, window: 0 }, 10);
    expect(rec.take()).toEqual([]);
    expect(conn.sndWnd).toBe(0);
    // persist timer: first probe after RTO (1 s initial, srtt now ~10 ms → 200 ms min)
    const t1 = conn.nextTimeout();
    conn.onTimer(t1);
    const probe = rec.one().h;
    expect(probe.seq).toBe((iss + 2920 - 1) >>> 0);
    expect(probe.payloadLength).toBe(0);
    const t2 = conn.nextTimeout();
    feed(conn, { seq: gseq, ack: iss + 2920, flags: A, window: 0 }, t1 + 1);
    conn.onTimer(t2);
    rec.one();
    const t3 = conn.nextTimeout();
    expect(t3 - t2).toBe(2 * (t2 - t1)); // exponential backoff
    expect(conn.state).toBe(C.ESTABLISHED);
    // window reopens: data flows again
    feed(conn, { seq: gseq, ack: iss + 2920, flags: A, window: 4000 }, t3 - 5);
    segs = rec.take();
    expect(segs.length).toBeGreaterThan(0);
    expect(segs[0]!.h.seq).toBe(w(iss + 2920));
    expect(conn.nextTimeout()).toBeLessThan(t3 + 1000); // RTO, not persist
  });

  it('gives up after too many unanswered zero-window probes', () => {
    const { conn, rec, iss, gseq } = established({ maxRetries: 3 }, { window: 0 });
    conn.write(pattern(100), 0);
    expect(rec.take()).toEqual([]);
    for (let i = 0; i < 4; i++) conn.onTimer(conn.nextTimeout());
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
    void iss;
    void gseq;
  });

  it('uses window scaling for large windows', () => {
    const { conn, rec, iss, gseq } = established({ rcvBufMax: 4 * 1024 * 1024, sndBufMax: 1 << 20, ackDelay: 0 }, { wscale: 7, window: 8192 });
    // the guest offers 8192 << 7 = 1 MiB
    expect(conn.sndWnd).toBe(8192 * 128);
    expect(conn.rcvShift).toBe(7);
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(1000) }, 1);
    const a = rec.one().h;
    expect(a.window).toBe(Math.floor((4 * 1024 * 1024 - 1000) / 128));
    // send more than 64 KiB in one flight once cwnd allows it
    conn.cwnd = 1 << 20;
    expect(conn.write(pattern(500000), 2)).toBe(500000);
    const segs = rec.take();
    expect(segs.reduce((n, s) => n + s.payload.length, 0)).toBe(500000);
  });

  it('applies backpressure: write takes at most the free space, onWritable when drained below half', () => {
    const { conn, rec, iss, gseq } = established({ sndBufMax: 10000 }, { window: 65535 });
    expect(conn.write(pattern(8000), 0)).toBe(8000);
    expect(conn.write(pattern(5000), 0)).toBe(2000);
    expect(conn.writable).toBe(0);
    expect(conn.write(pattern(1), 0)).toBe(0);
    rec.take();
    feed(conn, { seq: gseq, ack: iss + 4000, flags: A }, 5);
    expect(rec.log).toEqual([]); // 6000 still held > half
    feed(conn, { seq: gseq, ack: iss + 6000, flags: A }, 6);
    expect(rec.log).toEqual(['writable']);
    feed(conn, { seq: gseq, ack: iss + 8000, flags: A }, 7);
    expect(rec.log).toEqual(['writable']); // once
    expect(conn.writable).toBe(8000);
  });

  it('does not send a tiny window-limited segment, the override timer does', () => {
    const { conn, rec, iss, gseq } = established({}, { window: 2000 });
    conn.write(pattern(3000), 0);
    expect(rec.take().map((s) => s.payload.length)).toEqual([1460]);
    feed(conn, { seq: gseq, ack: iss + 1460, flags: A, window: 600 }, 5);
    // 600 usable, 1540 queued, max window 65535: too small to send now
    expect(rec.take()).toEqual([]);
    conn.onTimer(conn.nextTimeout());
    expect(rec.one().payload.length).toBe(600);
  });

  it('frees buffer storage when idle and allocates lazily', () => {
    const { conn, iss, gseq } = established({ ackDelay: 0 });
    expect(conn.sndBuf.capacity + conn.rcvBuf.capacity).toBe(0);
    conn.write(pattern(100), 0);
    feed(conn, { seq: gseq, ack: iss + 100, flags: A, payload: pattern(10) }, 1);
    expect(conn.sndBuf.capacity).toBe(4096);
    expect(conn.rcvBuf.capacity).toBe(4096);
    drain(conn, 2);
    conn.onTimer(conn.nextTimeout());
    expect(conn.sndBuf.capacity + conn.rcvBuf.capacity).toBe(0);
  });
});

describe('timestamps and SACK negotiation effects', () => {
  it('stamps every segment, echoes TS.Recent, and only updates it for in-sequence segments', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { ts: true, sack: true });
    feed(conn, { seq: gseq, ack: iss, flags: A, payload: pattern(10), ts: [500, 0] }, 10);
    let a = rec.one().h;
    expect(a.hasTimestamps).toBe(true);
    expect(a.tsEcr).toBe(500);
    // an out-of-order segment (SEQ > Last.ACK.sent) must not update TS.Recent (RFC 7323 §4.3)
    feed(conn, { seq: gseq + 1000, ack: iss, flags: A, payload: pattern(10), ts: [900, 0] }, 11);
    a = rec.one().h;
    expect(a.tsEcr).toBe(500);
    expect(a.sackCount).toBe(1);
    // the next in-order one does
    feed(conn, { seq: gseq + 10, ack: iss, flags: A, payload: pattern(10), ts: [600, 0] }, 12);
    expect(rec.one().h.tsEcr).toBe(600);
    // our data segments carry timestamps and leave room for them: payload ≤ MSS - 12
    conn.write(pattern(3000), 13);
    const segs = rec.take();
    expect(segs.every((s) => s.h.hasTimestamps)).toBe(true);
    // with SACK blocks pending (we still hold out-of-order data) the payload shrinks further
    expect(segs[0]!.h.sackCount).toBe(1);
    expect(segs[0]!.payload.length).toBe(1460 - 12 - 12);
  });

  it('sends no SACK blocks when SACK was not negotiated', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { sack: false });
    feed(conn, { seq: gseq + 1000, ack: iss, flags: A, payload: pattern(10) }, 1);
    const a = rec.one().h;
    expect(a.ack).toBe(gseq);
    expect(a.sackCount).toBe(0);
    expect(conn.rcvBuf.ooo.count).toBe(1); // still buffered
  });

  it('a FIN queued behind window-limited data rides on the last data segment', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0 }, { window: 1460 });
    conn.write(pattern(2000), 0);
    conn.shutdownWrite(0);
    expect(rec.take().map((s) => s.payload.length)).toEqual([1460]);
    feed(conn, { seq: gseq, ack: iss + 1460, flags: A, window: 4000 }, 5);
    const last = rec.one().h;
    expect(last.flags).toBe(tcp.ACK | tcp.PSH | tcp.FIN);
    expect(last.payloadLength).toBe(540);
    expect(conn.state).toBe(C.FIN_WAIT_1);
  });
});

describe('ACK acceptability at the window edge', () => {
  it('takes the ACK of a pure ACK sitting exactly at RCV.NXT + RCV.WND (peer filled our window, a segment was lost)', () => {
    const { conn, rec, iss, gseq } = established({ ackDelay: 0, rcvBufMax: 4096, windowScaling: false }, {});
    // We send data; the guest's data fills our receive window except one lost segment at the front.
    conn.write(pattern(1000), 1);
    rec.take();
    const wnd = conn.rcvBuf.free;
    feed(conn, { seq: w(gseq + 1000), ack: iss, flags: A, payload: pattern(wnd - 1000, 1000) }, 2); // out of order, hole at the front
    rec.take();
    // The guest's pure ACK for our 1000 bytes carries SEG.SEQ = its SND.NXT = our right edge.
    feed(conn, { seq: w(gseq + wnd), ack: w(iss + 1000), flags: A }, 3);
    expect(conn.sndUna >>> 0).toBe(w(iss + 1000));
  });
});
