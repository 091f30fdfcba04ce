import { describe, expect, it } from 'vitest';
import * as dhcp from '../wire/dhcpv4.js';
import * as addr from '../wire/addr.js';
import { DhcpServer, LeaseState } from './dhcp-server.js';
import type { DhcpServerConfig, Lease, Reply } from './dhcp-server.js';
import { hex, viewOf } from '../../test/helpers/round-trip.js';

const ip = (s: string): number => {
  const a = addr.parseIp4(s);
  if (a === -1) throw new Error(s);
  return a;
};
const fmt = addr.formatIp4;

const SERVER = ip('10.0.2.2');
const DNS = ip('10.0.2.3');

/** The busybox 1.35.0 udhcpc DISCOVER also used in wire/dhcpv4.test.ts (MAC 52:54:00:12:34:56). */
const UDHCPC_DISCOVER =
  '010106009c9d6111000000000000000000000000000000000000000052540012345600000000000000000000' +
  '00'.repeat(192) +
  '63825363 350101 39020240 37070103060c0f1c2a 3c0c756468637020312e33352e30 3d0701525400123456 ff' +
  '00'.repeat(20);

/** Emits then parses, so every message the server sees went through the codec. */
function wire(m: dhcp.Message): dhcp.Message {
  const b = new Uint8Array(dhcp.length(m));
  dhcp.emit(m, viewOf(b), 0);
  const out = dhcp.blank();
  expect(dhcp.parse(viewOf(b), 0, b.length, out)).toBe(true);
  return out;
}

interface Send {
  ciaddr?: number;
  giaddr?: number;
  flags?: number;
  requestedIp?: number;
  serverId?: number;
  hostname?: string;
  clientId?: boolean;
  params?: number[];
  maxSize?: number;
}

/** A client message as udhcpc would build it (client id 01+MAC unless clientId: false). */
function client(type: number, mac: string, s: Send = {}): dhcp.Message {
  const m = dhcp.blank();
  m.op = dhcp.BOOTREQUEST;
  m.htype = 1;
  m.hlen = 6;
  m.xid = 0x1234;
  m.flags = s.flags ?? 0;
  m.ciaddr = s.ciaddr ?? 0;
  m.giaddr = s.giaddr ?? 0;
  m.chaddr = addr.parseMac(mac)!;
  m.messageType = type;
  const o = m.options;
  o.requestedIp = s.requestedIp ?? null;
  o.serverId = s.serverId ?? null;
  o.hostname = s.hostname ?? null;
  if (s.clientId !== false) o.clientId = Uint8Array.of(1, ...m.chaddr);
  o.paramRequest = s.params ?? [1, 3, 6, 12, 15, 28, 42];
  o.maxMessageSize = s.maxSize ?? 576;
  return wire(m);
}

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';

function setup(over: Partial<DhcpServerConfig> = {}) {
  const clock = { t: 1_000_000 };
  const events: Lease[] = [];
  const cfg: DhcpServerConfig = {
    serverIp: SERVER,
    subnet: { net: ip('10.0.2.0'), prefix: 24 },
    router: SERVER,
    dns: [DNS],
    poolStart: ip('10.0.2.15'),
    poolEnd: ip('10.0.2.30'),
    mtu: 1500,
    domain: 'example',
    reserved: [ip('10.0.2.4')],
    onLease: (l) => events.push(l),
    ...over,
  };
  const s = new DhcpServer(cfg, () => clock.t);
  const handle = (m: dhcp.Message): Reply | null => {
    const r = s.handle(m, clock.t);
    if (r !== null) {
      expect(dhcp.length(r.msg)).toBeLessThanOrEqual(Math.max(576, m.options.maxMessageSize ?? 576) - 28);
      r.msg = wire(r.msg); // replies must survive the codec too
    }
    return r;
  };
  /** DISCOVER + REQUEST; returns the ACK. */
  const dora = (mac: string, s2: Send = {}): Reply => {
    const offer = handle(client(dhcp.DISCOVER, mac, s2))!;
    expect(offer.msg.messageType).toBe(dhcp.OFFER);
    const ack = handle(client(dhcp.REQUEST, mac, { ...s2, serverId: SERVER, requestedIp: offer.msg.yiaddr }))!;
    expect(ack.msg.messageType).toBe(dhcp.ACK);
    return ack;
  };
  const advance = (sec: number) => {
    clock.t += sec * 1000;
  };
  return { s, clock, events, handle, dora, advance };
}

