import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import * as C from './conn.js';
import { craft, feed, make, LOCAL_PORT, REMOTE_PORT } from '../../test/helpers/tcp-harness.js';

const ISN = 0x10000000;
const GISN = 0x20000000;

describe('passive open (guest connects out)', () => {
  it('waits for accept, then SYN-ACK with MSS/WS/SACK/TS, then ESTABLISHED on ACK', () => {
    const { conn, rec } = make({ rcvBufMax: 4 * 1024 * 1024 });
    const syn = craft({ seq: GISN, flags: tcp.SYN, window: 64240, mss: 1460, wscale: 7, sackPermitted: true, ts: [1000, 0] });
    conn.openPassive(syn.h, ISN, 0);
    expect(conn.state).toBe(C.SYN_RECEIVED);
    expect(rec.take()).toEqual([]); // nothing until the host dial succeeds
    // a retransmitted SYN while dialing is ignored
    conn.onSegment(syn.h, syn.bytes, 500);
    expect(rec.take()).toEqual([]);
    conn.accept(700);
    const sa = rec.one().h;
    expect(sa.flags).toBe(tcp.SYN | tcp.ACK);
    expect(sa.srcPort).toBe(LOCAL_PORT);
    expect(sa.dstPort).toBe(REMOTE_PORT);
    expect(sa.seq).toBe(ISN);
    expect(sa.ack).toBe(GISN + 1);
    expect(sa.mss).toBe(1460);
    expect(sa.wscale).toBe(7); // 4 MiB buffer
    expect(sa.sackPermitted).toBe(true);
    expect(sa.hasTimestamps).toBe(true);
    expect(sa.tsEcr).toBe(1000);
    expect(sa.window).toBe(65535);
    expect(conn.sackOk && conn.tsOk).toBe(true);
    expect(conn.sndShift).toBe(7);
    expect(conn.rcvShift).toBe(7);
    feed(conn, { seq: GISN + 1, ack: ISN + 1, flags: tcp.ACK, window: 502, ts: [1010, sa.tsVal] }, 710);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.log).toEqual(['established']);
    expect(conn.sndWnd).toBe(502 << 7);
    expect(conn.sndUna >>> 0).toBe(ISN + 1);
    expect(conn.smss).toBe(1460 - 12);
    expect(conn.cwnd).toBe(10 * 1448);
    expect(conn.srtt).toBe(10); // from the timestamp echo
    expect(rec.take()).toEqual([]);
  });

  it('negotiates nothing when the SYN has no options (MSS 536, no scaling)', () => {
    const { conn, rec } = make();
    conn.openPassive(craft({ seq: GISN, flags: tcp.SYN, window: 8192 }).h, ISN, 0);
    conn.accept(0);
    const sa = rec.one().h;
    expect(sa.mss).toBe(1460); // we still announce ours
    expect(sa.wscale).toBe(-1);
    expect(sa.sackPermitted).toBe(false);
    expect(sa.hasTimestamps).toBe(false);
    expect(conn.sndMss).toBe(536);
    feed(conn, { seq: GISN + 1, ack: ISN + 1, flags: tcp.ACK, window: 8192 }, 5);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(conn.sndWnd).toBe(8192);
    expect(conn.rcvShift).toBe(0);
    conn.write(new Uint8Array(3000), 6);
    const segs = rec.take();
    expect(segs.map((s) => s.payload.length)).toEqual([536, 536, 536, 536, 536, 320]);
    expect(segs.every((s) => !s.h.hasTimestamps && s.h.wscale === -1)).toBe(true);
    expect(segs[5]!.h.flags).toBe(tcp.ACK | tcp.PSH);
  });

  it('honours local config turning options off', () => {
    const { conn, rec } = make({ sack: false, timestamps: false, windowScaling: false, mtu: 1000 });
    conn.openPassive(craft({ seq: GISN, flags: tcp.SYN, mss: 1460, wscale: 7, sackPermitted: true, ts: [1, 0] }).h, ISN, 0);
    conn.accept(0);
    const sa = rec.one().h;
    expect([sa.mss, sa.wscale, sa.sackPermitted, sa.hasTimestamps]).toEqual([960, -1, false, false]);
    expect(conn.sndMss).toBe(960);
  });

  it('retransmits the SYN-ACK with backoff, repeats it for a retransmitted SYN, gives up with RST', () => {
    const { conn, rec } = make({ synRetries: 2 });
    const syn = craft({ seq: GISN, flags: tcp.SYN, mss: 1460 });
    conn.openPassive(syn.h, ISN, 0);
    conn.accept(0);
    rec.take();
    expect(conn.nextTimeout()).toBe(1000);
    conn.onTimer(1000);
    expect(rec.one().h.flags).toBe(tcp.SYN | tcp.ACK);
    expect(conn.nextTimeout()).toBe(3000);
    conn.onSegment(syn.h, syn.bytes, 1500);
    expect(rec.one().h.flags).toBe(tcp.SYN | tcp.ACK);
    conn.onTimer(3000);
    expect(rec.one().h.seq).toBe(ISN);
    conn.onTimer(7000);
    const rst = rec.one().h;
    expect(rst.flags & tcp.RST).toBe(tcp.RST);
    expect(rec.resets).toEqual([C.RESET_TIMEOUT]);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.closed).toBe(1);
  });

  it('refuse() answers the SYN with RST|ACK (seq 0, ack SYN+1)', () => {
    const { conn, rec } = make();
    conn.openPassive(craft({ seq: 0xffffffff, flags: tcp.SYN }).h, ISN, 0);
    conn.refuse();
    const r = rec.one().h;
    expect(r.flags).toBe(tcp.RST | tcp.ACK);
    expect(r.seq).toBe(0);
    expect(r.ack).toBe(0); // wraps
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.log).toEqual(['closed']);
  });

  it('answers a bad ACK in SYN-RECEIVED with RST <SEQ=SEG.ACK>', () => {
    const { conn, rec } = make();
    conn.openPassive(craft({ seq: GISN, flags: tcp.SYN }).h, ISN, 0);
    conn.accept(0);
    rec.take();
    feed(conn, { seq: GISN + 1, ack: ISN + 5, flags: tcp.ACK }, 1);
    const r = rec.one().h;
    expect(r.flags).toBe(tcp.RST);
    expect(r.seq).toBe(ISN + 5);
    expect(conn.state).toBe(C.SYN_RECEIVED);
  });
});

