/**
 * Theory of operation: the vmnet switch against Debian's vde_switch (vde2),
 * in one run, on the same topology: two network namespaces, each with a TAP
 * device (the Linux kernel's stack plays the two VMs), both attached to the
 * switch under test as two ports.
 *
 *   ns A: tap0 10.77.0.1 ─ relay ─┐                     ┌─ relay ─ tap0 10.77.0.2 :ns B
 *                                 └─ switch under test ─┘
 *
 *   vmnet  `vmnet switch serve` (a private LAN, no gateway) on its access
 *          socket; each TAP relayed by test/helpers/tap-relay.ts (QEMU stream
 *          framing, what a VM's -netdev stream sends).
 *   vde    `vde_switch -s DIR`; each TAP attached by `vde_plug2tap -s DIR tap0`.
 *   relay  (baseline) the two relays spliced back to back by `netbench xconn`:
 *          what the relay path alone carries, no switch in between.
 *
 * Per switch and MTU:
 *   TCP    iperf3 A→B, one stream, SECONDS: receiver-side Gbit/s.
 *   frames iperf3 UDP A→B, 18-byte payloads (60-byte frames), unlimited rate:
 *          datagrams the receiver got per second (= frames/s through the switch).
 * For vmnet the switch's own counters also give frames/s and Gbit/s through
 * it during the TCP run (both directions: data and ACKs).
 * CPU: % of one core used by the switch process and by one relay/plug.
 *
 * Gateway on a segment (`--gateway`, on by default): the same gateway two
 * ways, with Linux TCP in a namespace as the guest (bench/lib/backends.ts,
 * the topology of `npm run bench`): `user` is `vmnet gateway --socket S`,
 * the guest's relay connected to it as on `--net user`; `segment` is a
 * switch with the gateway on it (startSegment from dist/), the guest's relay
 * on the switch's access socket. iperf3 one stream each way, best of
 * `--rounds` (alternating order), segment / user, and the gateway process's
 * CPU time per GB carried (the mean of the rounds: on a shared machine it
 * moves far less than Gbit/s do).
 *
 * Every cell is measured `--rounds` times, the kinds in a rotated order each
 * round (the machine may be shared: interleaving spreads other work over all
 * of them); the summary gives each cell's median with the ratios vmnet /
 * relay (the floor) and vmnet / vde_switch, and lists every round with the
 * load average (1 min) when it ended. `--base DIR` adds a fourth kind, `base`:
 * the same vmnet switch from another checkout's build (DIR/dist), for A/B.
 *
 * `--profile-switch` (instead of the tables): the vmnet switch process under
 * `node --cpu-prof`, one process during the TCP run and one during the
 * small-frames run at each `--mtu`; self time per function; writes
 * bench/results/OUT-profile.md.
 *
 * `--profile` (instead of the tables): the gateway process under
 * `node --cpu-prof`, user and segment, during one iperf3 run each way at
 * each `--gateway-mtu` (5 s); each profile's self time per function, and
 * the two side by side in CPU ms per GB carried (so a slower run is not
 * charged less); writes bench/results/switch-profile.md.
 *
 * Run as root (namespaces, TAPs) after `npm run build`:
 *   node --import ./bench/lib/ts-loader.mjs bench/switch.ts [--seconds 3] [--mtu 1500,9000] [--only vmnet,vde,relay]
 *     [--gateway-mtu 1500] [--rounds 2] [--base DIR] [--out switch]
 *     [--no-gateway | --gateway-only | --profile | --profile-switch]
 * Prints a markdown report and writes bench/results/OUT.md (OUT: `--out`, default switch).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Netns } from '../test/helpers/netns.js';
import { startTapRelay } from '../test/helpers/tap-relay.js';
import { CLI, IPERF_PORT, ROOT, startBackend, startRelayPair } from './lib/backends.js';
import { profileMarkdown, summarizeProfile, type ProfileSummary } from './lib/cpuprofile.js';
import { retry, Scope, tuneNetns, withCpu, type Proc } from './lib/env.js';
import { cell, iperf, iperfJson, type Failed, type Measured, type Throughput } from './lib/measure.js';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    mtu: { type: 'string', default: '1500,9000' },
    only: { type: 'string', default: 'vmnet,vde,relay' },
    'gateway-mtu': { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '2' },
    'no-gateway': { type: 'boolean', default: false },
    'gateway-only': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-switch': { type: 'boolean', default: false },
    base: { type: 'string' },
    out: { type: 'string', default: 'switch' },
  },
});
const SECONDS = Number(flags.seconds);
const MTUS = flags.mtu.split(',').map(Number);
type Kind = 'vmnet' | 'base' | 'vde' | 'relay';
const KINDS = [...(flags.only.split(',') as Kind[]), ...(flags.base === undefined ? [] : ['base' as const])];
/** The CLI each vmnet kind runs: this checkout's build, or `--base DIR`'s. */
const CLIS: Partial<Record<Kind, string>> = { vmnet: CLI, ...(flags.base === undefined ? {} : { base: join(flags.base, 'dist', 'cli', 'bin.js') }) };
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Frames {
  fps: number;
  lossPct: number;
  cpu: { backend: number | null; relay: number | null };
}
interface SwitchCounted {
  fps: number;
  gbps: number;
  /** Frames the switch dropped at a congested egress port during the TCP run (tail drop). */
  txDropped: number;
}
interface Row {
  kind: Kind;
  mtu: number;
  round: number;
  /** Load average (1 min) when the cell ended. */
  load: number;
  setup: string | null;
  tcp: Measured<Throughput> | Failed | null;
  udp: Measured<Frames> | Failed | null;
  counted: SwitchCounted | null;
}

