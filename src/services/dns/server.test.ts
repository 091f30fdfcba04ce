/**
 * DnsService tests: bytes in, bytes out. Forwarding goes to a fake upstream
 * on 127.0.0.1 or through a fake transport; nothing leaves the loopback.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import dc from 'node:diagnostics_channel';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { parseIp4 } from '../../wire/addr.js';
import type { Cancel, Transport, Upstream } from './forwarder.js';
import { parseDnsRecord } from './local.js';
import { fixedUpstreams } from './resolv-conf.js';
import { DnsService, type DnsQueryEvent, type DnsServiceOptions } from './server.js';

const ip = (s: string) => parseIp4(s) as number;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const base = { hostIp: ip('10.0.2.2'), gatewayIp: ip('10.0.2.2'), dnsIp: ip('10.0.2.3') };

function q(name: string, type: string = 'A', extra: Partial<Packet> & { edns?: number; ednsVersion?: number } = {}): Uint8Array {
  const { edns, ednsVersion, ...rest } = extra;
  const additionals: Answer[] =
    edns !== undefined ? [{ type: 'OPT', name: '.', udpPayloadSize: edns, extendedRcode: 0, ednsVersion: ednsVersion ?? 0, flags: 0, flag_do: false, options: [] }] : [];
  return new Uint8Array(
    dnsPacket.encode({
      id: 0x5151,
      type: 'query',
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ name, type: type as 'A' }],
      additionals,
      ...rest,
    }),
  );
}
const decode = (b: Uint8Array | null) => {
  expect(b).not.toBeNull();
  // dns-packet also returns rcode/opcode strings, which its typings omit.
  return dnsPacket.decode(Buffer.from(b!)) as DecodedPacket & { rcode: string; opcode: string };
};
const ips = (b: Uint8Array | null) => (decode(b).answers ?? []).map((a) => `${a.type} ${String((a as { data?: unknown }).data)}`);

/** A transport answering from a function, with the accept filter applied and cancellation honoured like the real one. */
function fakeTransport(answer: (query: Buffer, via: 'udp' | 'tcp') => Buffer | null, delayMs = 0) {
  const sent: { via: 'udp' | 'tcp'; host: string; bytes: Buffer }[] = [];
  const run = (via: 'udp' | 'tcp') => (host: string, _port: number, query: Uint8Array, timeoutMs: number, accept: (r: Uint8Array) => boolean, cancel?: Cancel) =>
    new Promise<Uint8Array>((resolve, reject) => {
      const bytes = Buffer.from(query);
      sent.push({ via, host, bytes });
      const end = (e: Error) => {
        clearTimeout(timer);
        reject(e);
      };
      const timer = setTimeout(() => {
        cancel?.unbind(end);
        const r = answer(bytes, via);
        if (r && accept(r)) resolve(r);
        else reject(new Error('timeout'));
      }, r0(delayMs, timeoutMs));
      cancel?.bind(end);
    });
  const r0 = (d: number, t: number) => Math.min(d, t);
  const t: Transport = { udpQuery: run('udp'), tcpQuery: run('tcp') };
  return { t, sent };
}

