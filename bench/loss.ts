/**
 * Theory of operation: goodput under loss and reordering (issue 15, "loss
 * recovery"), the vmnet gateway's TCP sender against the Linux kernel's over
 * the same impaired link.
 *
 * The link is the loss e2e's (test/e2e/tcp-loss.test.ts): the C tap relay
 * (bench/relay/tap-relay.c) drops 5 % of the frames and swaps 5 % with the
 * next frame of the same direction, each way, from a fixed PRNG seed. Three
 * runs share it, each `iperf3 -t SECONDS`, one stream, MTU 1500, the
 * receiver's figure (goodput: bytes delivered in order to the application):
 *
 *   vmnet sends     guest ns ─ relay (impaired) ─ vmnet gateway ─ host ns;
 *                   `iperf3 -R`: the host side writes, the gateway's TCP
 *                   (src/tcp/) sends to the guest's Linux TCP. The row the
 *                   target is about.
 *   Linux sends     two namespaces, Linux TCP in both, each tap relayed to
 *                   one unix socket spliced to the other (the relay pair of
 *                   bench/run.ts's baseline) with the first relay impaired
 *                   both ways: Linux's sender (CUBIC, RACK, TLP, PRR, undo,
 *                   DSACK) and Linux's receiver. The reference: "Linux's
 *                   goodput over the same link".
 *   Linux, BBR      the same with BBR as the sender's congestion control:
 *                   BBR does not back off for random loss, so it shows what
 *                   the link carries rather than what a loss-based sender
 *                   (vmnet's, CUBIC) can. For context.
 *   vmnet receives  as the first, without -R: Linux (CUBIC) sends to the
 *                   gateway's receiver (its SACK blocks and ACK policy are
 *                   what Linux's sender recovers from). For context.
 *
 * Every Linux sender's congestion control is set on its socket (`iperf3 -C`):
 * a namespace inherits the host's default, which on this machine is BBR (and
 * a namespace may not change its default to one outside the host's
 * tcp_allowed_congestion_control, where CUBIC is not here).
 *
 * Each relay draws its losses from the same seed, but the frames it sees
 * differ from run to run (timing, ACK pattern), so the losses fall on
 * different segments: the seed fixes the impairment's statistics, not its
 * victims. Goodput under random loss swings a lot between runs; every round
 * is listed and the headline takes each cell's best, as the rest of the
 * bench does.
 *
 * The vmnet gateway is `startGateway()` from dist/ with the CLI's defaults
 * (what `vmnet gateway --socket S --mtu 1500` runs) plus a sampler that
 * reads its TCP connections' recovery counters (nRto, nFastRetransmit,
 * nRetransmit, nTlp, nLostRetransmit, nUndo) every 50 ms, for the report.
 *
 * Standalone: `node --import ./bench/lib/ts-loader.mjs bench/loss.ts
 * [--seconds 10] [--rounds 2] [--seed 1] [--only vmnet-sends,linux,vmnet-receives]`
 * (after `npm run build`); bench/run.ts runs it too.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ROOT, startBackend, startRelayPair } from './lib/backends.js';
import { Scope, type Proc } from './lib/env.js';
import { cell, iperf, type Failed, type Measured, type Throughput } from './lib/measure.js';

export const LOSS_PCT = 5;
export const REORDER_PCT = 5;
export const LOSS_MTU = 1500;

export type LossRun = 'vmnet-sends' | 'linux' | 'linux-bbr' | 'vmnet-receives';
export const LOSS_RUNS: readonly LossRun[] = ['vmnet-sends', 'linux', 'linux-bbr', 'vmnet-receives'];


/** The gateway's TCP recovery counters, summed over the connections that carried data. */
export interface GatewayTcpStats {
  conns: number;
  nRto: number;
  nFastRetransmit: number;
  nRetransmit: number;
  nTlp: number;
  nLostRetransmit: number;
  nUndo: number;
  /** Bytes the guest acknowledged (the gateway sending) over all of them. */
  acked: number;
}

export interface LossCell extends Throughput {
  gateway: GatewayTcpStats | null;
}

export interface LossRound {
  round: number;
  cells: Partial<Record<LossRun, Measured<LossCell> | Failed>>;
}

export interface LossOptions {
  seconds: number;
  seed: number;
  runs: readonly LossRun[];
}

const impair = (seed: number) => ({ lossPct: LOSS_PCT, reorderPct: REORDER_PCT, seed, direction: 'both' as const });

/**
 * The vmnet gateway process: startGateway() as the CLI runs it, plus a
 * sampler of its TCP connections' counters (a private map, read for
 * diagnostics only), printed as one STATS line on SIGUSR2.
 */
