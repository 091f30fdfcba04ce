/**
 * Theory of operation: the gateway's side of ping to the outside, IPv4.
 * Echo requests to the gateway's own addresses are answered by the gateway
 * itself (gateway.ts), in every mode: a router answers for itself, and
 * relaying 10.0.2.2 to the host's 127.0.0.1 would give the same answer
 * later. Every other echo request is for the ping relay
 * (services/ping/relay.ts), after the UDP NAT's policy:
 *
 *  - broadcast and multicast destinations (a group MAC, 255.255.255.255,
 *    the subnet broadcast, 224/4 and above), 0/8, 127/8 and the rest of the
 *    guest subnet: dropped silently (counted `ping-refused`; RFC 1122
 *    §3.2.2 forbids errors about broadcasts, and nothing is there to reach);
 *  - `--isolated`, with `--no-host` every address of the host (its
 *    interfaces, 127/8), and link-local 169.254/16 always (RFC 3927 §2.7;
 *    gateway.ts, as for TCP and UDP): ICMP destination unreachable, communication
 *    administratively prohibited (RFC 1812 §5.2.7.1), so the guest's ping
 *    says "packet filtered" at once instead of timing out; counted too.
 *
 * The rest goes out through a ping socket with the guest's TTL less one
 * (RFC 1812 §5.3.1); a request with TTL 1 never gets here (time exceeded
 * from the gateway). Replies come back from the address pinged, with the
 * guest's identifier and the TTL they reached the host with, less one.
 * ICMP errors about a request come from the router that sent them (the
 * gateway's address when the host itself raised them), quoting the guest's
 * IPv4 header and request header as the guest sent them. When ping sockets
 * are refused or the helper cannot run, the guest gets nothing and the
 * request is counted `ping-unavailable`.
 *
 * IPv6 shares the relay: the helper and its protocol carry ICMPv6 echo
 * (family 6); the gateway's IPv6 side (gateway6.ts) applies IPv6's policy,
 * hands its echo requests to the same relay, and builds the frames for
 * family-6 replies and errors, which this side passes to it (`family6`).
 */
import * as icmp from '../wire/icmpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import { inSubnet, type Ip4 } from '../wire/addr.js';
import { PingRelay, type PingBackendFactory, type PingFlowInfo, type PingRelayEvents } from '../services/ping/relay.js';
import type { GatewayConfig } from './config.js';
import type { DropReason } from './counters.js';
import type { FrameBuilder } from './frames.js';

/** What the gateway gives its ping side. */
export interface GatewayPingDeps {
  /** Makes the helper backend (helper-backend.ts in production). */
  backend: PingBackendFactory;
  /** Said once: ping sockets are refused ('denied'), or the helper cannot run ('unavailable', with why). */
  warn(kind: 'denied' | 'unavailable', detail: string): void;
  /** Bounds of the relay (flows in all and per guest, idle time). */
  limits?: { maxFlows?: number; maxFlowsPerGuest?: number; idleMs?: number };
}

/** The gateway internals the ping side uses. */
export interface PingGatewayView {
  now(): number;
  /** True for a destination refused as administratively prohibited (the host itself with --no-host, link-local). */
  prohibited(ip: Ip4): boolean;
  /** Builds a frame for the guest at `guestIp` with `build` (into the gateway's output, at 0) and sends it; dropped when the guest is gone. */
  toGuest(guestIp: Ip4, build: (out: DataView, mac: Uint8Array, frames: FrameBuilder) => number): void;
  drop(reason: DropReason): void;
  /** Family-6 replies and errors: the IPv6 side's (absent with --no-ipv6: dropped). */
  family6?: Pick<PingRelayEvents, 'reply' | 'error'> | undefined;
}

const bytes4 = (a: Ip4): Uint8Array => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
const ip4 = (b: Uint8Array): Ip4 => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;

/** The gateway's IPv4 ping side: policy, the relay, and the frames its replies and errors become. */
export class GatewayPing {
  readonly relay: PingRelay;
  private readonly quote = new Uint8Array(ipv4.HEADER_LEN + icmp.HEADER_LEN);
  private readonly quoteView = new DataView(this.quote.buffer);

