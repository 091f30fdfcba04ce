/**
 * Bad input, end to end: a live `vmnet gateway` (the built CLI) runs in its
 * own network namespace with only loopback up — no interface, no route out,
 * so nothing it NATs toward the fuzzer's arbitrary destinations can leave
 * the machine — and this test throws well over 100,000 random and mutated
 * frames at it over its QEMU stream socket (test/helpers/fuzz-frames.ts:
 * valid ARP/ICMP/UDP/DHCP/DNS/TCP frames with corrupted fields and lengths,
 * fragment trains, link-layer oddities, random bytes), in batches cut at
 * random points across writes; every few thousand frames a side connection
 * lies about a length prefix (must be closed alone, 'oversize') and another
 * hangs up mid-frame ('mid-frame'). Then the same gateway must still serve a
 * real guest (DHCP, ping, DNS, forwarding), its RSS must have stayed
 * bounded, its counters must show the damage was seen and counted, and it
 * must exit 0 on SIGTERM.
 *
 * Reproduce a run with VMNET_FUZZ_SEED=<seed> (printed); scale with
 * VMNET_FUZZ_FRAMES. Needs root (ip netns), as CI runs; never skipped.
 *
 * A second test runs a gateway in a namespace of its own against clients
 * that spoof hundreds of source addresses and MACs (TCP SYNs and UDP
 * datagrams): each connection must get one guest's share (the TCP cap, the
 * UDP share, 8 addresses), frames from addresses another connection holds
 * must be dropped, and a real guest booted meanwhile must still be served.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameFuzzer, Rng, encodeFrames, lyingPrefixStream, midFrameStream } from '../helpers/fuzz-frames.js';
import { arpFrame, DNS_IP, dnsQuery, GW_IP, ip, ipv4Frame, ipv4Packet, mac, pingFrame, tcpSegment, udpFrame } from '../helpers/frames.js';
import { createNetns, listNetns, requireRoot, type Netns } from '../helpers/netns.js';
import { privateTmp } from '../helpers/tmp.js';
import { track, type Proc } from '../helpers/proc.js';
import { bootGuest, DHCP, parseLease } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const SEED = Number(process.env.VMNET_FUZZ_SEED ?? 0x5eed2026) >>> 0;
const TARGET_FRAMES = Number(process.env.VMNET_FUZZ_FRAMES ?? 120_000);
const REQUIRED_FRAMES = 100_000;
/** Wall-clock budget for the fuzz phase; the frame target must be met within it. */
const FUZZ_BUDGET_MS = 75_000;
/** A side connection with a lying prefix and one hanging up mid-frame, every this many frames. */
const SIDE_EVERY = 5_000;
const MTU = 1500;
const MAX_FRAME = MTU + 14 + 4; // the gateway's stream limit (server.ts: mtu + Ethernet header + 802.1Q tag)
/**
 * RSS bound (MiB). Node 20 itself sits near 50-60 MiB; everything the
 * gateway holds on behalf of guests is capped: reassembly 4 MiB (64
 * datagrams), UDP NAT 4096 flows, neighbours ≤ 8 per connection, DHCP bindings ≤ the
 * pool, TCP NAT per-guest caps, 64 KiB staging chunks per connection. So a
 * healthy gateway stays well under 150 MiB; 250 leaves room for GC slack
 * while a per-frame leak of even ~1 KiB (120 MB over this run) fails it.
 */
const RSS_MAX_MIB = 250;
/** Allowed growth from the early steady state (after warm-up) to after the run. */
const RSS_GROWTH_MIB = 100;
/**
 * The never-reading flood: how long, and how much the gateway's RSS may grow
 * meanwhile. What it may hold for that link is its output bound (4 MiB) plus
 * the kernel's socket buffers (not in RSS); before the bound existed it grew
 * by gigabytes (289 MB in 1.5 s, 4.7 GB in 20 s).
 */