function gatewayScript(sock: string, mtu: number): string {
  const server = pathToFileURL(join(ROOT, 'dist', 'gateway', 'server.js')).href;
  const resolv = pathToFileURL(join(ROOT, 'dist', 'services', 'dns', 'resolv-conf.js')).href;
  return `
const { startGateway } = await import(${JSON.stringify(server)});
const { parseUpstream } = await import(${JSON.stringify(resolv)});
const gw = await startGateway({ socket: ${JSON.stringify(sock)}, mtu: ${mtu}, dnsUpstreams: [parseUpstream('127.0.0.1:53')] });
process.stdout.write('listening\\n');
const seen = new Map();
const keys = ['nRto', 'nFastRetransmit', 'nRetransmit', 'nTlp', 'nLostRetransmit', 'nUndo'];
const sample = () => {
  for (const c of gw.gateway.tcpNat.connections()) {
    const s = {};
    for (const k of keys) s[k] = typeof c[k] === 'number' ? c[k] : 0;
    s.acked = (c.sndUna - c.iss) >>> 0;
    seen.set(c, s);
  }
};
setInterval(sample, 50).unref();
let n = 0;
process.on('SIGUSR2', () => {
  sample();
  const t = { conns: 0, nRto: 0, nFastRetransmit: 0, nRetransmit: 0, nTlp: 0, nLostRetransmit: 0, nUndo: 0, acked: 0 };
  for (const s of seen.values()) {
    if (s.acked < 65536 && s.nRetransmit === 0) continue; // iperf3's control connection and the like
    t.conns++;
    for (const k of keys) t[k] += s[k];
    t.acked += s.acked;
  }
  seen.clear();
  process.stdout.write('STATS' + (n++) + ' ' + JSON.stringify(t) + '\\n');
});
process.on('SIGTERM', () => { void gw.close().then(() => process.exit(0)); });
`;
}

let statsSeq = 0;
/** Asks the gateway process for its counters since the last call. */
async function gatewayStats(p: Proc): Promise<GatewayTcpStats> {
  const tag = `STATS${statsSeq++} `;
  p.child.kill('SIGUSR2');
  await p.waitFor(new RegExp(`${tag}\\{.*\\}\\n`), 10_000);
  const line = p.stdout().split('\n').find((l) => l.startsWith(tag))!;
  return JSON.parse(line.slice(tag.length)) as GatewayTcpStats;
}

/** One run through the vmnet gateway: it sends (iperf3 -R) or receives. */
async function vmnetRun(o: LossOptions, sends: boolean): Promise<LossCell> {
  const scope = new Scope();
  statsSeq = 0;
  try {
    const b = await startBackend(scope, 'vmnet', LOSS_MTU, {
      vmnetArgs: (sock, mtu) => ['--input-type=module', '-e', gatewayScript(sock, mtu)],
      impair: impair(o.seed),
    });
    await gatewayStats(b.backend); // forget the setup's connections
    const t = await iperf(scope, b.guest, b.serverIp, { seconds: o.seconds, streams: 1, reverse: sends, pids: { backend: b.backend.pid, relay: b.relayPid }, congestion: 'cubic' });
    // Receiving, the gateway's sender carries only ACKs: its counters say nothing.
    return { ...t, gateway: sends ? await gatewayStats(b.backend) : null };
  } finally {
    await scope.close();
  }
}

/** Linux to Linux through the relay pair, the first relay impaired; the sender runs `cc`. */
async function linuxRun(o: LossOptions, cc: 'cubic' | 'bbr'): Promise<LossCell> {
  const scope = new Scope();
  try {
    const p = await startRelayPair(scope, LOSS_MTU, impair(o.seed));

    const t = await iperf(scope, p.a, '10.9.0.2', { seconds: o.seconds, streams: 1, reverse: false, pids: { backend: p.relayPids[0]!, relay: p.relayPids[1]! }, congestion: cc });
    return { ...t, gateway: null };
  } finally {
    await scope.close();
  }
}

const RUN_FNS: Record<LossRun, (o: LossOptions) => Promise<LossCell>> = {
  'vmnet-sends': (o) => vmnetRun(o, true),
  linux: (o) => linuxRun(o, 'cubic'),
  'linux-bbr': (o) => linuxRun(o, 'bbr'),
  'vmnet-receives': (o) => vmnetRun(o, false),
};

