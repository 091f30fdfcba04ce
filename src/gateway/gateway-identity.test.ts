/**
 * Guest identity, sans-IO: a guest is its link (a Session: one stream
 * connection, or one switch port on a segment). A link may use only the
 * addresses it was leased or claimed first, and the MACs it used first;
 * frames from another link's address or MAC are dropped and counted, and so
 * is an ARP claiming them. Caps and shares (TCP flows, UDP flows, fragment
 * reassembly) are per link, so spoofing many sources buys nothing and one
 * guest cannot evict another's entries.
 */
import { describe, expect, it } from 'vitest';
import * as dhcp from '../wire/dhcpv4.js';
import * as ipv4 from '../wire/ipv4.js';
import * as tcp from '../wire/tcp.js';
import { formatMac } from '../wire/addr.js';
import { tcpOf } from '../../test/helpers/guest-tcp.js';
import {
  GUEST2_MAC,
  GUEST_IP,
  GUEST_MAC,
  GW_IP,
  GatewayRig,
  RecordingPort,
  settle,
  arpFrame,
  bytes,
  decodeDhcp,
  dhcpFrame,
  fragmentDatagram,
  ip,
  ipv4Frame,
  ipv4Packet,
  mac,
  pingFrame,
  tcpSegment,
  udpDatagram,
  udpFrame,
} from '../../test/helpers/frames.js';

const OUTSIDE = ip('198.51.100.1');
const GUEST2_IP = ip('10.0.2.16');
const EVIL_MAC = mac('02:00:00:00:0e:71');

/** Moves the fake clock and sweeps, as the server does every second (the neighbour table reads the clock at sweeps). */
function at(rig: GatewayRig, t: number): void {
  rig.clock.t = t;
  rig.gateway.sweep();
}

/** A rig with a second connection (link) attached. */
function twoLinks(opts: ConstructorParameters<typeof GatewayRig>[0] = {}) {
  const rig = new GatewayRig(opts);
  const port2 = new RecordingPort();
  const s2 = rig.gateway.attach(port2);
  return { rig, port2, s2 };
}