describe('active open (port forward into the guest)', () => {
  it('sends SYN with our options and completes on SYN-ACK', () => {
    const { conn, rec } = make();
    conn.connect(0xfffffffe, 100);
    const syn = rec.one().h;
    expect(syn.flags).toBe(tcp.SYN);
    expect(syn.seq).toBe(0xfffffffe);
    expect([syn.mss, syn.wscale, syn.sackPermitted, syn.hasTimestamps]).toEqual([1460, 3, true, true]);
    expect(syn.tsEcr).toBe(0);
    expect(syn.window).toBe(65535);
    expect(conn.state).toBe(C.SYN_SENT);
    feed(conn, { seq: GISN, ack: 0xffffffff, flags: tcp.SYN | tcp.ACK, window: 29200, mss: 1400, wscale: 2, sackPermitted: true, ts: [77, syn.tsVal] }, 103);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(rec.log).toEqual(['established']);
    const ack = rec.one().h;
    expect(ack.flags).toBe(tcp.ACK);
    expect(ack.seq).toBe(0xffffffff);
    expect(ack.ack).toBe(GISN + 1);
    expect(ack.tsEcr).toBe(77);
    expect(conn.sndWnd).toBe(29200); // SYN-ACK window is not scaled
    expect(conn.sndShift).toBe(2);
    expect(conn.rcvShift).toBe(3);
    expect(ack.window).toBe((256 * 1024) >> 3);
    expect(conn.sndMss).toBe(1400);
    expect(conn.srtt).toBe(3);
  });

  it('without WS in the SYN-ACK, neither side scales', () => {
    const { conn, rec } = make();
    conn.connect(ISN, 0);
    rec.take();
    feed(conn, { seq: GISN, ack: ISN + 1, flags: tcp.SYN | tcp.ACK, window: 1000, mss: 1460 }, 1);
    expect(conn.rcvShift).toBe(0);
    expect(conn.sndShift).toBe(0);
    expect(conn.tsOk || conn.sackOk).toBe(false);
    expect(rec.one().h.window).toBe(65535);
  });

  it('ignores an unacceptable SYN-ACK (RST <SEQ=SEG.ACK>) and reports a refused connect', () => {
    const { conn, rec } = make();
    conn.connect(ISN, 0);
    rec.take();
    feed(conn, { seq: GISN, ack: ISN + 9, flags: tcp.SYN | tcp.ACK }, 1);
    const r = rec.one().h;
    expect(r.flags).toBe(tcp.RST);
    expect(r.seq).toBe(ISN + 9);
    expect(conn.state).toBe(C.SYN_SENT);
    feed(conn, { seq: 0, ack: ISN + 1, flags: tcp.RST }, 2); // RST without ACK: ignored
    expect(conn.state).toBe(C.SYN_SENT);
    feed(conn, { seq: 0, ack: ISN + 1, flags: tcp.RST | tcp.ACK }, 3);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.resets).toEqual([C.RESET_REFUSED]);
    expect(rec.log).toEqual(['reset', 'closed']);
  });

  it('retransmits the SYN (1 s, 2 s, ...) then times out; IW is 1 MSS after a lost SYN', () => {
    const { conn, rec } = make({ connectTimeout: Infinity });
    conn.connect(ISN, 0);
    rec.take();
    conn.onTimer(1000);
    expect(rec.one().h.flags).toBe(tcp.SYN);
    expect(conn.nextTimeout()).toBe(3000);
    feed(conn, { seq: GISN, ack: ISN + 1, flags: tcp.SYN | tcp.ACK, mss: 1460 }, 3001);
    expect(conn.state).toBe(C.ESTABLISHED);
    expect(conn.cwnd).toBe(1460);
    expect(conn.srtt).toBe(-1); // Karn: no sample from a retransmitted SYN

    const b = make({ synRetries: 1, connectTimeout: Infinity });
    b.conn.connect(ISN, 0);
    b.conn.onTimer(1000);
    b.conn.onTimer(3000);
    expect(b.conn.state).toBe(C.CLOSED);
    expect(b.rec.resets).toEqual([C.RESET_TIMEOUT]);
  });

  it('handles a simultaneous open (SYN in SYN-SENT)', () => {
    const { conn, rec } = make();
    conn.connect(ISN, 0);
    rec.take();
    feed(conn, { seq: GISN, flags: tcp.SYN, mss: 1460 }, 1);
    expect(conn.state).toBe(C.SYN_RECEIVED);
    const sa = rec.one().h;
    expect(sa.flags).toBe(tcp.SYN | tcp.ACK);
    expect(sa.seq).toBe(ISN);
    expect(sa.ack).toBe(GISN + 1);
    feed(conn, { seq: GISN + 1, ack: ISN + 1, flags: tcp.ACK }, 2);
    expect(conn.state).toBe(C.ESTABLISHED);
  });
});

