import { describe, expect, it } from 'vitest';
import * as icmpv6 from '../wire/icmpv6.js';
import * as ndp from '../wire/ndp.js';
import * as ipv6 from '../wire/ipv6.js';
import * as tcp from '../wire/tcp.js';
import * as dhcpv6 from '../wire/dhcpv6.js';
import { eqIp6, formatIp6, solicitedNode6 } from '../wire/addr.js';
import { Ip6Ids } from '../services/nat-addr.js';
import { Reassembler } from './ip-reassembly.js';

/** An Ethernet header (to decode a rebuilt packet as a frame). */
const f14 = () => [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0, 2, 2, 0x86, 0xdd];
import dnsPacket from 'dns-packet';
import { bytes, viewOf, GatewayRig, GUEST2_MAC, GUEST_MAC, GW_MAC, RecordingPort, settle } from '../../test/helpers/frames.js';
import {
  ALL_DHCP6,
  decodeFrame6,
  dhcpv6Frame,
  dhcpv6Repr,
  DNS6,
  echo6,
  fragmentPacket6,
  GUEST6,
  GUEST_LL6,
  GW6,
  GW_LL6,
  ip6,
  ipv6Frame,
  ipv6Packet,
  ndpFrame,
  ndpRepr,
  optionsHeader,
  ping6Frame,
  tcp6Frame,
  udp6Frame,
} from '../../test/helpers/frames6.js';
import { dnsQuery } from '../../test/helpers/frames.js';

const SUBNET6 = 'fd00:76:6d6e::/64';
const rig6 = (o: ConstructorParameters<typeof GatewayRig>[0] = {}) => new GatewayRig({ subnet6: SUBNET6, ...o });
const take6 = (r: GatewayRig) => r.port.take().map(decodeFrame6);
const text = (a: Uint8Array) => formatIp6(a);
/** Sends one guest frame and decodes what the gateway sent back at once. */
const ex6 = (r: GatewayRig, frame: Uint8Array) => (r.send(frame), take6(r));

