/**
 * bootStage (boot-stage.ts): the milestone reached and the line that says
 * it, from nothing seen to key refused, with times after the VM's start.
 */
import { describe, expect, it } from 'vitest';
import { bootStage, type BootStatus } from './boot-stage.js';

const base: BootStatus = { name: 'web', startedAt: 1_000_000, seed: 'net', firstFrameAt: null, lease: null, seedFetch: null, port22: null };
const fetched = { count: 3, firstAt: 1_038_000, lastAt: 1_038_200, documents: ['meta-data' as const, 'user-data' as const, 'vendor-data' as const], refused: 0 };

describe('bootStage', () => {
  it('walks the milestones in order, each with its own key', () => {
    const stages = [
      bootStage(base),
      bootStage({ ...base, firstFrameAt: 1_020_000 }),
      bootStage({ ...base, firstFrameAt: 1_020_000, lease: { at: 1_032_800, address: '10.0.2.15' }, port22: 'closed' }),
      bootStage({ ...base, firstFrameAt: 1_020_000, lease: { at: 1_032_800, address: '10.0.2.15' }, seedFetch: fetched, port22: 'closed' }),
      bootStage({ ...base, firstFrameAt: 1_020_000, lease: { at: 1_032_800, address: '10.0.2.15' }, seedFetch: fetched, port22: 'open' }, 'key-refused'),
    ];
    expect(stages.map((s) => s.text)).toEqual([
      'no frame yet (the guest has not brought its network up)',
      'frames seen 20.0 s after start, no DHCP lease yet',
      'DHCP lease 10.0.2.15 32.8 s after start; seed not fetched yet; port 22 closed (nothing listens yet)',
      'DHCP lease 10.0.2.15 32.8 s after start; seed fetched 38.2 s after start (meta-data, user-data, vendor-data); port 22 closed (nothing listens yet)',
      "DHCP lease 10.0.2.15 32.8 s after start; seed fetched 38.2 s after start (meta-data, user-data, vendor-data); port 22 open; key refused (vmnet's user or key is not set up in the guest)",
    ]);
    expect(new Set(stages.map((s) => s.key)).size).toBe(stages.length);
  });

  it('says nothing of a seed for a disk seed or no seed, and counts requests refused from other guests', () => {
    const leased = { ...base, firstFrameAt: 1_001_000, lease: { at: 1_002_000, address: '10.0.2.15' }, port22: 'closed' as const };
    expect(bootStage({ ...leased, seed: 'disk' }).text).toBe('DHCP lease 10.0.2.15 2.0 s after start; port 22 closed (nothing listens yet)');
    expect(bootStage({ ...leased, seed: null }).text).not.toMatch(/seed/);
    expect(bootStage({ ...leased, seedFetch: { ...fetched, count: 0, firstAt: null, lastAt: null, documents: [], refused: 2 } }).text).toMatch(/seed not fetched \(2 request\(s\) from another guest refused\)/);
  });
});
