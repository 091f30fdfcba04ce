/**
 * The in-process DNS-over-TCP stream (dns-stream.ts) against a fake DNS
 * service whose answers the test releases: queries cut from chunks split at
 * every position, answers in query order whatever order they come in, at most
 * MAX_IN_FLIGHT queries out with the written bytes kept (their `done`
 * withheld) beyond that, pause() holding replies, FIN after the last answer.
 */
import { describe, expect, it } from 'vitest';
import type { HostStream, HostStreamEvents } from './host-stream.js';
import { dnsStream, MAX_IN_FLIGHT } from './dns-stream.js';
import { TcpBudget, type BudgetAccount } from '../../tcp/budget.js';

/** A DNS "query" for these tests: 2 bytes of id, then filler. */
function query(id: number, size = 20): Uint8Array {
  const q = new Uint8Array(size);
  q[0] = id >>> 8;
  q[1] = id & 255;
  return q;
}

function framed(qs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(qs.reduce((a, q) => a + 2 + q.length, 0));
  let o = 0;
  for (const q of qs) {
    out[o] = q.length >>> 8;
    out[o + 1] = q.length & 255;
    out.set(q, o + 2);
    o += 2 + q.length;
  }
  return out;
}

/** Ids of the length-prefixed replies in `bytes`. */
function replyIds(chunks: Uint8Array[]): number[] {
  const all = Buffer.concat(chunks);
  const ids: number[] = [];
  for (let o = 0; o + 2 <= all.length; ) {
    const n = all.readUInt16BE(o);
    ids.push(all.readUInt16BE(o + 2));
    o += 2 + n;
  }
  return ids;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

class Rig {
  readonly pending = new Map<number, (a: Uint8Array | null) => void>();
  readonly asked: number[] = [];
  readonly out: Uint8Array[] = [];
  drains = 0;
  ended = 0;
  readonly ev: HostStreamEvents = {
    connected: () => undefined,
    refused: () => undefined,
    failed: () => undefined,
    data: (c) => void this.out.push(c.slice()),
    end: () => void this.ended++,
    reset: () => undefined,
    drain: () => void this.drains++,
  };
  readonly stream: HostStream;
  constructor(readonly account: BudgetAccount | null = null) {
    // Made here, not as a field initializer: those run before `account` is set.
    this.stream = dnsStream(
      {
        query: (q: Uint8Array) =>
          new Promise<Uint8Array | null>((resolve) => {
            const id = (q[0]! << 8) | q[1]!;
            this.asked.push(id);
            this.pending.set(id, resolve);
          }),
      },
      this.ev,
      undefined,
      this.account,
    );
  }
  answer(id: number, size = 30): void {
    this.pending.get(id)!(query(id, size));
    this.pending.delete(id);
  }
}

describe('dnsStream', () => {
  it('cuts queries split at every byte position, answers in query order', async () => {
    const r = new Rig();
    const bytes = framed([query(1), query(2, 300), query(3, 2)]);
    let doneCount = 0;
    for (let i = 0; i < bytes.length; i++) expect(r.stream.write(bytes.subarray(i, i + 1), () => doneCount++)).toBe(true);
    await tick();
    expect(doneCount).toBe(bytes.length);
    expect(r.asked).toEqual([1, 2, 3]);
    r.answer(3);
    r.answer(2);
    await tick();
    expect(r.out).toEqual([]); // 1 not answered yet: nothing may overtake it
    r.answer(1);
    await tick();
    expect(replyIds(r.out)).toEqual([1, 2, 3]);
  });

  it('keeps at most MAX_IN_FLIGHT queries out and the rest of the bytes unconsumed until answers go out', async () => {
    const r = new Rig();
    const n = MAX_IN_FLIGHT * 3;
    let done = 0;
    const more = r.stream.write(framed(Array.from({ length: n }, (_, i) => query(i))), () => done++);
    expect(more).toBe(false);
    await tick();
    expect(r.asked).toHaveLength(MAX_IN_FLIGHT);
    expect(done).toBe(0); // the bytes stay the caller's: the guest's window stays closed
    for (let i = 0; i < n; i++) {
      await tick();
      r.answer(i);
    }
    await tick();
    expect(replyIds(r.out)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(done).toBe(1);
    expect(r.drains).toBe(1);
  });

  it('holds replies while paused, which also stops parsing; resume delivers them in order', async () => {
    const r = new Rig();
    r.stream.pause();
    const n = MAX_IN_FLIGHT + 5;
    let done = 0;
    r.stream.write(framed(Array.from({ length: n }, (_, i) => query(i))), () => done++);
    for (let i = 0; i < MAX_IN_FLIGHT; i++) r.answer(i);
    await tick();
    expect(r.out).toEqual([]);
    expect(r.asked).toHaveLength(MAX_IN_FLIGHT); // answered but undelivered replies still count
    r.stream.resume();
    await tick();
    for (let i = MAX_IN_FLIGHT; i < n; i++) r.answer(i);
    await tick();
    expect(replyIds(r.out)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(done).toBe(1);
  });

  it('answers every query before its FIN', async () => {
    const r = new Rig();
    r.stream.write(framed([query(7), query(8)]), () => undefined);
    let finished = false;
    r.stream.end(() => (finished = true));
    await tick();
    expect(finished).toBe(true);
    expect(r.ended).toBe(0);
    r.answer(7);
    r.answer(8);
    await tick();
    expect(replyIds(r.out)).toEqual([7, 8]);
    expect(r.ended).toBe(1);
  });

  it('holds a query split across chunks in memory in proportion to the bytes that came, not 64 KiB per connection', async () => {
    // A guest opens many connections and sends one byte (or a prefix announcing a big query) on each.
    const streams: unknown[] = [];
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 1000; i++) {
      const r = new Rig();
      r.stream.write(new Uint8Array([0xff]), () => undefined);
      r.stream.write(new Uint8Array([0xff, 1, 2, 3]), () => undefined);
      streams.push(r);
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(streams).toHaveLength(1000);
    expect(grown).toBeLessThan(8 * 1024 * 1024); // 64 MiB before: a whole message buffer per connection
  });

  it('assembles a query of the largest size from one-byte chunks', async () => {
    const r = new Rig();
    const q = query(9, 65535);
    q.fill(0xab, 2);
    const bytes = framed([q]);
    for (let i = 0; i < bytes.length; i += 997) r.stream.write(bytes.subarray(i, Math.min(bytes.length, i + 997)), () => undefined);
    await tick();
    expect(r.asked).toEqual([9]);
  });

  it("charges replies it holds to the connection's TCP budget: an answer past the guest's share becomes SERVFAIL, and all is given back", async () => {
    const budget = new TcpBudget(1024 * 1024, 150_000);
    const account = budget.acquire('guest');
    const r = new Rig(account);
    r.stream.pause(); // the guest does not read: answers are held
    r.stream.write(framed([query(1), query(2), query(3)]), () => undefined);
    r.answer(1, 60_000);
    r.answer(2, 60_000);
    r.answer(3, 60_000); // 180,000 would pass the 150,000 share
    await tick();
    expect(account.used).toBe(120_000 + 12); // two answers, and a 12-byte SERVFAIL (these fake queries carry no question)
    expect(budget.counters.limited).toBe(1);
    r.stream.resume();
    await tick();
    const all = Buffer.concat(r.out);
    const sizes: number[] = [];
    const rcodes: number[] = [];
    for (let o = 0; o < all.length; o += 2 + all.readUInt16BE(o)) {
      sizes.push(all.readUInt16BE(o));
      rcodes.push(all[o + 2 + 3]! & 15);
    }
    expect(sizes.slice(0, 2)).toEqual([60_000, 60_000]);
    expect(rcodes[2]).toBe(2); // SERVFAIL
    expect(account.used).toBe(0); // delivered: the send buffer charges for it from here
    r.stream.pause();
    r.stream.write(framed([query(4)]), () => undefined);
    r.answer(4, 50_000);
    await tick();
    expect(account.used).toBe(50_000);
    r.stream.reset();
    expect(account.used).toBe(0);
  });
});
