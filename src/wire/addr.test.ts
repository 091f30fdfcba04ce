import { describe, expect, it } from 'vitest';
import * as addr from './addr.js';
import { hex, viewOf } from '../../test/helpers/round-trip.js';

const p6 = (s: string): Uint8Array => {
  const a = addr.parseIp6(s);
  if (a === null) throw new Error(s);
  return a;
};
const h = (a: Uint8Array | null): string | null => (a === null ? null : Buffer.from(a).toString('hex'));

describe('IPv6 text (RFC 4291 §2.2, RFC 5952)', () => {
  it.each([
    // RFC 4291 §2.2 examples, in their three forms
    ['ABCD:EF01:2345:6789:ABCD:EF01:2345:6789', 'abcdef0123456789abcdef0123456789'],
    ['2001:DB8:0:0:8:800:200C:417A', '20010db80000000000080800200c417a'],
    ['2001:DB8::8:800:200C:417A', '20010db80000000000080800200c417a'],
    ['FF01::101', 'ff010000000000000000000000000101'],
    ['::1', '00000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['0:0:0:0:0:0:13.1.68.3', '0000000000000000000000000d014403'],
    ['::13.1.68.3', '0000000000000000000000000d014403'],
    ['::FFFF:129.144.52.38', '00000000000000000000ffff81903426'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
    ['fe80::5054:ff:fe12:3456', 'fe80000000000000505400fffe123456'],
  ])('parses %s', (text, bytes) => {
    expect(h(addr.parseIp6(text))).toBe(bytes);
  });

  it.each([
    '', ':', ':::', '1:::2', '1::2::3', ':1::', '1::2:', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8', '12345::', 'g::', '1.2.3.4', '1.2.3.4::', '::1.2.3', '::256.1.1.1', '::1.2.3.4:5',
    'fe80::1%eth0', '[::1]', ' ::1', '::ffff:1.2.3.04a', 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555',
  ])('rejects %j', (text) => {
    expect(addr.parseIp6(text)).toBeNull();
  });

  it.each([
    // RFC 5952 §4.1 leading zeros, §4.2.1 shortest, §4.2.2 one zero group kept, §4.2.3 longest run then first, §4.3 lower case, §5 mapped
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:DB8::AAAA', '2001:db8::aaaa'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['0:1:0:0:0:0:0:0', '0:1::'],
    ['::ffff:0a00:020f', '::ffff:10.0.2.15'],
    ['0:0:0:0:0:0:13.1.68.3', '::d01:4403'],
    ['fe80:0:0:0:5054:ff:fe12:3456', 'fe80::5054:ff:fe12:3456'],
  ])('formats %s as %s', (text, canonical) => {
    expect(addr.formatIp6(p6(text))).toBe(canonical);
    expect(h(addr.parseIp6(canonical))).toBe(h(p6(text)));
  });

  it('formats at an offset, matching Node for random addresses', async () => {
    const { isIPv6 } = await import('node:net');
    const b = new Uint8Array(3 + 16);
    let x = 0x12345678;
    for (let round = 0; round < 2000; round++) {
      for (let i = 0; i < 16; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        // many zero groups, to exercise the :: choice
        b[3 + i] = (x >>> 28) < 9 ? 0 : x >>> 24;
      }
      const s = addr.formatIp6(b, 3);
      expect(isIPv6(s), s).toBe(true);
      expect(h(addr.parseIp6(s))).toBe(h(b.subarray(3)));
      expect(new URL(`http://[${s}]/`).hostname).toBe(`[${s}]`); // the WHATWG serializer is RFC 5952 too
    }
  });
});

describe('IPv6 prefixes and classes', () => {
  it('matches prefixes of every length, at an offset', () => {
    const net = p6('fd00:76:6d6e::');
    const frame = hex('00'.repeat(8) + Buffer.from(p6('fd00:76:6d6e:0:5054:ff:fe12:3456')).toString('hex'));
    for (const len of [0, 1, 7, 8, 9, 48, 63, 64, 65]) expect(addr.inPrefix6(frame, net, len, 8), `/${len}`).toBe(true);
    expect(addr.inPrefix6(frame, net, 66, 8)).toBe(false); // 0x50: the 66th bit is the first set one
    expect(addr.inPrefix6(p6('fd00:76:6d6f::1'), net, 48)).toBe(false);
    expect(addr.inPrefix6(p6('fd00:76:6d6f::1'), net, 47)).toBe(true);
    expect(addr.inPrefix6(p6('::1'), p6('::1'), 128)).toBe(true);
    expect(addr.inPrefix6(p6('::2'), p6('::1'), 128)).toBe(false);
  });

  it('parses CIDR text, clearing host bits', () => {
    const c = addr.parseCidr6('fd00:76:6d6e::15/64')!;
    expect([addr.formatIp6(c.net), c.prefix]).toEqual(['fd00:76:6d6e::', 64]);
    expect(addr.formatIp6(addr.parseCidr6('2001:db8:ffff::/33')!.net)).toBe('2001:db8:8000::');
    expect(addr.formatIp6(addr.parseCidr6('::1/128')!.net)).toBe('::1');
    expect(addr.formatIp6(addr.parseCidr6('ff::/0')!.net)).toBe('::');
    for (const bad of ['fd00::/129', 'fd00::', 'fd00::/-1', 'x/64', 'fd00::/64/1', 'fd00::/0064']) expect(addr.parseCidr6(bad), bad).toBeNull();
  });

  it('classifies addresses', () => {
    const cases: Array<[string, string[]]> = [
      ['::', ['unspecified']],
      ['::1', ['loopback']],
      ['fe80::1', ['linkLocal']],
      ['febf:ffff::1', ['linkLocal']],
      ['fec0::1', []],
      ['fc00::1', ['ula']],
      ['fdff::1', ['ula']],
      ['fe00::1', []],
      ['ff02::1', ['multicast']],
      ['ff02::1:ff12:3456', ['multicast', 'solicited']],
      ['ff02::1:fe12:3456', ['multicast']],
      ['ff05::1:ff12:3456', ['multicast']],
      ['::ffff:10.0.2.2', ['mapped']],
      ['2001:db8::1', []],
    ];
    for (const [text, classes] of cases) {
      const a = p6(text);
      const got = [
        addr.isUnspecified6(a) && 'unspecified',
        addr.isLoopback6(a) && 'loopback',
        addr.isLinkLocal6(a) && 'linkLocal',
        addr.isUla6(a) && 'ula',
        addr.isMulticast6(a) && 'multicast',
        addr.isSolicitedNode6(a) && 'solicited',
        addr.isIp4Mapped6(a) && 'mapped',
      ].filter(Boolean);
      expect(got, text).toEqual(classes);
    }
    expect(addr.multicastScope6(p6('ff02::1'))).toBe(2);
    expect(addr.multicastScope6(p6('ff05::1:3'))).toBe(5);
  });

  it('derives solicited-node addresses and multicast MACs (RFC 4291 §2.7.1, RFC 2464 §7)', () => {
    // as in the captured DAD probe: fe80::5054:ff:fe12:3456 → ff02::1:ff12:3456 → 33:33:ff:12:34:56
    const sn = addr.solicitedNode6(p6('fe80::5054:ff:fe12:3456'));
    expect(addr.formatIp6(sn)).toBe('ff02::1:ff12:3456');
    expect(addr.isSolicitedNode6(sn)).toBe(true);
    expect(addr.formatMac(addr.multicastMac6(sn))).toBe('33:33:ff:12:34:56');
    expect(addr.formatMac(addr.multicastMac6(addr.ALL_NODES_IP6))).toBe('33:33:00:00:00:01');
    const out = new Uint8Array(9);
    expect(addr.multicastMac6(p6('ff02::16'), out, 0, 3)).toBe(out);
    expect(h(out)).toBe('000000333300000016');
  });

  it('forms modified EUI-64 interface ids and addresses (RFC 4291 App. A, RFC 2464 §4)', () => {
    // RFC 4291 Appendix A: 34-56-78-9A-BC-DE → 36-56-78-FF-FE-9A-BC-DE
    const iid = new Uint8Array(8);
    addr.writeEui64(addr.parseMac('34:56:78:9a:bc:de')!, iid);
    expect(h(iid)).toBe('365678fffe9abcde');
    expect(addr.formatIp6(addr.eui64Address(addr.LINK_LOCAL_PREFIX6, addr.parseMac('52:54:00:12:34:56')!))).toBe('fe80::5054:ff:fe12:3456');
    expect(addr.formatIp6(addr.eui64Address(p6('fd00:76:6d6e::ffff'), addr.parseMac('52:55:0a:00:02:02')!))).toBe('fd00:76:6d6e:0:5055:aff:fe00:202');
  });

  it('exposes the well-known addresses', () => {
    expect([addr.UNSPECIFIED_IP6, addr.ALL_NODES_IP6, addr.ALL_ROUTERS_IP6, addr.LINK_LOCAL_PREFIX6].map((a) => addr.formatIp6(a))).toEqual(['::', 'ff02::1', 'ff02::2', 'fe80::']);
  });
});

describe('IPv6 bytes', () => {
  it('reads, writes and compares addresses through a view at odd offsets', () => {
    const a = p6('2001:db8::8:800:200c:417a');
    const buf = new Uint8Array(40);
    const v = viewOf(buf.subarray(3));
    addr.writeIp6(v, 5, a);
    expect(h(buf.subarray(8, 24))).toBe(h(a));
    const out = new Uint8Array(20);
    addr.readIp6(v, 5, out, 2);
    expect(addr.eqIp6(out, a, 2)).toBe(true);
    expect(addr.eqIp6(buf, a, 8)).toBe(true);
    out[17] = out[17]! ^ 1;
    expect(addr.eqIp6(out, a, 2)).toBe(false);
  });

  it('makes one distinct 8-character key per address', () => {
    const keys = new Set<string>();
    const a = new Uint8Array(16);
    for (let i = 0; i < 16; i++) {
      for (const bit of [1, 0x80]) {
        a.fill(0);
        a[i] = bit;
        keys.add(addr.ip6Key(a));
      }
    }
    keys.add(addr.ip6Key(new Uint8Array(16)));
    expect(keys.size).toBe(33);
    const k = addr.ip6Key(p6('fd00:76:6d6e::2'));
    expect(k.length).toBe(8);
    expect(addr.ip6Key(hex('ff' + Buffer.from(p6('fd00:76:6d6e::2')).toString('hex')), 1)).toBe(k);
  });
});

describe('MAC classes', () => {
  it('a group or all-zero MAC is never a source; any other is, wherever it lies in a buffer', () => {
    const at = (m: number[]) => Uint8Array.of(0xff, 0xff, ...m);
    expect(addr.isBadSourceMac(at([0x52, 0x55, 0x0a, 0, 2, 2]), 2)).toBe(false);
    expect(addr.isBadSourceMac(at([0, 0, 0, 0, 0, 1]), 2)).toBe(false);
    expect(addr.isBadSourceMac(at([0, 0, 0, 0, 0, 0]), 2)).toBe(true);
    expect(addr.isBadSourceMac(at([0x01, 0x00, 0x5e, 0, 0, 1]), 2)).toBe(true);
    expect(addr.isBadSourceMac(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toBe(true);
  });
});
