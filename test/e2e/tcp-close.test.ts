/**
 * Issue 11, "Data integrity", end to end: bytes the gateway acknowledged to
 * the guest reach the host before the host socket is closed. A host server
 * half-closes first (its FIN reaches the guest at once) and then reads
 * slowly (about 200 KiB/s), so most of what the guest sends sits in the gateway's receive
 * buffer and the host socket's queue when the guest's FIN arrives and the
 * gateway's connection goes through TIME-WAIT to CLOSED. Three such uploads
 * of 4 MiB run at once, each from a real guest through the TCP NAT (busybox
 * `nc -e cat FILE`, which keeps sending after the peer's FIN); every one must
 * arrive whole, SHA-256 equal, ending in a clean EOF. Before the fix the host
 * saw a clean EOF after about 3.9 MB.
 */
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { bootGuest, DHCP, streamNic, withGateway } from './harness.js';

const FILE_KIB = 4096;
const UPLOADS = 3;

interface Received {
  bytes: number;
  sha: string;
  /** 'end': clean EOF; otherwise the socket error code. */
  how: string;
}

/** Half-closes at once, then reads about 200 KiB/s (8 KiB every 40 ms); reports each connection's bytes and how it ended. */
async function slowHalfClosingServer(): Promise<{ port: number; results: Promise<Received>[]; close(): Promise<void> }> {
  const results: Promise<Received>[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock: Socket) => {
    results.push(
      new Promise<Received>((resolve) => {
        const hash = createHash('sha256');
        let bytes = 0;
        let finished = false;
        const done = (how: string): void => {
          if (finished) return;
          finished = true;
          clearInterval(timer);
          resolve({ bytes, sha: hash.digest('hex'), how });
        };
        sock.end(); // the host half-closes first
        const timer = setInterval(() => {
          for (let chunk = sock.read(8192) as Buffer | null; chunk !== null; chunk = null) {
            hash.update(chunk);
            bytes += chunk.length;
          }
        }, 40);
        sock.on('end', () => {
          // whatever the stream still buffers came before the EOF
          for (let chunk = sock.read() as Buffer | null; chunk !== null; chunk = sock.read() as Buffer | null) {
            hash.update(chunk);
            bytes += chunk.length;
          }
          done('end');
        });
        sock.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
        sock.on('readable', () => {
          if (sock.readableEnded) done('end');
        });
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    results,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('TCP NAT teardown e2e', () => {
  it('a host that half-closes first and reads slowly receives every byte of three 4 MiB uploads, then a clean EOF', { timeout: 300_000 }, async () => {
    const server = await slowHalfClosingServer();
    try {
      await withGateway({ dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] }, async (gw, sock) => {
        const r = await bootGuest({
          name: 'tcp-close',
          memoryMiB: 256,
          nics: streamNic(sock),
          timeoutMs: 300_000,
          script: `${DHCP}
dd if=/dev/urandom of=/tmp/f bs=1024 count=${FILE_KIB} 2>/dev/null
sha256sum /tmp/f | sed 's/^/SUM /'
for i in $(seq ${UPLOADS}); do (nc 10.0.2.2 ${server.port} -e cat /tmp/f; echo "SENT $i $?") & done
wait
# nc is done once cat wrote the file; the kernel still sends what the gateway's window held back: wait for the sockets to close
port=$(printf ':%04X ' ${server.port})
n=0; while grep -q "$port" /proc/net/tcp && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done
if grep -q "$port" /proc/net/tcp; then echo STILL-OPEN; fi
`,
        });
        expect(r.exitCode, r.console).toBe(0);
        const sum = /SUM ([0-9a-f]{64})/.exec(r.output)?.[1];
        expect(sum, r.output).toBeDefined();
        for (let i = 1; i <= UPLOADS; i++) expect(r.output).toContain(`SENT ${i} 0`);
        expect(r.output).not.toContain('STILL-OPEN');
        expect(server.results).toHaveLength(UPLOADS);
        const got = await Promise.all(server.results);
        for (const x of got) expect(x).toEqual({ bytes: FILE_KIB * 1024, sha: sum, how: 'end' });
        // The gateway really did hold bytes past the guest side's close, and let them all out.
        expect(gw.gateway.tcpNat.counters.drained).toBeGreaterThanOrEqual(1);
        expect(gw.gateway.tcpNat.counters.drainResets).toBe(0);
      });
    } finally {
      await server.close();
    }
  });
});
