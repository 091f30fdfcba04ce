/**
 * Forwarder tests against real fake upstream servers on 127.0.0.1 (random
 * ports) through the real NodeTransport, plus sans-IO timing tests with a
 * fake transport and clock. No traffic leaves the loopback interface.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket } from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { VmnetError } from '../../errors.js';
import { Cancel, Forwarder, type ReplyFilter, type Transport, type Upstream } from './forwarder.js';
import { NodeTransport } from './node-transport.js';

const LO = '127.0.0.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function query(name: string, id = 0x1234, type: 'A' | 'AAAA' | 'TXT' = 'A'): Uint8Array {
  return new Uint8Array(dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] }));
}

/** An upstream reply to `q`, optionally tweaked. */
function reply(q: Buffer, o: { ips?: string[]; tc?: boolean; id?: number; name?: string; rcode?: number; txt?: number } = {}): Buffer {
  const d = dnsPacket.decode(q);
  const question = d.questions![0]!;
  const name = o.name ?? question.name;
  const answers: Answer[] = (o.ips ?? ['1.2.3.4']).map((ip) => ({ name, type: 'A', ttl: 300, data: ip }));
  for (let i = 0; i < (o.txt ?? 0); i++) answers.push({ name, type: 'TXT', ttl: 300, data: 'x'.repeat(200) });
  let flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (o.rcode ?? 0);
  if (o.tc) flags |= dnsPacket.TRUNCATED_RESPONSE;
  return dnsPacket.encode({ id: o.id ?? d.id, type: 'response', flags, questions: [{ ...question, name }], answers: o.tc ? [] : answers });
}

type UdpHandler = (q: Buffer, from: dgram.RemoteInfo, sock: dgram.Socket) => void;

/** A UDP DNS server on 127.0.0.1 (port 0 = random). */
async function udpServer(handler: UdpHandler, port = 0): Promise<{ port: number; seen: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  const seen: Buffer[] = [];
  sock.on('message', (m, r) => {
    seen.push(m);
    handler(m, r, sock);
  });
  await new Promise<void>((res, rej) => {
    sock.once('error', rej);
    sock.bind(port, LO, () => res());
  });
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  return { port: sock.address().port, seen };
}

/** A TCP DNS server (RFC 7766 framing) on 127.0.0.1:port. */
async function tcpServer(port: number, handler: (q: Buffer) => Buffer): Promise<{ seen: Buffer[] }> {
  const seen: Buffer[] = [];
  const srv = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        seen.push(q);
        const r = handler(q);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(r.length);
        c.write(Buffer.concat([len, r]));
      }
    });
    c.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    srv.listen(port, LO, () => res());
  });
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { seen };
}

/** A port with nothing listening (UDP): bind, note the port, close. */
async function deadPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, LO, () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

const up = (port: number): Upstream => ({ host: LO, port });

interface Try {
  port: number;
  timeoutMs: number;
  /** The forwarder's clock when it started the try (its last now() reading). */
  clockAtStart: number;
  startedAt: number;
  settledAt: number;
  /** 'answered', or the error code the try ended with. */
  result: string;
}

/**
 * Wraps a transport to record each UDP try: its timeout, how it ended, and
 * the forwarder's clock (hand `now` to the Forwarder) when it began.
 */
