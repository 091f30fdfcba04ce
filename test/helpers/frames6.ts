/**
 * Theory of operation: test-side builders and a decoder for the IPv6 frames
 * a guest sends and a gateway answers (Ethernet + IPv6 [+ extension headers]
 * + ICMPv6 / NDP / UDP / DHCPv6 / TCP), written with the project's own
 * codecs (src/wire/*) so checksums and lengths are right unless a test
 * breaks them on purpose; the IPv6 sibling of frames.ts, whose Ethernet
 * helpers, MACs and TCP options it reuses.
 *
 *  - builders return fresh Uint8Arrays holding exactly one frame or packet;
 *    an IPv6 frame's Ethernet destination defaults to the multicast MAC of
 *    a multicast destination (RFC 2464 §7), else the gateway's MAC;
 *  - `decodeFrame6` parses a frame layer by layer, walks the extension
 *    headers, verifies every checksum (ICMPv6, UDP, TCP) and decodes NDP and
 *    DHCPv6; it throws with a reason when anything is wrong, so a test of the
 *    gateway's output fails loudly;
 *  - `readPcap` returns the frames of a classic pcap file, such as the
 *    captured fixture test/fixtures/ipv6/guest.pcap (see capture.sh there).
 *
 * Addresses: the fd00:76:6d6e::/64 prefix, ::2 and ::3 are those of the
 * capture, chosen for tests only; the gateway's default prefix is its own
 * decision. Link-local addresses are the EUI-64 ones of the MACs.
 */
import { readFileSync } from 'node:fs';
import * as eth from '../../src/wire/ethernet.js';
import * as ipv6 from '../../src/wire/ipv6.js';
import * as icmpv6 from '../../src/wire/icmpv6.js';
import * as ndp from '../../src/wire/ndp.js';
import * as udp from '../../src/wire/udp.js';
import * as tcp from '../../src/wire/tcp.js';
import * as dhcpv6 from '../../src/wire/dhcpv6.js';
import { eui64Address, isMulticast6, LINK_LOCAL_PREFIX6, multicastMac6, parseIp6, type Ip6, type Mac } from '../../src/wire/addr.js';
import { ethFrame, GUEST_MAC, GW_MAC, viewOf, type EthOptions, type TcpOptions } from './frames.js';

// ------------------------------------------------------------ addresses

/** IPv6 text → 16 bytes; throws on typos so tests fail loudly. */
export function ip6(text: string): Ip6 {
  const a = parseIp6(text);
  if (a === null) throw new Error(`bad test IPv6 address ${text}`);
  return a;
}

/** The test prefix (that of the captured fixtures). */
export const PREFIX6 = ip6('fd00:76:6d6e::');
/** The gateway's address in the test prefix. */
export const GW6 = ip6('fd00:76:6d6e::2');
/** The DNS address in the test prefix. */
export const DNS6 = ip6('fd00:76:6d6e::3');
/** The guest's SLAAC (EUI-64) address in the test prefix. */
export const GUEST6 = eui64Address(PREFIX6, GUEST_MAC);
/** The guest's link-local address, fe80::5054:ff:fe12:3456. */
export const GUEST_LL6 = eui64Address(LINK_LOCAL_PREFIX6, GUEST_MAC);
/** The gateway's link-local address, fe80::5055:aff:fe00:202. */
export const GW_LL6 = eui64Address(LINK_LOCAL_PREFIX6, GW_MAC);
/** All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1). */
export const ALL_DHCP6 = ip6('ff02::1:2');

// ------------------------------------------------------------- builders

