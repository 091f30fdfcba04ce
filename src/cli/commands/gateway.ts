/**
 * `vmnet gateway --socket PATH [network flags]`: the standalone gateway.
 * Serves any number of QEMU stream connections until SIGINT/SIGTERM, prints
 * the QEMU arguments to use, its counters on SIGUSR1 and at exit.
 */
import type { Argv, CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';
import { toJson } from '../../config/printable.js';

export interface NetworkArgs {
  subnet?: string;
  'gateway-ip'?: string;
  'dns-ip'?: string;
  mtu?: number;
  isolated: boolean;
  'host-loopback': boolean;
  host: boolean;
  'dhcp-leases-per-link'?: number;
  'dns-record': string[];
  'dns-upstream': string[];
  'resolv-conf'?: string;
  pcap?: string;
  'udp-idle'?: number;
  'link-queue'?: number;
  'tcp-cc'?: string;
  ipv6: boolean;
  subnet6?: string;
}

/** The network flags shared by `gateway` and (later) `run` and `switch`. */
export function withNetworkOptions<T>(y: Argv<T>): Argv<T & NetworkArgs> {
  return y
    .option('subnet', { type: 'string', describe: 'guest network (default 10.0.2.0/24)', group: 'Network:' })
    .option('gateway-ip', { type: 'string', describe: 'gateway address; also reaches the host (default .2)', group: 'Network:' })
    .option('dns-ip', { type: 'string', describe: 'DNS server address (default .3)', group: 'Network:' })
    .option('mtu', { type: 'number', describe: 'link MTU, 68-65520 (default 1500)', group: 'Network:' })
    .option('ipv6', { type: 'boolean', default: true, describe: 'serve IPv6: SLAAC, DHCPv6, DNS and NAT (--no-ipv6 turns it off; off below MTU 1280)', group: 'Network:' })
    .option('subnet6', { type: 'string', describe: 'the guests\' IPv6 /64 (default fd0d:b4b8:6ba1::/64)', group: 'Network:' })
    .option('isolated', { type: 'boolean', default: false, describe: 'nothing leaves: no NAT, no DNS forwarding, no host access', group: 'Network:' })
    .option('host-loopback', { type: 'boolean', default: true, describe: "map the gateway address to the host's 127.0.0.1 (--no-host-loopback turns it off)", group: 'Network:' })
    .option('host', { type: 'boolean', default: true, describe: "let NAT reach the host's own addresses (--no-host refuses every one of them, 127/8 included; the outside stays reachable)", group: 'Network:' })
    .option('dhcp-leases-per-link', { type: 'number', describe: 'DHCP leases one guest connection may hold (default 4)', group: 'Network:' })
    .option('dns-record', { type: 'string', array: true, default: [] as string[], describe: 'local DNS record NAME=IP (A or AAAA), repeatable', group: 'Network:' })
    .option('dns-upstream', { type: 'string', array: true, default: [] as string[], describe: "upstream DNS ADDR[:PORT], repeatable (default: the host's resolv.conf)", group: 'Network:' })
    .option('resolv-conf', { type: 'string', describe: 'resolv.conf to follow for upstreams (default /etc/resolv.conf)', group: 'Network:' })
    .option('pcap', { type: 'string', describe: 'write every frame to this pcap file', group: 'Network:' })
    .option('udp-idle', { type: 'number', describe: 'seconds before an idle UDP flow closes (default 60)', group: 'Network:' })
    .option('link-queue', { type: 'number', describe: 'KiB queued toward a guest that is not reading before frames are dropped (default 4096)', group: 'Network:' })
    .option('tcp-cc', { type: 'string', describe: "congestion control of the gateway's TCP toward guests: bbr or reno (default bbr)", group: 'Network:' }) as Argv<T & NetworkArgs>;
}

/** A KiB flag value in bytes (undefined stays undefined; validation is the config's). */
export const kib = (n: number | undefined): number | undefined => (n === undefined ? undefined : Math.round(n * 1024));

/** Turns parsed network flags into gateway options (parsing record/upstream specs). */
export async function networkOptionsFrom(a: NetworkArgs) {
  const { parseDnsRecord } = await import('../../services/dns/local.js');
  const { parseUpstream } = await import('../../services/dns/resolv-conf.js');
  return {
    subnet: a.subnet,
    gatewayIp: a['gateway-ip'],
    dnsIp: a['dns-ip'],
    mtu: a.mtu,
    ipv6: a.ipv6,
    subnet6: a.subnet6,
    isolated: a.isolated,
    hostLoopback: a['host-loopback'],
    hostAccess: a.host,
    dhcpLeasesPerLink: a['dhcp-leases-per-link'],
    dnsRecords: a['dns-record'].map(parseDnsRecord),
    dnsUpstreams: a['dns-upstream'].map(parseUpstream),
    resolvConf: a['resolv-conf'],
    pcap: a.pcap,
    udpIdleMs: a['udp-idle'] === undefined ? undefined : a['udp-idle'] * 1000,
    linkQueueBytes: kib(a['link-queue']),
    tcpCc: a['tcp-cc'],
  };
}

interface GatewayArgs extends NetworkArgs {
  socket?: string;
  fd?: number;
  forward: string[];
  'tcp-port'?: number;
  'tcp-per-guest'?: number;
}

export function gatewayCommand(io: CliIo): CommandModule<object, GatewayArgs> {
  return {
    command: 'gateway',
    describe: 'run the user-mode gateway alone on a socket that QEMU connects to',
    builder: (y) =>
      withNetworkOptions(
        y
          .usage('$0 gateway --socket PATH [options]\n\nServe DHCP, DNS, ICMP and UDP NAT to QEMU guests connecting with -netdev stream. Stops on Ctrl-C/SIGTERM; SIGUSR1 prints counters.')
          .option('socket', { type: 'string', describe: 'unix socket to listen on (QEMU -netdev stream)' })
          .option('tcp-port', { type: 'number', describe: 'or a TCP port on 127.0.0.1 (QEMU -netdev socket,connect=, for QEMU < 7.2)' })
          .option('fd', { type: 'number', describe: 'serve one guest on an inherited stream socket fd (QEMU -netdev socket,fd= or stream,addr.type=fd)' })
          .option('forward', { alias: 'p', type: 'string', array: true, default: [] as string[], describe: 'forward [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp] to the guest; BIND defaults to 127.0.0.1 (repeatable)' })
          .option('tcp-per-guest', { type: 'number', describe: 'most TCP connections per guest (connection), default 4096' })
          .check((a) => {
            if ([a.socket, a['tcp-port'], a.fd].filter((x) => x !== undefined).length !== 1) throw new VmnetError('E_USAGE', 'give exactly one of --socket PATH, --tcp-port N or --fd N');
            const cap = a['tcp-per-guest'];
            if (cap !== undefined && !(Number.isInteger(cap) && cap >= 1)) throw new VmnetError('E_USAGE', `bad --tcp-per-guest ${cap}: give a whole number of connections, at least 1`);
            return true;
          }),
      ) as never,
    handler: async (a) => {
      const { startGateway } = await import('../../gateway/server.js');
      const { parseForward } = await import('../../config/forward.js');
      const forwards = a.forward.map(parseForward);
      const tcpLimits = a['tcp-per-guest'] === undefined ? undefined : { maxPerGuest: a['tcp-per-guest'] };
      const gw = await startGateway({ ...(await networkOptionsFrom(a)), socket: a.socket, tcpPort: a['tcp-port'], forwards, tcpLimits });
      let fdClosed: Promise<unknown> | null = null;
      if (a.fd !== undefined) {
        const { portFromFd } = await import('../../link/stream-port.js');
        const port = portFromFd(a.fd, { maxFrame: gw.config.mtu + 18, maxQueued: gw.config.linkQueueBytes });
        gw.attach(port);
        fdClosed = new Promise((r) => port.once('close', r));
      }
      const print = (why: string) => io.stdout.write(`vmnet gateway: counters (${why}) ${toJson(gw.snapshot())}\n`);
      if (a.fd === undefined) io.stdout.write(`vmnet gateway: listening; connect QEMU with:\n  ${gw.qemuNetdevArgs().join(' ')}\n`);
      else io.stdout.write(`vmnet gateway: serving the guest on fd ${a.fd}\n`);
      io.stdout.write(`vmnet gateway: network ${a.subnet ?? '10.0.2.0/24'}${gw.config.isolated ? ' (isolated)' : ''}, mtu ${gw.config.mtu}\n`);
      const onUsr1 = () => print('SIGUSR1');
      process.on('SIGUSR1', onUsr1);
      // Runs until a signal, or (with --fd) until that one connection closes.
      await new Promise<void>((resolve) => {
        const off = io.onSignal(() => {
          off();
          resolve();
        });
        void fdClosed?.then(() => {
          off();
          resolve();
        });
      });
      process.off('SIGUSR1', onUsr1);
      await gw.close();
      print('exit');
    },
  };
}
