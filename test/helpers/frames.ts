/**
 * Theory of operation: test-side frame builders and decoders for everything
 * a guest sends the gateway, written with the project's own codecs
 * (src/wire/*) so checksums and lengths are right unless a test breaks them
 * on purpose, plus a sans-IO rig that drives a real Gateway with fakes:
 *
 *  - builders return fresh Uint8Arrays holding exactly one frame (no slack
 *    after it, so a read past the end of the frame throws instead of
 *    silently reading garbage);
 *  - `decodeFrame` parses a frame the gateway sent, layer by layer, and
 *    verifies every checksum on the way (IPv4 header, ICMP, UDP);
 *  - `GatewayRig` wires a Gateway to a recording FramePort, a fake clock, a
 *    fake HostUdp (tests inject replies and refusals), a fake ping helper
 *    (test/helpers/fake-ping.ts) and a real DnsService whose upstream
 *    Transport is a fake, so no socket is ever opened;
 *  - `xorshift32` is a seeded PRNG for fuzz loops (deterministic runs, like
 *    smoltcp's fault injector).
 */
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import * as eth from '../../src/wire/ethernet.js';
import * as arp from '../../src/wire/arp.js';
import * as ipv4 from '../../src/wire/ipv4.js';
import * as icmp from '../../src/wire/icmpv4.js';
import * as udp from '../../src/wire/udp.js';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { finish, ok, pseudo4, sum } from '../../src/wire/checksum.js';
import { BROADCAST_MAC, parseIp4, parseMac, type Ip4, type Mac } from '../../src/wire/addr.js';
import { Gateway, type FramePort, type Session } from '../../src/gateway/gateway.js';
import { resolveGatewayConfig, type GatewayConfig, type GatewayOptions } from '../../src/gateway/config.js';
import { DnsService } from '../../src/services/dns/server.js';
import type { Cancel, ReplyFilter, Transport, Upstream } from '../../src/services/dns/forwarder.js';
import { fixedUpstreams } from '../../src/services/dns/resolv-conf.js';
import type { HostStream, HostStreamEvents } from '../../src/services/tcp-nat/host-stream.js';
import type { TcpNatLimits } from '../../src/services/tcp-nat/nat.js';
import type { HostUdp, HostUdpSocket } from '../../src/services/udp-nat/nat.js';
import { SeedRegistry } from '../../src/services/metadata/seeds.js';
import { SeedHttp, type SeedHttpLimits } from '../../src/services/metadata/seed-http.js';
import { FakePingBackend } from './fake-ping.js';

// ------------------------------------------------------------ addresses

/** Dotted-quad text → Ip4; throws on typos so tests fail loudly. */
export function ip(text: string): Ip4 {
  const a = parseIp4(text);
  if (a === -1) throw new Error(`bad test address ${text}`);
  return a;
}

/** "52:54:00:…" → 6 bytes; throws on typos. */
export function mac(text: string): Mac {
  const m = parseMac(text);
  if (!m) throw new Error(`bad test MAC ${text}`);
  return m;
}

/** QEMU's default guest MAC. */
export const GUEST_MAC = mac('52:54:00:12:34:56');
/** A second guest. */
export const GUEST2_MAC = mac('52:54:00:ab:cd:ef');
/** The gateway's default MAC for 10.0.2.2. */
export const GW_MAC = mac('52:55:0a:00:02:02');
export const GW_IP = ip('10.0.2.2');
export const DNS_IP = ip('10.0.2.3');
export const GUEST_IP = ip('10.0.2.15');

/** A DataView over a whole Uint8Array (one view per buffer). */
export const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** ASCII/UTF-8 text as bytes. */
export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

// ------------------------------------------------------------- builders

export interface EthOptions {
  dst?: Mac;
  src?: Mac;
  /** 802.1Q VLAN id; omit for an untagged frame. */
  vlan?: number;
}

/** An Ethernet II frame around `payload`. */
export function ethFrame(ethertype: number, payload: Uint8Array, o: EthOptions = {}): Uint8Array {
  const h = eth.blank();
  h.dst.set(o.dst ?? GW_MAC);
  h.src.set(o.src ?? GUEST_MAC);
  h.vlan = o.vlan ?? -1;
  h.ethertype = ethertype;
  return emitEth(h, payload);
}