interface Pair {
  a: Netns;
  b: Netns;
  backendPid: number | null;
  relayPid: number | null;
  /** vmnet only: frames and bytes the switch has received so far. */
  counters?: () => Promise<{ frames: number; bytes: number; txDropped: number }>;
  /** vmnet only: stops the switch process (cleanly: a --cpu-prof profile is written on the way out). */
  stop?: () => Promise<void>;
}

async function tapPair(scope: Scope, mtu: number): Promise<{ a: Netns; b: Netns }> {
  const a = scope.netns('vs-a');
  const b = scope.netns('vs-b');
  for (const ns of [a, b]) {
    await tuneNetns(scope, ns);
    await scope.run(null, 'ip', ['-n', ns.name, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
    await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'mtu', String(mtu)]);
  }
  return { a, b };
}

async function addressPair(scope: Scope, a: Netns, b: Netns): Promise<void> {
  for (const [ns, cidr] of [
    [a, '10.77.0.1/24'],
    [b, '10.77.0.2/24'],
  ] as const) {
    await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'up']);
    await scope.run(null, 'ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', 'tap0']);
  }
  const srv = scope.spawn(b, 'iperf3', ['-s', '-p', String(IPERF_PORT), '--forceflush'], 'iperf3 server');
  await srv.waitFor(/listening/i);
  await retry(() => scope.run(a, 'busybox', ['ping', '-c', '1', '-W', '1', '10.77.0.2'], 3000), 10_000, 'ping A→B');
}

function ctl(path: string, req: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.write(JSON.stringify(req) + '\n'));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n')) return;
      s.destroy();
      resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))) as Record<string, unknown>);
    });
    s.on('error', reject);
  });
}

async function startVmnet(scope: Scope, mtu: number, cli: string, nodeFlags: string[] = []): Promise<Pair> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const rt = mkdtempSync(join(tmpdir(), 'vmnet-bench-sw-'));
  scope.defer(() => rmSync(rt, { recursive: true, force: true }));
  const sw = scope.spawn(null, process.execPath, [...nodeFlags, cli, 'switch', 'serve', 'bench', '--no-gateway', '--mtu', String(mtu)], 'vmnet switch', {
    env: { ...process.env, VMNET_RUNTIME_DIR: rt },
  });
  await sw.waitFor(/serving/);
  const sock = join(rt, 'switches', 'bench', 'ports', 'access-1.sock');
  const control = join(rt, 'switches', 'bench', 'ctl.sock');
  const { a, b } = await tapPair(scope, mtu);
  let relayPid: number | null = null;
  for (const ns of [a, b]) {
    const r = await startTapRelay({ netns: ns.name, tap: 'tap0', socket: sock });
    scope.defer(() => r.stop());
    relayPid ??= r.pid;
  }
  await addressPair(scope, a, b);
  const counters = async () => {
    const ans = (await ctl(control, { op: 'status' })) as {
      snapshot: { switch: { counters: { frames: number; bytes: number }; ports: { counters: { txDropped: number } }[] } };
    };
    const { frames, bytes } = ans.snapshot.switch.counters;
    return { frames, bytes, txDropped: ans.snapshot.switch.ports.reduce((n, p) => n + p.counters.txDropped, 0) };
  };
  return { a, b, backendPid: sw.pid, relayPid, counters, stop: () => sw.stop('SIGTERM') };
}