export interface Ipv6Options {
  src: Ip6;
  dst: Ip6;
  nextHeader: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

/** An IPv6 packet (40-byte header) carrying `payload` (extension headers included, if any). */
export function ipv6Packet(o: Ipv6Options, payload: Uint8Array): Uint8Array {
  const h = ipv6.blank();
  h.src.set(o.src);
  h.dst.set(o.dst);
  h.nextHeader = o.nextHeader;
  h.hopLimit = o.hopLimit ?? 64;
  h.trafficClass = o.trafficClass ?? 0;
  h.flowLabel = o.flowLabel ?? 0;
  h.payloadLength = payload.length;
  const out = new Uint8Array(ipv6.HEADER_LEN + payload.length);
  ipv6.emit(h, viewOf(out), 0);
  out.set(payload, ipv6.HEADER_LEN);
  return out;
}

/** Ethernet + the given IPv6 packet; the destination MAC follows a multicast destination address (RFC 2464 §7). */
export function ipv6Frame(packet: Uint8Array, o: EthOptions = {}): Uint8Array {
  const dst = packet.subarray(ipv6.DST, ipv6.DST + 16);
  const dmac = o.dst ?? (isMulticast6(dst) ? multicastMac6(dst) : GW_MAC);
  return ethFrame(eth.ETHERTYPE_IPV6, packet, { ...o, dst: dmac });
}

/** One option of a Hop-by-Hop or Destination Options header. */
export interface TlvOption {
  type: number;
  data: Uint8Array;
}

/**
 * A Hop-by-Hop or Destination Options header (RFC 8200 §4.2): the options
 * in order (Pad1 as its single byte), padded to a multiple of 8 with Pad1 or
 * PadN.
 */
export function optionsHeader(nextHeader: number, options: TlvOption[]): Uint8Array {
  const body: number[] = [nextHeader, 0];
  for (const x of options) {
    if (x.type === ipv6.OPT_PAD1) body.push(ipv6.OPT_PAD1);
    else body.push(x.type, x.data.length, ...x.data);
  }
  const pad = (8 - (body.length % 8)) % 8;
  if (pad === 1) body.push(ipv6.OPT_PAD1);
  else if (pad > 1) body.push(ipv6.OPT_PADN, pad - 2, ...new Array<number>(pad - 2).fill(0));
  body[1] = body.length / 8 - 1;
  return Uint8Array.from(body);
}

/** A Routing header (RFC 8200 §4.4) with `data` after its 4 fixed bytes (zero-filled to 8 at least). */
export function routingHeader(nextHeader: number, routingType: number, segmentsLeft: number, data: Uint8Array = new Uint8Array(4)): Uint8Array {
  const n = (4 + data.length + 7) & ~7;
  const out = new Uint8Array(n);
  out.set([nextHeader, n / 8 - 1, routingType, segmentsLeft]);
  out.set(data, 4);
  return out;
}

/** A Fragment header (RFC 8200 §4.5). */
export function fragmentHeader(nextHeader: number, offset: number, more: boolean, id: number): Uint8Array {
  const out = new Uint8Array(ipv6.FRAGMENT_LEN);
  ipv6.emitFragment({ nextHeader, offset, more, id }, viewOf(out), 0);
  return out;
}

/**
 * Splits an IPv6 packet without extension headers into fragments at the
 * given payload offsets (each a multiple of 8), each with a Fragment header.
 */
export function fragmentPacket6(packet: Uint8Array, cuts: number[], id: number): Uint8Array[] {
  const v = viewOf(packet);
  const payload = packet.subarray(ipv6.HEADER_LEN);
  const edges = [0, ...cuts, payload.length];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const start = edges[i]!;
    const end = edges[i + 1]!;
    const frag = fragmentHeader(ipv6.nextHeader(v, 0), start, end < payload.length, id);
    const src = packet.subarray(ipv6.SRC, ipv6.SRC + 16);
    const dst = packet.subarray(ipv6.DST, ipv6.DST + 16);
    const body = new Uint8Array(frag.length + end - start);
    body.set(frag);
    body.set(payload.subarray(start, end), frag.length);
    out.push(ipv6Packet({ src, dst, nextHeader: ipv6.NH_FRAGMENT, hopLimit: ipv6.hopLimit(v, 0) }, body));
  }
  return out;
}

/** An ICMPv6 message: header with its 4-byte body word, `data` after it, checksum over src/dst. */
export function icmpv6Message(type: number, code: number, body: number, data: Uint8Array, src: Ip6, dst: Ip6): Uint8Array {
  const out = new Uint8Array(icmpv6.HEADER_LEN + data.length);
  const v = viewOf(out);
  v.setUint8(0, type);
  v.setUint8(1, code);
  v.setUint32(4, body >>> 0);
  out.set(data, icmpv6.HEADER_LEN);
  icmpv6.fillChecksum(v, 0, out.length, src, dst);
  return out;
}

