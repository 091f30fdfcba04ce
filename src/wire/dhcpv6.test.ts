import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import { capturedPacket, dhcpv6Message, dhcpv6Repr, ip6 } from '../../test/helpers/frames6.js';
import { xorshift32 } from '../../test/helpers/frames.js';
import * as dhcpv6 from './dhcpv6.js';
import { formatIp6, parseMac } from './addr.js';

const codec: Codec<dhcpv6.Message> = { length: dhcpv6.length, emit: dhcpv6.emit, parse: dhcpv6.parse, blank: dhcpv6.blank };
const hexOf = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('hex'));
/** The DHCPv6 message of a captured frame (after IPv6 and UDP headers), as hex. */
const msgHex = (n: number): string => hexOf(capturedPacket(n).subarray(48))!;

function parsed(text: string | Uint8Array): dhcpv6.Message | null {
  const b = typeof text === 'string' ? hex(text) : text;
  const m = dhcpv6.blank();
  return dhcpv6.parse(viewOf(b), 0, b.length, m) ? m : null;
}

const CLIENT_LL = '00030001525400123456'; // DUID-LL of 52:54:00:12:34:56, as dhclient -S sent it
const CLIENT_LLT = '0001000132a6196f525400123456';
const SERVER = '0001000132a6196852550a000202'; // dnsmasq's DUID-LLT

describe('dhcpv6 messages captured from ISC dhclient 4.4 and dnsmasq 2.90 (RFC 8415)', () => {
  it('decodes the stateless exchange: Information-Request and Reply (frames 15, 16)', () => {
    const q = parsed(msgHex(15))!;
    expect([q.msgType, q.transactionId, hexOf(q.options.clientId), q.options.oro, q.options.elapsedTime]).toEqual([dhcpv6.INFORMATION_REQUEST, 0x7b23c6, CLIENT_LL, [23, 24, 39, 31], 0]);
    expect(dhcpv6.duidType(q.options.clientId!)).toBe(dhcpv6.DUID_LL);
    const r = parsed(msgHex(16))!;
    const o = r.options;
    expect([r.msgType, r.transactionId, hexOf(o.clientId), hexOf(o.serverId), o.domainSearch, o.dnsServers.map((a) => formatIp6(a)), o.infoRefreshTime]).toEqual([
      dhcpv6.REPLY, 0x7b23c6, CLIENT_LL, SERVER, ['vmnet.internal', 'example.org'], ['fd00:76:6d6e::3'], 3600,
    ]);
    expect(dhcpv6.duidType(o.serverId!)).toBe(dhcpv6.DUID_LLT);
    expect(o.unknown).toEqual([]);
  });

  it('decodes the stateful exchange: Solicit, Advertise, Request, Reply (frames 19-22)', () => {
    const sol = parsed(msgHex(19))!;
    expect([sol.msgType, sol.transactionId, hexOf(sol.options.clientId), sol.options.iaNa]).toEqual([
      dhcpv6.SOLICIT, 0xcf6eff, CLIENT_LLT, [{ iaid: 0x123456, t1: 3600, t2: 5400, addresses: [], status: null, unknown: [] }],
    ]);
    const adv = parsed(msgHex(20))!;
    const ia = adv.options.iaNa[0]!;
    expect([adv.msgType, ia.iaid, ia.t1, ia.t2, ia.addresses.map((a) => [formatIp6(a.address), a.preferredLifetime, a.validLifetime, a.status])]).toEqual([
      dhcpv6.ADVERTISE, 0x123456, 1800, 3150, [['fd00:76:6d6e::118', 3600, 3600, null]],
    ]);
    expect([adv.options.status, adv.options.preference, adv.options.rapidCommit]).toEqual([{ code: dhcpv6.STATUS_SUCCESS, message: 'success' }, 0, false]);
    const req = parsed(msgHex(21))!;
    expect([req.msgType, hexOf(req.options.serverId), req.options.iaNa[0]!.addresses[0]!.preferredLifetime, req.options.iaNa[0]!.addresses[0]!.validLifetime]).toEqual([dhcpv6.REQUEST, SERVER, 7200, 7500]);
    const rep = parsed(msgHex(22))!;
    expect([rep.msgType, rep.transactionId, formatIp6(rep.options.iaNa[0]!.addresses[0]!.address)]).toEqual([dhcpv6.REPLY, 0x4b3b37, 'fd00:76:6d6e::118']);
  });

  it('emits every captured message back byte for byte (option order shared by both implementations)', () => {
    for (const n of [15, 16, 19, 20, 21, 22]) roundTrip(codec, parsed(msgHex(n))!, msgHex(n));
  });
});

