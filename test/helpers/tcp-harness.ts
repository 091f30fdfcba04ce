/**
 * Test harness for the sans-IO TCP engine: a recording output that encodes
 * every segment through the real codec path (tcp.emit → SendBuffer.copyOut →
 * fillChecksum4 → verify4 → tcp.parse), a recording event sink, a crafted
 * segment builder for the "guest" side, and a lossy/reordering link between
 * two connections driven by a fake clock and a seeded PRNG.
 */
import { expect } from 'vitest';
import * as tcp from '../../src/wire/tcp.js';
import { rstFor, TcpConn, tcpConfig, type TcpConfig, type TcpEvents, type TcpOutput } from '../../src/tcp/conn.js';
import type { SendBuffer } from '../../src/tcp/send-buffer.js';

export const GUEST_IP = 0x0a00020f;
export const GW_IP = 0x5db8d822;
/** Our port (the guest's destination) and the guest's port. */
export const LOCAL_PORT = 80;
export const REMOTE_PORT = 40000;

/** A transmitted segment, decoded back from its wire bytes. */
export interface Seg {
  h: tcp.Header;
  payload: Uint8Array;
  bytes: Uint8Array;
}

/** seeded xorshift32 PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Encodes a header + payload from a SendBuffer exactly as the gateway would. */
export function encode(h: tcp.Header, data: SendBuffer | null, off: number, payload?: Uint8Array): Uint8Array {
  const hl = tcp.length(h);
  const b = new Uint8Array(hl + h.payloadLength);
  const v = new DataView(b.buffer);
  expect(tcp.emit(h, v, 0)).toBe(hl);
  if (data !== null) data.copyOut(off, h.payloadLength, b, hl);
  else if (payload) b.set(payload, hl);
  tcp.fillChecksum4(v, 0, b.length, GW_IP, GUEST_IP);
  return b;
}

export function decode(b: Uint8Array): Seg {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(tcp.verify4(v, 0, b.length, GW_IP, GUEST_IP)).toBe(true);
  const h = tcp.blank();
  expect(tcp.parse(v, 0, b.length, h)).toBe(true);
  return { h, payload: b.slice(h.payloadOffset), bytes: b };
}

/** Records segments and events of one connection. */
export class Recorder implements TcpOutput, TcpEvents {
  segs: Seg[] = [];
  log: string[] = [];
  resets: number[] = [];
  probes: number[] = [];
  closed = 0;
  onSeg: ((conn: TcpConn, s: Seg) => void) | null = null;
  /** What linkBlocked answers (a congested link toward the peer). */
  blocked = false;

  linkBlocked(): boolean {
    return this.blocked;
  }

  segment(conn: TcpConn, h: tcp.Header, data: SendBuffer, dataOffset: number): void {
    expect(h.payloadLength).toBeGreaterThanOrEqual(0);
    if (h.payloadLength > 0) expect(dataOffset + h.payloadLength).toBeLessThanOrEqual(data.length);
    const s = decode(encode(h, data, dataOffset));
    // the encoded header must fit the MTU with its payload
    expect(s.bytes.length + 20).toBeLessThanOrEqual(conn.cfg.mtu);
    this.segs.push(s);
    this.onSeg?.(conn, s);
  }
  onEstablished(_c?: TcpConn): void {
    this.log.push('established');
  }
  onData(_c?: TcpConn): void {
    this.log.push('data');
  }
  onRemoteFin(_c?: TcpConn): void {
    this.log.push('fin');
  }
  onWritable(_c?: TcpConn): void {
    this.log.push('writable');
  }
  onReset(_c: TcpConn, reason: number): void {
    this.log.push('reset');
    this.resets.push(reason);
  }
  onClosed(_c?: TcpConn): void {
    this.log.push('closed');
    this.closed++;
  }
  onProbe(_c: TcpConn, result: number): void {
    this.log.push('probe');
    this.probes.push(result);
  }

  /** Removes and returns the recorded segments. */
  take(): Seg[] {
    const s = this.segs;
    this.segs = [];
    return s;
  }
  /** The single segment recorded since the last take. */
  one(): Seg {
    const s = this.take();
    expect(s.length).toBe(1);
    return s[0]!;
  }
}

