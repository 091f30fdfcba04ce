/**
 * Theory of operation: `vmnet demo` — the whole job on an embedded default,
 * with nothing from the internet. The first run builds the test guest into
 * the user's cache (guest/build.ts: Debian packages through apt, about a
 * minute, a line per step; every missing tool named first, QEMU's too); later
 * runs reuse it. It then starts a small HTTP server on the host's
 * loopback and vmnet's gateway (in-process, on a private unix socket), boots
 * the bundled test guest on it, and runs a script in the guest that takes a
 * DHCP lease, resolves a name at the gateway's DNS, fetches the host's page
 * through 10.0.2.2 (TCP NAT to the host's 127.0.0.1), and serves a page that
 * the host fetches through a port forward once the gateway's readiness probe
 * says the guest really listens. Every step is shown live; QEMU, the gateway
 * and the server are gone when it returns.
 */
import { createServer as createHttpServer } from 'node:http';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { runTestGuest } from '../guest/boot.js';
import { ensureBundledGuest } from '../guest/bundled.js';
import { startGateway } from '../gateway/server.js';
import { printable } from '../config/printable.js';

export interface DemoOptions {
  out: Writable;
  qemu?: string;
  /** HOME / XDG_CACHE_HOME / VMNET_GUEST_DIR (where the guest is) and PATH. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface DemoResult {
  ok: boolean;
  steps: Record<'lease' | 'dns' | 'http' | 'forward', string | null>;
}

const GUEST_PORT = 8080;
const HOST_PAGE = 'hello from the vmnet demo host';
const GUEST_PAGE = 'hello from inside the guest';

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Runs the demo.
 * @returns which steps succeeded and what they showed
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const say = (s: string) => opts.out.write(s + '\n');
  const steps: DemoResult['steps'] = { lease: null, dns: null, http: null, forward: null };
  const guest = await ensureBundledGuest({ onProgress: say, qemu: opts.qemu ?? true, ...(opts.env ? { env: opts.env } : {}) });

  const http = createHttpServer((_req, res) => res.end(HOST_PAGE + '\n'));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-demo-'));
  chmodSync(dir, 0o700);
  const gw = await startGateway({ socket: join(dir, 'gateway.sock') });
  const fwdPort = await freePort();
  await gw.forwards.add({ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: fwdPort, guestPort: GUEST_PORT });

  say("vmnet demo: the bundled test guest under QEMU (TCG), on vmnet's own gateway");
  say(`  gateway: 10.0.2.2 (DHCP, DNS at 10.0.2.3, NAT), socket ${gw.listener?.address() && 'path' in gw.listener.address() ? (gw.listener.address() as { path: string }).path : ''}`);
  say(`  host HTTP server: 127.0.0.1:${httpPort} (the guest reaches it as 10.0.2.2:${httpPort})`);
  say(`  port forward: 127.0.0.1:${fwdPort} -> guest:${GUEST_PORT}`);

  const script = `
echo "STEP lease"
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 5 -T 1 -x hostname:vmnet-demo || exit 10
echo "STEP dns"
nslookup host.vmnet.internal 10.0.2.3 || exit 11
echo "STEP http"
wget -q -O - http://10.0.2.2:${httpPort}/ || exit 12
echo "STEP forward"
printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n${GUEST_PAGE}\\n' > /tmp/reply
echo "FORWARD-LISTENING"
timeout 30 nc -l -p ${GUEST_PORT} < /tmp/reply > /tmp/request || exit 13
echo "served: $(head -1 /tmp/request)"
`;
  let forwardFetch: Promise<void> | null = null;
  const fetchThroughForward = async () => {
    // Wait until the guest really listens: the gateway's own SYN must get a SYN-ACK.
    for (let i = 0; i < 50; i++) {
      const state = await gw.probeGuestPort(GUEST_PORT, 1000);
      if (state === 'open') {
        say(`  host  | readiness probe: guest port ${GUEST_PORT} answers SYN with SYN-ACK`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      const body = await httpGet(fwdPort);
      if (body.includes(GUEST_PAGE)) steps.forward = body.trim();
      say(`  host  | GET http://127.0.0.1:${fwdPort}/ -> "${body.trim()}"`);
    } catch (e) {
      say(`  host  | GET http://127.0.0.1:${fwdPort}/ failed: ${(e as Error).message}`);
    }
  };
  let step = '';
  const dnsLines: string[] = [];
  try {
    const r = await runTestGuest({
      name: 'vmnet-demo',
      script,
      guest,
      qemu: opts.qemu,
      nics: [{ backend: { kind: 'stream', path: join(dir, 'gateway.sock') } }],
      timeoutMs: 90_000,
      onLine: (line, inScript) => {
        if (!inScript) return;
        const m = /^STEP (\w+)/.exec(line);
        if (m) {
          step = m[1]!;
          say(`\n== ${step}`);
          return;
        }
        if (line === 'FORWARD-LISTENING') {
          forwardFetch = fetchThroughForward();
          return;
        }
        say(`  guest | ${line}`);
        if (step === 'lease' && line.startsWith('VMNET-LEASE')) steps.lease = line.slice('VMNET-LEASE '.length);
        if (step === 'dns') dnsLines.push(line);
        if (step === 'http' && line.includes(HOST_PAGE)) steps.http = line.trim();
      },
    });
    await forwardFetch;
    const addr = /Name:\s*host\.vmnet\.internal\s*\nAddress(?: \d)?:\s*(10\.0\.2\.2)\s*$/m.exec(dnsLines.join('\n'));
    if (addr) steps.dns = `host.vmnet.internal -> ${addr[1]}`;
    const leases = gw.snapshot().leases.map((l) => `${l.ip} (${l.mac}${l.hostname ? `, ${l.hostname}` : ''})`);
    say(`\n== gateway's view: leases ${printable(leases.join(', ')) || 'none'}`);
    const ok = r.exitCode === 0 && Object.values(steps).every((v) => v !== null);
    say(`== result: ${ok ? 'all four steps worked' : `failed (guest script exit ${r.exitCode})`}`);
    for (const [k, v] of Object.entries(steps)) say(`  ${k.padEnd(8)} ${v === null ? 'FAILED' : printable(v)}`); // the guest's own words
    return { ok, steps };
  } finally {
    await gw.close();
    await new Promise((r) => http.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}