/** An ICMPv6 echo message (request by default) with a valid checksum. */
export function echo6(id: number, seq: number, payload: Uint8Array, src: Ip6, dst: Ip6, type: number = icmpv6.TYPE_ECHO_REQUEST): Uint8Array {
  return icmpv6Message(type, 0, ((id & 0xffff) << 16) | (seq & 0xffff), payload, src, dst);
}

/** An NDP message encoded with the wire codec, checksum over src/dst. */
export function ndpMessage(m: ndp.Message, src: Ip6, dst: Ip6): Uint8Array {
  const out = new Uint8Array(ndp.length(m));
  const v = viewOf(out);
  ndp.emit({ ...m, checksum: 0 }, v, 0);
  icmpv6.fillChecksum(v, 0, out.length, src, dst);
  return out;
}

/** An NDP message with the given fields over a blank one. */
export function ndpRepr(type: number, fields: Partial<Omit<ndp.Message, 'options'>> = {}, options: Partial<ndp.Options> = {}): ndp.Message {
  return { ...ndp.blank(), type, ...fields, options: { ...ndp.blankOptions(), ...options } };
}

/** A UDP datagram over IPv6 with the pseudo-header checksum filled (or left 0 with `checksum: false`). */
export function udpDatagram6(src: Ip6, dst: Ip6, srcPort: number, dstPort: number, payload: Uint8Array, checksum = true): Uint8Array {
  const out = new Uint8Array(udp.HEADER_LEN + payload.length);
  const v = viewOf(out);
  udp.emit({ ...udp.blank(), srcPort, dstPort, length: out.length }, v, 0);
  out.set(payload, udp.HEADER_LEN);
  if (checksum) udp.fillChecksum6(v, 0, out.length, src, dst);
  return out;
}

/** A TCP segment over IPv6 (options from `h`, e.g. mss) with a valid checksum. */
export function tcpSegment6(src: Ip6, dst: Ip6, srcPort: number, dstPort: number, o: TcpOptions & { mss?: number } = {}, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = { ...tcp.blank(), srcPort, dstPort, seq: o.seq ?? 1000, ack: o.ack ?? 0, flags: o.flags ?? tcp.SYN, window: o.window ?? 64240, mss: o.mss ?? -1 };
  const hl = tcp.length(h);
  const out = new Uint8Array(hl + payload.length);
  const v = viewOf(out);
  tcp.emit(h, v, 0);
  out.set(payload, hl);
  tcp.fillChecksum6(v, 0, out.length, src, dst);
  return out;
}

/** A DHCPv6 message with the given fields over a blank one (an Information-Request by default). */
export function dhcpv6Repr(fields: Partial<Omit<dhcpv6.Message, 'options'>> = {}, options: Partial<dhcpv6.Options> = {}): dhcpv6.Message {
  return { ...dhcpv6.blank(), msgType: dhcpv6.INFORMATION_REQUEST, transactionId: 0x7b23c6, ...fields, options: { ...dhcpv6.blankOptions(), ...options } };
}

/** A DHCPv6 message encoded with the wire codec. */
export function dhcpv6Message(m: dhcpv6.Message): Uint8Array {
  const out = new Uint8Array(dhcpv6.length(m));
  dhcpv6.emit(m, viewOf(out), 0);
  return out;
}

export interface Guest6 extends EthOptions {
  srcIp?: Ip6;
  dstIp: Ip6;
  hopLimit?: number;
}

/** A whole guest frame: Ethernet + IPv6 + ICMPv6 echo request (from GUEST6 by default). */
export function ping6Frame(o: Guest6 & { id?: number; seq?: number }, payload: Uint8Array = new Uint8Array(8)): Uint8Array {
  const src = o.srcIp ?? GUEST6;
  const msg = echo6(o.id ?? 0x4242, o.seq ?? 1, payload, src, o.dstIp);
  return ipv6Frame(ipv6Packet({ src, dst: o.dstIp, nextHeader: ipv6.NH_ICMPV6, hopLimit: o.hopLimit ?? 64 }, msg), o);
}

/** A whole guest frame: Ethernet + IPv6 + NDP, hop limit 255 (from GUEST_LL6 by default). */
export function ndpFrame(m: ndp.Message, o: Guest6): Uint8Array {
  const src = o.srcIp ?? GUEST_LL6;
  const msg = ndpMessage(m, src, o.dstIp);
  return ipv6Frame(ipv6Packet({ src, dst: o.dstIp, nextHeader: ipv6.NH_ICMPV6, hopLimit: o.hopLimit ?? ndp.HOP_LIMIT }, msg), o);
}

