import { describe, expect, it } from 'vitest';
import { DEFAULT_SUBNET6, resolveGatewayConfig } from './config.js';
import { formatIp6 } from '../wire/addr.js';

describe('resolveGatewayConfig: IPv6', () => {
  it('defaults to the documented ULA /64 with the gateway at ::2, DNS at ::3 and an EUI-64 link-local address', () => {
    const c = resolveGatewayConfig({ gatewayMac: '52:55:0a:00:02:02' });
    expect(DEFAULT_SUBNET6).toBe('fd0d:b4b8:6ba1::/64');
    expect(c.ipv6).not.toBeNull();
    expect(formatIp6(c.ipv6!.prefix.net)).toBe('fd0d:b4b8:6ba1::');
    expect(formatIp6(c.ipv6!.gatewayIp)).toBe('fd0d:b4b8:6ba1::2');
    expect(formatIp6(c.ipv6!.dnsIp)).toBe('fd0d:b4b8:6ba1::3');
    expect(formatIp6(c.ipv6!.linkLocal)).toBe('fe80::5055:aff:fe00:202');
  });

  it('takes --subnet6, and is off with --no-ipv6 or below the 1280-byte minimum MTU', () => {
    expect(formatIp6(resolveGatewayConfig({ subnet6: 'fd00:1:2:3::/64' }).ipv6!.gatewayIp)).toBe('fd00:1:2:3::2');
    expect(resolveGatewayConfig({ ipv6: false }).ipv6).toBeNull();
    expect(resolveGatewayConfig({ mtu: 1000 }).ipv6).toBeNull();
  });

  it.each([
    [{ subnet6: 'fd00::/48' }, /unicast IPv6 \/64/],
    [{ subnet6: 'ff02::/64' }, /unicast IPv6 \/64/],
    [{ subnet6: 'fe80::/64' }, /unicast IPv6 \/64/],
    [{ subnet6: 'nonsense' }, /unicast IPv6 \/64/],
    [{ subnet6: 'fd00::/64', ipv6: false }, /contradict/],
    [{ subnet6: 'fd00::/64', mtu: 1000 }, /at least 1280/],
  ])('refuses %j with one usage line', (o, message) => {
    expect(() => resolveGatewayConfig(o)).toThrow(message);
  });
});

describe('resolveGatewayConfig: TCP congestion control', () => {
  it('is BBR by default, Reno on request, and anything else is one usage line', () => {
    expect(resolveGatewayConfig({}).tcpCc).toBe('bbr');
    expect(resolveGatewayConfig({ tcpCc: 'reno' }).tcpCc).toBe('reno');
    expect(() => resolveGatewayConfig({ tcpCc: 'cubic' })).toThrow(/bad TCP congestion control cubic: give reno or bbr/);
  });
});