/** A connection and its recorder. */
export function make(over: Partial<TcpConfig> = {}): { conn: TcpConn; rec: Recorder; cfg: TcpConfig } {
  const cfg = tcpConfig(over);
  const rec = new Recorder();
  const conn = new TcpConn(cfg, rec, rec, LOCAL_PORT, REMOTE_PORT);
  return { conn, rec, cfg };
}

/** Fields of a crafted guest segment. */
export interface SegSpec {
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  ts?: [number, number];
  sack?: number[];
  payload?: Uint8Array;
}

/** Builds a guest → gateway segment (wire bytes + parsed header). */
export function craft(spec: SegSpec): { h: tcp.Header; bytes: Uint8Array } {
  const h = tcp.blank();
  h.srcPort = REMOTE_PORT;
  h.dstPort = LOCAL_PORT;
  h.seq = spec.seq >>> 0;
  h.ack = (spec.ack ?? 0) >>> 0;
  h.flags = spec.flags;
  h.window = spec.window ?? 65535;
  h.mss = spec.mss ?? -1;
  h.wscale = spec.wscale ?? -1;
  h.sackPermitted = spec.sackPermitted ?? false;
  if (spec.ts) {
    h.hasTimestamps = true;
    h.tsVal = spec.ts[0];
    h.tsEcr = spec.ts[1];
  }
  if (spec.sack) {
    h.sackCount = spec.sack.length / 2;
    spec.sack.forEach((x, i) => (h.sack[i] = x >>> 0));
  }
  const payload = spec.payload ?? new Uint8Array(0);
  h.payloadLength = payload.length;
  const bytes = encode(h, null, 0, payload);
  const out = tcp.blank();
  const v = new DataView(bytes.buffer);
  expect(tcp.parse(v, 0, bytes.length, out)).toBe(true);
  return { h: out, bytes };
}

/** Feeds a crafted segment to a connection. */
export function feed(conn: TcpConn, spec: SegSpec, now: number): void {
  const { h, bytes } = craft(spec);
  conn.onSegment(h, bytes, now);
}

/** Bytes 0..n-1 of a deterministic pattern starting at stream offset `from`. */
export function pattern(n: number, from = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = ((from + i) * 2654435761) >>> 24;
  return b;
}

/** Reads everything readable. */
export function drain(conn: TcpConn, now: number): Uint8Array {
  const b = new Uint8Array(conn.readable);
  conn.read(b, 0, b.length, now);
  return b;
}

/** Options of the simulated link. */
export interface LinkOptions {
  loss: number;
  reorder: number;
  delay: number;
  jitter: number;
  dup: number;
}

/**
 * Two connections joined by a simulated link with loss, duplication,
 * reordering and delay, driven by a fake clock (discrete events).
 */
export class Link {
  now = 0;
  #q: { at: number; to: 0 | 1; bytes: Uint8Array; n: number }[] = [];
  #n = 0;
  sent = [0, 0];
  dropped = 0;
  /** Called for every delivered segment (debugging aid). */
  trace: ((to: 0 | 1, s: Seg, now: number) => void) | null = null;
  /** Called for every segment sent, before the random loss; false drops it (a targeted loss). */
  filter: ((to: 0 | 1, s: Seg) => boolean) | null = null;
  /** Called for every segment that passed `filter`: other bytes to deliver instead (a middlebox), or null. */
  rewrite: ((to: 0 | 1, s: Seg) => Uint8Array | null) | null = null;
  readonly rnd: () => number;
  readonly conns: [TcpConn, TcpConn];
  readonly recs: [Recorder, Recorder];

  constructor(
    a: { conn: TcpConn; rec: Recorder },
    b: { conn: TcpConn; rec: Recorder },
    readonly opt: LinkOptions,
    seed: number,
  ) {
    this.rnd = prng(seed);
    this.conns = [a.conn, b.conn];
    this.recs = [a.rec, b.rec];
    a.rec.onSeg = (_c, s) => this.#send(1, s.bytes, s);
    b.rec.onSeg = (_c, s) => this.#send(0, s.bytes, s);
  }

