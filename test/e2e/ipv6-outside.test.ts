/**
 * IPv6 NAT and ping to a non-loopback "outside", end to end. Two network
 * namespaces joined by a veth pair carrying 2001:db8::/64 (RFC 3849, the
 * documentation prefix): the outside (2001:db8::1, an HTTP server with known
 * random bytes that logs every client address) and the gateway's
 * (2001:db8::2, default route via the outside, so nothing leaves the
 * machine; net.ipv4.ping_group_range "0 0" there, which governs ICMPv6 ping
 * sockets too), where the built CLI `vmnet gateway` runs. A third namespace
 * has loopback only: a gateway there has no IPv6 route at all.
 *
 *  1. A real guest (the bundled test guest) forms its SLAAC address,
 *     downloads the blob from [2001:db8::1]:8080 (SHA-256) and pings
 *     2001:db8::1 three times (3 real replies: the outside's Icmp6 counters
 *     grew by the echo requests it answered); the outside's log shows the
 *     gateway's namespace address only, never the guest's.
 *  2. No IPv6 route: the guest's connect to 2001:db8::1 fails at once,
 *     three times over. The gateway's pcap times each SYN in and its RST
 *     out (the best of three under 100 ms; all printed); the guest reports
 *     each failure ("Connection refused") and its own time.
 * Needs root (ip netns); never skipped.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tcp from '../../src/wire/tcp.js';
import { addVethPair, createNetns, ipCmd, requireRoot, runInNetns, type Netns } from '../helpers/netns.js';
import { privateTmp } from '../helpers/tmp.js';
import { stopProc, track, type Proc } from '../helpers/proc.js';
import { buildHelper } from '../../src/services/ping/helper-build.js';
import { decodeFrame6 } from '../helpers/frames6.js';
import { bootGuest, streamNic } from './harness.js';
import { readFileSync } from 'node:fs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const OUTSIDE6 = '2001:db8::1';
const GW_NS6 = '2001:db8::2';
const PORT = 8080;
const BLOB_SIZE = 2 * 1024 * 1024;

const OUTSIDE_JS = `
const http = require('node:http');
const { createHash, randomBytes } = require('node:crypto');
const [ip, port, size] = process.argv.slice(1);
const blob = randomBytes(Number(size));
http.createServer((req, res) => {
  console.log('HTTP ' + req.socket.remoteAddress + ' ' + req.url);
  res.writeHead(200, { 'content-length': blob.length });
  res.end(blob);
}).listen(Number(port), ip, () => console.log('READY ' + createHash('sha256').update(blob).digest('hex')));
`;

/** Waits for the guest's SLAAC address in the default prefix. */
const SLAAC = `i=0
while ! ip -6 addr show dev eth0 | grep 'inet6 fd0d:b4b8:6ba1:0:.* scope global' | grep -qv tentative; do i=$((i+1)); [ $i -gt 120 ] && break; sleep 0.5; done
ip -6 addr show dev eth0 scope global | grep inet6 | sed 's/^/ADDR6 /'
`;

let dir = '';
let outside: Netns | null = null;
let gwns: Netns | null = null;
let bare: Netns | null = null;
const procs: Proc[] = [];
let server: Proc | null = null;
let blobSha = '';

async function startGateway(ns: Netns, name: string, extra: string[] = []): Promise<{ proc: Proc; sock: string }> {
  const sock = join(dir, `${name}.sock`);
  const proc = track(ns.spawn(process.execPath, [BIN, 'gateway', '--socket', sock, '--dns-upstream', '127.0.0.1:9', ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), `vmnet gateway (${name})`);
  procs.push(proc);
  await proc.waitLine(/vmnet gateway: listening/, 20_000);
  return { proc, sock };
}

async function icmp6Counters(ns: Netns): Promise<Record<string, number>> {
  const text = await runInNetns(ns, 'cat', ['/proc/net/snmp6']);
  return Object.fromEntries(text.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/) as [string, string]).map(([k, v]) => [k, Number(v)]));
}

