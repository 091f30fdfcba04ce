/**
 * NAT to a non-loopback address. Two network namespaces joined by a veth
 * pair: "the outside" (198.51.100.1/24, TEST-NET-2) runs an HTTP server with
 * known random bytes and a DNS server for `outside.test`; the gateway's
 * namespace (198.51.100.2/24, default route via 198.51.100.1, so nothing can
 * leave the machine) runs the built CLI, `vmnet gateway --socket SOCK
 * --dns-upstream 198.51.100.1:53`. A real guest (QEMU, the bundled test
 * guest) connects to that socket, takes a DHCP lease, resolves the name
 * through 10.0.2.3 (forwarded upstream) and directly through UDP NAT, and
 * downloads the blob; SHA-256 must match, and the outside servers' logs must
 * show every client as 198.51.100.2 — the gateway's address, not the guest's
 * 10.0.2.15. Tests never send traffic anywhere but loopback and their own
 * namespaces. Needs root (ip netns); never skipped.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addVethPair, createNetns, ipCmd, requireRoot, type Netns } from '../helpers/netns.js';
import { privateTmp } from '../helpers/tmp.js';
import { stopProc, track, type Proc } from '../helpers/proc.js';
import { bootGuest, DHCP, parseLease } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const OUTSIDE_IP = '198.51.100.1';
const GW_IP = '198.51.100.2';
const HTTP_PORT = 8080;
const BLOB_SIZE = 2 * 1024 * 1024;

/**
 * The outside: HTTP on OUTSIDE_IP:8080 (/blob = BLOB_SIZE random bytes; its
 * SHA-256 printed at start) and DNS on OUTSIDE_IP:53 (outside.test → A
 * OUTSIDE_IP, NXDOMAIN for anything else). Logs every client's address.
 * Run with `node -e` from the repository root so dns-packet resolves.
 */
const OUTSIDE_JS = `
const http = require('node:http');
const dgram = require('node:dgram');
const { createHash, randomBytes } = require('node:crypto');
const dnsPacket = require('dns-packet');
const [ip, port, size] = process.argv.slice(1);
const blob = randomBytes(Number(size));
const h = http.createServer((req, res) => {
  console.log('HTTP ' + req.socket.remoteAddress + ' ' + req.socket.remotePort + ' ' + req.url);
  if (req.url === '/blob') { res.writeHead(200, { 'content-length': blob.length }); res.end(blob); }
  else { res.writeHead(404); res.end(); }
});
const d = dgram.createSocket('udp4');
d.on('message', (msg, rinfo) => {
  let q; try { q = dnsPacket.decode(msg); } catch { return; }
  const question = q.questions && q.questions[0];
  if (!question || q.type !== 'query') return;
  console.log('DNS ' + rinfo.address + ' ' + rinfo.port + ' ' + question.name + ' ' + question.type);
  const known = question.name.toLowerCase() === 'outside.test';
  const reply = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), questions: [question],
    answers: known && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: ip }] : [] });
  d.send(reply, rinfo.port, rinfo.address);
});
let up = 0;
const ready = () => { if (++up === 2) console.log('READY ' + createHash('sha256').update(blob).digest('hex')); };
h.listen(Number(port), ip, ready);
d.bind(53, ip, ready);
`;

let dir = '';
let sock = '';
let outside: Netns | null = null;
let gwns: Netns | null = null;
let server: Proc | null = null;
let gateway: Proc | null = null;
let blobSha = '';