async function startVde(scope: Scope, mtu: number): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-bench-vde-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const ctlDir = join(dir, 'sw');
  // Foreground, stdin kept open (vde_switch's console reads it).
  const sw = scope.spawn(null, 'vde_switch', ['-s', ctlDir], 'vde_switch', { stdio: ['pipe', 'pipe', 'pipe'] });
  await retry(async () => {
    if (!existsSync(join(ctlDir, 'ctl'))) throw new Error('no ctl socket yet');
  }, 5000, 'vde_switch');
  const { a, b } = await tapPair(scope, mtu);
  let relayPid: number | null = null;
  for (const ns of [a, b]) {
    const plug = scope.spawn(ns, 'vde_plug2tap', ['-s', ctlDir, 'tap0'], `vde_plug2tap ${ns.name}`);
    await new Promise((r) => setTimeout(r, 200));
    if (plug.child.exitCode !== null) throw new Error(`vde_plug2tap exited: ${plug.stderr().trim()}`);
    relayPid ??= plug.pid;
  }
  await addressPair(scope, a, b);
  return { a, b, backendPid: sw.pid, relayPid };
}

async function startBaseline(scope: Scope, mtu: number): Promise<Pair> {
  const { a, b, relayPids } = await startRelayPair(scope, mtu);
  await retry(() => scope.run(a, 'busybox', ['ping', '-c', '1', '-W', '1', '10.9.0.2'], 3000), 10_000, 'ping A→B');
  return { a, b, backendPid: null, relayPid: relayPids[0] ?? null };
}

interface UdpJson {
  error?: string;
  end?: { sum?: { packets?: number; lost_packets?: number; seconds?: number }; sum_received?: { packets?: number; lost_packets?: number; seconds?: number } };
}

async function udpFrames(scope: Scope, p: Pair, serverIp: string): Promise<Frames> {
  const args = ['-c', serverIp, '-p', String(IPERF_PORT), '-u', '-b', '0', '-l', '18', '-t', String(SECONDS), '-J'];
  const { result, cpu } = await withCpu({ backend: p.backendPid, relay: p.relayPid }, () => iperfJson<UdpJson>(scope, p.a, args, SECONDS));
  const s = result.end?.sum;
  if (result.error || !s?.packets || !s.seconds) throw new Error(`iperf3: ${result.error ?? 'no result'}`);
  const got = s.packets - (s.lost_packets ?? 0);
  return { fps: got / s.seconds, lossPct: (100 * (s.lost_packets ?? 0)) / s.packets, cpu: { backend: cpu.backend ?? null, relay: cpu.relay ?? null } };
}

const startPair = (scope: Scope, kind: Kind, mtu: number): Promise<Pair> =>
  kind === 'vde' ? startVde(scope, mtu) : kind === 'relay' ? startBaseline(scope, mtu) : startVmnet(scope, mtu, CLIS[kind]!);

async function measure(kind: Kind, mtu: number, round: number): Promise<Row> {
  const row: Row = { kind, mtu, round, load: 0, setup: null, tcp: null, udp: null, counted: null };
  const scope = new Scope();
  try {
    let p: Pair;
    try {
      p = await startPair(scope, kind, mtu);
    } catch (e) {
      row.setup = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
      return row;
    }
    const serverIp = kind === 'relay' ? '10.9.0.2' : '10.77.0.2';
    const before = p.counters ? await p.counters() : null;
    const t0 = performance.now();
    row.tcp = await cell(() => iperf(scope, p.a, serverIp, { seconds: SECONDS, streams: 1, reverse: false, pids: { backend: p.backendPid, relay: p.relayPid } }));
    if (before && p.counters) {
      const after = await p.counters();
      const secs = (performance.now() - t0) / 1000;
      row.counted = { fps: (after.frames - before.frames) / secs, gbps: ((after.bytes - before.bytes) * 8) / secs / 1e9, txDropped: after.txDropped - before.txDropped };
    }
    row.udp = await cell(() => udpFrames(scope, p, serverIp));
    return row;
  } finally {
    await scope.close();
    row.load = loadavg()[0]!;
  }
}

