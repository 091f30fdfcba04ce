/**
 * FairSlots tests: the fair-share table alone (no I/O, no clock): bounds,
 * refusals with their reason, and which query a full table evicts.
 */
import { describe, expect, it } from 'vitest';
import { FairSlots, type Slot, type SlotRefusal } from './fair-slots.js';

function table(total: number, perGuest: number) {
  const evicted: string[] = [];
  const slots = new FairSlots<string>({ total, perGuest, onEvict: (v) => void evicted.push(v) });
  /** Admits `n` queries named `${guest}:${i}` from `guest`; returns what admit gave for each. */
  const fill = (guest: number, n: number, from = 0): (Slot<string> | SlotRefusal)[] =>
    Array.from({ length: n }, (_, i) => slots.admit(guest, `${guest}:${from + i}`));
  return { slots, evicted, fill };
}

describe('FairSlots', () => {
  it('refuses a guest at its own cap, whatever room is left', () => {
    const { slots, fill } = table(10, 3);
    expect(fill(1, 4).at(-1)).toBe('guest');
    expect(slots.held(1)).toBe(3);
    expect(slots.size).toBe(3);
  });

  it('full table: the oldest query of the guest with the most in flight makes room for a guest with fewer', () => {
    const { slots, evicted, fill } = table(6, 4);
    fill(1, 4);
    fill(2, 2);
    expect(slots.admit(3, '3:0')).toMatchObject({ value: '3:0' });
    expect(evicted).toEqual(['1:0']);
    expect([slots.held(1), slots.held(2), slots.held(3), slots.size]).toEqual([3, 2, 1, 6]);
    // Next: guest 1 (3) and guest 2 (2) vs guest 3 (1): guest 1 still holds two more.
    slots.admit(3, '3:1');
    expect(evicted).toEqual(['1:0', '1:1']);
    // Now 2/2/2: nobody holds two more than guest 3, so it is refused.
    expect(slots.admit(3, '3:2')).toBe('full');
    expect(slots.size).toBe(6);
  });

  it('converges to equal shares: five guests flooding a table of 1024 keep about 205 each, and a sixth always gets in', () => {
    const { slots, evicted, fill } = table(1024, 256);
    for (let g = 1; g <= 4; g++) fill(g, 256);
    for (let round = 0; round < 300; round++) for (let g = 1; g <= 5; g++) slots.admit(g, `${g}:r${round}`);
    const held = [1, 2, 3, 4, 5].map((g) => slots.held(g));
    expect(Math.max(...held) - Math.min(...held)).toBeLessThanOrEqual(1);
    expect(held.reduce((a, b) => a + b)).toBe(1024);
    const before = evicted.length;
    expect(slots.admit(6, '6:0')).toMatchObject({ value: '6:0' });
    expect(evicted.length).toBe(before + 1);
  });

  it('release frees the slot once; an evicted entry released later changes nothing', () => {
    const { slots, evicted, fill } = table(2, 2);
    const [a, b] = fill(1, 2) as Slot<string>[];
    const c = slots.admit(2, '2:0') as Slot<string>;
    expect(evicted).toEqual(['1:0']);
    slots.release(a!);
    expect(slots.size).toBe(2);
    slots.release(b!);
    slots.release(b!);
    expect(slots.size).toBe(1);
    slots.release(c);
    expect(slots.size).toBe(0);
    expect(slots.held(1) + slots.held(2)).toBe(0);
  });

  it('queries ending out of order leave the rest in age order: evictions take the oldest still in flight', () => {
    const { slots, evicted, fill } = table(5, 5);
    const mine = fill(1, 5) as Slot<string>[];
    slots.release(mine[0]!);
    slots.release(mine[2]!);
    fill(2, 2); // the table is full again: 1 holds 3 (1:1, 1:3, 1:4), 2 holds 2
    expect(slots.admit(3, '3:0')).toMatchObject({ value: '3:0' });
    expect(slots.admit(3, '3:1')).toBe('full'); // 1 and 2 hold 2 each, 3 holds 1: nobody holds two more
    expect(evicted).toEqual(['1:1']);
    slots.release(mine[4]!);
    expect([slots.held(1), slots.size]).toEqual([1, 4]);
  });

  it('a full table held by one guest: a new guest takes a slot from it (guest key -1 too)', () => {
    const { slots, evicted, fill } = table(4, 4);
    fill(-1, 4);
    expect(slots.admit(8, '8:0')).toMatchObject({ value: '8:0' });
    expect(evicted).toEqual(['-1:0']);
  });
});
