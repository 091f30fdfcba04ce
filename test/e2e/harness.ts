/**
 * End-to-end harness: boots the bundled test guest under real QEMU (TCG),
 * runs a shell script in it over the serial console and hands back its exit
 * status and output. Thin over the library's runTestGuest (src/guest/boot.ts)
 * plus the host-side fixtures e2e tests share: a loopback HTTP server with
 * known content, sha256 helpers, a DHCP-in-the-guest snippet.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runTestGuest, type TestGuestOptions, type TestGuestResult } from '../../src/guest/boot.js';
import { startGateway, type GatewayServerOptions, type RunningGateway } from '../../src/gateway/server.js';
import { privateTmp } from '../helpers/tmp.js';

export type { TestGuestResult };

/** Boots a guest and runs `script` in it. Never skips: a missing guest or QEMU fails the test. */
export function bootGuest(opts: TestGuestOptions): Promise<TestGuestResult> {
  return runTestGuest({ timeoutMs: 90_000, ...opts });
}

/** Guest snippet: DHCP on eth0 through the lease hook, which prints a VMNET-LEASE line. */
export const DHCP = 'udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 5 -T 1 || exit 90\n';

export const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/**
 * Guest snippet: busybox httpd on 0.0.0.0:80 (IPv4 only, so addresses are
 * plain dotted quads) serving /var/www, with /cgi-bin/who answering
 * "from ADDR": the client address the guest saw (REMOTE_ADDR). Each request
 * also touches /tmp/seen, so a script can wait for it.
 */
export const WHO_HTTPD = `mkdir -p /var/www/cgi-bin
cat > /var/www/cgi-bin/who <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\nfrom %s\\n' "$REMOTE_ADDR"
touch /tmp/seen
CGI
chmod 755 /var/www/cgi-bin/who
httpd -p 0.0.0.0:80 -h /var/www
`;

/** Parses the VMNET-LEASE line printed by the guest's udhcpc hook. */
export function parseLease(output: string): Record<string, string> | null {
  const line = output.split('\n').find((l) => l.startsWith('VMNET-LEASE '));
  if (!line) return null;
  return Object.fromEntries(
    line
      .slice('VMNET-LEASE '.length)
      .split(' ')
      .map((kv) => kv.split('=') as [string, string])
      .filter((kv) => kv.length === 2),
  );
}

export interface TestHttpServer {
  port: number;
  /** The body served at /blob. */
  blob: Uint8Array;
  close(): Promise<void>;
}

/**
 * An HTTP server on `host` (127.0.0.1 by default; ::1 for IPv6 tests),
 * ephemeral port, serving random bytes at /blob and "hello from the host" at /.
 */
export async function startHttpServer(blobSize = 256 * 1024, host = '127.0.0.1'): Promise<TestHttpServer> {
  const blob = new Uint8Array(randomBytes(blobSize));
  const server: Server = createServer((req, res) => {
    if (req.url === '/blob') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
      res.end(blob);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello from the host\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as AddressInfo).port,
    blob,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/**
 * Runs `fn` with a vmnet gateway listening on a socket in a private temp dir,
 * closing it afterwards whatever happens. Give `dnsUpstreams` (a loopback test
 * server): tests never use the machine's real resolvers.
 */
export async function withGateway<T>(opts: GatewayServerOptions & Required<Pick<GatewayServerOptions, 'dnsUpstreams'>>, fn: (gw: RunningGateway, sock: string) => Promise<T>): Promise<T> {
  const sock = join(privateTmp(), 'gw.sock');
  const gw = await startGateway({ ...opts, socket: sock });
  try {
    return await fn(gw, sock);
  } finally {
    await gw.close();
  }
}

/** bootGuest NICs: one virtio-net on the stream socket at `path`. */
export const streamNic = (path: string) => [{ backend: { kind: 'stream' as const, path } }];