describe('Gateway IPv6: neighbour discovery and router advertisements', () => {
  it('answers a router solicitation with an RA: SLAAC prefix, MTU, RDNSS, DNSSL, from its link-local address to all nodes', () => {
    const r = rig6();
    const [f, ...rest] = ex6(r, ndpFrame(ndpRepr(icmpv6.TYPE_ROUTER_SOLICIT, {}, { sourceLinkAddr: GUEST_MAC }), { dstIp: ip6('ff02::2') }));
    expect(rest).toEqual([]);
    expect(text(f!.ip.src)).toBe(text(GW_LL6));
    expect(text(f!.ip.dst)).toBe('ff02::1');
    expect(f!.ip.hopLimit).toBe(255);
    const m = f!.ndp!;
    expect(m.type).toBe(icmpv6.TYPE_ROUTER_ADVERT);
    expect(m.flags & ndp.RA_OTHER).toBe(ndp.RA_OTHER);
    expect(m.flags & ndp.RA_MANAGED).toBe(0);
    expect(m.routerLifetime).toBeGreaterThan(0);
    expect(m.options.mtu).toBe(1500);
    expect(Array.from(m.options.sourceLinkAddr!)).toEqual(Array.from(GW_MAC));
    const p = m.options.prefixes[0]!;
    expect([text(p.prefix), p.prefixLength, p.flags & (ndp.PREFIX_AUTONOMOUS | ndp.PREFIX_ON_LINK)]).toEqual(['fd00:76:6d6e::', 64, ndp.PREFIX_AUTONOMOUS | ndp.PREFIX_ON_LINK]);
    expect(m.options.rdnss[0]!.servers.map(text)).toEqual([text(DNS6)]);
    expect(m.options.dnssl[0]!.domains).toEqual(['vmnet.internal']);
    // A second solicitation within 3 s gets none (RFC 4861 §10 MIN_DELAY_BETWEEN_RAS); one later does.
    r.clock.t = 1000;
    expect(ex6(r, ndpFrame(ndpRepr(icmpv6.TYPE_ROUTER_SOLICIT), { dstIp: ip6('ff02::2') })).length).toBe(0);
    r.clock.t = 4000;
    expect(ex6(r, ndpFrame(ndpRepr(icmpv6.TYPE_ROUTER_SOLICIT), { dstIp: ip6('ff02::2') })).length).toBe(1);
  });

  it('sends unsolicited RAs from the sweep: at once to a new link, then every 300 s', () => {
    const r = rig6();
    r.gateway.sweep();
    expect(take6(r).map((f) => f.ndp?.type)).toEqual([icmpv6.TYPE_ROUTER_ADVERT]);
    r.clock.t = 299_000;
    r.gateway.sweep();
    expect(r.port.take()).toEqual([]);
    r.clock.t = 300_000;
    r.gateway.sweep();
    expect(take6(r).map((f) => f.ndp?.type)).toEqual([icmpv6.TYPE_ROUTER_ADVERT]);
  });

  it('answers neighbour solicitations for its addresses, solicited and unicast, with its MAC', () => {
    const r = rig6();
    for (const target of [GW6, DNS6, GW_LL6]) {
      const ns = ndpRepr(icmpv6.TYPE_NEIGHBOR_SOLICIT, { target }, { sourceLinkAddr: GUEST_MAC });
      const [f, ...rest] = ex6(r, ndpFrame(ns, { dstIp: solicitedNode6(target) }));
      expect(rest).toEqual([]);
      expect(f!.ndp!.type).toBe(icmpv6.TYPE_NEIGHBOR_ADVERT);
      expect(text(f!.ndp!.target)).toBe(text(target));
      expect(f!.ndp!.flags & ndp.NA_SOLICITED).toBe(ndp.NA_SOLICITED);
      expect(Array.from(f!.ndp!.options.targetLinkAddr!)).toEqual(Array.from(GW_MAC));
      expect(text(f!.ip.dst)).toBe(text(GUEST_LL6));
      expect(Array.from(f!.eth.dst)).toEqual(Array.from(GUEST_MAC));
    }
    expect(r.drops()).toEqual({});
  });

  it('DAD: a probe claims a free address silently; a probe from another link for it is answered for its holder, and its traffic refused', () => {
    const r = rig6();
    const dad = (target: Uint8Array, src: Uint8Array) => ndpFrame(ndpRepr(icmpv6.TYPE_NEIGHBOR_SOLICIT, { target }), { srcIp: ip6('::'), dstIp: solicitedNode6(target), src });
    expect(ex6(r, dad(GUEST6, GUEST_MAC))).toEqual([]);
    expect(r.gateway.snapshot().neighbors6).toEqual([{ ip: text(GUEST6), mac: '52:54:00:12:34:56' }]);
    // The same guest probing again (an interface restart) is not defended against itself.
    expect(ex6(r, dad(GUEST6, GUEST_MAC))).toEqual([]);
    const port2 = new RecordingPort();
    const s2 = r.gateway.attach(port2);
    r.send(dad(GUEST6, GUEST2_MAC), s2);
    const [na, ...rest] = port2.take().map(decodeFrame6);
    expect(rest).toEqual([]);
    expect(na!.ndp!.type).toBe(icmpv6.TYPE_NEIGHBOR_ADVERT);
    expect(text(na!.ndp!.target)).toBe(text(GUEST6));
    expect(text(na!.ip.dst)).toBe('ff02::1');
    expect(Array.from(na!.ndp!.options.targetLinkAddr!)).toEqual(Array.from(GUEST_MAC));
    r.send(ping6Frame({ dstIp: GW6, src: GUEST2_MAC }), s2);
    expect(port2.take()).toEqual([]);
    expect(r.drops()['src-taken']).toBe(1);
  });

  it('ignores NDP that fails RFC 4861 validation (hop limit below 255), counted', () => {
    const r = rig6();
    const ns = ndpRepr(icmpv6.TYPE_NEIGHBOR_SOLICIT, { target: GW6 }, { sourceLinkAddr: GUEST_MAC });
    expect(ex6(r, ndpFrame(ns, { dstIp: solicitedNode6(GW6), hopLimit: 64 }))).toEqual([]);
    expect(r.drops()).toEqual({ 'ndp-invalid': 1 });
  });
});