describe('Gateway guest identity: addresses belong to links', () => {
  it('an ARP from a second connection cannot take over the first guest’s NAT replies', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 5000, dstPort: 7000 }, bytes('mine')));
    expect(rig.host.flows).toHaveLength(1);
    // The attacker claims 10.0.2.15 with a gratuitous ARP (and a request), from its own link and MAC.
    rig.send(arpFrame({ src: EVIL_MAC, spa: GUEST_IP, tpa: GUEST_IP }), s2);
    rig.send(arpFrame({ src: EVIL_MAC, spa: GUEST_IP, tpa: GW_IP }), s2);
    expect(port2.take()).toEqual([]); // not even an ARP reply
    rig.host.flows[0]!.reply(bytes('for the first guest'));
    expect(port2.frames).toHaveLength(0);
    const back = rig.port.takeDecoded().filter((f) => f.udp !== null);
    expect(back).toHaveLength(1);
    expect(formatMac(back[0]!.eth.dst)).toBe(formatMac(GUEST_MAC));
    expect(rig.drops()).toEqual({ 'src-taken': 2 });
  });

  it('drops and counts IPv4 from an address another link holds; nothing reaches NAT', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(pingFrame({ dstIp: GW_IP }));
    rig.port.take();
    rig.send(udpFrame({ src: EVIL_MAC, dstIp: OUTSIDE, dstPort: 53 }, bytes('spoof')), s2);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2);
    expect(rig.host.flows).toHaveLength(0);
    expect(port2.frames).toHaveLength(0);
    expect(rig.drops()).toEqual({ 'src-taken': 2 });
    expect(rig.gateway.snapshot().neighbors).toEqual([{ ip: '10.0.2.15', mac: formatMac(GUEST_MAC) }]);
  });

  it('drops frames that use another link’s MAC, whatever the address', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(pingFrame({ dstIp: GW_IP }));
    rig.send(pingFrame({ src: GUEST_MAC, srcIp: GUEST2_IP, dstIp: GW_IP }), s2);
    expect(port2.frames).toHaveLength(0);
    expect(rig.drops()).toEqual({ 'src-taken': 1 });
  });

  it('a DHCP lease binds the address to the link that asked, before it sends anything from it', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(dhcpFrame({ type: dhcp.DISCOVER }));
    const offer = decodeDhcp(rig.port.takeDecoded()[0]!);
    rig.send(dhcpFrame({ type: dhcp.REQUEST, requestedIp: offer.yiaddr, serverId: GW_IP }));
    expect(decodeDhcp(rig.port.takeDecoded()[0]!).messageType).toBe(dhcp.ACK);
    rig.send(pingFrame({ src: EVIL_MAC, srcIp: offer.yiaddr, dstIp: GW_IP }), s2);
    expect(port2.frames).toHaveLength(0);
    expect(rig.drops()).toEqual({ 'src-taken': 1 });
  });

  it('an address is free again when its link closes', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(pingFrame({ dstIp: GW_IP }));
    rig.gateway.detach(rig.session);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2);
    expect(port2.takeDecoded().map((f) => f.ip!.dst)).toEqual([GUEST_IP]);
    expect(rig.drops()).toEqual({});
  });

  it('a claimed (static) address idle for longer than the neighbour age may be claimed by another link; a leased one is held while its lease lasts', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(pingFrame({ dstIp: GW_IP })); // static claim of 10.0.2.15 at t=0
    at(rig, 299_000);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2);
    expect(port2.take()).toEqual([]);
    at(rig, 299_000 + 300_001); // silent for longer than the age (300 s)
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2);
    expect(port2.takeDecoded().map((f) => f.ip!.dst)).toEqual([GUEST_IP]);

    // A lease: held for the lease time (3600 s) however quiet the guest is.
    const r = twoLinks();
    r.rig.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr: GUEST2_MAC }, { src: GUEST2_MAC }));
    const offer = decodeDhcp(r.rig.port.takeDecoded()[0]!);
    r.rig.send(dhcpFrame({ type: dhcp.REQUEST, chaddr: GUEST2_MAC, requestedIp: offer.yiaddr, serverId: GW_IP }, { src: GUEST2_MAC }));
    r.rig.port.take();
    at(r.rig, 3_000_000);
    r.rig.send(pingFrame({ src: EVIL_MAC, srcIp: offer.yiaddr, dstIp: GW_IP }), r.s2);
    expect(r.port2.frames).toHaveLength(0);
    at(r.rig, 3_600_000 + 300_001);
    r.rig.send(pingFrame({ src: EVIL_MAC, srcIp: offer.yiaddr, dstIp: GW_IP }), r.s2);
    expect(r.port2.takeDecoded().map((f) => f.ip!.dst)).toEqual([offer.yiaddr]);
  });

  it('a link at its bound that renumbers gets the new address once an old one has been idle for the age', () => {
    const rig = new GatewayRig();
    for (let i = 0; i < 8; i++) rig.send(pingFrame({ srcIp: ip(`10.0.2.${100 + i}`), dstIp: GW_IP }));
    at(rig, 200_000);
    for (let i = 1; i < 8; i++) rig.send(pingFrame({ srcIp: ip(`10.0.2.${100 + i}`), dstIp: GW_IP })); // .100 goes quiet
    rig.port.take();
    at(rig, 299_999);
    rig.send(pingFrame({ srcIp: ip('10.0.2.200'), dstIp: GW_IP }));
    expect(rig.port.take()).toEqual([]);
    at(rig, 300_000);
    rig.send(pingFrame({ srcIp: ip('10.0.2.200'), dstIp: GW_IP }));
    expect(rig.port.takeDecoded().map((f) => f.ip!.dst)).toEqual([ip('10.0.2.200')]);
    expect(rig.gateway.snapshot().neighbors.map((n) => n.ip)).not.toContain('10.0.2.100');
  });

  it('one link claims at most 8 addresses; beyond, its frames are dropped as src-limit', () => {
    const rig = new GatewayRig();
    for (let i = 0; i < 20; i++) rig.send(pingFrame({ srcIp: ip(`10.0.2.${100 + i}`), dstIp: GW_IP }));
    expect(rig.port.takeDecoded()).toHaveLength(8);
    expect(rig.drops()).toEqual({ 'src-limit': 12 });
    expect(rig.gateway.snapshot().neighbors).toHaveLength(8);
  });
});