const fmt = (n: number, d = 2) => (n >= 100 ? n.toFixed(0) : n.toFixed(d));
const kfps = (n: number) => `${fmt(n / 1000, 1)}k`;
const pct = (n: number | null) => (n === null ? '–' : `${n.toFixed(0)}%`);

function header(): string {
  const version = (pkg: string) => {
    try {
      return execFileSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
    } catch {
      return '?';
    }
  };
  return [
    '# vmnet switch benchmark',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus().length} CPUs, Linux ${release()}, Node ${process.version}; load average (1 min) at end ${loadavg()[0]!.toFixed(2)}`,
    `- Anchor: vde2 ${version('vde2')} (vde_switch + vde_plug2tap); iperf3 ${version('iperf3')}`,
    '',
  ].join('\n');
}

const median = (v: number[]): number | null => {
  if (v.length === 0) return null;
  const o = [...v].sort((a, b) => a - b);
  const m = o.length >> 1;
  return o.length % 2 === 1 ? o[m]! : (o[m - 1]! + o[m]!) / 2;
};

function report(rows: Row[]): string {
  const out: string[] = ['## Switch: vmnet against vde_switch', ''];
  out.push(`- Two namespaces, a TAP each, as two ports of the switch. TCP: iperf3 -t ${SECONDS}, one stream, receiver-side rate. Frames/s: iperf3 UDP, 18-byte payloads (60-byte frames), unlimited rate, datagrams received per second.`);
  out.push('- "relay" is the floor: the two relays spliced directly (no switch). "base" (with --base) is the vmnet switch from another build. Compare within one run.');
  out.push(`- ${ROUNDS} rounds, the kinds in a rotated order each round; the summary is each cell's median over the rounds, every round is listed below it with the load average (1 min) when it ended.`, '');
  const tcpOf = (r: Row) => (r.tcp?.ok ? r.tcp.value.gbps : null);
  const fpsOf = (r: Row) => (r.udp?.ok ? r.udp.value.fps : null);
  const med = (kind: Kind, mtu: number, of: (r: Row) => number | null) => median(rows.filter((r) => r.kind === kind && r.mtu === mtu).map(of).filter((v): v is number => v !== null));
  const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? '–' : (a / b).toFixed(2));
  const kinds = KINDS.filter((k) => k !== 'relay' && k !== 'vde');
  out.push(`| MTU | ${KINDS.map((k) => `${k} TCP Gbit/s`).join(' | ')} | ${KINDS.map((k) => `${k} frames/s`).join(' | ')} | ${kinds.map((k) => `${k} / relay TCP, frames/s | ${k} / vde TCP, frames/s`).join(' | ')} | load (1 min) over the MTU's cells |`);
  out.push(`|---:|${KINDS.map(() => '---:|').join('')}${KINDS.map(() => '---:|').join('')}${kinds.map(() => '---|---|').join('')}---|`);
  for (const mtu of MTUS) {
    const t = (k: Kind) => med(k, mtu, tcpOf);
    const f = (k: Kind) => med(k, mtu, fpsOf);
    const loads = rows.filter((r) => r.mtu === mtu).map((r) => r.load);
    const load = loads.length === 0 ? '–' : `${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`;
    const cells = [
      ...KINDS.map((k) => (t(k) === null ? '–' : fmt(t(k)!))),
      ...KINDS.map((k) => (f(k) === null ? '–' : kfps(f(k)!))),
      ...kinds.flatMap((k) => [`${ratio(t(k), t('relay'))}, ${ratio(f(k), f('relay'))}`, `${ratio(t(k), t('vde'))}, ${ratio(f(k), f('vde'))}`]),
      load,
    ];
    out.push(`| ${mtu} | ${cells.join(' | ')} |`);
  }
  out.push('', 'Every round:', '');
  out.push('| round | switch | MTU | TCP Gbit/s | CPU switch / relay | frames/s (60 B) | UDP loss | CPU switch / relay | switch counters during TCP | load |');
  out.push('|---:|---|---:|---:|---|---:|---:|---|---|---:|');
  for (const r of rows) {
    if (r.setup) {
      out.push(`| ${r.round} | ${r.kind} | ${r.mtu} | setup failed: ${r.setup} | | | | | | ${r.load.toFixed(2)} |`);
      continue;
    }
    const tcp = r.tcp?.ok ? fmt(r.tcp.value.gbps) : `failed: ${r.tcp?.error ?? '–'}`;
    const tcpCpu = r.tcp?.ok ? `${pct(r.tcp.value.cpu.backend)} / ${pct(r.tcp.value.cpu.relay)}` : '';
    const udp = r.udp?.ok ? kfps(r.udp.value.fps) : `failed: ${r.udp?.error ?? '–'}`;
    const loss = r.udp?.ok ? `${r.udp.value.lossPct.toFixed(1)}%` : '';
    const udpCpu = r.udp?.ok ? `${pct(r.udp.value.cpu.backend)} / ${pct(r.udp.value.cpu.relay)}` : '';
    const counted = r.counted ? `${kfps(r.counted.fps)} frames/s, ${fmt(r.counted.gbps)} Gbit/s, txDropped ${r.counted.txDropped}` : '–';
    out.push(`| ${r.round} | ${r.kind} | ${r.mtu} | ${tcp} | ${tcpCpu} | ${udp} | ${loss} | ${udpCpu} | ${counted} | ${r.load.toFixed(2)} |`);
  }
  out.push('');
  return out.join('\n');
}