describe('DhcpServer DORA', () => {
  it('answers the real udhcpc DISCOVER and its REQUEST (RFC 2131 §4.3.1-2)', () => {
    const { s, handle, events, clock } = setup();
    const b = hex(UDHCPC_DISCOVER);
    const disc = dhcp.blank();
    expect(dhcp.parse(viewOf(b), 0, b.length, disc)).toBe(true);

    const offer = handle(disc)!;
    expect(offer.broadcast).toBe(false); // udhcpc leaves the broadcast bit clear
    expect(fmt(offer.dstIp)).toBe('10.0.2.15');
    expect(addr.formatMac(offer.dstMac!)).toBe('52:54:00:12:34:56');
    expect(offer.dstPort).toBe(68);
    const m = offer.msg;
    expect(m.op).toBe(dhcp.BOOTREPLY);
    expect(m.xid).toBe(0x9c9d6111);
    expect(m.messageType).toBe(dhcp.OFFER);
    expect(fmt(m.yiaddr)).toBe('10.0.2.15');
    expect(m.ciaddr).toBe(0);
    const o = m.options;
    expect(o.serverId).toBe(SERVER);
    expect(o.leaseTime).toBe(3600);
    expect(o.t1).toBe(1800);
    expect(o.t2).toBe(3150);
    expect(fmt(o.subnetMask!)).toBe('255.255.255.0');
    expect(o.routers).toEqual([SERVER]);
    expect(o.dns).toEqual([DNS]);
    expect(o.domainName).toBe('example');
    expect(o.mtu).toBe(1500); // sent although udhcpc did not ask for 26
    expect(fmt(o.broadcast!)).toBe('10.0.2.255');
    expect(Array.from(o.clientId!)).toEqual([1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]); // RFC 6842
    expect(o.staticRoutes).toEqual([]);
    expect(s.leaseFor('52:54:00:12:34:56')!.state).toBe(LeaseState.OFFERED);

    const req = client(dhcp.REQUEST, '52:54:00:12:34:56', { serverId: SERVER, requestedIp: m.yiaddr, hostname: 'vm1' });
    req.xid = m.xid;
    const ack = handle(req)!;
    expect(ack.msg.messageType).toBe(dhcp.ACK);
    expect(fmt(ack.msg.yiaddr)).toBe('10.0.2.15');
    expect(ack.msg.options.hostname).toBe('vm1');
    expect(fmt(ack.dstIp)).toBe('10.0.2.15');
    const lease = s.leaseFor('52:54:00:12:34:56')!;
    expect(lease).toEqual({ mac: '52:54:00:12:34:56', clientId: '01525400123456', ip: ip('10.0.2.15'), hostname: 'vm1', expires: clock.t + 3_600_000, state: LeaseState.BOUND });
    expect(events).toEqual([lease]);
    expect(s.leases()).toEqual([lease]);
    expect(s.counters).toMatchObject({ discover: 1, offer: 1, request: 1, ack: 1, nak: 0 });
  });

  it('gives each client its own address and skips excluded ones', () => {
    const { dora } = setup({ poolStart: ip('10.0.2.2'), poolEnd: ip('10.0.2.6') });
    // .2 server/router, .3 dns, .4 reserved
    expect(fmt(dora(A).msg.yiaddr)).toBe('10.0.2.5');
    expect(fmt(dora(B).msg.yiaddr)).toBe('10.0.2.6');
  });

  it('broadcasts when the client sets the broadcast bit (RFC 2131 §4.1)', () => {
    const { handle } = setup();
    const r = handle(client(dhcp.DISCOVER, A, { flags: dhcp.FLAG_BROADCAST }))!;
    expect(r.broadcast).toBe(true);
    expect(r.dstIp).toBe(0xffffffff);
    expect(addr.formatMac(r.dstMac!)).toBe('ff:ff:ff:ff:ff:ff');
    expect(r.msg.flags).toBe(dhcp.FLAG_BROADCAST);
  });

  it('honours the requested address in DISCOVER when free', () => {
    const { handle } = setup();
    expect(fmt(handle(client(dhcp.DISCOVER, A, { requestedIp: ip('10.0.2.20') }))!.msg.yiaddr)).toBe('10.0.2.20');
    expect(fmt(handle(client(dhcp.DISCOVER, B, { requestedIp: ip('10.0.2.20') }))!.msg.yiaddr)).toBe('10.0.2.15');
    expect(fmt(handle(client(dhcp.DISCOVER, C, { requestedIp: ip('10.0.2.3') }))!.msg.yiaddr)).toBe('10.0.2.16');
  });
});

