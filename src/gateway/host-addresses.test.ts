import { describe, expect, it } from 'vitest';
import type { NetworkInterfaceInfo } from 'node:os';
import { HostAddresses } from './host-addresses.js';

const v4 = (address: string): NetworkInterfaceInfo => ({ address, family: 'IPv4', netmask: '255.255.255.0', mac: '00:00:00:00:00:00', internal: false, cidr: null });

describe('HostAddresses', () => {
  it('collects every IPv4 address of every interface and follows changes on refresh', () => {
    let ifs: Record<string, NetworkInterfaceInfo[]> = { lo: [v4('127.0.0.1')], eth0: [v4('192.168.7.10'), { ...v4('fe80::1'), family: 'IPv6', scopeid: 2 }] };
    const h = new HostAddresses(() => ifs);
    expect([...h.current()].sort()).toEqual([0x7f000001, 0xc0a8070a]);
    const before = h.current();
    ifs = { ...ifs, wg0: [v4('10.9.0.2')] };
    h.refresh();
    expect(h.current().has(0x0a090002)).toBe(true);
    expect(before.has(0x0a090002)).toBe(false); // a reader's set never changes under it
  });

  it('collects the IPv6 addresses too, without their zones, in RFC 5952 form', () => {
    const v6 = (address: string, scopeid = 0): NetworkInterfaceInfo => ({ address, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal: false, cidr: null, scopeid });
    const h = new HostAddresses(() => ({ lo: [v6('::1')], eth0: [v6('fe80::1%eth0', 2), v6('2001:DB8:0:0::7'), v4('10.0.0.1')] }));
    expect([...h.current6()].sort()).toEqual(['2001:db8::7', '::1', 'fe80::1']);
  });

  it('reads the real host', () => {
    expect(new HostAddresses().current().has(0x7f000001)).toBe(true);
  });
});
