/**
 * UdpPool over real loopback sockets: a fake upstream on 127.0.0.1 (random
 * port) sees the pool's source ports, answers, misanswers and forges.
 * Randomness and the clock are injected where a test depends on them.
 */
import * as dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { Cancel } from './forwarder.js';
import { UdpPool, type UdpPoolOptions } from './udp-pool.js';

const LO = '127.0.0.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

type Handler = (q: Buffer, from: dgram.RemoteInfo, sock: dgram.Socket) => void;

/** A UDP upstream on 127.0.0.1 that records the source port of each datagram. */
async function upstream(handler: Handler): Promise<{ port: number; from: number[] }> {
  const sock = dgram.createSocket('udp4');
  const from: number[] = [];
  sock.on('message', (m, r) => {
    from.push(r.port);
    handler(m, r, sock);
  });
  await new Promise<void>((r) => sock.bind(0, LO, () => r()));
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  return { port: sock.address().port, from };
}

const echo: Handler = (q, r, s) => s.send(q, r.port, r.address);

/** A message with ID `id` and a marker byte (stands in for the question). */
const msg = (id: number, mark = 0): Uint8Array => Uint8Array.of(id >> 8, id & 255, mark);
const acceptMark = (mark: number) => (r: Uint8Array) => r[2] === mark;

function pool(o: Partial<UdpPoolOptions> = {}): UdpPool {
  let n = 0;
  const p = new UdpPool({ random32: () => n++, now: () => performance.now(), ...o });
  cleanups.push(() => p.close());
  return p;
}

/** Whether a UDP port on 127.0.0.1 can be bound (i.e. no socket holds it). */
async function free(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  const ok = await new Promise<boolean>((res) => {
    s.once('error', () => res(false));
    s.bind(port, LO, () => res(true));
  });
  await new Promise<void>((r) => s.close(() => r()));
  return ok;
}