/** An upstream-style reply to `query` with `n` A records. */
function bigReply(query: Buffer, n: number, opt?: number): Buffer {
  const d = dnsPacket.decode(query);
  const name = d.questions![0]!.name;
  const answers: Answer[] = [];
  for (let i = 0; i < n; i++) answers.push({ name, type: 'A', ttl: 300, data: `10.1.${i >> 8}.${i & 255}` });
  const additionals: Answer[] =
    opt !== undefined ? [{ type: 'OPT', name: '.', udpPayloadSize: opt, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
  return dnsPacket.encode({ id: d.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: d.questions, answers, additionals });
}

const svc = (o: Partial<DnsServiceOptions> = {}) => new DnsService({ ...base, upstream: null, ...o });

describe('DnsService local answers', () => {
  it('answers host.vmnet.internal: AA, TTL 60, ID and question bytes kept', async () => {
    const s = svc({ upstream: fixedUpstreams([]) });
    const query = q('HoSt.VmNet.Internal');
    const r = await s.query(query, 'udp');
    const d = decode(r);
    expect(d.id).toBe(0x5151);
    expect(d.flag_qr && d.flag_aa && d.flag_rd && d.flag_ra).toBe(true);
    expect(d.rcode).toBe('NOERROR');
    expect(d.answers).toEqual([{ name: 'HoSt.VmNet.Internal', type: 'A', class: 'IN', ttl: 60, flush: false, data: '10.0.2.2' }]);
    // Question section copied byte for byte.
    expect(Buffer.from(r!.subarray(12, query.length))).toEqual(Buffer.from(query.subarray(12)));
    expect(s.counters.local).toBe(1);
  });

  it('NODATA for AAAA of an A-only name, NXDOMAIN for .invalid, loopback for localhost', async () => {
    const s = svc();
    const nodata = decode(await s.query(q('gateway.vmnet.internal', 'AAAA'), 'udp'));
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities).toEqual([]);
    expect(decode(await s.query(q('foo.invalid'), 'udp')).rcode).toBe('NXDOMAIN');
    expect(decode(await s.query(q('nope.vmnet.internal'), 'udp')).rcode).toBe('NXDOMAIN');
    expect(ips(await s.query(q('localhost', 'AAAA'), 'udp'))).toEqual(['AAAA ::1']);
    expect(ips(await s.query(q('x.localhost'), 'tcp'))).toEqual(['A 127.0.0.1']);
  });

  it('answers user records and PTR', async () => {
    const s = svc({ records: [parseDnsRecord('db.test=10.0.2.100'), parseDnsRecord('db.test=fd00::1')] });
    expect(ips(await s.query(q('db.test', 'ANY'), 'udp'))).toEqual(['A 10.0.2.100', 'AAAA fd00::1']);
    expect(ips(await s.query(q('3.2.0.10.in-addr.arpa', 'PTR'), 'udp'))).toEqual(['PTR dns.vmnet.internal']);
  });

  it('answers VM names through the lookupHost hook', async () => {
    const s = svc({ lookupHost: (l) => (l === 'web' ? [ip('10.0.2.15')] : null) });
    expect(ips(await s.query(q('web.vmnet.internal'), 'udp'))).toEqual(['A 10.0.2.15']);
  });

  it('never forwards local names, even with an upstream', async () => {
    const { t, sent } = fakeTransport(() => null);
    const s = svc({ upstream: fixedUpstreams([{ host: '127.0.0.1', port: 9 }]), transport: t });
    for (const n of ['a.invalid', 'localhost', 'zzz.vmnet.internal', 'host.vmnet.internal']) await s.query(q(n), 'udp');
    expect(sent).toEqual([]);
  });

  it('echoes EDNS: OPT in the reply, BADVERS for version 1', async () => {
    const s = svc();
    const r = decode(await s.query(q('host.vmnet.internal', 'A', { edns: 4096 }), 'udp'));
    const opt = r.additionals?.find((a) => a.type === 'OPT');
    expect(opt).toMatchObject({ type: 'OPT', udpPayloadSize: 1232, ednsVersion: 0 });
    const bad = decode(await s.query(q('host.vmnet.internal', 'A', { edns: 4096, ednsVersion: 1 }), 'udp'));
    expect(bad.rcode).toBe('NOERROR');
    expect(bad.additionals?.find((a) => a.type === 'OPT')).toMatchObject({ extendedRcode: 1 }); // 16 = BADVERS
    expect(bad.answers).toEqual([]);
  });

  it('truncates a large local answer for a classic UDP client, not over TCP or with big EDNS', async () => {
    const records = Array.from({ length: 40 }, (_, i) => parseDnsRecord(`many.test=10.9.0.${i + 1}`));
    const s = svc({ records });
    const udp = await s.query(q('many.test'), 'udp');
    expect(udp!.length).toBeLessThanOrEqual(512);
    const d = decode(udp);
    expect(d.flag_tc).toBe(true);
    expect(d.questions?.[0]?.name).toBe('many.test');
    expect(d.answers).toEqual([]);
    expect(decode(await s.query(q('many.test'), 'tcp')).answers).toHaveLength(40);
    expect(decode(await s.query(q('many.test', 'A', { edns: 1232 }), 'udp')).answers).toHaveLength(40);
    expect(s.counters.truncated).toBe(1);
  });
});

describe('DnsService malformed and unsupported queries', () => {
  it('drops runts and responses', async () => {
    const s = svc();
    expect(await s.query(new Uint8Array(11), 'udp')).toBeNull();
    const resp = q('host.vmnet.internal');
    resp[2] = resp[2]! | 0x80;
    expect(await s.query(resp, 'udp')).toBeNull();
    expect(s.counters.dropped).toBe(2);
  });

  it('FORMERR for an undecodable body, keeping the ID', async () => {
    const s = svc();
    const bad = new Uint8Array([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 0x61, 0x62]);
    const d = decode(await s.query(bad, 'udp'));
    expect(d.id).toBe(0xabcd);
    expect(d.rcode).toBe('FORMERR');
    expect(d.flag_rd).toBe(true);
    expect(d.questions).toEqual([]);
    expect(s.counters.formerr).toBe(1);
  });

  it('FORMERR for zero or two questions', async () => {
    const s = svc();
    const none = new Uint8Array(dnsPacket.encode({ id: 1, type: 'query', questions: [] }));
    expect(decode(await s.query(none, 'udp')).rcode).toBe('FORMERR');
    const two = new Uint8Array(dnsPacket.encode({ id: 2, type: 'query', questions: [{ name: 'a.test', type: 'A' }, { name: 'b.test', type: 'A' }] }));
    expect(decode(await s.query(two, 'udp')).rcode).toBe('FORMERR');
  });

  it('NOTIMP for other opcodes and for zone transfers', async () => {
    const s = svc();
    const notify = q('host.vmnet.internal');
    notify[2] = (notify[2]! & 0x87) | (4 << 3); // OPCODE 4 = NOTIFY
    const d = decode(await s.query(notify, 'udp'));
    expect(d.rcode).toBe('NOTIMP');
    expect(d.opcode).toBe('NOTIFY');
    expect(decode(await s.query(q('vmnet.internal', 'AXFR'), 'tcp')).rcode).toBe('NOTIMP');
    expect(s.counters.notimp).toBe(2);
  });
});

describe('DnsService forwarding', () => {
  it('isolated mode answers REFUSED for non-local names', async () => {
    const s = svc({ upstream: null });
    const d = decode(await s.query(q('example.com'), 'udp'));
    expect(d.rcode).toBe('REFUSED');
    expect(d.flag_ra).toBe(false);
    expect(d.questions?.[0]?.name).toBe('example.com');
    expect(s.counters.refused).toBe(1);
  });

  it('SERVFAIL when the upstream source has no servers', async () => {
    const s = svc({ upstream: fixedUpstreams([]) });
    expect(decode(await s.query(q('example.com'), 'udp')).rcode).toBe('SERVFAIL');
    expect(s.counters.servfail).toBe(1);
  });

  it('passes upstream replies through byte for byte except the ID (real UDP on 127.0.0.1)', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    let sentReply: Buffer | null = null;
    sock.on('message', (m, r) => {
      // A reply dns-packet would not produce itself: a compressed answer name.
      const d = dnsPacket.decode(m);
      const plain = dnsPacket.encode({ id: d.id, type: 'response', flags: 0x0180, questions: d.questions, answers: [] });
      const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34]);
      sentReply = Buffer.concat([plain, rr]);
      sentReply.writeUInt16BE(1, 6);
      sock.send(sentReply, r.port, r.address);
    });
    const up: Upstream = { host: '127.0.0.1', port: sock.address().port };
    const s = svc({ upstream: fixedUpstreams([up]) });
    const r = await s.query(q('example.com'), 'udp');
    expect(r!.length).toBe(sentReply!.length);
    expect(Buffer.from(r!.subarray(2))).toEqual(sentReply!.subarray(2));
    expect(decode(r).id).toBe(0x5151);
    expect(ips(r)).toEqual(['A 93.184.216.34']);
    expect(s.counters.forwarded).toBe(1);
    expect(s.counters.upstreamAnswered).toBe(1);
  });

  it('counts upstream datagrams no query took, and close() ends queries in flight with SERVFAIL and frees the sockets', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    const from: number[] = [];
    sock.on('message', (m, r) => {
      from.push(r.port);
      const d = dnsPacket.decode(m);
      if (d.questions![0]!.name === 'hold.example') return;
      const answer = (id: number) => dnsPacket.encode({ id, type: 'response', flags: 0x0180, questions: d.questions, answers: [] });
      sock.send(answer(d.id! ^ 0x8000), r.port, r.address); // a forged or late ID
      sock.send(answer(d.id!), r.port, r.address);
    });
    const s = svc({ upstream: fixedUpstreams([{ host: '127.0.0.1', port: sock.address().port }]) });
    expect(decode(await s.query(q('example.com'), 'udp')).rcode).toBe('NOERROR');
    await new Promise((r) => setTimeout(r, 20));
    expect(s.counters.upstreamStray).toBe(1);
    const held = s.query(q('hold.example'), 'udp');
    while (from.length < 2) await new Promise((r) => setTimeout(r, 5));
    s.close();
    expect(decode(await held).rcode).toBe('SERVFAIL');
    // Every port the service asked from is free again.
    for (const port of new Set(from)) {
      const probe = dgram.createSocket('udp4');
      await new Promise<void>((res, rej) => {
        probe.once('error', rej);
        probe.bind(port, '127.0.0.1', () => res());
      });
      await new Promise<void>((r) => probe.close(() => r()));
    }
  });

  it('close() also ends a TCP exchange in flight (after a truncated UDP reply): its upstream connection closes, later ones are not opened', async () => {
    // The upstream: TCP accepts and never answers; UDP (same port) answers with TC set.
    const conns: net.Socket[] = [];
    const closed: string[] = [];
    const srv = net.createServer((c) => {
      conns.push(c);
      c.resume(); // read (and drop) the query, so the client's FIN is seen
      c.on('close', () => closed.push('tcp'));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    cleanups.push(() => {
      for (const c of conns) c.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    sock.on('message', (m, r) => {
      const d = dnsPacket.decode(m);
      sock.send(dnsPacket.encode({ id: d.id, type: 'response', flags: 0x0380, questions: d.questions, answers: [] }), r.port, r.address);
    });
    const s = svc({ upstream: fixedUpstreams([{ host: '127.0.0.1', port }]), deadlineMs: 10_000 });
    let settled = false;
    const held = s.query(q('big.example'), 'udp').finally(() => (settled = true));
    while (conns.length < 1) await new Promise((r) => setTimeout(r, 5));
    s.close();
    // Before, the exchange went on to its own timeout (2 s) with its socket open (and the event loop held).
    for (let i = 0; i < 100 && (!settled || closed.length === 0); i++) await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(true);
    expect(closed).toEqual(['tcp']);
    expect(decode(await held).flag_tc).toBe(true); // the truncated reply is what the service had
    // A TCP exchange asked for after close fails at once, opening nothing.
    const t = (s as unknown as { transport: Transport }).transport;
    await expect(t.tcpQuery('127.0.0.1', port, q('x.example'), 1000, () => true)).rejects.toMatchObject({ code: 'E_CLOSED' });
    await new Promise((r) => setTimeout(r, 50));
    expect(conns).toHaveLength(1);
  });

  it('truncates a big forwarded reply to 512 bytes for a classic UDP client only', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 60));
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t });
    const udp = await s.query(q('big.example'), 'udp');
    expect(udp!.length).toBeLessThanOrEqual(512);
    expect(decode(udp).flag_tc).toBe(true);
    expect(decode(udp).id).toBe(0x5151);
    expect(decode(await s.query(q('big.example'), 'tcp')).answers).toHaveLength(60);
  });

  it('respects the client EDNS size and keeps the OPT record when truncating', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 100, 1232)); // ~1.6 kB
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t });
    expect(decode(await s.query(q('big.example', 'A', { edns: 4096 }), 'udp')).answers).toHaveLength(100);
    const cut = await s.query(q('big.example', 'A', { edns: 1232 }), 'udp');
    const d = decode(cut);
    expect(cut!.length).toBeLessThanOrEqual(1232);
    expect(d.flag_tc).toBe(true);
    expect(d.additionals?.map((a) => a.type)).toEqual(['OPT']);
  });

  it('SERVFAIL (with OPT for an EDNS query) when upstream is silent', async () => {
    const { t } = fakeTransport(() => null, 5);
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t, deadlineMs: 100 });
    const d = decode(await s.query(q('slow.example', 'A', { edns: 1232 }), 'udp'));
    expect(d.rcode).toBe('SERVFAIL');
    expect(d.additionals?.map((a) => a.type)).toEqual(['OPT']);
    expect(s.counters.servfail).toBe(1);
    expect(s.counters.upstreamFailures).toBeGreaterThan(0);
  });

  it('answers SERVFAIL beyond maxInFlight forwarded queries', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 1), 30);
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t, maxInFlight: 1 });
    const [a, b] = await Promise.all([s.query(q('a.example'), 'udp'), s.query(q('b.example'), 'udp')]);
    expect(decode(a).rcode).toBe('NOERROR');
    expect(decode(b).rcode).toBe('SERVFAIL');
    expect(s.counters.overload).toBe(1);
  });

  it('gives each guest a quarter of maxInFlight: one guest flooding queries cannot starve another', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 1), 30);
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t, maxInFlight: 8 });
    const flood = Array.from({ length: 10 }, (_, i) => s.query(q(`f${i}.example`), 'udp', 1));
    const other = s.query(q('other.example'), 'udp', 2);
    const rcodes = (await Promise.all(flood)).map((r) => decode(r).rcode);
    expect(rcodes.filter((r) => r === 'NOERROR')).toHaveLength(2);
    expect(decode(await other).rcode).toBe('NOERROR');
    expect(s.counters.overload).toBe(8);
  });

  it('by default forwards 256 queries at once per guest, 1024 in all; a full table makes room for a guest with fewer', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 1), 30);
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t });
    const burst = (guest: number, n: number) => Array.from({ length: n }, (_, i) => s.query(q(`g${guest}-${i}.example`), 'udp', guest));
    const all = [...burst(1, 257), ...burst(2, 256), ...burst(3, 256), ...burst(4, 256), ...burst(5, 1)];
    const rcodes = (await Promise.all(all)).map((r) => decode(r).rcode);
    expect(rcodes.filter((r) => r === 'NOERROR')).toHaveLength(1024);
    // Guest 1's 257th is beyond its own cap; guest 5's first takes the slot of guest 1's oldest.
    expect(rcodes[256]).toBe('SERVFAIL');
    expect(rcodes[0]).toBe('SERVFAIL');
    expect(rcodes.at(-1)).toBe('NOERROR');
    expect(s.counters).toMatchObject({ overload: 1, overloadGuest: 1, evicted: 1, servfail: 2, forwarded: 1025, upstreamAnswered: 1024 });
  });

  it('publishes each query on the vmnet:dns:query channel', async () => {
    const events: DnsQueryEvent[] = [];
    const fn = (m: unknown) => events.push(m as DnsQueryEvent);
    dc.subscribe('vmnet:dns:query', fn);
    try {
      const s = svc();
      await s.query(q('host.vmnet.internal'), 'tcp');
      await s.query(q('example.com'), 'udp');
    } finally {
      dc.unsubscribe('vmnet:dns:query', fn);
    }
    expect(events.map((e) => [e.name, e.type, e.via, e.source, e.rcode])).toEqual([
      ['host.vmnet.internal', 'A', 'tcp', 'local', 0],
      ['example.com', 'A', 'udp', 'vmnet', 5],
    ]);
  });
});

