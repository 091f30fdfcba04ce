/**
 * Theory of operation: the gateway's I/O edge. startGateway() builds the
 * sans-IO Gateway with real dependencies — node:dgram host sockets for UDP
 * NAT, a DNS service whose upstreams come from --dns-upstream or a watched
 * resolv.conf (none in isolated mode), an optional pcap writer — and serves
 * QEMU stream connections: from its own unix-socket or TCP-loopback
 * listener, or handed in with attach() (the launcher, inherited fds). Each
 * connection is one guest port; a connection that misbehaves (oversize
 * prefix, hang-up mid-frame, handler error) is closed alone. A 1 s timer
 * sweeps idle UDP flows, ping flows and stale fragments (and, with
 * --no-host, reads the host's addresses again); it is unref'd.
 *
 * Ping to the outside runs through the ping helper (services/ping/), started
 * at the first guest ping. When the host refuses ping sockets, or the helper
 * cannot run, `warn` hears one line saying so and what fixes it (default:
 * stderr, prefixed "vmnet gateway: "), once.
 *
 * Names (names.ts): the DNS answers vmnet names (`names.set(mac, name)`,
 * e.g. the VM's own name for `vmnet run`) before DHCP host names; port
 * forwards naming a guest resolve the same way. A forward that names no
 * guest goes to the gateway's owner (Gateway.primaryGuest: the first
 * connection that got an address, until it closes).
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { releaseSimdBuffer, simdBuffer } from '../wire/checksum.js';
import { adoptSocket, dialTcp } from '../services/tcp-nat/host-stream.js';
import type { TcpNatLimits } from '../services/tcp-nat/nat.js';
import { formatIp6, parseIp4, parseIp6, type Ip4 } from '../wire/addr.js';
import type { AddrId } from '../services/nat-addr.js';
import { resolveGatewayConfig, type GatewayConfig, type GatewayOptions } from './config.js';
import { Gateway, type GatewaySnapshot, type Session } from './gateway.js';
import { GuestNames } from './names.js';
import { HostAddresses } from './host-addresses.js';
import { bulkRandom32 } from '../services/dns/random.js';
import { DnsService } from '../services/dns/server.js';
import { fixedUpstreams, ResolvConfWatcher } from '../services/dns/resolv-conf.js';
import { NodeHostUdp } from '../services/udp-nat/node-udp.js';
import { listenStream, type StreamListener, type StreamPort } from '../link/stream-port.js';
import { openPcap, type PcapWriter } from '../link/pcap-writer.js';
import * as eth from '../wire/ethernet.js';
import { PortForwards } from '../services/port-forward/forwards.js';
import { helperBackend } from '../services/ping/helper-backend.js';
import { deniedLine } from '../services/ping/status.js';
import type { ForwardSpec } from '../config/forward.js';
import { SeedRegistry, type SeedFetches, type SeedFiles } from '../services/metadata/seeds.js';
import { SeedHttp } from '../services/metadata/seed-http.js';
import type { GuestSeen } from './guest-watch.js';
import { formatIp4 } from '../wire/addr.js';

export interface GatewayServerOptions extends GatewayOptions {
  /** Listen on this unix socket path. */
  socket?: string;
  /** Or on this TCP loopback port (`-netdev socket,connect=` for older QEMU). */
  tcpPort?: number;
  tcpHost?: string;
  /** Port forwards set up before the gateway starts serving. */
  forwards?: ForwardSpec[];
  /** TCP NAT limits (per-guest flow cap, dials in flight, dial timeout). */
  tcpLimits?: Partial<TcpNatLimits>;
  /** Where one-line warnings go (ping sockets refused, no ping helper); default stderr. */
  warn?: (line: string) => void;
}

