/**
 * Gateway DNS tests: UDP queries to the DNS address reach the real
 * DnsService, whose upstream Transport is a fake (no sockets); the answer
 * arrives asynchronously on the recording port, from 10.0.2.3:53 to the
 * guest's port. Also: a query split into IPv4 fragments is reassembled.
 */
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import * as ipv4 from '../wire/ipv4.js';
import * as tcp from '../wire/tcp.js';
import { GuestConn } from '../../test/helpers/guest-tcp.js';
import { formatMac } from '../wire/addr.js';
import { parseDnsRecord } from '../services/dns/local.js';
import {
  DNS_IP,
  GUEST2_MAC,
  GUEST_IP,
  GUEST_MAC,
  RecordingPort,
  GW_IP,
  GW_MAC,
  GatewayRig,
  dnsQuery,
  fragmentDatagram,
  icmpEcho,
  ip,
  ipv4Frame,
  ipv4Packet,
  mac,
  settle,
  udpDatagram,
  udpFrame,
  type DecodedFrame,
} from '../../test/helpers/frames.js';

type Dns = DecodedPacket & { rcode: string };

/** Sends a query from GUEST_IP:`port` to 10.0.2.3:53 and waits for the one reply frame. */
async function ask(rig: GatewayRig, name: string, type = 'A', port = 41000, id = 0x5151): Promise<{ f: DecodedFrame; dns: Dns }> {
  rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: port }, dnsQuery(name, type, id)));
  expect(rig.port.frames).toHaveLength(0); // the answer is asynchronous
  await settle();
  const out = rig.port.takeDecoded();
  expect(out).toHaveLength(1);
  const f = out[0]!;
  return { f, dns: dnsPacket.decode(Buffer.from(f.payload)) as Dns };
}

const answers = (d: Dns) => (d.answers ?? []).map((a) => `${a.type} ${String((a as { data?: unknown }).data)}`);

