/**
 * IPv6 under a real guest (the bundled test guest: Debian's cloud kernel
 * has IPv6 built in; busybox has ping6, wget and nslookup with IPv6, but no
 * RDNSS consumer and no DHCPv6 client). One guest boot on an in-process
 * gateway with its default IPv6 prefix: the guest's kernel forms its SLAAC
 * address and default route from the gateway's router advertisement (whose
 * RDNSS and DNSSL are read off the gateway's pcap, since nothing in the
 * guest consumes them), pings the gateway's IPv6 address, downloads a blob
 * from an HTTP server on the host's ::1 through the gateway's IPv6 address
 * (SHA-256), resolves its own DHCP host name to AAAA at the IPv6 DNS
 * address, and serves HTTP that a host client reaches through a [::1]:PORT
 * forward. A second test puts two guests on a switch segment with a
 * gateway: each forms its address from the segment gateway's RA, pings it,
 * downloads from the host's ::1 and resolves the other's name to AAAA.
 * Only loopback is used.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as icmpv6 from '../../src/wire/icmpv6.js';
import { formatIp6 } from '../../src/wire/addr.js';
import { parseForward } from '../../src/config/forward.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { decodeFrame6, readPcap } from '../helpers/frames6.js';
import { freePort } from '../helpers/ports.js';
import { privateTmp } from '../helpers/tmp.js';
import { startSegment } from '../../src/switch/segment.js';
import { bootGuest, DHCP, sha256, startHttpServer, streamNic, WHO_HTTPD, withGateway, type TestHttpServer } from './harness.js';

const GW6 = 'fd0d:b4b8:6ba1::2';
const DNS6 = 'fd0d:b4b8:6ba1::3';

let upstream: TestDnsServer;
let http: TestHttpServer;
beforeAll(async () => {
  upstream = await startDnsServer({});
  http = await startHttpServer(512 * 1024, '::1');
});
afterAll(async () => {
  await Promise.all([upstream.close(), http.close()]);
});

describe('IPv6 e2e with the test guest', () => {
  it('SLAAC from the RA (with RDNSS), ping6 to the gateway, a download from the host ::1, AAAA of its name, a [::1] forward', async () => {
    const pcap = join(privateTmp(), 'v6.pcap');
    const fwdPort = await freePort();
    let fetched: Promise<string> | null = null;
    let neighbors6: string[] = [];
    await withGateway({ dnsUpstreams: [{ host: '127.0.0.1', port: upstream.port }], pcap, forwards: [parseForward(`[::1]:${fwdPort}:80`)] }, async (gw, sock) => {
      const r = await bootGuest({
        name: 'v6-basic',
        nics: streamNic(sock),
        timeoutMs: 180_000,
        script: `${DHCP.replace('-T 1', '-T 1 -x hostname:sixer')}
i=0
while ! ip -6 addr show dev eth0 | grep 'inet6 fd0d:b4b8:6ba1:0:.* scope global' | grep -qv tentative; do
  i=$((i+1)); [ $i -gt 120 ] && break; sleep 0.5
done
ip -6 addr show dev eth0 | grep inet6 | sed 's/^/ADDR6 /'
ip -6 route | sed 's/^/ROUTE6 /'
ip link show eth0 | sed 's/^/LINK /'
ping6 -c 2 -W 3 ${GW6} | grep -c 'bytes from' | sed 's/^/PING6 /'
ping6 -c 1 -W 3 -s 3000 ${GW6} | grep -c 'bytes from' | sed 's/^/BIGPING6 /'
wget -q -O - 'http://[${GW6}]:${http.port}/blob' | sha256sum | sed 's/^/SHA6 /'
nslookup -type=AAAA sixer ${DNS6} 2>&1 | tr '\\n' ' ' | sed 's/^/NAME6 /'; echo
nslookup -type=AAAA gateway.vmnet.internal ${DNS6} 2>&1 | tr '\\n' ' ' | sed 's/^/GWNAME6 /'; echo
${WHO_HTTPD}echo SERVING
i=0; while [ ! -e /tmp/seen ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
sleep 1
`,
        onLine: (line) => {
          if (line.trim() !== 'SERVING' || fetched !== null) return;
          neighbors6 = gw.snapshot().neighbors6.map((n) => n.ip);
          fetched = fetch(`http://[::1]:${fwdPort}/cgi-bin/who`).then((res) => res.text());
        },
      });
      expect(r.exitCode, r.console).toBe(0);
      const out = r.output;
      const addr = /ADDR6 +inet6 (fd0d:b4b8:6ba1:0:[0-9a-f:]+)\/64 scope global/.exec(out)?.[1];
      expect(addr, out).toBeDefined();
      expect(out).toMatch(/ROUTE6 default via fe80::[0-9a-f:]+ dev eth0/);
      expect(out).toContain('PING6 2');
      // Larger than the MTU both ways: reassembled in, fragmented out.
      expect(out).toContain('BIGPING6 1');
      expect(out).toContain(`SHA6 ${sha256(http.blob)}`);
      expect(out).toMatch(new RegExp(`NAME6 .*Address: ${addr!}`));
      expect(out).toMatch(new RegExp(`GWNAME6 .*Address: ${GW6}`));
      expect(fetched, out).not.toBeNull();
      // A loopback client appears as the gateway (as over IPv4); the guest side of a forward stays IPv4.
      expect(await fetched!).toBe('from 10.0.2.2\n');
      expect(neighbors6).toContain(addr); // learnt from DAD or traffic, while the guest ran
    });
    // The router advertisement the guest got carried the DNS server and search list (RFC 8106).
    const ras = readPcap(pcap)
      .filter((f) => f[12] === 0x86 && f[13] === 0xdd)
      .map(decodeFrame6)
      .filter((f) => f.ndp?.type === icmpv6.TYPE_ROUTER_ADVERT);
    expect(ras.length).toBeGreaterThan(0);
    expect(ras[0]!.ndp!.options.rdnss[0]!.servers.map((a) => formatIp6(a))).toEqual([DNS6]);
    expect(ras[0]!.ndp!.options.dnssl[0]!.domains).toEqual(['vmnet.internal']);
    expect(readFileSync(pcap).length).toBeGreaterThan(0);
  });

  it('on a switch segment: two guests get SLAAC addresses from the segment gateway, ping it, download from ::1 and resolve each other to AAAA', { timeout: 300_000 }, async () => {
    const seg = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: upstream.port }] } });
    const script = (me: string, peer: string) => `${DHCP.replace('-T 1', `-T 1 -x hostname:${me}`)}
i=0
while ! ip -6 addr show dev eth0 | grep 'inet6 fd0d:b4b8:6ba1:0:.* scope global' | grep -qv tentative; do
  i=$((i+1)); [ $i -gt 120 ] && break; sleep 0.5
done
ip -6 addr show dev eth0 scope global | grep inet6 | sed 's/^/ADDR6 /'
ping6 -c 2 -W 3 ${GW6} | grep -c 'bytes from' | sed 's/^/PING6 /'
wget -q -O - 'http://[${GW6}]:${http.port}/blob' | sha256sum | sed 's/^/SHA6 /'
i=0
while ! nslookup -type=AAAA ${peer} ${DNS6} 2>&1 | grep -q 'Address: fd0d'; do i=$((i+1)); [ $i -gt 60 ] && break; sleep 0.5; done
nslookup -type=AAAA ${peer} ${DNS6} 2>&1 | tr '\\n' ' ' | sed 's/^/PEER6 /'; echo
ping6 -c 2 -W 3 $(nslookup -type=AAAA ${peer} ${DNS6} 2>/dev/null | awk '/^Address: fd0d/ {print $2}' | head -1) | grep -c 'bytes from' | sed 's/^/PINGPEER6 /'
sleep 3
`;
    try {
      const [a, b] = await Promise.all([
        bootGuest({ name: 'seg6-a', nics: streamNic(seg.socket), timeoutMs: 240_000, script: script('seg6a', 'seg6b') }),
        bootGuest({ name: 'seg6-b', nics: streamNic(seg.socket), timeoutMs: 240_000, script: script('seg6b', 'seg6a') }),
      ]);
      const addrOf = (out: string) => /ADDR6 +inet6 (fd0d:b4b8:6ba1:0:[0-9a-f:]+)\//.exec(out)?.[1];
      for (const [r, peer] of [
        [a, b],
        [b, a],
      ] as const) {
        expect(r.exitCode, r.console).toBe(0);
        expect(addrOf(r.output), r.console).toBeDefined();
        expect(r.output, r.console).toContain('PING6 2');
        expect(r.output, r.console).toContain(`SHA6 ${sha256(http.blob)}`);
        expect(r.output, r.console).toMatch(new RegExp(`PEER6 .*Address: ${addrOf(peer.output)}`));
        expect(r.output, r.console).toContain('PINGPEER6 2');
      }
    } finally {
      await seg.close();
    }
  });
});
