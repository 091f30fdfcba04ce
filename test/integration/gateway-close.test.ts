/**
 * Gateway shutdown and port forwards, over real sockets: close() stops the
 * forwards' listeners before it waits for draining connections, so a host
 * client that arrives during that grace is refused instead of starting a
 * connection the forward's listener would then wait for (a listener closes
 * only once its accepted sockets are gone, and nothing would close this one).
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.js';
import { freePort } from '../helpers/ports.js';
import { privateTmp } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('gateway close', () => {
  it('refuses forwarded connections from its start, so one arriving while drains finish cannot keep it open', async () => {
    const hostPort = await freePort();
    const gw = await startGateway({
      socket: join(privateTmp(), 'gw.sock'),
      dnsUpstreams: [{ host: '127.0.0.1', port: 9 }],
      forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 22, guest: '10.0.2.15' }],
    });
    // A drain in progress at shutdown: the grace takes a while, and a host client comes meanwhile.
    const nat = gw.gateway.tcpNat;
    const closeAll = nat.closeAll.bind(nat);
    let client: Promise<string> = Promise.resolve('not tried');
    nat.closeAll = (graceMs) => {
      client = new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: hostPort });
        s.on('connect', () => resolve('accepted'));
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      return Promise.all([closeAll(graceMs), client.then(() => sleep(200))]).then(() => undefined);
    };
    const closed = gw.close().then(() => 'closed');
    expect(await Promise.race([closed, sleep(5000).then(() => 'still closing after 5 s')])).toBe('closed');
    expect(await client).toBe('ECONNREFUSED');
  });
});