describe('readiness probe', () => {
  it('reports open on SYN-ACK and resets the connection', () => {
    const { conn, rec } = make();
    conn.probe(ISN, 0, 500);
    rec.take();
    feed(conn, { seq: GISN, ack: ISN + 1, flags: tcp.SYN | tcp.ACK }, 2);
    expect(rec.probes).toEqual([C.PROBE_OPEN]);
    const r = rec.one().h;
    expect(r.flags).toBe(tcp.RST);
    expect(r.seq).toBe(ISN + 1);
    expect(conn.state).toBe(C.CLOSED);
    expect(rec.log).toEqual(['probe', 'closed']);
  });

  it('reports closed on RST', () => {
    const { conn, rec } = make();
    conn.probe(ISN, 0, 500);
    feed(conn, { seq: 0, ack: ISN + 1, flags: tcp.RST | tcp.ACK }, 2);
    expect(rec.probes).toEqual([C.PROBE_CLOSED]);
    expect(conn.state).toBe(C.CLOSED);
  });

  it('reports timeout when nothing answers', () => {
    const { conn, rec } = make();
    conn.probe(ISN, 0, 500);
    expect(conn.nextTimeout()).toBe(500);
    conn.onTimer(500);
    expect(rec.probes).toEqual([C.PROBE_TIMEOUT]);
    expect(rec.log).toEqual(['probe', 'closed']);
    expect(conn.nextTimeout()).toBe(Infinity);
  });
});

describe('rstFor (segments matching no connection, RFC 9293 §3.10.7.1)', () => {
  it('uses SEG.ACK when ACK is set', () => {
    const out = tcp.blank();
    expect(C.rstFor(craft({ seq: 5, ack: 0xdeadbeef, flags: tcp.ACK, payload: new Uint8Array(10) }).h, out)).toBe(true);
    expect([out.flags, out.seq, out.ack, out.srcPort, out.dstPort]).toEqual([tcp.RST, 0xdeadbeef, 0, LOCAL_PORT, REMOTE_PORT]);
  });
  it('acks SEG.SEQ+SEG.LEN (SYN and FIN count) otherwise', () => {
    const out = tcp.blank();
    expect(C.rstFor(craft({ seq: 0xffffffff, flags: tcp.SYN }).h, out)).toBe(true);
    expect([out.flags, out.seq, out.ack]).toEqual([tcp.RST | tcp.ACK, 0, 0]);
    expect(C.rstFor(craft({ seq: 100, flags: tcp.FIN, payload: new Uint8Array(7) }).h, out)).toBe(true);
    expect(out.ack).toBe(108);
    expect(tcp.length(out)).toBe(20);
  });
  it('never answers a RST', () => {
    expect(C.rstFor(craft({ seq: 1, flags: tcp.RST }).h, tcp.blank())).toBe(false);
  });
});

describe('shiftFor', () => {
  it('picks the smallest shift that fits the buffer in 16 bits', () => {
    expect(C.shiftFor(65535)).toBe(0);
    expect(C.shiftFor(65536)).toBe(1);
    expect(C.shiftFor(256 * 1024)).toBe(3);
    expect(C.shiftFor(4 * 1024 * 1024)).toBe(7);
    expect(C.shiftFor(2 ** 40)).toBe(14);
  });
});