describe('Gateway guest identity: caps and shares are per link', () => {
  it('the TCP per-guest cap holds however many source addresses one link uses', () => {
    const rig = new GatewayRig({ tcpLimits: { maxPerGuest: 3 } });
    for (let i = 0; i < 8; i++) {
      const src = ip(`10.0.2.${100 + i}`);
      rig.send(ipv4Frame(ipv4Packet({ src, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(src, OUTSIDE, 40000, 80, { seq: 1 }))));
    }
    expect(rig.tcp.dials).toHaveLength(3);
    expect(rig.gateway.tcpNat.counters.capped).toBe(5);
  });

  it('one guest filling the UDP NAT table cannot evict another guest’s flow', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 5000, dstPort: 123 }, bytes('a')));
    // The flooding link uses all 8 addresses it may hold: its share is the link's, not each address's.
    const forged = Array.from({ length: 8 }, (_, i) => ip(`10.0.2.${16 + i}`));
    for (let p = 0; p < 5000; p++) rig.send(udpFrame({ src: GUEST2_MAC, srcIp: forged[p % 8]!, dstIp: OUTSIDE, srcPort: 10000 + p, dstPort: 123 }, bytes('b')), s2);
    const mine = rig.host.flows[0]!;
    expect(mine.closed).toBe(false);
    mine.reply(bytes('still here'));
    expect(rig.port.takeDecoded().map((f) => f.payload)).toEqual([bytes('still here')]);
    // The flooding guest got at most its share, evicting its own oldest flows.
    const theirs = rig.gateway.udpNat.list().filter((f) => forged.includes(f.guestIp)).length;
    expect(theirs).toBeLessThanOrEqual(1024);
    expect(rig.gateway.udpNat.counters.flowsEvicted).toBe(5000 - theirs);
    expect(port2.frames).toHaveLength(0);
  });

  it('one guest sending fragment trains cannot evict another guest’s datagram in reassembly', () => {
    const { rig, s2 } = twoLinks();
    const dg = ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_UDP, id: 77 }, udpDatagram(GUEST_IP, OUTSIDE, 5000, 9, new Uint8Array(2000).fill(7)));
    const [first, last] = fragmentDatagram(dg, [1480]);
    rig.send(ipv4Frame(first!));
    for (let id = 0; id < 500; id++) {
      const src = ip(`10.0.2.${16 + (id % 8)}`); // all 8 addresses the link may hold: the share is the link's
      const other = ipv4Packet({ src, dst: OUTSIDE, proto: ipv4.PROTO_UDP, id }, udpDatagram(src, OUTSIDE, 6000, 9, new Uint8Array(2000)));
      rig.send(ipv4Frame(fragmentDatagram(other, [1480])[0]!, { src: GUEST2_MAC }), s2);
    }
    expect(rig.gateway.snapshot().fragmentsPending).toBe(16 + 1); // the flooding link's quarter of 64, and the first guest's
    rig.send(ipv4Frame(last!));
    expect(rig.host.flows.filter((f) => f.sent.length > 0 && f.sent[0]!.length === 2000 && f.sent[0]![0] === 7)).toHaveLength(1);
  });
});

