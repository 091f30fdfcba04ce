import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as tcp from './tcp.js';
import { capturedPacket, ip6 } from '../../test/helpers/frames6.js';

/** Round-trip adapter: header only; payloadOffset reported relative to the header. */
const header: Codec<tcp.Header> = {
  length: tcp.length,
  emit: tcp.emit,
  blank: tcp.blank,
  parse(v, o, len, out) {
    const r = tcp.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

function h(over: Partial<tcp.Header>): tcp.Header {
  const x = { ...tcp.blank(), ...over };
  x.headerLength = tcp.length(x);
  x.dataOffset = x.headerLength >>> 2;
  x.payloadOffset = x.headerLength;
  return x;
}

// A Linux-style SYN: 41652 -> 80, MSS 1460, SACK-permitted, TS 12345678/0, WS 7.
const SYN =
  'a2b4 0050 12345678 00000000 a002 faf0 0000 0000' + '020405b4 0402080a 00bc614e 00000000 01030307';

const GUEST = 0x0a00020f;
const HOST = 0x5db8d822;

describe('tcp codec', () => {
  it('round-trips a SYN with MSS, SACK-permitted, timestamps and window scale (fixture)', () => {
    roundTrip(
      header,
      h({
        srcPort: 41652,
        dstPort: 80,
        seq: 0x12345678,
        flags: tcp.SYN,
        window: 64240,
        mss: 1460,
        sackPermitted: true,
        hasTimestamps: true,
        tsVal: 12345678,
        tsEcr: 0,
        wscale: 7,
      }),
      SYN,
    );
  });

  it('round-trips a bare header and each option alone', () => {
    roundTrip(header, h({ srcPort: 1, dstPort: 2, seq: 0xffffffff, ack: 0x80000000, flags: tcp.ACK | tcp.PSH, window: 65535 }), '0001 0002 ffffffff 80000000 5018 ffff 0000 0000');
    roundTrip(header, h({ mss: 536, flags: tcp.SYN }), '0000 0000 00000000 00000000 6002 0000 0000 0000 02040218');
    roundTrip(header, h({ sackPermitted: true }), '0000 0000 00000000 00000000 6000 0000 0000 0000 01010402');
    roundTrip(header, h({ wscale: 14 }), '0000 0000 00000000 00000000 6000 0000 0000 0000 0103030e');
    roundTrip(header, h({ hasTimestamps: true, tsVal: 1, tsEcr: 2 }), '0000 0000 00000000 00000000 8000 0000 0000 0000 0101080a 00000001 00000002');
  });

  it('round-trips SACK blocks, cutting them to the option space', () => {
    const sack = [10, 20, 30, 40, 50, 60, 70, 80];
    roundTrip(header, h({ flags: tcp.ACK, sackCount: 4, sack: [...sack] }));
    const withTs = h({ flags: tcp.ACK, hasTimestamps: true, tsVal: 5, tsEcr: 6, sackCount: 4, sack: [...sack] });
    expect(tcp.length(withTs)).toBe(20 + 12 + 4 + 24); // 3 blocks fit with timestamps
    const b = new Uint8Array(64);
    const v = viewOf(b);
    expect(tcp.emit(withTs, v, 0)).toBe(60);
    const out = tcp.blank();
    expect(tcp.parse(v, 0, 60, out)).toBe(true);
    expect(out.sackCount).toBe(3);
    expect(out.sack.slice(0, 6)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(out.hasTimestamps && out.tsVal === 5 && out.tsEcr === 6).toBe(true);
  });

  it('parses payload bounds and accessors agree', () => {
    const b = hex(SYN + '68656c6c6f');
    const v = viewOf(b);
    const out = tcp.blank();
    expect(tcp.parse(v, 0, b.length, out)).toBe(true);
    expect(out.payloadOffset).toBe(40);
    expect(out.payloadLength).toBe(5);
    expect([tcp.srcPort(v, 0), tcp.dstPort(v, 0), tcp.seqNum(v, 0), tcp.ackNum(v, 0), tcp.flags(v, 0), tcp.headerLength(v, 0)]).toEqual([
      41652, 80, 0x12345678, 0, tcp.SYN, 40,
    ]);
  });

  it('rejects bad data offsets and malformed options, never throws', () => {
    const out = tcp.blank();
    const base = hex(SYN);
    const bad = (mut: (b: Uint8Array) => void, len = base.length): boolean => {
      const b = base.slice();
      mut(b);
      return tcp.parse(viewOf(b), 0, len, out);
    };
    expect(bad(() => {}, 19)).toBe(false); // short
    expect(bad((b) => (b[12] = 0x40))).toBe(false); // data offset 4
    expect(bad((b) => (b[12] = 0xb0))).toBe(false); // 44 > 40
    expect(bad(() => {}, 39)).toBe(false); // header past len
    expect(bad((b) => (b[21] = 0))).toBe(false); // MSS length 0
    expect(bad((b) => (b[21] = 1))).toBe(false); // MSS length 1
    expect(bad((b) => (b[27] = 40))).toBe(false); // TS runs past the header
    // kind byte as the very last byte of the header with no room for its length
    expect(bad((b) => { b[36] = 1; b[37] = 1; b[38] = 1; b[39] = 30; })).toBe(false);
    // EOL stops the walk: junk after it is ignored
    expect(bad((b) => { b[36] = 0; b[37] = 0xff; b[38] = 0xff; b[39] = 0xff; })).toBe(true);
    expect(out.wscale).toBe(-1);
    // wrong-length known options are ignored, unknown kinds skipped, big shifts clamped
    expect(bad((b) => { b[36] = 3; b[37] = 3; b[38] = 20; b[39] = 0; })).toBe(true);
    expect(out.wscale).toBe(14);
    expect(bad((b) => { b[20] = 99; })).toBe(true);
    expect(out.mss).toBe(-1);
    // fuzz: random bytes never throw
    let x = 12345;
    for (let n = 0; n < 2000; n++) {
      const b = new Uint8Array(20 + (n % 44));
      for (let i = 0; i < b.length; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      b[12] = ((5 + (n % 11)) << 4) | 0;
      expect(() => tcp.parse(viewOf(b), 0, b.length, out)).not.toThrow();
    }
  });

  it('fills and verifies the checksum with the IPv4 pseudo-header', () => {
    const b = hex(SYN + '68656c6c6f');
    const v = viewOf(b);
    const c = tcp.fillChecksum4(v, 0, b.length, GUEST, HOST);
    expect(v.getUint16(tcp.CHECKSUM)).toBe(c);
    expect(tcp.verify4(v, 0, b.length, GUEST, HOST)).toBe(true);
    expect(tcp.verify4(v, 0, b.length, HOST, GUEST + 1)).toBe(false);
    b[44] = b[44]! ^ 1;
    expect(tcp.verify4(v, 0, b.length, GUEST, HOST)).toBe(false);
    // independent reference: byte-wise RFC 1071 over pseudo-header + segment
    b[44] = b[44]! ^ 1;
    const ph = [GUEST >>> 16, GUEST & 0xffff, HOST >>> 16, HOST & 0xffff, 6, b.length];
    let s = ph.reduce((a, x) => a + x, 0);
    for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    expect(s).toBe(0xffff);
  });

  it("verifies Linux's captured IPv6 SYN and fills the same checksum (RFC 8200 §8.1)", () => {
    // frame 27 of test/fixtures/ipv6/guest.pcap: [fd00:76:6d6e:0:5054:ff:fe12:3456]:47504 -> [fd00:76:6d6e::2]:8080, checksum 0x3ad9
    const p = capturedPacket(27).slice();
    const v = viewOf(p);
    const src = ip6('fd00:76:6d6e:0:5054:ff:fe12:3456');
    const dst = ip6('fd00:76:6d6e::2');
    const h = tcp.blank();
    expect(tcp.parse(v, 40, 40, h)).toBe(true);
    expect([h.srcPort, h.dstPort, h.flags, h.window, h.mss, h.wscale, h.sackPermitted, h.tsVal, h.checksum]).toEqual([47504, 8080, tcp.SYN, 64800, 1440, 10, true, 1890294351, 0x3ad9]);
    expect(tcp.verify6(v, 40, 40, src, dst)).toBe(true);
    expect(tcp.verify6(v, 40, 40, dst, src)).toBe(true); // the pseudo-header sum is symmetric
    expect(tcp.verify6(v, 40, 40, src, ip6('fd00:76:6d6e::3'))).toBe(false);
    expect(tcp.verify4(v, 40, 40, 0x0a00020f, 0x0a000202)).toBe(false);
    expect(tcp.fillChecksum6(v, 40, 40, src, dst)).toBe(0x3ad9);
    p[60] = p[60]! ^ 1;
    expect(tcp.verify6(v, 40, 40, src, dst)).toBe(false);
  });
});
