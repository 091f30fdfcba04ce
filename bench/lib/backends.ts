/**
 * Theory of operation: one backend under test = two fresh namespaces.
 *
 *   host ns   lo + a veth pair whose both ends stay in it (passt refuses a
 *             namespace without a routed interface; the default route points
 *             into the pair, so nothing leaves); runs the backend process, an
 *             iperf3 server and the netbench echo server, all on 0.0.0.0.
 *   guest ns  the Linux kernel's TCP as the guest, on tap0.
 *
 * vmnet and passt serve QEMU's stream socket; tap0 is relayed to it by
 * bench/relay/tap-relay.c (test/helpers/tap-relay.ts). slirp4netns creates
 * and serves tap0 itself (libslirp has no stream socket; this is how
 * rootless containers use it). Guest addressing:
 *   vmnet     10.0.2.15/24, gateway 10.0.2.2 (= the host ns's 127.0.0.1)
 *   libslirp  10.0.2.100/24 (slirp4netns --configure), gateway 10.0.2.2 (same)
 *   passt     copies the host's veth address 10.200.0.1/24, gateway 10.200.0.2;
 *             passt maps connections to the gateway address to the host's
 *             loopback (its default, --no-map-gw turns it off)
 * With family 6 (the IPv6 rows) both namespaces also run IPv6: the host ns
 * gets 2001:db8:200::1/64 and a default route via ::2 on its veth (passt
 * copies them), the guest's tap0 takes a SLAAC address from the backend's
 * router advertisements (accept_ra 2, no DAD), and the guest dials
 *   vmnet     fd0d:b4b8:6ba1::2 (the gateway's default prefix; = host ::1)
 *   libslirp  fd00::2 (slirp4netns --enable-ipv6; = host ::1)
 *   passt     2001:db8:200::2, the copied default gateway (= host ::1)
 * passt then runs without -4 (its default: both families).
 * Each backend gets a fresh host ns so TIME_WAIT sockets of one connection-
 * rate run cannot slow the next backend's.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../../test/helpers/netns.js';
import { startTapRelay, type TapRelayOptions } from '../../test/helpers/tap-relay.js';
import { retry, tuneNetns, type Proc, type Scope } from './env.js';
import { buildNetbench } from './netbench.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'bin.js');
export const IPERF_PORT = 5201;
export const ECHO_PORT = 7000;
/** The local DNS upstream (netbench dns) in the host ns, on 0.0.0.0. */
export const DNS_PORT = 53;
/**
 * The guest tap's transmit queue, in frames. A tap drops what its queue
 * cannot hold (tx_dropped), where a VM's virtio-net ring stops the guest's
 * queue instead; with the default 1,000, a guest TCP sending into a wide
 * window (passt advertises its host socket's peer window, megabytes on
 * loopback) lost frames at the tap in every run, and passt 2023-03, which
 * keeps no out-of-order data and sends no SACK, turned each loss into a
 * retransmission timeout. 10,000 frames: no tx_dropped in any bench run.
 */
export const TAP_TXQUEUELEN = 10_000;

export type BackendKind = 'vmnet' | 'libslirp' | 'passt';
/** The address family the guest dials the host's servers over. */
export type Family = 4 | 6;

/**
 * The host ns's IPv6 address and default route (2001:db8::/32 is the
 * documentation prefix, RFC 3849): passt copies them (its IPv6 mode needs an
 * address and a default route on a host interface) and the route leads into
 * the host ns's own veth pair, like the IPv4 one.
 */
const HOST6 = { cidr: '2001:db8:200::1/64', gw: '2001:db8:200::2' } as const;
/** What the guest dials over IPv6 to reach the host ns's ::1, per backend (their documented host addresses). */
const SERVER6: Record<BackendKind, string> = {
  vmnet: 'fd0d:b4b8:6ba1::2', // the gateway's default prefix, ::2 → host ::1 (README "IPv6")
  libslirp: 'fd00::2', // slirp4netns(1): "IPv6 Gateway/Host: fd00::2", host loopback on
  passt: HOST6.gw, // passt(1) NOTES: the default gateway's address is mapped to the host's loopback
};