  #send(to: 0 | 1, bytes: Uint8Array, s?: Seg): void {
    this.sent[1 - to]!++;
    this.recs[1 - to]!.segs.length = 0; // the link owns delivery; keep recorders small
    if (this.filter !== null && !this.filter(to, (s ??= decode(bytes)))) {
      this.dropped++;
      return;
    }
    if (this.rewrite !== null) bytes = this.rewrite(to, s ?? decode(bytes)) ?? bytes;
    if (this.rnd() < this.opt.loss) {
      this.dropped++;
      return;
    }
    const copies = this.rnd() < this.opt.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let at = this.now + this.opt.delay + this.rnd() * this.opt.jitter;
      if (this.rnd() < this.opt.reorder) at += this.opt.delay * 3 + this.rnd() * 5;
      this.#q.push({ at, to, bytes, n: this.#n++ });
    }
  }

  /** Runs until `until` returns true or time exceeds `limit`. @returns true when `until` held */
  run(until: () => boolean, limit: number, onTick?: () => void): boolean {
    while (this.now <= limit) {
      if (until()) return true;
      let next = Infinity;
      let qi = -1;
      for (let i = 0; i < this.#q.length; i++) {
        const e = this.#q[i]!;
        if (e.at < next || (e.at === next && qi >= 0 && e.n < this.#q[qi]!.n)) {
          next = e.at;
          qi = i;
        }
      }
      const t0 = this.conns[0].nextTimeout();
      const t1 = this.conns[1].nextTimeout();
      const tt = Math.min(t0, t1);
      if (tt < next) {
        if (tt === Infinity) return until();
        this.now = Math.max(this.now, tt);
        if (t0 <= tt) this.conns[0].onTimer(this.now);
        if (t1 <= tt) this.conns[1].onTimer(this.now);
      } else {
        const e = this.#q[qi]!;
        this.#q.splice(qi, 1);
        this.now = Math.max(this.now, e.at);
        const s = decode(e.bytes);
        this.trace?.(e.to, s, this.now);
        const dst = this.conns[e.to];
        if (dst.state === 0) {
          // what the gateway does for a segment matching no connection
          const r = tcp.blank();
          if (rstFor(s.h, r)) this.#send((1 - e.to) as 0 | 1, encode(r, null, 0));
        } else dst.onSegment(s.h, s.bytes, this.now);
      }
      onTick?.();
    }
    return until();
  }
}

/** Guest-side options for `established`. */
export interface GuestOpts {
  isn?: number;
  giss?: number;
  mss?: number;
  wscale?: number;
  sack?: boolean;
  ts?: boolean;
  window?: number;
  now?: number;
  /** ms between our SYN-ACK and the guest's ACK (the first RTT sample). */
  synRtt?: number;
}

/**
 * A passive connection brought to ESTABLISHED by crafted guest segments.
 * Returns the guest's next sequence number and our ISS.
 */
export function established(
  over: Partial<TcpConfig> = {},
  g: GuestOpts = {},
): { conn: TcpConn; rec: Recorder; cfg: TcpConfig; iss: number; gseq: number; ts: (v: number) => [number, number] | undefined } {
  const m = make(over);
  const iss = (g.isn ?? 0xfffff000) >>> 0;
  const giss = (g.giss ?? 0xffffff00) >>> 0;
  const now = g.now ?? 0;
  const useTs = g.ts ?? false;
  const syn = craft({
    seq: giss,
    flags: tcp.SYN,
    window: 65535,
    mss: g.mss ?? 1460,
    ...(g.wscale !== undefined ? { wscale: g.wscale } : {}),
    sackPermitted: g.sack ?? false,
    ...(useTs ? { ts: [1, 0] as [number, number] } : {}),
  });
  m.conn.openPassive(syn.h, iss, now);
  m.conn.accept(now);
  const sa = m.rec.one().h;
  let lastTs = sa.tsVal;
  m.rec.onSeg = (_c, s) => {
    if (s.h.hasTimestamps) lastTs = s.h.tsVal;
  };
  const ts = (v: number): [number, number] | undefined => (useTs ? [v, lastTs] : undefined);
  const t = ts(2);
  feed(m.conn, { seq: giss + 1, ack: iss + 1, flags: tcp.ACK, window: g.window ?? 65535, ...(t ? { ts: t } : {}) }, now + (g.synRtt ?? 0));
  expect(m.conn.state).toBe(3);
  m.rec.take();
  m.rec.log.length = 0;
  return { ...m, iss: (iss + 1) >>> 0, gseq: (giss + 1) >>> 0, ts };
}
