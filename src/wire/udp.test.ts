import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as udp from './udp.js';
import { capturedPacket, ip6 } from '../../test/helpers/frames6.js';

/** Round-trip adapter: header + (length - 8) zero payload bytes; payloadOffset relative. */
const datagram: Codec<udp.Header> = {
  length: (h) => h.length,
  emit: (h, v, o) => {
    udp.emit(h, v, o);
    return h.length;
  },
  blank: udp.blank,
  parse(v, o, len, out) {
    const r = udp.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

const GUEST = 0x0a00020f; // 10.0.2.15
const DNS = 0x0a000203; // 10.0.2.3
const GW = 0x0a000202; // 10.0.2.2
// 10.0.2.15:40000 -> 10.0.2.3:53, payload "vmnet" (odd length), checksum 0xf279 (computed by hand)
const DATAGRAM = '9c40 0035 000d f279 766d6e6574';

describe('udp', () => {
  it('round-trips a header (fixture)', () => {
    roundTrip(
      datagram,
      { srcPort: 40000, dstPort: 53, length: 13, checksum: 0xf279, payloadOffset: 8, payloadLength: 5 },
      '9c400035000df279' + '0000000000',
    );
  });

  it('parses a real datagram and the accessors agree', () => {
    const b = hex(DATAGRAM);
    const v = viewOf(b);
    const h = udp.blank();
    expect(udp.parse(v, 0, b.length, h)).toBe(true);
    expect(h).toEqual({ srcPort: 40000, dstPort: 53, length: 13, checksum: 0xf279, payloadOffset: 8, payloadLength: 5 });
    expect([udp.srcPort(v, 0), udp.dstPort(v, 0), udp.datagramLength(v, 0), udp.checksum(v, 0)]).toEqual([40000, 53, 13, 0xf279]);
  });

  it('verifies and recomputes the checksum over an odd-length payload', () => {
    const b = hex(DATAGRAM);
    const v = viewOf(b);
    expect(udp.verify4(v, 0, 13, GUEST, DNS)).toBe(true);
    expect(udp.verify4(v, 0, 13, GUEST, GW)).toBe(false); // wrong pseudo-header
    v.setUint16(udp.CHECKSUM, 0x1234);
    expect(udp.verify4(v, 0, 13, GUEST, DNS)).toBe(false);
    expect(udp.fillChecksum4(v, 0, 13, GUEST, DNS)).toBe(0xf279);
    expect(Buffer.from(b).toString('hex')).toBe(DATAGRAM.replace(/\s/g, ''));
    b[12] = b[12]! ^ 0x40;
    expect(udp.verify4(v, 0, 13, GUEST, DNS)).toBe(false);
  });

  it('accepts a zero checksum as "none"', () => {
    const b = hex('9c40 0035 000d 0000 766d6e6574');
    expect(udp.verify4(viewOf(b), 0, 13, GUEST, DNS)).toBe(true);
  });

  it('transmits a computed zero checksum as 0xffff (RFC 768)', () => {
    // 10.0.2.15:1234 -> 10.0.2.2:5678, payload cc c9: the sum folds to 0xffff
    const b = hex('04d2 162e 000a 0000 ccc9');
    const v = viewOf(b);
    expect(udp.fillChecksum4(v, 0, 10, GUEST, GW)).toBe(0xffff);
    expect(udp.checksum(v, 0)).toBe(0xffff);
    expect(udp.verify4(v, 0, 10, GUEST, GW)).toBe(true);
  });

  it('checksums a datagram inside a buffer at a non-zero byteOffset', () => {
    const backing = new Uint8Array(64);
    const sub = backing.subarray(9, 9 + 40); // the view's buffer starts at byteOffset 9
    const v = viewOf(sub);
    const o = 3;
    sub.set(hex('766d6e6574'), o + 8);
    udp.emit({ ...udp.blank(), srcPort: 40000, dstPort: 53, length: 13 }, v, o);
    expect(udp.fillChecksum4(v, o, 13, GUEST, DNS)).toBe(0xf279);
    expect(udp.verify4(v, o, 13, GUEST, DNS)).toBe(true);
  });

  it('rejects truncated input at every length', () => {
    const v = viewOf(hex(DATAGRAM));
    for (let n = 0; n < 13; n++) expect(udp.parse(v, 0, n, udp.blank()), `len ${n}`).toBe(false);
  });

  it('rejects lying length fields and ignores bytes past the length', () => {
    const h = udp.blank();
    for (const n of [0, 7, 14, 0xffff]) {
      const b = hex(DATAGRAM);
      viewOf(b).setUint16(udp.LENGTH, n);
      expect(udp.parse(viewOf(b), 0, b.length, h), `length ${n}`).toBe(false);
    }
    const padded = hex(DATAGRAM + '000000');
    expect(udp.parse(viewOf(padded), 0, padded.length, h)).toBe(true);
    expect(h.payloadLength).toBe(5);
    const empty = hex('0035 9c40 0008 0000');
    expect(udp.parse(viewOf(empty), 0, 8, h)).toBe(true);
    expect(h.payloadLength).toBe(0);
  });

  it("verifies Linux's captured IPv6 datagram, refuses a zero checksum over IPv6 (RFC 8200 §8.1)", () => {
    // frame 35 of test/fixtures/ipv6/guest.pcap: [fd00:76:6d6e:0:5054:ff:fe12:3456]:38576 -> [fd00:76:6d6e::2]:9 "vmnet", checksum 0xb6be
    const p = capturedPacket(35).slice();
    const v = viewOf(p);
    const src = ip6('fd00:76:6d6e:0:5054:ff:fe12:3456');
    const dst = ip6('fd00:76:6d6e::2');
    const h = udp.blank();
    expect(udp.parse(v, 40, 13, h)).toBe(true);
    expect([h.srcPort, h.dstPort, h.length, h.checksum]).toEqual([38576, 9, 13, 0xb6be]);
    expect(udp.verify6(v, 40, 13, src, dst)).toBe(true);
    expect(udp.verify6(v, 40, 13, src, src)).toBe(false);
    expect(udp.fillChecksum6(v, 40, 13, src, dst)).toBe(0xb6be);
    v.setUint16(40 + udp.CHECKSUM, 0);
    expect(udp.verify6(v, 40, 13, src, dst)).toBe(false);
    expect(udp.verify4(v, 40, 13, GUEST, DNS)).toBe(true); // over IPv4 0 means "none"
  });

  it('stores a computed zero as 0xffff over IPv6 too', () => {
    // find a payload word that makes the sum fold to 0xffff, then check the stored value
    const src = ip6('fe80::1');
    const dst = ip6('fe80::2');
    const b = new Uint8Array(10);
    const v = viewOf(b);
    udp.emit({ ...udp.blank(), srcPort: 1234, dstPort: 5678, length: 10 }, v, 0);
    udp.fillChecksum6(v, 0, 10, src, dst);
    v.setUint16(8, v.getUint16(udp.CHECKSUM)); // payload = the checksum of a zero payload: the total now folds to 0xffff
    expect(udp.fillChecksum6(v, 0, 10, src, dst)).toBe(0xffff);
    expect(udp.verify6(v, 0, 10, src, dst)).toBe(true);
  });
});
