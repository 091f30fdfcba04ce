/**
 * Idle connections must be cheap: 10,000 established, idle connections
 * (after some traffic, buffers released) must fit well under 200 MB.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { TcpBudget } from './budget.js';
import { Link, Recorder } from '../../test/helpers/tcp-harness.js';
import { ESTABLISHED, FIN_WAIT_2, TcpConn, tcpConfig, type TcpEvents, type TcpOutput } from './conn.js';

const sink: TcpOutput & TcpEvents = {
  segment() {},
  linkBlocked: () => false,
  onEstablished() {},
  onData() {},
  onRemoteFin() {},
  onWritable() {},
  onReset() {},
  onClosed() {},
  onProbe() {},
};

describe('memory', () => {
  it('10,000 idle connections stay far below 200 MB', () => {
    const cfg = tcpConfig();
    const syn = tcp.blank();
    syn.flags = tcp.SYN;
    syn.mss = 1460;
    syn.wscale = 7;
    syn.sackPermitted = true;
    syn.hasTimestamps = true;
    syn.window = 65535;
    const ack = tcp.blank();
    ack.flags = tcp.ACK;
    ack.window = 1000;
    ack.hasTimestamps = true;
    const bytes = new Uint8Array(2000);
    const data = new Uint8Array(1000);
    const before = process.memoryUsage().heapUsed;
    const conns: TcpConn[] = [];
    for (let i = 0; i < 10000; i++) {
      const c = new TcpConn(cfg, sink, sink, 80, 1024 + i);
      syn.seq = i * 1000;
      c.openPassive(syn, i * 7777, 0);
      c.accept(0);
      ack.seq = (syn.seq + 1) >>> 0;
      ack.ack = (i * 7777 + 1) >>> 0;
      ack.payloadOffset = 0;
      ack.payloadLength = 100;
      c.onSegment(ack, bytes, 1);
      c.write(data, 2);
      ack.ack = (i * 7777 + 1001) >>> 0;
      ack.seq = (syn.seq + 101) >>> 0;
      ack.payloadLength = 0;
      c.onSegment(ack, bytes, 3);
      c.consume(100, 4);
      c.onTimer(c.nextTimeout()); // buffer release after bufferLinger (and the delayed ACK)
      if (c.nextTimeout() < 5000) c.onTimer(c.nextTimeout());
      conns.push(c);
    }
    const after = process.memoryUsage().heapUsed;
    const perConn = (after - before) / conns.length;
    expect(conns.every((c) => c.state === 3 && c.sndBuf.capacity === 0 && c.rcvBuf.capacity === 0)).toBe(true);
    console.log(`~${Math.round(perConn)} bytes per idle connection`);
    expect(after - before).toBeLessThan(50 * 1024 * 1024);
  });
});

describe('memory a guest cannot grow', () => {
  const MiB = 1024 * 1024;
  /** An established passive connection of guest `owner`, its guest ISN at `gseq - 1`. */
  function open(cfg: ReturnType<typeof tcpConfig>, i: number, owner: unknown, out: TcpOutput = sink): { c: TcpConn; gseq: number; iss: number } {
    const c = new TcpConn(cfg, out, sink, 80, 1024 + (i % 60000), owner);
    const syn = tcp.blank();
    syn.flags = tcp.SYN;
    syn.mss = 1460;
    syn.wscale = 7;
    syn.sackPermitted = true;
    syn.window = 65535;
    syn.seq = i * 1000;
    c.openPassive(syn, i * 7777, 0);
    c.accept(0);
    const ack = tcp.blank();
    ack.flags = tcp.ACK;
    ack.window = 1000;
    ack.seq = (syn.seq + 1) >>> 0;
    ack.ack = (i * 7777 + 1) >>> 0;
    c.onSegment(ack, new Uint8Array(0), 1);
    expect(c.state).toBe(3);
    return { c, gseq: ack.seq, iss: ack.ack };
  }
  /** Feeds `payload` at `rel` bytes past the guest's first data byte. */
  function data(c: TcpConn, gseq: number, iss: number, rel: number, payload: Uint8Array, now: number): void {
    const h = tcp.blank();
    h.flags = tcp.ACK;
    h.window = 1000;
    h.seq = (gseq + rel) >>> 0;
    h.ack = iss;
    h.payloadOffset = 0;
    h.payloadLength = payload.length;
    c.onSegment(h, payload, now);
  }
  /** The SACK blocks of the last segment a connection sent. */
  const lastSack: { count: number } = { count: 0 };
  const recording: TcpOutput = { ...sink, segment: (_c, h) => void (lastSack.count = h.sackCount) };

  it('4096 connections each holding one out-of-order byte at the far end of a 1 MiB window allocate pages, not windows', () => {
    const cfg = tcpConfig({ rcvBufMax: MiB, sndBufMax: MiB });
    let total = 0;
    for (let i = 0; i < 4096; i++) {
      const { c, gseq, iss } = open(cfg, i, 'guest', recording);
      data(c, gseq, iss, 0, new Uint8Array([1]), 2); // in order: the receive ring exists
      data(c, gseq, iss, MiB - 3, new Uint8Array([2]), 3); // the far end of the window
      expect(lastSack.count).toBe(1); // kept (and SACKed)
      expect(c.rcvBuf.capacity).toBe(4096 + 4096 + 258 * 8); // a 4 KiB ring, one 4 KiB page and its slot array
      total += c.rcvBuf.capacity;
    }
    expect(total).toBeLessThanOrEqual(4096 * 10256); // 40 MiB, not 4 GiB
  });

  it('a connection holding out-of-order bytes frees its idle ring (only the pages stay)', () => {
    const cfg = tcpConfig({ rcvBufMax: MiB });
    const { c, gseq, iss } = open(cfg, 1, 'guest');
    data(c, gseq, iss, 0, new Uint8Array(3000), 2);
    data(c, gseq, iss, 100_000, new Uint8Array([2]), 3);
    expect(c.rcvBuf.capacity).toBe(4096 + 4096 + 258 * 8);
    c.consume(3000, 4); // the host took the in-order bytes
    for (let t = c.nextTimeout(); t <= 4 + cfg.bufferLinger; t = c.nextTimeout()) c.onTimer(t);
    expect(c.rcvBuf.capacity).toBe(4096 + 258 * 8); // the page with the far byte (and its slot array)
    expect(c.rcvBuf.ooo.count).toBe(1);
  });

  it('the budget caps the total; its owner gets floor windows, other guests are not squeezed; dispose gives it all back', () => {
    const budget = new TcpBudget(48 * MiB, 16 * MiB);
    const cfg = tcpConfig({ rcvBufMax: MiB, sndBufMax: MiB, budget });
    const conns: TcpConn[] = [];
    let kept = 0;
    for (let i = 0; i < 4096; i++) {
      const { c, gseq, iss } = open(cfg, i, 'greedy', recording);
      data(c, gseq, iss, 0, new Uint8Array(3000), 2); // 3000 bytes held unread (the host does not read)
      lastSack.count = 0;
      data(c, gseq, iss, 500_000, new Uint8Array([2]), 3);
      if (lastSack.count > 0) kept++;
      conns.push(c);
    }
    // 4096 × (4 KiB ring floor + 4 KiB page + 2 KiB slots) would be 40 MiB: the share stops the pages at 16 MiB
    expect(budget.used).toBeLessThanOrEqual(16 * MiB + 4096 * 4096);
    expect(kept).toBeLessThan(4096);
    expect(budget.counters.oooDropped).toBe(4096 - kept);
    // the greedy guest's next connection advertises what its floor holds, no more
    const next = open(cfg, 5000, 'greedy');
    expect(next.c.rcvWnd).toBeLessThanOrEqual(4096);
    expect(next.c.writable).toBeLessThanOrEqual(4096);
    // another guest still gets full windows and buffers
    const other = open(cfg, 6000, 'other');
    expect(other.c.rcvWnd).toBe(65535); // the SYN-ACK window (unscaled)
    expect(other.c.writable).toBe(MiB);
    for (const c of [...conns, next.c, other.c]) c.dispose();
    expect(budget.used).toBe(0);
    expect(budget.guests).toBe(0);
  });
});