describe('UdpPool', () => {
  it('shares a few sockets between queries and replaces each after maxUses', async () => {
    const up = await upstream(echo);
    const p = pool({ size: 2, maxUses: 3 });
    for (let i = 0; i < 12; i++) expect(await p.query(LO, up.port, msg(i, 7), 1000, acceptMark(7))).toEqual(msg(i, 7));
    const uses = new Map<number, number>();
    for (const port of up.from) uses.set(port, (uses.get(port) ?? 0) + 1);
    // 12 queries over sockets of 3 uses each: 4 sockets, each one used exactly 3 times.
    expect([...uses.values()]).toEqual([3, 3, 3, 3]);
    expect(p.counters.opened).toBe(4);
    expect(p.open).toBeLessThanOrEqual(2);
  });

  it('replaces a socket once it is maxAgeMs old, on the injected clock', async () => {
    const up = await upstream(echo);
    const clock = { t: 0 };
    const p = pool({ size: 1, maxAgeMs: 1000, now: () => clock.t });
    await p.query(LO, up.port, msg(1), 1000, () => true);
    clock.t = 999;
    await p.query(LO, up.port, msg(2), 1000, () => true);
    clock.t = 1000;
    await p.query(LO, up.port, msg(3), 1000, () => true);
    expect(up.from[0]).toBe(up.from[1]);
    expect(up.from[2]).not.toBe(up.from[1]);
    expect(p.counters).toMatchObject({ opened: 2, closed: 1 });
  });

  it('drops and counts datagrams with an ID nobody waits for or that the query refuses', async () => {
    let strays = 0;
    const up = await upstream((q, r, s) => {
      s.send(msg(((q[0]! << 8) | q[1]!) ^ 1, 5), r.port, r.address); // wrong ID
      s.send(msg((q[0]! << 8) | q[1]!, 6), r.port, r.address); // right ID, refused by the filter
      setTimeout(() => s.send(q, r.port, r.address), 20);
    });
    const p = pool({ onStray: () => strays++ });
    const seen: number[] = [];
    const reply = await p.query(LO, up.port, msg(0x4242, 5), 1000, (r) => (seen.push(r[2]!), r[2] === 5 && r[1] === 0x42));
    expect(reply).toEqual(msg(0x4242, 5));
    expect(seen).toEqual([6, 5]); // the wrong ID never reached the filter
    expect(p.counters.stray).toBe(2);
    expect(strays).toBe(2);
  });

  it('never lets a datagram from another port reach a query (connected sockets)', async () => {
    const spoofer = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoofer.bind(0, LO, () => r()));
    cleanups.push(() => new Promise<void>((r) => spoofer.close(() => r())));
    const up = await upstream((q, r, s) => {
      spoofer.send(Uint8Array.of(q[0]!, q[1]!, 66), r.port, r.address); // right ID and socket, wrong source port
      setTimeout(() => s.send(q, r.port, r.address), 50);
    });
    const p = pool();
    const seen: number[] = [];
    const reply = await p.query(LO, up.port, msg(9, 1), 1000, (r) => (seen.push(r[2]!), true));
    expect(reply).toEqual(msg(9, 1));
    expect(seen).toEqual([1]);
  });

  it('never has two queries with the same ID in flight on one socket', async () => {
    // Hold every query, then answer them all at once with each one's own bytes.
    const held: [Buffer, dgram.RemoteInfo][] = [];
    let answerAll = () => {};
    const allHeld = new Promise<void>((r) => (answerAll = r));
    const up = await upstream((q, r, s) => {
      held.push([q, r]);
      if (held.length === 3) {
        answerAll();
        for (const [hq, hr] of held.reverse()) s.send(hq, hr.port, hr.address);
      }
    });
    const p = pool({ size: 2, random32: () => 0 }); // every query draws slot 0 first
    const replies = Promise.all([1, 2, 3].map((mark) => p.query(LO, up.port, msg(0x77, mark), 1000, acceptMark(mark))));
    await allHeld;
    expect(await replies).toEqual([msg(0x77, 1), msg(0x77, 2), msg(0x77, 3)]);
    expect(new Set(up.from).size).toBe(3); // two pooled sockets and a one-off third
    expect(p.counters.collisions).toBe(1 + 2);
    // The one-off socket closed after its query; the two pooled ones stay.
    expect(p.open).toBe(2);
  });

  it('fails every query on a socket that gets ECONNREFUSED, and opens a new one after', async () => {
    const dead = await new Promise<number>((res) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, LO, () => {
        const port = s.address().port;
        s.close(() => res(port));
      });
    });
    const p = pool({ size: 1 });
    const r = await Promise.allSettled([p.query(LO, dead, msg(1), 1000, () => true), p.query(LO, dead, msg(2), 1000, () => true)]);
    expect(r.map((x) => (x.status === 'rejected' ? (x.reason as NodeJS.ErrnoException).code : 'answered'))).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(p.open).toBe(0);
  });

  it('close() fails queries in flight, closes every socket and frees its port', async () => {
    const up = await upstream(() => {});
    const p = pool();
    const pending = p.query(LO, up.port, msg(1), 5000, () => true);
    await new Promise((r) => setTimeout(r, 50));
    const port = up.from[0]!;
    expect(await free(port)).toBe(false);
    p.close();
    await expect(pending).rejects.toMatchObject({ code: 'E_CLOSED' });
    await expect(p.query(LO, up.port, msg(2), 1000, () => true)).rejects.toMatchObject({ code: 'E_CLOSED' });
    expect(p.open).toBe(0);
    expect(await free(port)).toBe(true);
  });

  it('closes idle sockets once they expire, without a query to notice', async () => {
    const up = await upstream(echo);
    const p = pool({ maxAgeMs: 50 });
    await p.query(LO, up.port, msg(1), 1000, () => true);
    expect(p.open).toBe(1);
    for (let i = 0; i < 50 && p.open > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(p.open).toBe(0);
    expect(await free(up.from[0]!)).toBe(true);
  });

  it('a cancelled query fails at once (E_INTERRUPTED) and stops waiting: its late reply is stray', async () => {
    const held: Array<() => void> = [];
    const up = await upstream((q, r, s) => held.push(() => s.send(q, r.port, r.address)));
    const p = pool();
    const cancel = new Cancel();
    const pending = p.query(LO, up.port, msg(1), 60_000, () => true, cancel);
    while (held.length < 1) await new Promise((r) => setTimeout(r, 5));
    cancel.cancel();
    await expect(pending).rejects.toMatchObject({ code: 'E_INTERRUPTED' });
    held[0]!();
    while (p.counters.stray < 1) await new Promise((r) => setTimeout(r, 5));
    // Cancelled before it is asked: nothing is sent.
    await expect(p.query(LO, up.port, msg(2), 1000, () => true, cancel)).rejects.toMatchObject({ code: 'E_INTERRUPTED' });
    await new Promise((r) => setTimeout(r, 20));
    expect(up.from).toHaveLength(1);
  });

  it('times out a query nobody answers (E_TIMEOUT) and keeps the socket', async () => {
    const up = await upstream(() => {});
    const p = pool();
    await expect(p.query(LO, up.port, msg(1), 30, () => true)).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(p.open).toBe(1);
  });
});
