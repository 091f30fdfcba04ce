/**
 * Per-guest flow shares: least recently used order per guest, the victim
 * rules (own oldest at the share, the biggest guest's oldest when full) and
 * the idle scan.
 */
import { describe, expect, it } from 'vitest';
import { GuestFlows } from './guest-flows.js';

const flow = (guest: number, name: string, lastUsed = 0) => ({ guest, name, lastUsed });

describe('GuestFlows', () => {
  it('a guest at its share gives up its own least recently used flow', () => {
    const t = new GuestFlows<ReturnType<typeof flow>>(10, 2);
    const a = flow(1, 'a');
    const b = flow(1, 'b');
    t.add(a);
    expect(t.victim(1)).toBeNull();
    t.add(b);
    expect(t.victim(1)).toBe(a);
    t.touch(a, 5);
    expect(t.victim(1)).toBe(b);
    expect(t.victim(2)).toBeNull(); // another guest still has room
  });

  it('a full table: the guest holding the most gives up its oldest', () => {
    const t = new GuestFlows<ReturnType<typeof flow>>(3, 3);
    const [a, b, c] = [flow(1, 'a'), flow(1, 'b'), flow(2, 'c')];
    for (const f of [a, b, c]) t.add(f);
    expect(t.victim(3)).toBe(a);
    expect(t.victim(2)).toBe(a);
    t.delete(a);
    expect(t.size).toBe(2);
    expect(t.victim(3)).toBeNull();
  });

  it('lists idle flows in LRU order, one guest and all', () => {
    const t = new GuestFlows<ReturnType<typeof flow>>(10, 10);
    const [a, b, c] = [flow(1, 'a', 0), flow(1, 'b', 50), flow(2, 'c', 10)];
    for (const f of [a, b, c]) t.add(f);
    expect(t.idle(60, 20).map((f) => f.name).sort()).toEqual(['a', 'c']);
    t.touch(a, 60);
    expect(t.idle(60, 20).map((f) => f.name)).toEqual(['c']);
    expect(t.ofGuest(1).map((f) => f.name)).toEqual(['b', 'a']);
    expect(t.all()).toHaveLength(3);
    t.delete(a);
    t.delete(a); // twice: no-op
    expect(t.size).toBe(2);
  });
});
