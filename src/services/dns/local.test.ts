import { describe, expect, it } from 'vitest';
import { parseIp4 } from '../../wire/addr.js';
import { VmnetError } from '../../errors.js';
import { formatIp6, LocalZone, parseDnsRecord, parseIp6, reverseName4, reverseName6 } from './local.js';

const ip = (s: string) => {
  const v = parseIp4(s);
  if (v === -1) throw new Error(s);
  return v;
};

const zone = (extra: Partial<ConstructorParameters<typeof LocalZone>[0]> = {}) =>
  new LocalZone({
    hostIp: ip('10.0.2.2'),
    gatewayIp: ip('10.0.2.2'),
    dnsIp: ip('10.0.2.3'),
    records: [
      parseDnsRecord('db.test=10.0.2.100'),
      parseDnsRecord('db.test=10.0.2.101'),
      parseDnsRecord('db.test=10.0.2.100'), // duplicate, dropped
      parseDnsRecord('v6only.test=fd00::64'),
      parseDnsRecord('deep.sub.vmnet.internal=10.0.2.50'),
    ],
    ...extra,
  });

const data = (r: ReturnType<LocalZone['resolve']>) => r?.answers.map((a) => `${a.type} ${a.data}`);

describe('LocalZone built-ins', () => {
  it('answers host/gateway/dns.vmnet.internal with A, case-insensitively and with a trailing dot', () => {
    const z = zone();
    expect(data(z.resolve('host.vmnet.internal', 'A'))).toEqual(['A 10.0.2.2']);
    expect(data(z.resolve('GATEWAY.VMnet.Internal.', 'A'))).toEqual(['A 10.0.2.2']);
    expect(data(z.resolve('dns.vmnet.internal', 'A'))).toEqual(['A 10.0.2.3']);
    const r = z.resolve('HoSt.vmnet.internal.', 'A')!;
    expect(r.answers[0]).toEqual({ name: 'HoSt.vmnet.internal', type: 'A', class: 'IN', ttl: 60, data: '10.0.2.2' });
  });

  it('gives NODATA for AAAA of an A-only name, and NODATA for other types', () => {
    const z = zone();
    expect(z.resolve('host.vmnet.internal', 'AAAA')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('host.vmnet.internal', 'MX')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('host.vmnet.internal', 'UNKNOWN_65')).toEqual({ rcode: 'NOERROR', answers: [] });
  });

  it('answers AAAA when an IPv6 host address is configured', () => {
    const z = zone({ hostIp6: 'FD00:0::2' });
    expect(data(z.resolve('host.vmnet.internal', 'AAAA'))).toEqual(['AAAA fd00::2']);
    expect(data(z.resolve('host.vmnet.internal', 'ANY'))).toEqual(['A 10.0.2.2', 'AAAA fd00::2']);
  });

  it('has no dns.vmnet.internal without dnsIp, and NXDOMAIN for unknown vmnet.internal names', () => {
    const z = new LocalZone({ hostIp: ip('10.0.2.2'), gatewayIp: ip('10.0.2.2') });
    expect(z.resolve('dns.vmnet.internal', 'A')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(z.resolve('nope.vmnet.internal', 'A')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(z.resolve('a.b.vmnet.internal', 'AAAA')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
  });

  it('treats the zone apex and empty non-terminals as existing (NODATA)', () => {
    const z = zone();
    expect(z.resolve('vmnet.internal', 'A')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('sub.vmnet.internal', 'A')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(data(z.resolve('deep.sub.vmnet.internal', 'A'))).toEqual(['A 10.0.2.50']);
  });

  it('lets non-local names through (null)', () => {
    const z = zone();
    expect(z.resolve('example.com', 'A')).toBeNull();
    expect(z.resolve('internal', 'A')).toBeNull();
    expect(z.resolve('test', 'A')).toBeNull(); // parent of user records outside our zone
  });
});

describe('LocalZone RFC 6761 names', () => {
  it('NXDOMAINs .invalid (and .onion) for every type', () => {
    const z = zone();
    for (const n of ['invalid', 'foo.invalid', 'A.B.INVALID.', 'x.onion']) {
      expect(z.resolve(n, 'A')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
      expect(z.resolve(n, 'TXT')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
      expect(z.isReserved(n)).toBe(true);
    }
  });

  it('answers localhost and *.localhost with loopback, NODATA otherwise', () => {
    const z = zone();
    expect(data(z.resolve('localhost', 'A'))).toEqual(['A 127.0.0.1']);
    expect(data(z.resolve('LocalHost.', 'AAAA'))).toEqual(['AAAA ::1']);
    expect(data(z.resolve('app.localhost', 'A'))).toEqual(['A 127.0.0.1']);
    expect(z.resolve('localhost', 'MX')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('localhost.example.com', 'A')).toBeNull();
  });

  it('gives no records in other classes than IN/ANY but still never forwards', () => {
    const z = zone();
    expect(z.resolve('localhost', 'A', 'CH')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('x.invalid', 'A', 'CH')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(data(z.resolve('localhost', 'A', 'ANY'))).toEqual(['A 127.0.0.1']);
  });
});

describe('LocalZone user records', () => {
  it('answers several A records per name and NODATA for AAAA', () => {
    const z = zone();
    expect(data(z.resolve('DB.test', 'A'))).toEqual(['A 10.0.2.100', 'A 10.0.2.101']);
    expect(z.resolve('db.test', 'AAAA')).toEqual({ rcode: 'NOERROR', answers: [] });
  });

  it('answers AAAA records and NODATA for A of an AAAA-only name', () => {
    const z = zone();
    expect(data(z.resolve('v6only.test', 'AAAA'))).toEqual(['AAAA fd00::64']);
    expect(z.resolve('v6only.test', 'A')).toEqual({ rcode: 'NOERROR', answers: [] });
  });

  it('lets a user record replace a built-in name', () => {
    const z = zone({ records: [parseDnsRecord('host.vmnet.internal=192.168.1.5')] });
    expect(data(z.resolve('host.vmnet.internal', 'A'))).toEqual(['A 192.168.1.5']);
  });
});

describe('LocalZone VM names (lookupHost hook)', () => {
  const vms: Record<string, number[]> = { web: [ip('10.0.2.15')], nov4: [] };
  const z = zone({
    lookupHost: (l) => vms[l] ?? null,
    lookupAddr: (a) => (a === ip('10.0.2.15') ? 'web' : null),
  });

  it('resolves LABEL.vmnet.internal and bare LABEL', () => {
    expect(data(z.resolve('web.vmnet.internal', 'A'))).toEqual(['A 10.0.2.15']);
    expect(data(z.resolve('WEB', 'A'))).toEqual(['A 10.0.2.15']);
    expect(z.resolve('web.vmnet.internal', 'AAAA')).toEqual({ rcode: 'NOERROR', answers: [] });
    expect(z.resolve('nov4.vmnet.internal', 'A')).toEqual({ rcode: 'NOERROR', answers: [] });
  });

  it('NXDOMAINs unknown VM names in the zone but forwards unknown bare labels', () => {
    expect(z.resolve('other.vmnet.internal', 'A')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
    expect(z.resolve('other', 'A')).toBeNull();
    expect(z.resolve('x.web.vmnet.internal', 'A')).toEqual({ rcode: 'NXDOMAIN', answers: [] });
  });

  it('picks up a hook installed later', () => {
    const z2 = zone();
    expect(z2.resolve('late.vmnet.internal', 'A')?.rcode).toBe('NXDOMAIN');
    z2.setLookupHost((l) => (l === 'late' ? [ip('10.0.2.16')] : null));
    expect(data(z2.resolve('late.vmnet.internal', 'A'))).toEqual(['A 10.0.2.16']);
  });

  it('answers AAAA for a VM name from the IPv6 hook, only for names the IPv4 hook knows', () => {
    const z3 = zone();
    z3.setLookupHost((l) => vms[l] ?? null, null, (l) => (l === 'web' || l === 'ghost' ? ['fd00::5054:ff:fe12:3456'] : []));
    expect(data(z3.resolve('web.vmnet.internal', 'AAAA'))).toEqual(['AAAA fd00::5054:ff:fe12:3456']);
    expect(data(z3.resolve('web', 'ANY'))).toEqual(['A 10.0.2.15', 'AAAA fd00::5054:ff:fe12:3456']);
    expect(z3.resolve('ghost.vmnet.internal', 'AAAA')?.rcode).toBe('NXDOMAIN');
  });

  it('answers PTR for VM addresses', () => {
    expect(data(z.resolve(reverseName4(ip('10.0.2.15')), 'PTR'))).toEqual(['PTR web.vmnet.internal']);
  });
});

describe('LocalZone PTR', () => {
  const z = zone();
  it('answers the local addresses (first name per address wins) and loopback', () => {
    expect(data(z.resolve('2.2.0.10.in-addr.arpa', 'PTR'))).toEqual(['PTR gateway.vmnet.internal']);
    expect(data(z.resolve('3.2.0.10.IN-ADDR.ARPA.', 'PTR'))).toEqual(['PTR dns.vmnet.internal']);
    expect(data(z.resolve('100.2.0.10.in-addr.arpa', 'PTR'))).toEqual(['PTR db.test']);
    expect(data(z.resolve('1.0.0.127.in-addr.arpa', 'PTR'))).toEqual(['PTR localhost']);
    expect(data(z.resolve(reverseName6(parseIp6('fd00::64')!), 'PTR'))).toEqual(['PTR v6only.test']);
    expect(data(z.resolve(reverseName6(parseIp6('::1')!), 'PTR'))).toEqual(['PTR localhost']);
  });

  it('forwards PTR for other addresses', () => {
    expect(z.resolve('8.8.8.8.in-addr.arpa', 'PTR')).toBeNull();
    expect(z.resolve('2.2.0.10.in-addr.arpa', 'A')).toBeNull();
  });
});

describe('parseDnsRecord', () => {
  it('parses A and AAAA specs, normalizing the name', () => {
    expect(parseDnsRecord('DB.Test.=10.0.2.100')).toEqual({ name: 'db.test', type: 'A', address: ip('10.0.2.100') });
    expect(parseDnsRecord('db=2001:DB8:0:0::1')).toEqual({ name: 'db', type: 'AAAA', address: '2001:db8::1' });
    expect(parseDnsRecord('_svc.x-y.test = 1.2.3.4').type).toBe('A');
  });

  it.each([
    ['db.test', /expected NAME=IP/],
    ['=10.0.2.1', /not a valid host name/],
    ['bad name=10.0.2.1', /not a valid host name/],
    ['-x.test=10.0.2.1', /not a valid host name/],
    ['a..b=10.0.2.1', /not a valid host name/],
    [`${'a'.repeat(64)}.test=10.0.2.1`, /not a valid host name/],
    ['db.test=', /is not an IPv4 or IPv6 address/],
    ['db.test=10.0.2.256', /is not an IPv4 or IPv6 address/],
    ['db.test=example.com', /is not an IPv4 or IPv6 address/],
    ['db.test=1:2:3', /is not an IPv4 or IPv6 address/],
    ['x.invalid=10.0.2.1', /reserved/],
    ['localhost=10.0.2.1', /reserved/],
  ])('rejects %j', (spec, re) => {
    let err: unknown;
    try {
      parseDnsRecord(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmnetError);
    expect((err as VmnetError).code).toBe('E_USAGE');
    expect((err as VmnetError).message).toMatch(re);
    expect((err as VmnetError).message).not.toContain('\n');
  });
});

describe('IPv6 text', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0001:0000:0000:0000:0000:0001', '2001:db8:1::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ])('%s → %s', (text, canon) => {
    expect(formatIp6(parseIp6(text)!)).toBe(canon);
  });

  it.each(['', ':', '1:2', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '12345::', 'g::', '1.2.3.4::', '::1.2.3', 'fe80::1%eth0'])(
    'rejects %j',
    (text) => {
      expect(parseIp6(text)).toBeNull();
    },
  );
});