const FLOOD_MS = 20_000;
const FLOOD_RSS_GROWTH_MIB = 40;

// --------------------------------------------------------------- helpers

type GatewayProc = Proc;

function startGatewayProc(ns: Netns, sock: string, dnsPort: number, extra: string[] = []): GatewayProc {
  return track(ns.spawn('node', [BIN, 'gateway', '--socket', sock, '--dns-upstream', `127.0.0.1:${dnsPort}`, ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'vmnet gateway');
}

/** A tiny DNS server run inside the namespace: known.test → A 192.0.2.10 (NOERROR, no data for other types), NXDOMAIN otherwise. */
const DNS_SERVER_JS = `
const dgram = require('node:dgram');
const dnsPacket = require('dns-packet');
const s = dgram.createSocket('udp4');
s.on('message', (msg, rinfo) => {
  let q; try { q = dnsPacket.decode(msg); } catch { return; }
  const question = q.questions && q.questions[0];
  if (!question || q.type !== 'query') return;
  const known = question.name.toLowerCase() === 'known.test';
  let reply;
  try {
    reply = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), questions: [question],
      answers: known && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: '192.0.2.10' }] : [] });
  } catch { return; }
  s.send(reply, rinfo.port, rinfo.address);
});
s.bind(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
`;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Conn {
  socket: net.Socket;
  /** Set when the socket closed without us closing it. */
  closedByPeer: boolean;
  closing: boolean;
  closed: Promise<void>;
}

function connect(path: string, onBytes: (n: number) => void): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    const c: Conn = { socket, closedByPeer: false, closing: false, closed: null as unknown as Promise<void> };
    c.closed = new Promise((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => onBytes(d.length)); // drain what the gateway answers
    socket.on('error', () => {}); // EPIPE/ECONNRESET after the gateway closes us: seen as 'close'
    socket.once('close', () => {
      if (!c.closing) c.closedByPeer = true;
    });
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

/** Resolves true when the peer closed the connection within `ms`. */
async function closedWithin(c: Conn, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([c.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms)))]);
  clearTimeout(t);
  return r;
}

// ----------------------------------------------------------------- state

let ns: Netns | null = null;
let dnsChild: ChildProcess | null = null;
let gw: GatewayProc | null = null;
let dir = '';
let sock = '';

beforeAll(async () => {
  requireRoot('the fuzz e2e test');
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  dir = privateTmp('vmnet-fuzz-');
  sock = join(dir, 'gw.sock');
  ns = createNetns('vmnet-fuzz');
  // Nothing but loopback in there.
  const links = ns.run('ip', ['-o', 'link', 'show']);
  expect(links.trim().split('\n').map((l) => l.split(':')[1]!.trim())).toEqual(['lo']);
  expect(ns.run('ip', ['-4', 'route', 'show']).trim()).toBe('');

  dnsChild = ns.spawn('node', ['-e', DNS_SERVER_JS], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const dnsPort = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`test DNS server did not start: ${out}`)), 10_000);
    dnsChild!.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    dnsChild!.once('exit', (c) => reject(new Error(`test DNS server exited ${c}`)));
  });

  gw = startGatewayProc(ns, sock, dnsPort);
  await gw.waitLine(/vmnet gateway: listening/, 20_000);
  // `ip netns exec` execs in place: the child pid is node's, in the namespace.
  const cmdline = readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8').split('\0');
  expect(cmdline[0]).toMatch(/(^|\/)node$/);
  expect(cmdline).toContain(BIN);
  expect(readFileSync(`/proc/${gw.pid}/net/route`, 'utf8').trim().split('\n')).toHaveLength(1); // header line only: no routes
}, 60_000);