// ------------------------------------------------------------ gateway: user NIC vs segment

type GwKind = 'user' | 'segment';
/** The segment's switch counters that tell whether it lost frames or held the gateway back (bench: SIGUSR2). */
interface SegCounters {
  reentrantDropped: number;
  reentrantQueued: number;
  heldBack: number;
  cutThrough: number;
  txDropped: number;
  frames: number;
}
interface GwCell {
  kind: GwKind;
  mtu: number;
  round: number;
  up: Measured<Throughput> | Failed;
  down: Measured<Throughput> | Failed;
  /** Load average (1 min) when the cell ended: the machine may be shared. */
  load?: number;
  /** Segment only: the switch counters' growth during each direction's run. */
  counted?: { up: SegCounters | null; down: SegCounters | null };
}

/** Asks a segment process for its switch counters (segmentArgs' SIGUSR2 line); null when it does not answer. */
async function segCounters(p: Proc): Promise<SegCounters | null> {
  const seen = p.stdout().split('\n').filter((l) => l.startsWith('counters ')).length;
  p.child.kill('SIGUSR2');
  for (let i = 0; i < 50; i++) {
    const lines = p.stdout().split('\n').filter((l) => l.startsWith('counters '));
    if (lines.length > seen) return JSON.parse(lines[lines.length - 1]!.slice('counters '.length)) as SegCounters;
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

const minus = (a: SegCounters | null, b: SegCounters | null): SegCounters | null => {
  if (a === null || b === null) return null;
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof SegCounters)[]) out[k] = a[k] - b[k];
  return out;
};

/** Node arguments that serve a segment (switch + gateway) with its access socket at `sock`, then print "listening". */
const segmentArgs = (sock: string, mtu: number): string[] => [
  '--input-type=module',
  '-e',
  `const { startSegment } = await import(${JSON.stringify(join(ROOT, 'dist', 'switch', 'segment.js'))});
const seg = await startSegment({ socket: process.argv[1], mtu: Number(process.argv[2]), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 53 }] } });
console.log('listening');
// SIGUSR2: one line with the switch's counters that tell whether the segment lost or held back frames.
process.on('SIGUSR2', () => {
  const c = seg.switch.switch.counters;
  let txDropped = 0;
  for (const p of seg.switch.switch.ports()) txDropped += p.counters.txDropped;
  console.log('counters ' + JSON.stringify({ reentrantDropped: c.reentrantDropped, reentrantQueued: c.reentrantQueued, heldBack: c.heldBack, cutThrough: c.cutThrough, txDropped, frames: c.frames }));
});
process.on('SIGTERM', () => seg.close().then(() => process.exit(0)));`,
  sock,
  String(mtu),
];

