/**
 * DhcpServer on a shared segment, where guests may be hostile: every message
 * arrives from a link (a gateway connection or switch port). A link holds a
 * bounded number of leases; the server remembers a bounded number of
 * clients and forgets inactive ones; a client identity (MAC, client id)
 * bound on one link cannot be used from another; a host name stays with the
 * client that first claimed it, also for a while after its lease ends.
 */
import { describe, expect, it } from 'vitest';
import * as dhcp from '../wire/dhcpv4.js';
import * as addr from '../wire/addr.js';
import { DhcpServer, LeaseState, type DhcpServerConfig } from './dhcp-server.js';

const ip = (s: string): number => addr.parseIp4(s) as number;
const SERVER = ip('10.0.2.2');
const macOf = (i: number) => `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

function msg(type: number, mac: string, o: { requestedIp?: number; ciaddr?: number; hostname?: string; clientId?: Uint8Array | null; serverId?: number } = {}): dhcp.Message {
  const m = dhcp.blank();
  m.op = dhcp.BOOTREQUEST;
  m.htype = 1;
  m.hlen = 6;
  m.xid = 7;
  m.chaddr = addr.parseMac(mac)!;
  m.ciaddr = o.ciaddr ?? 0;
  m.messageType = type;
  m.options.requestedIp = o.requestedIp ?? null;
  m.options.serverId = o.serverId ?? null;
  m.options.hostname = o.hostname ?? null;
  m.options.clientId = o.clientId === undefined ? Uint8Array.of(1, ...m.chaddr) : o.clientId;
  return m;
}

function setup(over: Partial<DhcpServerConfig> = {}) {
  const clock = { t: 1_000_000 };
  const s = new DhcpServer({ serverIp: SERVER, subnet: { net: ip('10.0.2.0'), prefix: 24 }, router: SERVER, dns: [], poolStart: ip('10.0.2.15'), poolEnd: ip('10.0.2.254'), ...over }, () => clock.t);
  const send = (m: dhcp.Message, link: number) => s.handle(m, clock.t, link);
  /** DISCOVER + REQUEST from `link`; the ACK's address, or null when any step got no ACK. */
  const dora = (mac: string, link: number, o: { hostname?: string; clientId?: Uint8Array | null } = {}): number | null => {
    const offer = send(msg(dhcp.DISCOVER, mac, o), link);
    if (offer?.msg.messageType !== dhcp.OFFER) return null;
    const ack = send(msg(dhcp.REQUEST, mac, { ...o, serverId: SERVER, requestedIp: offer.msg.yiaddr }), link);
    return ack?.msg.messageType === dhcp.ACK ? ack.msg.yiaddr : null;
  };
  return { s, clock, send, dora };
}

describe('DhcpServer per-link lease bound', () => {
  it('one link cycling MACs gets at most 4 leases; the pool stays for others', () => {
    const { s, send, dora } = setup({ poolEnd: ip('10.0.2.34') }); // 20 addresses
    let offers = 0;
    for (let i = 0; i < 50; i++) if (send(msg(dhcp.DISCOVER, macOf(i)), 1)?.msg.messageType === dhcp.OFFER) offers++;
    expect(offers).toBe(4);
    expect(s.counters.dropped.linkLimit).toBe(46);
    expect(dora(macOf(1000), 2)).not.toBeNull();
    // Its own clients still renew, and one more fits once an offer lapses (60 s).
    expect(send(msg(dhcp.DISCOVER, macOf(0)), 1)?.msg.messageType).toBe(dhcp.OFFER);
  });

  it('the bound is configurable', () => {
    const { send } = setup({ maxLeasesPerLink: 1 });
    expect(send(msg(dhcp.DISCOVER, macOf(1)), 1)).not.toBeNull();
    expect(send(msg(dhcp.DISCOVER, macOf(2)), 1)).toBeNull();
  });
});

describe('DhcpServer client identities belong to links', () => {
  it('a REQUEST or DISCOVER with another link’s MAC is not answered, and the lease stays put', () => {
    const { s, send, dora } = setup();
    const a = dora(macOf(1), 1)!;
    const before = s.leaseFor(macOf(1));
    expect(send(msg(dhcp.REQUEST, macOf(1), { requestedIp: a }), 2)).toBeNull(); // INIT-REBOOT
    expect(send(msg(dhcp.REQUEST, macOf(1), { ciaddr: a }), 2)).toBeNull(); // RENEWING
    expect(send(msg(dhcp.DISCOVER, macOf(1)), 2)).toBeNull();
    expect(send(msg(dhcp.DISCOVER, macOf(1), { clientId: Uint8Array.of(9, 9, 9) }), 2)).toBeNull(); // same MAC, new client id
    expect(send(msg(dhcp.DISCOVER, macOf(1), { clientId: null }), 2)).toBeNull();
    expect(send(msg(dhcp.RELEASE, macOf(1), { ciaddr: a }), 2)).toBeNull();
    expect(s.counters.dropped.otherLink).toBe(6);
    expect(s.leaseFor(macOf(1))).toEqual(before);
    expect(s.leaseFor(macOf(1))!.state).toBe(LeaseState.BOUND);
  });

  it('another link’s client id with a fresh MAC is not answered either', () => {
    const { s, send, dora } = setup();
    dora(macOf(1), 1);
    expect(send(msg(dhcp.DISCOVER, macOf(2), { clientId: Uint8Array.of(1, ...addr.parseMac(macOf(1))!) }), 2)).toBeNull();
    expect(s.counters.dropped.otherLink).toBe(1);
    expect(s.leaseFor(macOf(2))).toBeNull();
  });

  it('once the link closed, the same MAC gets its address back on a new link (a VM restarted)', () => {
    const { s, dora } = setup();
    const a = dora(macOf(1), 1)!;
    s.linkClosed(1);
    expect(dora(macOf(1), 2)).toBe(a);
  });

  it('consults the gateway about addresses and MACs in use on other links', () => {
    const taken = ip('10.0.2.15');
    const { send } = setup({ addressInUse: (a, link) => a === taken && link !== 1, macInUse: (m, link) => addr.formatMac(m) === macOf(9) && link !== 1 });
    expect(send(msg(dhcp.DISCOVER, macOf(2)), 2)!.msg.yiaddr).toBe(ip('10.0.2.16'));
    expect(send(msg(dhcp.REQUEST, macOf(3), { requestedIp: taken }), 2)!.msg.messageType).toBe(dhcp.NAK);
    expect(send(msg(dhcp.DISCOVER, macOf(9)), 2)).toBeNull();
    expect(send(msg(dhcp.DISCOVER, macOf(9)), 1)).not.toBeNull();
  });
});

describe('DhcpServer bounded, expiring bindings', () => {
  it('remembers at most maxBindings clients, forgetting the longest inactive first', () => {
    const { s, clock, dora } = setup({ maxBindings: 10 });
    for (let i = 0; i < 30; i++) {
      expect(dora(macOf(i), 100 + i)).not.toBeNull();
      clock.t += 3_600_001; // each lease expires before the next client comes
    }
    expect(s.leases().length).toBeLessThanOrEqual(10);
    expect(s.leaseFor(macOf(0))).toBeNull();
    expect(s.leaseFor(macOf(29))).not.toBeNull();
  });

  it('refuses new clients when every remembered one is active (counted)', () => {
    const { s, send, dora } = setup({ maxBindings: 3 });
    for (let i = 0; i < 3; i++) dora(macOf(i), 10 + i);
    expect(send(msg(dhcp.DISCOVER, macOf(3)), 20)).toBeNull();
    expect(s.counters.dropped.tableFull).toBe(1);
  });

  it('forgets inactive bindings after the retention time (sweep)', () => {
    const { s, clock, dora } = setup({ retainTime: 600 });
    dora(macOf(1), 1);
    clock.t += 3_600_000 + 599_000;
    s.sweep(clock.t);
    expect(s.leaseFor(macOf(1))).not.toBeNull();
    clock.t += 2000;
    s.sweep(clock.t);
    expect(s.leaseFor(macOf(1))).toBeNull();
    expect(s.leases()).toEqual([]);
  });

  it('a client id seen with a new chaddr moves its binding: no entry is left behind per MAC', () => {
    const { s, send } = setup();
    const id = Uint8Array.of(0xff, 1, 2, 3);
    for (let i = 0; i < 100; i++) send(msg(dhcp.DISCOVER, macOf(i), { clientId: id }), 1);
    expect(s.leases()).toHaveLength(1);
    expect(s.leaseFor(macOf(99))).not.toBeNull();
    expect(s.leaseFor(macOf(0))).toBeNull();
  });
});

describe('DhcpServer host names stay with their first holder', () => {
  it('another client cannot take a name while its holder is bound, nor while it is briefly without a lease', () => {
    const { s, clock, send, dora } = setup();
    const a = dora(macOf(1), 1, { hostname: 'web' })!;
    expect(s.hostnameLookup('web')).toBe(a);
    dora(macOf(2), 2, { hostname: 'WEB' });
    expect(s.hostnameLookup('web')).toBe(a);
    send(msg(dhcp.RELEASE, macOf(1), { ciaddr: a, serverId: SERVER }), 1);
    expect(s.hostnameLookup('web')).toBeNull();
    dora(macOf(3), 3, { hostname: 'web' });
    expect(s.hostnameLookup('web')).toBeNull(); // held for the VM that is between leases
    expect(dora(macOf(1), 1, { hostname: 'web' })).toBe(a);
    expect(s.hostnameLookup('web')).toBe(a);
    expect(s.counters.hostnameTaken).toBe(4); // the DISCOVER and the REQUEST of each refused client
    // A holder gone for longer than the hold time (the lease time) gives the name up.
    send(msg(dhcp.RELEASE, macOf(1), { ciaddr: a, serverId: SERVER }), 1);
    clock.t += 3_600_001;
    const c = dora(macOf(3), 3, { hostname: 'web' })!;
    expect(s.hostnameLookup('web')).toBe(c);
  });
});