describe('Gateway IPv6: echo, DHCPv6, DNS', () => {
  it('answers echo requests to its global and link-local addresses', () => {
    const r = rig6();
    for (const [src, dst] of [
      [GUEST6, GW6],
      [GUEST_LL6, GW_LL6],
      [GUEST6, DNS6],
    ] as const) {
      const [f] = ex6(r, ping6Frame({ srcIp: src, dstIp: dst, id: 7, seq: 9 }, bytes('ping6!')));
      expect(f!.icmp!.type).toBe(icmpv6.TYPE_ECHO_REPLY);
      expect([f!.icmp!.id, f!.icmp!.seq, new TextDecoder().decode(f!.payload)]).toEqual([7, 9, 'ping6!']);
      expect([text(f!.ip.src), text(f!.ip.dst)]).toEqual([text(dst), text(src)]);
    }
  });

  it('answers a DHCPv6 Information-request with DNS and search list; a Solicit with NoAddrsAvail; ignores one with an IA', () => {
    const r = rig6();
    const duid = dhcpv6.duidLl(GUEST_MAC);
    const [f] = ex6(r, dhcpv6Frame(dhcpv6Repr({ msgType: dhcpv6.INFORMATION_REQUEST, transactionId: 0x123456 }, { clientId: duid, oro: [23, 24] })));
    const m = f!.dhcp!;
    expect([m.msgType, m.transactionId]).toEqual([dhcpv6.REPLY, 0x123456]);
    expect(m.options.dnsServers.map(text)).toEqual([text(DNS6)]);
    expect(m.options.domainSearch).toEqual(['vmnet.internal']);
    expect(Array.from(m.options.clientId!)).toEqual(Array.from(duid));
    expect(Array.from(m.options.serverId!)).toEqual(Array.from(dhcpv6.duidLl(GW_MAC)));
    expect([text(f!.ip.src), text(f!.ip.dst), f!.udp!.dstPort]).toEqual([text(GW_LL6), text(GUEST_LL6), dhcpv6.CLIENT_PORT]);
    const [adv] = ex6(r, dhcpv6Frame(dhcpv6Repr({ msgType: dhcpv6.SOLICIT, transactionId: 1 }, { clientId: duid })));
    expect([adv!.dhcp!.msgType, adv!.dhcp!.options.status?.code]).toEqual([dhcpv6.ADVERTISE, dhcpv6.STATUS_NO_ADDRS_AVAIL]);
    const ia = [{ iaid: 1, t1: 0, t2: 0, addresses: [], status: null, unknown: [] }];
    expect(ex6(r, dhcpv6Frame(dhcpv6Repr({ msgType: dhcpv6.INFORMATION_REQUEST, transactionId: 2 }, { clientId: duid, iaNa: ia })))).toEqual([]);
    expect(r.gateway.v6!.dhcp.counters).toEqual({ informationRequests: 1, solicits: 1, ignored: 1 });
    expect(eqIp6(ALL_DHCP6, ip6('ff02::1:2'))).toBe(true);
  });

  it('answers DNS at its IPv6 DNS address, from that address', async () => {
    const r = rig6({ upstreamTable: { 'example.com': '192.0.2.7' } });
    r.send(udp6Frame({ dstIp: DNS6, srcPort: 5353, dstPort: 53 }, dnsQuery('example.com')));
    await settle();
    const [f] = take6(r);
    expect([text(f!.ip.src), f!.udp!.srcPort, text(f!.ip.dst), f!.udp!.dstPort]).toEqual([text(DNS6), 53, text(GUEST6), 5353]);
    expect(dnsPacket.decode(Buffer.from(f!.payload)).answers?.map((a) => (a as { data: unknown }).data)).toEqual(['192.0.2.7']);
  });
});