async function gatewayCell(kind: GwKind, mtu: number, round: number): Promise<GwCell> {
  const scope = new Scope();
  try {
    const b = await startBackend(scope, 'vmnet', mtu, kind === 'segment' ? { vmnetArgs: segmentArgs } : {});
    const pids = { backend: b.backend.pid, relay: b.relayPid };
    const seg = kind === 'segment';
    const c0 = seg ? await segCounters(b.backend) : null;
    const up = await cell(() => iperf(scope, b.guest, b.serverIp, { seconds: SECONDS, streams: 1, reverse: false, pids }));
    const c1 = seg ? await segCounters(b.backend) : null;
    const down = await cell(() => iperf(scope, b.guest, b.serverIp, { seconds: SECONDS, streams: 1, reverse: true, pids }));
    const c2 = seg ? await segCounters(b.backend) : null;
    return { kind, mtu, round, up, down, load: loadavg()[0]!, ...(seg ? { counted: { up: minus(c1, c0), down: minus(c2, c1) } } : {}) };
  } catch (e) {
    const failed: Failed = { ok: false, error: (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300) };
    return { kind, mtu, round, up: failed, down: failed };
  } finally {
    await scope.close();
  }
}

function gatewayReport(cells: GwCell[]): string {
  const best = (kind: GwKind, mtu: number, dir: 'up' | 'down'): Throughput | null => {
    let out: Throughput | null = null;
    for (const c of cells) {
      const m = c[dir];
      if (c.kind === kind && c.mtu === mtu && m.ok && (out === null || m.value.gbps > out.gbps)) out = m.value;
    }
    return out;
  };
  const out: string[] = ['## Gateway: user NIC vs segment', ''];
  out.push(`Linux TCP in a namespace as the guest, its TAP relayed (tap-relay) either to \`vmnet gateway\` (user) or to a switch with the gateway on it (segment). iperf3 -t ${SECONDS}, one stream, receiver-side rate; best of ${ROUNDS} rounds in alternating order, every round listed below. The last column is the gateway process's CPU time (user + system, /proc) per GB carried, the mean over the rounds.`, '');
  /** The gateway process's CPU per GB carried (ms), averaged over the rounds: steadier than Gbit/s on a shared machine. */
  const msPerGb = (kind: GwKind, mtu: number, dir: 'up' | 'down'): string => {
    const v: number[] = [];
    for (const c of cells) {
      const m = c[dir];
      if (c.kind === kind && c.mtu === mtu && m.ok && m.value.cpu.backend !== null && m.value.gbps > 0) v.push((m.value.cpu.backend * 80) / m.value.gbps);
    }
    return v.length === 0 ? '–' : (v.reduce((a, b) => a + b, 0) / v.length).toFixed(0);
  };
  out.push('| MTU | direction | user Gbit/s | CPU gateway / relay | segment Gbit/s | CPU segment / relay | segment / user | gateway CPU ms per GB, user / segment |');
  out.push('|---:|---|---:|---|---:|---|---:|---|');
  for (const mtu of GW_MTUS) {
    for (const [dir, label] of [
      ['up', 'guest→host'],
      ['down', 'host→guest'],
    ] as const) {
      const u = best('user', mtu, dir);
      const sg = best('segment', mtu, dir);
      const gb = (t: Throughput | null) => (t === null ? 'failed' : fmt(t.gbps));
      const cpu = (t: Throughput | null) => (t === null ? '' : `${pct(t.cpu.backend)} / ${pct(t.cpu.relay)}`);
      const ratio = u !== null && sg !== null ? (sg.gbps / u.gbps).toFixed(2) : '–';
      out.push(`| ${mtu} | ${label} | ${gb(u)} | ${cpu(u)} | ${gb(sg)} | ${cpu(sg)} | ${ratio} | ${msPerGb('user', mtu, dir)} / ${msPerGb('segment', mtu, dir)} |`);
    }
  }
  out.push('', 'Every round (Gbit/s, guest→host / host→guest; on the segment also its switch counters during each run: reentrantDropped, txDropped (frames a congested port did not get), heldBack (times the gateway was told to hold back), cutThrough (frames built straight into the guest port\'s output) / frames through the switch):', '');
  const sc = (x: SegCounters | null | undefined) => (x == null ? 'counters: none' : `reentrantDropped ${x.reentrantDropped} (queued ${x.reentrantQueued}), txDropped ${x.txDropped}, heldBack ${x.heldBack}, cutThrough ${x.cutThrough}/${x.frames}`);
  for (const c of cells) {
    const v = (m: Measured<Throughput> | Failed) => (m.ok ? fmt(m.value.gbps) : `failed: ${m.error}`);
    const extra = c.counted === undefined ? '' : ` (up: ${sc(c.counted.up)}; down: ${sc(c.counted.down)})`;
    const load = c.load === undefined ? '' : `, load ${c.load.toFixed(2)}`;
    out.push(`- round ${c.round}, MTU ${c.mtu}, ${c.kind}: ${v(c.up)} / ${v(c.down)}${load}${extra}`);
  }
  let lost = 0;
  for (const c of cells) lost += (c.counted?.up?.reentrantDropped ?? 0) + (c.counted?.down?.reentrantDropped ?? 0);
  out.push('', `reentrantDropped over all segment runs: ${lost}.`);
  out.push('');
  return out.join('\n');
}

