/**
 * Starting a background switch (daemon.ts startOrFind/spawnDaemon): a
 * daemon that fails before serving is reported at once with the reason from
 * its log — not taken for a lost start race and waited out until the start
 * timeout — while starters that really race for one name still all find the
 * one switch that won.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureSwitch, removeSwitch } from '../../src/switch/daemon.js';

const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-swstart-'));
afterAll(async () => {
  await removeSwitch('race', { force: true, runtimeDir });
});

it('a daemon that exits before serving fails the start with its own reason', async () => {
  // The pcap file cannot be created: the daemon exits with code 2 after making the switch directory.
  const err = await ensureSwitch('nopcap', { runtimeDir, gateway: false, pcap: join(runtimeDir, 'no', 'such', 'dir', 'x.pcap'), timeoutMs: 60_000 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toMatch(/^switch nopcap exited \(code 2\) before serving: .*cannot open pcap file/);
  expect((err as { code?: string }).code).toBe('E_USAGE');
});

it('four starters racing for one name all get the switch that won', async () => {
  const got = await Promise.all([1, 2, 3, 4].map(() => ensureSwitch('race', { runtimeDir, gateway: false })));
  expect(new Set(got.map((s) => s.pid)).size).toBe(1);
  expect(got.filter((s) => s.started).length).toBeGreaterThanOrEqual(1);
});
