import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import { capturedPacket, ip6, macText, ndpMessage, ndpRepr } from '../../test/helpers/frames6.js';
import { xorshift32 } from '../../test/helpers/frames.js';
import * as ndp from './ndp.js';
import * as icmpv6 from './icmpv6.js';
import { formatIp6, parseMac } from './addr.js';

const codec: Codec<ndp.Message> = { length: ndp.length, emit: ndp.emit, parse: ndp.parse, blank: ndp.blank };

const GUEST_LL = ip6('fe80::5054:ff:fe12:3456');
const GW_LL = ip6('fe80::5055:aff:fe00:202');
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** The ICMPv6 message of a captured frame, as hex. */
const icmpHex = (n: number): string => hexOf(capturedPacket(n).subarray(40));

/** Parses hex as an NDP message, or null. */
function parsed(text: string | Uint8Array): ndp.Message | null {
  const b = typeof text === 'string' ? hex(text) : text;
  const m = ndp.blank();
  return ndp.parse(viewOf(b), 0, b.length, m) ? m : null;
}

describe('ndp messages captured from Linux and dnsmasq (RFC 4861 §4)', () => {
  it("decodes dnsmasq's RA and emits it back byte for byte (frame 12)", () => {
    const m = parsed(icmpHex(12))!;
    expect([m.type, m.code, m.checksum, m.curHopLimit, m.flags, m.routerLifetime, m.reachableTime, m.retransTimer]).toEqual([134, 0, 0x02da, 64, 0xc0, 1800, 0, 0]);
    expect(m.flags & ndp.RA_MANAGED).toBeTruthy();
    expect(m.flags & ndp.RA_OTHER).toBeTruthy();
    expect(ndp.routerPreference(m.flags)).toBe(ndp.PRF_MEDIUM);
    const o = m.options;
    expect(o.prefixes.map((x) => [x.prefixLength, x.flags, x.validLifetime, x.preferredLifetime, formatIp6(x.prefix)])).toEqual([[64, ndp.PREFIX_ON_LINK | ndp.PREFIX_AUTONOMOUS, 3600, 3600, 'fd00:76:6d6e::']]);
    expect(o.mtu).toBe(1500);
    expect(macText(o.sourceLinkAddr)).toBe('52:55:0a:00:02:02');
    expect(o.dnssl).toEqual([{ lifetime: 3600, domains: ['vmnet.internal', 'example.org'] }]);
    expect(o.rdnss.map((r) => [r.lifetime, r.servers.map((s) => formatIp6(s))])).toEqual([[3600, ['fd00:76:6d6e::3']]]);
    expect([o.targetLinkAddr, o.nonce, o.redirected, o.routes, o.unknown]).toEqual([null, null, null, [], []]);
    roundTrip(codec, m, icmpHex(12));
    // and with the checksum computed by the wire code
    expect(hexOf(ndpMessage(m, GW_LL, GUEST_LL))).toBe(icmpHex(12));
  });

  it("decodes Linux's RS, DAD probe with a nonce (RFC 7527), NS and NAs, and emits each back", () => {
    const rs = parsed(icmpHex(11))!;
    expect([rs.type, macText(rs.options.sourceLinkAddr)]).toEqual([133, '52:54:00:12:34:56']);
    const dad = parsed(icmpHex(5))!;
    expect([dad.type, formatIp6(dad.target), hexOf(dad.options.nonce!), dad.options.sourceLinkAddr]).toEqual([135, 'fe80::5054:ff:fe12:3456', '4803bd93501e', null]);
    const ns = parsed(icmpHex(23))!;
    expect([ns.type, formatIp6(ns.target), macText(ns.options.sourceLinkAddr)]).toEqual([135, 'fd00:76:6d6e::2', '52:54:00:12:34:56']);
    const na = parsed(icmpHex(18))!;
    expect([na.type, na.flags, formatIp6(na.target), na.options.targetLinkAddr]).toEqual([136, ndp.NA_SOLICITED, 'fe80::5054:ff:fe12:3456', null]);
    const rna = parsed(icmpHex(24))!;
    expect([rna.flags, formatIp6(rna.target), macText(rna.options.targetLinkAddr)]).toEqual([ndp.NA_ROUTER | ndp.NA_SOLICITED | ndp.NA_OVERRIDE, 'fd00:76:6d6e::2', '52:55:0a:00:02:02']);
    for (const n of [5, 11, 17, 18, 23, 24]) roundTrip(codec, parsed(icmpHex(n))!, icmpHex(n));
  });

  it('applies the IP-level rules (checkIp): hop limit 255, sources and destinations per type', () => {
    const ip = (n: number) => {
      const p = capturedPacket(n);
      return [p[7]!, p.subarray(8, 24), p.subarray(24, 40)] as const;
    };
    for (const n of [5, 11, 12, 17, 18, 23, 24]) expect(ndp.checkIp(parsed(icmpHex(n))!, ...ip(n)), `frame ${n}`).toBe(true);
    // frame 7: dnsmasq's first RA left from its global address before its link-local one was ready: not a valid RA
    expect(ndp.checkIp(parsed(icmpHex(7))!, ...ip(7))).toBe(false);
    const [, src, dst] = ip(23);
    expect(ndp.checkIp(parsed(icmpHex(23))!, 254, src, dst)).toBe(false);
    expect(ndp.checkIp(parsed(icmpHex(23))!, 64, src, dst)).toBe(false);
    const unspec = ip6('::');
    const sn = ip6('ff02::1:ff00:2');
    const withSll = ndpRepr(135, { target: ip6('fd00:76:6d6e::2') }, { sourceLinkAddr: parseMac('52:54:00:12:34:56') });
    expect(ndp.checkIp(withSll, 255, unspec, sn)).toBe(false); // DAD carries no SLLA
    expect(ndp.checkIp({ ...withSll, options: ndp.blankOptions() }, 255, unspec, ip6('fd00:76:6d6e::2'))).toBe(false); // DAD goes to solicited-node
    expect(ndp.checkIp(ndpRepr(133, {}, { sourceLinkAddr: parseMac('52:54:00:12:34:56') }), 255, unspec, ip6('ff02::2'))).toBe(false);
    expect(ndp.checkIp(ndpRepr(136, { flags: ndp.NA_SOLICITED }), 255, GUEST_LL, ip6('ff02::1'))).toBe(false);
    expect(ndp.checkIp(ndpRepr(136, { flags: ndp.NA_OVERRIDE }), 255, GUEST_LL, ip6('ff02::1'))).toBe(true);
    expect(ndp.checkIp(ndpRepr(137), 255, ip6('fd00::1'), GUEST_LL)).toBe(false);
    expect(ndp.checkIp(ndpRepr(137), 255, GW_LL, GUEST_LL)).toBe(true);
  });
});