  constructor(
    private readonly config: GatewayConfig,
    private readonly gw: PingGatewayView,
    deps: GatewayPingDeps,
  ) {
    this.relay = new PingRelay({
      backend: deps.backend,
      now: gw.now,
      ...deps.limits,
      events: {
        reply: (f, seq, payload, ttl) => this.reply(f, seq, payload, ttl),
        error: (f, from, type, code, info, request, ttl) => this.error(f, from, type, code, info, request, ttl),
        warn: deps.warn,
      },
    });
  }

  /**
   * A guest's echo request to an address that is not the gateway's.
   * @param guest the guest's link id
   * @param h the parsed IPv4 header (TTL above 1: checked by the caller)
   * @param v the view holding the datagram, its header at `ipOff`
   * @param broadcast the frame or the address was broadcast or multicast
   */
  fromGuest(guest: number, h: ipv4.Header, v: DataView, ipOff: number, broadcast: boolean): void {
    const c = this.config;
    const dst = h.dst;
    const first = dst >>> 24;
    if (broadcast || first >= 224) return this.gw.drop('ping-refused');
    if (c.isolated || this.gw.prohibited(dst)) {
      this.gw.drop('ping-refused');
      return this.gw.toGuest(h.src, (out, mac, frames) =>
        frames.icmpError(out, 0, mac, c.gatewayIp, h.src, icmp.TYPE_DEST_UNREACH, icmp.CODE_ADMIN_PROHIBITED, v, ipOff, h.totalLength),
      );
    }
    if (first === 0 || first === 127 || inSubnet(dst, c.subnet.net, c.subnet.prefix)) return this.gw.drop('ping-refused');
    const message = new Uint8Array(v.buffer, v.byteOffset + h.payloadOffset, h.payloadLength);
    const r = this.relay.fromGuest({ guest, family: 4, src: bytes4(h.src), dst: bytes4(dst), ttl: h.ttl - 1, message });
    if (r !== 'sent') this.gw.drop('ping-unavailable');
  }

  /** Closes the flows from a guest address that changed hands. */
  closeAddress(ip: Ip4): void {
    this.relay.closeAddress(bytes4(ip));
  }

  private reply(f: PingFlowInfo, seq: number, payload: Uint8Array, ttl: number): void {
    if (f.family !== 4) return this.gw.family6?.reply(f, seq, payload, ttl);
    const guestIp = ip4(f.src);
    const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    // One hop more for the gateway (RFC 1812 §5.3.1); unknown: a fresh 64.
    const ttlOut = ttl === 0 ? 64 : Math.max(1, ttl - 1);
    this.gw.toGuest(guestIp, (out, mac, frames) => frames.echoReply(out, 0, mac, ip4(f.dst), guestIp, f.id, seq, pv, 0, payload.length, ttlOut));
  }

  private error(f: PingFlowInfo, from: Uint8Array | null, type: number, code: number, info: number, request: Uint8Array, ttl: number): void {
    if (f.family !== 4) return this.gw.family6?.error(f, from, type, code, info, request, ttl);
    const guestIp = ip4(f.src);
    // The guest's datagram as it left the guest: its header (TTL as the gateway sent it on) and the request's first 8 bytes.
    const h = ipv4.blank();
    h.totalLength = this.quote.length;
    h.ttl = ttl;
    h.proto = ipv4.PROTO_ICMP;
    h.src = guestIp;
    h.dst = ip4(f.dst);
    ipv4.emit(h, this.quoteView, 0);
    this.quote.set(request.subarray(0, icmp.HEADER_LEN), ipv4.HEADER_LEN);
    const src = from === null ? this.config.gatewayIp : ip4(from);
    const mtu = type === icmp.TYPE_DEST_UNREACH && code === icmp.CODE_FRAG_NEEDED ? Math.min(info, 0xffff) : 0;
    this.gw.toGuest(guestIp, (out, mac, frames) => frames.icmpError(out, 0, mac, src, guestIp, type, code, this.quoteView, 0, this.quote.length, mtu));
  }
}
