import { describe, expect, it } from 'vitest';
import { Ip6Ids, isV6, V6_BASE } from './nat-addr.js';
import { formatIp6, parseIp6 } from '../wire/addr.js';

const view = (a: Uint8Array) => new DataView(a.buffer, a.byteOffset, a.byteLength);

describe('Ip6Ids', () => {
  it('interns addresses to ids from 2^32 up, found again from a packet view at any offset', () => {
    const ids = new Ip6Ids();
    const a = parseIp6('fd00::2')!;
    const id = ids.internAddress(a);
    expect(id).toBe(V6_BASE);
    expect(isV6(id)).toBe(true);
    expect(isV6(0xffffffff)).toBe(false);
    const packet = new Uint8Array(40);
    packet.set(a, 24);
    expect(ids.find(view(packet), 24)).toBe(id);
    expect(ids.find(view(packet), 8)).toBe(-1);
    expect(formatIp6(ids.address(id)!)).toBe('fd00::2');
  });

  it('forgets an id when its last holder releases it, and never reuses it', () => {
    const ids = new Ip6Ids();
    const a = parseIp6('fd00::15')!;
    const id = ids.internAddress(a);
    ids.hold(id);
    ids.hold(id);
    ids.collect(id);
    expect(ids.address(id)).toBeDefined();
    ids.release(id);
    expect(ids.size).toBe(1);
    ids.release(id);
    expect(ids.size).toBe(0);
    expect(ids.address(id)).toBeUndefined();
    const again = ids.internAddress(a);
    expect(again).toBeGreaterThan(id);
    ids.collect(again); // interned for one packet, nothing held it
    expect(ids.size).toBe(0);
  });

  it('stays consistent through growth and random removals (backward-shift deletion)', () => {
    const ids = new Ip6Ids();
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const live = new Map<string, number>();
    const addr = (n: number) => {
      const a = new Uint8Array(16);
      a[0] = 0xfd;
      // Few distinct values, so probe runs collide and wrap.
      new DataView(a.buffer).setUint32(12, n % 3000);
      return a;
    };
    for (let step = 0; step < 20000; step++) {
      const a = addr(rnd());
      const key = formatIp6(a);
      const id = live.get(key);
      if (id === undefined) {
        const n = ids.internAddress(a);
        ids.hold(n);
        live.set(key, n);
      } else if (rnd() % 2 === 0) {
        ids.release(id);
        live.delete(key);
      }
      if (step % 997 === 0) {
        expect(ids.size).toBe(live.size);
        for (const [k, n] of live) expect(ids.find(view(parseIp6(k)!), 0)).toBe(n);
      }
    }
    for (const [k, n] of live) expect(ids.find(view(parseIp6(k)!), 0)).toBe(n);
    for (const n of live.values()) ids.release(n);
    expect(ids.size).toBe(0);
  });
});