const GW_MTUS = flags['gateway-mtu'].split(',').map(Number);
const ROUNDS = Number(flags.rounds);

// ------------------------------------------------------------ profile mode

const PROFILE_SECONDS = 5;

/** One gateway process (user or segment) under --cpu-prof during one iperf3 run. */
async function profileCell(kind: GwKind, mtu: number, reverse: boolean): Promise<{ gbps: number; summary: ProfileSummary } | { error: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-prof-'));
  const scope = new Scope();
  try {
    const spawned = performance.now();
    const b = await startBackend(scope, 'vmnet', mtu, {
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
      ...(kind === 'segment' ? { vmnetArgs: segmentArgs } : {}),
    });
    const from = performance.now() - spawned;
    const t = await iperf(scope, b.guest, b.serverIp, { seconds: PROFILE_SECONDS, streams: 1, reverse, pids: { backend: b.backend.pid, relay: b.relayPid } });
    const window = { fromMs: from, toMs: performance.now() - spawned };
    await b.backend.stop('SIGTERM'); // the profile is written at a clean exit
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) return { error: 'no .cpuprofile written (the process did not exit cleanly)' };
    return { gbps: t.gbps, summary: summarizeProfile(join(dir, file), ROOT, window) };
  } catch (e) {
    return { error: (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300) };
  } finally {
    await scope.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Self time per function in ms per GB carried, user and segment side by side, largest difference first. */
function perGbTable(user: { gbps: number; summary: ProfileSummary }, seg: { gbps: number; summary: ProfileSummary }, n = 20): string[] {
  const gb = (r: { gbps: number }) => (r.gbps * PROFILE_SECONDS) / 8;
  const rows = new Map<string, { name: string; where: string; u: number; s: number }>();
  const add = (fns: ProfileSummary['vmnetFrames'], per: number, side: 'u' | 's') => {
    for (const f of fns) {
      const key = `${f.name}@${f.where.replace(/:\d+$/, '')}`;
      const r = rows.get(key) ?? { name: f.name, where: f.where.replace(/:\d+$/, ''), u: 0, s: 0 };
      r[side] += f.ms / per;
      rows.set(key, r);
    }
  };
  add(user.summary.vmnetFrames, gb(user), 'u');
  add(seg.summary.vmnetFrames, gb(seg), 's');
  const sorted = [...rows.values()].sort((a, b) => Math.abs(b.s - b.u) - Math.abs(a.s - a.u));
  return [
    `Busy CPU per GB carried: user ${(user.summary.busyMs / gb(user)).toFixed(0)} ms, segment ${(seg.summary.busyMs / gb(seg)).toFixed(0)} ms. Charged to the innermost vmnet frame, largest difference first:`,
    '',
    '| vmnet function | where | user ms/GB | segment ms/GB | difference |',
    '|---|---|---:|---:|---:|',
    ...sorted.slice(0, n).map((r) => `| \`${r.name}\` | ${r.where} | ${r.u.toFixed(1)} | ${r.s.toFixed(1)} | ${(r.s - r.u >= 0 ? '+' : '') + (r.s - r.u).toFixed(1)} |`),
    '',
  ];
}

async function profileGateway(): Promise<string> {
  const out: string[] = ['## Gateway CPU profile: user NIC vs segment', ''];
  for (const mtu of GW_MTUS) {
    for (const reverse of [false, true]) {
      const dir = reverse ? 'host→guest' : 'guest→host';
      const got: Partial<Record<GwKind, { gbps: number; summary: ProfileSummary }>> = {};
      for (const kind of ['user', 'segment'] as const) {
        log(`bench: profiling the gateway on the ${kind === 'user' ? 'user NIC' : 'segment'}, MTU ${mtu}, ${dir}`);
        const r = await profileCell(kind, mtu, reverse);
        const title = `${kind}, ${dir}, MTU ${mtu}, iperf3 ${PROFILE_SECONDS} s`;
        if ('error' in r) {
          out.push(`### ${title}`, '', `failed: ${r.error}`, '');
          continue;
        }
        got[kind] = r;
        out.push(profileMarkdown(`${title} (${fmt(r.gbps)} Gbit/s)`, r.summary));
      }
      if (got.user && got.segment) out.push(`### ${dir}, MTU ${mtu}: segment against user`, '', ...perGbTable(got.user, got.segment));
    }
  }
  return out.join('\n');
}

// ------------------------------------------------------------ switch profile mode

/** The vmnet switch process under --cpu-prof during one run (TCP or small frames) between the two namespaces. */
async function profileSwitchCell(mtu: number, what: 'tcp' | 'frames'): Promise<{ rate: string; summary: ProfileSummary } | { error: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-prof-sw-'));
  const scope = new Scope();
  try {
    const spawned = performance.now();
    const p = await startVmnet(scope, mtu, CLI, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    const from = performance.now() - spawned;
    const rate =
      what === 'tcp'
        ? `${fmt((await iperf(scope, p.a, '10.77.0.2', { seconds: SECONDS, streams: 1, reverse: false, pids: { backend: p.backendPid, relay: p.relayPid } })).gbps)} Gbit/s`
        : `${kfps((await udpFrames(scope, p, '10.77.0.2')).fps)} frames/s`;
    const window = { fromMs: from, toMs: performance.now() - spawned };
    await p.stop!();
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) return { error: 'no .cpuprofile written (the process did not exit cleanly)' };
    return { rate, summary: summarizeProfile(join(dir, file), ROOT, window) };
  } catch (e) {
    return { error: (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300) };
  } finally {
    await scope.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function profileSwitch(): Promise<string> {
  const out: string[] = ['## vmnet switch CPU profile', ''];
  for (const mtu of MTUS) {
    for (const what of ['tcp', 'frames'] as const) {
      const title = `${what === 'tcp' ? 'TCP, iperf3 one stream' : 'small frames, iperf3 UDP 18-byte payloads'}, MTU ${mtu}, ${SECONDS} s`;
      log(`bench: profiling the vmnet switch: ${title}`);
      const r = await profileSwitchCell(mtu, what);
      out.push('error' in r ? `### ${title}\n\nfailed: ${r.error}\n` : profileMarkdown(`${title} (${r.rate}, load ${loadavg()[0]!.toFixed(2)})`, r.summary));
    }
  }
  return out.join('\n');
}

if (process.getuid?.() !== 0) {
  log('bench/switch.ts needs root (network namespaces, TAP devices)');
  process.exit(2);
}
if (flags.profile || flags['profile-switch']) {
  const md = [header(), flags.profile ? await profileGateway() : await profileSwitch()].join('\n');
  process.stdout.write(md + '\n');
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${flags.out}-profile.md`), md + '\n');
  log(`bench: wrote ${join(dir, `${flags.out}-profile.md`)}`);
  process.exit(0);
}
const rows: Row[] = [];
if (!flags['gateway-only']) {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mtu of MTUS) {
      const shift = (round - 1) % KINDS.length;
      for (const kind of [...KINDS.slice(shift), ...KINDS.slice(0, shift)]) {
        log(`bench: ${kind} at MTU ${mtu}, round ${round}`);
        rows.push(await measure(kind, mtu, round));
      }
    }
  }
}
const gwCells: GwCell[] = [];
if (!flags['no-gateway']) {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mtu of GW_MTUS) {
      const order: GwKind[] = round % 2 === 1 ? ['user', 'segment'] : ['segment', 'user'];
      for (const kind of order) {
        log(`bench: gateway on the ${kind === 'user' ? 'user NIC' : 'segment'} at MTU ${mtu}, round ${round}`);
        gwCells.push(await gatewayCell(kind, mtu, round));
      }
    }
  }
}
const md = [header(), rows.length > 0 ? report(rows) : '', gwCells.length > 0 ? gatewayReport(gwCells) : ''].filter(Boolean).join('\n');
process.stdout.write(md + '\n');
const dir = join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, `${flags.out}.md`), md + '\n');
log(`bench: wrote ${join(dir, `${flags.out}.md`)}`);
