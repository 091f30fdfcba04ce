/**
 * Theory of operation: the gateway's configuration, one typed object with
 * QEMU's familiar defaults (network 10.0.2.0/24, gateway 10.0.2.2, DNS
 * 10.0.2.3, first lease 10.0.2.15, MTU 1500). resolveGatewayConfig() checks
 * it once, before anything starts, and throws one-line usage errors; the
 * rest of the gateway trusts it.
 *
 * IPv6 (on unless `ipv6: false`, `--no-ipv6`): one /64 per gateway, the
 * gateway at PREFIX::2 and its DNS at PREFIX::3 (as .2 and .3 in IPv4), and
 * its link-local address fe80::/64 + the modified EUI-64 of its MAC (RFC
 * 4291 §2.5.6, Appendix A), the source of its router advertisements. A /64
 * because SLAAC on Ethernet forms 64-bit interface identifiers (RFC 4862
 * §5.5.3, RFC 2464 §4). The default prefix is the unique local address
 * fd0d:b4b8:6ba1::/64 (RFC 4193): the 40-bit global ID was drawn at random
 * once (RFC 4193 §3.2 asks for a pseudo-random one; `openssl rand -hex 5`)
 * and is fixed, so the gateway's IPv6 address is as predictable as
 * 10.0.2.2 for users, docs and scripts. Every vmnet network is NATed and
 * never routed to another, so that all of them share the prefix costs
 * nothing (as all share 10.0.2.0/24); what the random global ID avoids is
 * colliding with a real network's hand-picked ULA (fd00::/64 is common),
 * whose hosts the guest could then not reach. QEMU's slirp default
 * fec0::/64 is site-local, deprecated by RFC 3879. IPv6 needs a link MTU of
 * at least 1280 (RFC 8200 §5): with a smaller `--mtu` the gateway serves
 * IPv4 only, unless `--subnet6` asks for IPv6, which is then an error.
 */
import { VmnetError } from '../errors.js';
import { CC_NAMES, type CcName } from '../tcp/cc/types.js';
import {
  eui64Address,
  formatIp4,
  inSubnet,
  isIp4Mapped6,
  isLinkLocal6,
  isLoopback6,
  isMulticast6,
  isUnspecified6,
  LINK_LOCAL_PREFIX6,
  parseCidr4,
  parseCidr6,
  parseIp4,
  prefixMask,
  type Cidr4,
  type Cidr6,
  type Ip4,
  type Ip6,
} from '../wire/addr.js';
import type { DnsRecord } from '../services/dns/local.js';
import type { Upstream } from '../services/dns/forwarder.js';
import { DEFAULT_MAX_QUEUED } from '../link/stream-port.js';

export interface GatewayOptions {
  /** e.g. "10.0.2.0/24" */
  subnet?: string;
  gatewayIp?: string;
  dnsIp?: string;
  /** First address handed out by DHCP. */
  dhcpStart?: string;
  /** Link MTU: 68..65520 (QEMU's stream netdev carries frames up to 65535 + header). */
  mtu?: number;
  /** Nothing leaves: no NAT, no DNS forwarding, no host loopback. */
  isolated?: boolean;
  /** Map the gateway address to the host's 127.0.0.1 (default true). */
  hostLoopback?: boolean;
  /**
   * Let NAT reach the host's own addresses (default true). False (`--no-host`):
   * TCP and UDP to any address of the host (its interfaces, 127/8, the
   * gateway address) are refused; the outside stays reachable.
   */
  hostAccess?: boolean;
  dnsRecords?: DnsRecord[];
  /** Upstream DNS servers; overrides resolv.conf. */
  dnsUpstreams?: Upstream[];
  /** The resolv.conf to follow (default /etc/resolv.conf). */
  resolvConf?: string;
  /** DHCP lease time in seconds (default 3600). */
  leaseTime?: number;
  /** DNS domain handed to guests (option 15) and search list (119). */
  domain?: string;
  /** Idle time before a UDP flow closes, ms (default 60000). */
  udpIdleMs?: number;
  /**
   * Most bytes queued toward one guest link that is not reading; frames
   * beyond are dropped and counted (default 4 MiB; see link/stream-port.ts).
   */
  linkQueueBytes?: number;
  /**
   * Congestion control of the gateway's TCP toward guests on SACK
   * connections: 'bbr' (default) or 'reno' (tcp/cc/types.ts).
   */
  tcpCc?: string;
  /** Write every frame to this pcap file. */
  pcap?: string;
  /** The gateway's MAC (default 52:55:0a:00:02:02 from the address). */
  gatewayMac?: string;
  /** Active DHCP leases one link (connection or switch port) may hold (default 4). */
  dhcpLeasesPerLink?: number;
  /** Serve IPv6 (default true; `--no-ipv6`: IPv6 frames are dropped, counted as `ipv6`). */
  ipv6?: boolean;
  /** The guests' IPv6 /64, e.g. "fd00:1::/64" (default {@link DEFAULT_SUBNET6}). */
  subnet6?: string;
}

