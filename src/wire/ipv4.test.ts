import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as ip from './ipv4.js';

/**
 * Round-trip adapter: the datagram is header + totalLength-20 payload bytes
 * (zeros), so parse sees a consistent total length; payloadOffset is reported
 * relative to the header.
 */
const datagram: Codec<ip.Header> = {
  length: (h) => h.totalLength,
  emit: (h, v, o) => {
    ip.emit(h, v, o);
    return h.totalLength;
  },
  blank: ip.blank,
  parse(v, o, len, out) {
    const r = ip.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

// The classic worked example: UDP 192.168.0.1 -> 192.168.0.199, DF, TTL 64, checksum 0xb861.
const CLASSIC = '4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7';

function header(over: Partial<ip.Header>): ip.Header {
  return { ...ip.blank(), ...over };
}

/** A valid datagram with a fresh checksum after `mutate` edits the header bytes. */
function mutated(mutate: (b: Uint8Array, v: DataView) => void, extra = 0): Uint8Array {
  const b = hex(CLASSIC + '00'.repeat(0x73 - 20 + extra));
  const v = viewOf(b);
  mutate(b, v);
  ip.fillChecksum(v, 0, Math.min(ip.headerLength(v, 0), b.length));
  return b;
}

describe('ipv4', () => {
  it('round-trips the classic header (fixture, checksum 0xb861)', () => {
    const value = header({
      totalLength: 0x73,
      flags: ip.FLAG_DF,
      ttl: 64,
      proto: ip.PROTO_UDP,
      src: 0xc0a80001,
      dst: 0xc0a800c7,
      payloadOffset: 20,
      payloadLength: 0x73 - 20,
    });
    const bytes = roundTrip(datagram, value, CLASSIC + '00'.repeat(0x73 - 20));
    expect(ip.checksumOk(viewOf(bytes), 0)).toBe(true);
  });

  it('round-trips fragments with flags and byte offsets', () => {
    const value = header({
      tos: 0xb8,
      totalLength: 28,
      id: 0xbeef,
      flags: ip.FLAG_MF,
      fragOffset: 1480,
      ttl: 1,
      proto: ip.PROTO_ICMP,
      src: 0x0a00020f,
      dst: 0xffffffff,
      payloadOffset: 20,
      payloadLength: 8,
    });
    const bytes = roundTrip(datagram, value);
    expect(viewOf(bytes).getUint16(6)).toBe(0x2000 | (1480 / 8));
    const h = ip.blank();
    expect(ip.parse(viewOf(bytes), 0, bytes.length, h)).toBe(true);
    expect(ip.isFragment(h)).toBe(true);
    expect(ip.isFragment(header({ flags: ip.FLAG_DF }))).toBe(false);
    expect(ip.isFragment(header({ fragOffset: 8 }))).toBe(true);
  });

  it('takes the payload length from totalLength, not from Ethernet padding', () => {
    const b = hex('00'.repeat(4) + '4500 001c 0001 0000 4001 0000 0a00020f 0a000202' + '08 00 f7 fe 0000 0001' + '00'.repeat(18));
    const v = viewOf(b);
    ip.fillChecksum(v, 4);
    const h = ip.blank();
    expect(ip.parse(v, 4, b.length - 4, h)).toBe(true);
    expect(h.totalLength).toBe(28);
    expect(h.payloadOffset).toBe(24);
    expect(h.payloadLength).toBe(8);
    expect([ip.proto(v, 4), ip.ttl(v, 4), ip.src(v, 4), ip.dst(v, 4), ip.totalLength(v, 4)]).toEqual([1, 64, 0x0a00020f, 0x0a000202, 28]);
  });

  it('skips options (IHL 6) and reports them', () => {
    const b = hex('4600 0020 0000 0000 4011 0000 0a00020f 0a000202 01010100' + 'aabbccddeeff0011');
    const v = viewOf(b);
    ip.fillChecksum(v, 0);
    const h = ip.blank();
    expect(ip.parse(v, 0, b.length, h)).toBe(true);
    expect([h.ihl, h.headerLength, h.hasOptions, h.payloadOffset, h.payloadLength]).toEqual([6, 24, true, 24, 8]);
  });

  it('rejects truncated input at every length', () => {
    const b = hex(CLASSIC + '00'.repeat(0x73 - 20));
    const h = ip.blank();
    for (let n = 0; n < 0x73; n++) expect(ip.parse(viewOf(b), 0, n, h), `len ${n}`).toBe(false);
    expect(ip.parse(viewOf(b), 0, 0x73, h)).toBe(true);
  });

  it('rejects a bad header checksum, and checksumOk agrees', () => {
    const b = hex(CLASSIC + '00'.repeat(0x73 - 20));
    b[11] = 0x60;
    expect(ip.checksumOk(viewOf(b), 0, 20)).toBe(false);
    expect(ip.parse(viewOf(b), 0, b.length, ip.blank())).toBe(false);
    // a payload byte does not take part in the header checksum
    const c = hex(CLASSIC + 'ff'.repeat(0x73 - 20));
    expect(ip.parse(viewOf(c), 0, c.length, ip.blank())).toBe(true);
  });

  it.each([
    ['version 6', (b: Uint8Array) => (b[0] = 0x65)],
    ['version 0', (b: Uint8Array) => (b[0] = 0x05)],
    ['IHL 4', (b: Uint8Array) => (b[0] = 0x44)],
    ['IHL 0', (b: Uint8Array) => (b[0] = 0x40)],
    ['total length 19 (< header)', (_b: Uint8Array, v: DataView) => v.setUint16(2, 19)],
    ['total length beyond the buffer (lying)', (_b: Uint8Array, v: DataView) => v.setUint16(2, 0x74)],
  ])('rejects %s even with a valid checksum', (_name, mutate) => {
    const b = mutated(mutate);
    expect(ip.parse(viewOf(b), 0, b.length, ip.blank())).toBe(false);
  });

  it('rejects an IHL whose header does not fit in len', () => {
    // IHL 15 = 60 bytes of header, but only 40 bytes available
    const b = hex('4f00 0028 0000 0000 4011 0000 0a00020f 0a000202' + '00'.repeat(20));
    expect(ip.parse(viewOf(b), 0, b.length, ip.blank())).toBe(false);
  });

  it('emits a checksum that a full recomputation agrees with', () => {
    const b = new Uint8Array(30);
    const v = viewOf(b);
    const n = ip.emit(header({ totalLength: 40, id: 7, proto: ip.PROTO_TCP, src: 0x0a000202, dst: 0x0a00020f }), v, 5);
    expect(n).toBe(ip.HEADER_LEN);
    const c = v.getUint16(5 + ip.CHECKSUM);
    expect(ip.fillChecksum(v, 5)).toBe(c);
    expect(ip.checksumOk(v, 5)).toBe(true);
  });
});