describe('DhcpServer REQUEST states (RFC 2131 §4.3.2)', () => {
  it('RENEWING: unicast ACK to ciaddr, lease extended', () => {
    const { s, handle, dora, advance, clock } = setup();
    const a = dora(A).msg.yiaddr;
    advance(1800);
    const r = handle(client(dhcp.REQUEST, A, { ciaddr: a }))!;
    expect(r.msg.messageType).toBe(dhcp.ACK);
    expect(r.msg.ciaddr).toBe(a);
    expect(r.msg.yiaddr).toBe(a);
    expect(r.dstIp).toBe(a);
    expect(r.broadcast).toBe(false);
    expect(s.leaseFor(A)!.expires).toBe(clock.t + 3_600_000);
  });

  it('REBINDING: broadcast REQUEST with ciaddr is still answered to ciaddr', () => {
    const { s, handle, dora, advance } = setup();
    const a = dora(A).msg.yiaddr;
    advance(3200);
    const r = handle(client(dhcp.REQUEST, A, { ciaddr: a, flags: dhcp.FLAG_BROADCAST }))!;
    expect(r.msg.messageType).toBe(dhcp.ACK);
    expect(r.dstIp).toBe(a);
    expect(r.broadcast).toBe(false);
    expect(s.leaseFor(A)!.state).toBe(LeaseState.BOUND);
  });

  it('SELECTING another server: no reply, the offer is freed', () => {
    const { s, handle } = setup();
    const offer = handle(client(dhcp.DISCOVER, A))!;
    const r = handle(client(dhcp.REQUEST, A, { serverId: ip('10.0.2.99'), requestedIp: offer.msg.yiaddr }));
    expect(r).toBeNull();
    expect(s.counters.dropped.otherServer).toBe(1);
    expect(s.leaseFor(A)!.state).toBe(LeaseState.EXPIRED);
  });

  it('SELECTING an address other than the one offered: NAK', () => {
    const { handle } = setup();
    handle(client(dhcp.DISCOVER, A));
    const r = handle(client(dhcp.REQUEST, A, { serverId: SERVER, requestedIp: ip('10.0.2.22') }))!;
    expect(r.msg.messageType).toBe(dhcp.NAK);
  });

  it('INIT-REBOOT on the wrong subnet: broadcast NAK', () => {
    const { s, handle } = setup();
    const r = handle(client(dhcp.REQUEST, A, { requestedIp: ip('192.168.1.50') }))!;
    expect(r.msg.messageType).toBe(dhcp.NAK);
    expect(r.msg.yiaddr).toBe(0);
    expect(r.msg.options.message).toBe('wrong network');
    expect(r.msg.options.serverId).toBe(SERVER);
    expect(r.msg.options.leaseTime).toBeNull();
    expect(r.msg.options.subnetMask).toBeNull();
    expect(r.broadcast).toBe(true);
    expect(r.dstIp).toBe(0xffffffff);
    expect(s.counters.nak).toBe(1);
  });

  it('INIT-REBOOT from a client unknown to a restarted server: ACK when free, NAK when not', () => {
    const { s, handle, dora } = setup();
    const r = handle(client(dhcp.REQUEST, A, { requestedIp: ip('10.0.2.21'), hostname: 'old' }))!;
    expect(r.msg.messageType).toBe(dhcp.ACK);
    expect(fmt(r.msg.yiaddr)).toBe('10.0.2.21');
    expect(s.hostnameLookup('old')).toBe(ip('10.0.2.21'));
    const b = dora(B).msg.yiaddr;
    expect(handle(client(dhcp.REQUEST, C, { requestedIp: b }))!.msg.messageType).toBe(dhcp.NAK); // taken
    expect(handle(client(dhcp.REQUEST, C, { requestedIp: ip('10.0.2.100') }))!.msg.messageType).toBe(dhcp.NAK); // outside pool
    expect(handle(client(dhcp.REQUEST, C, { requestedIp: DNS }))!.msg.messageType).toBe(dhcp.NAK); // excluded
  });

  it('INIT-REBOOT for an address other than the active binding: NAK', () => {
    const { handle, dora } = setup();
    dora(A);
    expect(handle(client(dhcp.REQUEST, A, { requestedIp: ip('10.0.2.25') }))!.msg.messageType).toBe(dhcp.NAK);
  });

  it('a REQUEST with neither requested address nor ciaddr is dropped', () => {
    const { s, handle } = setup();
    expect(handle(client(dhcp.REQUEST, A))).toBeNull();
    expect(s.counters.dropped.malformed).toBe(1);
  });
});