/** The gateway's IPv6 side (see the file comment). */
export interface Ipv6Config {
  /** The guests' /64. */
  prefix: Cidr6;
  /** PREFIX::2: the gateway (reaches the host's ::1 unless --no-host-loopback). */
  gatewayIp: Ip6;
  /** PREFIX::3: the DNS service. */
  dnsIp: Ip6;
  /** fe80::EUI-64 of the gateway's MAC: the source of router advertisements. */
  linkLocal: Ip6;
}

/** The default IPv6 prefix: a ULA with a global ID drawn at random once (see the file comment). */
export const DEFAULT_SUBNET6 = 'fd0d:b4b8:6ba1::/64';

export interface GatewayConfig {
  subnet: Cidr4;
  gatewayIp: Ip4;
  dnsIp: Ip4;
  dhcpStart: Ip4;
  dhcpEnd: Ip4;
  broadcast: Ip4;
  mtu: number;
  isolated: boolean;
  hostLoopback: boolean;
  hostAccess: boolean;
  dnsRecords: DnsRecord[];
  dnsUpstreams: Upstream[] | null;
  resolvConf: string;
  leaseTime: number;
  domain: string;
  udpIdleMs: number;
  linkQueueBytes: number;
  tcpCc: CcName;
  pcap: string | null;
  gatewayMac: Uint8Array;
  dhcpLeasesPerLink: number;
  /** IPv6, or null when off (`--no-ipv6`, or an MTU below 1280). */
  ipv6: Ipv6Config | null;
}

/** The minimum link MTU of IPv6 (RFC 8200 §5). */
export const IPV6_MIN_MTU = 1280;

/**
 * The IPv6 side from the options: null when off.
 * @throws VmnetError E_USAGE for a prefix that is not a unicast /64, or --subnet6 with an MTU below 1280
 */
function resolveIpv6(o: GatewayOptions, mtu: number, gatewayMac: Uint8Array): Ipv6Config | null {
  if (o.ipv6 === false) {
    if (o.subnet6 !== undefined) throw new VmnetError('E_USAGE', '--subnet6 and --no-ipv6 contradict each other: give one of them');
    return null;
  }
  if (mtu < IPV6_MIN_MTU) {
    if (o.subnet6 !== undefined) throw new VmnetError('E_USAGE', `--subnet6 needs an MTU of at least ${IPV6_MIN_MTU} (IPv6's minimum), not ${mtu}`);
    return null;
  }
  const text = o.subnet6 ?? DEFAULT_SUBNET6;
  const p = parseCidr6(text);
  const usage = `bad --subnet6 ${text}: expected a unicast IPv6 /64 such as ${DEFAULT_SUBNET6}`;
  if (p === null || p.prefix !== 64) throw new VmnetError('E_USAGE', usage);
  if (isMulticast6(p.net) || isLinkLocal6(p.net) || isUnspecified6(p.net) || isLoopback6(p.net) || isIp4Mapped6(p.net)) throw new VmnetError('E_USAGE', usage);
  const at = (n: number): Ip6 => {
    const a = p.net.slice();
    a[15] = n;
    return a;
  };
  return { prefix: p, gatewayIp: at(2), dnsIp: at(3), linkLocal: eui64Address(LINK_LOCAL_PREFIX6, gatewayMac) };
}

export const MIN_MTU = 68;
export const MAX_MTU = 65520;

function ip(text: string, flag: string): Ip4 {
  const a = parseIp4(text);
  if (a === -1) throw new VmnetError('E_USAGE', `bad ${flag} ${text}: expected an IPv4 address such as 10.0.2.2`);
  return a;
}

/**
 * Validates options and fills in defaults.
 * @throws VmnetError E_USAGE with one line naming the flag
 */