/** An Ethernet header followed by `payload`, as one new buffer. */
export function emitEth(h: eth.Header, payload: Uint8Array): Uint8Array {
  const hl = eth.length(h);
  const out = new Uint8Array(hl + payload.length);
  eth.emit(h, viewOf(out), 0);
  out.set(payload, hl);
  return out;
}

export interface ArpOptions extends EthOptions {
  op?: number;
  sha?: Mac;
  spa: Ip4;
  tha?: Mac;
  tpa: Ip4;
}

/** An Ethernet + ARP frame; by default a broadcast request from GUEST_MAC. */
export function arpFrame(o: ArpOptions): Uint8Array {
  const a = arp.blank();
  a.op = o.op ?? arp.OP_REQUEST;
  a.sha.set(o.sha ?? o.src ?? GUEST_MAC);
  a.spa = o.spa;
  a.tha.set(o.tha ?? new Uint8Array(6));
  a.tpa = o.tpa;
  const body = new Uint8Array(arp.HEADER_LEN);
  arp.emit(a, viewOf(body), 0);
  return ethFrame(eth.ETHERTYPE_ARP, body, { dst: BROADCAST_MAC, ...o });
}

export interface Ipv4Options {
  src: Ip4;
  dst: Ip4;
  proto: number;
  ttl?: number;
  id?: number;
  tos?: number;
  /** FLAG_DF | FLAG_MF */
  flags?: number;
  /** In bytes, a multiple of 8. */
  fragOffset?: number;
}

/** An IPv4 datagram (20-byte header, valid checksum) carrying `payload`. */
export function ipv4Packet(o: Ipv4Options, payload: Uint8Array): Uint8Array {
  const h = ipv4.blank();
  h.src = o.src;
  h.dst = o.dst;
  h.proto = o.proto;
  h.ttl = o.ttl ?? 64;
  h.id = o.id ?? 0x1234;
  h.tos = o.tos ?? 0;
  h.flags = o.flags ?? 0;
  h.fragOffset = o.fragOffset ?? 0;
  h.totalLength = ipv4.HEADER_LEN + payload.length;
  const out = new Uint8Array(h.totalLength);
  ipv4.emit(h, viewOf(out), 0);
  out.set(payload, ipv4.HEADER_LEN);
  return out;
}

/** Ethernet + the given IPv4 datagram. */
export const ipv4Frame = (datagram: Uint8Array, o: EthOptions = {}): Uint8Array => ethFrame(eth.ETHERTYPE_IPV4, datagram, o);

/** An ICMP echo message (request by default) with a valid checksum. */
export function icmpEcho(id: number, seq: number, payload: Uint8Array, type: number = icmp.TYPE_ECHO_REQUEST): Uint8Array {
  const out = new Uint8Array(icmp.echoLength(payload.length));
  out.set(payload, icmp.HEADER_LEN);
  icmp.emitEcho(type, id, seq, viewOf(out), 0, payload.length);
  return out;
}

/** A UDP datagram with the pseudo-header checksum filled (or 0 with `checksum: false`). */
export function udpDatagram(src: Ip4, dst: Ip4, srcPort: number, dstPort: number, payload: Uint8Array, checksum = true): Uint8Array {
  const out = new Uint8Array(udp.HEADER_LEN + payload.length);
  const h = udp.blank();
  h.srcPort = srcPort;
  h.dstPort = dstPort;
  h.length = out.length;
  h.checksum = 0;
  const v = viewOf(out);
  udp.emit(h, v, 0);
  out.set(payload, udp.HEADER_LEN);
  if (checksum) udp.fillChecksum4(v, 0, out.length, src, dst);
  return out;
}

export interface TcpOptions {
  seq?: number;
  ack?: number;
  /** Flag bits: FIN 1, SYN 2, RST 4, PSH 8, ACK 16. */
  flags?: number;
  window?: number;
}