describe('Gateway guest identity: a closed link leaves nothing behind', () => {
  it('its UDP flows close, so whoever takes its address next gets none of their replies', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 5000, dstPort: 123 }, bytes('a')));
    const flow = rig.host.flows[0]!;
    rig.gateway.detach(rig.session);
    expect(flow.closed).toBe(true);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // takes 10.0.2.15
    port2.take();
    flow.reply(bytes('late reply for the old guest'));
    expect(port2.frames).toHaveLength(0);
    // Frames a detached link still delivers claim nothing.
    rig.send(pingFrame({ srcIp: ip('10.0.2.99'), dstIp: GW_IP }));
    expect(rig.gateway.snapshot().neighbors.map((n) => n.ip)).toEqual(['10.0.2.15']);
  });

  it('its TCP connections are reset toward their hosts, so whoever takes its address next cannot speak in them', async () => {
    const { rig, port2, s2 } = twoLinks();
    const seg = (o: { seq: number; ack?: number; flags: number }, payload?: Uint8Array, src = GUEST_MAC) =>
      ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, OUTSIDE, 41000, 80, o, payload)), { src });
    rig.send(seg({ seq: 100, flags: tcp.SYN }));
    const host = rig.tcp.dials[0]!;
    host.ev.connected();
    const synack = rig.port.takeDecoded().map((f) => f.payload);
    const iss = new DataView(synack[0]!.buffer, synack[0]!.byteOffset).getUint32(4);
    rig.send(seg({ seq: 101, ack: iss + 1, flags: tcp.ACK }));
    expect(rig.gateway.tcpNat.size).toBe(1);
    rig.gateway.detach(rig.session);
    expect(host.wasReset).toBe(true);
    expect(rig.gateway.tcpNat.size).toBe(0);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // takes 10.0.2.15
    port2.take();
    rig.send(seg({ seq: 101, ack: iss + 1, flags: tcp.ACK | tcp.PSH }, bytes('injected'), EVIL_MAC), s2);
    await settle(); // guest bytes reach the host from a microtask
    expect(host.written).toEqual([]);
  });

  it('an address that moves to another link takes none of the old holder’s TCP connections with it', async () => {
    const { rig, port2, s2 } = twoLinks();
    const seg = (o: { seq: number; ack?: number; flags: number }, payload?: Uint8Array, src = GUEST_MAC) =>
      ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, OUTSIDE, 41001, 22, o, payload)), { src });
    rig.send(seg({ seq: 100, flags: tcp.SYN })); // a static guest opens a connection (say, an SSH session) and then goes quiet
    const host = rig.tcp.dials[0]!;
    host.ev.connected();
    const synack = rig.port.takeDecoded().map((f) => f.payload);
    const iss = new DataView(synack[0]!.buffer, synack[0]!.byteOffset).getUint32(4);
    rig.send(seg({ seq: 101, ack: iss + 1, flags: tcp.ACK }));
    at(rig, 300_001); // quiet for longer than the neighbour age: the address may move
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // another link takes 10.0.2.15
    port2.take();
    expect(rig.port.takeDecoded().filter((f) => f.ip?.proto === ipv4.PROTO_TCP).map((f) => tcpOf(f).h.flags & tcp.RST)).toEqual([tcp.RST]); // the old holder hears its connection is gone
    host.ev.data(bytes('the host speaks in the old connection'));
    expect(port2.takeDecoded().filter((f) => f.ip?.proto === ipv4.PROTO_TCP && f.payload.length > 20)).toEqual([]);
    rig.send(seg({ seq: 101, ack: iss + 1, flags: tcp.ACK | tcp.PSH }, bytes('injected'), EVIL_MAC), s2);
    await settle(); // guest bytes reach the host from a microtask
    expect(host.written).toEqual([]);
    expect(host.wasReset).toBe(true); // the old holder cannot go on: its host hears so
  });

  it('an address that moves to another link takes none of the old holder’s UDP flows with it', () => {
    const { rig, port2, s2 } = twoLinks();
    rig.send(udpFrame({ dstIp: OUTSIDE, srcPort: 5000, dstPort: 514 }, bytes('subscribe')));
    const flow = rig.host.flows[0]!;
    for (let t = 50_000; t <= 300_000; t += 50_000) {
      at(rig, t);
      flow.reply(bytes('a stream the guest listens to')); // keeps the flow alive; the guest itself sends nothing
    }
    rig.port.take();
    at(rig, 300_001);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // another link takes 10.0.2.15
    port2.take();
    flow.reply(bytes('for the old holder only'));
    expect(port2.frames).toHaveLength(0);
    expect(flow.closed).toBe(true);
  });

  it('a forwarded connection opened before its guest was known is reset with the guest’s link', () => {
    const { rig, port2, s2 } = twoLinks();
    // A host client reaches a forward to 10.0.2.15 before the guest has sent anything.
    let host: ReturnType<typeof rig.tcp.dial> | null = null;
    expect(rig.gateway.tcpNat.connectToGuest(GUEST_IP, 22, GW_IP, 50000, (ev) => (host = rig.tcp.dial('127.0.0.1', 50000, ev)))).toBe(true);
    rig.send(pingFrame({ dstIp: GW_IP })); // the guest comes up on its link
    rig.port.take();
    at(rig, 1_500);
    rig.gateway.tcpNat.runTimers(); // the SYN again, now to the guest
    const syn = rig.port.takeDecoded().map(tcpOf).find((x) => x.h.flags & tcp.SYN)!;
    expect(syn).toBeDefined();
    rig.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, GW_IP, 22, syn.h.srcPort, { seq: 7000, ack: syn.h.seq + 1, flags: tcp.SYN | tcp.ACK }))));
    expect(rig.gateway.tcpNat.size).toBe(1);
    rig.gateway.detach(rig.session);
    expect((host as unknown as { wasReset: boolean }).wasReset).toBe(true);
    expect(rig.gateway.tcpNat.size).toBe(0);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // another link takes 10.0.2.15
    port2.take();
    at(rig, 10_000);
    rig.gateway.tcpNat.runTimers();
    expect(port2.frames).toHaveLength(0);
  });

  it('congestion on the old holder’s link does not hold back the next holder’s connections', () => {
    const { rig, port2, s2 } = twoLinks();
    const open = (src: typeof GUEST_MAC, port: number, session = rig.session, out = rig.port) => {
      rig.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, OUTSIDE, port, 80, { seq: 100, flags: tcp.SYN })), { src }), session);
      const host = rig.tcp.dials.at(-1)!;
      host.ev.connected();
      const synack = out.takeDecoded().map(tcpOf).find((x) => x.h.flags & tcp.SYN)!;
      rig.send(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, OUTSIDE, port, 80, { seq: 101, ack: synack.h.seq + 1, flags: tcp.ACK })), { src }), session);
      return host;
    };
    const first = open(GUEST_MAC, 41002);
    rig.port.congested = true; // the first link stops reading, for good
    first.ev.data(bytes('to a link that is full'));
    rig.port.take();
    at(rig, 300_001);
    rig.send(pingFrame({ src: EVIL_MAC, dstIp: GW_IP }), s2); // another link takes 10.0.2.15
    port2.take();
    const second = open(EVIL_MAC, 41003, s2, port2);
    second.ev.data(bytes('for the new holder'));
    expect(port2.takeDecoded().map(tcpOf).filter((x) => x.payload.length > 0).map((x) => Buffer.from(x.payload).toString())).toEqual(['for the new holder']);
  });
});