beforeAll(async () => {
  requireRoot('the NAT-to-the-outside e2e test');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  dir = privateTmp('vmnet-nat-outside-');
  sock = join(dir, 'gw.sock');
  outside = createNetns('vmnet-out');
  gwns = createNetns('vmnet-gwns');
  await addVethPair(outside, 'out0', `${OUTSIDE_IP}/24`, gwns, 'gw0', `${GW_IP}/24`);
  // Everything the gateway sends off its loopback goes to the outside namespace, and nowhere else.
  await ipCmd('-n', gwns.name, 'route', 'add', 'default', 'via', OUTSIDE_IP);

  server = track(outside.spawn(process.execPath, ['-e', OUTSIDE_JS, OUTSIDE_IP, String(HTTP_PORT), String(BLOB_SIZE)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'the outside server');
  blobSha = (await server.waitLine(/^READY ([0-9a-f]{64})$/, 20_000))[1]!;

  gateway = track(gwns.spawn(process.execPath, [BIN, 'gateway', '--socket', sock, '--dns-upstream', `${OUTSIDE_IP}:53`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'vmnet gateway');
  await gateway.waitLine(/vmnet gateway: listening/, 20_000);
}, 60_000);

afterAll(async () => {
  await stopProc(gateway);
  await stopProc(server);
  gwns?.delete();
  outside?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('NAT to a non-loopback address (a second namespace as the outside)', () => {
  it('the guest resolves and fetches from 198.51.100.1; the outside sees only the gateway address', { timeout: 180_000 }, async () => {
    const r = await bootGuest({
      name: 'nat-outside',
      memoryMiB: 256,
      nics: [{ backend: { kind: 'stream', path: sock } }],
      timeoutMs: 150_000,
      script: `${DHCP}
nslookup outside.test 10.0.2.3 > /tmp/ns1 2>&1; sed 's/^/FORWARDED /' /tmp/ns1
A=$(awk '/^Address:/ {a=$2} END {print a}' /tmp/ns1)
echo "RESOLVED $A"
nslookup outside.test ${OUTSIDE_IP} 2>&1 | sed 's/^/DIRECT /'
nslookup nothing.test 10.0.2.3 2>&1 | tr '\\n' ' ' | sed 's/^/NX /'; echo
wget -q -O - http://$A:${HTTP_PORT}/blob | sha256sum | sed 's/^/BLOB /'
wget -q -O /dev/null http://${OUTSIDE_IP}:${HTTP_PORT}/missing 2>&1 | sed 's/^/MISSING /'
`,
    });
    const log = `guest console:\n${r.console}\noutside server:\n${server!.lines.join('\n')}\ngateway:\n${gateway!.lines.join('\n')}\n${gateway!.stderr()}`;
    expect(r.exitCode, log).toBe(0);
    expect(parseLease(r.output)?.ip, log).toBe('10.0.2.15');
    // DNS: forwarded by the gateway's DNS service to the outside, and straight through UDP NAT.
    expect(r.output, log).toContain(`RESOLVED ${OUTSIDE_IP}`);
    expect(r.output, log).toMatch(new RegExp(`DIRECT Address:\\s+${OUTSIDE_IP.replace(/\./g, '\\.')}`));
    // The outside's NXDOMAIN came through as NXDOMAIN (not just "some failure": a SERVFAIL or a timeout fails here).
    expect(r.output, log).toMatch(/^NX .*can't find nothing\.test: NXDOMAIN/m);
    // TCP NAT: the bytes arrive intact; a 404 arrives as a 404.
    expect(r.output, log).toContain(`BLOB ${blobSha}`);
    expect(r.output, log).toMatch(/MISSING .*404/);

    // The outside saw the gateway's address only (NAT), never the guest's.
    const http = server!.lines.filter((l) => l.startsWith('HTTP '));
    const dns = server!.lines.filter((l) => l.startsWith('DNS '));
    expect(http.map((l) => l.split(' ')[3]), log).toEqual(['/blob', '/missing']);
    expect(dns.some((l) => / outside\.test A$/.test(l)), log).toBe(true);
    expect(dns.some((l) => / nothing\.test /.test(l)), log).toBe(true);
    for (const l of [...http, ...dns]) expect(l.split(' ')[1], `client address in "${l}"`).toBe(GW_IP);
    expect(server!.lines.join('\n'), log).not.toContain('10.0.2.');
    console.log(`nat-outside: guest script took ${(r.elapsedMs / 1000).toFixed(1)} s; outside saw:\n${[...dns, ...http].join('\n')}`);
  });
});
