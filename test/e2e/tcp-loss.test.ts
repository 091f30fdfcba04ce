/**
 * TCP NAT and port forwarding under loss and reordering, with the Linux
 * kernel's TCP as the guest: a network namespace holds a TAP device
 * (`vmnet0`) that bench/relay/tap-relay.c connects to the gateway's stream
 * socket (the gateway runs in this test process). The namespace takes its
 * address from vmnet's DHCP (busybox udhcpc). Then, all at once, with 5 %
 * loss and 5 % reordering on the link:
 *   (a) the guest downloads 50 MB over HTTP from the host (10.0.2.2 → 127.0.0.1),
 *   (b) the guest uploads 50 MB to the host through NAT,
 *   (c) through a port forward, the host sends 50 MB to a server in the guest
 *       while that server sends 50 MB back (full duplex);
 * every stream's SHA-256 must match on both ends. The same runs again over
 * IPv6: the namespace forms its SLAAC address from the gateway's router
 * advertisement, (a) and (b) go to the gateway's IPv6 address (the host's
 * ::1), and (c) goes through a [::1] forward to the guest's IPv6 address.
 *
 * Impairment: `tc qdisc … netem loss 5% reorder 5% delay 1ms` on the TAP
 * (guest → gateway) when the kernel has sch_netem, plus the same loss and
 * reordering inside the relay for gateway → guest; on kernels without netem
 * (CONFIG_NET_SCH_NETEM unset and no module, as on the CI machines this was
 * written on) the relay impairs both directions (-l 5 -r 5: drop, or swap a
 * frame with the next one of the same direction). The seed is printed;
 * reproduce with VMNET_LOSS_SEED=<seed>; scale with VMNET_LOSS_MB.
 *
 * Prints per-transfer throughput, the gateway's TCP NAT counters, its
 * connections' retransmission counters (sampled while they live) and the
 * guest kernel's TCP counters. Needs root (ip netns, tap); never skipped.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { addTap, createNetns, netemAvailable, netnsTcpCounters, requireRoot, runInNetns, type Netns } from '../helpers/netns.js';
import { startTapRelay, type TapRelay } from '../helpers/tap-relay.js';
import { privateTmp } from '../helpers/tmp.js';
import { freePort } from '../helpers/ports.js';
import { sha256, startHttpServer, type TestHttpServer } from './harness.js';

const MB = 1024 * 1024;
const SIZE = Math.round(Number(process.env.VMNET_LOSS_MB ?? 50) * MB);
const SEED = Number(process.env.VMNET_LOSS_SEED ?? randomBytes(4).readUInt32BE(0)) >>> 0;
const LOSS_PCT = 5;
const REORDER_PCT = 5;
const TAP = 'vmnet0';
/** The gateway's default IPv6 address (config.ts). */
const GW6 = 'fd0d:b4b8:6ba1::2';
const GUEST_PORT = 9000;
/** Whole-test budget. */
const TIMEOUT_MS = 600_000;

/**
 * Guest-side tool, run with node inside the namespace (the kernel's TCP does
 * the work; node only hashes). Modes:
 *   serve PORT BYTES: accept one connection, send BYTES random bytes (then
 *     half-close) while hashing what arrives; print one JSON line at the end.
 *   put HOST PORT BYTES: connect, send BYTES random bytes, half-close, read
 *     the reply; print one JSON line.
 */
