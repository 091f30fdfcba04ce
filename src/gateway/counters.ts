/**
 * The gateway's counters: plain numbers, cheap to bump on the data path,
 * snapshotted for `vmnet gateway` (SIGUSR1, exit) and the library.
 */
import type { PingRelayCounters } from '../services/ping/relay.js';
import type { UdpNatCounters } from '../services/udp-nat/nat.js';

/** Why a frame was dropped. Stable names: they appear in output and tests. */
export const DROP_REASONS = [
  'eth-short', // shorter than an Ethernet header
  'oversize', // longer than MTU + Ethernet header
  'not-for-us', // unicast to another MAC
  'vlan-tagged', // 802.1Q frame on an untagged port
  'ethertype', // neither IPv4 nor ARP
  'ipv6', // IPv6 on a gateway without IPv6 (--no-ipv6, or an MTU below 1280)
  'ipv6-invalid', // bad IPv6 header or extension header chain (Parameter Problem sent where RFC 8200 asks)
  'ipv6-src', // IPv6 source neither link-local nor in the prefix, or one of the gateway's own
  'ipv6-fragment', // an IPv6 fragment inside a packet reassembled from fragments
  'ipv6-full', // the IPv6 address table was full (nat-addr.ts): a new address dropped until the next sweep
  'ndp-invalid', // a Neighbor Discovery message failing RFC 4861's validity checks
  'dhcpv6-invalid',
  'arp-invalid',
  'ipv4-invalid', // bad version, lengths or header checksum
  'ipv4-src', // source address outside the subnet (and not 0.0.0.0 for DHCP)
  'src-taken', // source MAC or address held by another link (neighbors.ts), or an ARP claiming one
  'src-limit', // the link already holds as many addresses or MACs as it may
  'src-mac', // group (multicast/broadcast) or all-zero source MAC
  'ttl-expired',
  'fragment', // fragment dropped by the reassembler (overlap, too big, eviction)
  'icmp-invalid',
  'icmp-unsupported', // ICMP other than echo requests (and echo to the outside on a gateway without a ping relay)
  'ping-refused', // echo request to a broadcast, multicast or martian address, or refused by --isolated / --no-host
  'ping-unavailable', // echo request not relayed: ping sockets refused (ping_group_range), no helper, or its queue full
  'udp-invalid', // bad length or checksum
  'udp-broadcast', // broadcast/multicast UDP other than DHCP
  'udp-refused', // refused by policy or by the host (ICMP sent)
  'udp-too-big', // host datagram larger than the guest's MTU allows
  'dhcp-invalid',
  'dns-dropped', // query the DNS service would not answer
  'tcp-invalid', // bad TCP header or checksum, or TCP to a broadcast address
  'proto-unsupported',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** A snapshot of a gateway's state for status output (Gateway.snapshot). */
export interface GatewaySnapshot {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  dropped: number;
  drops: Partial<Record<DropReason, number>>;
  connections: number;
  udpFlows: number;
  /** The UDP NAT's datagram counters (both families): where a guest's or a host's datagram was dropped. */
  udp: UdpNatCounters;
  /** Ping to the outside: open flows and the relay's counters (null: no ping relay). */
  ping: (PingRelayCounters & { flows: number }) | null;
  fragmentsPending: number;
  leases: Array<{ mac: string; ip: string; hostname: string | null }>;
  neighbors: Array<{ ip: string; mac: string }>;
  /** IPv6 neighbours (link-local and global), empty with --no-ipv6. */
  neighbors6: Array<{ ip: string; mac: string }>;
}

export class GatewayCounters {
  framesIn = 0;
  bytesIn = 0;
  framesOut = 0;
  bytesOut = 0;
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;

  /** Total dropped frames. */
  get dropped(): number {
    let n = 0;
    for (const r of DROP_REASONS) n += this.drops[r];
    return n;
  }
}