export function resolveGatewayConfig(o: GatewayOptions = {}): GatewayConfig {
  const subnetText = o.subnet ?? '10.0.2.0/24';
  const subnet = parseCidr4(subnetText);
  if (!subnet || subnet.prefix > 29 || subnet.prefix < 8) throw new VmnetError('E_USAGE', `bad --subnet ${subnetText}: expected an IPv4 CIDR from /8 to /29, e.g. 10.0.2.0/24`);
  const mask = prefixMask(subnet.prefix);
  const broadcast = (subnet.net | ~mask) >>> 0;
  const at = (n: number) => (subnet.net + n) >>> 0;
  const gatewayIp = o.gatewayIp ? ip(o.gatewayIp, '--gateway-ip') : at(2);
  const dnsIp = o.dnsIp ? ip(o.dnsIp, '--dns-ip') : at(3);
  const size = broadcast - subnet.net;
  const dhcpStart = o.dhcpStart ? ip(o.dhcpStart, '--dhcp-start') : size > 16 ? at(15) : at(4);
  for (const [flag, a] of [['--gateway-ip', gatewayIp], ['--dns-ip', dnsIp], ['--dhcp-start', dhcpStart]] as const) {
    if (!inSubnet(a, subnet.net, subnet.prefix) || a === subnet.net || a === broadcast) {
      throw new VmnetError('E_USAGE', `bad ${flag} ${formatIp4(a)}: it must be a host address inside ${subnetText}`);
    }
  }
  if (gatewayIp === dnsIp) throw new VmnetError('E_USAGE', `--gateway-ip and --dns-ip must differ (both ${formatIp4(gatewayIp)})`);
  const mtu = o.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) throw new VmnetError('E_USAGE', `bad --mtu ${o.mtu}: give a whole number from ${MIN_MTU} to ${MAX_MTU}`);
  const leaseTime = o.leaseTime ?? 3600;
  if (!Number.isInteger(leaseTime) || leaseTime < 60) throw new VmnetError('E_USAGE', `bad lease time ${o.leaseTime}: at least 60 seconds`);
  const udpIdleMs = o.udpIdleMs ?? 60_000;
  if (!(udpIdleMs >= 1000)) throw new VmnetError('E_USAGE', `bad UDP idle timeout ${o.udpIdleMs}: at least 1000 ms`);
  const dhcpLeasesPerLink = o.dhcpLeasesPerLink ?? 4;
  if (!Number.isInteger(dhcpLeasesPerLink) || dhcpLeasesPerLink < 1 || dhcpLeasesPerLink > 1024) throw new VmnetError('E_USAGE', `bad DHCP leases per link ${o.dhcpLeasesPerLink}: give a whole number from 1 to 1024`);
  const linkQueueBytes = o.linkQueueBytes ?? DEFAULT_MAX_QUEUED;
  if (!Number.isInteger(linkQueueBytes) || linkQueueBytes < 64 * 1024 || linkQueueBytes > 1024 * 1024 * 1024)
    throw new VmnetError('E_USAGE', `bad link queue ${o.linkQueueBytes} bytes: from 64 KiB to 1 GiB`);
  const tcpCc = (o.tcpCc ?? 'bbr') as CcName;
  if (!CC_NAMES.includes(tcpCc)) throw new VmnetError('E_USAGE', `bad TCP congestion control ${o.tcpCc}: give ${CC_NAMES.join(' or ')}`);
  let gatewayMac: Uint8Array;
  if (o.gatewayMac) {
    const parts = o.gatewayMac.split(':');
    if (parts.length !== 6 || !parts.every((p) => /^[0-9a-f]{2}$/i.test(p))) throw new VmnetError('E_USAGE', `bad gateway MAC ${o.gatewayMac}`);
    gatewayMac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  } else {
    // QEMU's slirp uses 52:55:0a:00:02:02 for 10.0.2.2: 52:55 + the address.
    gatewayMac = Uint8Array.from([0x52, 0x55, gatewayIp >>> 24, (gatewayIp >>> 16) & 255, (gatewayIp >>> 8) & 255, gatewayIp & 255]);
  }
  return {
    subnet,
    gatewayIp,
    dnsIp,
    dhcpStart,
    dhcpEnd: (broadcast - 1) >>> 0,
    broadcast,
    mtu,
    isolated: o.isolated ?? false,
    hostLoopback: (o.hostLoopback ?? true) && (o.hostAccess ?? true) && !(o.isolated ?? false),
    hostAccess: o.hostAccess ?? true,
    dnsRecords: o.dnsRecords ?? [],
    dnsUpstreams: o.dnsUpstreams && o.dnsUpstreams.length > 0 ? o.dnsUpstreams : null,
    resolvConf: o.resolvConf ?? '/etc/resolv.conf',
    leaseTime,
    domain: o.domain ?? 'vmnet.internal',
    udpIdleMs,
    linkQueueBytes,
    tcpCc,
    pcap: o.pcap ?? null,
    gatewayMac,
    dhcpLeasesPerLink,
    ipv6: resolveIpv6(o, mtu, gatewayMac),
  };
}