function recorded(inner: Transport) {
  const tries: Try[] = [];
  let firstNow = NaN;
  let lastNow = NaN;
  const now = () => {
    lastNow = performance.now();
    if (Number.isNaN(firstNow)) firstNow = lastNow;
    return lastNow;
  };
  const transport: Transport = {
    udpQuery(host, port, q, timeoutMs, accept) {
      const t: Try = { port, timeoutMs, clockAtStart: lastNow, startedAt: performance.now(), settledAt: NaN, result: 'pending' };
      tries.push(t);
      return inner.udpQuery(host, port, q, timeoutMs, accept).then(
        (reply) => ((t.settledAt = performance.now()), (t.result = 'answered'), reply),
        (e: unknown) => {
          t.settledAt = performance.now();
          t.result = (e as { code?: string }).code ?? String(e);
          throw e;
        },
      );
    },
    tcpQuery: (...args) => inner.tcpQuery(...args),
  };
  return {
    transport,
    now,
    tries,
    get firstNow() {
      return firstNow;
    },
  };
}
/** dns-packet also returns rcode/opcode strings, which its typings omit. */
const decode = (b: Uint8Array) => dnsPacket.decode(Buffer.from(b)) as DecodedPacket & { rcode: string; opcode: string };
const ips = (b: Uint8Array) => (decode(b).answers ?? []).filter((a) => a.type === 'A').map((a) => (a as { data?: unknown }).data);

