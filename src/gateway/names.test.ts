import { describe, expect, it } from 'vitest';
import { GuestNames, isDnsLabel } from './names.js';

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';

function setup() {
  const addresses = new Map<string, number>();
  const dhcp = new Map<string, number>();
  const names = new GuestNames({ addressOf: (mac) => addresses.get(mac) ?? null, dhcpLookup: (l) => dhcp.get(l) ?? null, domain: 'vmnet.internal' });
  return { names, addresses, dhcp };
}

describe('GuestNames', () => {
  it('answers vmnet names first, never falling through to DHCP while the VM has no address', () => {
    const { names, addresses, dhcp } = setup();
    dhcp.set('web', 0x0a000210);
    dhcp.set('db', 0x0a000211);
    names.set(A.toUpperCase(), 'Web');
    expect(names.resolve('web')).toEqual([]); // exists, no address: NODATA
    expect(names.lookup('web')).toBeNull();
    addresses.set(A, 0x0a00020f);
    expect(names.resolve('WEB.vmnet.internal.')).toEqual([0x0a00020f]);
    expect(names.resolve('db')).toEqual([0x0a000211]);
    expect(names.resolve('nobody')).toBeNull();
    expect(names.list()).toEqual([{ name: 'web', mac: A, ip: 0x0a00020f }]);
  });

  it('moves a name to the MAC it is registered for last, one name per MAC; remove frees it', () => {
    const { names, addresses } = setup();
    addresses.set(A, 1);
    addresses.set(B, 2);
    names.set(A, 'web');
    names.set(B, 'web');
    expect(names.lookup('web')).toBe(2);
    names.set(B, 'api');
    expect(names.lookup('web')).toBeNull();
    expect(names.lookup('api')).toBe(2);
    names.remove(B);
    expect(names.list()).toEqual([]);
  });

  it('refuses names that are no DNS label and bad MACs', () => {
    const { names } = setup();
    expect(() => names.set(A, 'my_vm')).toThrow(/bad VM name/);
    expect(() => names.set(A, 'a\u001b[31m')).toThrow(/bad VM name "a\\u001b\[31m"/);
    expect(() => names.set('nope', 'web')).toThrow(/bad MAC/);
    expect(isDnsLabel('vm-1')).toBe(true);
    expect(isDnsLabel('-vm')).toBe(false);
  });
});