/** A whole guest frame: Ethernet + IPv6 + UDP (from GUEST6:40000 by default). */
export function udp6Frame(o: Guest6 & { srcPort?: number; dstPort: number; checksum?: boolean }, payload: Uint8Array): Uint8Array {
  const src = o.srcIp ?? GUEST6;
  const dg = udpDatagram6(src, o.dstIp, o.srcPort ?? 40000, o.dstPort, payload, o.checksum ?? true);
  return ipv6Frame(ipv6Packet({ src, dst: o.dstIp, nextHeader: ipv6.NH_UDP, hopLimit: o.hopLimit ?? 64 }, dg), o);
}

/** A whole guest frame: Ethernet + IPv6 + TCP (from GUEST6:40000 by default). */
export function tcp6Frame(o: Guest6 & TcpOptions & { srcPort?: number; dstPort: number; mss?: number }, payload?: Uint8Array): Uint8Array {
  const src = o.srcIp ?? GUEST6;
  const seg = tcpSegment6(src, o.dstIp, o.srcPort ?? 40000, o.dstPort, o, payload);
  return ipv6Frame(ipv6Packet({ src, dst: o.dstIp, nextHeader: ipv6.NH_TCP, hopLimit: o.hopLimit ?? 64 }, seg), o);
}

/** A whole guest frame: a DHCPv6 client message from GUEST_LL6:546 to ff02::1:2:547 (RFC 8415 §7.1, §7.2). */
export function dhcpv6Frame(m: dhcpv6.Message, o: Partial<Guest6> = {}): Uint8Array {
  const src = o.srcIp ?? GUEST_LL6;
  const dst = o.dstIp ?? ALL_DHCP6;
  const dg = udpDatagram6(src, dst, dhcpv6.CLIENT_PORT, dhcpv6.SERVER_PORT, dhcpv6Message(m));
  return ipv6Frame(ipv6Packet({ src, dst, nextHeader: ipv6.NH_UDP, hopLimit: o.hopLimit ?? 1 }, dg), o);
}

// ------------------------------------------------------------- decoding

/** A frame decoded with every checksum verified. */
export interface DecodedFrame6 {
  bytes: Uint8Array;
  eth: eth.Header;
  ip: ipv6.Header;
  chain: ipv6.Chain;
  icmp: icmpv6.Header | null;
  ndp: ndp.Message | null;
  udp: udp.Header | null;
  dhcp: dhcpv6.Message | null;
  tcp: tcp.Header | null;
  /** The ICMPv6 data, the UDP or TCP payload, or the upper-layer bytes of other protocols. */
  payload: Uint8Array;
}

/**
 * Decodes an IPv6 frame layer by layer. Throws (so the test fails with a
 * reason) when a layer does not parse, a checksum is wrong, bytes trail the
 * packet, or the extension header walk asks for anything but going on.
 * Fragments are returned after the walk, undecoded above IPv6.
 */
