/**
 * Theory of operation: composing whole IPv6 frames the gateway sends to
 * guests, the IPv6 sibling of frames.ts: Ethernet II (14) + IPv6 (40, no
 * extension headers) + UDP, ICMPv6 or NDP, written layer by layer into one
 * caller-owned buffer. The Ethernet destination of a multicast IPv6
 * destination is its 33:33 group MAC (RFC 2464 §7). Checksums use the IPv6
 * pseudo-header (RFC 8200 §8.1); the UDP checksum is never left zero.
 */
import * as eth from '../wire/ethernet.js';
import * as ipv6 from '../wire/ipv6.js';
import * as udp from '../wire/udp.js';
import * as icmpv6 from '../wire/icmpv6.js';
import * as ndp from '../wire/ndp.js';
import type { Ip6, Mac } from '../wire/addr.js';
import { emitUdp } from './frames.js';

/** Bytes of Ethernet + IPv6 + UDP headers. */
export const UDP6_OVERHEAD = eth.HEADER_LEN + ipv6.HEADER_LEN + udp.HEADER_LEN;

export class FrameBuilder6 {
  private readonly ethH = eth.blank();
  private readonly ipH = ipv6.blank();
  private readonly udpH = udp.blank();

  constructor(private readonly srcMac: Mac) {}

  /**
   * Writes Ethernet + IPv6 headers at `o`.
   * @returns the offset of the IPv6 payload
   */
  headers(v: DataView, o: number, dstMac: Mac, src: Ip6, dst: Ip6, nextHeader: number, payloadLen: number, hopLimit = 64): number {
    const e = this.ethH;
    e.dst.set(dstMac);
    e.src.set(this.srcMac);
    e.vlan = -1;
    e.ethertype = eth.ETHERTYPE_IPV6;
    let p = o + eth.emit(e, v, o);
    const h = this.ipH;
    h.payloadLength = payloadLen;
    h.nextHeader = nextHeader;
    h.hopLimit = hopLimit;
    h.src.set(src);
    h.dst.set(dst);
    p += ipv6.emit(h, v, p);
    return p;
  }

  /**
   * A UDP datagram in a frame.
   * @returns frame length
   */
  udp(v: DataView, o: number, dstMac: Mac, src: Ip6, srcPort: number, dst: Ip6, dstPort: number, payload: Uint8Array): number {
    const ulen = udp.HEADER_LEN + payload.length;
    const p = this.headers(v, o, dstMac, src, dst, ipv6.NH_UDP, ulen);
    emitUdp(this.udpH, v, p, srcPort, dstPort, payload);
    udp.fillChecksum6(v, p, ulen, src, dst);
    return p + ulen - o;
  }

  /**
   * An ICMPv6 error quoting the invoking packet (RFC 4443 §2.4(c)).
   * @param param the MTU (Packet Too Big), the pointer (Parameter Problem), else 0
   * @returns frame length
   */
  icmpError(v: DataView, o: number, dstMac: Mac, src: Ip6, dst: Ip6, type: number, code: number, param: number, q: DataView, qo: number, qlen: number): number {
    const len = icmpv6.errorLength(q, qo, qlen);
    const p = this.headers(v, o, dstMac, src, dst, ipv6.NH_ICMPV6, len);
    icmpv6.emitError(type, code, param, v, p, q, qo, qlen, src, dst);
    return p + len - o;
  }

  /**
   * An echo reply carrying the request's data (RFC 4443 §4.2).
   * @returns frame length
   */
  echoReply(v: DataView, o: number, dstMac: Mac, src: Ip6, dst: Ip6, id: number, seq: number, q: DataView, dataOff: number, dataLen: number, hopLimit = 64): number {
    const len = icmpv6.HEADER_LEN + dataLen;
    const p = this.headers(v, o, dstMac, src, dst, ipv6.NH_ICMPV6, len, hopLimit);
    new Uint8Array(v.buffer, v.byteOffset + p + icmpv6.HEADER_LEN, dataLen).set(new Uint8Array(q.buffer, q.byteOffset + dataOff, dataLen));
    icmpv6.emitEcho(icmpv6.TYPE_ECHO_REPLY, id, seq, v, p, dataLen, src, dst);
    return p + len - o;
  }

  /**
   * A Neighbor Discovery message, hop limit 255 (RFC 4861 §6.1.2, §7.1.2).
   * @returns frame length
   */
  ndp(v: DataView, o: number, dstMac: Mac, src: Ip6, dst: Ip6, m: ndp.Message): number {
    const len = ndp.length(m);
    const p = this.headers(v, o, dstMac, src, dst, ipv6.NH_ICMPV6, len, ndp.HOP_LIMIT);
    m.checksum = 0;
    ndp.emit(m, v, p);
    icmpv6.fillChecksum(v, p, len, src, dst);
    return p + len - o;
  }
}