describe('ndp options', () => {
  it('round-trips route information (RFC 4191 §2.3) in all three lengths, preferences and infinite lifetimes', () => {
    const ra = ndpRepr(
      134,
      { curHopLimit: 64, flags: ndp.RA_OTHER | (ndp.PRF_HIGH << 3), routerLifetime: 0xffff, reachableTime: 30000, retransTimer: 1000 },
      {
        routes: [
          { prefixLength: 0, preference: ndp.PRF_LOW, lifetime: ndp.INFINITE, prefix: ip6('::') },
          { prefixLength: 48, preference: ndp.PRF_MEDIUM, lifetime: 60, prefix: ip6('2001:db8:1::') },
          { prefixLength: 96, preference: ndp.PRF_HIGH, lifetime: 60, prefix: ip6('2001:db8:1:2:3:4::') },
        ],
        rdnss: [{ lifetime: 0, servers: [ip6('fd00::3'), ip6('fd00::4')] }],
        dnssl: [{ lifetime: 10, domains: ['a'] }, { lifetime: 10, domains: ['example.org', 'x.y.z'] }],
      },
    );
    const b = roundTrip(codec, ra);
    expect(b.length).toBe(16 + 8 + 16 + 24 + 40 + 16 + 32);
    expect(ndp.routerPreference(ra.flags)).toBe(ndp.PRF_HIGH);
    expect(ndp.routerPreference(0x10)).toBe(ndp.PRF_MEDIUM); // the reserved value 10
  });

  it('parses a redirect with its redirected header (parse, then emit back)', () => {
    const rd = ndpRepr(137, { target: GW_LL, destination: ip6('2001:db8::1') }, { targetLinkAddr: parseMac('52:55:0a:00:02:02'), redirected: hex('6000000000083a40' + '00'.repeat(32) + '8000000000010001') });
    const m = parsed(roundTrip(codec, rd))!;
    expect([formatIp6(m.target), formatIp6(m.destination), m.options.redirected!.length]).toEqual(['fe80::5055:aff:fe00:202', '2001:db8::1', 48]);
  });

  it('keeps unknown options raw and in order, and the first of repeated single options', () => {
    const text = '8500 0000 00000000' + '0101 525400123456' + '0101 aaaaaaaaaaaa' + 'fe02 0102030405060708090a0b0c0d0e' + '0501 0000 000005dc' + '0501 0000 00000500';
    const m = parsed(text)!;
    expect([macText(m.options.sourceLinkAddr), m.options.mtu]).toEqual(['52:54:00:12:34:56', 1500]);
    expect(m.options.unknown.map((u) => [u.type, hexOf(u.data)])).toEqual([[254, '0102030405060708090a0b0c0d0e']]);
  });

  it.each([
    ['a link-layer address of length 2', '0102 525400123456 0000 000000000000'],
    ['a prefix length over 128', '0304 81c0 00000e10 00000e10 00000000 fd0000766d6e00000000000000000000'],
    ['a prefix option of length 3', '0303 40c0 00000e10 00000e10 00000000 fd0000766d6e0000'],
    ['an MTU option of length 2', '0502 0000 000005dc 0000000000000000'],
    ['an RDNSS of length 2 (even)', '1902 0000 00000e10 fd0000766d6e0000'],
    ['an RDNSS of length 1', '1901 0000 00000e10'],
    ['a DNSSL of length 1', '1f01 0000 00000e10'],
    ['a DNSSL with a compression pointer', '1f02 0000 00000e10 0161 c000 00000000'],
    ['a DNSSL label past the end', '1f02 0000 00000e10 0961 62 00000000 00'],
    ['a DNSSL of padding only', '1f02 0000 00000e10 0000000000000000'],
    ['a route of length 1 for a /64', '1801 4000 00000e10'],
    ['a route of length 2 for a /65', '1802 4100 00000e10 2001000000000000'],
    ['a route of length 4', '1804 4000 00000e10' + '00'.repeat(24)],
    ['a route with the reserved preference 10', '1802 4010 00000e10 2001000000000000'],
  ])('treats %s as unknown, the message still valid', (_name, option) => {
    const m = parsed('8600 0000 40000000 00000000 00000000' + option)!;
    expect(m).not.toBeNull();
    const o = m.options;
    expect([o.sourceLinkAddr, o.prefixes.length, o.mtu, o.rdnss.length, o.dnssl.length, o.routes.length]).toEqual([null, 0, null, 0, 0, 0]);
    expect(o.unknown).toHaveLength(1);
    expect(hexOf(hex(option).subarray(2))).toBe(hexOf(o.unknown[0]!.data));
  });

  it('emits unknown options with their padding, and options sized from the repr', () => {
    const m = ndpRepr(136, { flags: ndp.NA_OVERRIDE, target: GUEST_LL }, { targetLinkAddr: parseMac('52:54:00:12:34:56'), unknown: [{ type: 99, data: hex('0102030405') }] });
    expect(hexOf(roundTrip(codec, { ...m, options: { ...m.options, unknown: [{ type: 99, data: hex('010203040500') }] } }))).toBe(
      '88000000' + '20000000' + 'fe80000000000000505400fffe123456' + '0201525400123456' + '6301010203040500',
    );
  });
});