describe('Gateway IPv6: NAT', () => {
  it('UDP to the gateway goes to the host ::1; replies come back from the gateway; a refusal is an ICMPv6 port unreachable', () => {
    const r = rig6();
    r.send(udp6Frame({ dstIp: GW6, srcPort: 40001, dstPort: 7000 }, bytes('hi')));
    const flow = r.host.flows[0]!;
    expect([flow.host, flow.port, new TextDecoder().decode(flow.sent[0])]).toEqual(['::1', 7000, 'hi']);
    flow.reply(bytes('back'));
    const [f] = take6(r);
    expect([text(f!.ip.src), f!.udp!.srcPort, text(f!.ip.dst), f!.udp!.dstPort, new TextDecoder().decode(f!.payload)]).toEqual([text(GW6), 7000, text(GUEST6), 40001, 'back']);
    flow.refuse();
    const [u] = take6(r);
    expect([u!.icmp!.type, u!.icmp!.code]).toEqual([icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_PORT_UNREACH]);
  });

  it('UDP to an outside address goes to that address; link-local, own-prefix and IPv4-mapped destinations are dropped', () => {
    const r = rig6();
    r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), dstPort: 9 }, bytes('x')));
    expect(r.host.flows.map((f) => [f.host, f.port])).toEqual([['2001:db8::7', 9]]);
    for (const dst of ['fe80::1', 'fd00:76:6d6e::99', '::ffff:127.0.0.1', '::1.2.3.4']) r.send(udp6Frame({ dstIp: ip6(dst), dstPort: 9 }, bytes('x')));
    expect(r.host.flows.length).toBe(1);
    expect(r.drops()['udp-refused']).toBe(4);
  });

  it('--no-host refuses the gateway address, ::1 and the host own IPv6 addresses, and lets the outside through', () => {
    const r = rig6({ hostAccess: false, hostAddresses6: ['2001:db8::5'] });
    for (const dst of [GW6, ip6('::1'), ip6('2001:db8::5')]) {
      const [u] = ex6(r, udp6Frame({ dstIp: dst, dstPort: 9 }, bytes('x')));
      expect([text(dst), u!.icmp!.type, u!.icmp!.code]).toEqual([text(dst), icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_ADMIN_PROHIBITED]);
      r.send(tcp6Frame({ dstIp: dst, dstPort: 80, flags: tcp.SYN, seq: 1 }));
      expect(take6(r).map((f) => f.tcp!.flags & tcp.RST)).toEqual([tcp.RST]);
    }
    r.send(udp6Frame({ dstIp: ip6('2001:db8::6'), dstPort: 9 }, bytes('x')));
    expect(r.host.flows.map((f) => f.host)).toEqual(['2001:db8::6']);
    expect(r.tcp.dials).toEqual([]);
  });

  it('--isolated answers UDP with administratively prohibited, and the flow table keys IPv4 and IPv6 apart', () => {
    const r = rig6({ isolated: true });
    r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), dstPort: 9 }, bytes('x')));
    const [u] = take6(r);
    expect([u!.icmp!.type, u!.icmp!.code]).toEqual([icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_ADMIN_PROHIBITED]);
  });

  it('TCP to the gateway dials the host ::1, with an MSS 20 bytes smaller than IPv4; data flows both ways', async () => {
    const r = rig6();
    r.send(tcp6Frame({ dstIp: GW6, dstPort: 8080, flags: tcp.SYN, seq: 100, mss: 1440 }));
    const dial = r.tcp.dials[0]!;
    expect([dial.host, dial.port]).toEqual(['::1', 8080]);
    dial.ev.connected();
    const [synAck] = take6(r);
    expect(synAck!.tcp!.flags).toBe(tcp.SYN | tcp.ACK);
    expect(synAck!.tcp!.mss).toBe(1440);
    expect([text(synAck!.ip.src), text(synAck!.ip.dst)]).toEqual([text(GW6), text(GUEST6)]);
    const iss = synAck!.tcp!.seq;
    r.send(tcp6Frame({ dstIp: GW6, dstPort: 8080, flags: tcp.ACK | tcp.PSH, seq: 101, ack: iss + 1 }, bytes('GET /')));
    await settle();
    expect(new TextDecoder().decode(dial.written[0])).toBe('GET /');
    dial.ev.data(bytes('200 OK'));
    await settle();
    const data = take6(r).find((f) => f.payload.length > 0)!;
    expect(new TextDecoder().decode(data.payload)).toBe('200 OK');
    expect(r.drops()).toEqual({});
  });

  it('TCP to an outside address dials it; a refused dial resets the guest at once', () => {
    const r = rig6();
    r.send(tcp6Frame({ dstIp: ip6('2001:db8::1'), dstPort: 80, flags: tcp.SYN, seq: 5 }));
    const dial = r.tcp.dials[0]!;
    expect([dial.host, dial.port]).toEqual(['2001:db8::1', 80]);
    dial.ev.refused(); // what the dialer reports for ECONNREFUSED, ENETUNREACH and EHOSTUNREACH
    const [rst] = take6(r);
    expect(rst!.tcp!.flags & tcp.RST).toBe(tcp.RST);
    expect(text(rst!.ip.src)).toBe('2001:db8::1');
  });

  it('forgets IPv6 addresses nothing uses at the sweep; keeps those of flows and neighbours', () => {
    const r = rig6();
    r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), dstPort: 9 }, bytes('x')));
    r.send(tcp6Frame({ dstIp: ip6('2001:db8::8'), dstPort: 1, flags: tcp.ACK, seq: 1, ack: 1 })); // stray: RST, nothing kept
    const ids = r.gateway.v6!.ids;
    expect(ids.size).toBe(3);
    r.gateway.sweep();
    expect(ids.size).toBe(2);
  });
});

