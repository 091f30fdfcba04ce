/**
 * Theory of operation: composing whole Ethernet frames the gateway sends to
 * guests, layer by layer into one caller-owned buffer (no concatenation):
 * Ethernet II (14) + IPv4 (20, no options, DF clear) + UDP or ICMP. The IPv4
 * identification comes from a per-gateway counter. Checksums are computed
 * over the bytes as written (RFC 768 UDP checksum with the pseudo-header,
 * RFC 792 ICMP checksum, RFC 791 header checksum).
 */
import * as eth from '../wire/ethernet.js';
import * as ipv4 from '../wire/ipv4.js';
import * as udp from '../wire/udp.js';
import * as icmp from '../wire/icmpv4.js';
import type { Ip4, Mac } from '../wire/addr.js';

/** Bytes of Ethernet + IPv4 + UDP headers. */
export const UDP_OVERHEAD = eth.HEADER_LEN + ipv4.HEADER_LEN + udp.HEADER_LEN;

export class FrameBuilder {
  private readonly ethH = eth.blank();
  private readonly ipH = ipv4.blank();
  private readonly udpH = udp.blank();
  private ipId = 0;

  constructor(private readonly srcMac: Mac) {}

  /** Writes Ethernet + IPv4 headers at `o`; returns the IPv4 payload offset. */
  private headers(v: DataView, o: number, dstMac: Mac, srcIp: Ip4, dstIp: Ip4, proto: number, payloadLen: number, ttl = 64): number {
    this.ethH.dst.set(dstMac);
    this.ethH.src.set(this.srcMac);
    this.ethH.vlan = -1;
    this.ethH.ethertype = eth.ETHERTYPE_IPV4;
    let p = o + eth.emit(this.ethH, v, o);
    const h = this.ipH;
    h.tos = 0;
    h.totalLength = ipv4.HEADER_LEN + payloadLen;
    h.id = this.ipId = (this.ipId + 1) & 0xffff;
    h.flags = 0;
    h.fragOffset = 0;
    h.ttl = ttl;
    h.proto = proto;
    h.src = srcIp;
    h.dst = dstIp;
    p += ipv4.emit(h, v, p);
    return p;
  }

  /**
   * A UDP datagram in a frame.
   * @returns frame length
   */
  udp(v: DataView, o: number, dstMac: Mac, srcIp: Ip4, srcPort: number, dstIp: Ip4, dstPort: number, payload: Uint8Array): number {
    const ulen = udp.HEADER_LEN + payload.length;
    const p = this.headers(v, o, dstMac, srcIp, dstIp, ipv4.PROTO_UDP, ulen);
    emitUdp(this.udpH, v, p, srcPort, dstPort, payload);
    udp.fillChecksum4(v, p, ulen, srcIp, dstIp);
    return p + ulen - o;
  }

  /**
   * An ICMP error quoting the offending IPv4 datagram (RFC 792; RFC 1812 §4.3.2.3).
   * @param q view holding the offending datagram, at `qo`, `qlen` bytes
   * @returns frame length
   */
  icmpError(v: DataView, o: number, dstMac: Mac, srcIp: Ip4, dstIp: Ip4, type: number, code: number, q: DataView, qo: number, qlen: number, mtu = 0): number {
    const len = icmp.errorLength(q, qo, qlen);
    const p = this.headers(v, o, dstMac, srcIp, dstIp, ipv4.PROTO_ICMP, len);
    icmp.emitError(type, code, v, p, q, qo, qlen, mtu);
    return p + len - o;
  }

  /**
   * An ICMP echo reply answering the request at `req` (payload copied).
   * @param ttl the reply's TTL (a relayed reply: as it reached the host, less one)
   * @returns frame length
   */
  echoReply(v: DataView, o: number, dstMac: Mac, srcIp: Ip4, dstIp: Ip4, id: number, seq: number, q: DataView, payloadOff: number, payloadLen: number, ttl = 64): number {
    const len = icmp.echoLength(payloadLen);
    const p = this.headers(v, o, dstMac, srcIp, dstIp, ipv4.PROTO_ICMP, len, ttl);
    new Uint8Array(v.buffer, v.byteOffset + p + icmp.HEADER_LEN, payloadLen).set(new Uint8Array(q.buffer, q.byteOffset + payloadOff, payloadLen));
    icmp.emitEcho(icmp.TYPE_ECHO_REPLY, id, seq, v, p, payloadLen);
    return p + len - o;
  }
}

/**
 * Writes a UDP header (checksum 0, for the caller to fill over its family's
 * pseudo-header) and the payload at `p`.
 * @param h a scratch header
 * @returns the UDP length
 */
export function emitUdp(h: udp.Header, v: DataView, p: number, srcPort: number, dstPort: number, payload: Uint8Array): number {
  h.srcPort = srcPort;
  h.dstPort = dstPort;
  h.length = udp.HEADER_LEN + payload.length;
  h.checksum = 0;
  udp.emit(h, v, p);
  new Uint8Array(v.buffer, v.byteOffset + p + udp.HEADER_LEN, payload.length).set(payload);
  return h.length;
}
