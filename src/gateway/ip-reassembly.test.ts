import { describe, expect, it } from 'vitest';
import * as ipv4 from '../wire/ipv4.js';
import { Reassembler } from './ip-reassembly.js';

/** Builds one fragment of a datagram whose payload is `payload`. */
function fragment(payload: Uint8Array, off: number, len: number, more: boolean, id = 7): { h: ipv4.Header; v: DataView } {
  const buf = new Uint8Array(20 + len);
  const v = new DataView(buf.buffer);
  const h = ipv4.blank();
  Object.assign(h, { id, proto: 17, src: 0x0a00020f, dst: 0x0a000202, totalLength: 20 + len, fragOffset: off, flags: more ? ipv4.FLAG_MF : 0 });
  ipv4.emit(h, v, 0);
  buf.set(payload.subarray(off, off + len), 20);
  const out = ipv4.blank();
  expect(ipv4.parse(v, 0, buf.length, out)).toBe(true);
  return { h: out, v };
}

const payload = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 255);

describe('Reassembler', () => {
  it('reassembles fragments in any order into a valid datagram', () => {
    const parts = [fragment(payload, 1480, 1480, true), fragment(payload, 2960, 40, false), fragment(payload, 0, 1480, true)];
    const r = new Reassembler();
    expect(r.push(parts[0]!.h, parts[0]!.v, 0)).toBeNull();
    expect(r.push(parts[1]!.h, parts[1]!.v, 1)).toBeNull();
    const done = r.push(parts[2]!.h, parts[2]!.v, 2)!;
    expect(done).not.toBeNull();
    const h = ipv4.blank();
    expect(ipv4.parse(done.view, 0, done.len, h)).toBe(true);
    expect(ipv4.isFragment(h)).toBe(false);
    expect(h.payloadLength).toBe(3000);
    expect(done.buf.subarray(20)).toEqual(payload);
    expect(r.size).toBe(0);
    expect(r.heldBytes).toBe(0);
  });
  it('drops overlapping fragments and the whole datagram', () => {
    const r = new Reassembler();
    const a = fragment(payload, 0, 1480, true);
    const b = fragment(payload, 1472, 1480, true);
    r.push(a.h, a.v, 0);
    expect(r.push(b.h, b.v, 0)).toBeNull();
    expect(r.counters.overlap).toBe(1);
    expect(r.size).toBe(0);
  });
  it('times out incomplete datagrams', () => {
    const r = new Reassembler({ maxDatagrams: 8, maxSize: 65535, maxBytes: 1 << 20, timeoutMs: 1000 });
    const a = fragment(payload, 0, 1480, true, 1);
    r.push(a.h, a.v, 0);
    const b = fragment(payload, 0, 1480, true, 2);
    r.push(b.h, b.v, 1500);
    expect(r.counters.timedOut).toBe(1);
    expect(r.size).toBe(1);
  });
  it('bounds datagrams in progress and bytes held', () => {
    const r = new Reassembler({ maxDatagrams: 4, maxSize: 65535, maxBytes: 20_000, timeoutMs: 60_000 });
    for (let id = 0; id < 100; id++) {
      const f = fragment(payload, 0, 1480, true, id);
      r.push(f.h, f.v, id);
      expect(r.size).toBeLessThanOrEqual(4);
      expect(r.heldBytes).toBeLessThanOrEqual(20_000);
    }
    expect(r.counters.evicted).toBeGreaterThan(0);
  });
  it('refuses datagrams larger than 65535 bytes', () => {
    const big = new Uint8Array(2000);
    const f = fragment(big, 0, 1000, false);
    f.h.fragOffset = 65000;
    const r = new Reassembler();
    expect(r.push(f.h, f.v, 0)).toBeNull();
    expect(r.counters.tooBig).toBe(1);
  });
  it('gives each guest a share: a guest over it evicts only its own datagrams, in count and in bytes', () => {
    const r = new Reassembler({ maxDatagrams: 8, maxSize: 65535, maxBytes: 1 << 20, timeoutMs: 60_000, maxDatagramsPerGuest: 2, maxBytesPerGuest: 4000 });
    const a = fragment(payload, 0, 1480, true, 1000);
    r.push(a.h, a.v, 0, 1);
    for (let id = 0; id < 50; id++) {
      const f = fragment(payload, 0, 1480, true, id);
      r.push(f.h, f.v, id, 2);
    }
    expect(r.size).toBe(3);
    // Bytes: guest 2 growing one datagram past its 4000-byte share evicts its other one, never guest 1's.
    const big = fragment(new Uint8Array(6000), 2960, 1480, true, 49);
    expect(r.push(big.h, big.v, 60, 2)).toBeNull();
    const rest = [fragment(payload, 1480, 1480, true, 1000), fragment(payload, 2960, 40, false, 1000)];
    expect(r.push(rest[0]!.h, rest[0]!.v, 61, 1)).toBeNull();
    const done = r.push(rest[1]!.h, rest[1]!.v, 62, 1);
    expect(done?.buf.subarray(20)).toEqual(payload);
  });
});