const GUEST_TOOL = `
const net = require('node:net');
const { createHash, randomBytes } = require('node:crypto');
const [mode, a, b, c] = process.argv.slice(2);
function source(n) {
  // 1 MiB random block repeated would hash the same every MiB; make every chunk fresh.
  let left = n; const h = createHash('sha256');
  return { h, next() { if (left <= 0) return null; const k = Math.min(left, 256 * 1024); left -= k; const buf = randomBytes(k); h.update(buf); return buf; } };
}
function pump(sock, src, done) {
  const go = () => { for (;;) { const b = src.next(); if (!b) { sock.end(); done(); return; } if (!sock.write(b)) { sock.once('drain', go); return; } } };
  go();
}
if (mode === 'serve') {
  const bytes = Number(b);
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    srv.close();
    const rh = createHash('sha256'); let rn = 0; let sent = false; let ended = false; const src = source(bytes);
    const fin = () => { if (sent && ended) console.log(JSON.stringify({ recvSha: rh.digest('hex'), recvBytes: rn, sentSha: src.h.digest('hex'), sentBytes: bytes })); };
    sock.on('data', (d) => { rh.update(d); rn += d.length; });
    sock.on('end', () => { ended = true; fin(); });
    sock.on('error', (e) => { console.error('serve error', e.message); process.exit(3); });
    pump(sock, src, () => { sent = true; fin(); });
  });
  srv.listen(Number(a), '::', () => console.log('LISTENING'));
} else if (mode === 'put') {
  const bytes = Number(c);
  const sock = net.connect({ host: a, port: Number(b), allowHalfOpen: true }, () => pump(sock, src, () => {}));
  const src = source(bytes); let reply = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => (reply += d));
  sock.on('end', () => { console.log(JSON.stringify({ sentSha: src.h.digest('hex'), sentBytes: bytes, reply: reply.trim() })); sock.end(); });
  sock.on('error', (e) => { console.error('put error', e.message); process.exit(3); });
}
`;

/** Applies the lease inside the namespace (never touches /etc/resolv.conf: that file is the host's). */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    echo "LEASE ip=$ip mask=$mask router=$router dns=$(echo $dns) mtu=$mtu"
    ;;