describe('DhcpServer lease lifetime', () => {
  it('RELEASE, then DISCOVER again: the same address', () => {
    const { s, handle, dora, events } = setup();
    const a = dora(A).msg.yiaddr;
    dora(B);
    expect(handle(client(dhcp.RELEASE, A, { ciaddr: a, serverId: SERVER }))).toBeNull();
    expect(s.leaseFor(A)!.state).toBe(LeaseState.RELEASED);
    expect(events.at(-1)!.state).toBe(LeaseState.RELEASED);
    dora(C);
    expect(dora(A).msg.yiaddr).toBe(a);
    expect(s.counters.release).toBe(1);
  });

  it('a RELEASE for somebody else’s address is ignored', () => {
    const { s, handle, dora } = setup();
    const a = dora(A).msg.yiaddr;
    expect(handle(client(dhcp.RELEASE, B, { ciaddr: a, serverId: SERVER }))).toBeNull();
    expect(s.leaseFor(A)!.state).toBe(LeaseState.BOUND);
    expect(s.counters.dropped.unknownClient).toBe(1);
  });

  it('expiry is lazy: EXPIRED after the lease time, same address on return', () => {
    const { s, handle, dora, advance } = setup();
    const a = dora(A, { hostname: 'vm1' }).msg.yiaddr;
    expect(s.hostnameLookup('vm1')).toBe(a);
    advance(3599);
    expect(s.leaseFor(A)!.state).toBe(LeaseState.BOUND);
    advance(1);
    expect(s.leaseFor(A)!.state).toBe(LeaseState.EXPIRED);
    expect(s.hostnameLookup('vm1')).toBeNull();
    // a renewal after expiry is still accepted while nobody took the address
    expect(handle(client(dhcp.REQUEST, A, { ciaddr: a }))!.msg.messageType).toBe(dhcp.ACK);
    advance(7200);
    dora(B);
    expect(dora(A).msg.yiaddr).toBe(a);
  });

  it('a renewal for an address reclaimed by another client is NAKed', () => {
    const { handle, dora, advance } = setup({ poolEnd: ip('10.0.2.15') });
    const a = dora(A).msg.yiaddr;
    advance(3601);
    expect(dora(B).msg.yiaddr).toBe(a);
    const r = handle(client(dhcp.REQUEST, A, { ciaddr: a }))!;
    expect(r.msg.messageType).toBe(dhcp.NAK);
    expect(r.broadcast).toBe(true);
  });

  it('pool exhaustion: no offer, counted; the oldest expired lease is reclaimed later', () => {
    const { s, handle, dora, advance } = setup({ poolEnd: ip('10.0.2.16') });
    const a = dora(A).msg.yiaddr;
    advance(10);
    dora(B);
    expect(handle(client(dhcp.DISCOVER, C))).toBeNull();
    expect(s.counters.dropped.poolExhausted).toBe(1);
    advance(3600); // A expired at +3600, B at +3610
    const r = handle(client(dhcp.DISCOVER, C))!;
    expect(r.msg.yiaddr).toBe(a);
    expect(s.leaseFor(A)).toBeNull();
  });

  it('an unanswered OFFER holds its address for 60 s only', () => {
    const { handle, advance } = setup({ poolEnd: ip('10.0.2.15') });
    expect(handle(client(dhcp.DISCOVER, A))).not.toBeNull();
    expect(handle(client(dhcp.DISCOVER, B))).toBeNull();
    advance(60);
    expect(fmt(handle(client(dhcp.DISCOVER, B))!.msg.yiaddr)).toBe('10.0.2.15');
  });

  it('DECLINE: the address is withheld for 600 s and the client gets another', () => {
    const { s, handle, dora, advance } = setup();
    const a = dora(A).msg.yiaddr;
    expect(handle(client(dhcp.DECLINE, A, { requestedIp: a, serverId: SERVER }))).toBeNull();
    expect(s.counters.decline).toBe(1);
    expect(s.leaseFor(A)).toBeNull();
    const second = dora(A).msg.yiaddr;
    expect(second).not.toBe(a);
    expect(handle(client(dhcp.DISCOVER, B, { requestedIp: a }))!.msg.yiaddr).not.toBe(a);
    expect(handle(client(dhcp.REQUEST, C, { requestedIp: a }))!.msg.messageType).toBe(dhcp.NAK);
    advance(600);
    expect(handle(client(dhcp.DISCOVER, C, { requestedIp: a }))!.msg.yiaddr).toBe(a);
  });

  it('keeps the address when firmware (no client id) is followed by an OS (client id)', () => {
    const { dora } = setup();
    const a = dora(A, { clientId: false }).msg.yiaddr;
    dora(B);
    expect(dora(A).msg.yiaddr).toBe(a);
  });
});