describe('ndp malformed input (RFC 4861 §6.1, §7.1, §8.1)', () => {
  it.each([
    ['an unknown type', '8000 0000 00000000'],
    ['code 1', '8501 0000 00000000'],
    ['an RS shorter than 8 bytes', '8500 0000 000000'],
    ['an RA shorter than 16 bytes', '8600 0000 40000000 00000000 000000'],
    ['an NS shorter than 24 bytes', '8700 0000 00000000 fe800000000000000000000000000001'.slice(0, -2)],
    ['an option of length 0', '8500 0000 00000000 0100 525400123456'],
    ['an option past the end', '8500 0000 00000000 0102 525400123456'],
    ['a lone option type byte', '8500 0000 00000000 01'],
    ['a multicast NS target', '8700 0000 00000000 ff020000000000000000000000000001'],
    ['a multicast NA target', '8800 0000 20000000 ff020000000000000000000000000001'],
    ['a multicast redirect destination', '8900 0000 00000000 fe800000000000000000000000000001 ff020000000000000000000000000001'],
  ])('rejects %s', (_name, text) => {
    expect(parsed(text)).toBeNull();
  });

  it('rejects more than MAX_OPTIONS options', () => {
    const opt = '0501 0000 000005dc';
    expect(parsed('8500 0000 00000000' + opt.repeat(ndp.MAX_OPTIONS))).not.toBeNull();
    expect(parsed('8500 0000 00000000' + opt.repeat(ndp.MAX_OPTIONS + 1))).toBeNull();
  });

  it('rejects every truncation of a real RA without reading past len, and survives random bytes', () => {
    const full = hex(icmpHex(12));
    const m = ndp.blank();
    for (let n = 0; n < full.length; n++) {
      // option boundaries inside the RA are the only lengths that parse
      const ok = ndp.parse(new DataView(full.buffer, 0, n), 0, n, m);
      expect(ok, `len ${n}`).toBe([16, 48, 56, 64, 104].includes(n));
    }
    const rnd = xorshift32(99);
    for (let round = 0; round < 3000; round++) {
      const n = 8 + rnd.int(120);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = rnd.chance(0.3) ? rnd.int(4) : rnd.int(256);
      b[0] = 133 + rnd.int(5);
      b[1] = 0;
      expect(() => ndp.parse(new DataView(b.buffer, 0, n), 0, n, m)).not.toThrow();
    }
    expect(icmpv6.TYPE_ROUTER_ADVERT).toBe(134);
  });
});