describe('dhcpv6 codec', () => {
  it('round-trips the options a server sends, IA status codes and UTF-8 status text included', () => {
    const m = dhcpv6Repr(
      { msgType: dhcpv6.REPLY, transactionId: 0xabcdef },
      {
        clientId: hex(CLIENT_LLT),
        serverId: dhcpv6.duidLl(parseMac('52:55:0a:00:02:02')!),
        iaNa: [
          { iaid: 1, t1: 0, t2: 0, addresses: [], status: { code: dhcpv6.STATUS_NO_ADDRS_AVAIL, message: 'no addresses' }, unknown: [] },
          {
            iaid: 2,
            t1: 1800,
            t2: 2880,
            addresses: [
              { address: ip6('fd00::1:2'), preferredLifetime: 3600, validLifetime: 0xffffffff, status: { code: 0, message: 'ok ✓' }, unknown: [{ code: 999, data: hex('01') }] },
              { address: ip6('fd00::1:3'), preferredLifetime: 0, validLifetime: 0, status: null, unknown: [] },
            ],
            status: null,
            unknown: [],
          },
        ],
        status: { code: dhcpv6.STATUS_SUCCESS, message: '' },
        preference: 255,
        rapidCommit: true,
        dnsServers: [ip6('fd00::3'), ip6('fd00::4')],
        domainSearch: ['vmnet.internal'],
        infoRefreshTime: dhcpv6.IRT_MINIMUM,
        unknown: [{ code: 39, data: hex('0003677565737400') }],
      },
    );
    const b = roundTrip(codec, m);
    expect(hexOf(b.subarray(0, 4))).toBe('07abcdef');
    expect(hexOf(dhcpv6.duidLl(parseMac('52:55:0a:00:02:02')!))).toBe('0003000152550a000202');
  });

  it('parses relay messages (RFC 8415 §9), the relayed message as bytes to parse again', () => {
    const inner = msgHex(19);
    const relay = `0c 01 ${'20010db8000000000000000000000001'} ${'fe80000000000000505400fffe123456'} 0012 0004 65746830 0009 ${(inner.length / 2).toString(16).padStart(4, '0')} ${inner}`;
    const m = parsed(relay)!;
    expect([m.msgType, m.transactionId, m.hopCount, formatIp6(m.linkAddress), formatIp6(m.peerAddress), hexOf(m.options.interfaceId)]).toEqual([
      dhcpv6.RELAY_FORW, 0, 1, '2001:db8::1', 'fe80::5054:ff:fe12:3456', '65746830',
    ]);
    expect(hexOf(m.options.relayMessage)).toBe(inner);
    expect(parsed(m.options.relayMessage!)!.msgType).toBe(dhcpv6.SOLICIT);
    roundTrip(codec, m, relay);
    expect(dhcpv6.isRelay(dhcpv6.RELAY_REPL)).toBe(true);
    expect(parsed('0d00' + '00'.repeat(31))).toBeNull(); // relay header cut short
  });

  it('keeps repeated single options and malformed typed ones raw, in order', () => {
    const m = parsed(
      '0b123456' +
        '0008 0002 0001' + // elapsed time
        '0008 0002 0002' + // repeated: raw
        '0008 0003 000000' + // wrong length: raw
        '0001 0002 0001' + // DUID too short: raw
        '0006 0003 001700' + // odd ORO: raw
        '0017 0010 fd000000000000000000000000000003' + // DNS servers
        '0017 0008 fd00000000000000' + // not a multiple of 16 and repeated: raw
        '0018 0004 03616200' + // a name without its final zero byte
        '000e 0001 00' + // rapid commit with a value: raw
        '0003 000b 0000000100000000000000' + // IA_NA shorter than 12: raw
        '0003 0010 00000001 00000000 00000000 0005 0004', // IA_NA whose address option runs past it: raw
    )!;
    expect([m.options.elapsedTime, m.options.dnsServers.map((a) => formatIp6(a)), m.options.clientId, m.options.oro, m.options.domainSearch, m.options.rapidCommit, m.options.iaNa]).toEqual([
      1, ['fd00::3'], null, [], [], false, [],
    ]);
    expect(m.options.unknown.map((u) => u.code)).toEqual([8, 8, 1, 6, 23, 24, 14, 3, 3]);
  });

  it.each([
    ['shorter than 4 bytes', '0b1234'],
    ['message type 0', '00123456'],
    ['message type 14', '0e123456'],
    ['an option header cut short', '0b123456 0008 00'],
    ['an option past the end', '0b123456 0008 0004 0000'],
  ])('rejects %s', (_name, text) => {
    expect(parsed(text)).toBeNull();
  });

  it('bounds the options, the IA_NAs and the addresses per IA_NA', () => {
    const elapsed = '0008 0002 0000';
    expect(parsed('0b123456' + elapsed.repeat(dhcpv6.MAX_OPTIONS))).not.toBeNull();
    expect(parsed('0b123456' + elapsed.repeat(dhcpv6.MAX_OPTIONS + 1))).toBeNull();
    const ia = (i: number, addrs = 0) => `0003 ${(12 + 28 * addrs).toString(16).padStart(4, '0')} ${i.toString(16).padStart(8, '0')} 00000000 00000000` + '0005 0018 fd000000000000000000000000000001 00000000 00000000'.repeat(addrs);
    expect(parsed('01123456' + Array.from({ length: dhcpv6.MAX_IA }, (_, i) => ia(i)).join(''))!.options.iaNa).toHaveLength(dhcpv6.MAX_IA);
    expect(parsed('01123456' + Array.from({ length: dhcpv6.MAX_IA + 1 }, (_, i) => ia(i)).join(''))).toBeNull();
    expect(parsed('01123456' + ia(1, dhcpv6.MAX_IA_ADDRESSES))!.options.iaNa[0]!.addresses).toHaveLength(dhcpv6.MAX_IA_ADDRESSES);
    const over = parsed('01123456' + ia(1, dhcpv6.MAX_IA_ADDRESSES + 1))!;
    expect([over.options.iaNa.length, over.options.unknown.map((u) => u.code)]).toEqual([0, [3]]);
  });

  it('rejects every truncation of a real Reply without reading past len, and survives random bytes', () => {
    const full = hex(msgHex(22));
    const m = dhcpv6.blank();
    const boundaries = new Set<number>();
    for (let p = 4; p < full.length; ) {
      boundaries.add(p);
      p += 4 + ((full[p + 2]! << 8) | full[p + 3]!);
    }
    for (let n = 0; n < full.length; n++) {
      expect(dhcpv6.parse(new DataView(full.buffer, 0, n), 0, n, m), `len ${n}`).toBe(boundaries.has(n));
    }
    const rnd = xorshift32(7);
    for (let round = 0; round < 3000; round++) {
      const n = 4 + rnd.int(120);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = rnd.chance(0.4) ? rnd.int(4) : rnd.chance(0.2) ? [3, 5, 13, 24][rnd.int(4)]! : rnd.int(256);
      b[0] = 1 + rnd.int(13);
      expect(() => dhcpv6.parse(new DataView(b.buffer, 0, n), 0, n, m)).not.toThrow();
    }
  });

  it('sizes a message with length() exactly as emit writes it', () => {
    const m = parsed(msgHex(20))!;
    const b = dhcpv6Message(m);
    expect(b.length).toBe(dhcpv6.length(m));
    expect(hexOf(b)).toBe(msgHex(20));
    expect(dhcpv6.duidType(new Uint8Array(1))).toBe(-1);
  });
});
