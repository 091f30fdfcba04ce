/**
 * The seed registry (seeds.ts) alone: paths and tokens, the ownership check
 * before anything is served, what a fetch records (GET only), one seed per
 * MAC, and the bounds on seeds and bytes.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SEED_BYTES, MAX_SEEDS, SeedRegistry, type SeedFiles } from './seeds.js';

const enc = (s: string) => new TextEncoder().encode(s);
const files = (n = 10): SeedFiles => ({ 'meta-data': enc('m'), 'user-data': new Uint8Array(n), 'vendor-data': new Uint8Array(0) });

function registry(): { reg: SeedRegistry; clock: { t: number } } {
  const clock = { t: 100 };
  let n = 0;
  return { reg: new SeedRegistry({ now: () => clock.t, token: () => (++n).toString(16).padStart(32, '0') }), clock };
}

describe('SeedRegistry', () => {
  it('answers only the owner of the MAC, and records GETs (not HEADs) of the documents', () => {
    const { reg, clock } = registry();
    const path = reg.add('52:54:00:AA:BB:CC', files());
    expect(path).toBe(`/vmnet/${'1'.padStart(32, '0')}/`);
    const owner = (mac: string) => mac === '52:54:00:aa:bb:cc';
    expect(reg.answer('GET', `${path}user-data`, () => false).status).toBe(403);
    expect(reg.answer('HEAD', `${path}user-data`, owner)).toEqual({ status: 200, body: new Uint8Array(10) });
    expect(reg.fetches('52:54:00:aa:bb:cc')!.count).toBe(0);
    clock.t = 200;
    expect(reg.answer('GET', `${path}meta-data`, owner).body).toEqual(enc('m'));
    clock.t = 300;
    reg.answer('GET', `${path}meta-data`, owner);
    expect(reg.fetches('52:54:00:AA:BB:CC')).toEqual({ count: 2, firstAt: 200, lastAt: 300, documents: ['meta-data'], refused: 1 });
    for (const bad of [`${path}`, `${path}../user-data`, `/vmnet/${'2'.padStart(32, '0')}/user-data`, '/vmnet//user-data', '/meta-data', 'user-data']) {
      expect(reg.answer('GET', bad, owner).status, bad).toBe(404);
    }
    expect(reg.answer('PUT', `${path}user-data`, owner).status).toBe(405);
  });

  it('keeps one seed per MAC: adding again replaces it (the old token is dead); removing frees its room', () => {
    const { reg } = registry();
    const first = reg.add('52:54:00:00:00:01', files());
    const second = reg.add('52:54:00:00:00:01', files());
    expect(second).not.toBe(first);
    expect(reg.size).toBe(1);
    expect(reg.answer('GET', `${first}user-data`, () => true).status).toBe(404);
    reg.removeMac('52:54:00:00:00:01');
    expect(reg.size).toBe(0);
    expect(reg.fetches('52:54:00:00:00:01')).toBeNull();
  });

  it('refuses a seed over 4 MiB, and seeds past MAX_SEEDS', () => {
    const { reg } = registry();
    expect(() => reg.add('52:54:00:00:00:01', files(MAX_SEED_BYTES))).toThrow(/4 MiB/);
    for (let i = 0; i < MAX_SEEDS; i++) reg.add(`52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, files());
    expect(() => reg.add('52:54:00:ff:ff:ff', files())).toThrow(/256 cloud-init seeds/);
  });
});