esac
exit 0
`;

interface ConnStats {
  nRto: number;
  nFastRetransmit: number;
  nRetransmit: number;
}
/** What the sampler reads from a live gateway connection (src/tcp/conn.ts public fields). */
interface LiveConn extends ConnStats {
  localPort: number;
  remotePort: number;
  sackOk: boolean;
  tsOk: boolean;
  sndMss: number;
  cwnd: number;
  rtt: { srtt: number; rto: number };
  state: number;
  retries: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  sndWnd: number;
  rcvNxt: number;
  rcvAdvEdge: number;
  rcvBuf: { free: number };
  sndBuf: { length: number };
}
/** The gateway's live TCP connections (diagnostics only). */
function liveConns(gw: RunningGateway): LiveConn[] {
  return gw.gateway.tcpNat.connections();
}


const mbit = (bytes: number, ms: number) => ((bytes * 8) / (ms / 1000) / 1e6).toFixed(1);

let dir = '';
let ns: Netns | null = null;
let gw: RunningGateway | null = null;
let relay: TapRelay | null = null;
/** What a family's transfers use: the host's servers and the addresses the guest reaches them at. */
interface Family {
  name: string;
  http: TestHttpServer;
  sink: Server;
  /** The gateway's address as the guest dials it (URL form and plain). */
  gwUrlHost: string;
  gwHost: string;
  /** The host's loopback (the forward's bind address and the client's). */
  loopback: string;
  /** The guest address a forward names (IPv6), or undefined (the primary guest, IPv4). */
  guest?: string;
}
const families: Family[] = [];
const children = new Set<ChildProcess>();
let impairment = '';

beforeAll(async () => {
  requireRoot('the TCP loss e2e test');
  dir = privateTmp('vmnet-loss-');
  writeFileSync(join(dir, 'guest-tool.cjs'), GUEST_TOOL);
  writeFileSync(join(dir, 'udhcpc.sh'), UDHCPC_SCRIPT);
  chmodSync(join(dir, 'udhcpc.sh'), 0o755);
  for (const loopback of ['127.0.0.1', '::1']) {
    const http = await startHttpServer(SIZE, loopback);
    // Upload sink on the host: hashes until the client's FIN, answers "SHA BYTES", closes.
    const sink = createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (d) => {
        h.update(d);
        n += d.length;
      });
      s.on('end', () => s.end(`${h.digest('hex')} ${n}\n`));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => sink.listen(0, loopback, r));
    const v6 = loopback === '::1';
    families.push({ name: v6 ? 'IPv6' : 'IPv4', http, sink, gwUrlHost: v6 ? `[${GW6}]` : '10.0.2.2', gwHost: v6 ? GW6 : '10.0.2.2', loopback });
  }

  const sock = join(dir, 'gw.sock');
  gw = await startGateway({ socket: sock, dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
  ns = createNetns('vmnet-loss');
  await addTap(ns, TAP);

  const netem = await netemAvailable();
  let direction: 'both' | 'to-tap' = 'both';
  if (netem.ok) {
    await runInNetns(ns, 'tc', ['qdisc', 'add', 'dev', TAP, 'root', 'netem', 'loss', `${LOSS_PCT}%`, 'reorder', `${REORDER_PCT}%`, 'delay', '1ms']);
    direction = 'to-tap';
    impairment = `netem loss ${LOSS_PCT}% reorder ${REORDER_PCT}% delay 1ms on ${TAP} egress (guest→gateway); relay loss/reorder ${LOSS_PCT}%/${REORDER_PCT}% gateway→guest (seed ${SEED})`;
  } else {
    impairment = `netem unavailable on this kernel (${netem.why}); relay loss ${LOSS_PCT}% + adjacent reorder ${REORDER_PCT}% in both directions (seed ${SEED})`;
  }
  console.log(`tcp-loss: ${impairment}`);
  relay = await startTapRelay({ netns: ns.name, tap: TAP, socket: sock, impair: { lossPct: LOSS_PCT, reorderPct: REORDER_PCT, seed: SEED, direction } });

  // DHCP through the lossy link (udhcpc retries; 10 tries 1 s apart).
  const lease = await runInNetns(ns, 'busybox', ['udhcpc', '-i', TAP, '-s', join(dir, 'udhcpc.sh'), '-n', '-q', '-t', '10', '-T', '1'], 30_000);
  console.log(`tcp-loss: ${lease.split('\n').find((l) => l.startsWith('LEASE')) ?? lease}`);
  expect(lease).toMatch(/LEASE ip=10\.0\.2\.15 .*router=10\.0\.2\.2/);
  // SLAAC through the same lossy link (the kernel solicits 3 times; DAD takes a second).
  let addr6 = '';
  for (let i = 0; i < 60 && addr6 === ''; i++) {
    const out = await runInNetns(ns, 'ip', ['-6', '-o', 'addr', 'show', 'dev', TAP, 'scope', 'global']);
    const ready = out.split('\n').filter((l) => !l.includes('tentative'));
    addr6 = ready.map((l) => /inet6 (fd0d:b4b8:6ba1:0:[0-9a-f:]+)\/64/.exec(l)?.[1]).find((a) => a !== undefined) ?? '';
    if (addr6 === '') await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`tcp-loss: SLAAC address ${addr6 || 'none'}`);
  expect(addr6).not.toBe('');
  families[1]!.guest = addr6;
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await relay?.stop();
  if (relay) console.log(`tcp-loss: relay: ${relay.stderr().trim()}`);
  await gw?.close();
  ns?.delete();
  for (const f of families) {
    await f.http.close();
    await new Promise((r) => f.sink.close(r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs node GUEST_TOOL inside the namespace; resolves with its parsed last JSON line. */
function guestTool(args: string[], onLine?: (l: string) => void): { child: ChildProcess; result: Promise<Record<string, unknown>> } {
  const child = ns!.spawn(process.execPath, [join(dir, 'guest-tool.cjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const l of d.split('\n')) if (l) onLine?.(l);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const result = new Promise<Record<string, unknown>>((resolve, reject) =>
    child.once('exit', (code) => {
      const json = out.split('\n').filter((l) => l.startsWith('{')).pop();
      if (code === 0 && json) resolve(JSON.parse(json) as Record<string, unknown>);
      else reject(new Error(`guest tool ${args.join(' ')} exited ${code}\nstdout: ${out}\nstderr: ${err}`));
    }),
  );
  return { child, result };
}

describe('TCP under loss and reordering, Linux TCP as the guest', () => {
  it.each(['IPv4', 'IPv6'])(`%s: ${SIZE / MB} MB each way through NAT and a port forward keep their SHA-256 with ${LOSS_PCT}% loss and ${REORDER_PCT}% reordering`, { timeout: TIMEOUT_MS }, async (name) => {
    const g = gw!;
    const fam = families.find((f) => f.name === name)!;
    const http = fam.http;
    const sinkPort = (fam.sink.address() as AddressInfo).port;
    const before = await netnsTcpCounters(ns!);
    // Sample the gateway's connections while they live (they are gone once closed).
    const seen = new Map<LiveConn, ConnStats & { desc: string; last: string }>();
    /** The families of the guest addresses of the gateway's flows (IPv6 ones are interned ids from 2^32 up). */
    const flowFamilies = new Set<string>();
    const sample = () => {
      g.gateway.tcpNat.forEachAddress((guest) => flowFamilies.add(guest >= 2 ** 32 ? 'IPv6' : 'IPv4'));
      for (const c of liveConns(g))
        seen.set(c, {
          nRto: c.nRto,
          nFastRetransmit: c.nFastRetransmit,
          nRetransmit: c.nRetransmit,
          desc: `gateway port ${c.localPort} ↔ guest port ${c.remotePort} (sack ${c.sackOk}, ts ${c.tsOk}, mss ${c.sndMss}, srtt ${c.rtt.srtt.toFixed(1)} ms)`,
          // Last sampled state, for post-mortems of a connection that died.
          last: `t=${((performance.now() - t0) / 1000).toFixed(2)}s state ${c.state} retries ${c.retries} rto ${Math.round(c.rtt.rto)} snd una ${c.sndUna} nxt-una ${(c.sndNxt - c.sndUna) >>> 0} max-una ${(c.sndMax - c.sndUna) >>> 0} wnd ${c.sndWnd} buffered ${c.sndBuf.length} cwnd ${c.cwnd}; rcv nxt ${c.rcvNxt} free ${c.rcvBuf.free} advEdge-nxt ${(c.rcvAdvEdge - c.rcvNxt) | 0}`,
        });
    };
    const t0 = performance.now();
    const sampler = setInterval(sample, 250);
    // The guest kernel's view of its sockets (ss -tin), kept for the report if something dies.
    let guestSs = '';
    const ssSampler = setInterval(() => {
      runInNetns(ns!, 'ss', ['-tin', 'state', 'established'], 5000).then((o) => (guestSs = `t=${((performance.now() - t0) / 1000).toFixed(1)}s\n${o}`), () => {});
    }, 2000);
    const timings: Record<string, number> = {};
    const done = (k: string) => (timings[k] = performance.now() - t0);
    try {
      // (a) guest downloads from the host through NAT.
      const download = runInNetns(ns!, 'sh', ['-c', `busybox wget -q -O - 'http://${fam.gwUrlHost}:${http.port}/blob' | busybox sha256sum`], TIMEOUT_MS).then((o) => {
        done('NAT download host→guest (gateway sends)');
        return o;
      });
      // (b) guest uploads to the host through NAT.
      const upload = guestTool(['put', fam.gwHost, String(sinkPort), String(SIZE)]).result.then((r) => {
        done('NAT upload guest→host (Linux sends)');
        return r;
      });
      // (c) through a forward: host → guest server and guest server → host at once.
      let listening!: () => void;
      const isListening = new Promise<void>((r) => (listening = r));
      const server = guestTool(['serve', String(GUEST_PORT), String(SIZE)], (l) => l === 'LISTENING' && listening());
      await Promise.race([isListening, server.result]);
      const hostPort = await freePort();
      await g.forwards.add({ proto: 'tcp', bindAddress: fam.loopback, hostPort, guestPort: GUEST_PORT, ...(fam.guest ? { guest: fam.guest } : {}) });
      expect(await g.probeGuestPort(GUEST_PORT, 5000, fam.guest)).toBe('open');
      const sendBlob = randomBytes(SIZE);
      const forward = new Promise<{ recvSha: string; recvBytes: number }>((resolve, reject) => {
        const s = connect({ host: fam.loopback, port: hostPort, allowHalfOpen: true });
        const h = createHash('sha256');
        let n = 0;
        s.on('connect', () => {
          for (let off = 0; off < SIZE; off += MB) s.write(sendBlob.subarray(off, Math.min(SIZE, off + MB)));
          s.end();
        });
        s.on('data', (d) => {
          h.update(d);
          n += d.length;
        });
        s.on('end', () => {
          done('forward guest→host (Linux sends)');
          resolve({ recvSha: h.digest('hex'), recvBytes: n });
        });
        s.on('error', reject);
      });
      const served = server.result.then((r) => {
        done('forward host→guest (gateway sends)');
        return r;
      });
      const [dl, up, fw, srv] = await Promise.all([download, upload, forward, served]);
      sample();

      expect(dl.trim().split(/\s+/)[0], 'download SHA-256').toBe(sha256(http.blob));
      expect(up.reply, 'upload SHA-256 and length as the host received them').toBe(`${up.sentSha} ${SIZE}`);
      expect(srv.recvBytes, 'bytes the guest server received through the forward').toBe(SIZE);
      expect(srv.recvSha, 'forward host→guest SHA-256').toBe(sha256(sendBlob));
      expect(fw.recvBytes, 'bytes the host received through the forward').toBe(SIZE);
      expect(fw.recvSha, 'forward guest→host SHA-256').toBe(srv.sentSha);
      // (The IPv6 run may still see the IPv4 run's connections in TIME-WAIT; the IPv4 run saw no IPv6 ones.)
      expect([...flowFamilies], 'the families the gateway carried connections in').toContain(name);
      if (name === 'IPv4') expect([...flowFamilies]).not.toContain('IPv6');
      // The impairment really bit, both ways (else the above proves nothing about loss):
      // the guest kernel retransmitted (guest → gateway) and so did the gateway (gateway → guest).
      const after = await netnsTcpCounters(ns!);
      expect((after.RetransSegs ?? 0) - (before.RetransSegs ?? 0), 'guest kernel RetransSegs').toBeGreaterThan(0);
      expect([...seen.values()].reduce((n, s) => n + s.nRetransmit, 0), 'gateway retransmitted segments').toBeGreaterThan(0);
    } finally {
      clearInterval(sampler);
      clearInterval(ssSampler);
      const total = { nRto: 0, nFastRetransmit: 0, nRetransmit: 0 };
      for (const s of seen.values()) {
        total.nRto += s.nRto;
        total.nFastRetransmit += s.nFastRetransmit;
        total.nRetransmit += s.nRetransmit;
      }
      const after = await netnsTcpCounters(ns!).catch(() => ({}) as Record<string, number>);
      const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
      console.log(
        [
          `tcp-loss: ${name}: ${impairment}`,
          ...Object.entries(timings).map(([k, ms]) => `tcp-loss: ${k}: ${(SIZE / MB).toFixed(0)} MB in ${(ms / 1000).toFixed(1)} s = ${mbit(SIZE, ms)} Mbit/s (all transfers concurrent)`),
          `tcp-loss: gateway TCP NAT counters ${JSON.stringify(g.gateway.tcpNat.counters)}`,
          `tcp-loss: gateway retransmissions (gateway → guest, ${seen.size} connections sampled): ${total.nRetransmit} segments, ${total.nFastRetransmit} fast retransmits, ${total.nRto} RTO expiries`,
          ...[...seen.values()].map((s) => `tcp-loss:   ${s.desc}: ${s.nRetransmit} retransmitted segments, ${s.nFastRetransmit} fast retransmits, ${s.nRto} RTO expiries; last seen ${s.last}`),
          `tcp-loss: guest kernel (guest → gateway): RetransSegs ${delta('RetransSegs')}, TCPTimeouts ${delta('TCPTimeouts')}, TCPSackRecovery ${delta('TCPSackRecovery')}, TCPLostRetransmit ${delta('TCPLostRetransmit')}, TCPLossProbes ${delta('TCPLossProbes')}, TCPOFOQueue ${delta('TCPOFOQueue')}, TCPSACKReorder ${delta('TCPSACKReorder')}`,
          `tcp-loss: guest sockets, last sample: ${guestSs}`,
          `tcp-loss: gateway snapshot ${JSON.stringify({ ...g.snapshot(), leases: undefined, neighbors: undefined, dns: undefined })}`,
        ].join('\n'),
      );
    }
  });
});