export interface RunningGateway {
  readonly config: GatewayConfig;
  readonly gateway: Gateway;
  readonly listener: StreamListener | null;
  /** Serves one more connection (e.g. from an inherited fd or an in-process launcher). */
  attach(port: StreamPort): Session;
  /**
   * `linkOverflow`: frames dropped because a guest link was not reading
   * (StreamPort maxQueued); `linkTooLong`: honest frames longer than the MTU skipped;
   * `udpHost`: the UDP NAT's host sockets (node-udp.ts: flows opened with the kernel's
   * default receive buffer because the large buffers' budget was spent).
   */
  snapshot(): GatewaySnapshot & { dns: DnsService['counters']; connectionsClosed: Record<string, number>; linkOverflow: number; linkTooLong: number; udpHost: NodeHostUdp['counters'] };
  /** Port forwards: add, remove and list while the gateway runs. */
  readonly forwards: PortForwards;
  /** Guest names its DNS answers and forwards resolve: vmnet names, then DHCP host names. */
  readonly names: GuestNames;
  /**
   * Readiness: does the guest really listen on `port`? The gateway sends its
   * own SYN and waits for SYN-ACK (then RST) or RST.
   */
  probeGuestPort(port: number, timeoutMs?: number, guest?: string): Promise<'open' | 'closed' | 'timeout' | 'no-guest'>;
  /** The cloud-init seeds this gateway serves at its DNS address, port 80 (services/metadata). */
  readonly seeds: GatewaySeeds;
  /** Records the first frame and the leases of the guest with `mac` from now on (see bootSeen). */
  watchBoot(mac: string): void;
  /** What the gateway saw of the guest with `mac` while it boots: its first frame and lease (once watched), its seed's fetches. */
  bootSeen(mac: string): BootSeen;
  /** QEMU arguments that connect a guest NIC to this gateway's socket. */
  qemuNetdevArgs(id?: string): string[];
  close(): Promise<void>;
}

/** A gateway's cloud-init seeds, one per VM (by its MAC). */
export interface GatewaySeeds {
  /**
   * Serves `files` to the guest with `mac` only.
   * @returns the seed URL the guest is given (`http://DNS-ADDRESS/vmnet/TOKEN/`)
   * @throws VmnetError E_USAGE past a bound (seeds.ts)
   */
  add(mac: string, files: SeedFiles): string;
  /** Stops serving `mac`'s seed. */
  remove(mac: string): void;
  readonly counters: SeedRegistry['counters'] & SeedHttp['counters'];
}

/** What the gateway saw of one booting guest (wall-clock ms). */
export interface BootSeen {
  guest: GuestSeen | null;
  seed: SeedFetches | null;
}

/** How long gateway shutdown lets cleanly closed connections finish writing to their hosts. */
const SHUTDOWN_DRAIN_MS = 5000;

/**
 * Starts a gateway.
 * @throws VmnetError for bad options (E_USAGE) or a taken socket (E_PORT_IN_USE)
 */
