/**
 * vmnet's own gateway under real guests: lease, DNS (built-in, user records,
 * forwarding, RFC 6761, SERVFAIL), ICMP, UDP NAT through 10.0.2.2, isolated
 * mode, a static-address guest, jumbo MTU and pcap. The "outside" is a test
 * DNS server on 127.0.0.1: no traffic leaves the machine.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayServerOptions, RunningGateway } from '../../src/gateway/server.js';
import { parseDnsRecord } from '../../src/services/dns/local.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { privateTmp } from '../helpers/tmp.js';
import { bootGuest, DHCP, parseLease, streamNic, withGateway } from './harness.js';

let upstream: TestDnsServer;
let silent: TestDnsServer;
let hostUdp: TestDnsServer;
beforeAll(async () => {
  upstream = await startDnsServer({ 'known.test': '192.0.2.10', 'isolated.test': '192.0.2.11' });
  silent = await startDnsServer({}, { silent: true });
  hostUdp = await startDnsServer({ 'via-host.test': '192.0.2.77' });
});
afterAll(async () => {
  await Promise.all([upstream.close(), silent.close(), hostUdp.close()]);
});

/** A gateway whose DNS upstream is the test's loopback server. */
const gatewayWith = <T>(opts: GatewayServerOptions, fn: (gw: RunningGateway, sock: string) => Promise<T>) =>
  withGateway({ dnsUpstreams: [{ host: '127.0.0.1', port: upstream.port }], ...opts }, fn);
const nic = streamNic;

