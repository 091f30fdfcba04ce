/**
 * Ping to the outside, end to end. Three network namespaces joined by veth
 * pairs: the gateway's (198.51.100.2/24, default route via the outside, so
 * nothing leaves the machine), "the outside" (198.51.100.1/24, a router:
 * forwarding on, 192.0.2.1/24 toward the third) and "far" (192.0.2.2/24,
 * default route back via 192.0.2.1). The built CLI, `vmnet gateway`, runs in
 * the gateway's namespace, whose own net.ipv4.ping_group_range the test
 * sets (it is per namespace); a real guest (QEMU, the bundled test guest,
 * busybox ping) connects to it.
 *
 *  1. Ping sockets allowed (the gateway as root, range "0 0"): `ping -c 3`
 *     to the outside gets 3 replies, and they are real: the outside's own
 *     counters grew by exactly the echo requests it answered, a capture
 *     there shows them coming from the gateway's namespace address with the
 *     host's identifier (never 10.0.2.15), and an address in the outside's
 *     subnet that nobody holds gets no reply at all (the gateway's pcap
 *     shows host unreachable from 10.0.2.2 instead). TTL is honoured: with
 *     TTL 2 the outside router answers time exceeded, relayed to the guest
 *     from 198.51.100.1; with TTL 3 the far host answers.
 *  2. Ping sockets refused (range "1 0", the kernel default): the gateway
 *     prints its one line with the sysctl that allows them, once for two
 *     pings, and the guest gets 0 replies; its counters say why.
 *  3. Rootless: the gateway as the unprivileged user `vmnet-test` (made
 *     when missing, as the rootless test does; the gateway and its helper
 *     run with that uid), the range holding just that user's group:
 *     3 replies.
 * Needs root (ip netns, setpriv); never skipped.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHelper } from '../../src/services/ping/helper-build.js';
import { addVethPair, createNetns, ipCmd, requireRoot, runInNetns, type Netns } from '../helpers/netns.js';
import { privateTmp } from '../helpers/tmp.js';
import { stopProc, track, type Proc } from '../helpers/proc.js';
import { ensureTestUser, TEST_USER } from '../helpers/test-user.js';
import { bootGuest, DHCP, streamNic } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const OUTSIDE_IP = '198.51.100.1';
const GW_NS_IP = '198.51.100.2';
const NOBODY_IP = '198.51.100.99';
const FAR_IP = '192.0.2.2';
const USER = TEST_USER;

let dir = '';
let gwns: Netns | null = null;
let outside: Netns | null = null;
let far: Netns | null = null;
const procs: Proc[] = [];

beforeAll(async () => {
  requireRoot('the ping-to-the-outside e2e test');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  // Built as at install time (postinstall), so the unprivileged gateway finds it in the package.
  const built = await buildHelper();
  if ('error' in built) throw new Error(built.error);
  dir = privateTmp('vmnet-ping-');
  execFileSync('chmod', ['0755', dir]);
  gwns = createNetns('vmnet-ping-gw');
  outside = createNetns('vmnet-ping-out');
  far = createNetns('vmnet-ping-far');
  await addVethPair(outside, 'out0', `${OUTSIDE_IP}/24`, gwns, 'gw0', `${GW_NS_IP}/24`);
  await addVethPair(outside, 'out1', '192.0.2.1/24', far, 'far0', `${FAR_IP}/24`);
  await ipCmd('-n', gwns.name, 'route', 'add', 'default', 'via', OUTSIDE_IP);
  await ipCmd('-n', far.name, 'route', 'add', 'default', 'via', '192.0.2.1');
  await runInNetns(outside, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
}, 60_000);

afterAll(async () => {
  for (const p of procs) await stopProc(p);
  for (const ns of [gwns, outside, far]) ns?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const setRange = (range: string) => runInNetns(gwns!, 'sysctl', ['-qw', `net.ipv4.ping_group_range=${range}`]);

/** Starts `vmnet gateway` in the gateway's namespace (as `user` when given) and waits until it listens. */
async function startGateway(name: string, extra: string[] = [], user?: string): Promise<{ proc: Proc; sock: string }> {
  const sockDir = join(dir, name);
  mkdirSync(sockDir, { mode: 0o700 });
  if (user) execFileSync('chown', [user, sockDir]);
  const sock = join(sockDir, 'gw.sock');
  const gw = [process.execPath, BIN, 'gateway', '--socket', sock, '--dns-upstream', `${OUTSIDE_IP}:53`, ...extra];
  const argv = user ? ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--reset-env', ...gw] : gw;
  const proc = track(gwns!.spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), `vmnet gateway (${name})`);
  procs.push(proc);
  await proc.waitLine(/vmnet gateway: listening/, 20_000);
  return { proc, sock };
}