describe('Gateway IPv6: fragments', () => {
  it('reassembles a fragmented echo request and answers it in fragments of the link MTU', () => {
    const r = rig6();
    const data = new Uint8Array(3000).map((_, i) => i & 0xff);
    const packet = ipv6Packet({ src: GUEST6, dst: GW6, nextHeader: ipv6.NH_ICMPV6 }, echo6(5, 6, data, GUEST6, GW6));
    const frags = fragmentPacket6(packet, [1448, 2896], 0x77);
    r.send(ipv6Frame(frags[2]!));
    r.send(ipv6Frame(frags[0]!));
    expect(r.port.take()).toEqual([]);
    r.send(ipv6Frame(frags[1]!));
    const out = take6(r);
    expect(out.length).toBe(3);
    for (const f of out) {
      expect(f.bytes.length).toBeLessThanOrEqual(1514);
      expect(f.chain.fragment).toBe(true);
      expect([text(f.ip.src), text(f.ip.dst)]).toEqual([text(GW6), text(GUEST6)]);
    }
    // Put back together by the same table, the reply carries the request's data.
    const back = new Reassembler();
    let whole: ReturnType<Reassembler['push6']> = null;
    for (const f of out) whole = back.push6(viewOf(f.bytes), 14, f.chain, 0) ?? whole;
    const d = decodeFrame6(Uint8Array.from([...f14(), ...whole!.buf]));
    expect([d.icmp!.type, d.icmp!.id, d.icmp!.seq]).toEqual([icmpv6.TYPE_ECHO_REPLY, 5, 6]);
    expect(d.payload).toEqual(data);
    expect(r.gateway.reassembler.counters.reassembled).toBe(1);
  });

  it('an overlapping fragment poisons its packet (RFC 5722), counted', () => {
    const r = rig6();
    const packet = ipv6Packet({ src: GUEST6, dst: GW6, nextHeader: ipv6.NH_ICMPV6 }, echo6(5, 6, new Uint8Array(2000), GUEST6, GW6));
    const [a, b] = fragmentPacket6(packet, [1024], 9);
    const overlap = fragmentPacket6(packet, [1016], 9)[1]!;
    r.send(ipv6Frame(a!));
    r.send(ipv6Frame(overlap));
    r.send(ipv6Frame(b!));
    expect(r.port.take()).toEqual([]);
    expect(r.drops().fragment).toBeGreaterThan(0);
  });
});