/** A minimal 20-byte TCP header (no options) with a valid checksum. */
export function tcpSegment(src: Ip4, dst: Ip4, srcPort: number, dstPort: number, o: TcpOptions = {}, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(20 + payload.length);
  const v = viewOf(out);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint32(4, (o.seq ?? 1000) >>> 0);
  v.setUint32(8, (o.ack ?? 0) >>> 0);
  v.setUint8(12, 5 << 4);
  v.setUint8(13, o.flags ?? 0x02);
  v.setUint16(14, o.window ?? 64240);
  out.set(payload, 20);
  v.setUint16(16, finish(sum(v, 0, out.length, pseudo4(src, dst, ipv4.PROTO_TCP, out.length))));
  return out;
}

export interface GuestUdp extends EthOptions {
  srcIp?: Ip4;
  dstIp: Ip4;
  srcPort?: number;
  dstPort: number;
  ttl?: number;
  /** false: UDP checksum 0 ("none"). */
  checksum?: boolean;
}

/** A whole guest frame: Ethernet + IPv4 + UDP (from GUEST_IP:40000 by default). */
export function udpFrame(o: GuestUdp, payload: Uint8Array): Uint8Array {
  const src = o.srcIp ?? GUEST_IP;
  const dg = udpDatagram(src, o.dstIp, o.srcPort ?? 40000, o.dstPort, payload, o.checksum ?? true);
  return ipv4Frame(ipv4Packet({ src, dst: o.dstIp, proto: ipv4.PROTO_UDP, ttl: o.ttl ?? 64 }, dg), o);
}

export interface GuestPing extends EthOptions {
  srcIp?: Ip4;
  dstIp: Ip4;
  id?: number;
  seq?: number;
  ttl?: number;
}

/** A whole guest frame: Ethernet + IPv4 + ICMP echo request. */
export function pingFrame(o: GuestPing, payload: Uint8Array = bytes('abcdefghijklmnopqrstuvwxyz0123456789!')): Uint8Array {
  const src = o.srcIp ?? GUEST_IP;
  return ipv4Frame(ipv4Packet({ src, dst: o.dstIp, proto: ipv4.PROTO_ICMP, ttl: o.ttl ?? 64 }, icmpEcho(o.id ?? 0x4242, o.seq ?? 1, payload)), o);
}

export interface DhcpOptions {
  type: number;
  xid?: number;
  chaddr?: Mac;
  broadcast?: boolean;
  ciaddr?: Ip4;
  requestedIp?: Ip4;
  serverId?: Ip4;
  hostname?: string;
  clientId?: Uint8Array;
}

/** A DHCP client message (BOOTREQUEST) encoded with the wire codec. */
export function dhcpMessage(o: DhcpOptions): Uint8Array {
  const m = dhcp.blank();
  m.op = dhcp.BOOTREQUEST;
  m.htype = dhcp.HTYPE_ETHERNET;
  m.hlen = 6;
  m.xid = o.xid ?? 0xdeadbeef;
  m.flags = o.broadcast ? dhcp.FLAG_BROADCAST : 0;
  m.ciaddr = o.ciaddr ?? 0;
  m.chaddr = (o.chaddr ?? GUEST_MAC).slice();
  m.messageType = o.type;
  m.options.paramRequest = [1, 3, 6, 15, 26, 28, 51, 54, 58, 59, 119];
  if (o.requestedIp !== undefined) m.options.requestedIp = o.requestedIp;
  if (o.serverId !== undefined) m.options.serverId = o.serverId;
  if (o.hostname !== undefined) m.options.hostname = o.hostname;
  if (o.clientId !== undefined) m.options.clientId = o.clientId;
  const out = new Uint8Array(dhcp.length(m));
  dhcp.emit(m, viewOf(out), 0);
  return out;
}

/**
 * A DHCP message in a whole frame. By default sent the way a client in
 * INIT/SELECTING does: from 0.0.0.0:68 to 255.255.255.255:67, Ethernet
 * broadcast, source MAC = chaddr.
 */