describe('Forwarder over loopback sockets', () => {
  it('forwards with a fresh random ID and restores the guest ID', async () => {
    const good = await udpServer((q, r, s) => s.send(reply(q), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport(), random16: () => 0xbeef });
    const r = await f.forward(query('example.com', 0x1234), [up(good.port)]);
    expect(r.outcome).toBe('answered');
    expect(r.server).toEqual(up(good.port));
    expect(good.seen[0]!.readUInt16BE(0)).toBe(0xbeef);
    expect(decode(r.reply).id).toBe(0x1234);
    expect(ips(r.reply)).toEqual(['1.2.3.4']);
  });

  it('uses a different ID for each attempt, from sockets drawn from the pool', async () => {
    const ports: number[] = [];
    const good = await udpServer((q, r, s) => {
      ports.push(r.port);
      s.send(reply(q), r.port, r.address);
    });
    let slot = 0;
    const transport = new NodeTransport({ random32: () => slot++ });
    cleanups.push(() => transport.close());
    const f = new Forwarder({ transport });
    for (let i = 0; i < 4; i++) await f.forward(query('example.com', 7), [up(good.port)]);
    const ids = new Set(good.seen.map((m) => m.readUInt16BE(0)));
    expect(ids.size).toBeGreaterThan(1);
    expect(new Set(ports).size).toBe(4);
  });

  it('tries the next server when one never answers', async () => {
    const silent = await udpServer(() => {});
    const good = await udpServer((q, r, s) => s.send(reply(q, { ips: ['5.6.7.8'] }), r.port, r.address));
    const rec = recorded(new NodeTransport());
    const f = new Forwarder({ transport: rec.transport, now: rec.now, deadlineMs: 2000, tryTimeoutMs: 300 });
    const r = await f.forward(query('slow.test'), [up(silent.port), up(good.port)]);
    expect(ips(r.reply)).toEqual(['5.6.7.8']);
    expect(r.failures).toBe(1);
    expect(silent.seen.length).toBe(1);
    // The silent server's try ended by its own timer, then the next one answered.
    expect(rec.tries.map((t) => [t.port, t.timeoutMs, t.result])).toEqual([
      [silent.port, 300, 'E_TIMEOUT'],
      [good.port, 300, 'answered'],
    ]);
    expect(rec.tries[0]!.settledAt - rec.tries[0]!.startedAt).toBeGreaterThanOrEqual(250);
  });

  it('fails over at once from a refused port (ICMP unreachable on a connected socket)', async () => {
    const dead = await deadPort();
    const good = await udpServer((q, r, s) => s.send(reply(q), r.port, r.address));
    const rec = recorded(new NodeTransport());
    const f = new Forwarder({ transport: rec.transport, deadlineMs: 3000, tryTimeoutMs: 1500 });
    const r = await f.forward(query('x.test'), [up(dead), up(good.port)]);
    expect(r.outcome).toBe('answered');
    // Refused, not timed out: the first try ended on the ICMP error.
    expect(rec.tries.map((t) => t.result)).toEqual(['ECONNREFUSED', 'answered']);
  });

  it('returns SERVFAIL with the guest ID and question when every server is silent, never later than the deadline', async () => {
    const a = await udpServer(() => {});
    const b = await udpServer(() => {});
    const rec = recorded(new NodeTransport());
    const f = new Forwarder({ transport: rec.transport, now: rec.now, deadlineMs: 600, tryTimeoutMs: 1500 });
    const q = query('MiXeD.example', 0x4321);
    const r = await f.forward(q, [up(a.port), up(b.port)]);
    expect(r.outcome).toBe('servfail');
    const d = decode(r.reply);
    expect(d.id).toBe(0x4321);
    expect(d.rcode).toBe('SERVFAIL');
    expect(d.flag_qr).toBe(true);
    expect(d.flag_rd).toBe(true);
    expect(d.questions).toEqual([{ name: 'MiXeD.example', type: 'A', class: 'IN' }]);
    // Both servers had their turn in the first pass, each try ended by its
    // timer, and no try was allowed to run past the deadline (on the
    // forwarder's own clock: no wall-clock threshold to flake under load).
    expect(a.seen.length).toBeGreaterThanOrEqual(1);
    expect(b.seen.length).toBeGreaterThanOrEqual(1);
    expect(rec.tries.length).toBeGreaterThanOrEqual(2);
    expect(rec.tries.every((t) => t.result === 'E_TIMEOUT')).toBe(true);
    const deadline = rec.firstNow + 600;
    for (const t of rec.tries) expect(t.clockAtStart + t.timeoutMs).toBeLessThanOrEqual(deadline);
    expect(rec.tries.at(-1)!.settledAt - rec.firstNow).toBeGreaterThanOrEqual(550);
  });

  it('returns SERVFAIL at once for an empty server list', async () => {
    const f = new Forwarder({ transport: new NodeTransport() });
    const r = await f.forward(query('x.test'), []);
    expect(decode(r.reply).rcode).toBe('SERVFAIL');
  });

  it('retries over TCP when the UDP reply has TC set', async () => {
    let tcp: { seen: Buffer[] } | null = null;
    let udp: { port: number; seen: Buffer[] } | null = null;
    for (let i = 0; i < 5 && !tcp; i++) {
      udp = await udpServer((q, r, s) => s.send(reply(q, { tc: true }), r.port, r.address));
      tcp = await tcpServer(udp.port, (q) => reply(q, { ips: ['9.9.9.9'], txt: 10 })).catch(() => null);
    }
    const f = new Forwarder({ transport: new NodeTransport(), random16: (() => { let n = 100; return () => n++; })() });
    const r = await f.forward(query('big.test', 0x0a0b), [up(udp!.port)]);
    expect(r.tcp).toBe(true);
    expect(r.tcpRetries).toBe(1);
    expect(r.reply.length).toBeGreaterThan(2000);
    expect(decode(r.reply).id).toBe(0x0a0b);
    expect(decode(r.reply).flag_tc).toBe(false);
    expect(ips(r.reply)).toEqual(['9.9.9.9']);
    // New ID for the TCP attempt.
    expect(udp!.seen[0]!.readUInt16BE(0)).toBe(100);
    expect(tcp!.seen[0]!.readUInt16BE(0)).toBe(101);
  });

  it('a cancelled forward ends at once with SERVFAIL and asks no other server', async () => {
    const a = await udpServer(() => {});
    const b = await udpServer(() => {});
    const f = new Forwarder({ transport: new NodeTransport(), deadlineMs: 60_000, tryTimeoutMs: 30_000 });
    const cancel = new Cancel();
    const pending = f.forward(query('slow.test', 0x0d0e), [up(a.port), up(b.port)], false, cancel);
    while (a.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
    cancel.cancel();
    const r = await pending;
    expect(r).toMatchObject({ outcome: 'servfail', failures: 0 });
    expect(decode(r.reply)).toMatchObject({ id: 0x0d0e, rcode: 'SERVFAIL' });
    expect(b.seen).toHaveLength(0);
  });

  it('a cancelled forward closes its TCP fallback connection at once and passes no truncated reply on', async () => {
    const conns: net.Socket[] = [];
    const closed: string[] = [];
    const srv = net.createServer((c) => {
      conns.push(c);
      c.resume();
      c.on('close', () => closed.push('tcp'));
    });
    await new Promise<void>((r) => srv.listen(0, LO, () => r()));
    cleanups.push(() => {
      for (const c of conns) c.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    });
    const port = (srv.address() as net.AddressInfo).port;
    await udpServer((q, r, s) => s.send(reply(q, { tc: true }), r.port, r.address), port);
    const f = new Forwarder({ transport: new NodeTransport(), deadlineMs: 60_000, tcpTimeoutMs: 30_000 });
    const cancel = new Cancel();
    const pending = f.forward(query('big.test', 0x0a0d), [up(port)], false, cancel);
    while (conns.length < 1) await new Promise((r) => setTimeout(r, 5));
    cancel.cancel();
    expect(decode((await pending).reply)).toMatchObject({ rcode: 'SERVFAIL', flag_tc: false });
    for (let i = 0; i < 100 && closed.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toEqual(['tcp']);
  });

  it('passes the truncated reply on when the TCP retry fails', async () => {
    const udp = await udpServer((q, r, s) => s.send(reply(q, { tc: true }), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport(), deadlineMs: 1000 });
    const r = await f.forward(query('big.test', 0x0a0c), [up(udp.port)]);
    expect(r.outcome).toBe('answered');
    expect(r.tcp).toBe(false);
    const d = decode(r.reply);
    expect(d.flag_tc).toBe(true);
    expect(d.id).toBe(0x0a0c);
  });

  it('ignores replies with a wrong ID, a wrong question, or from a spoofed source', async () => {
    const spoofer = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoofer.bind(0, LO, () => r()));
    cleanups.push(() => new Promise<void>((r) => spoofer.close(() => r())));
    const good = await udpServer((q, r, s) => {
      const id = q.readUInt16BE(0);
      s.send(reply(q, { id: (id + 1) & 0xffff, ips: ['6.6.6.1'] }), r.port, r.address); // wrong ID
      s.send(reply(q, { name: 'other.test', ips: ['6.6.6.2'] }), r.port, r.address); // wrong question
      const forged = reply(q, { ips: ['6.6.6.3'] });
      forged[2] = forged[2]! & ~0x80; // QR clear: not a response
      s.send(forged, r.port, r.address);
      spoofer.send(reply(q, { ips: ['6.6.6.6'] }), r.port, r.address); // right ID, wrong source port
      setTimeout(() => s.send(reply(q, { ips: ['1.2.3.4'] }), r.port, r.address), 50);
    });
    const f = new Forwarder({ transport: new NodeTransport() });
    const r = await f.forward(query('target.test'), [up(good.port)]);
    expect(ips(r.reply)).toEqual(['1.2.3.4']);
    expect(r.failures).toBe(0);
  });

  it('accepts the question echoed in different letter case', async () => {
    const good = await udpServer((q, r, s) => s.send(reply(q, { name: 'TARGET.test' }), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport() });
    const r = await f.forward(query('target.TEST'), [up(good.port)]);
    expect(r.outcome).toBe('answered');
  });

  it('moves on from an upstream SERVFAIL/REFUSED, and passes the last one on if nobody does better', async () => {
    const bad = await udpServer((q, r, s) => s.send(reply(q, { ips: [], rcode: 2 }), r.port, r.address));
    const refused = await udpServer((q, r, s) => s.send(reply(q, { ips: [], rcode: 5 }), r.port, r.address));
    const good = await udpServer((q, r, s) => s.send(reply(q), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport() });
    const ok = await f.forward(query('a.test'), [up(bad.port), up(refused.port), up(good.port)]);
    expect(ips(ok.reply)).toEqual(['1.2.3.4']);
    const r = await f.forward(query('a.test', 99), [up(bad.port), up(refused.port)]);
    expect(r.outcome).toBe('answered');
    expect(decode(r.reply).rcode).toBe('REFUSED');
    expect(decode(r.reply).id).toBe(99);
    // Servers that answered are not asked again in the second pass.
    expect(bad.seen.length).toBe(2);
  });

  it('passes NXDOMAIN through without trying other servers', async () => {
    const nx = await udpServer((q, r, s) => s.send(reply(q, { ips: [], rcode: 3 }), r.port, r.address));
    const other = await udpServer((q, r, s) => s.send(reply(q), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport() });
    const r = await f.forward(query('nope.test'), [up(nx.port), up(other.port)]);
    expect(decode(r.reply).rcode).toBe('NXDOMAIN');
    expect(other.seen.length).toBe(0);
  });

  it('works with an IPv6 loopback upstream', async () => {
    // The suite needs ::1 (as CI has it): without it this fails rather than passing untested.
    const sock = dgram.createSocket('udp6');
    const bound = await new Promise<true | Error>((res) => {
      sock.once('error', (e) => res(e));
      sock.bind(0, '::1', () => res(true));
    });
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    expect(bound, 'IPv6 loopback ::1 cannot be bound here (net.ipv6.conf.lo.disable_ipv6=1?): this test needs it').toBe(true);
    sock.on('message', (q, r) => sock.send(reply(q), r.port, r.address));
    const f = new Forwarder({ transport: new NodeTransport() });
    const r = await f.forward(query('v6.test'), [{ host: '::1', port: sock.address().port }]);
    expect(r.outcome).toBe('answered');
    expect(r.server).toEqual({ host: '::1', port: sock.address().port });
    expect(ips(r.reply)).toEqual(['1.2.3.4']);
  });
});

describe('Forwarder timing (fake transport and clock)', () => {
  /** A transport where every try silently times out, advancing the fake clock. */
  function silentTransport(clock: { t: number }) {
    const tries: { host: string; timeout: number; at: number }[] = [];
    const t: Transport = {
      udpQuery(host, _port, _q, timeoutMs, _accept: ReplyFilter) {
        tries.push({ host, timeout: timeoutMs, at: clock.t });
        clock.t += timeoutMs;
        return Promise.reject(new VmnetError('E_TIMEOUT', 'timeout'));
      },
      tcpQuery() {
        return Promise.reject(new Error('unused'));
      },
    };
    return { t, tries };
  }

  it('spreads the deadline over all servers in the first pass', async () => {
    const clock = { t: 0 };
    const { t, tries } = silentTransport(clock);
    const f = new Forwarder({ transport: t, now: () => clock.t, deadlineMs: 4000, tryTimeoutMs: 1500 });
    const r = await f.forward(query('x.test'), [
      { host: 'a', port: 53 },
      { host: 'b', port: 53 },
      { host: 'c', port: 53 },
    ]);
    expect(r.outcome).toBe('servfail');
    expect(tries.map((x) => x.host)).toEqual(['a', 'b', 'c']);
    expect(tries.every((x) => x.timeout <= 1334)).toBe(true);
    expect(clock.t).toBeLessThanOrEqual(4000);
  });

  it('gives a single server a second try and stays within the deadline', async () => {
    const clock = { t: 0 };
    const { t, tries } = silentTransport(clock);
    const f = new Forwarder({ transport: t, now: () => clock.t, deadlineMs: 4000, tryTimeoutMs: 1500 });
    await f.forward(query('x.test'), [{ host: 'a', port: 53 }]);
    expect(tries.map((x) => x.timeout)).toEqual([1500, 1500]);
  });

  it('does not spin when every server fails at once', async () => {
    let calls = 0;
    const t: Transport = {
      udpQuery: () => (calls++, Promise.reject(new Error('ECONNREFUSED'))),
      tcpQuery: () => Promise.reject(new Error('unused')),
    };
    const f = new Forwarder({ transport: t });
    const r = await f.forward(query('x.test'), [{ host: 'a', port: 53 }, { host: 'b', port: 53 }]);
    expect(r.outcome).toBe('servfail');
    expect(calls).toBe(4);
  });
});
