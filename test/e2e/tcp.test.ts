/**
 * TCP NAT and port forwarding under real guests: 50 MB each way with SHA-256
 * checked on both sides, "connection refused" before the guest retransmits
 * its SYN, half-close,
 * a forward to a guest port where nothing listens (reset, not a hang), and
 * the readiness probe. Everything stays on loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/gateway/server.js';
import { bootGuest, DHCP, sha256, startHttpServer, streamNic, withGateway, type TestHttpServer } from './harness.js';

const MB = 1024 * 1024;
let http: TestHttpServer;
let closedPort: number;
let halfClose: Server;
let halfClosePort: number;
const REPLY = randomBytes(1 * MB);

beforeAll(async () => {
  http = await startHttpServer(50 * MB);
  // A port nothing listens on: bind, note, close.
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closedPort = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  // Reads the whole request (until the client's FIN), then answers 1 MB and closes.
  halfClose = createServer({ allowHalfOpen: true }, (sock) => {
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => {
      sock.write(`got ${Buffer.concat(chunks).toString().trim()}\n`);
      sock.end(REPLY);
    });
  });
  await new Promise<void>((r) => halfClose.listen(0, '127.0.0.1', r));
  halfClosePort = (halfClose.address() as AddressInfo).port;
});
afterAll(async () => {
  await http.close();
  await new Promise((r) => halfClose.close(r));
});

/** A gateway whose DNS upstream is a loopback port nothing answers (these tests resolve nothing). */
const gatewayWith = <T>(fn: (gw: RunningGateway, sock: string) => Promise<T>) => withGateway({ dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] }, fn);
const nic = streamNic;

describe('TCP NAT e2e', () => {
  it('guest downloads 50 MB from the host, is refused promptly, and half-closes', { timeout: 300_000 }, async () => {
    await gatewayWith(async (gw, sock) => {
      const r = await bootGuest({
        name: 'tcp-nat',
        memoryMiB: 256,
        nics: nic(sock),
        timeoutMs: 300_000,
        script: `${DHCP}
synretrans() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (k[i] == "TCPSynRetrans") print $i }' /proc/net/netstat; }
s0=$(synretrans)
wget -q -O /dev/null http://10.0.2.2:${closedPort}/ 2>&1 | sed 's/^/REFUSED /'
echo "SYNRETRANS $s0 $(synretrans)"
wget -q -O - http://10.0.2.2:${http.port}/blob | sha256sum | sed 's/^/DOWNLOAD /'
echo hello | nc 10.0.2.2 ${halfClosePort} > /tmp/reply
head -1 /tmp/reply | sed 's/^/HALFCLOSE /'
tail -c +$(( $(head -1 /tmp/reply | wc -c) + 1 )) /tmp/reply | sha256sum | sed 's/^/REPLY /'
`,
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(r.output).toMatch(/REFUSED .*Connection refused/);
      // "Promptly" as order, not seconds: the gateway's RST reached the guest
      // before its SYN retransmission timer (1 s initial RTO) fired even once.
      expect(r.output).toMatch(/^SYNRETRANS (\d+) \1$/m);
      expect(r.output).toContain(`DOWNLOAD ${sha256(http.blob)}`);
      expect(r.output).toContain('HALFCLOSE got hello');
      expect(r.output).toContain(`REPLY ${sha256(REPLY)}`);
      expect(gw.gateway.tcpNat.counters.refused).toBeGreaterThanOrEqual(1);
    });
  });

  it('host uploads 50 MB through a forward; a forward to a closed guest port resets; the probe does not lie', { timeout: 300_000 }, async () => {
    await gatewayWith(async (gw, sock) => {
      const fwd = async (guestPort: number) => {
        const s = createServer();
        await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
        const hostPort = (s.address() as AddressInfo).port;
        await new Promise((r) => s.close(r));
        await gw.forwards.add({ proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort });
        return hostPort;
      };
      const upPort = await fwd(8080);
      const closedFwd = await fwd(8081);
      const upload = randomBytes(50 * MB);
      const outcome: { probeBefore?: string; probeAfter?: string; closedResult?: string; sent?: boolean; error?: string } = {};
      const guest = bootGuest({
        name: 'tcp-fwd',
        memoryMiB: 256,
        nics: nic(sock),
        timeoutMs: 300_000,
        onLine: (line) => {
          if (line === 'LISTENING') void hostSide();
        },
        script: `${DHCP}
(nc -l -p 8080 | sha256sum > /tmp/sum) &
sleep 1
echo LISTENING
wait
sed 's/^/UPLOAD /' /tmp/sum
`,
      });
      let done!: () => void;
      const hostDone = new Promise<void>((r) => (done = r));
      async function hostSide() {
        try {
          outcome.probeBefore = await gw.probeGuestPort(8081, 2000);
          for (let i = 0; i < 50; i++) {
            outcome.probeAfter = await gw.probeGuestPort(8080, 2000);
            if (outcome.probeAfter === 'open') break;
            await new Promise((r) => setTimeout(r, 200));
          }
          outcome.closedResult = await new Promise<string>((resolve) => {
            const c = connect(closedFwd, '127.0.0.1');
            c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
            c.on('close', () => resolve('closed'));
            // A hang detector, not a speed claim: the guest's RST takes milliseconds.
            c.setTimeout(30_000, () => resolve('hang'));
          });
          await new Promise<void>((resolve, reject) => {
            const c = connect(upPort, '127.0.0.1', () => c.end(upload));
            c.on('error', reject);
            c.on('close', () => resolve());
          });
          outcome.sent = true;
        } catch (e) {
          outcome.error = String(e);
        } finally {
          done();
        }
      }
      const r = await guest;
      await hostDone;
      expect(r.exitCode, r.console).toBe(0);
      expect(outcome).toMatchObject({ probeBefore: 'closed', probeAfter: 'open', closedResult: 'ECONNRESET', sent: true });
      expect(r.output).toContain(`UPLOAD ${createHash('sha256').update(upload).digest('hex')}`);
    });
  });
});