export function dhcpFrame(o: DhcpOptions, via: { srcIp?: Ip4; dstIp?: Ip4; dst?: Mac; src?: Mac } = {}): Uint8Array {
  const src = via.srcIp ?? 0;
  const dst = via.dstIp ?? 0xffffffff;
  const dg = udpDatagram(src, dst, dhcp.CLIENT_PORT, dhcp.SERVER_PORT, dhcpMessage(o));
  return ipv4Frame(ipv4Packet({ src, dst, proto: ipv4.PROTO_UDP }, dg), { dst: via.dst ?? BROADCAST_MAC, src: via.src ?? o.chaddr ?? GUEST_MAC });
}

/** A DNS query message (RD set) made with dns-packet. */
export function dnsQuery(name: string, type: string = 'A', id = 0x5151): Uint8Array {
  return new Uint8Array(dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] }));
}

/**
 * Splits an IPv4 datagram (20-byte header) into fragments at the given
 * payload offsets (each a multiple of 8), returning the fragment datagrams in
 * order; each carries the original header with offset/MF fixed up.
 */
export function fragmentDatagram(datagram: Uint8Array, cuts: number[]): Uint8Array[] {
  const v = viewOf(datagram);
  const hl = ipv4.headerLength(v, 0);
  const payload = datagram.subarray(hl);
  const edges = [0, ...cuts, payload.length];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const start = edges[i]!;
    const end = edges[i + 1]!;
    const f = new Uint8Array(hl + end - start);
    f.set(datagram.subarray(0, hl));
    f.set(payload.subarray(start, end), hl);
    const fv = viewOf(f);
    const more = end < payload.length ? ipv4.FLAG_MF : 0;
    fv.setUint16(ipv4.FLAGS_FRAG, (more << 13) | (start >>> 3));
    fv.setUint16(ipv4.TOTAL_LENGTH, f.length);
    ipv4.fillChecksum(fv, 0, hl);
    out.push(f);
  }
  return out;
}

/** Recomputes the IPv4 header checksum of the datagram in an untagged frame (after a test edits the header). */
export function refreshIpChecksum(frame: Uint8Array): Uint8Array {
  const v = viewOf(frame);
  const hl = ipv4.headerLength(v, eth.HEADER_LEN);
  if (eth.HEADER_LEN + hl <= frame.length) ipv4.fillChecksum(v, eth.HEADER_LEN, hl);
  return frame;
}

// ------------------------------------------------------------- decoding

/** A frame sent by the gateway, decoded with every checksum verified. */
export interface DecodedFrame {
  bytes: Uint8Array;
  eth: eth.Header;
  arp: arp.Header | null;
  ip: ipv4.Header | null;
  icmp: icmp.Header | null;
  udp: udp.Header | null;
  /** The ICMP data, the UDP payload, or the IPv4 payload of other protocols. */
  payload: Uint8Array;
}

/**
 * Decodes a frame layer by layer. Throws (so the test fails with a reason)
 * when a layer does not parse, a checksum is wrong, or bytes trail the
 * datagram: the gateway must emit exact, valid frames.
 */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  const v = viewOf(frame);
  const e = eth.blank();
  if (!eth.parse(v, 0, frame.length, e)) throw new Error('ethernet: short');
  const d: DecodedFrame = { bytes: frame, eth: e, arp: null, ip: null, icmp: null, udp: null, payload: frame.subarray(e.payloadOffset) };
  if (e.ethertype === eth.ETHERTYPE_ARP) {
    const a = arp.blank();
    if (!arp.parse(v, e.payloadOffset, e.payloadLength, a)) throw new Error('arp: invalid');
    d.arp = a;
    return d;
  }
  if (e.ethertype !== eth.ETHERTYPE_IPV4) return d;
  const h = ipv4.blank();
  if (!ipv4.parse(v, e.payloadOffset, e.payloadLength, h)) throw new Error('ipv4: invalid (length or header checksum)');
  if (h.totalLength !== e.payloadLength) throw new Error(`ipv4: ${e.payloadLength - h.totalLength} bytes trail the datagram`);
  d.ip = h;
  d.payload = frame.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength);
  if (h.proto === ipv4.PROTO_ICMP) {
    const m = icmp.blank();
    if (!icmp.parse(v, h.payloadOffset, h.payloadLength, m)) throw new Error('icmp: short or bad checksum');
    d.icmp = m;
    d.payload = frame.subarray(m.payloadOffset, m.payloadOffset + m.payloadLength);
  } else if (h.proto === ipv4.PROTO_UDP) {
    const u = udp.blank();
    if (!udp.parse(v, h.payloadOffset, h.payloadLength, u)) throw new Error('udp: bad length');
    if (u.length !== h.payloadLength) throw new Error('udp: length differs from the IPv4 payload length');
    if (u.checksum === 0) throw new Error('udp: no checksum');
    if (!ok(sum(v, h.payloadOffset, u.length, pseudo4(h.src, h.dst, ipv4.PROTO_UDP, u.length)))) throw new Error('udp: bad checksum');
    d.udp = u;
    d.payload = frame.subarray(u.payloadOffset, u.payloadOffset + u.payloadLength);
  }
  return d;
}