describe('DhcpServer INFORM and relays', () => {
  it('INFORM: ACK without yiaddr or lease times, unicast to ciaddr (RFC 2131 §4.3.5)', () => {
    const { s, handle } = setup();
    const r = handle(client(dhcp.INFORM, A, { ciaddr: ip('10.0.2.77') }))!;
    expect(r.msg.messageType).toBe(dhcp.ACK);
    expect(r.msg.yiaddr).toBe(0);
    expect(fmt(r.msg.ciaddr)).toBe('10.0.2.77');
    expect(r.msg.options.leaseTime).toBeNull();
    expect(r.msg.options.t1).toBeNull();
    expect(r.msg.options.t2).toBeNull();
    expect(r.msg.options.dns).toEqual([DNS]);
    expect(fmt(r.dstIp)).toBe('10.0.2.77');
    expect(s.counters.inform).toBe(1);
    expect(s.leases()).toEqual([]);
    expect(handle(client(dhcp.INFORM, A))).toBeNull();
  });

  it('replies through a relay to giaddr:67; a relayed NAK carries the broadcast bit', () => {
    const { handle } = setup();
    const relay = ip('10.0.2.1');
    const offer = handle(client(dhcp.DISCOVER, A, { giaddr: relay }))!;
    expect(offer.dstIp).toBe(relay);
    expect(offer.dstPort).toBe(67);
    expect(offer.dstMac).toBeNull();
    expect(offer.msg.giaddr).toBe(relay);
    const nak = handle(client(dhcp.REQUEST, A, { giaddr: relay, requestedIp: ip('172.16.0.1') }))!;
    expect(nak.msg.messageType).toBe(dhcp.NAK);
    expect(nak.dstIp).toBe(relay);
    expect(nak.msg.flags & dhcp.FLAG_BROADCAST).toBe(dhcp.FLAG_BROADCAST);
  });
});