describe('DnsService fair share between guests', () => {
  /** Sends `n` queries for distinct names under `zone` from `guest`, synchronously (each takes its slot before the next). */
  const flood = (s: DnsService, guest: number, n: number, zone: string) => Array.from({ length: n }, (_, i) => s.query(q(`g${guest}-${i}.${zone}`), 'udp', guest));

  it('four guests flooding a black-holed zone cannot starve a fifth: its query is forwarded and answered (real UDP on 127.0.0.1)', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    let seen = 0;
    sock.on('message', (m, r) => {
      seen++;
      const d = dnsPacket.decode(m);
      if (d.questions![0]!.name.endsWith('.hole.example')) return; // black hole: never answers
      sock.send(bigReply(m, 1), r.port, r.address);
    });
    const s = svc({ upstream: fixedUpstreams([{ host: '127.0.0.1', port: sock.address().port }]), deadlineMs: 30_000, tryTimeoutMs: 30_000 });
    cleanups.push(() => s.close());
    // The flood goes out in steps of 4 × 30 queries, each step read by the upstream before the next, so that
    // the upstream socket's receive buffer (~270 small datagrams) never overflows: every query it gets is in flight.
    const floods: Promise<Uint8Array | null>[] = [];
    for (let sent = 30; sent <= 300; sent += 30) {
      for (const g of [1, 2, 3, 4]) floods.push(...flood(s, g, 30, `s${sent}.hole.example`));
      while (seen < 4 * Math.min(sent, 256)) await new Promise((r) => setTimeout(r, 5));
    }
    const quiet = await s.query(q('quiet.example'), 'udp', 5);
    expect(decode(quiet).rcode).toBe('NOERROR');
    expect(ips(quiet)).toEqual(['A 10.1.0.0']);
    s.close(); // the flood would wait out the deadline
    const rcodes = (await Promise.all(floods)).map((r) => decode(r).rcode);
    expect(rcodes.every((r) => r === 'SERVFAIL')).toBe(true);
    expect(s.counters.evicted).toBe(1); // one flood query made room for the quiet guest
    expect(s.counters.overload).toBe(4 * (300 - 256)); // each flooder beyond its own cap
  });

  it('four guests flooding a fast upstream cannot starve a fifth: its query is answered', async () => {
    const { t } = fakeTransport((b) => bigReply(b, 1), 30);
    const s = svc({ upstream: fixedUpstreams([{ host: 'up', port: 53 }]), transport: t });
    const floods = [1, 2, 3, 4].flatMap((g) => flood(s, g, 300, 'example'));
    const quiet = s.query(q('quiet.example'), 'udp', 5);
    expect(decode(await quiet).rcode).toBe('NOERROR');
    const rcodes = (await Promise.all(floods)).map((r) => decode(r).rcode);
    expect(rcodes.filter((r) => r === 'NOERROR')).toHaveLength(1024 - 1);
    expect(s.counters.evicted).toBe(1);
  });
});