describe('Gateway IPv6: errors and bounds', () => {
  it('hop limit 1 toward the outside: time exceeded from the gateway', () => {
    const r = rig6();
    r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), dstPort: 9, hopLimit: 1 }, bytes('x')));
    const [f] = take6(r);
    expect([f!.icmp!.type, f!.icmp!.code, text(f!.ip.src)]).toEqual([icmpv6.TYPE_TIME_EXCEEDED, icmpv6.CODE_HOP_LIMIT, text(GW6)]);
    expect(r.host.flows).toEqual([]);
  });

  it('an unknown option whose action asks for it gets a Parameter Problem pointing at it', () => {
    const r = rig6();
    const hbh = optionsHeader(ipv6.NH_NONE, [{ type: 0x80 | 0x3e, data: new Uint8Array(4) }]);
    const [f] = ex6(r, ipv6Frame(ipv6Packet({ src: GUEST6, dst: GW6, nextHeader: ipv6.NH_HOP_BY_HOP }, hbh)));
    expect([f!.icmp!.type, f!.icmp!.code, f!.icmp!.pointer]).toEqual([icmpv6.TYPE_PARAM_PROBLEM, ipv6.PROBLEM_OPTION, 42]);
    expect(r.drops()).toEqual({ 'ipv6-invalid': 1 });
  });

  it('refuses sources outside the prefix and the gateway own addresses; --no-ipv6 drops IPv6 as before', () => {
    const r = rig6();
    for (const src of [ip6('2001:db8::1'), GW6, ip6('ff02::1')]) r.send(ping6Frame({ srcIp: src, dstIp: GW6 }));
    expect(r.port.take()).toEqual([]);
    expect(r.drops()).toEqual({ 'ipv6-src': 3 });
    const off = new GatewayRig({ ipv6: false });
    off.send(ping6Frame({ dstIp: ip6('fd0d:b4b8:6ba1::2') }));
    expect(off.port.take()).toEqual([]);
    expect(off.drops()).toEqual({ ipv6: 1 });
  });

  it('sends no error about a frame to a group MAC, nor to the unspecified address (RFC 4443 §2.4(e))', () => {
    const r = rig6();
    r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), dstPort: 9, hopLimit: 1, dst: Uint8Array.of(0x33, 0x33, 0, 0, 0, 1) }, bytes('x')));
    r.send(udp6Frame({ srcIp: ip6('::'), dstIp: ip6('2001:db8::7'), dstPort: 9, hopLimit: 1 }, bytes('x')));
    expect(r.port.take()).toEqual([]);
    expect(r.drops()).toEqual({ 'ttl-expired': 2 });
  });

  it('a full address table is swept at once (at most every 100 ms): addresses nothing keeps make room, counted while full', () => {
    const r = rig6();
    const v6 = r.gateway.v6!;
    (v6 as unknown as { ids: Ip6Ids }).ids = new Ip6Ids(3); // the guest's own address, and room for two more
    r.send(ping6Frame({ dstIp: GW6 }));
    const stray = (n: number) => tcp6Frame({ dstIp: ip6(`2001:db8::${n}`), dstPort: 1, flags: tcp.ACK, seq: 1, ack: 1 });
    r.send(stray(1));
    r.send(stray(2));
    r.send(stray(3)); // full: swept at once (the strays' addresses are kept by nothing), then interned
    expect(r.drops()).toEqual({});
    r.send(stray(4));
    r.send(stray(5)); // full again within 100 ms: dropped and counted
    expect(r.drops()).toEqual({ 'ipv6-full': 1 });
    r.clock.t += 100;
    r.send(stray(6));
    expect(r.drops()).toEqual({ 'ipv6-full': 1 });
    expect(r.port.take().filter((f) => decodeFrame6(f).tcp !== null).length).toBe(5); // the RSTs of the strays let through
  });

  it('rate-limits ICMPv6 errors (RFC 4443 §2.4(f))', () => {
    const r = rig6({ isolated: true });
    for (let i = 0; i < 50; i++) r.send(udp6Frame({ dstIp: ip6('2001:db8::7'), srcPort: 1000 + i, dstPort: 9 }, bytes('x')));
    expect(r.port.take().length).toBe(10);
    expect(r.gateway.v6!.errorsLimited).toBe(40);
  });

  it('a frame of a link whose address table is full of IPv6 addresses is refused at the per-link bound', () => {
    const r = rig6();
    for (let i = 1; i <= 9; i++) r.send(ping6Frame({ srcIp: ip6(`fd00:76:6d6e::${i + 100}`), dstIp: GW6 }));
    expect(r.port.take().length).toBe(8);
    expect(r.drops()).toEqual({ 'src-limit': 1 });
  });
});

