import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as ip from './ipv4.js';
import * as icmp from './icmpv4.js';

/** Round-trip adapter: payloadOffset relative to the message start. */
const codec: Codec<icmp.Header> = {
  length: icmp.length,
  emit: icmp.emit,
  blank: icmp.blank,
  parse(v, o, len, out) {
    const r = icmp.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

// ping -p 6162636465666768 style request: id 0x1234, seq 1, 8 data bytes "abcdefgh"
const ECHO_REQUEST = '08 00 5435 1234 0001 6162636465666768';
const ECHO_REPLY = '00 00 5c35 1234 0001 6162636465666768';
// UDP 10.0.2.15:40000 -> 10.0.2.3:53, payload "vmnet" (33-byte datagram)
const DATAGRAM = '45000021abcd4000401176ed0a00020f0a000203' + '9c400035000df279' + '766d6e6574';
const QUOTE = DATAGRAM.slice(0, 56); // IP header + first 8 bytes of UDP

describe('icmpv4', () => {
  it('round-trips an empty echo request', () => {
    roundTrip(codec, { type: 8, code: 0, id: 0x1234, seq: 1, mtu: 0, payloadOffset: 8, payloadLength: 0 }, '0800 e5ca 1234 0001');
  });

  it('round-trips a destination unreachable header with zeroed quote space', () => {
    roundTrip(codec, { type: 3, code: 4, id: 0, seq: 0, mtu: 1400, payloadOffset: 8, payloadLength: 28 });
  });

  it('round-trips time exceeded (rest bytes kept as id/seq)', () => {
    roundTrip(codec, { type: 11, code: 0, id: 0, seq: 0, mtu: 0, payloadOffset: 8, payloadLength: 0 }, '0b00 f4ff 0000 0000');
  });

  it('parses an echo request with data (fixture) and emitEcho reproduces it', () => {
    const b = hex(ECHO_REQUEST);
    const v = viewOf(b);
    const h = icmp.blank();
    expect(icmp.parse(v, 0, b.length, h)).toBe(true);
    expect(h).toEqual({ type: 8, code: 0, id: 0x1234, seq: 1, mtu: 0, payloadOffset: 8, payloadLength: 8 });
    expect([icmp.type(v, 0), icmp.code(v, 0), icmp.echoId(v, 0), icmp.echoSeq(v, 0)]).toEqual([8, 0, 0x1234, 1]);

    const out = new Uint8Array(3 + 16);
    out.set(hex('6162636465666768'), 3 + 8);
    expect(icmp.emitEcho(icmp.TYPE_ECHO_REQUEST, 0x1234, 1, viewOf(out), 3, 8)).toBe(icmp.echoLength(8));
    expect(Buffer.from(out.subarray(3)).toString('hex')).toBe(ECHO_REQUEST.replace(/\s/g, ''));
  });

  it('turns a request into a reply in place with an incremental checksum', () => {
    const b = hex(ECHO_REQUEST);
    icmp.toEchoReply(viewOf(b), 0);
    expect(Buffer.from(b).toString('hex')).toBe(ECHO_REPLY.replace(/\s/g, ''));
    expect(icmp.parse(viewOf(b), 0, b.length, icmp.blank())).toBe(true);
  });

  it('verifies the checksum over the whole message, odd lengths included', () => {
    const b = hex('0800 0000 0001 0002 616263');
    const v = viewOf(b);
    icmp.emit({ ...icmp.blank(), id: 1, seq: 2, payloadLength: 3 }, v, 0);
    expect(icmp.parse(v, 0, 11, icmp.blank())).toBe(true);
    b[10] = b[10]! ^ 1; // flip a payload bit
    expect(icmp.parse(v, 0, 11, icmp.blank())).toBe(false);
    // parsing only a prefix (lying IP length) fails the checksum too
    const c = hex(ECHO_REQUEST);
    expect(icmp.parse(viewOf(c), 0, 12, icmp.blank())).toBe(false);
  });

  it('rejects truncated input at every length', () => {
    const v = viewOf(hex(ECHO_REQUEST));
    for (let n = 0; n < 16; n++) expect(icmp.parse(v, 0, n, icmp.blank()), `len ${n}`).toBe(false);
  });

  it('quotes the IP header and first 8 payload bytes in a port unreachable (fixture)', () => {
    const d = hex(DATAGRAM);
    const out = new Uint8Array(100);
    const v = viewOf(out);
    const n = icmp.emitError(icmp.TYPE_DEST_UNREACH, icmp.CODE_PORT_UNREACH, v, 7, viewOf(d), 0, d.length);
    expect(n).toBe(8 + 28);
    expect(icmp.errorLength(viewOf(d), 0, d.length)).toBe(n);
    expect(Buffer.from(out.subarray(7, 7 + n)).toString('hex')).toBe(('0303 6e00 0000 0000' + QUOTE).replace(/\s/g, ''));
    const h = icmp.blank();
    expect(icmp.parse(v, 7, n, h)).toBe(true);
    expect([h.type, h.code, h.mtu, h.payloadOffset, h.payloadLength]).toEqual([3, 3, 0, 15, 28]);
    // the quote itself parses as the original IPv4 header
    const q = ip.blank();
    expect(ip.parse(v, h.payloadOffset, h.payloadLength, q)).toBe(false); // total length 33 > 28 quoted
    expect(ip.checksumOk(v, h.payloadOffset)).toBe(true);
  });

  it('writes the next-hop MTU for fragmentation needed (fixture)', () => {
    const d = hex(DATAGRAM);
    const out = new Uint8Array(36);
    const n = icmp.emitError(icmp.TYPE_DEST_UNREACH, icmp.CODE_FRAG_NEEDED, viewOf(out), 0, viewOf(d), 0, d.length, 1400);
    expect(Buffer.from(out.subarray(0, n)).toString('hex')).toBe(('0304 6887 0000 0578' + QUOTE).replace(/\s/g, ''));
    const h = icmp.blank();
    expect(icmp.parse(viewOf(out), 0, n, h)).toBe(true);
    expect(h.mtu).toBe(1400);
  });

  it('ignores mtu for time exceeded and clamps the quote to what is available', () => {
    const d = hex(DATAGRAM);
    const out = new Uint8Array(64);
    const v = viewOf(out);
    // only 24 bytes of the datagram available
    const n = icmp.emitError(icmp.TYPE_TIME_EXCEEDED, icmp.CODE_TTL_EXCEEDED, v, 0, viewOf(d), 0, 24, 999);
    expect(n).toBe(8 + 24);
    expect(v.getUint32(4)).toBe(0);
    expect(icmp.parse(v, 0, n, icmp.blank())).toBe(true);
    // a tiny datagram (total length 22) is quoted whole, not beyond its end
    const tiny = hex('45000016000000004001000001020304050607080800');
    ip.fillChecksum(viewOf(tiny), 0);
    expect(icmp.quoteLength(viewOf(tiny), 0, tiny.length + 10)).toBe(22);
    expect(icmp.quoteLength(viewOf(tiny), 0, 0)).toBe(0);
  });

  it('copies correctly when the quote and the error share a buffer (memmove)', () => {
    // datagram at offset 0, error written 8 bytes later: overlapping, destination after source
    const b = new Uint8Array(80);
    b.set(hex(DATAGRAM), 0);
    const v = viewOf(b);
    const n = icmp.emitError(icmp.TYPE_DEST_UNREACH, icmp.CODE_HOST_UNREACH, v, 0, v, 0, 33);
    // destination region starts at 8, source at 0: quote must still be the original bytes
    expect(Buffer.from(b.subarray(8, 8 + 28)).toString('hex')).toBe(QUOTE);
    expect(icmp.parse(v, 0, n, icmp.blank())).toBe(true);

    // destination before source
    const c = new Uint8Array(80);
    c.set(hex(DATAGRAM), 40);
    const w = viewOf(c);
    const m = icmp.emitError(icmp.TYPE_DEST_UNREACH, icmp.CODE_NET_UNREACH, w, 30, w, 40, 33);
    expect(Buffer.from(c.subarray(38, 38 + 28)).toString('hex')).toBe(QUOTE);
    expect(icmp.parse(w, 30, m, icmp.blank())).toBe(true);
  });
});