/** Decodes the DHCP message in a decoded UDP frame. */
export function decodeDhcp(f: DecodedFrame): dhcp.Message {
  const m = dhcp.blank();
  if (!dhcp.parse(viewOf(f.payload), 0, f.payload.length, m)) throw new Error('dhcp: invalid');
  return m;
}

// ------------------------------------------------------------------ PRNG

/** A seeded xorshift32 PRNG: `next()` → u32, `int(n)` → 0..n-1. Deterministic per seed. */
export function xorshift32(seed: number) {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { next, int: (n: number): number => next() % n, chance: (p: number): boolean => next() / 0x100000000 < p };
}

// --------------------------------------------------------- gateway rig

/** A FramePort that keeps a copy of every frame (the gateway reuses its buffer). */
export class RecordingPort implements FramePort {
  readonly frames: Uint8Array[] = [];
  /** While true, sendFrame still records but reports congestion (as a full StreamPort). */
  congested = false;
  sendFrame(buf: Uint8Array, off: number, len: number): boolean {
    this.frames.push(buf.slice(off, off + len));
    return !this.congested;
  }
  /** Removes and returns everything recorded so far. */
  take(): Uint8Array[] {
    return this.frames.splice(0);
  }
  /** Removes the frames and decodes them. */
  takeDecoded(): DecodedFrame[] {
    return this.take().map(decodeFrame);
  }
}

/** One host socket the fake HostUdp handed out. */
export interface FakeFlow {
  host: string;
  port: number;
  /** Copies of the datagrams the gateway sent on it. */
  sent: Uint8Array[];
  closed: boolean;
  /** While true the socket's send queue is full: send() drops and returns false. */
  full: boolean;
  /** Inject a datagram from the peer. */
  reply(data: Uint8Array): void;
  /** Inject ECONNREFUSED (the peer's port is closed). */
  refuse(): void;
  /** Inject another socket error. */
  fail(err?: Error): void;
}

/** HostUdp that opens nothing: it records connects and lets tests inject the peer's side. */
export class FakeHostUdp implements HostUdp {
  readonly flows: FakeFlow[] = [];
  connect(host: string, port: number, events: { message(data: Uint8Array): void; refused(): void; error(err: Error): void }): HostUdpSocket {
    const f: FakeFlow = {
      host,
      port,
      sent: [],
      closed: false,
      full: false,
      reply: (data) => events.message(data),
      refuse: () => events.refused(),
      fail: (err = new Error('EHOSTUNREACH')) => events.error(err),
    };
    this.flows.push(f);
    return {
      send: (data) => {
        if (f.full) return false;
        f.sent.push(data.slice());
        return true;
      },
      close: () => {
        f.closed = true;
      },
    };
  }
}

/** One upstream exchange the fake DNS transport saw. */
export interface UpstreamCall {
  via: 'udp' | 'tcp';
  host: string;
  port: number;
  query: Uint8Array;
}

/**
 * A DNS Transport answering from a table of name → IPv4 (NXDOMAIN otherwise),
 * synchronously-resolved promises (so there is never an exchange to
 * cancel), the accept filter applied as the real transport does. No sockets.
 */