export interface Backend {
  readonly kind: BackendKind;
  readonly mtu: number;
  readonly host: Netns;
  readonly guest: Netns;
  readonly family: Family;
  /** The address the guest dials to reach the host ns's servers (IPv6 with family 6). */
  readonly serverIp: string;
  /** The backend's DNS address as the guest sees it (forwarded to the host ns's DNS_PORT). */
  readonly dnsIp: string;
  /** The user-mode network process (gateway, passt, slirp4netns). */
  readonly backend: Proc;
  /** The relay's pid (vmnet, passt); null for slirp4netns. */
  readonly relayPid: number | null;
  readonly netbench: string;
}

export interface BackendOptions {
  /** Extra node flags for the vmnet gateway, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  nodeFlags?: string[];
  /**
   * Node arguments (after nodeFlags) that start the vmnet gateway instead of
   * the CLI; the process must print "listening" once it serves `sock`.
   */
  vmnetArgs?: (sock: string, mtu: number) => string[];
  /** Loss and reordering inside the relay (vmnet, passt; slirp4netns has no relay): the loss row (bench/loss.ts). */
  impair?: TapRelayOptions['impair'];
  /**
   * The relay writes each frame to the socket on its own, as QEMU does
   * (tap-relay -1), instead of batching a poll round's frames in one write.
   */
  frameWrites?: boolean;
  /**
   * 6: the guest also runs IPv6, takes its address by SLAAC from the
   * backend's router advertisements, and `serverIp` is the backend's IPv6
   * address for the host (default 4: IPv6 is off in both namespaces).
   */
  family?: Family;
}

/** Host ns: lo, a self-contained veth pair with a default route (and with family 6 an IPv6 one), and the servers. */
async function hostNs(scope: Scope, netbench: string, family: Family): Promise<Netns> {
  const host = scope.netns('vb-host');
  const ip = (args: string[]) => scope.run(null, 'ip', ['-n', host.name, ...args]);
  await tuneNetns(scope, host, { ipv6: family === 6 });
  await ip(['link', 'add', 'vbh0', 'type', 'veth', 'peer', 'name', 'vbh1']);
  await ip(['addr', 'add', '10.200.0.1/24', 'dev', 'vbh0']);
  if (family === 6) await ip(['-6', 'addr', 'add', HOST6.cidr, 'dev', 'vbh0', 'nodad']);
  await ip(['link', 'set', 'vbh0', 'up']);
  await ip(['link', 'set', 'vbh1', 'up']);
  await ip(['route', 'add', 'default', 'via', '10.200.0.2', 'dev', 'vbh0']);
  if (family === 6) await ip(['-6', 'route', 'add', 'default', 'via', HOST6.gw, 'dev', 'vbh0']);
  // `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf for what
  // it starts: every backend's DNS forwarder then reads a resolver on loopback, nothing else.
  const etc = join('/etc/netns', host.name);
  mkdirSync(etc, { recursive: true });
  scope.defer(() => rmSync(etc, { recursive: true, force: true }));
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  const iperf = scope.spawn(host, 'iperf3', ['-s', '-p', String(IPERF_PORT), '--forceflush'], 'iperf3 server');
  const echo = scope.spawn(host, netbench, ['srv', String(ECHO_PORT)], 'netbench srv');
  const dns = scope.spawn(host, netbench, ['dns', String(DNS_PORT)], 'netbench dns');
  await Promise.all([iperf.waitFor(/listening/i), echo.waitFor(/listening/), dns.waitFor(/listening/)]);
  return host;
}