afterAll(async () => {
  if (gw && gw.exitCode() === undefined) {
    gw.child.kill('SIGKILL');
    await Promise.race([gw.exited, sleep(5000)]);
  }
  if (dnsChild && dnsChild.exitCode === null && dnsChild.signalCode === null) {
    dnsChild.kill('SIGKILL');
    await Promise.race([new Promise((r) => dnsChild!.once('exit', r)), sleep(5000)]);
  }
  const name = ns?.name;
  ns?.delete();
  if (name) expect(listNetns()).not.toContain(name);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ test

describe('vmnet gateway under bad input (fuzz)', () => {
  it(`survives ≥ ${REQUIRED_FRAMES} random and mutated frames in a sealed netns, then still serves a real guest, with bounded memory`, async () => {
    const g = gw!;
    const fz = new FrameFuzzer({ seed: SEED, mtu: MTU, maxFrame: MAX_FRAME });
    const rng = fz.rng;
    console.log(`fuzz: seed 0x${SEED.toString(16)} (VMNET_FUZZ_SEED), target ${TARGET_FRAMES} frames, netns ${ns!.name}, gateway pid ${g.pid}`);

    // --- memory sampling
    const samples: Array<{ t: number; sent: number; mib: number }> = [];
    let sent = 0; // frames written on fuzz connections (all sizes)
    let nonEmpty = 0; // of which non-empty (the gateway counts these in framesIn)
    const t0 = performance.now();
    const sample = () => {
      if (g.exitCode() !== undefined) return;
      try {
        samples.push({ t: Math.round(performance.now() - t0), sent, mib: rssMiB(g.pid) });
      } catch {
        /* gone */
      }
    };
    sample();
    const sampler = setInterval(sample, 1000);

    // --- the fuzz phase
    let received = 0;
    const onBytes = (n: number) => (received += n);
    const unexpected: string[] = [];
    const recent: Uint8Array[] = []; // last frames written on the main connection, for a post-mortem
    const dumpRecent = (why: string) => {
      const d = join(dir, `closed-${unexpected.length}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'frames.hex'), recent.map((f) => Buffer.from(f).toString('hex')).join('\n') + '\n');
      unexpected.push(`${why} after ${sent} frames (last ${recent.length} frames in ${d}/frames.hex)`);
    };
    let lying = 0;
    let lyingClosed = 0;
    let midFrame = 0;
    let midFrameClosed = 0;
    let rotations = 0;
    const died = () => new Error(`gateway died during fuzzing (exit ${g.exitCode()}) after ${sent} frames\nstderr:\n${g.stderr()}`);
    const open = async (): Promise<Conn> => {
      try {
        return await connect(sock, onBytes);
      } catch (e) {
        await Promise.race([g.exited, sleep(500)]);
        if (g.exitCode() !== undefined) throw died();
        throw e;
      }
    };
    // A main connection says who it is first, as a guest does (its MACs and static addresses become its own).
    const openMain = async (): Promise<Conn> => {
      const c = await open();
      c.socket.write(encodeFrames(fz.identityFrames()));
      return c;
    };
    let main = await openMain();
    let nextSide = SIDE_EVERY;
    const deadline = t0 + FUZZ_BUDGET_MS;
    try {
      while (sent < TARGET_FRAMES && performance.now() < deadline) {
        if (g.exitCode() !== undefined) throw died();
        if (main.closedByPeer || main.socket.destroyed) {
          if (main.closedByPeer) dumpRecent('the gateway closed the main fuzz connection');
          main = await openMain();
        }
        if (sent >= nextSide) {
          nextSide += SIDE_EVERY;
          // A connection that lies about a length: it alone must be closed.
          const l = await open();
          lying++;
          const { bytes } = lyingPrefixStream(fz);
          l.socket.write(bytes);
          if (await closedWithin(l, 5000)) lyingClosed++;
          else {
            l.closing = true;
            l.socket.destroy();
          }
          // A connection that hangs up inside a prefix or a frame.
          const m = await open();
          midFrame++;
          m.closing = true;
          m.socket.end(midFrameStream(fz));
          if (await closedWithin(m, 5000)) midFrameClosed++;
          else m.socket.destroy();
          // Now and then, also start over on a fresh main connection (a clean close at a frame boundary).
          if (rng.chance(0.3)) {
            main.closing = true;
            main.socket.end();
            await closedWithin(main, 5000);
            main = await openMain();
            rotations++;
          }
        }
        // One batch: 1..64 frames, written in 1..4 pieces cut at random points (inside prefixes and frames too).
        const n = rng.range(1, 64);
        const frames: Uint8Array[] = [];
        for (let i = 0; i < n; i++) {
          const f = fz.next();
          frames.push(f);
          if (f.length > 0) nonEmpty++;
          recent.push(f);
        }
        if (recent.length > 256) recent.splice(0, recent.length - 256);
        const buf = encodeFrames(frames);
        const pieces = rng.range(1, 4);
        let at = 0;
        let ok = true;
        for (let p = 1; p <= pieces; p++) {
          const end = p === pieces ? buf.length : Math.min(buf.length, at + rng.int(buf.length - at + 1));
          if (end > at) ok = main.socket.write(buf.subarray(at, end)) && ok;
          at = end;
        }
        sent += n;
        if (!ok) {
          // Backpressure: wait for the gateway to catch up (or to close us).
          await Promise.race([new Promise((r) => main.socket.once('drain', r)), main.closed]);
        } else if ((sent & 7) === 0) await tick();
      }
      main.closing = true;
      main.socket.end();
      await closedWithin(main, 5000);
    } finally {
      clearInterval(sampler);
    }
    const fuzzMs = performance.now() - t0;
    await sleep(1500); // let in-flight DNS/NAT work finish
    sample();
    const rate = Math.round(sent / (fuzzMs / 1000));
    const mibs = samples.map((s) => s.mib);
    const early = samples.find((s) => s.t >= 5000)?.mib ?? mibs[1] ?? mibs[0]!;
    const maxMib = Math.max(...mibs);
    const finalMib = mibs[mibs.length - 1]!;
    console.log(
      `fuzz: ${sent} frames (${nonEmpty} non-empty) in ${(fuzzMs / 1000).toFixed(1)} s = ${rate} frames/s; ` +
        `gateway sent back ${(received / 1e6).toFixed(1)} MB; ${lying} lying-prefix and ${midFrame} mid-frame connections, ${rotations} rotations; ` +
        `families ${JSON.stringify(fz.kinds)}, mutated ${fz.mutated} (checksums refreshed ${fz.refreshed}), DHCP guarded ${fz.dhcpGuarded}`,
    );
    console.log(`fuzz: gateway RSS MiB: start ${mibs[0]!.toFixed(1)}, early steady ${early.toFixed(1)}, max ${maxMib.toFixed(1)}, after ${finalMib.toFixed(1)}; samples ${samples.map((s) => `${s.t / 1000 | 0}s:${s.mib.toFixed(0)}`).join(' ')}`);

    expect(g.exitCode(), `gateway died\n${g.stderr()}`).toBeUndefined();
    expect(nonEmpty, `only ${nonEmpty} frames within ${FUZZ_BUDGET_MS} ms`).toBeGreaterThanOrEqual(REQUIRED_FRAMES);
    expect(received, 'the gateway never answered anything').toBeGreaterThan(0);
    expect(lyingClosed, 'connections with a lying length prefix must be closed by the gateway').toBe(lying);
    expect(midFrameClosed).toBe(midFrame);

    // --- the same gateway serves a real guest
    const r = await bootGuest({
      name: 'fuzz-guest',
      nics: [{ backend: { kind: 'stream', path: sock } }],
      script: `${DHCP}
ping -c 2 -W 2 10.0.2.2 | grep -c 'bytes from' | sed 's/^/PINGS /'
nslookup host.vmnet.internal 10.0.2.3
nslookup known.test 10.0.2.3
i=0; while ! ip -6 addr show dev eth0 | grep 'inet6 fd0d:b4b8:6ba1:0:.* scope global' | grep -qv tentative; do i=$((i+1)); [ $i -gt 120 ] && break; sleep 0.5; done
ping6 -c 2 -W 2 fd0d:b4b8:6ba1::2 | grep -c 'bytes from' | sed 's/^/PINGS6 /'
nslookup -type=AAAA gateway.vmnet.internal fd0d:b4b8:6ba1::3 2>&1 | tr '\n' ' ' | sed 's/^/DNS6 /'; echo
`,
    });
    expect(g.exitCode(), `gateway died while serving the guest\n${g.stderr()}`).toBeUndefined();
    expect(r.exitCode, r.console).toBe(0);
    const lease = parseLease(r.output);
    expect(lease, r.console).not.toBeNull();
    expect(lease!.ip).toMatch(/^10\.0\.2\.\d+$/);
    expect(lease).toMatchObject({ mask: '24', router: '10.0.2.2', dns: '10.0.2.3' });
    expect(r.output).toContain('PINGS 2');
    expect(r.output, r.console).toContain('PINGS6 2');
    expect(r.output).toMatch(/DNS6 .*Address: fd0d:b4b8:6ba1::2/);
    expect(r.output).toMatch(/Name:\s+host\.vmnet\.internal\s+Address: 10\.0\.2\.2/);
    expect(r.output).toMatch(/Name:\s+known\.test\s+Address: 192\.0\.2\.10/);

    // --- counters (SIGUSR1)
    const from = g.lines.length;
    process.kill(g.pid, 'SIGUSR1');
    const m = await g.waitLine(/^vmnet gateway: counters \(SIGUSR1\) (\{.*\})$/, 10_000, from);
    const snap = JSON.parse(m[1]!) as { framesIn: number; framesOut: number; drops: Record<string, number>; connectionsClosed: Record<string, number>; fragmentsPending: number; udpFlows: number; leases: unknown[] };
    console.log(`fuzz: counters framesIn ${snap.framesIn}, framesOut ${snap.framesOut}, drops ${JSON.stringify(snap.drops)}, connectionsClosed ${JSON.stringify(snap.connectionsClosed)}, udpFlows ${snap.udpFlows}, fragmentsPending ${snap.fragmentsPending}, leases ${snap.leases.length}`);
    // A frame handler that throws closes its connection with 'error' (StreamPort): a gateway bug, whatever the input.
    // (It also loses the frames in flight, so check it before counting them.)
    expect(unexpected, `the gateway closed fuzz connections on its own (closes with reason 'error': ${snap.connectionsClosed.error ?? 0})`).toEqual([]);
    expect(snap.connectionsClosed.error ?? 0, "connections closed with reason 'error'").toBe(0);
    expect(snap.framesIn).toBeGreaterThanOrEqual(REQUIRED_FRAMES);
    for (const reason of ['eth-short', 'oversize', 'not-for-us', 'vlan-tagged', 'ethertype', 'ipv6-invalid', 'ipv6-src', 'ndp-invalid', 'arp-invalid', 'ipv4-invalid', 'ipv4-src', 'src-taken', 'src-limit', 'src-mac', 'ttl-expired', 'icmp-invalid', 'udp-invalid', 'dhcp-invalid']) {
      expect(snap.drops[reason] ?? 0, `drop reason ${reason}`).toBeGreaterThan(0);
    }
    expect(snap.connectionsClosed.oversize ?? 0).toBeGreaterThanOrEqual(lying);
    expect(snap.connectionsClosed['mid-frame'] ?? 0).toBeGreaterThanOrEqual(midFrame);

    // --- memory
    expect(maxMib, `RSS peaked at ${maxMib.toFixed(1)} MiB`).toBeLessThan(RSS_MAX_MIB);
    expect(finalMib - early, `RSS grew from ${early.toFixed(1)} to ${finalMib.toFixed(1)} MiB`).toBeLessThan(RSS_GROWTH_MIB);
  }, 360_000);

  it(`a client that never reads floods it for ${FLOOD_MS / 1000} s: RSS stays within ${FLOOD_RSS_GROWTH_MIB} MiB of where it was, replies beyond the link bound are dropped and counted, and a real guest leases, pings and resolves meanwhile`, async () => {
    const g = gw!;
    // The flooder: a static address of its own, a link it never reads from.
    const flooder = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ path: sock }, () => resolve(s));
      s.once('error', reject);
    });
    flooder.pause(); // never read: the kernel buffers fill, then the gateway's queue toward us
    flooder.on('error', () => {});
    let peerClosed = false;
    flooder.once('close', () => (peerClosed = true));
    const SRC = ip('10.0.2.200');
    const MAC = mac('02:00:00:00:00:c8');
    const big = new Uint8Array(1400).fill(0x5a);
    const batch = encodeFrames([
      pingFrame({ src: MAC, srcIp: SRC, dstIp: GW_IP }, big), // answered with 1,442 bytes
      udpFrame({ src: MAC, srcIp: SRC, dstIp: DNS_IP, srcPort: 5353, dstPort: 53 }, dnsQuery('host.vmnet.internal')), // a local answer
      arpFrame({ op: 1, sha: MAC, spa: SRC, tpa: GW_IP, src: MAC }), // an ARP reply
    ]);
    const rss0 = rssMiB(g.pid);
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssMiB(g.pid)), 500);
    let batches = 0;
    let flooding = true;
    const t0 = performance.now();
    const flood = (async () => {
      while (flooding && !peerClosed && g.exitCode() === undefined) {
        let ok = true;
        for (let i = 0; i < 64 && ok; i++, batches++) ok = flooder.write(batch);
        if (!ok) await Promise.race([new Promise((r) => flooder.once('drain', r)), sleep(200)]);
        else await tick();
      }
    })();
    try {
      await sleep(2000); // the flood is on and the gateway's queue toward the flooder is full
      const guest = await bootGuest({
        name: 'flood-guest',
        nics: [{ backend: { kind: 'stream', path: sock } }],
        timeoutMs: 240_000,
        script: `${DHCP}
ping -c 2 -W 5 10.0.2.2 | grep -c 'bytes from' | sed 's/^/PINGS /'
nslookup host.vmnet.internal 10.0.2.3
`,
      });
      const left = FLOOD_MS - (performance.now() - t0);
      if (left > 0) await sleep(left);
      expect(guest.exitCode, guest.console).toBe(0);
      expect(parseLease(guest.output), guest.console).not.toBeNull();
      expect(guest.output).toContain('PINGS 2');
      expect(guest.output).toMatch(/Name:\s+host\.vmnet\.internal\s+Address: 10\.0\.2\.2/);
    } finally {
      flooding = false;
      clearInterval(sampler);
      await flood;
    }
    const seconds = (performance.now() - t0) / 1000;
    const peak = Math.max(rss0, ...samples);
    const from = g.lines.length;
    process.kill(g.pid, 'SIGUSR1');
    const m = await g.waitLine(/^vmnet gateway: counters \(SIGUSR1\) (\{.*\})$/, 10_000, from);
    const snap = JSON.parse(m[1]!) as { linkOverflow: number };
    console.log(`flood: ${batches * 3} frames in ${seconds.toFixed(1)} s from a client that never reads; gateway RSS ${rss0.toFixed(0)} → peak ${peak.toFixed(0)} MiB; ${snap.linkOverflow} frames dropped at the link bound`);
    expect(g.exitCode(), g.stderr()).toBeUndefined();
    expect(peerClosed, 'the gateway keeps a link that merely does not read').toBe(false);
    expect(batches * 3).toBeGreaterThan(30_000); // it really was a flood
    expect(snap.linkOverflow).toBeGreaterThan(0);
    expect(peak - rss0, `RSS grew from ${rss0.toFixed(1)} to ${peak.toFixed(1)} MiB`).toBeLessThan(FLOOD_RSS_GROWTH_MIB);
    expect(peak).toBeLessThan(RSS_MAX_MIB);
    flooder.destroy();
  }, 360_000);

  it('exits 0 on SIGTERM and prints its counters', async () => {
    const g = gw!;
    process.kill(g.pid, 'SIGTERM');
    const code = await Promise.race([g.exited, sleep(15_000).then(() => 'timeout' as const)]);
    expect(code, g.stderr()).toBe(0);
    expect(g.lines.some((l) => l.startsWith('vmnet gateway: counters (exit) '))).toBe(true);
  }, 360_000);
});

// ------------------------------------------------------- spoofed sources

/**
 * Inside the namespace: a TCP server on 127.0.0.1 that holds every
 * connection open (answering an HTTP request with HELLO) and reports how
 * many it holds, four times a second.
 */
const HOLD_SERVER_JS = `
const net = require('node:net');
let open = 0, total = 0;
const s = net.createServer((c) => {
  open++; total++;
  c.on('error', () => {});
  c.on('close', () => open--);
  c.on('data', () => c.end('HTTP/1.0 200 OK\\r\\ncontent-length: 5\\r\\n\\r\\nHELLO'));
});
s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
setInterval(() => console.log('OPEN ' + open + ' TOTAL ' + total), 250);
`;

/** Starts a node script inside `ns` and waits for its "PORT n" line; returns the child and the port. */
async function nsScript(ns: Netns, js: string): Promise<{ child: ChildProcess; port: number; lines: string[] }> {
  const child = ns.spawn('node', ['-e', js], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`script did not start: ${out}`)), 10_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      lines.push(...d.split('\n').filter(Boolean));
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (c) => reject(new Error(`script exited ${c}: ${out}`)));
  });
  return { child, port, lines };
}

/**
 * One batch of frames from spoofing client `client`: each from a source
 * address picked among 10.0.2.100-139 (both clients pick from the same 40)
 * and a source port, from the client's own MAC or (1 in 10) a random one.
 */
function spoofBatch(rng: Rng, client: number, n: number, holdPort: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const src = (0x0a000200 + rng.range(100, 139)) >>> 0;
    const mac = rng.chance(0.9) ? new Uint8Array([0x02, 0x5f, 0, 0, 0, client + 1]) : new Uint8Array([0x02, 0x5f, rng.int(256), rng.int(256), rng.int(256), rng.int(256)]);
    const sport = rng.range(1024, 65535);
    if (rng.chance(0.5)) frames.push(ipv4Frame(ipv4Packet({ src, dst: GW_IP, proto: 6 }, tcpSegment(src, GW_IP, sport, holdPort, { seq: rng.u32() })), { src: mac }));
    else frames.push(udpFrame({ src: mac, srcIp: src, srcPort: sport, dstIp: GW_IP, dstPort: 9 }, new Uint8Array(16)));
  }
  return frames;
}

describe('vmnet gateway under spoofed source addresses', () => {
  it('a client spoofing hundreds of sources gets one guest’s share, and a real guest is still served', async () => {
    const TCP_CAP = 64;
    const spoofNs = createNetns('vmnet-spoof');
    const spoofDir = privateTmp('vmnet-spoof-');
    const spoofSock = join(spoofDir, 'gw.sock');
    const children: ChildProcess[] = [];
    let g: GatewayProc | null = null;
    const clients: Conn[] = [];
    let background: NodeJS.Timeout | null = null;
    try {
      const dnsSrv = await nsScript(spoofNs, DNS_SERVER_JS);
      children.push(dnsSrv.child);
      const hold = await nsScript(spoofNs, HOLD_SERVER_JS);
      children.push(hold.child);
      g = startGatewayProc(spoofNs, spoofSock, dnsSrv.port, ['--tcp-per-guest', String(TCP_CAP)]);
      await g.waitLine(/vmnet gateway: listening/, 20_000);
      const maxOpen = () => Math.max(0, ...hold.lines.map((l) => Number(/^OPEN (\d+)/.exec(l)?.[1] ?? 0)));

      // Two spoofing clients, 3000 frames each: SYNs to the host (10.0.2.2 → 127.0.0.1) and UDP from 40 addresses.
      const rng = new Rng(SEED ^ 0x5900f);
      for (let c = 0; c < 2; c++) clients.push(await connect(spoofSock, () => {}));
      for (let round = 0; round < 30; round++) {
        clients.forEach((c, i) => c.socket.write(encodeFrames(spoofBatch(rng, i, 100, hold.port))));
        await sleep(20);
      }
      await sleep(2000);
      const before = g.lines.length;
      process.kill(g.pid, 'SIGUSR1');
      const snap1 = JSON.parse((await g.waitLine(/^vmnet gateway: counters \(SIGUSR1\) (\{.*\})$/, 10_000, before))[1]!) as { drops: Record<string, number>; udpFlows: number; neighbors: unknown[] };
      const held = maxOpen();
      console.log(`spoof: host connections held at most ${held} (cap ${TCP_CAP} per client, 2 clients), udpFlows ${snap1.udpFlows}, neighbours ${snap1.neighbors.length}, drops ${JSON.stringify(snap1.drops)}`);
      expect(held).toBeGreaterThanOrEqual(TCP_CAP); // the cap, not the claims, is what stopped them
      expect(held).toBeLessThanOrEqual(2 * TCP_CAP);
      expect(snap1.neighbors.length).toBeLessThanOrEqual(2 * 8);
      expect(snap1.udpFlows).toBeLessThanOrEqual(2 * 1024);
      expect(snap1.drops['src-limit'] ?? 0).toBeGreaterThan(1000);
      expect(snap1.drops['src-taken'] ?? 0).toBeGreaterThan(0);

      // Keep spoofing while a real guest boots and uses the network.
      background = setInterval(() => {
        clients.forEach((c, i) => c.socket.destroyed || c.socket.write(encodeFrames(spoofBatch(rng, i, 20, hold.port))));
      }, 100);
      const r = await bootGuest({
        name: 'spoof-guest',
        nics: [{ backend: { kind: 'stream', path: spoofSock } }],
        script: `${DHCP}
ping -c 2 -W 2 10.0.2.2 | grep -c 'bytes from' | sed 's/^/PINGS /'
nslookup known.test 10.0.2.3
wget -O - http://10.0.2.2:${hold.port}/ 2>&1 | sed "s/^/HOLD /"; echo
`,
      });
      clearInterval(background);
      background = null;
      expect(g.exitCode(), g.stderr()).toBeUndefined();
      expect(r.exitCode, r.console).toBe(0);
      expect(parseLease(r.output)?.ip, r.console).toMatch(/^10\.0\.2\.\d+$/);
      expect(r.output).toContain('PINGS 2');
      expect(r.output).toMatch(/Name:\s+known\.test\s+Address: 192\.0\.2\.10/);
      expect(r.output).toContain('HOLD HELLO');
      expect(maxOpen()).toBeLessThanOrEqual(2 * TCP_CAP + 1); // the guest's own connection on top

      process.kill(g.pid, 'SIGTERM');
      expect(await Promise.race([g.exited, sleep(15_000).then(() => 'timeout' as const)]), g.stderr()).toBe(0);
    } finally {
      if (background) clearInterval(background);
      for (const c of clients) c.socket.destroy();
      if (g && g.exitCode() === undefined) {
        g.child.kill('SIGKILL');
        await Promise.race([g.exited, sleep(5000)]);
      }
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      spoofNs.delete();
      rmSync(spoofDir, { recursive: true, force: true });
    }
  }, 300_000);
});

