/**
 * Theory of operation: `vmnet demo` — the whole job on an embedded default,
 * with nothing from the internet. It starts a small HTTP server and a vmnet
 * DNS service on the host's loopback, boots the bundled test guest, and runs
 * a script in it that takes a DHCP lease, resolves a name, fetches the host's
 * page through 10.0.2.2, and serves a page that the host then fetches through
 * a port forward. Every step is shown live; QEMU and the servers are gone
 * when it returns.
 *
 * Network today: the guest's NIC is on QEMU's built-in user net (libslirp)
 * for DHCP, TCP and the port forward, and the name is answered by vmnet's own
 * DNS code over UDP through 10.0.2.2. The screen says so. As the gateway
 * issues land, each step moves to vmnet's own gateway.
 */
import { createServer as createHttpServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { runTestGuest } from '../guest/boot.js';
import { DnsService } from '../services/dns/server.js';
import { parseIp4 } from '../wire/addr.js';

export interface DemoOptions {
  out: Writable;
  qemu?: string;
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

  const http = createHttpServer((_req, res) => res.end(HOST_PAGE + '\n'));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as AddressInfo).port;

  const dns = new DnsService({
    hostIp: parseIp4('10.0.2.2') as number,
    gatewayIp: parseIp4('10.0.2.2') as number,
    records: [],
    upstream: null,
  });
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    void dns.query(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), 'udp').then((answer) => {
      if (answer) udp.send(answer, rinfo.port, rinfo.address);
    });
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const dnsPort = udp.address().port;
  const fwdPort = await freePort();

  say('vmnet demo: booting the bundled test guest under QEMU (TCG)');
  say("  network: QEMU's built-in user net for DHCP, TCP and the port forward (until vmnet's gateway carries TCP);");
  say(`           DNS answered by vmnet's own DNS service on 127.0.0.1:${dnsPort}, reached from the guest as 10.0.2.2:${dnsPort}`);
  say(`  host HTTP server: 127.0.0.1:${httpPort} (guest sees 10.0.2.2:${httpPort}); port forward 127.0.0.1:${fwdPort} -> guest:${GUEST_PORT}`);

  const script = `
echo "STEP lease"
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 5 -T 1 || exit 10
echo "STEP dns"
nslookup host.vmnet.internal 10.0.2.2:${dnsPort} || exit 11
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
    // The guest's nc may not be listening yet; QEMU's hostfwd accepts anyway and
    // the guest resets, so retry for a while.
    for (let i = 0; i < 40 && !steps.forward; i++) {
      try {
        const body = await httpGet(fwdPort);
        if (body.includes(GUEST_PAGE)) {
          steps.forward = body.trim();
          say(`  host  | GET http://127.0.0.1:${fwdPort}/ -> "${steps.forward}"`);
        }
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  let step = '';
  let dnsLines: string[] = [];
  try {
    const r = await runTestGuest({
      name: 'vmnet-demo',
      script,
      qemu: opts.qemu,
      nics: [{ backend: { kind: 'qemu-user', forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: fwdPort, guestPort: GUEST_PORT }] } }],
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
    const addr = /Address(?: \d)?:\s*(10\.0\.2\.2)\s*$/m.exec(dnsLines.slice(2).join('\n'));
    if (addr) steps.dns = `host.vmnet.internal -> ${addr[1]}`;
    const ok = r.exitCode === 0 && Object.values(steps).every((v) => v !== null);
    say(`\n== result: ${ok ? 'all four steps worked' : `failed (guest script exit ${r.exitCode})`}`);
    for (const [k, v] of Object.entries(steps)) say(`  ${k.padEnd(8)} ${v ?? 'FAILED'}`);
    return { ok, steps };
  } finally {
    udp.close();
    await new Promise((r) => http.close(r));
    dnsLines = [];
  }
}