beforeAll(async () => {
  requireRoot('the IPv6 NAT-to-the-outside e2e test');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  const built = await buildHelper();
  if ('error' in built) throw new Error(built.error);
  dir = privateTmp('vmnet-v6-outside-');
  outside = createNetns('vmnet-v6out');
  gwns = createNetns('vmnet-v6gw');
  bare = createNetns('vmnet-v6bare');
  await addVethPair(outside, 'out0', '198.51.100.1/24', gwns, 'gw0', '198.51.100.2/24');
  await ipCmd('-n', outside.name, 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'out0', 'nodad');
  await ipCmd('-n', gwns.name, 'addr', 'add', `${GW_NS6}/64`, 'dev', 'gw0', 'nodad');
  await ipCmd('-n', gwns.name, 'route', 'add', 'default', 'via', '198.51.100.1');
  await ipCmd('-n', gwns.name, '-6', 'route', 'add', 'default', 'via', OUTSIDE6);
  await runInNetns(gwns, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=0 0']);
  server = track(outside.spawn(process.execPath, ['-e', OUTSIDE_JS, OUTSIDE6, String(PORT), String(BLOB_SIZE)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'the outside server');
  procs.push(server);
  blobSha = (await server.waitLine(/^READY ([0-9a-f]{64})$/, 20_000))[1]!;
}, 60_000);

afterAll(async () => {
  for (const p of procs) await stopProc(p);
  for (const ns of [outside, gwns, bare]) ns?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('IPv6 NAT and ping to the outside (2001:db8::/64 over a veth)', () => {
  it('fetches from [2001:db8::1] (SHA-256) and pings it 3 times; the outside sees only the gateway namespace address', { timeout: 180_000 }, async () => {
    const { proc, sock } = await startGateway(gwns!, 'out');
    const before = await icmp6Counters(outside!);
    const r = await bootGuest({
      name: 'v6-outside',
      nics: streamNic(sock),
      timeoutMs: 150_000,
      script: `${SLAAC}
wget -q -O - 'http://[${OUTSIDE6}]:${PORT}/blob' | sha256sum | sed 's/^/BLOB /'
ping6 -c 3 -W 3 ${OUTSIDE6} | grep 'packets transmitted' | sed 's/^/PING6 /'
`,
    });
    const after = await icmp6Counters(outside!);
    const log = `guest:\n${r.console}\noutside:\n${server!.lines.join('\n')}\ngateway:\n${proc.lines.join('\n')}\n${proc.stderr()}`;
    expect(r.exitCode, log).toBe(0);
    const guest6 = /ADDR6 +inet6 ([0-9a-f:]+)\//.exec(r.output)?.[1];
    expect(guest6, log).toMatch(/^fd0d:b4b8:6ba1:0:/);
    expect(r.output, log).toContain(`BLOB ${blobSha}`);
    expect(r.output, log).toMatch(/PING6 3 packets transmitted, 3 packets received/);
    expect(after.Icmp6InEchos! - before.Icmp6InEchos!).toBe(3);
    expect(after.Icmp6OutEchoReplies! - before.Icmp6OutEchoReplies!).toBe(3);
    const clients = server!.lines.filter((l) => l.startsWith('HTTP ')).map((l) => l.split(' ')[1]);
    expect(clients.length, log).toBeGreaterThan(0);
    expect(new Set(clients)).toEqual(new Set([GW_NS6]));
    expect(server!.lines.join('\n')).not.toContain(guest6!);
  });

  it('without an IPv6 route the guest connect fails at once: SYN to RST under 100 ms at the gateway', { timeout: 180_000 }, async () => {
    const pcap = join(dir, 'noroute.pcap');
    const { proc, sock } = await startGateway(bare!, 'bare', ['--pcap', pcap]);
    const r = await bootGuest({
      name: 'v6-noroute',
      nics: streamNic(sock),
      timeoutMs: 150_000,
      script: `${SLAAC}
for n in 1 2 3; do
  t0=$(cut -d' ' -f1 /proc/uptime)
  if nc ${OUTSIDE6} ${PORT} </dev/null; then echo CONNECTED; else echo "FAILED $(awk -v t0=$t0 '{printf "%d", ($1 - t0) * 1000}' /proc/uptime) ms"; fi
done
`,
    });
    await stopProc(proc);
    const log = `guest:\n${r.console}\ngateway:\n${proc.lines.join('\n')}\n${proc.stderr()}`;
    expect(r.exitCode, log).toBe(0);
    expect(r.output, log).toMatch(/Connection refused\nFAILED \d+ ms/);
    const frames = readPcapTimed(pcap).filter((f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd).map((f) => ({ t: f.t, d: decodeFrame6(f.bytes) }));
    // Each connect's SYN and the RST that answered it (by the guest's port); the best of three is the gateway's
    // answer time (the machine is shared: other work only ever delays a reply), all are printed.
    const delays: number[] = [];
    for (const syn of frames.filter((f) => f.d.tcp !== null && f.d.tcp.flags === tcp.SYN && f.d.tcp.dstPort === PORT)) {
      const rst = frames.find((f) => f.d.tcp !== null && (f.d.tcp.flags & tcp.RST) !== 0 && f.d.tcp.srcPort === PORT && f.d.tcp.dstPort === syn.d.tcp!.srcPort && f.t >= syn.t);
      if (rst) delays.push((rst.t - syn.t) * 1000);
    }
    const guestMs = [...r.output.matchAll(/FAILED (\d+) ms/g)].map((m) => Number(m[1]));
    console.log(`IPv6 without a route: SYN to RST at the gateway ${delays.map((d) => d.toFixed(1)).join(', ')} ms; guest connect failures ${guestMs.join(', ')} ms`);
    expect(delays.length, log).toBe(3);
    expect(guestMs.length, log).toBe(3);
    expect(Math.min(...delays)).toBeLessThan(100);
  });
});

/** The frames of a classic little-endian microsecond pcap with their timestamps (s). */
function readPcapTimed(path: string): Array<{ t: number; bytes: Uint8Array }> {
  const b = readFileSync(path);
  const out: Array<{ t: number; bytes: Uint8Array }> = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const t = b.readUInt32LE(o) + b.readUInt32LE(o + 4) / 1e6;
    const n = b.readUInt32LE(o + 8);
    out.push({ t, bytes: new Uint8Array(b.subarray(o + 16, o + 16 + n)) });
    o += 16 + n;
  }
  return out;
}
