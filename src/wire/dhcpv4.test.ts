import { describe, expect, it } from 'vitest';
import * as dhcp from './dhcpv4.js';
import * as addr from './addr.js';
import { hex, roundTrip, viewOf } from '../../test/helpers/round-trip.js';

const ip = (s: string): number => {
  const a = addr.parseIp4(s);
  if (a === -1) throw new Error(s);
  return a;
};
const zeros = (n: number): string => '00'.repeat(n);

/** Fixed header of a message from/to 52:54:00:12:34:56, xid 9c9d6111, with the given op/yiaddr. */
const header = (op: string, yiaddr = '00000000'): string =>
  `${op} 01 06 00  9c9d6111  0000 0000  00000000 ${yiaddr} 00000000 00000000` +
  ` 525400123456 ${zeros(10)} ${zeros(64)} ${zeros(128)} 63825363`;

/**
 * A DHCPDISCOVER captured from busybox 1.35.0 `udhcpc -i v0` (MAC
 * 52:54:00:12:34:56) on a veth pair in a network namespace: option order
 * 53, 57 (576), 55 (1,3,6,12,15,28,42), 60 "udhcp 1.35.0", 61 (01+MAC), end,
 * zero-padded to 300 bytes.
 */
const UDHCPC_DISCOVER =
  header('01') +
  '350101 39020240 37070103060c0f1c2a 3c0c756468637020312e33352e30 3d0701525400123456 ff' +
  zeros(20);

const parseHex = (h: string): dhcp.Message | null => {
  const b = hex(h);
  const m = dhcp.blank();
  return dhcp.parse(viewOf(b), 0, b.length, m) ? m : null;
};

/** Lengths of the instances of option `code` in an encoded message, walking the TLVs. */
function instances(b: Uint8Array, code: number): number[] {
  const out: number[] = [];
  for (let p = 240; p < b.length && b[p] !== 255; ) {
    if (b[p] === 0) {
      p++;
      continue;
    }
    if (b[p] === code) out.push(b[p + 1]!);
    p += 2 + b[p + 1]!;
  }
  return out;
}

const codec = { length: dhcp.length, emit: dhcp.emit, parse: dhcp.parse, blank: dhcp.blank };

