/**
 * The HostStream ↔ Duplex adapter (duplex-stream.ts): lent guest bytes are
 * copied and released after write() returns, the readable side pushes back
 * (write false, then drain once the service reads), service writes are
 * sliced and held while the NAT pauses the stream (their callback too), FIN
 * each way, resets each way, the idle and lifetime bounds, and node:http
 * serving a request through it.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HostStreamEvents } from './host-stream.js';
import { duplexStream, SLICE } from './duplex-stream.js';

class Events implements HostStreamEvents {
  connectedN = 0;
  ends = 0;
  resets = 0;
  drains = 0;
  readonly out: Uint8Array[] = [];
  /** Called inside data(): lets a test pause or reset from there, as the NAT does. */
  onData: (n: number) => void = () => undefined;
  connected() {
    this.connectedN++;
  }
  refused() {
    throw new Error('not expected');
  }
  failed() {
    throw new Error('not expected');
  }
  data(c: Uint8Array) {
    this.out.push(c.slice());
    this.onData(c.length);
  }
  end() {
    this.ends++;
  }
  reset() {
    this.resets++;
  }
  drain() {
    this.drains++;
  }
  bytes(): number {
    return this.out.reduce((a, c) => a + c.length, 0);
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const LONG = { idleMs: 60_000, lifetimeMs: 60_000 };

afterEach(() => {
  vi.useRealTimers();
});

describe('duplexStream', () => {
  it('reports connected in a microtask; copies lent guest bytes and releases them after write() returns', async () => {
    const ev = new Events();
    const { host, socket } = duplexStream(ev, LONG);
    expect(ev.connectedN).toBe(0);
    await tick();
    expect(ev.connectedN).toBe(1);
    const lent = new Uint8Array([1, 2, 3]);
    let done = false;
    expect(host.write(lent, () => (done = true))).toBe(true);
    expect(done).toBe(false); // never inside write()
    await Promise.resolve();
    expect(done).toBe(true);
    lent.fill(9); // the receive buffer is reused: the service must not see it
    expect([...(socket.read() as Buffer)]).toEqual([1, 2, 3]);
    socket.destroy();
  });

  it('pushes back on the guest while the service does not read, and drains once it does', async () => {
    const ev = new Events();
    const { host, socket } = duplexStream(ev, LONG);
    const chunk = new Uint8Array(4096);
    let accepted = 0;
    while (host.write(chunk, () => undefined)) accepted++;
    expect(accepted).toBeLessThan(8); // the high-water mark (16 KiB), not everything
    expect(ev.drains).toBe(0);
    while (socket.read() !== null);
    await tick();
    expect(ev.drains).toBe(1);
    socket.destroy();
  });

  it('hands service writes over in slices, holding the rest and the callback while paused', async () => {
    const ev = new Events();
    const { host, socket } = duplexStream(ev, LONG);
    const big = Buffer.alloc(3 * SLICE + 100, 7);
    ev.onData = () => host.pause(); // the NAT's send buffer is full after every slice
    let written = false;
    socket.write(big, () => (written = true));
    await tick();
    expect(ev.out.length).toBe(1);
    expect(ev.out[0]!.length).toBe(SLICE);
    expect(written).toBe(false);
    for (let i = 0; i < 3; i++) {
      host.resume();
      await tick();
    }
    expect(ev.bytes()).toBe(big.length);
    expect(ev.out.every((c) => c.length <= SLICE)).toBe(true);
    expect(written).toBe(true);
    socket.destroy();
  });

  it('ends each way: the service end() is our FIN after its data; the guest FIN ends the readable side', async () => {
    const ev = new Events();
    const { host, socket } = duplexStream(ev, LONG);
    let ended = false;
    socket.on('end', () => (ended = true));
    socket.resume();
    let endDone = false;
    host.end(() => (endDone = true));
    await tick();
    expect(endDone).toBe(true);
    expect(ended).toBe(true);
    socket.end('bye');
    await tick();
    expect(Buffer.concat(ev.out).toString()).toBe('bye');
    expect(ev.ends).toBe(1);
    expect(ev.resets).toBe(0);
    await tick();
    expect(socket.destroyed).toBe(true); // both sides ended: a quiet close
    expect(ev.resets).toBe(0);
  });

  it('a service that destroys the connection before its FIN resets the guest; the NAT resetting destroys it quietly', async () => {
    const ev = new Events();
    const a = duplexStream(ev, LONG);
    a.socket.destroy();
    expect(ev.resets).toBe(1);
    const ev2 = new Events();
    const b = duplexStream(ev2, LONG);
    let closed = false;
    b.socket.on('close', () => (closed = true));
    b.host.reset();
    await tick();
    expect(closed).toBe(true);
    expect(ev2.resets).toBe(0);
    // Writes after the NAT let go are taken and dropped.
    let done = false;
    expect(b.host.write(new Uint8Array(1), () => (done = true))).toBe(true);
    await Promise.resolve();
    expect(done).toBe(true);
  });

  it('a connection idle for idleMs, or open for lifetimeMs however busy, is reset', async () => {
    vi.useFakeTimers();
    const ev = new Events();
    duplexStream(ev, { idleMs: 1000, lifetimeMs: 60_000 });
    vi.advanceTimersByTime(999);
    expect(ev.resets).toBe(0);
    vi.advanceTimersByTime(2);
    expect(ev.resets).toBe(1);

    const busy = new Events();
    const { host } = duplexStream(busy, { idleMs: 1000, lifetimeMs: 5000 });
    for (let t = 0; t < 4500; t += 500) {
      host.write(new Uint8Array(1), () => undefined);
      vi.advanceTimersByTime(500);
    }
    expect(busy.resets).toBe(0);
    vi.advanceTimersByTime(600);
    expect(busy.resets).toBe(1);

    // Our FIN went out, the guest never sends its own: the flow is reset when the time runs out too.
    const lingering = new Events();
    const l = duplexStream(lingering, { idleMs: 1000, lifetimeMs: 60_000 });
    l.socket.end();
    await vi.advanceTimersByTimeAsync(0);
    expect(lingering.ends).toBe(1);
    vi.advanceTimersByTime(1001);
    expect(lingering.resets).toBe(1);
  });

  it('carries node:http: pipelined GETs answered in order, then FIN after Connection: close', async () => {
    // Connection: close set by the handler (maxRequestsPerSocket alone sends the header but keeps the socket open).
    const server = createServer((req, res) => res.writeHead(200, req.url === '/b' ? { connection: 'close' } : {}).end(`you asked for ${req.url}`));
    const ev = new Events();
    const { host, socket } = duplexStream(ev, LONG);
    server.emit('connection', socket);
    host.write(Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n'), () => undefined);
    for (let i = 0; i < 10 && ev.ends === 0; i++) await tick();
    const text = Buffer.concat(ev.out).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*you asked for \/a[\s\S]*HTTP\/1\.1 200 OK[\s\S]*connection: close[\s\S]*you asked for \/b\r\n0\r\n\r\n$/i);
    expect(ev.ends).toBe(1);
    expect(ev.resets).toBe(0);
  });
});
