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

  it('forgets what a sweep does not retain, never reuses an id, and refuses new addresses when full', () => {
    const ids = new Ip6Ids(2);
    const a = parseIp6('fd00::15')!;
    const b = parseIp6('fd00::16')!;
    const id = ids.internAddress(a);
    const other = ids.internAddress(b);
    expect(ids.internAddress(parseIp6('fd00::17')!)).toBe(-1);
    expect(ids.internAddress(a)).toBe(id);
    ids.retain(new Set([other]));
    expect(ids.size).toBe(1);
    expect(ids.address(id)).toBeUndefined();
    expect(formatIp6(ids.address(other)!)).toBe('fd00::16');
    const again = ids.internAddress(a);
    expect(again).toBeGreaterThan(other);
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
        live.set(key, ids.internAddress(a));
      } else if (rnd() % 2 === 0) {
        live.delete(key);
        ids.retain(new Set(live.values()));
      }
      if (step % 997 === 0) {
        expect(ids.size).toBe(live.size);
        for (const [k, n] of live) expect(ids.find(view(parseIp6(k)!), 0)).toBe(n);
      }
    }
    for (const [k, n] of live) expect(ids.find(view(parseIp6(k)!), 0)).toBe(n);
    ids.retain(new Set());
    expect(ids.size).toBe(0);
  });
});