export class FakeDnsTransport implements Transport {
  readonly calls: UpstreamCall[] = [];
  constructor(readonly table: Record<string, string> = {}) {}
  udpQuery(host: string, port: number, query: Uint8Array, _timeoutMs: number, accept: ReplyFilter, _cancel?: Cancel): Promise<Uint8Array> {
    return this.answer('udp', host, port, query, accept);
  }
  tcpQuery(host: string, port: number, query: Uint8Array, _timeoutMs: number, accept: ReplyFilter, _cancel?: Cancel): Promise<Uint8Array> {
    return this.answer('tcp', host, port, query, accept);
  }
  private answer(via: 'udp' | 'tcp', host: string, port: number, query: Uint8Array, accept: ReplyFilter): Promise<Uint8Array> {
    this.calls.push({ via, host, port, query: query.slice() });
    const q = dnsPacket.decode(Buffer.from(query));
    const name = q.questions?.[0]?.name ?? '';
    const addr = this.table[name.toLowerCase()];
    const answers: Answer[] = addr === undefined ? [] : [{ name, type: 'A', ttl: 300, data: addr }];
    const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (addr === undefined ? 3 : 0);
    const r = new Uint8Array(dnsPacket.encode({ id: q.id, type: 'response', flags, questions: q.questions, answers }));
    return accept(r) ? Promise.resolve(r) : Promise.reject(new Error('fake transport: reply not accepted'));
  }
}

export interface RigOptions extends GatewayOptions {
  /** Upstream answers for forwarded names (ignored when isolated). */
  upstreamTable?: Record<string, string>;
  /** Upstream servers (default 192.0.2.53:53). */
  upstreams?: Upstream[];
  /** TCP NAT limits. */
  tcpLimits?: Partial<TcpNatLimits>;
  /** The host's own addresses (what the server reads from its interfaces). */
  hostAddresses?: Ip4[];
  /** Bounds of the seed service's HTTP side. */
  seedLimits?: Partial<SeedHttpLimits>;
  /** The host's own IPv6 addresses (RFC 5952 text). */
  hostAddresses6?: string[];
  /** false: a gateway without a ping relay (default: one on the fake backend `rig.ping`). */
  ping?: false;
}

let tokens = 0;

/**
 * A Gateway driven sans-IO: `send(frame)` hands a guest frame in on
 * `session` (over an exact-size buffer), `port` records the replies,
 * `clock.t` is the monotonic time in ms.
 */
/** A host TCP stream the test drives: records what the gateway wrote and how it closed. */
export interface FakeTcpStream extends HostStream {
  host: string;
  port: number;
  ev: HostStreamEvents;
  written: Uint8Array[];
  ended: boolean;
  wasReset: boolean;
  destroyed: boolean;
  paused: boolean;
  /** While true, writes stay queued (write returns false) until `release()`, as on a socket whose peer does not read. */
  hold: boolean;
  /** Completes the held writes (and a held end), then reports 'drain'. */
  release(): void;
  /** Bytes written and not yet completed. */
  queued(): number;
}

/** Fake TCP dialer for the gateway's TCP NAT: the test decides connect, refuse or silence. */
export class FakeHostTcp {
  readonly dials: FakeTcpStream[] = [];
  dial(host: string, port: number, ev: HostStreamEvents): HostStream {
    const held: Array<{ n: number; done: () => void }> = [];
    let endDone: (() => void) | null = null;
    const s: FakeTcpStream = {
      host,
      port,
      ev,
      written: [],
      ended: false,
      wasReset: false,
      destroyed: false,
      paused: false,
      hold: false,
      write: (chunk, done) => {
        s.written.push(Uint8Array.from(chunk));
        if (s.hold) {
          held.push({ n: chunk.length, done });
          return false;
        }
        queueMicrotask(done); // as a socket: done runs after write returns
        return true;
      },
      end: (done) => {
        s.ended = true;
        if (done === undefined) return;
        if (held.length > 0) endDone = done;
        else queueMicrotask(done);
      },
      reset: () => void (s.wasReset = true),
      destroy: () => void (s.destroyed = true),
      pause: () => void (s.paused = true),
      resume: () => void (s.paused = false),
      queued: () => held.reduce((a, w) => a + w.n, 0),
      release: () => {
        for (const w of held.splice(0)) w.done();
        const e = endDone;
        endDone = null;
        e?.();
        ev.drain();
      },
    };
    this.dials.push(s);
    return s;
  }
}