describe('DhcpServer options', () => {
  const routes = [{ net: ip('192.168.50.0'), prefix: 24, gateway: ip('10.0.2.9') }];

  it('sends 121 only when requested, with a default route via the router', () => {
    const { handle } = setup({ staticRoutes: routes });
    expect(handle(client(dhcp.DISCOVER, A))!.msg.options.staticRoutes).toEqual([]);
    const r = handle(client(dhcp.DISCOVER, B, { params: [1, 3, 121] }))!;
    expect(r.msg.options.staticRoutes).toEqual([...routes, { net: 0, prefix: 0, gateway: SERVER }]);
  });

  it('sends 119 and echoes 12', () => {
    const { handle } = setup({ searchList: ['example', 'corp.example'] });
    const r = handle(client(dhcp.DISCOVER, A, { hostname: 'box' }))!;
    expect(r.msg.options.domainSearch).toEqual(['example', 'corp.example']);
    expect(r.msg.options.hostname).toBe('box');
  });

  it('keeps replies within the client’s maximum message size (option 57)', () => {
    const searchList = Array.from({ length: 20 }, (_, i) => `zone${i}.lab.example.org`);
    const { handle } = setup({ searchList, staticRoutes: routes });
    const small = handle(client(dhcp.DISCOVER, A, { params: [121] }))!; // 576 → 548 bytes
    expect(small.msg.options.domainSearch).toEqual([]);
    expect(small.msg.options.staticRoutes.length).toBe(2);
    expect(small.msg.options.dns).toEqual([DNS]);
    const big = handle(client(dhcp.DISCOVER, B, { params: [121], maxSize: 1500 }))!;
    expect(big.msg.options.domainSearch).toEqual(searchList);
  });

  it('omits the router when none is configured', () => {
    const { handle } = setup({ router: null });
    expect(handle(client(dhcp.DISCOVER, A))!.msg.options.routers).toEqual([]);
  });

  it('uses a configured lease time for 51/58/59', () => {
    const { handle } = setup({ leaseTime: 600 });
    const o = handle(client(dhcp.DISCOVER, A))!.msg.options;
    expect([o.leaseTime, o.t1, o.t2]).toEqual([600, 300, 525]);
  });
});

describe('DhcpServer reservations and names', () => {
  it('reserve(): the MAC always gets its address, nobody else does', () => {
    const { s, handle, dora } = setup();
    s.reserve(A, ip('10.0.2.50')); // outside the pool is fine
    expect(fmt(dora(A).msg.yiaddr)).toBe('10.0.2.50');
    expect(handle(client(dhcp.REQUEST, B, { requestedIp: ip('10.0.2.50') }))!.msg.messageType).toBe(dhcp.NAK);
    expect(() => s.reserve(B, ip('10.0.2.50'))).toThrow(/already reserved/);
    expect(() => s.reserve(B, DNS)).toThrow(/cannot be leased/);
    expect(() => s.reserve('nope', ip('10.0.2.51'))).toThrow(/bad MAC/);
  });

  it('reserve() moves a bound client at its next DISCOVER and evicts a dynamic holder', () => {
    const { s, handle, dora } = setup();
    const a = dora(A).msg.yiaddr;
    dora(B);
    s.reserve(B, a);
    expect(s.leaseFor(A)).toBeNull();
    expect(handle(client(dhcp.REQUEST, A, { ciaddr: a }))!.msg.messageType).toBe(dhcp.NAK);
    expect(handle(client(dhcp.REQUEST, B, { ciaddr: ip('10.0.2.16') }))!.msg.messageType).toBe(dhcp.NAK);
    expect(dora(B).msg.yiaddr).toBe(a);
  });

  it('hostnameLookup(): case-insensitive, trailing dot and domain suffix ignored', () => {
    const { s, dora } = setup();
    const a = dora(A, { hostname: 'Web1' }).msg.yiaddr;
    expect(s.hostnameLookup('web1')).toBe(a);
    expect(s.hostnameLookup('WEB1.example.')).toBe(a);
    expect(s.hostnameLookup('web1.other')).toBeNull();
    expect(s.hostnameLookup('web2')).toBeNull();
    expect(s.leaseFor(A)!.hostname).toBe('Web1');
  });
});