describe('Gateway DNS', () => {
  it('answers host.vmnet.internal with 10.0.2.2, from 10.0.2.3:53 to the guest port', async () => {
    const rig = new GatewayRig();
    const { f, dns } = await ask(rig, 'host.vmnet.internal', 'A', 41000, 0x7777);
    expect(formatMac(f.eth.dst)).toBe(formatMac(GUEST_MAC));
    expect(formatMac(f.eth.src)).toBe(formatMac(GW_MAC));
    expect(f.ip).toMatchObject({ src: DNS_IP, dst: GUEST_IP, proto: ipv4.PROTO_UDP });
    expect(f.udp).toMatchObject({ srcPort: 53, dstPort: 41000 });
    expect(dns).toMatchObject({ id: 0x7777, type: 'response', rcode: 'NOERROR' });
    expect(dns.flag_aa).toBe(true);
    expect(answers(dns)).toEqual(['A 10.0.2.2']);
    expect(rig.transport.calls).toEqual([]);
    expect(rig.dns.counters.local).toBe(1);
  });

  it('answers gateway. and dns.vmnet.internal', async () => {
    const rig = new GatewayRig();
    expect(answers((await ask(rig, 'gateway.vmnet.internal')).dns)).toEqual(['A 10.0.2.2']);
    expect(answers((await ask(rig, 'dns.vmnet.internal')).dns)).toEqual(['A 10.0.2.3']);
  });

  it('answers a user record from the config', async () => {
    const rig = new GatewayRig({ dnsRecords: [parseDnsRecord('db.test=10.0.2.100')] });
    const { dns } = await ask(rig, 'DB.test');
    expect(dns.rcode).toBe('NOERROR');
    expect(answers(dns)).toEqual(['A 10.0.2.100']);
    expect(rig.transport.calls).toEqual([]);
  });

  it('answers x.invalid with NXDOMAIN without asking upstream', async () => {
    const rig = new GatewayRig();
    const { dns } = await ask(rig, 'x.invalid');
    expect(dns.rcode).toBe('NXDOMAIN');
    expect(answers(dns)).toEqual([]);
    expect(rig.transport.calls).toEqual([]);
  });

  it('forwards other names to the upstream and passes its answer on with the guest ID', async () => {
    const rig = new GatewayRig({ upstreamTable: { 'example.com': '93.184.216.34' }, upstreams: [{ host: '192.0.2.53', port: 5353 }] });
    const { f, dns } = await ask(rig, 'example.com', 'A', 42000, 0x1234);
    expect(rig.transport.calls.map((c) => [c.via, c.host, c.port])).toEqual([['udp', '192.0.2.53', 5353]]);
    expect(dns).toMatchObject({ id: 0x1234, rcode: 'NOERROR' });
    expect(answers(dns)).toEqual(['A 93.184.216.34']);
    expect(f.ip).toMatchObject({ src: DNS_IP, dst: GUEST_IP });
    expect(f.udp).toMatchObject({ srcPort: 53, dstPort: 42000 });
    expect(rig.dns.counters.forwarded).toBe(1);
  });

  it('passes an upstream NXDOMAIN on', async () => {
    const rig = new GatewayRig();
    expect((await ask(rig, 'nope.example')).dns.rcode).toBe('NXDOMAIN');
    expect(rig.transport.calls).toHaveLength(1);
  });

  it('isolated: REFUSED for non-local names, local names still answered, nothing forwarded', async () => {
    const rig = new GatewayRig({ isolated: true, upstreamTable: { 'example.com': '93.184.216.34' } });
    const { dns } = await ask(rig, 'example.com');
    expect(dns.rcode).toBe('REFUSED');
    expect(answers(dns)).toEqual([]);
    expect(answers((await ask(rig, 'host.vmnet.internal')).dns)).toEqual(['A 10.0.2.2']);
    expect(rig.transport.calls).toEqual([]);
    expect(rig.host.flows).toEqual([]);
  });

  it('keeps concurrent queries apart (each answer to its own port)', async () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: 1111 }, dnsQuery('host.vmnet.internal', 'A', 1)));
    rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: 2222 }, dnsQuery('x.invalid', 'A', 2)));
    await settle();
    const out = rig.port.takeDecoded().map((f) => [f.udp!.dstPort, (dnsPacket.decode(Buffer.from(f.payload)) as Dns).rcode]);
    expect(out.sort()).toEqual([
      [1111, 'NOERROR'],
      [2222, 'NXDOMAIN'],
    ]);
  });

  it('sends nothing for a DNS response sent to it, and counts dns-dropped', async () => {
    const rig = new GatewayRig();
    const resp = new Uint8Array(dnsPacket.encode({ id: 9, type: 'response', questions: [{ name: 'a.test', type: 'A' }] }));
    rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53 }, resp));
    await settle();
    expect(rig.port.frames).toEqual([]);
    expect(rig.drops()).toEqual({ 'dns-dropped': 1 });
  });

  it('sends no answer to a session that closed while the query was pending', async () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53 }, dnsQuery('host.vmnet.internal')));
    rig.gateway.detach(rig.session);
    await settle();
    expect(rig.port.frames).toEqual([]);
  });

  it('does not treat port 53 at the gateway address as DNS (that is NAT to the host)', () => {
    const rig = new GatewayRig();
    rig.send(udpFrame({ dstIp: GW_IP, dstPort: 53 }, dnsQuery('host.vmnet.internal')));
    expect(rig.host.flows.map((f) => [f.host, f.port])).toEqual([['127.0.0.1', 53]]);
  });
});