/** Creates tap0 in `ns` (persistent, so the relay attaches to it). */
async function makeTap(scope: Scope, ns: Netns, mtu: number): Promise<void> {
  await scope.run(null, 'ip', ['-n', ns.name, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
  await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'mtu', String(mtu)]);
  await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'txqueuelen', String(TAP_TXQUEUELEN)]);
}

/** Addresses tap0 and routes through `gw` (after the relay attached, so the link has carrier). */
async function addressTap(scope: Scope, ns: Netns, cidr: string, gw: string): Promise<void> {
  await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'up']);
  await scope.run(null, 'ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', 'tap0']);
  await scope.run(null, 'ip', ['-n', ns.name, 'route', 'add', 'default', 'via', gw, 'dev', 'tap0']);
}

/**
 * Waits until tap0 in `ns` has a global IPv6 address that is no longer
 * tentative: the SLAAC address from the backend's router advertisement
 * (RFC 4862 §5.5.3), the router solicitation having gone out when the link
 * came up.
 */
async function slaac(scope: Scope, ns: Netns, kind: BackendKind): Promise<string> {
  return retry(
    async () => {
      const out = await scope.run(null, 'ip', ['-n', ns.name, '-6', '-o', 'addr', 'show', 'dev', 'tap0', 'scope', 'global']);
      const m = /inet6 ([0-9a-f:]+)\/\d+ (?!.*tentative)/.exec(out);
      if (!m) throw new Error(`no global address yet: ${out.trim() || '(none)'}`);
      return m[1]!;
    },
    15_000,
    `${kind}: SLAAC address on the guest's tap0`,
  );
}