/** One round: each selected run once, in the given order. */
export async function lossRound(o: LossOptions, round: number, log: (s: string) => void = () => {}): Promise<LossRound> {
  const r: LossRound = { round, cells: {} };
  for (const run of o.runs) {
    const c = await cell(() => RUN_FNS[run](o));
    r.cells[run] = c;
    log(`  loss round ${round} ${run}: ${c.ok ? `${(c.value.gbps * 1000).toFixed(1)} Mbit/s${c.value.gateway ? ` ${JSON.stringify(c.value.gateway)}` : ''}` : c.error}`);
  }
  return r;
}

const LABELS: Record<LossRun, string> = {
  'vmnet-sends': 'vmnet sends (host→guest, iperf3 -R through the gateway)',
  linux: 'Linux sends, CUBIC (Linux TCP to Linux TCP, relay pair)',
  'linux-bbr': 'Linux sends, BBR (same, loss-agnostic: for context)',
  'vmnet-receives': 'vmnet receives (guest→host, Linux CUBIC sends to the gateway)',
};

/** The loss section of the report: best round per run, the ratio to Linux, every round, the gateway's counters. */
export function lossMarkdown(rounds: LossRound[], o: LossOptions): string {
  const mbps = (run: LossRun): number[] => rounds.flatMap((r) => (r.cells[run]?.ok ? [(r.cells[run] as Measured<LossCell>).value.gbps * 1000] : []));
  const best = (run: LossRun): number | null => (mbps(run).length ? Math.max(...mbps(run)) : null);
  const out = [
    `## Loss recovery: goodput with ${LOSS_PCT}% loss + ${REORDER_PCT}% reordering each way`,
    '',
    `iperf3 -t ${o.seconds}, 1 stream, MTU ${LOSS_MTU}, receiver's rate; tap-relay \`-l ${LOSS_PCT} -r ${REORDER_PCT} -s ${o.seed}\` on the link (bench/loss.ts says how each run is set up). Best of ${rounds.length} round(s), every round listed.`,
    '',
    '| run | Mbit/s (best) | every round | vmnet sends ÷ this |',
    '|---|---:|---|---:|',
  ];
  const vs = best('vmnet-sends');
  for (const run of o.runs) {
    const b = best(run);
    const all = rounds.map((r) => (r.cells[run]?.ok ? ((r.cells[run] as Measured<LossCell>).value.gbps * 1000).toFixed(1) : 'x')).join(' / ');
    const ratio = run !== 'vmnet-sends' && vs !== null && b ? (vs / b).toFixed(2) + (run === 'linux' ? (vs / b >= 0.5 ? ' ✓' : ' ✗') : '') : '—';
    out.push(`| ${LABELS[run]} | ${b === null ? 'failed' : b.toFixed(1)} | ${all} | ${ratio} |`);
  }
  out.push('', "✓ / ✗: the issue's target, vmnet's sender at least half of Linux's (CUBIC, a loss-based sender like vmnet's) over the same link.", '');
  const counters = rounds.flatMap((r) =>
    (['vmnet-sends'] as const).flatMap((run) => {
      const c = r.cells[run];
      const g = c?.ok ? c.value.gateway : null;
      return g ? [`| ${r.round} | ${g.conns} | ${(g.acked / 1448).toFixed(0)} | ${g.nRetransmit} | ${g.nFastRetransmit} | ${g.nRto} | ${g.nTlp} | ${g.nLostRetransmit} | ${g.nUndo} |`] : [];
    }),
  );
  if (counters.length)
    out.push(
      "The gateway's TCP counters while it sends (the data connections; segments = bytes the guest acknowledged ÷ 1448, retransmitted = segments sent again, fast = fast recoveries entered, undo = recoveries undone as spurious):",
      '',
      '| round | conns | ≈ segments | retransmitted | fast | RTO | TLP | lost rtx | undo |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...counters,
      '',
    );
  const failed = rounds.flatMap((r) => o.runs.flatMap((run) => (r.cells[run] && !r.cells[run]!.ok ? [`- round ${r.round} ${run}: ${(r.cells[run] as Failed).error}`] : [])));
  if (failed.length) out.push('Failures:', '', ...failed, '');
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '2' },
      seed: { type: 'string', default: '1' },
      only: { type: 'string', default: LOSS_RUNS.join(',') },
    },
  });
  const o: LossOptions = { seconds: Number(values.seconds), seed: Number(values.seed), runs: values.only.split(',') as LossRun[] };
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const rounds: LossRound[] = [];
  for (let i = 1; i <= Math.max(1, Number(values.rounds)); i++) rounds.push(await lossRound({ ...o, runs: i % 2 ? o.runs : [...o.runs].reverse() }, i, log));
  process.stdout.write(`${lossMarkdown(rounds, o)}\n`);
}