/** Stops a gateway and returns the counters it printed at exit. */
async function stopGateway(proc: Proc): Promise<{ ping: Record<string, number> | null; drops: Record<string, number> }> {
  await stopProc(proc);
  const line = proc.lines.find((l) => l.startsWith('vmnet gateway: counters (exit) '));
  if (!line) throw new Error(`no counters at exit:\n${proc.lines.join('\n')}\n${proc.stderr()}`);
  return JSON.parse(line.slice('vmnet gateway: counters (exit) '.length));
}

/** busybox ping's summary: packets transmitted and received. */
function summary(output: string, tag: string): { sent: number; received: number } {
  const m = new RegExp(`^${tag} (\\d+) packets transmitted, (\\d+) packets received`, 'm').exec(output);
  if (!m) throw new Error(`no ping summary for ${tag} in:\n${output}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

/** The outside namespace's ICMP counters (/proc/net/snmp, read from inside it). */
async function icmpCounters(ns: Netns): Promise<Record<string, number>> {
  const lines = (await runInNetns(ns, 'cat', ['/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Icmp:'));
  const [h, v] = [lines[0]!.split(/\s+/), lines[1]!.split(/\s+/)];
  return Object.fromEntries(h.slice(1).map((k, i) => [k, Number(v[i + 1])]));
}

/** tshark's fields for each packet of a capture matching `filter`, one array per packet. */
function tshark(file: string, filter: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
}

/** Pids of the children of `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Boots the test guest on the gateway at `sock` and runs `script` after DHCP. */
const guestRun = (name: string, sock: string, script: string) => bootGuest({ name, memoryMiB: 256, nics: streamNic(sock), timeoutMs: 200_000, script: `${DHCP}${script}` });

const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

describe('ping to the outside', () => {
  it('ping sockets allowed: 3 real replies from the outside, none from an address nobody holds, TTL honoured', { timeout: 240_000 }, async () => {
    await setRange('0 0');
    const pcap = join(dir, 'gw.pcap');
    const { proc: gw, sock } = await startGateway('allowed', ['--pcap', pcap]);
    const capFile = join(dir, 'outside.pcapng');
    const cap = track(outside!.spawn('dumpcap', ['-q', '-i', 'out0', '-f', 'icmp', '-w', capFile], { stdio: ['ignore', 'pipe', 'pipe'] }), 'dumpcap');
    procs.push(cap);
    for (let i = 0; i < 100 && !existsSync(capFile); i++) await new Promise((r) => setTimeout(r, 50));
    const before = await icmpCounters(outside!);
    const r = await guestRun(
      'ping-outside',
      sock,
      `ping -c 3 -W 5 ${OUTSIDE_IP} 2>&1 | sed 's/^/OUT /'
ping -c 2 -W 4 ${NOBODY_IP} 2>&1 | sed 's/^/NOBODY /'
ping -c 1 -W 3 -t 2 ${FAR_IP} 2>&1 | sed 's/^/TTL2 /'
ping -c 1 -W 5 -t 3 ${FAR_IP} 2>&1 | sed 's/^/TTL3 /'
`,
    );
    await new Promise((res) => setTimeout(res, 500)); // the capture's last packets reach its file
    const after = await icmpCounters(outside!);
    await stopProc(cap);
    const counters = await stopGateway(gw);
    const log = `guest:\n${r.console}\ngateway:\n${gw.lines.join('\n')}\n${gw.stderr()}`;
    expect(r.exitCode, log).toBe(0);

    // Three real replies, with the TTL they came with, less the gateway's hop.
    expect(summary(r.output, 'OUT'), log).toEqual({ sent: 3, received: 3 });
    expect(r.output, log).toMatch(new RegExp(`^OUT \\d+ bytes from ${OUTSIDE_IP}: seq=0 ttl=63`, 'm'));
    // Nobody at .99: no reply (an address the gateway made answers up for would reply).
    expect(summary(r.output, 'NOBODY'), log).toEqual({ sent: 2, received: 0 });
    // TTL 2 dies at the outside router; TTL 3 reaches the far host.
    expect(summary(r.output, 'TTL2'), log).toEqual({ sent: 1, received: 0 });
    expect(summary(r.output, 'TTL3'), log).toEqual({ sent: 1, received: 1 });
    expect(r.output, log).toMatch(new RegExp(`^TTL3 \\d+ bytes from ${FAR_IP}: seq=0 ttl=62`, 'm'));

    // The outside answered exactly what it received: 3 pings, plus the far host's transit is not its own.
    expect(after.InEchos! - before.InEchos!, log).toBe(3);
    expect(after.OutEchoReps! - before.OutEchoReps!, log).toBe(3);
    expect(after.OutTimeExcds! - before.OutTimeExcds!, log).toBe(1);
    // The capture at the outside: every echo request came from the gateway's namespace address, with the host's identifier.
    const requests = tshark(capFile, 'icmp.type == 8 && ip.dst == 198.51.100.1', ['ip.src', 'ip.ttl', 'icmp.ident']);
    expect(requests.map((p) => p[0]), log).toEqual([GW_NS_IP, GW_NS_IP, GW_NS_IP]);
    expect(requests.map((p) => p[1])).toEqual(['63', '63', '63']);
    const guestIdent = tshark(pcap, `icmp.type == 8 && ip.dst == ${OUTSIDE_IP}`, ['icmp.ident'])[0]![0];
    expect(requests[0]![2]).not.toBe(guestIdent); // Linux gave the socket its own identifier
    expect(tshark(capFile, 'ip.addr == 10.0.2.0/24', ['frame.number'])).toEqual([]);

    // What the guest was told, from the gateway's pcap: host unreachable for .99 from the gateway, time exceeded from the router.
    const errors = tshark(pcap, 'icmp.type == 3 || icmp.type == 11', ['ip.src', 'ip.dst', 'icmp.type', 'icmp.code', 'icmp.ident']);
    const toGuest = errors.map((p) => `${p[0]!.split(',')[0]} ${p[1]!.split(',')[0]} ${p[2]!.split(',')[0]}/${p[3]!.split(',')[0]} ${p[4]}`);
    expect(toGuest.filter((e) => e.startsWith('10.0.2.2 10.0.2.15 3/1')).length, toGuest.join('\n')).toBeGreaterThanOrEqual(1);
    expect(toGuest.filter((e) => e.startsWith(`${OUTSIDE_IP} 10.0.2.15 11/0`)), toGuest.join('\n')).toHaveLength(1);
    // The quoted request carries the guest's identifier again.
    const ttlGuestIdent = tshark(pcap, `icmp.type == 8 && ip.dst == ${FAR_IP} && ip.ttl == 2`, ['icmp.ident'])[0]![0];
    expect(toGuest.find((e) => e.startsWith(`${OUTSIDE_IP} `))).toContain(ttlGuestIdent!);

    expect(counters.ping, log).toMatchObject({ replies: 4, denied: 0, unavailable: 0, foreign: 0 });
    expect(counters.ping!.errors, log).toBeGreaterThanOrEqual(2);
    expect(gw.stderr(), log).toBe('');
    console.log(`ping-outside: guest script ${(r.elapsedMs / 1000).toFixed(1)} s; outside saw ${requests.length} requests from ${GW_NS_IP}; ping counters ${JSON.stringify(counters.ping)}`);
  });

  it('ping sockets refused: one line with the sysctl, and the guest gets no reply at all', { timeout: 240_000 }, async () => {
    await setRange('1 0');
    const { proc: gw, sock } = await startGateway('refused');
    const r = await guestRun(
      'ping-refused',
      sock,
      `ping -c 3 -W 3 ${OUTSIDE_IP} 2>&1 | sed 's/^/FIRST /'
ping -c 2 -W 3 ${OUTSIDE_IP} 2>&1 | sed 's/^/AGAIN /'
`,
    );
    const counters = await stopGateway(gw);
    const log = `guest:\n${r.console}\ngateway:\n${gw.lines.join('\n')}\n${gw.stderr()}`;
    expect(r.exitCode, log).toBe(0);
    expect(summary(r.output, 'FIRST'), log).toEqual({ sent: 3, received: 0 });
    expect(summary(r.output, 'AGAIN'), log).toEqual({ sent: 2, received: 0 });
    const lines = gw.stderr().split('\n').filter(Boolean);
    expect(lines, log).toEqual([
      'vmnet gateway: ping to the outside is off: this host does not allow ping sockets for group 0 (net.ipv4.ping_group_range is "1 0"); allow them, as root, with: sysctl -w net.ipv4.ping_group_range="0 2147483647" (or "0 0" for this group alone)',
    ]);
    // Every request counted: refused at the socket (each try, 10 s apart) or while refused.
    expect(counters.ping, log).toMatchObject({ denied: 5, replies: 0, flows: 0 });
    expect(counters.drops['ping-unavailable']! + counters.ping!.flowsOpened!, log).toBe(5);
  });

  it('rootless: the gateway and its helper as an unprivileged user, the range holding just its group: 3 replies', { timeout: 240_000 }, async () => {
    const { uid, gid } = ensureTestUser();
    expect(uid).not.toBe(0);
    await setRange(`${gid} ${gid}`);
    const { proc: gw, sock } = await startGateway('rootless', [], USER);
    expect(uidOf(gw.pid)).toBe(uid);
    let helperUid = -1;
    const r = await guestRun('ping-rootless', sock, `ping -c 3 -W 5 ${OUTSIDE_IP} 2>&1 | sed 's/^/OUT /'\n`);
    // The helper lives as long as its gateway.
    for (const c of childrenOf(gw.pid)) helperUid = uidOf(c);
    const counters = await stopGateway(gw);
    const log = `guest:\n${r.console}\ngateway:\n${gw.lines.join('\n')}\n${gw.stderr()}`;
    expect(r.exitCode, log).toBe(0);
    expect(summary(r.output, 'OUT'), log).toEqual({ sent: 3, received: 3 });
    expect(helperUid, 'the ping helper runs as the gateway user').toBe(uid);
    expect(counters.ping, log).toMatchObject({ replies: 3, denied: 0 });
    expect(gw.stderr(), log).toBe('');
  });
});
