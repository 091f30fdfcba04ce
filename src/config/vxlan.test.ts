import { describe, expect, it } from 'vitest';
import { checkVxlan, defaultVxlanMtu, formatVxlanLocal, parseVni, parseVxlanEndpoint, parseVxlanLocal } from './vxlan.js';

describe('VXLAN settings', () => {
  it('parses VNIs and end points, port 4789 by default', () => {
    expect(parseVni('42')).toBe(42);
    expect(parseVni(16777215)).toBe(16777215);
    expect(parseVxlanEndpoint('192.0.2.10', '--vxlan-remote')).toEqual({ host: '192.0.2.10', port: 4789 });
    expect(parseVxlanEndpoint('lab-2.example:4790', '--vxlan-remote')).toEqual({ host: 'lab-2.example', port: 4790 });
    expect(parseVxlanEndpoint('127.0.0.1:5000', '--vxlan-local', true)).toEqual({ host: '127.0.0.1', port: 5000 });
  });

  it('parses --vxlan-local as ADDR, ADDR:PORT or :PORT (the default address), and formats it back', () => {
    for (const [text, v] of [['10.0.0.1', { host: '10.0.0.1' }], ['10.0.0.1:5000', { host: '10.0.0.1', port: 5000 }], [':5000', { port: 5000 }]] as const) {
      expect(parseVxlanLocal(text)).toEqual(v);
      expect(formatVxlanLocal(v)).toBe(text);
    }
    expect(() => parseVxlanLocal(':0')).toThrow(/--vxlan-local/);
  });

  it('refuses bad values with one line naming the flag', () => {
    for (const v of ['-1', '16777216', 'x', '']) expect(() => parseVni(v)).toThrow(/bad --vxlan .*VNI/);
    expect(() => parseVxlanEndpoint('host:0', '--vxlan-remote')).toThrow(/port must be 1-65535/);
    expect(() => parseVxlanEndpoint('a b', '--vxlan-remote')).toThrow(/bad --vxlan-remote/);
    expect(() => parseVxlanEndpoint('[::1]:4789', '--vxlan-remote')).toThrow(/bad --vxlan-remote/);
    expect(() => parseVxlanEndpoint('myhost', '--vxlan-local', true)).toThrow(/IPv4 address/);
    expect(() => checkVxlan({ vni: 1, remotes: [] })).toThrow(/at least one --vxlan-remote/);
    for (const host of ['239.1.1.1', '0.0.0.0', '255.255.255.255']) expect(() => checkVxlan({ vni: 1, remotes: [{ host, port: 4789 }] })).toThrow(/unicast/);
    expect(() => checkVxlan({ vni: 1, remotes: [{ host: '10.0.0.1', port: 4789 }], underlayMtu: 100 })).toThrow(/--vxlan-underlay-mtu/);
  });

  it('defaults the segment MTU to the underlay MTU minus 50', () => {
    expect(defaultVxlanMtu({ vni: 1, remotes: [] })).toBe(1450);
    expect(defaultVxlanMtu({ vni: 1, remotes: [], underlayMtu: 9000 })).toBe(8950);
  });
});