/** Starts one backend at one MTU and waits until the guest reaches the host's echo server. */
export async function startBackend(scope: Scope, kind: BackendKind, mtu: number, opts: BackendOptions = {}): Promise<Backend> {
  const family = opts.family ?? 4;
  const netbench = await buildNetbench();
  const host = await hostNs(scope, netbench, family);
  const guest = scope.netns('vb-guest');
  await tuneNetns(scope, guest, { ipv6: family === 6 });
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-bench-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  // passt started as root switches to nobody before it binds its socket (and
  // 2023-03 prints "bound" even when that bind fails with EACCES).
  chmodSync(dir, 0o777);
  const sock = join(dir, `${kind}.sock`);
  let backend: Proc;
  let relayPid: number | null = null;
  let serverIp: string;
  let dnsIp: string;

  const relay = async () => {
    const r = await startTapRelay({ netns: guest.name, tap: 'tap0', socket: sock, frameWrites: opts.frameWrites, ...(opts.impair ? { impair: opts.impair } : {}) });
    scope.defer(() => r.stop());
    relayPid = r.pid;
  };

  if (kind === 'vmnet') {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    backend = scope.spawn(
      host,
      process.execPath,
      [...(opts.nodeFlags ?? []), ...(opts.vmnetArgs?.(sock, mtu) ?? [CLI, 'gateway', '--socket', sock, '--mtu', String(mtu), '--dns-upstream', '127.0.0.1:53'])],
      'vmnet gateway',
    );
    await backend.waitFor(/listening/);
    await makeTap(scope, guest, mtu);
    await relay();
    await addressTap(scope, guest, '10.0.2.15/24', '10.0.2.2');
    serverIp = '10.0.2.2';
    dnsIp = '10.0.2.3';
  } else if (kind === 'passt') {
    // -f foreground (same pid), -e log to stderr, -4 IPv4 only (without it: IPv4 and IPv6, passt's default),
    // -m MTU via DHCP and the RA's MTU option (the guest's IPv4 is configured statically to the same).
    const only4 = family === 4 ? ['-4'] : [];
    backend = scope.spawn(host, 'passt', ['-f', '-e', ...only4, '-s', sock, '-m', String(mtu)], 'passt');
    await backend.waitFor(/UNIX domain socket bound/);
    await makeTap(scope, guest, mtu);
    await relay();
    await addressTap(scope, guest, '10.200.0.1/24', '10.200.0.2');
    serverIp = '10.200.0.2';
    // passt 2023-03 has no DNS proxy of its own: with the host's resolver on loopback it
    // hands the guest its gateway address, and the gateway mapping carries UDP to 127.0.0.1.
    dnsIp = '10.200.0.2';
  } else {
    // slirp4netns creates tap0 in the guest ns, configures 10.0.2.100/24 via 10.0.2.2 and writes "1" to the ready fd.
    // --enable-ipv6: fd00::/64, router advertisements, fd00::2 reaching the host's ::1.
    backend = scope.spawn(
      host,
      'slirp4netns',
      ['--configure', `--mtu=${mtu}`, ...(family === 6 ? ['--enable-ipv6'] : []), '--ready-fd=3', '--netns-type=path', `/run/netns/${guest.name}`, 'tap0'],
      'slirp4netns',
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    await new Promise<void>((res, rej) => {
      const fd3 = backend.child.stdio[3] as NodeJS.ReadableStream | null;
      const t = setTimeout(() => rej(new Error(`slirp4netns not ready: ${backend.stderr()}`)), 10_000);
      fd3?.once('data', () => {
        clearTimeout(t);
        res();
      });
      void backend.exited.then((c) => rej(new Error(`slirp4netns exited (${c}): ${backend.stderr()}`)));
    });
    await scope.run(null, 'ip', ['-n', guest.name, 'link', 'set', 'tap0', 'txqueuelen', String(TAP_TXQUEUELEN)]);
    serverIp = '10.0.2.2';
    dnsIp = '10.0.2.3'; // libslirp's DNS forwarder, to the resolv.conf nameserver
  }
  if (family === 6) {
    await slaac(scope, guest, kind);
    serverIp = SERVER6[kind];
  }
  const b: Backend = { kind, mtu, family, host, guest, serverIp, dnsIp, backend, relayPid, netbench };
  await retry(() => scope.run(guest, netbench, ['rr', serverIp, String(ECHO_PORT), '1'], 5000), 10_000, `${kind} mtu ${mtu}: guest -> host echo`);
  return b;
}

/**
 * The relay baseline: two namespaces, each with tap0 relayed to one unix
 * socket served by `netbench xconn`, which splices the two streams. Frames
 * cross two relays and a splice, with no user-mode network in between: what
 * the relay path alone carries. With `impair`, the first relay (namespace
 * a's) drops and reorders frames both ways: Linux TCP to Linux TCP over the
 * link the loss row gives the backends (bench/loss.ts).
 */
export async function startRelayPair(
  scope: Scope,
  mtu: number,
  impair?: TapRelayOptions['impair'],
): Promise<{ a: Netns; b: Netns; relayPids: number[]; netbench: string }> {
  const netbench = await buildNetbench();
  const dir = mkdtempSync(join(tmpdir(), 'vmnet-bench-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'xconn.sock');
  const x = scope.spawn(null, netbench, ['xconn', sock], 'netbench xconn');
  await x.waitFor(/listening/);
  const a = scope.netns('vb-ra');
  const b = scope.netns('vb-rb');
  const relayPids: number[] = [];
  for (const [ns, cidr] of [
    [a, '10.9.0.1/24'],
    [b, '10.9.0.2/24'],
  ] as const) {
    await tuneNetns(scope, ns);
    await makeTap(scope, ns, mtu);
    const r = await startTapRelay({ netns: ns.name, tap: 'tap0', socket: sock, ...(impair && ns === a ? { impair } : {}) });
    scope.defer(() => r.stop());
    relayPids.push(r.pid);
    await scope.run(null, 'ip', ['-n', ns.name, 'link', 'set', 'tap0', 'up']);
    await scope.run(null, 'ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', 'tap0']);
  }
  const iperf = scope.spawn(b, 'iperf3', ['-s', '-p', String(IPERF_PORT), '--forceflush'], 'iperf3 server');
  await iperf.waitFor(/listening/i);
  return { a, b, relayPids, netbench };
}