describe('dhcpv4 parse', () => {
  it('decodes a real udhcpc DISCOVER', () => {
    expect(hex(UDHCPC_DISCOVER).length).toBe(300);
    const m = parseHex(UDHCPC_DISCOVER)!;
    expect(m).not.toBeNull();
    expect(m.op).toBe(dhcp.BOOTREQUEST);
    expect(m.htype).toBe(1);
    expect(m.hlen).toBe(6);
    expect(m.xid).toBe(0x9c9d6111);
    expect(m.flags).toBe(0);
    expect(addr.formatMac(m.chaddr)).toBe('52:54:00:12:34:56');
    expect(m.messageType).toBe(dhcp.DISCOVER);
    expect(m.options.maxMessageSize).toBe(576);
    expect(m.options.paramRequest).toEqual([1, 3, 6, 12, 15, 28, 42]);
    expect(Array.from(m.options.clientId!)).toEqual([1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(m.options.unknown).toEqual([{ code: 60, data: new TextEncoder().encode('udhcp 1.35.0') }]);
    expect(m.sname).toBe('');
    expect(m.file).toBe('');
  });

  it('re-emits a parsed DISCOVER to an equal message of 300 bytes', () => {
    const m = parseHex(UDHCPC_DISCOVER)!;
    expect(dhcp.length(m)).toBe(300);
    roundTrip(codec, m);
  });

  it('rejects short payloads, a bad cookie and out-of-view lengths', () => {
    const b = hex(UDHCPC_DISCOVER);
    const m = dhcp.blank();
    expect(dhcp.parse(viewOf(b), 0, 239, m)).toBe(false);
    expect(dhcp.parse(viewOf(b), 0, 240, m)).toBe(true); // cookie, no options: tolerated
    expect(dhcp.parse(viewOf(b), 1, 300, m)).toBe(false);
    const bad = b.slice();
    bad[236] = 0x64;
    expect(dhcp.parse(viewOf(bad), 0, bad.length, m)).toBe(false);
  });

  it('skips pads, tolerates a missing end and stops at a truncated option', () => {
    // pad pad 53=REQUEST pad 50=10.0.2.15, no end option
    let m = parseHex(header('01') + '0000 350103 00 32040a00020f')!;
    expect(m.messageType).toBe(dhcp.REQUEST);
    expect(m.options.requestedIp).toBe(ip('10.0.2.15'));
    // 12 claims 9 bytes but only 3 remain: dropped, 53 before it kept
    m = parseHex(header('01') + '350101 0c09616263')!;
    expect(m.messageType).toBe(dhcp.DISCOVER);
    expect(m.options.hostname).toBeNull();
    expect(m.options.unknown).toEqual([]);
    // a code with no length byte
    m = parseHex(header('01') + '350101 0c')!;
    expect(m.messageType).toBe(dhcp.DISCOVER);
    // nothing after end is read
    m = parseHex(header('01') + '350101 ff 0c03616263')!;
    expect(m.options.hostname).toBeNull();
  });

  it('keeps malformed typed options and zero-length options raw', () => {
    const m = parseHex(header('01') + '35020101 3603010203 0c00 0300 1a0105 7900 ff')!;
    expect(m.messageType).toBe(0);
    expect(m.options.serverId).toBeNull();
    expect(m.options.hostname).toBeNull();
    expect(m.options.routers).toEqual([]);
    expect(m.options.unknown.map((r) => [r.code, r.data.length])).toEqual([
      [53, 2],
      [54, 3],
      [12, 0],
      [3, 0],
      [26, 1],
      [121, 0],
    ]);
  });

  it('concatenates split options (RFC 3396) and drops trailing NULs from text', () => {
    const m = parseHex(header('01') + '0604 0a000203 350101 0604 08080808 0c03 6162 63 0c02 6400 ff')!;
    expect(m.options.dns).toEqual([ip('10.0.2.3'), ip('8.8.8.8')]);
    expect(m.options.hostname).toBe('abcd');
  });

  it('reads options from file and sname when overloaded (option 52)', () => {
    const file = ('0c03616263' + 'ff').padEnd(256, '0');
    const sname = ('0f03636f6d' + '0c0164' + 'ff').padEnd(128, '0');
    const h =
      `01 01 06 00 9c9d6111 0000 0000 ${zeros(16)} 525400123456 ${zeros(10)} ${sname} ${file} 63825363` +
      '350101 340103 0c0178 ff';
    const m = parseHex(h)!;
    expect(m.sname).toBe('');
    expect(m.file).toBe('');
    // order: options field ("x"), then file ("abc"), then sname ("d")
    expect(m.options.hostname).toBe('xabcd');
    expect(m.options.domainName).toBe('com');
    expect(m.options.unknown).toEqual([]);
  });

  it('reads sname and file as strings when not overloaded', () => {
    const sname = '7476'.padEnd(128, '0'); // "tv"
    const file = '626f6f742e656669'.padEnd(256, '0'); // "boot.efi"
    const m = parseHex(`02 01 06 00 00000001 0000 8000 ${zeros(16)} 525400123456 ${zeros(10)} ${sname} ${file} 63825363 350102 ff`)!;
    expect(m.sname).toBe('tv');
    expect(m.file).toBe('boot.efi');
    expect(dhcp.wantsBroadcast(m)).toBe(true);
    roundTrip(codec, m);
  });
});

describe('dhcpv4 option 119 (RFC 3397)', () => {
  // The example of RFC 3397 §3: eng.apple.com, then marketing.apple.com via a pointer to offset 4.
  const RFC3397 = '03656e67 056170706c65 03636f6d 00 096d61726b6574696e67 c004';

  it('decodes compression pointers', () => {
    const m = parseHex(header('02') + `771b ${RFC3397} ff`)!;
    expect(m.options.domainSearch).toEqual(['eng.apple.com', 'marketing.apple.com']);
  });

  it('follows pointers across split instances (offsets into the concatenation)', () => {
    const whole = RFC3397.replace(/\s+/g, '');
    const a = whole.slice(0, 20); // 10 bytes
    const b = whole.slice(20); // 17 bytes
    const m = parseHex(header('02') + `770a${a} 350105 7711${b} ff`)!;
    expect(m.options.domainSearch).toEqual(['eng.apple.com', 'marketing.apple.com']);
  });

  it('rejects looping, forward and truncated names', () => {
    expect(dhcp.decodeSearchList(hex('c000'))).toBeNull();
    expect(dhcp.decodeSearchList(hex('0161 c000'))).toBeNull(); // points at its own name start
    expect(dhcp.decodeSearchList(hex('0161 00 0162 c004'))).toBeNull(); // points at itself
    expect(dhcp.decodeSearchList(hex('c002 0161 00'))).toBeNull(); // forward
    expect(dhcp.decodeSearchList(hex('0361 62'))).toBeNull();
    expect(dhcp.decodeSearchList(hex('4161 00'))).toBeNull(); // label type 01
    expect(dhcp.decodeSearchList(hex('0161 00 0162 c000 00'))).toEqual(['a', 'b.a', '']);
    const m = parseHex(header('02') + '7702c000 ff')!;
    expect(m.options.domainSearch).toEqual([]);
    expect(m.options.unknown).toEqual([{ code: 119, data: hex('c000') }]);
  });

  it('emits uncompressed and splits long lists', () => {
    const names = Array.from({ length: 30 }, (_, i) => `zone${i}.example.org`);
    const m = dhcp.blank();
    m.op = dhcp.BOOTREPLY;
    m.messageType = dhcp.ACK;
    m.options.domainSearch = names;
    const bytes = roundTrip(codec, m);
    // 10 names of 19 bytes + 20 of 20 = 590 bytes of value: instances of 255, 255, 80
    expect(instances(bytes, 119)).toEqual([255, 255, 80]);
  });
});

describe('dhcpv4 option 121 (RFC 3442)', () => {
  it('decodes the RFC 3442 encodings of every width class', () => {
    const r = dhcp.decodeRoutes(hex('00 0a000202  08 0a 0a000203  18 c0a801 0a000204  20 c0a80101 0a000205  19 c0a80180 0a000206'));
    expect(r).toEqual([
      { net: 0, prefix: 0, gateway: ip('10.0.2.2') },
      { net: ip('10.0.0.0'), prefix: 8, gateway: ip('10.0.2.3') },
      { net: ip('192.168.1.0'), prefix: 24, gateway: ip('10.0.2.4') },
      { net: ip('192.168.1.1'), prefix: 32, gateway: ip('10.0.2.5') },
      { net: ip('192.168.1.128'), prefix: 25, gateway: ip('10.0.2.6') },
    ]);
  });

  it('rejects widths over 32 and truncated routes', () => {
    expect(dhcp.decodeRoutes(hex('21 0a000000 00 0a000202'))).toBeNull();
    expect(dhcp.decodeRoutes(hex('18 c0a801 0a0002'))).toBeNull();
    expect(dhcp.decodeRoutes(hex(''))).toBeNull();
  });
});

describe('dhcpv4 emit', () => {
  const offer = (): dhcp.Message => {
    const m = dhcp.blank();
    m.op = dhcp.BOOTREPLY;
    m.htype = 1;
    m.hlen = 6;
    m.xid = 0x9c9d6111;
    m.yiaddr = ip('10.0.2.15');
    m.chaddr = addr.parseMac('52:54:00:12:34:56')!;
    m.messageType = dhcp.OFFER;
    const o = m.options;
    o.serverId = ip('10.0.2.2');
    o.leaseTime = 3600;
    o.t1 = 1800;
    o.t2 = 3150;
    o.subnetMask = ip('255.255.255.0');
    o.routers = [ip('10.0.2.2')];
    o.dns = [ip('10.0.2.3')];
    o.domainName = 'example';
    o.mtu = 1500;
    o.broadcast = ip('10.0.2.255');
    o.clientId = hex('01525400123456');
    o.domainSearch = ['example.com'];
    o.staticRoutes = [
      { net: 0, prefix: 0, gateway: ip('10.0.2.2') },
      { net: ip('192.168.0.0'), prefix: 16, gateway: ip('10.0.2.3') },
    ];
    return m;
  };

  it('writes an OFFER byte for byte', () => {
    const fixture =
      header('02', '0a00020f') +
      '350102 36040a000202 330400000e10 3a0400000708 3b0400000c4e' +
      ' 0104ffffff00 03040a000202 06040a000203 0f076578616d706c65 1a0205dc 1c040a0002ff' +
      ' 3d0701525400123456 770d076578616d706c6503636f6d00 790c000a000202 10c0a80a000203 ff';
    const bytes = roundTrip(codec, offer(), fixture);
    expect(bytes.length).toBe(343);
  });

  it('pads short messages to 300 bytes with zeros', () => {
    const m = dhcp.blank();
    m.op = dhcp.BOOTREPLY;
    m.htype = 1;
    m.hlen = 6;
    m.xid = 0x9c9d6111;
    m.chaddr = addr.parseMac('52:54:00:12:34:56')!;
    m.messageType = dhcp.NAK;
    m.options.serverId = ip('10.0.2.2');
    m.options.message = 'wrong network';
    const fixture = header('02') + '350106 36040a000202 380d77726f6e67206e6574776f726b ff' + zeros(35);
    roundTrip(codec, m, fixture);
  });

  it('overwrites a dirty buffer completely', () => {
    const m = offer();
    const n = dhcp.length(m);
    const a = new Uint8Array(n).fill(0xee);
    const b = new Uint8Array(n);
    dhcp.emit(m, viewOf(a), 0);
    dhcp.emit(m, viewOf(b), 0);
    expect(a).toEqual(b);
  });

  it('splits a 300-byte hostname into two instances', () => {
    const m = offer();
    m.options.hostname = 'h'.repeat(300);
    const bytes = roundTrip(codec, m);
    expect(instances(bytes, 12)).toEqual([255, 45]);
  });

  it('round-trips raw options, including zero-length ones, after the typed ones', () => {
    const m = offer();
    m.options.unknown = [
      { code: 60, data: hex('756468') },
      { code: 80, data: new Uint8Array(0) },
    ];
    const bytes = roundTrip(codec, m);
    expect(Buffer.from(bytes.subarray(bytes.length - 8)).toString('hex')).toBe('3c03756468500' + '0ff');
  });
});

describe('dhcpv4 fuzz', () => {
  /** xorshift32, seeded: the same 10,000 cases on every run. */
  const rng = (seed: number) => () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };

  it('never throws on 10,000 random and mutated buffers, and what parses re-emits', () => {
    const rand = rng(0x1234567);
    const seeds = [hex(UDHCPC_DISCOVER), hex(header('02') + '350105 771b03656e67056170706c6503636f6d00096d61726b6574696e67c004 790c000a00020210c0a80a000203 340103 ff')];
    const out = dhcp.blank();
    let parsed = 0;
    for (let i = 0; i < 10_000; i++) {
      let b: Uint8Array;
      if (i % 4 === 0) {
        b = new Uint8Array(Math.floor(rand() * 600));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
        if (b.length >= 240 && rand() < 0.7) b.set([0x63, 0x82, 0x53, 0x63], 236);
      } else {
        const base = seeds[i % 2]!;
        b = base.slice(0, 200 + Math.floor(rand() * (base.length - 199)));
        const flips = 1 + Math.floor(rand() * 12);
        for (let k = 0; k < flips; k++) {
          const at = rand() < 0.8 ? 240 + Math.floor(rand() * Math.max(1, b.length - 240)) : Math.floor(rand() * b.length);
          if (at < b.length) b[at] = rand() < 0.3 ? [0, 255, 52, 119, 121][Math.floor(rand() * 5)]! : Math.floor(rand() * 256);
        }
      }
      const v = viewOf(b);
      const ok = dhcp.parse(v, 0, b.length, out);
      if (!ok) continue;
      parsed++;
      const n = dhcp.length(out);
      const w = new Uint8Array(n);
      expect(dhcp.emit(out, viewOf(w), 0)).toBe(n);
      const again = dhcp.blank();
      expect(dhcp.parse(viewOf(w), 0, n, again)).toBe(true);
    }
    expect(parsed).toBeGreaterThan(5000);
  });
});