describe('gateway e2e', () => {
  it('leases, answers DNS, forwards DNS, pings and NATs UDP to the host', async () => {
    await gatewayWith({ dnsRecords: [parseDnsRecord('db.lab=10.0.2.100')] }, async (gw, sock) => {
      const r = await bootGuest({
        name: 'gw-basic',
        nics: nic(sock),
        script: `${DHCP}
ip -o link show eth0
ping -c 2 -W 2 10.0.2.2 | grep -c 'bytes from' | sed 's/^/PINGS /'
ping -c 1 -W 2 10.0.2.3 | grep -c 'bytes from' | sed 's/^/PINGDNS /'
ping -c 1 -W 2 -s 3000 10.0.2.2 | grep -c 'bytes from' | sed 's/^/BIGPING /'
nslookup host.vmnet.internal 10.0.2.3
nslookup db.lab 10.0.2.3
nslookup known.test 10.0.2.3
nslookup x.invalid 10.0.2.3 || echo "INVALID-FAILED"
nslookup via-host.test 10.0.2.2:${hostUdp.port}
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      const lease = parseLease(r.output)!;
      expect(lease).toMatchObject({ ip: '10.0.2.15', mask: '24', router: '10.0.2.2', dns: '10.0.2.3', mtu: '1500', domain: 'vmnet.internal' });
      expect(r.output).toMatch(/eth0: .* mtu 1500 /);
      expect(r.output).toContain('PINGS 2');
      expect(r.output).toContain('PINGDNS 1');
      // Larger than the MTU both ways: reassembled in, fragmented out.
      expect(r.output).toContain('BIGPING 1');
      expect(r.output).toMatch(/Name:\s+host\.vmnet\.internal\s+Address: 10\.0\.2\.2/);
      expect(r.output).toMatch(/Name:\s+db\.lab\s+Address: 10\.0\.2\.100/);
      expect(r.output).toMatch(/Name:\s+known\.test\s+Address: 192\.0\.2\.10/);
      expect(r.output).toMatch(/can't find x\.invalid: NXDOMAIN/);
      expect(r.output).toMatch(/Name:\s+via-host\.test\s+Address: 192\.0\.2\.77/);
      expect(upstream.queries).toContain('known.test');
      expect(upstream.queries).not.toContain('x.invalid');
      expect(upstream.queries).not.toContain('db.lab');
      expect(hostUdp.queries).toContain('via-host.test');
      const snap = gw.snapshot();
      expect(snap.leases).toEqual([expect.objectContaining({ ip: '10.0.2.15' })]);
    });
  });

  it('answers SERVFAIL when the upstream never answers, before the stub resolver retries', async () => {
    // busybox nslookup retries on SERVFAIL instead of printing it, so the
    // answer is read off the wire: the gateway's pcap, in frame order (no
    // wall-clock threshold: under load TCG guests and the host both slow).
    const pcap = join(privateTmp(), 'servfail.pcap');
    await gatewayWith({ dnsUpstreams: [{ host: '127.0.0.1', port: silent.port }], pcap }, async (_gw, sock) => {
      const r = await bootGuest({
        name: 'gw-servfail',
        nics: nic(sock),
        script: `${DHCP}
nslookup -type=a slow.test 10.0.2.3
echo "NSLOOKUP-EXIT $?"
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(r.output).toMatch(/NSLOOKUP-EXIT [1-9]/);
      expect(silent.queries).toContain('slow.test');
    });
    const rows = execFileSync('tshark', ['-r', pcap, '-Y', 'dns.qry.name == "slow.test"', '-T', 'fields', '-e', 'frame.number', '-e', 'dns.id', '-e', 'dns.flags.response', '-e', 'dns.flags.rcode'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')
      .map((l) => l.split('\t'))
      .map(([frame, id, response, rcode]) => ({ frame: Number(frame), id, response: response === 'True' || response === '1', rcode: Number(rcode) }));
    const seen = JSON.stringify(rows);
    const queries = rows.filter((x) => !x.response);
    const answers = rows.filter((x) => x.response);
    // Every answer is a SERVFAIL for the guest's own query ID (busybox reuses
    // one ID for its retries)...
    expect(queries.length, seen).toBeGreaterThanOrEqual(1);
    expect(answers.length, seen).toBeGreaterThanOrEqual(1);
    expect(answers.every((a) => a.rcode === 2 && a.id === queries[0]!.id), seen).toBe(true);
    // ... and the first one came before the stub's own retry (busybox resends
    // after 2.5 s, and at once on SERVFAIL): exactly one query precedes it.
    expect(queries.filter((q) => q.frame < answers[0]!.frame), seen).toHaveLength(1);
  });

  it('in isolated mode serves DHCP and local names but lets nothing out', async () => {
    const before = hostUdp.queries.length;
    await gatewayWith({ isolated: true, dnsRecords: [parseDnsRecord('db.lab=10.0.2.100')] }, async (gw, sock) => {
      const r = await bootGuest({
        name: 'gw-isolated',
        nics: nic(sock),
        script: `${DHCP}
nslookup db.lab 10.0.2.3
nslookup isolated.test 10.0.2.3 || echo "FORWARD-BLOCKED"
timeout 5 nslookup via-host.test 10.0.2.2:${hostUdp.port} || echo "UDP-BLOCKED"
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(parseLease(r.output)?.ip).toBe('10.0.2.15');
      expect(r.output).toMatch(/Name:\s+db\.lab\s+Address: 10\.0\.2\.100/);
      expect(r.output).toContain('FORWARD-BLOCKED');
      expect(r.output).not.toContain('192.0.2.11');
      expect(r.output).toContain('UDP-BLOCKED');
      expect(hostUdp.queries.length).toBe(before);
      // The upstream knows isolated.test (nobody else asks for it): had the query leaked, it would be here.
      expect(upstream.queries).not.toContain('isolated.test');
      expect(gw.snapshot().drops['udp-refused']).toBeGreaterThan(0);
      expect(gw.snapshot().udpFlows).toBe(0);
    });
  });

  it('serves a guest with a static address and no DHCP', async () => {
    await gatewayWith({}, async (gw, sock) => {
      const r = await bootGuest({
        name: 'gw-static',
        nics: nic(sock),
        script: `ip addr add 10.0.2.50/24 dev eth0
ip route add default via 10.0.2.2
ping -c 2 -W 2 10.0.2.2 | grep -c 'bytes from' | sed 's/^/PINGS /'
nslookup via-host.test 10.0.2.2:${hostUdp.port}
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(r.output).toContain('PINGS 2');
      expect(r.output).toMatch(/Name:\s+via-host\.test\s+Address: 192\.0\.2\.77/);
      expect(gw.snapshot().leases).toEqual([]);
    });
  });

  it('hands out a jumbo MTU of 65520 and carries frames that large', async () => {
    await gatewayWith({ mtu: 65520 }, async (_gw, sock) => {
      const r = await bootGuest({
        name: 'gw-jumbo',
        nics: nic(sock),
        script: `${DHCP}
ip -o link show eth0
ping -c 2 -W 3 -s 60000 10.0.2.2 | grep -c 'bytes from' | sed 's/^/BIGPINGS /'
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(parseLease(r.output)?.mtu).toBe('65520');
      expect(r.output).toMatch(/eth0: .* mtu 65520 /);
      expect(r.output).toContain('BIGPINGS 2');
    });
  });

  it('writes a pcap that tshark reads, showing the DHCP exchange', async () => {
    const pcap = join(privateTmp(), 'gw.pcap');
    await gatewayWith({ pcap }, async (_gw, sock) => {
      const r = await bootGuest({ name: 'gw-pcap', nics: nic(sock), script: `${DHCP}ping -c 1 -W 2 10.0.2.2\n` });
      expect(r.exitCode, r.console).toBe(0);
    });
    const out = execFileSync('tshark', ['-r', pcap, '-Y', 'dhcp', '-T', 'fields', '-e', 'dhcp.option.dhcp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // 1 Discover, 2 Offer, 3 Request, 5 ACK
    expect(out.split('\n').filter(Boolean)).toEqual(['1', '2', '3', '5']);
  });
});