describe('Gateway IPv4 fragment reassembly', () => {
  function fragments(order: 'forward' | 'reverse'): Uint8Array[] {
    const query = dnsQuery('host.vmnet.internal', 'A', 0x4242);
    const dg = udpDatagram(GUEST_IP, DNS_IP, 43000, 53, query);
    const whole = ipv4Packet({ src: GUEST_IP, dst: DNS_IP, proto: ipv4.PROTO_UDP, id: 0xabcd }, dg);
    const parts = fragmentDatagram(whole, [16]).map((p) => ipv4Frame(p));
    expect(parts).toHaveLength(2);
    return order === 'forward' ? parts : parts.reverse();
  }

  it.each(['forward', 'reverse'] as const)('answers a DNS query split in two fragments (%s order)', async (order) => {
    const rig = new GatewayRig();
    const [a, b] = fragments(order);
    rig.send(a!);
    expect(rig.gateway.snapshot().fragmentsPending).toBe(1);
    rig.send(b!);
    expect(rig.gateway.snapshot().fragmentsPending).toBe(0);
    await settle();
    const out = rig.port.takeDecoded();
    expect(out).toHaveLength(1);
    expect(out[0]!.udp).toMatchObject({ srcPort: 53, dstPort: 43000 });
    const dns = dnsPacket.decode(Buffer.from(out[0]!.payload)) as Dns;
    expect(dns.id).toBe(0x4242);
    expect(answers(dns)).toEqual(['A 10.0.2.2']);
    expect(rig.gateway.counters.dropped).toBe(0);
  });

  it('forgets a lone fragment after the reassembly timeout on sweep()', () => {
    const rig = new GatewayRig();
    rig.send(fragments('forward')[0]!);
    rig.clock.t = 14_999;
    rig.gateway.sweep();
    expect(rig.gateway.snapshot().fragmentsPending).toBe(1);
    rig.clock.t = 15_000;
    rig.gateway.sweep();
    expect(rig.gateway.snapshot().fragmentsPending).toBe(0);
  });

  it('reassembles a fragmented ping to the gateway', () => {
    const rig = new GatewayRig();
    const payload = Uint8Array.from({ length: 100 }, (_, i) => i);
    const echo = icmpEcho(5, 6, payload);
    const whole = ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_ICMP, id: 77 }, echo);
    const out = fragmentDatagram(whole, [32, 64]).flatMap((p) => rig.exchange(ipv4Frame(p)));
    expect(out).toHaveLength(1);
    expect(out[0]!.icmp).toMatchObject({ type: 0, id: 5, seq: 6 });
    expect(out[0]!.payload).toEqual(payload);
  });

  // Regression: fragments the reassembler throws away (overlap, too big,
  // eviction, timeout) are counted under the 'fragment' drop reason.
  it('counts fragments the reassembler drops (overlap) as fragment', () => {
    const rig = new GatewayRig();
    const dg = udpDatagram(GUEST_IP, DNS_IP, 43000, 53, new Uint8Array(64));
    const whole = ipv4Packet({ src: GUEST_IP, dst: DNS_IP, proto: ipv4.PROTO_UDP, id: 9 }, dg);
    const [a, b] = fragmentDatagram(whole, [32]);
    const overlapping = fragmentDatagram(whole, [24])[1]!; // starts at 24, inside a
    rig.send(ipv4Frame(a!));
    rig.send(ipv4Frame(overlapping));
    expect(rig.gateway.reassembler.counters.overlap).toBe(1);
    rig.send(ipv4Frame(b!));
    expect(rig.gateway.counters.drops.fragment).toBeGreaterThan(0);
  });

  it('does no reassembly work for a source outside the subnet (ipv4-src comes first)', () => {
    const rig = new GatewayRig();
    const whole = ipv4Packet({ src: ip('192.168.1.1'), dst: DNS_IP, proto: ipv4.PROTO_UDP }, new Uint8Array(64));
    rig.send(ipv4Frame(fragmentDatagram(whole, [32])[0]!));
    expect(rig.gateway.snapshot().fragmentsPending).toBe(0);
    expect(rig.drops()).toEqual({ 'ipv4-src': 1 });
  });
});