export async function startGateway(opts: GatewayServerOptions = {}): Promise<RunningGateway> {
  const config = resolveGatewayConfig(opts);
  const upstream = config.isolated ? null : config.dnsUpstreams ? fixedUpstreams(config.dnsUpstreams) : new ResolvConfWatcher(config.resolvConf);
  const gw6 = config.ipv6 === null ? undefined : formatIp6(config.ipv6.gatewayIp);
  // ISNs, DNS query IDs and DNS socket choice, from one CSPRNG buffer.
  const random32 = bulkRandom32();
  const dns = new DnsService({
    hostIp: config.gatewayIp,
    gatewayIp: config.gatewayIp,
    hostIp6: gw6,
    gatewayIp6: gw6,
    dnsIp: config.dnsIp,
    records: config.dnsRecords,
    upstream,
    // Stub resolvers retry after 2-5 s (busybox 2.5 s, glibc 5 s): answer SERVFAIL
    // before their first retry rather than after it.
    deadlineMs: 2000,
    tryTimeoutMs: 1000,
    random32,
  });
  const pcap: PcapWriter | null = config.pcap ? await openPcap(config.pcap, { snaplen: config.mtu + eth.HEADER_LEN + eth.VLAN_TAG_LEN }) : null;
  const now = () => performance.now();
  const warn = opts.warn ?? ((line: string) => void process.stderr.write(`vmnet gateway: ${line}\n`));
  let forwards: PortForwards | null = null;
  // --no-host: the host's own addresses, read again at each sweep.
  const hostAddresses = config.hostAccess ? null : new HostAddresses();
  const seedRegistry = new SeedRegistry({ now: () => Date.now(), token: () => randomBytes(16).toString('hex') });
  const seedHttp = new SeedHttp(seedRegistry);
  const hostUdp = new NodeHostUdp();
  const gateway: Gateway = new Gateway(config, {
    now,
    wallNow: () => Date.now(),
    hostUdp,
    dns,
    tap: pcap,
    forwardedUdp: (guestIp, guestPort, dstIp, dstPort, data) => forwards?.fromGuestUdp(guestIp, guestPort, dstIp, dstPort, data) ?? false,
    dialTcp,
    random32,
    schedule: (at) => scheduleTimers(at),
    tcpLimits: opts.tcpLimits,
    seeds: { active: () => seedRegistry.size > 0, stream: (ev, requester) => seedHttp.stream(ev, requester) },
    ping: {
      backend: helperBackend(),
      warn: (kind, detail) => warn(kind === 'denied' ? deniedLine() : `ping to the outside is off: ${detail}`),
    },
    ...(hostAddresses ? { hostAddresses: () => hostAddresses.current(), hostAddresses6: () => hostAddresses.current6() } : {}),
  });
  // One Node timer drives every TCP connection's deadlines.
  let tcpTimer: NodeJS.Timeout | null = null;
  let tcpTimerAt = Infinity;
  function scheduleTimers(at: number): void {
    if (at >= tcpTimerAt) return;
    if (tcpTimer) clearTimeout(tcpTimer);
    tcpTimerAt = at;
    tcpTimer = setTimeout(() => {
      tcpTimer = null;
      tcpTimerAt = Infinity;
      gateway.tcpNat.runTimers();
    }, Math.max(0, Math.ceil(at - now())));
    tcpTimer.unref();
  }
  const names = new GuestNames({ addressOf: (mac) => gateway.addressOf(mac), dhcpLookup: (label) => gateway.dhcp.hostnameLookup(label), domain: config.domain });
  /** A forward's target: its named guest, else the owner's address; null when unknown. */
  const targetOf = (spec: ForwardSpec): Ip4 | null => {
    if (spec.guest === undefined) return gateway.primaryGuest();
    const literal = isIPv4(spec.guest) ? parseIp4(spec.guest) : -1;
    if (literal !== -1) return literal;
    return names.lookup(spec.guest);
  };
  /**
   * A TCP forward's target and the address its connections come from: an
   * IPv6 guest address named in the spec is served over IPv6 (from the
   * client's own address when it is not loopback, else from the gateway's
   * IPv6 address); anything else as targetOf, over IPv4.
   */
  const tcpTargetOf = (spec: ForwardSpec, client: string): { guest: AddrId; from: AddrId } | null => {
    const v6 = gateway.v6;
    if (v6 !== null && spec.guest !== undefined && isIPv6(spec.guest)) {
      const guest = parseIp6(spec.guest);
      const fromText = isIPv6(client) && client !== '::1' && !client.startsWith('::ffff:') ? parseIp6(client) : null;
      if (guest === null) return null;
      const g = v6.ids.internAddress(guest);
      const f = v6.ids.internAddress(fromText ?? v6.v6.gatewayIp);
      return g === -1 || f === -1 ? null : { guest: g, from: f };
    }
    const guest = targetOf(spec);
    const c = client.replace(/^::ffff:/, '');
    // A loopback client appears as the gateway; any other as itself (IPv4), so guest logs mean something.
    const from = isIPv4(c) && !c.startsWith('127.') ? (parseIp4(c) as number) : config.gatewayIp;
    return guest === null ? null : { guest, from };
  };
  forwards = new PortForwards({
    gatewayIp: config.gatewayIp,
    guestIp: targetOf,
    sendToGuest: (srcIp, srcPort, guestIp, guestPort, data) => gateway.udpToGuest(guestIp, guestPort, srcIp, srcPort, data),
    now,
    idleMs: config.udpIdleMs,
    onTcpConnection: (spec, socket) => {
      const t = tcpTargetOf(spec, socket.remoteAddress ?? '');
      const ok = t !== null && gateway.tcpNat.connectToGuest(t.guest, spec.guestPort, t.from, socket.remotePort ?? 1024, (ev) => adoptSocket(socket, ev, true));
      if (!ok) socket.resetAndDestroy();
    },
  });
  try {
    for (const f of opts.forwards ?? []) await forwards.add(f);
  } catch (e) {
    await forwards.closeAll();
    await pcap?.close();
    if (upstream instanceof ResolvConfWatcher) upstream.close();
    dns.close();
    throw e;
  }
  dns.zone.setLookupHost(
    (label: string) => names.resolve(label),
    null,
    (label: string) => (names.resolve(label) ?? []).flatMap((ip) => gateway.addresses6Of(ip)),
  );
  const closedBy: Record<string, number> = {};
  const maxFrame = config.mtu + eth.HEADER_LEN + eth.VLAN_TAG_LEN;
  // Link drops, open links' counts plus closed ones': frames dropped at the output
  // bound (a guest not reading) and honest frames longer than the MTU skipped.
  const links = new Set<StreamPort>();
  const closedLinks = { overflow: 0, tooLong: 0 };
  const linkDrops = (p: StreamPort) => ({
    overflow: (p.tx as StreamPort['tx'] | undefined)?.overflow ?? 0, // in-process links (a segment's) have none
    tooLong: (p.rx as StreamPort['rx'] | undefined)?.tooLong ?? 0,
  });
  const attach = (port: StreamPort): Session => {
    const session = gateway.attach(port);
    links.add(port);
    port.onFrame = (_buf, view, off, len) => gateway.handleFrame(session, view, off, len);
    port.on('drain', () => gateway.linkDrained(session));
    port.once('close', (reason) => {
      closedBy[reason] = (closedBy[reason] ?? 0) + 1;
      links.delete(port);
      const d = linkDrops(port);
      closedLinks.overflow += d.overflow;
      closedLinks.tooLong += d.tooLong;
      gateway.detach(session);
    });
    return session;
  };
  let listener: StreamListener | null = null;
  // Links' long-lived buffers live in the checksum kernel's memory: frames that
  // straddle reads are reassembled there and outgoing TCP segments are built
  // there, so their checksums are summed in place.
  const pool = { take: simdBuffer, give: releaseSimdBuffer };
  const maxQueued = config.linkQueueBytes;
  if (opts.socket !== undefined) listener = await listenStream({ path: opts.socket, maxFrame, maxQueued, pool }, attach);
  else if (opts.tcpPort !== undefined) listener = await listenStream({ host: opts.tcpHost ?? '127.0.0.1', port: opts.tcpPort, maxFrame, maxQueued, pool }, attach);
  const timer = setInterval(() => {
    gateway.sweep();
    forwards.sweep(now());
    hostAddresses?.refresh();
  }, 1000);
  timer.unref();
  let closing: Promise<void> | null = null;
  const seeds: GatewaySeeds = {
    add(mac, files) {
      const path = seedRegistry.add(mac, files);
      return `http://${formatIp4(config.dnsIp)}${path}`;
    },
    remove(mac) {
      seedRegistry.removeMac(mac);
    },
    get counters() {
      return { ...seedRegistry.counters, ...seedHttp.counters };
    },
  };
  return {
    config,
    gateway,
    listener,
    forwards,
    names,
    attach,
    seeds,
    watchBoot: (mac) => void gateway.watch.watch(mac),
    bootSeen: (mac) => ({ guest: gateway.watch.seen(mac), seed: seedRegistry.fetches(mac) }),
    snapshot: () => {
      let { overflow: linkOverflow, tooLong: linkTooLong } = closedLinks;
      for (const p of links) {
        const d = linkDrops(p);
        linkOverflow += d.overflow;
        linkTooLong += d.tooLong;
      }
      return { ...gateway.snapshot(), dns: { ...dns.counters }, connectionsClosed: { ...closedBy }, linkOverflow, linkTooLong, udpHost: { ...hostUdp.counters } };
    },
    async probeGuestPort(port, timeoutMs = 2000, guest) {
      const t = guest === undefined ? gateway.primaryGuest() : tcpTargetOf({ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: 1, guestPort: port, guest }, '');
      if (t === null) return 'no-guest';
      return typeof t === 'number' ? gateway.tcpNat.probe(t, port, config.gatewayIp, timeoutMs) : gateway.tcpNat.probe(t.guest, port, t.from, timeoutMs);
    },
    qemuNetdevArgs(id = 'net0') {
      const addr = listener?.address();
      if (!addr) return [];
      if ('path' in addr) return ['-netdev', `stream,id=${id},server=off,addr.type=unix,addr.path=${addr.path}`, '-device', `virtio-net-pci,netdev=${id}`];
      return ['-netdev', `socket,id=${id},connect=${addr.host}:${addr.port}`, '-device', `virtio-net-pci,netdev=${id}`];
    },
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        // The forwards stop accepting at once; their listeners finish closing
        // once their accepted sockets are gone, so the relayed connections go
        // next (a client accepted after that would keep a listener open for as
        // long as its connection lasts). Connections the guest closed cleanly
        // may still be writing to their hosts: they get a grace period (the
        // TCP timers keep running for it), then what is left is reset.
        const forwardsClosed = forwards.closeAll();
        await gateway.tcpNat.closeAll(SHUTDOWN_DRAIN_MS);
        if (tcpTimer) clearTimeout(tcpTimer);
        await forwardsClosed;
        await listener?.close();
        gateway.close();
        dns.close();
        if (upstream instanceof ResolvConfWatcher) upstream.close();
        await pcap?.close();
      })();
      return closing;
    },
  };
}