describe('Gateway IPv6: ping to the outside', () => {
  const OUT6 = ip6('2001:db8::99');
  const HOST6 = ip6('2001:db8::2');
  const ROUTER6 = ip6('2001:db8::1');

  it('relays an echo request with the hop limit less one; the reply comes back from the address pinged with the guest identifier', () => {
    const r = rig6();
    const frame = ping6Frame({ dstIp: OUT6, id: 0x4321, seq: 3, hopLimit: 9 }, bytes('out6'));
    r.send(frame);
    expect(r.ping.opens.map((o) => [o.family, text(o.dst), o.ttl])).toEqual([[6, text(OUT6), 8]]);
    expect(r.ping.sends[0]!.message).toEqual(frame.subarray(14 + 40));
    r.ping.opened(HOST6);
    r.ping.replyTo(r.ping.sends[0]!, { ttl: 60, local: HOST6 });
    const [f, ...rest] = take6(r);
    expect(rest).toEqual([]);
    expect([f!.icmp!.type, f!.icmp!.id, f!.icmp!.seq, new TextDecoder().decode(f!.payload)]).toEqual([icmpv6.TYPE_ECHO_REPLY, 0x4321, 3, 'out6']);
    expect([text(f!.ip.src), text(f!.ip.dst), f!.ip.hopLimit]).toEqual([text(OUT6), text(GUEST6), 59]);
  });

  it('relays a router error quoting the guest request; refuses multicast, own-prefix and (isolated) everything', () => {
    const r = rig6();
    const frame = ping6Frame({ dstIp: OUT6, id: 7, seq: 1, hopLimit: 2 });
    r.send(frame);
    r.ping.opened(HOST6);
    r.ping.errorAbout(r.ping.sends[0]!, icmpv6.TYPE_TIME_EXCEEDED, 0, ROUTER6, { local: HOST6 });
    const [f] = take6(r);
    expect([f!.icmp!.type, text(f!.ip.src), text(f!.ip.dst)]).toEqual([icmpv6.TYPE_TIME_EXCEEDED, text(ROUTER6), text(GUEST6)]);
    expect(f!.payload.subarray(40, 48)).toEqual(frame.subarray(14 + 40, 14 + 48)); // after the quoted IPv6 header: the request as the guest sent it
    for (const dst of ['ff02::1', 'fd00:76:6d6e::77', 'fe80::9']) r.send(ping6Frame({ dstIp: ip6(dst) }));
    expect(r.ping.sends.length).toBe(1);
    expect(r.drops()['ping-refused']).toBe(3);
    const iso = rig6({ isolated: true });
    const [u] = ex6(iso, ping6Frame({ dstIp: OUT6 }));
    expect([u!.icmp!.type, u!.icmp!.code]).toEqual([icmpv6.TYPE_DEST_UNREACH, icmpv6.CODE_ADMIN_PROHIBITED]);
    expect(iso.ping.opens).toEqual([]);
  });
});
