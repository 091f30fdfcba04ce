/**
 * Idle connections must be cheap: 10,000 established, idle connections
 * (after some traffic, buffers released) must fit well under 200 MB.
 */
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { TcpConn, tcpConfig, type TcpEvents, type TcpOutput } from './conn.js';

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