describe('DhcpServer robustness', () => {
  it('drops what it must not answer, by reason', () => {
    const { s, handle } = setup();
    const reply = client(dhcp.DISCOVER, A);
    reply.op = dhcp.BOOTREPLY;
    expect(handle(reply)).toBeNull();
    const tr = client(dhcp.DISCOVER, A);
    tr.htype = 6;
    expect(handle(tr)).toBeNull();
    const bootp = client(dhcp.DISCOVER, A);
    bootp.messageType = 0;
    expect(handle(bootp)).toBeNull();
    expect(handle(client(dhcp.OFFER, A))).toBeNull();
    expect(handle(client(dhcp.DECLINE, A, { requestedIp: ip('10.0.2.15') }))).toBeNull();
    expect(s.counters.dropped).toEqual({
      notRequest: 1,
      badHardware: 1,
      noMessageType: 1,
      unexpectedType: 1,
      otherServer: 0,
      poolExhausted: 0,
      malformed: 0,
      unknownClient: 1,
      otherLink: 0,
      linkLimit: 0,
      tableFull: 0,
    });
  });

  it('rejects inconsistent configurations', () => {
    const base: DhcpServerConfig = { serverIp: SERVER, subnet: { net: ip('10.0.2.0'), prefix: 24 }, router: SERVER, dns: [], poolStart: ip('10.0.2.15'), poolEnd: ip('10.0.2.30') };
    const now = () => 0;
    expect(() => new DhcpServer({ ...base, poolEnd: ip('10.0.3.5') }, now)).toThrow(/pool/);
    expect(() => new DhcpServer({ ...base, poolStart: ip('10.0.2.40') }, now)).toThrow(/pool/);
    expect(() => new DhcpServer({ ...base, serverIp: ip('10.0.3.2') }, now)).toThrow(/server address/);
    expect(() => new DhcpServer({ ...base, leaseTime: 0 }, now)).toThrow(/lease time/);
    expect(() => new DhcpServer({ ...base, mtu: 20 }, now)).toThrow(/MTU/);
    expect(() => new DhcpServer({ ...base, searchList: ['a'.repeat(64)] }, now)).toThrow(/too long/);
    expect(() => new DhcpServer(base, now)).not.toThrow();
  });

  it('survives random client traffic without throwing or double-leasing', () => {
    const { s, handle, advance } = setup({ poolEnd: ip('10.0.2.20') });
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const macs = Array.from({ length: 12 }, (_, i) => `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`);
    const types = [dhcp.DISCOVER, dhcp.REQUEST, dhcp.REQUEST, dhcp.RELEASE, dhcp.DECLINE, dhcp.INFORM];
    let mostActive = 0;
    for (let i = 0; i < 3000; i++) {
      const mac = macs[rand(macs.length)]!;
      const mine = s.leaseFor(mac)?.ip ?? 0;
      const any = ip('10.0.2.13') + rand(10);
      const pick = rand(3) === 0 ? any : mine;
      handle(client(types[rand(types.length)]!, mac, { requestedIp: rand(2) ? pick : undefined, ciaddr: rand(2) ? pick : 0, serverId: rand(4) ? SERVER : undefined, clientId: rand(5) !== 0 }));
      advance(rand(400));
      const active = macs.map((m) => s.leaseFor(m)).filter((l) => l !== null && (l.state === LeaseState.BOUND || l.state === LeaseState.OFFERED)) as Lease[];
      expect(new Set(active.map((l) => l.ip)).size).toBe(active.length);
      for (const l of active) expect(s.leases()).toContainEqual(l);
      for (const l of active) expect(l.ip >= ip('10.0.2.15') && l.ip <= ip('10.0.2.20')).toBe(true);
      mostActive = Math.max(mostActive, active.length);
    }
    // Several leases were held at once at some point (else "no double lease" compared nothing).
    expect(mostActive).toBeGreaterThanOrEqual(2);
  });
});
