import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import { capturedPacket, fragmentHeader, ip6, ipv6Packet, optionsHeader, routingHeader, type TlvOption } from '../../test/helpers/frames6.js';
import { xorshift32 } from '../../test/helpers/frames.js';
import * as ipv6 from './ipv6.js';
import { formatIp6 } from './addr.js';

/** Round-trip adapter: header + payloadLength zero bytes; payloadOffset relative. */
const packet: Codec<ipv6.Header> = {
  length: (h) => ipv6.HEADER_LEN + h.payloadLength,
  emit: (h, v, o) => {
    ipv6.emit(h, v, o);
    return ipv6.HEADER_LEN + h.payloadLength;
  },
  blank: ipv6.blank,
  parse(v, o, len, out) {
    const r = ipv6.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

const fragment: Codec<ipv6.Fragment> = { length: ipv6.fragmentLength, emit: ipv6.emitFragment, parse: ipv6.parseFragment, blank: ipv6.blankFragment };

const A = ip6('fd00:76:6d6e:0:5054:ff:fe12:3456');
const B = ip6('fd00:76:6d6e::2');

/** Parses and walks a packet; returns the chain or null when walk returned false. */
function walked(p: Uint8Array, maxHeaders?: number, maxBytes?: number): ipv6.Chain | null {
  const v = viewOf(p);
  expect(ipv6.parse(v, 0, p.length, ipv6.blank())).toBe(true);
  const c = ipv6.blankChain();
  return ipv6.walk(v, 0, p.length, c, maxHeaders, maxBytes) ? c : null;
}

/** An IPv6 packet A → B whose payload is `chain` then 8 bytes of upper layer. */
const withChain = (first: number, ...headers: Uint8Array[]): Uint8Array => {
  const body = new Uint8Array(headers.reduce((n, x) => n + x.length, 0) + 8);
  let o = 0;
  for (const x of headers) {
    body.set(x, o);
    o += x.length;
  }
  return ipv6Packet({ src: A, dst: B, nextHeader: first }, body);
};
const opt = (type: number, len: number): TlvOption => ({ type, data: new Uint8Array(len) });

describe('ipv6 fixed header (RFC 8200 §3)', () => {
  it('round-trips a header (fixture: the captured echo request, frame 25)', () => {
    const value = { ...ipv6.blank(), flowLabel: 0x5f923, payloadLength: 16, nextHeader: ipv6.NH_ICMPV6, hopLimit: 64, src: A, dst: B, payloadOffset: 40 };
    const bytes = roundTrip(packet, value, '6005f92300103a40 fd0000766d6e0000505400fffe123456 fd0000766d6e00000000000000000002' + '00'.repeat(16));
    expect(Buffer.from(bytes.subarray(0, 40))).toEqual(Buffer.from(capturedPacket(25).subarray(0, 40)));
  });

  it('round-trips traffic class and the full flow label', () => {
    roundTrip(packet, { ...ipv6.blank(), trafficClass: 0xc3, flowLabel: 0xfffff, payloadLength: 0, nextHeader: ipv6.NH_NONE, hopLimit: 255, src: B, dst: A, payloadOffset: 40 });
  });

  it('decodes captured packets as tshark does, accessors agreeing', () => {
    const p = capturedPacket(12); // dnsmasq's RA: traffic class 0xc0, flow label 0xcf273, 128 bytes, hop limit 255
    const v = viewOf(p);
    const h = ipv6.blank();
    expect(ipv6.parse(v, 0, p.length, h)).toBe(true);
    expect([h.trafficClass, h.flowLabel, h.payloadLength, h.nextHeader, h.hopLimit, formatIp6(h.src), formatIp6(h.dst), h.payloadOffset]).toEqual([
      0xc0, 0xcf273, 128, 58, 255, 'fe80::5055:aff:fe00:202', 'fe80::5054:ff:fe12:3456', 40,
    ]);
    expect([ipv6.version(v, 0), ipv6.trafficClass(v, 0), ipv6.flowLabel(v, 0), ipv6.payloadLength(v, 0), ipv6.nextHeader(v, 0), ipv6.hopLimit(v, 0)]).toEqual([6, 0xc0, 0xcf273, 128, 58, 255]);
  });

  it('ignores link padding after the payload and rejects truncation at every length', () => {
    const p = hex(Buffer.from(capturedPacket(25)).toString('hex') + '000000000000');
    const h = ipv6.blank();
    expect(ipv6.parse(viewOf(p), 0, p.length, h)).toBe(true);
    expect(h.payloadLength).toBe(16);
    for (let n = 0; n < 56; n++) expect(ipv6.parse(viewOf(p), 0, n, h), `len ${n}`).toBe(false);
  });

  it('rejects other versions and a payload length past the buffer', () => {
    for (const first of [0x40, 0x00, 0x70, 0xf0]) {
      const p = capturedPacket(25).slice();
      p[0] = first;
      expect(ipv6.parse(viewOf(p), 0, p.length, ipv6.blank())).toBe(false);
    }
    const p = capturedPacket(25).slice();
    viewOf(p).setUint16(4, 17);
    expect(ipv6.parse(viewOf(p), 0, p.length, ipv6.blank())).toBe(false);
  });
});

describe('ipv6 extension header walk (RFC 8200 §4)', () => {
  it('goes straight to the upper layer without extension headers', () => {
    const c = walked(capturedPacket(27))!; // the captured TCP SYN
    expect([c.action, c.proto, c.offset, c.length, c.protoPointer, c.count, c.fragment, c.hopByHop]).toEqual([ipv6.ACTION_NONE, 6, 40, 40, 6, 0, false, false]);
  });

  it("walks Linux's MLDv2 report: Hop-by-Hop with Router Alert (MLD) and PadN (frame 1)", () => {
    const c = walked(capturedPacket(1))!;
    expect([c.action, c.proto, c.offset, c.length, c.protoPointer, c.count, c.hopByHop, c.routerAlert]).toEqual([ipv6.ACTION_NONE, 58, 48, 28, 40, 1, true, 0]);
  });

  it('walks Destination Options, Routing with Segments Left 0 and an atomic fragment', () => {
    const p = withChain(
      ipv6.NH_HOP_BY_HOP,
      optionsHeader(ipv6.NH_DEST_OPTS, [{ type: ipv6.OPT_ROUTER_ALERT, data: hex('0002') }]),
      optionsHeader(ipv6.NH_ROUTING, [opt(0x1e, 3)]),
      routingHeader(ipv6.NH_FRAGMENT, 4, 0, new Uint8Array(12)),
      fragmentHeader(ipv6.NH_DEST_OPTS, 0, false, 0xdeadbeef),
      optionsHeader(ipv6.NH_UDP, []),
    );
    const c = walked(p)!;
    expect([c.action, c.proto, c.offset, c.length, c.protoPointer, c.count]).toEqual([ipv6.ACTION_NONE, 17, 40 + 8 + 8 + 16 + 8 + 8, 8, 40 + 8 + 8 + 16 + 8, 5]);
    expect([c.routerAlert, c.routingType, c.segmentsLeft, c.atomicFragment, c.fragment]).toEqual([2, 4, 0, true, false]);
  });

  it('reports unknown options by their action bits, pointing at the option type (§4.2)', () => {
    const cases: Array<[number, number, number]> = [
      [0x1e, ipv6.ACTION_NONE, -1],
      [0x5e, ipv6.ACTION_DISCARD, -1],
      [0x9e, ipv6.ACTION_PROBLEM, 2],
      [0xde, ipv6.ACTION_PROBLEM_UNICAST, 2],
      [0xc2, ipv6.ACTION_PROBLEM_UNICAST, 2], // Jumbo Payload: no jumbograms on Ethernet
    ];
    for (const [type, action, code] of cases) {
      const c = walked(withChain(ipv6.NH_DEST_OPTS, optionsHeader(ipv6.NH_UDP, [opt(ipv6.OPT_PAD1, 0), { type: ipv6.OPT_PADN, data: new Uint8Array(1) }, opt(type, 2)])))!;
      expect([c.action, c.problemCode], type.toString(16)).toEqual([action, code]);
      if (code >= 0) expect(c.problemPointer).toBe(40 + 2 + 1 + 3);
    }
    // Router Alert means nothing in Destination Options: its action bits 00 skip it
    const c = walked(withChain(ipv6.NH_DEST_OPTS, optionsHeader(ipv6.NH_UDP, [{ type: ipv6.OPT_ROUTER_ALERT, data: hex('0000') }])))!;
    expect([c.action, c.routerAlert, c.proto]).toEqual([ipv6.ACTION_NONE, -1, 17]);
  });

  it('asks for Parameter Problem code 1 when Hop-by-Hop is not first (§4.1)', () => {
    const c = walked(withChain(ipv6.NH_DEST_OPTS, optionsHeader(ipv6.NH_HOP_BY_HOP, []), optionsHeader(ipv6.NH_UDP, [])))!;
    expect([c.action, c.problemCode, c.problemPointer]).toEqual([ipv6.ACTION_PROBLEM_UNICAST, ipv6.PROBLEM_NEXT_HEADER, 40]);
  });

  it('asks for Parameter Problem code 0 at the Routing Type when Segments Left is not 0 (§4.4)', () => {
    const c = walked(withChain(ipv6.NH_DEST_OPTS, optionsHeader(ipv6.NH_ROUTING, []), routingHeader(ipv6.NH_TCP, 0, 1, new Uint8Array(20))))!;
    expect([c.action, c.problemCode, c.problemPointer, c.routingType, c.segmentsLeft]).toEqual([ipv6.ACTION_PROBLEM_UNICAST, ipv6.PROBLEM_HEADER, 50, 0, 1]);
  });

  it('stops at a non-first fragment with what the reassembly needs (§4.5)', () => {
    const p = withChain(ipv6.NH_FRAGMENT, fragmentHeader(ipv6.NH_UDP, 1448, true, 0x01020304), new Uint8Array(8));
    const c = walked(p)!;
    expect([c.action, c.fragment, c.fragmentHeader, c.fragOffset, c.fragMore, c.fragId, c.fragNextHeader, c.fragDataOffset, c.fragDataLength]).toEqual([
      ipv6.ACTION_NONE, true, 40, 1448, true, 0x01020304, 17, 48, 16,
    ]);
    expect([c.proto, c.offset, c.length, c.protoPointer]).toEqual([17, 48, 16, 40]);
  });

  it('walks on through a first fragment, and asks for code 3 when its chain is cut (RFC 7112 §5)', () => {
    const first = walked(withChain(ipv6.NH_FRAGMENT, fragmentHeader(ipv6.NH_DEST_OPTS, 0, true, 7), optionsHeader(ipv6.NH_TCP, [])))!;
    expect([first.action, first.fragment, first.fragOffset, first.fragMore, first.proto, first.offset, first.length]).toEqual([ipv6.ACTION_NONE, true, 0, true, 6, 56, 8]);
    // a Destination Options header claiming 16 bytes where 8 remain, inside a first fragment
    const cut = withChain(ipv6.NH_FRAGMENT, fragmentHeader(ipv6.NH_DEST_OPTS, 0, true, 7));
    cut[40 + 8 + 1] = 1;
    const c = walked(cut)!;
    expect([c.action, c.problemCode, c.problemPointer]).toEqual([ipv6.ACTION_PROBLEM_UNICAST, ipv6.PROBLEM_INCOMPLETE_CHAIN, 0]);
  });

  it('asks for code 0 on a fragment not a multiple of 8 long, or ending past 65535 (§4.5)', () => {
    const odd = ipv6Packet({ src: A, dst: B, nextHeader: ipv6.NH_FRAGMENT }, new Uint8Array(8 + 13));
    odd.set(fragmentHeader(ipv6.NH_UDP, 8, true, 1), 40);
    expect(walked(odd)).toMatchObject({ action: ipv6.ACTION_PROBLEM_UNICAST, problemCode: 0, problemPointer: ipv6.PAYLOAD_LENGTH });
    odd.set(fragmentHeader(ipv6.NH_UDP, 8, false, 1), 40); // the last fragment may be of any length
    expect(walked(odd)).toMatchObject({ action: ipv6.ACTION_NONE, fragment: true, fragDataLength: 13 });
    const far = withChain(ipv6.NH_FRAGMENT, fragmentHeader(ipv6.NH_UDP, 65528, false, 1));
    expect(walked(far)).toMatchObject({ action: ipv6.ACTION_PROBLEM_UNICAST, problemCode: 0, problemPointer: 42 });
  });

  it('ends at ESP, AH, No Next Header and unknown protocols, pointing at the naming field', () => {
    for (const nh of [ipv6.NH_ESP, ipv6.NH_AH, ipv6.NH_NONE, 253, 135]) {
      const c = walked(withChain(ipv6.NH_DEST_OPTS, optionsHeader(nh, [])))!;
      expect([c.action, c.proto, c.offset, c.protoPointer]).toEqual([ipv6.ACTION_NONE, nh, 48, 40]);
    }
  });

  it('drops malformed options silently (walk false)', () => {
    const bad: Array<[string, Uint8Array]> = [
      ['PadN with data', optionsHeader(ipv6.NH_UDP, [{ type: ipv6.OPT_PADN, data: hex('000100') }])],
      ['8 bytes of padding', hex('11 01 0106000000000000 0000000000000000').subarray(0, 16)],
      ['option past the header', hex('11 00 1e 05 00000000')],
      ['type byte alone at the end', hex('11 00 01 03 000000 1e')],
      ['Router Alert of length 3', optionsHeader(ipv6.NH_UDP, [{ type: ipv6.OPT_ROUTER_ALERT, data: hex('000000') }])],
      ['9 options', optionsHeader(ipv6.NH_UDP, new Array<TlvOption>(9).fill(opt(0x1e, 0)))],
    ];
    for (const [name, header] of bad) expect(walked(withChain(ipv6.NH_HOP_BY_HOP, header)), name).toBeNull();
    // seven bytes of padding and eight options are fine
    expect(walked(withChain(ipv6.NH_HOP_BY_HOP, hex('1101 01050000000000 1e00 010100 0000')))?.action).toBe(ipv6.ACTION_NONE);
    expect(walked(withChain(ipv6.NH_HOP_BY_HOP, optionsHeader(ipv6.NH_UDP, new Array<TlvOption>(8).fill(opt(0x1e, 0)))))?.proto).toBe(17);
  });

  it('drops headers that run past the payload, a second fragment header and chains over the bounds', () => {
    const long = withChain(ipv6.NH_DEST_OPTS, optionsHeader(ipv6.NH_UDP, []));
    long.set(hex('1e06'), 48); // the last 8 bytes read as an option when the header claims them
    long[41] = 1; // 16 bytes claimed, 16 available: fine; 24 claimed is not
    expect(walked(long)).toMatchObject({ proto: 17, offset: 56, length: 0 });
    long[41] = 2;
    expect(walked(long)).toBeNull();
    const twice = withChain(ipv6.NH_FRAGMENT, fragmentHeader(ipv6.NH_FRAGMENT, 0, true, 1), fragmentHeader(ipv6.NH_UDP, 8, true, 1));
    expect(walked(twice)).toBeNull();
    const many = (n: number) => withChain(ipv6.NH_DEST_OPTS, ...Array.from({ length: n }, (_, i) => optionsHeader(i === n - 1 ? ipv6.NH_UDP : ipv6.NH_DEST_OPTS, [])));
    expect(walked(many(ipv6.MAX_HEADERS))?.count).toBe(ipv6.MAX_HEADERS);
    expect(walked(many(ipv6.MAX_HEADERS + 1))).toBeNull();
    expect(walked(many(4), 3)).toBeNull();
    expect(walked(many(4), 8, 31)).toBeNull();
    expect(walked(many(4), 8, 32)?.proto).toBe(17);
  });

  it('never throws, never reads past len, and keeps offsets inside the payload on random chains', () => {
    const rnd = xorshift32(0xc0ffee);
    const kinds = [ipv6.NH_HOP_BY_HOP, ipv6.NH_DEST_OPTS, ipv6.NH_ROUTING, ipv6.NH_FRAGMENT, ipv6.NH_UDP, ipv6.NH_NONE];
    const c = ipv6.blankChain();
    const seen = new Set<string>();
    for (let round = 0; round < 6000; round++) {
      const n = 40 + rnd.int(80);
      const b = new Uint8Array(n + 16).fill(0xee); // bytes past len would be noticed
      const v = viewOf(b);
      for (let i = 40; i < n; i++) b[i] = rnd.chance(0.3) ? kinds[rnd.int(kinds.length)]! : rnd.chance(0.5) ? rnd.int(4) : rnd.int(256);
      ipv6.emit({ ...ipv6.blank(), payloadLength: n - 40 - rnd.int(3), nextHeader: kinds[rnd.int(kinds.length)]!, src: A, dst: B }, v, 0);
      const guard = new DataView(b.buffer, 0, n); // reading past n throws RangeError
      let ok = false;
      expect(() => (ok = ipv6.walk(guard, 0, n, c))).not.toThrow();
      if (ok && c.action === ipv6.ACTION_NONE) {
        expect(c.offset).toBeGreaterThanOrEqual(40);
        expect(c.offset + c.length).toBe(40 + ipv6.payloadLength(v, 0));
      }
      if (ok && c.action >= ipv6.ACTION_PROBLEM) expect(c.problemPointer).toBeLessThan(n);
      seen.add(ok ? `${c.action}${c.fragment ? 'f' : ''}` : 'drop');
    }
    // every outcome was reached: the inputs were not all trivially rejected
    expect([...seen].sort()).toEqual(['0', '0f', '1', '2', '3', '3f', 'drop']);
  });
});

describe('ipv6 fragment header (RFC 8200 §4.5)', () => {
  it('round-trips (fixture) and ignores the reserved bits', () => {
    roundTrip(fragment, { nextHeader: ipv6.NH_UDP, offset: 1448, more: true, id: 0xdeadbeef }, '11 00 05a9 deadbeef');
    roundTrip(fragment, { nextHeader: ipv6.NH_TCP, offset: 65528, more: false, id: 1 }, '06 00 fff8 00000001');
    const f = ipv6.blankFragment();
    expect(ipv6.parseFragment(viewOf(hex('11 ff 05af deadbeef')), 0, 8, f)).toBe(true);
    expect(f).toEqual({ nextHeader: 17, offset: 1448, more: true, id: 0xdeadbeef });
    for (let n = 0; n < 8; n++) expect(ipv6.parseFragment(viewOf(hex('11 00 05a9 deadbeef')), 0, n, f)).toBe(false);
  });
});