describe('state made on demand goes when the connection idles', () => {
  it('a lossy transfer makes the scoreboard, RACK, PRR, out-of-order pages and both rings; once idle for bufferLinger, all of it is released', () => {
    const cfg = tcpConfig();
    const ra = new Recorder();
    const rb = new Recorder();
    const guest = new TcpConn(cfg, ra, ra, 40000, 80);
    const gw = new TcpConn(cfg, rb, rb, 80, 40000);
    guest.connect(1000, 0);
    gw.openPassive(ra.take()[0]!.h, 0x9000_0000, 0);
    const link = new Link({ conn: guest, rec: ra }, { conn: gw, rec: rb }, { loss: 0.05, reorder: 0.05, delay: 5, jitter: 2, dup: 0 }, 11);
    gw.accept(0);
    const total = 300_000;
    const chunk = new Uint8Array(16_384).fill(7);
    const sink = new Uint8Array(65_536);
    let sent = 0;
    let got = 0;
    const pump = (): void => {
      if (sent < total) sent += gw.write(chunk.subarray(0, Math.min(chunk.length, total - sent)), link.now);
      got += guest.read(sink, 0, sink.length, link.now);
    };
    let sackState = false;
    let oooPages = false;
    const done = link.run(
      () => got === total && gw.sndBuf.length === 0,
      120_000,
      () => {
        pump();
        sackState ||= gw.rec.allocated;
        // out-of-order bytes held in pages: capacity beyond the ring
        oooPages ||= guest.rcvBuf.ooo.count > 0;
      },
    );
    expect(done).toBe(true);
    expect(gw.nRetransmit).toBeGreaterThan(0); // the link did lose segments
    expect(sackState && oooPages).toBe(true);
    expect(gw.sndBuf.capacity).toBeGreaterThan(0);
    // idle: nothing in flight, nothing unread; within bufferLinger (not at the idle timeout) it is all gone
    const idleFrom = link.now;
    const released = () => !gw.rec.allocated && gw.sndBuf.capacity + gw.rcvBuf.capacity + guest.sndBuf.capacity + guest.rcvBuf.capacity === 0;
    expect(released()).toBe(false);
    expect(link.run(released, idleFrom + cfg.bufferLinger + 1000)).toBe(true);
    expect(link.now).toBeLessThanOrEqual(idleFrom + cfg.bufferLinger + 1000);
    expect([guest.state, gw.state]).toEqual([ESTABLISHED, ESTABLISHED]);
    expect(guest.rcvBuf.ooo.count).toBe(0);
    // and it comes back on demand: the connection carries data again, with loss again
    sent = got = 0;
    pump();
    expect(link.run(() => got === total && gw.sndBuf.length === 0, link.now + 120_000, pump)).toBe(true);
    expect(gw.sndBuf.capacity).toBeGreaterThan(0);
    expect(link.run(released, link.now + cfg.bufferLinger + 1000)).toBe(true);
    // our FIN alone (no buffer storage) is a scoreboard record too: once acknowledged, the
    // half-closed connection (the guest may go on sending for hours) releases it as well
    gw.shutdownWrite(link.now);
    expect(gw.rec.allocated).toBe(true);
    const finFrom = link.now;
    expect(link.run(() => guest.remoteFinished && gw.state === FIN_WAIT_2 && released(), finFrom + 60_000)).toBe(true);
    expect(link.now).toBeLessThanOrEqual(finFrom + 30_000); // not the idle timeout
  });
});