describe('Gateway DNS: each link has its share of the forwarding slots', () => {
  /** A rig whose upstream never answers (every forwarded query holds its slot), with a second link at 10.0.2.16. */
  function stalledUpstream() {
    const rig = new GatewayRig();
    rig.transport.udpQuery = () => new Promise<Uint8Array>(() => undefined);
    const port2 = new RecordingPort();
    const s2 = rig.gateway.attach(port2);
    const askFromSecond = () => rig.send(udpFrame({ src: GUEST2_MAC, srcIp: ip('10.0.2.16'), dstIp: DNS_IP, dstPort: 53, srcPort: 42000 }, dnsQuery('second.example')), s2);
    return { rig, askFromSecond };
  }

  it('UDP: one link flooding queries to a silent upstream leaves room for another link’s', async () => {
    const { rig, askFromSecond } = stalledUpstream();
    for (let i = 0; i < 300; i++) rig.send(udpFrame({ dstIp: DNS_IP, dstPort: 53, srcPort: 20000 + i }, dnsQuery(`f${i}.example`, 'A', i)));
    await settle();
    askFromSecond();
    await settle();
    expect(rig.dns.counters.forwarded).toBe(256 + 1); // a quarter of 1024 for the flood, and the other link's query
  });

  it('UDP: four links flooding a black-holed zone leave room for a fifth link’s query, which is answered', async () => {
    const rig = new GatewayRig({ upstreamTable: { 'quiet.example': '192.0.2.80' } });
    const answer = rig.transport.udpQuery.bind(rig.transport);
    // The upstream never answers names under hole.example (a slow or dead authority), answers the rest at once;
    // a cancelled exchange fails at once, as the real transport's does.
    rig.transport.udpQuery = (host, port, query, timeoutMs, accept, cancel) =>
      Buffer.from(query).includes(Buffer.from('\x04hole\x07example', 'latin1'))
        ? new Promise<Uint8Array>((_, reject) => cancel?.bind(reject))
        : answer(host, port, query, timeoutMs, accept);
    const links = [1, 2, 3, 4, 5].map((n) => ({ ...rig.attachLink(), src: mac(`52:54:00:00:00:0${n}`), srcIp: ip(`10.0.2.${20 + n}`) }));
    for (const l of links.slice(0, 4))
      for (let i = 0; i < 300; i++) rig.send(udpFrame({ src: l.src, srcIp: l.srcIp, dstIp: DNS_IP, dstPort: 53, srcPort: 20000 + i }, dnsQuery(`f${i}.hole.example`, 'A', i)), l.session);
    await settle();
    const quiet = links[4]!;
    rig.send(udpFrame({ src: quiet.src, srcIp: quiet.srcIp, dstIp: DNS_IP, dstPort: 53, srcPort: 42000 }, dnsQuery('quiet.example', 'A', 0x4242)), quiet.session);
    await settle();
    const out = quiet.port.takeDecoded();
    expect(out).toHaveLength(1);
    const dns = dnsPacket.decode(Buffer.from(out[0]!.payload)) as Dns;
    expect(dns).toMatchObject({ id: 0x4242, rcode: 'NOERROR' });
    expect(answers(dns)).toEqual(['A 192.0.2.80']);
    expect(rig.dns.counters.evicted).toBe(1);
    expect(rig.dns.counters.forwarded).toBe(4 * 256 + 1);
    // Each flooding link got SERVFAIL for its 44 queries beyond its cap; one of them also for its oldest query, whose slot the quiet link took.
    const servfails = links.slice(0, 4).map((l) => l.port.takeDecoded().filter((f) => (dnsPacket.decode(Buffer.from(f.payload)) as Dns).rcode === 'SERVFAIL'));
    expect(servfails.map((f) => f.length).sort()).toEqual([44, 44, 44, 45]);
    expect(rig.dns.counters).toMatchObject({ overload: 4 * 44, overloadGuest: 4 * 44, servfail: 4 * 44 + 1 });
  });

  it('DNS over TCP: one link pipelining on many connections leaves room for another link’s queries', async () => {
    const { rig, askFromSecond } = stalledUpstream();
    const wire: Uint8Array[] = [];
    for (let i = 0; i < 32; i++) {
      const q = dnsQuery(`t${i}.example`, 'A', i);
      wire.push(new Uint8Array([q.length >> 8, q.length & 255]), q);
    }
    const pipelined = new Uint8Array(Buffer.concat(wire));
    for (let c = 0; c < 9; c++) {
      // 9 connections of 32 queries each: more than the link's 256 slots
      const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 53, dialed: false, port: 43000 + c });
      await settle();
      g.establish();
      g.write(pipelined, false);
      g.send({ flags: tcp.ACK });
    }
    await settle();
    askFromSecond();
    await settle();
    expect(rig.dns.counters.forwarded).toBe(256 + 1);
  });
});
