/**
 * Host streams over real loopback sockets: a dialed socket and an accepted
 * one report their own events (the listeners are shared by all sockets, so
 * each must find its own stream), bytes go both ways, half-close and reset
 * reach the far end, a refused dial is reported as such.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { blackholePort } from '../../../test/helpers/blackhole.js';
import { adoptSocket, dialTcp, pendingDialCount, type HostStreamEvents } from './host-stream.js';

/** Events a stream reported, in order; data as text. */
function recorder(): HostStreamEvents & { log: string[]; waitFor(entry: string): Promise<void> } {
  const log: string[] = [];
  const waiters: [string, () => void][] = [];
  const push = (e: string) => {
    log.push(e);
    for (const [w, done] of waiters) if (log.includes(w)) done();
  };
  return {
    log,
    waitFor: (entry) => (log.includes(entry) ? Promise.resolve() : new Promise((r) => waiters.push([entry, r]))),
    connected: () => push('connected'),
    refused: () => push('refused'),
    failed: () => push('failed'),
    data: (chunk) => push(`data:${Buffer.from(chunk).toString()}`),
    end: () => push('end'),
    reset: () => push('reset'),
    drain: () => push('drain'),
  };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A loopback listener; resolves its port and hands each accepted socket to `accepted`. */
async function listen(accepted: (s: Socket) => void): Promise<number> {
  const srv = createServer({ allowHalfOpen: true }, accepted);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as AddressInfo).port;
}

describe('host streams', () => {
  it('two dialed sockets each report their own connect, bytes and FIN; our bytes and FIN reach the host', async () => {
    const got: string[] = [];
    const port = await listen((s) => {
      s.once('data', (b) => {
        s.end(`echo ${b.toString()}`);
        s.on('end', () => got.push(`${b.toString()} ended`));
      });
    });
    const a = recorder();
    const b = recorder();
    const sa = dialTcp('127.0.0.1', port, 5000, a);
    const sb = dialTcp('127.0.0.1', port, 5000, b);
    await Promise.all([a.waitFor('connected'), b.waitFor('connected')]);
    let written = 0;
    sa.write(Buffer.from('one'), () => written++);
    sb.write(Buffer.from('two'), () => written++);
    await Promise.all([a.waitFor('end'), b.waitFor('end')]);
    expect(a.log).toEqual(['connected', 'data:echo one', 'end']);
    expect(b.log).toEqual(['connected', 'data:echo two', 'end']);
    expect(written).toBe(2);
    await new Promise<void>((r) => sa.end(r));
    await new Promise<void>((r) => sb.end(r));
    await new Promise((r) => setTimeout(r, 50));
    expect(got.sort()).toEqual(['one ended', 'two ended']);
    sa.destroy();
    sb.destroy();
  });

  it('a refused dial reports refused; reset() is a RST the host sees', async () => {
    const closed = await listen(() => {});
    servers.pop()!.close();
    const r = recorder();
    dialTcp('127.0.0.1', closed, 5000, r);
    await r.waitFor('refused');
    expect(r.log).toEqual(['refused']);

    let hostError = '';
    const port = await listen((s) => s.on('error', (e: NodeJS.ErrnoException) => (hostError = e.code ?? '')));
    const ev = recorder();
    const s = dialTcp('127.0.0.1', port, 5000, ev);
    await ev.waitFor('connected');
    await new Promise((res) => setTimeout(res, 20));
    s.reset();
    for (let i = 0; i < 50 && hostError === ''; i++) await new Promise((res) => setTimeout(res, 10));
    expect(hostError).toBe('ECONNRESET');
    expect(ev.log).toEqual(['connected']); // nothing reported after our own reset
  });

  it('reset() of a dial still in flight closes the socket at once (no RST to wait for), the dial timer gone with it', async () => {
    const hole = await blackholePort();
    try {
      const port = hole.port;
      const ev = recorder();
      const s = dialTcp('127.0.0.1', port, 60_000, ev);
      await new Promise((res) => setTimeout(res, 100));
      const sock = (s as unknown as { sock: Socket }).sock;
      expect(sock.connecting).toBe(true); // the SYN went unanswered: in flight
      s.reset();
      // Node's resetAndDestroy() waits for 'connect' to send its RST: on a dial that never completes,
      // the socket (and its fd) stayed until the kernel gave up on the SYN (about two minutes).
      await new Promise((res) => setTimeout(res, 50));
      expect(sock.destroyed).toBe(true);
      expect(ev.log).toEqual([]); // nothing reported after our own reset
    } finally {
      hole.close();
    }
  });

  it('an accepted socket (data events) reports bytes, and a reset from its peer', async () => {
    const adopted: { log: string[] }[] = [];
    const ready = recorder();
    const port = await listen((sock) => {
      const ev = recorder();
      adopted.push(ev);
      adoptSocket(sock, ev, true);
      ready.connected();
    });
    const { connect } = await import('node:net');
    const client = connect({ host: '127.0.0.1', port });
    await ready.waitFor('connected');
    client.write('hello');
    await new Promise((r) => setTimeout(r, 50));
    client.resetAndDestroy();
    for (let i = 0; i < 50 && !adopted[0]!.log.includes('reset'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(adopted[0]!.log).toEqual(['data:hello', 'reset']);
  });
});

/** A blackhole port (test/helpers/blackhole.ts), closed after the test. */
async function silentPort(): Promise<number> {
  const hole = await blackholePort();
  children.push(() => hole.close());
  return hole.port;
}
const children: (() => void)[] = [];
afterEach(() => {
  for (const k of children.splice(0)) k();
});

describe('dialTcp: the dial timeout (one table and one timer for every dial)', () => {
  it('a dial that connects or is refused leaves the table', async () => {
    const port = await listen(() => {});
    const r = recorder();
    const s = dialTcp('127.0.0.1', port, 10_000, r);
    expect(pendingDialCount()).toBe(1);
    await r.waitFor('connected');
    expect(pendingDialCount()).toBe(0);
    s.destroy();
    const closed = await listen(() => {});
    servers.pop()!.close();
    const q = recorder();
    dialTcp('127.0.0.1', closed, 10_000, q);
    await q.waitFor('refused');
    expect(pendingDialCount()).toBe(0);
  });

  it('times out dials nobody answers (failed), each at its own deadline', async () => {
    const port = await silentPort();
    const a = recorder();
    const b = recorder();
    const t0 = performance.now();
    const sa = dialTcp('127.0.0.1', port, 300, a);
    const sb = dialTcp('127.0.0.1', port, 150, b); // earlier than the deadline the timer is armed for
    expect(pendingDialCount()).toBe(2);
    await b.waitFor('failed');
    expect(a.log).toEqual([]);
    await a.waitFor('failed');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(299); // timers never fire early
    expect(pendingDialCount()).toBe(0);
    sa.destroy();
    sb.destroy();
  });

  it('forgets a dial closed before it completes, and reports nothing for it', async () => {
    const port = await silentPort();
    const r = recorder();
    const s = dialTcp('127.0.0.1', port, 10_000, r);
    expect(pendingDialCount()).toBe(1);
    s.destroy();
    expect(pendingDialCount()).toBe(0);
    await new Promise((res) => setTimeout(res, 20));
    expect(r.log).toEqual([]);
  });
});
