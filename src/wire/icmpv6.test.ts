import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import { capturedPacket, ip6, ipv6Packet, udpDatagram6 } from '../../test/helpers/frames6.js';
import * as icmpv6 from './icmpv6.js';
import * as ipv6 from './ipv6.js';

/** Round-trip adapter: the 8-byte header of a message with payloadLength data bytes; payloadOffset relative. */
const codec: Codec<icmpv6.Header> = {
  length: icmpv6.length,
  emit: icmpv6.emit,
  blank: icmpv6.blank,
  parse(v, o, len, out) {
    const r = icmpv6.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

const GUEST = ip6('fd00:76:6d6e:0:5054:ff:fe12:3456');
const GW = ip6('fd00:76:6d6e::2');
const header = (over: Partial<icmpv6.Header>): icmpv6.Header => ({ ...icmpv6.blank(), payloadOffset: 8, ...over });
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('icmpv6 header (RFC 4443 §2.1)', () => {
  it('round-trips each body layout (fixtures)', () => {
    roundTrip(codec, header({ type: 128, id: 0x555d, seq: 0, checksum: 0xc065 }), '8000c065555d0000');
    roundTrip(codec, header({ type: 2, code: 0, mtu: 1280, checksum: 0x1234, payloadLength: 40 }), '0200123400000500' + '00'.repeat(40));
    roundTrip(codec, header({ type: 4, code: 1, pointer: 40, payloadLength: 48 }), '0401000000000028' + '00'.repeat(48));
    roundTrip(codec, header({ type: 1, code: 4, id: 0, seq: 0 }), '0104000000000000');
    roundTrip(codec, header({ type: 3, code: 1, id: 0xdead, seq: 0xbeef }), '03010000deadbeef'); // unused bytes kept as they came
    roundTrip(codec, header({ type: 2, mtu: 0xfffffff0 }), '02000000fffffff0');
  });

  it("parses Linux's echo request and reproduces it with emitEcho (frame 25)", () => {
    const p = capturedPacket(25);
    const v = viewOf(p);
    const h = icmpv6.blank();
    expect(icmpv6.parse(v, 40, 16, h)).toBe(true);
    expect(h).toEqual({ type: 128, code: 0, checksum: 0xc065, id: 0x555d, seq: 0, mtu: 0, pointer: 0, payloadOffset: 48, payloadLength: 8 });
    expect([icmpv6.type(v, 40), icmpv6.code(v, 40), icmpv6.echoId(v, 40), icmpv6.echoSeq(v, 40)]).toEqual([128, 0, 0x555d, 0]);
    expect(icmpv6.verify(v, 40, 16, GUEST, GW)).toBe(true);
    expect(icmpv6.verify(v, 40, 16, GUEST, ip6('fd00:76:6d6e::3'))).toBe(false);
    const out = new Uint8Array(5 + 16);
    out.set(p.subarray(48), 5 + 8);
    expect(icmpv6.emitEcho(icmpv6.TYPE_ECHO_REQUEST, 0x555d, 0, viewOf(out), 5, 8, GUEST, GW)).toBe(16);
    expect(hexOf(out.subarray(5))).toBe(hexOf(p.subarray(40)));
  });

  it("turns the request into Linux's reply in place (frames 25 → 26, RFC 1624)", () => {
    const p = capturedPacket(25).slice();
    icmpv6.toEchoReply(viewOf(p), 40);
    expect(hexOf(p.subarray(40))).toBe(hexOf(capturedPacket(26).subarray(40)));
    expect(icmpv6.verify(viewOf(p), 40, 16, GW, GUEST)).toBe(true);
  });

  it('fills checksums: a message to a multicast address needs a recomputation, not the incremental patch', () => {
    const m = hex('8000 0000 0001 0002 616263');
    const v = viewOf(m);
    const all = ip6('ff02::1');
    icmpv6.fillChecksum(v, 0, m.length, GUEST, all);
    expect(icmpv6.verify(v, 0, m.length, GUEST, all)).toBe(true);
    icmpv6.toEchoReply(v, 0);
    expect(icmpv6.verify(v, 0, m.length, GW, GUEST)).toBe(false);
    icmpv6.fillChecksum(v, 0, m.length, GW, GUEST);
    expect(icmpv6.verify(v, 0, m.length, GW, GUEST)).toBe(true);
  });

  it('rejects messages shorter than 8 bytes, and never reads past len', () => {
    const p = capturedPacket(25);
    for (let n = 0; n < 8; n++) expect(icmpv6.parse(new DataView(p.buffer, p.byteOffset, 40 + n), 40, n, icmpv6.blank())).toBe(false);
  });
});

describe('icmpv6 errors (RFC 4443 §3, §2.4)', () => {
  it("reproduces Linux's port unreachable about a UDP datagram (frames 35 → 36)", () => {
    const invoking = capturedPacket(35);
    const expected = capturedPacket(36).subarray(40);
    const out = new Uint8Array(3 + expected.length);
    const q = viewOf(invoking);
    expect(icmpv6.errorLength(q, 0, invoking.length)).toBe(expected.length);
    const n = icmpv6.emitError(icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_PORT_UNREACH, 0, viewOf(out), 3, q, 0, invoking.length, GW, GUEST);
    expect(n).toBe(expected.length);
    expect(hexOf(out.subarray(3))).toBe(hexOf(expected));
  });

  it('writes Packet Too Big with the MTU and Parameter Problem with the pointer', () => {
    const invoking = ipv6Packet({ src: GUEST, dst: GW, nextHeader: ipv6.NH_UDP }, udpDatagram6(GUEST, GW, 1, 2, new Uint8Array(1452)));
    const q = viewOf(invoking);
    const out = new Uint8Array(icmpv6.errorLength(q, 0, invoking.length));
    expect(out.length).toBe(1240); // the error fits the 1280-byte minimum MTU with its IPv6 header
    const v = viewOf(out);
    icmpv6.emitError(icmpv6.TYPE_PACKET_TOO_BIG, 0, 1280, v, 0, q, 0, invoking.length, GW, GUEST);
    const h = icmpv6.blank();
    expect(icmpv6.parse(v, 0, out.length, h)).toBe(true);
    expect([h.type, h.mtu, h.payloadLength]).toEqual([2, 1280, icmpv6.MAX_QUOTE]);
    expect(icmpv6.verify(v, 0, out.length, GW, GUEST)).toBe(true);
    expect(hexOf(out.subarray(8))).toBe(hexOf(invoking.subarray(0, icmpv6.MAX_QUOTE)));
    icmpv6.emitError(icmpv6.TYPE_PARAM_PROBLEM, ipv6.PROBLEM_NEXT_HEADER, 6, v, 0, q, 0, invoking.length, GW, GUEST);
    expect(icmpv6.parse(v, 0, out.length, h) && [h.type, h.code, h.pointer, h.mtu]).toEqual([4, 1, 6, 0]);
    expect(icmpv6.verify(v, 0, out.length, GW, GUEST)).toBe(true);
  });

  it('quotes no more than the packet, the bytes available and 1232 bytes', () => {
    const p = capturedPacket(35); // 53 bytes
    const q = viewOf(p);
    expect(icmpv6.quoteLength(q, 0, p.length)).toBe(53);
    const padded = new Uint8Array(80);
    padded.set(p);
    expect(icmpv6.quoteLength(viewOf(padded), 0, 80)).toBe(53); // Ethernet padding is not quoted
    expect(icmpv6.quoteLength(q, 0, 30)).toBe(30);
    expect(icmpv6.quoteLength(q, 0, 0)).toBe(0);
    const big = new Uint8Array(2000);
    viewOf(big).setUint16(4, 1960);
    expect(icmpv6.quoteLength(viewOf(big), 0, 2000)).toBe(1232);
  });

  it('quotes correctly when the error is written over the invoking packet in one buffer', () => {
    // the gateway may build the error in the frame it received: quote at +8 from the packet's own start
    const p = capturedPacket(35);
    const buf = new Uint8Array(8 + p.length);
    buf.set(p);
    const v = viewOf(buf);
    icmpv6.emitError(icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_PORT_UNREACH, 0, v, 0, v, 0, p.length, GW, GUEST);
    expect(hexOf(buf)).toBe(hexOf(capturedPacket(36).subarray(40)));
  });

  it('allows errors only where RFC 4443 §2.4(e) does', () => {
    const all = ip6('ff02::1');
    const unspec = ip6('::');
    const PTB = icmpv6.TYPE_PACKET_TOO_BIG;
    const PP = icmpv6.TYPE_PARAM_PROBLEM;
    const DU = icmpv6.TYPE_DEST_UNREACH;
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, false, -1)).toBe(true);
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, false, icmpv6.TYPE_ECHO_REQUEST)).toBe(true);
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, false, icmpv6.TYPE_DEST_UNREACH)).toBe(false); // about an error
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, false, icmpv6.TYPE_PARAM_PROBLEM)).toBe(false);
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, false, icmpv6.TYPE_REDIRECT)).toBe(false);
    expect(icmpv6.errorAllowed(DU, false, unspec, GW, false, -1)).toBe(false); // source names no node
    expect(icmpv6.errorAllowed(DU, false, all, GW, false, -1)).toBe(false);
    expect(icmpv6.errorAllowed(DU, false, GUEST, all, false, -1)).toBe(false); // to a multicast address
    expect(icmpv6.errorAllowed(DU, false, GUEST, GW, true, -1)).toBe(false); // as a link-layer multicast
    expect(icmpv6.errorAllowed(PTB, false, GUEST, all, true, -1)).toBe(true); // the exceptions
    expect(icmpv6.errorAllowed(PP, true, GUEST, all, false, -1)).toBe(true);
    expect(icmpv6.errorAllowed(PP, false, GUEST, all, false, -1)).toBe(false);
    expect(icmpv6.isError(127)).toBe(true);
    expect(icmpv6.isError(128)).toBe(false);
  });
});
