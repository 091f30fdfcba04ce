/**
 * Proves the e2e harness against QEMU's own user net (libslirp): real guests
 * boot, get a DHCP lease, fetch from a host HTTP server through 10.0.2.2, and
 * their exit codes come back — including failures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootGuest, DHCP, parseLease, sha256, startHttpServer, type TestHttpServer } from './harness.js';

let http: TestHttpServer;
beforeAll(async () => {
  http = await startHttpServer();
});
afterAll(async () => {
  await http.close();
});

const qemuUser = { backend: { kind: 'qemu-user' as const, forwards: [] } };

describe('e2e harness on QEMU user net', () => {
  it('boots three guests in parallel; each leases and fetches from the host', async () => {
    const script = (i: number) => `${DHCP}
wget -q -O /tmp/blob http://10.0.2.2:${http.port}/blob || exit 91
echo "SHA $(sha256sum /tmp/blob | cut -d' ' -f1)"
exit ${i}
`;
    const results = await Promise.all([0, 1, 2].map((i) => bootGuest({ name: `harness-${i}`, nics: [qemuUser], script: script(i) })));
    const want = sha256(http.blob);
    results.forEach((r, i) => {
      expect(r.exitCode, r.console).toBe(i);
      const lease = parseLease(r.output);
      expect(lease?.ip).toBe('10.0.2.15');
      expect(lease?.router).toBe('10.0.2.2');
      expect(r.output).toContain(`SHA ${want}`);
    });
  });

  it('reports a failing guest script as a failure', async () => {
    const r = await bootGuest({ name: 'harness-fail', script: 'echo about to fail\nfalse || exit 7\n' });
    expect(r.exitCode).toBe(7);
    expect(r.output).toBe('about to fail\n');
  });

  it.each(['disk-raw', 'disk-qcow2'] as const)('boots from the bundled %s image through SeaBIOS', async (boot) => {
    const r = await bootGuest({ name: `harness-${boot}`, boot, nics: [qemuUser], script: `${DHCP}wget -q -O - http://10.0.2.2:${http.port}/\n` });
    expect(r.exitCode, r.console).toBe(0);
    expect(r.output).toContain('hello from the host');
    expect(r.console).toContain('VMNET-READY');
  });
});
