/**
 * What NAT reaches on the host, and `--no-host`. Two network namespaces
 * joined by a veth pair, as in nat-outside.test.ts: "the outside"
 * (198.51.100.1) serves HTTP and DNS; "the host" (198.51.100.2, default
 * route via the outside, so nothing leaves the machine) runs two built
 * `vmnet gateway`s, one plain and one with `--no-host`, and services bound
 * to 0.0.0.0 — HTTP on 8081 and DNS on 53 — the kind of service a user
 * thinks of as local. A real guest on each gateway tries the host through
 * its own non-loopback address (198.51.100.2), through 10.0.2.2 (host
 * loopback), and the outside. Without the flag the host's 0.0.0.0 services
 * answer on both; with it TCP is refused (RST: wget "Connection refused")
 * and UDP gets no answer, while the outside and the gateway's own DNS keep
 * working. Needs root (ip netns); never skipped.
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
const HOST_IP = '198.51.100.2';

/**
 * HTTP on BIND:PORT answering BODY, and DNS on BIND:53 answering NAME → A
 * ADDR (NXDOMAIN otherwise). Run with `node -e` from the repository root so
 * dns-packet resolves.
 */
const SERVE_JS = `
const http = require('node:http');
const dgram = require('node:dgram');
const dnsPacket = require('dns-packet');
const [bind, port, body, name, addr] = process.argv.slice(1);
const h = http.createServer((req, res) => { console.log('HTTP ' + req.socket.remoteAddress); res.end(body + '\\n'); });
const d = dgram.createSocket('udp4');
d.on('message', (msg, rinfo) => {
  let q; try { q = dnsPacket.decode(msg); } catch { return; }
  const question = q.questions && q.questions[0];
  if (!question || q.type !== 'query') return;
  console.log('DNS ' + rinfo.address + ' ' + question.name);
  const known = question.name.toLowerCase() === name;
  d.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), questions: [question],
    answers: known && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: addr }] : [] }), rinfo.port, rinfo.address);
});
let up = 0;
const ready = () => { if (++up === 2) console.log('READY'); };
h.listen(Number(port), bind, ready);
d.bind(53, bind, ready);
`;

let dir = '';
let outside: Netns | null = null;
let host: Netns | null = null;
const procs: Proc[] = [];

/** Starts a process in `ns` and follows it. */
const start = (ns: Netns, what: string, args: string[]): Proc => {
  const p = track(ns.spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), what);
  procs.push(p);
  return p;
};

beforeAll(async () => {
  requireRoot('the --no-host e2e test');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  dir = privateTmp('vmnet-no-host-');
  outside = createNetns('vmnet-nh-out');
  host = createNetns('vmnet-nh-host');
  await addVethPair(outside, 'out0', `${OUTSIDE_IP}/24`, host, 'host0', `${HOST_IP}/24`);
  await ipCmd('-n', host.name, 'route', 'add', 'default', 'via', OUTSIDE_IP);
  await start(outside, 'the outside', ['-e', SERVE_JS, OUTSIDE_IP, '8080', 'OUTSIDE', 'outside.test', OUTSIDE_IP]).waitLine(/^READY$/, 20_000);
  await start(host, 'the host services', ['-e', SERVE_JS, '0.0.0.0', '8081', 'HOST', 'host.test', '192.0.2.77']).waitLine(/^READY$/, 20_000);
  for (const [sock, extra] of [['plain.sock', []], ['nohost.sock', ['--no-host']]] as const) {
    await start(host, `vmnet gateway ${extra.join(' ')}`, [BIN, 'gateway', '--socket', join(dir, sock), '--dns-upstream', `${OUTSIDE_IP}:53`, ...extra]).waitLine(/vmnet gateway: listening/, 20_000);
  }
}, 60_000);

afterAll(async () => {
  for (const p of procs) await stopProc(p);
  host?.delete();
  outside?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The guest's checks, each line tagged; `|| echo` keeps going after a failure. */
const SCRIPT = `${DHCP}
echo "HOSTADDR $(wget -q -O - http://${HOST_IP}:8081/ 2>&1 || echo FAILED)"
echo "LOOPBACK $(wget -q -O - http://10.0.2.2:8081/ 2>&1 || echo FAILED)"
echo "OUTSIDE $(wget -q -O - http://${OUTSIDE_IP}:8080/ 2>&1 || echo FAILED)"
nslookup host.test ${HOST_IP} >/tmp/h 2>&1 && echo "HOSTDNS $(awk '/^Address: / {print $2}' /tmp/h)" || echo "HOSTDNS FAILED"
nslookup outside.test 10.0.2.3 >/tmp/o 2>&1 && echo "GWDNS $(awk '/^Address: / {print $2}' /tmp/o)" || echo "GWDNS FAILED"
`;

/** Boots a guest on `sock` and returns its tagged lines. */
async function probe(sock: string): Promise<Record<string, string>> {
  const r = await bootGuest({ name: `nohost-${sock.replace('.sock', '')}`, nics: [{ backend: { kind: 'stream', path: join(dir, sock) } }], script: SCRIPT, timeoutMs: 150_000 });
  expect(r.exitCode, r.console).toBe(0);
  expect(parseLease(r.output), r.console).not.toBeNull();
  const out: Record<string, string> = {};
  for (const l of r.output.split('\n')) {
    const m = /^(HOSTADDR|LOOPBACK|OUTSIDE|HOSTDNS|GWDNS) (.*)$/.exec(l.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

describe('NAT and the host itself', () => {
  it('without --no-host, a host service bound to 0.0.0.0 answers on the host’s own address and on 10.0.2.2', { timeout: 200_000 }, async () => {
    const r = await probe('plain.sock');
    expect(r).toEqual({ HOSTADDR: 'HOST', LOOPBACK: 'HOST', OUTSIDE: 'OUTSIDE', HOSTDNS: '192.0.2.77', GWDNS: OUTSIDE_IP });
  });

  it('with --no-host, every address of the host is refused while the outside and the gateway’s DNS still work', { timeout: 200_000 }, async () => {
    const r = await probe('nohost.sock');
    console.log(`no-host: the guest saw ${JSON.stringify(r)}`);
    expect(r.HOSTADDR).toMatch(/refused/i);
    expect(r.LOOPBACK).toMatch(/refused/i);
    expect(r.HOSTDNS).toBe('FAILED');
    expect(r.OUTSIDE).toBe('OUTSIDE');
    expect(r.GWDNS).toBe(OUTSIDE_IP);
  });
});
