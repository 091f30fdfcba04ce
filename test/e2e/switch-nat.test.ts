/**
 * The gateway on a segment under a real guest (TCG): a bulk download through
 * the gateway's TCP NAT must reach the guest without the switch dropping the
 * gateway's frames. The gateway answers a guest's ACK from inside the
 * switch's delivery to it, so its segments take the switch's reentrant path;
 * that path and the guest's switch port must push back on the TCP NAT (as
 * the QEMU socket does on `--net user`) instead of dropping what overflows.
 * Segments it sends outside a delivery are built straight into the guest
 * port's output (cut-through); the download's SHA-256 checks both paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOLD_SCRIPT } from '../../src/guest/console.js';
import type { SwitchSnapshot } from '../../src/switch/server.js';
import { startSegment } from '../../src/switch/segment.js';
import { addTap, createNetns, runInNetns, ipCmd } from '../helpers/netns.js';
import { startTapRelay } from '../helpers/tap-relay.js';
import { privateTmp } from '../helpers/tmp.js';
import { bootGuest, DHCP, sha256, startHttpServer, streamNic, type TestHttpServer } from './harness.js';

const MB = 1024 * 1024;
let http: TestHttpServer;
beforeAll(async () => {
  http = await startHttpServer(20 * MB);
});
afterAll(async () => {
  await http.close();
});

/** Checks a snapshot taken while the guest's port was still there (a guest's port goes when it powers off). */
function expectNothingDropped(snap: SwitchSnapshot): void {
  expect(snap.counters.reentrantDropped, JSON.stringify(snap.counters)).toBe(0);
  expect(snap.ports.filter((p) => p.kind === 'stream')).toHaveLength(1); // the guest's port, checked below
  // Frames to the guest were held back by backpressure, not dropped at its port.
  const gw = snap.ports.find((p) => p.kind === 'internal')!;
  expect(gw.counters.rxFrames).toBeGreaterThan(10_000);
  for (const p of snap.ports) expect(p.counters.txDropped, `${p.name} ${JSON.stringify(p.counters)}`).toBe(0);
}

describe('gateway on a segment', () => {
  it('a guest downloads 20 MB through the NAT with nothing dropped on the reentrant path', { timeout: 300_000 }, async () => {
    const seg = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    let atEnd: SwitchSnapshot | null = null;
    try {
      const r = await bootGuest({
        name: 'seg-nat',
        memoryMiB: 256,
        nics: streamNic(seg.socket),
        timeoutMs: 300_000,
        // The reader starts late: the guest's receive window fills, then opens wide
        // at once, and the gateway answers that one window update with a burst.
        script: `${DHCP}wget -q -O - http://10.0.2.2:${http.port}/blob | (sleep 4; sha256sum) | sed 's/^/DOWNLOAD /'\n${HOLD_SCRIPT}\n`,
        onHold: async () => void (atEnd = seg.snapshot().switch),
      });
      expect(r.exitCode, r.console).toBe(0);
      expect(r.output, r.console).toContain(`DOWNLOAD ${sha256(http.blob)}`);
      expect(atEnd).not.toBeNull();
      expectNothingDropped(atEnd!);
    } finally {
      await seg.close();
    }
  });

  it('Linux TCP in a namespace downloads 20 MB through the NAT with nothing dropped on the reentrant path', { timeout: 300_000 }, async () => {
    // The kernel's TCP acknowledges far more per ACK than the TCG guest, and
    // opens its window in big steps: the gateway answers with bursts of
    // hundreds of segments from inside the switch's delivery.
    const seg = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    const ns = createNetns('vmnet-segnat');
    try {
      await runInNetns(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await addTap(ns, 'vmnet0');
      const relay = await startTapRelay({ netns: ns.name, tap: 'vmnet0', socket: seg.socket });
      try {
        await ipCmd('-n', ns.name, 'addr', 'add', '10.0.2.15/24', 'dev', 'vmnet0');
        await ipCmd('-n', ns.name, 'route', 'add', 'default', 'via', '10.0.2.2', 'dev', 'vmnet0');
        // The reader starts late, so the window closes and then opens wide.
        const out = await runInNetns(ns, 'sh', ['-c', `busybox wget -q -O - http://10.0.2.2:${http.port}/blob | (sleep 1; busybox sha256sum)`], 120_000);
        expect(out).toContain(sha256(http.blob));
        expectNothingDropped(seg.snapshot().switch); // the relay's port is still there
        // The kernel's bursts did fill the path: the gateway was told to hold back, and resumed.
        expect(seg.switch.switch.counters.heldBack).toBeGreaterThan(0);
        // Segments the gateway sent outside a delivery were built straight into the guest's port (switch.ts, "Cut-through").
        expect(seg.switch.switch.counters.cutThrough).toBeGreaterThan(0);
      } finally {
        await relay.stop();
      }
    } finally {
      ns.delete();
      await seg.close();
    }
  });
});