export function decodeFrame6(frame: Uint8Array): DecodedFrame6 {
  const v = viewOf(frame);
  const e = eth.blank();
  if (!eth.parse(v, 0, frame.length, e)) throw new Error('ethernet: short');
  if (e.ethertype !== eth.ETHERTYPE_IPV6) throw new Error(`ethertype ${e.ethertype.toString(16)} is not IPv6`);
  const h = ipv6.blank();
  if (!ipv6.parse(v, e.payloadOffset, e.payloadLength, h)) throw new Error('ipv6: invalid (version or length)');
  if (ipv6.HEADER_LEN + h.payloadLength !== e.payloadLength) throw new Error(`ipv6: ${e.payloadLength - ipv6.HEADER_LEN - h.payloadLength} bytes trail the packet`);
  const c = ipv6.blankChain();
  if (!ipv6.walk(v, e.payloadOffset, e.payloadLength, c)) throw new Error('ipv6: malformed extension headers');
  if (c.action !== ipv6.ACTION_NONE) throw new Error(`ipv6: extension headers ask for action ${c.action} (code ${c.problemCode}, pointer ${c.problemPointer})`);
  const d: DecodedFrame6 = { bytes: frame, eth: e, ip: h, chain: c, icmp: null, ndp: null, udp: null, dhcp: null, tcp: null, payload: frame.subarray(c.offset, c.offset + c.length) };
  if (c.fragment) return d;
  if (c.proto === ipv6.NH_ICMPV6) {
    const m = icmpv6.blank();
    if (!icmpv6.parse(v, c.offset, c.length, m)) throw new Error('icmpv6: short');
    if (!icmpv6.verify(v, c.offset, c.length, h.src, h.dst)) throw new Error('icmpv6: bad checksum');
    d.icmp = m;
    d.payload = frame.subarray(m.payloadOffset, m.payloadOffset + m.payloadLength);
    if (m.type >= icmpv6.TYPE_ROUTER_SOLICIT && m.type <= icmpv6.TYPE_REDIRECT) {
      const n = ndp.blank();
      if (!ndp.parse(v, c.offset, c.length, n)) throw new Error('ndp: invalid');
      d.ndp = n;
    }
  } else if (c.proto === ipv6.NH_UDP) {
    const u = udp.blank();
    if (!udp.parse(v, c.offset, c.length, u)) throw new Error('udp: bad length');
    if (u.length !== c.length) throw new Error('udp: length differs from the IPv6 payload');
    if (!udp.verify6(v, c.offset, u.length, h.src, h.dst)) throw new Error('udp: missing or bad checksum');
    d.udp = u;
    d.payload = frame.subarray(u.payloadOffset, u.payloadOffset + u.payloadLength);
    if (u.srcPort === dhcpv6.CLIENT_PORT || u.srcPort === dhcpv6.SERVER_PORT || u.dstPort === dhcpv6.SERVER_PORT || u.dstPort === dhcpv6.CLIENT_PORT) {
      const m = dhcpv6.blank();
      if (!dhcpv6.parse(v, u.payloadOffset, u.payloadLength, m)) throw new Error('dhcpv6: invalid');
      d.dhcp = m;
    }
  } else if (c.proto === ipv6.NH_TCP) {
    const t = tcp.blank();
    if (!tcp.parse(v, c.offset, c.length, t)) throw new Error('tcp: invalid header');
    if (!tcp.verify6(v, c.offset, c.length, h.src, h.dst)) throw new Error('tcp: bad checksum');
    d.tcp = t;
    d.payload = frame.subarray(t.payloadOffset, t.payloadOffset + t.payloadLength);
  }
  return d;
}

// ---------------------------------------------------------------- pcap

/**
 * The frames of a classic pcap file (either byte order, microsecond or
 * nanosecond magic), in order; throws on anything else.
 * @param path the file
 */
export function readPcap(path: string): Uint8Array[] {
  const b = new Uint8Array(readFileSync(path));
  const v = viewOf(b);
  const magic = v.getUint32(0, true);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && v.getUint32(0, false) !== 0xa1b2c3d4 && v.getUint32(0, false) !== 0xa1b23c4d) throw new Error(`${path}: not a pcap file`);
  const frames: Uint8Array[] = [];
  for (let p = 24; p + 16 <= b.length; ) {
    const n = v.getUint32(p + 8, little);
    if (p + 16 + n > b.length) throw new Error(`${path}: truncated record`);
    frames.push(b.slice(p + 16, p + 16 + n));
    p += 16 + n;
  }
  return frames;
}

/** The captured fixture frames (test/fixtures/ipv6/guest.pcap), numbered from 1 as tshark does. */
export function capturedFrame(n: number): Uint8Array {
  captured ??= readPcap(new URL('../fixtures/ipv6/guest.pcap', import.meta.url).pathname);
  const f = captured[n - 1];
  if (f === undefined) throw new Error(`no frame ${n} in the IPv6 capture`);
  return f;
}
let captured: Uint8Array[] | undefined;

/** The IPv6 packet inside a captured frame (after the 14-byte Ethernet header). */
export const capturedPacket = (n: number): Uint8Array => capturedFrame(n).subarray(eth.HEADER_LEN);

/** A decoded Mac check helper: the 6 bytes as "aa:bb:…" text. */
export const macText = (m: Mac | null): string | null => (m === null ? null : Array.from(m.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':'));