export class GatewayRig {
  readonly config: GatewayConfig;
  readonly clock = { t: 0 };
  readonly host = new FakeHostUdp();
  readonly tcp = new FakeHostTcp();
  /** Deadlines the TCP NAT asked to be woken at. */
  readonly timers: number[] = [];
  readonly transport: FakeDnsTransport;
  readonly dns: DnsService;
  readonly gateway: Gateway;
  readonly port = new RecordingPort();
  readonly session: Session;
  /** The cloud-init seed service (empty: TCP to the DNS address's port 80 is refused, as without it). */
  readonly seeds = new SeedRegistry({ now: () => this.clock.t, token: () => (++tokens).toString(16).padStart(32, 'a') });
  readonly seedHttp: SeedHttp;
  /** The ping relay's fake helper, and what the gateway warned. */
  readonly ping = new FakePingBackend();
  readonly warnings: Array<[string, string]> = [];

  constructor(opts: RigOptions = {}) {
    const { upstreamTable, upstreams, tcpLimits, hostAddresses, hostAddresses6, seedLimits, ping, ...gw } = opts;
    this.seedHttp = new SeedHttp(this.seeds, seedLimits);
    const hostSet: ReadonlySet<Ip4> = new Set(hostAddresses ?? []);
    // IPv4 tests see no IPv6 (router advertisements at sweeps): IPv6 is on when a test names --subnet6 or ipv6.
    this.config = resolveGatewayConfig({ ipv6: gw.subnet6 !== undefined, ...gw });
    this.transport = new FakeDnsTransport(upstreamTable);
    const now = () => this.clock.t;
    this.dns = new DnsService({
      hostIp: this.config.gatewayIp,
      gatewayIp: this.config.gatewayIp,
      dnsIp: this.config.dnsIp,
      records: this.config.dnsRecords,
      upstream: this.config.isolated ? null : fixedUpstreams(upstreams ?? [{ host: '192.0.2.53', port: 53 }]),
      transport: this.transport,
      now,
    });
    let seed = 0x1234567;
    this.gateway = new Gateway(this.config, {
      now,
      wallNow: now,
      hostUdp: this.host,
      dns: this.dns,
      dialTcp: (host, port, _timeoutMs, ev) => this.tcp.dial(host, port, ev),
      schedule: (at) => this.timers.push(at),
      random32: () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0),
      tcpLimits,
      hostAddresses: () => hostSet,
      seeds: { active: () => this.seeds.size > 0, stream: (ev, requester) => this.seedHttp.stream(ev, requester) },
      hostAddresses6: () => new Set(hostAddresses6 ?? []),
      ...(ping === false ? {} : { ping: { backend: this.ping.factory, warn: (kind: string, detail: string) => void this.warnings.push([kind, detail]) } }),
    });
    this.session = this.gateway.attach(this.port);
  }

  /** A second guest link (another connection, or another switch port on a segment) with its own recording port. */
  attachLink(): { session: Session; port: RecordingPort } {
    const port = new RecordingPort();
    return { session: this.gateway.attach(port), port };
  }

  /** Hands one frame to the gateway, as its own exact-size buffer. */
  send(frame: Uint8Array, session: Session = this.session): void {
    const copy = frame.slice();
    this.gateway.handleFrame(session, viewOf(copy), 0, copy.length);
  }

  /** Sends one frame and returns the decoded frames it caused synchronously on `port`. */
  exchange(frame: Uint8Array): DecodedFrame[] {
    this.send(frame);
    return this.port.takeDecoded();
  }

  /** The drop counters that are non-zero. */
  drops(): Partial<Record<string, number>> {
    return this.gateway.snapshot().drops;
  }
}

/** Lets pending promise chains and immediates run (async DNS answers). */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
