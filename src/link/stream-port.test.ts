import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isVmnetError } from '../errors.js';
import { QEMU_MAX_FRAME } from './stream-framer.js';
import { connectStream, DEFAULT_MAX_QUEUED, listenStream, removeStaleSocket, StreamPort } from './stream-port.js';
import type { CloseReason, StreamListener, StreamPortOptions } from './stream-port.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmnet-link-'));
  chmodSync(dir, 0o700);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
const sockPath = (): string => join(dir, `s${seq++}.sock`);

/** Frame i: length varies, bytes encode i so loss/reorder/corruption is visible. */
function makeFrame(i: number): Uint8Array {
  const len = 14 + ((i * 577) % 1500);
  const f = new Uint8Array(len);
  for (let j = 0; j < len; j++) f[j] = (i + j * 13) & 0xff;
  f[0] = i & 0xff;
  f[1] = (i >>> 8) & 0xff;
  return f;
}

/** Collects copies of frames delivered to a port. */
function collect(port: StreamPort): Uint8Array[] {
  const got: Uint8Array[] = [];
  // Copy: `buf` may be a Buffer, whose slice() is a view (and the bytes are only lent).
  port.onFrame = (buf, _view, off, len) => got.push(Uint8Array.prototype.slice.call(buf, off, off + len));
  return got;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function closeReason(port: StreamPort): Promise<CloseReason> {
  return once(port, 'close').then(([r]) => r as CloseReason);
}

/** Listens, connects a client port, and returns both ends. */
async function pair(opts: ({ path: string } | { host: string; port: number }) & StreamPortOptions) {
  const accepted: StreamPort[] = [];
  const listener = await listenStream(opts, (p) => accepted.push(p));
  cleanups.push(() => listener.close());
  const addr = listener.address();
  const client = await connectStream(addr);
  cleanups.push(() => client.close());
  await until(() => accepted.length === 1);
  return { listener, client, server: accepted[0] as StreamPort };
}

function sameFrames(got: Uint8Array[], n: number): boolean {
  if (got.length !== n) return false;
  for (let i = 0; i < n; i++) {
    if (!Buffer.from(makeFrame(i)).equals(got[i] as Uint8Array)) return false;
  }
  return true;
}

async function exchange(client: StreamPort, server: StreamPort, n: number): Promise<void> {
  const atServer = collect(server);
  const atClient = collect(client);
  // client → server: copying path, sent in bursts so frames share writes.
  for (let i = 0; i < n; i++) client.sendFrame(makeFrame(i), 0, makeFrame(i).length);
  // server → client: frames built in place in the staging chunk.
  for (let i = 0; i < n; i++) {
    const f = makeFrame(i);
    expect(server.reserveFrame(f.length)).toBe(true);
    server.frameBuffer().set(f, server.frameOffset());
    server.commitFrame(f.length);
  }
  await until(() => atServer.length === n && atClient.length === n, 10_000);
  expect(sameFrames(atServer, n)).toBe(true);
  expect(sameFrames(atClient, n)).toBe(true);
  expect(server.rx.frames).toBe(n);
  expect(client.tx.frames).toBe(n);
}

describe('StreamPort over a unix socket', () => {
  it('creates the socket 0600 and carries many frames both ways, in order', async () => {
    const path = sockPath();
    const { client, server, listener } = await pair({ path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(listener.address()).toEqual({ path });
    await exchange(client, server, 3000);
  });

  it('sends frames built in place (reserveFrame/commitFrame) in order with copied ones, across chunk boundaries', async () => {
    const { client, server } = await pair({ path: sockPath() });
    const atServer = collect(server);
    const n = 400; // frames up to 1.5 KiB: several 64 KiB staging chunks
    for (let i = 0; i < n; i++) {
      const f = makeFrame(i);
      if (i % 3 === 0) {
        client.sendFrame(f, 0, f.length);
        continue;
      }
      expect(client.reserveFrame(f.length + 100)).toBe(true); // reserve more than is used
      const at = client.frameOffset();
      client.frameBuffer().set(f, at);
      expect(client.frameView().getUint8(at)).toBe(f[0]);
      client.commitFrame(f.length);
    }
    expect(client.reserveFrame(client.maxFrame + 1)).toBe(false);
    await until(() => atServer.length === n, 10_000);
    expect(sameFrames(atServer, n)).toBe(true);
    client.close();
    expect(client.reserveFrame(10)).toBe(false);
  });

  it('takes its reassembly buffer and staging chunks from a pool and gives them all back once closed', async () => {
    const out = new Set<Uint8Array>();
    let taken = 0;
    const pool = {
      take: (n: number) => {
        taken++;
        const b = new Uint8Array(n);
        out.add(b);
        return b;
      },
      give: (b: Uint8Array) => {
        expect(out.delete(b)).toBe(true); // each buffer given back once, and only ours
      },
    };
    const path = sockPath();
    const accepted: StreamPort[] = [];
    const listener = await listenStream({ path, pool }, (p) => accepted.push(p));
    cleanups.push(() => listener.close());
    const client = await connectStream({ path });
    cleanups.push(() => client.close());
    await until(() => accepted.length === 1);
    const server = accepted[0]!;
    const atClient = collect(client);
    for (let i = 0; i < 500; i++) server.sendFrame(makeFrame(i), 0, makeFrame(i).length);
    await until(() => atClient.length === 500, 10_000);
    expect(sameFrames(atClient, 500)).toBe(true);
    expect(taken).toBeGreaterThanOrEqual(2); // the reassembly buffer and at least one chunk
    const closed = closeReason(server);
    client.close();
    await closed;
    await until(() => out.size === 0);
  });

  it('reports local and peer closes, and removes the socket file on listener close', async () => {
    const path = sockPath();
    const { client, server, listener } = await pair({ path });
    const serverClosed = closeReason(server);
    const clientClosed = closeReason(client);
    client.sendFrame(makeFrame(1), 0, 20);
    const got = collect(server);
    client.close();
    expect(client.closed).toBe(true);
    expect(await clientClosed).toBe('local');
    expect(await serverClosed).toBe('peer-closed');
    expect(got.length).toBe(1); // sent before close: flushed, not lost
    expect(client.sendFrame(makeFrame(2), 0, 20)).toBe(false);
    expect(client.tx.dropped).toBe(1);
    await listener.close();
    expect(existsSync(path)).toBe(false);
  });

  it('closes only the port whose peer hangs up mid-frame', async () => {
    const path = sockPath();
    const ports: StreamPort[] = [];
    const listener = await listenStream({ path }, (p) => ports.push(p));
    cleanups.push(() => listener.close());
    const bad = net.connect({ path });
    const good = await connectStream({ path });
    cleanups.push(() => good.close());
    await until(() => ports.length === 2);
    const reasons = ports.map((p) => closeReason(p));
    // Half a frame: prefix says 100, only 10 bytes follow.
    const partial = Buffer.alloc(14);
    partial.writeUInt32BE(100, 0);
    bad.end(partial);
    const first = await Promise.race(reasons);
    expect(first).toBe('mid-frame');
    const badPort = ports.find((p) => p.closed) as StreamPort;
    expect(badPort.rx.truncatedAtClose).toBe(1);
    expect(listener.ports.size).toBe(1);
    // The other port still works.
    const goodPort = ports.find((p) => !p.closed) as StreamPort;
    const got = collect(goodPort);
    good.sendFrame(makeFrame(0), 0, makeFrame(0).length);
    await until(() => got.length === 1);
    expect(goodPort.closed).toBe(false);
  });

  it("closes a port with reason oversize on a length prefix beyond QEMU's own limit", async () => {
    const path = sockPath();
    const ports: StreamPort[] = [];
    const listener = await listenStream({ path, maxFrame: 1600 }, (p) => ports.push(p));
    cleanups.push(() => listener.close());
    const raw = net.connect({ path });
    raw.on('error', () => {});
    const rawClosed = once(raw, 'close');
    await until(() => ports.length === 1);
    const reason = closeReason(ports[0] as StreamPort);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(QEMU_MAX_FRAME + 1, 0); // 1601 would be honest: skipped (stream-framer.ts)
    raw.write(prefix);
    expect(await reason).toBe('oversize');
    expect(ports[0]?.rx.oversize).toBe(1);
    await rawClosed; // the peer sees the connection dropped
  });

  it('signals congestion and drain when the peer stops reading', async () => {
    const path = sockPath();
    const { client, server } = await pair({ path });
    client.pauseReading();
    const frame = new Uint8Array(1500);
    let sent = 0;
    while (!server.isCongested() && sent < 100_000) {
      server.sendFrame(frame, 0, frame.length);
      sent++;
    }
    expect(server.isCongested()).toBe(true);
    expect(server.sendFrame(frame, 0, frame.length)).toBe(false); // queued, but says "stop"
    sent++;
    const got = collect(client);
    const drained = once(server, 'drain');
    client.resumeReading();
    await drained;
    expect(server.isCongested()).toBe(false);
    await until(() => got.length === sent, 10_000);
  });

  it('bounds its output queue: toward a peer that never reads, frames beyond maxQueued are dropped and counted, the port stays up', async () => {
    const maxQueued = 1024 * 1024;
    const { client, server } = await pair({ path: sockPath(), maxQueued });
    client.pauseReading();
    const frame = new Uint8Array(1500);
    let accepted = 0;
    let reserved = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 1000; i++) {
        const before = server.tx.overflow;
        server.sendFrame(frame, 0, frame.length);
        if (server.tx.overflow === before) accepted++;
        if (server.reserveFrame(1500)) {
          reserved++;
          server.commitFrame(1500);
        }
      }
      await new Promise((r) => setImmediate(r)); // the staged chunk goes to the socket; the kernel takes what it can
      expect(server.queuedBytes).toBeLessThanOrEqual(maxQueued);
    }
    expect(server.tx.overflow).toBeGreaterThan(35_000); // of 40,000 sendFrame calls (refused reservations are not sends)
    expect(server.closed).toBe(false);
    // Once the peer reads again, everything that was accepted arrives, and later frames flow.
    const got = collect(client);
    client.resumeReading();
    await until(() => got.length === accepted + reserved, 20_000);
    expect(server.sendFrame(frame, 0, frame.length)).toBe(true);
    await until(() => got.length === accepted + reserved + 1, 5_000);
  });

  it('has a default output bound', async () => {
    const { client, server } = await pair({ path: sockPath() });
    client.pauseReading();
    const frame = new Uint8Array(1500);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 5000; i++) server.sendFrame(frame, 0, frame.length);
      await new Promise((r) => setImmediate(r));
    }
    expect(server.queuedBytes).toBeLessThanOrEqual(DEFAULT_MAX_QUEUED);
    expect(server.tx.overflow).toBeGreaterThan(0);
  });

  it('sends the frames of every I/O callback of one event-loop turn in one socket write, in order', async () => {
    const { client, server } = await pair({ path: sockPath() });
    const got = collect(client);
    // Two host-like sockets, both readable when the loop next polls: their
    // callbacks run in one poll phase, and each sends frames on the port.
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const accepted: net.Socket[] = [];
    srv.on('connection', (s) => accepted.push(s));
    const port = (srv.address() as net.AddressInfo).port;
    const dialed = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
    await Promise.all(dialed.map((d) => once(d, 'connect')));
    await until(() => accepted.length === 2);
    cleanups.push(() => [...dialed, ...accepted].forEach((s) => s.destroy()));
    let next = 0;
    for (const a of accepted) {
      a.on('data', () => {
        for (let k = 0; k < 3; k++) {
          const f = makeFrame(next++);
          server.sendFrame(f, 0, f.length);
        }
      });
    }
    const writes: number[] = [];
    const write = server.socket.write.bind(server.socket) as (chunk: Uint8Array, cb?: () => void) => boolean;
    server.socket.write = ((chunk: Uint8Array, cb?: () => void) => {
      writes.push(chunk.length);
      return write(chunk, cb);
    }) as typeof server.socket.write;
    // Both writes reach the kernel now (small writes complete synchronously), before the loop polls again.
    dialed[0]!.write('a');
    dialed[1]!.write('b');
    await until(() => got.length === 6);
    expect(sameFrames(got, 6)).toBe(true);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toBe([0, 1, 2, 3, 4, 5].reduce((n, i) => n + 4 + makeFrame(i).length, 0));
  });

  it('keeps frame order and boundaries from many event-loop turns toward a peer that stops reading, within the bound', async () => {
    const maxQueued = 512 * 1024;
    const { client, server } = await pair({ path: sockPath(), maxQueued });
    client.pauseReading();
    let i = 0;
    let dropped = 0;
    const sentIds: number[] = [];
    // 200 turns of 25 frames each: far more than the bound, so many are refused.
    for (let turn = 0; turn < 200; turn++) {
      for (let k = 0; k < 25; k++, i++) {
        const f = makeFrame(i);
        const before = server.tx.overflow;
        server.sendFrame(f, 0, f.length);
        if (server.tx.overflow === before) sentIds.push(i);
        else dropped++;
      }
      expect(server.queuedBytes).toBeLessThanOrEqual(maxQueued);
      await new Promise((r) => setImmediate(r));
    }
    expect(dropped).toBeGreaterThan(0);
    expect(server.tx.overflow).toBe(dropped);
    const got = collect(client);
    client.resumeReading();
    await until(() => got.length === sentIds.length, 20_000);
    // Exactly the accepted frames, each whole, in the order sent.
    for (let k = 0; k < sentIds.length; k++) expect(Buffer.from(makeFrame(sentIds[k]!)).equals(got[k]!)).toBe(true);
    expect(server.closed).toBe(false);
  });

  it('drops and counts frames over maxFrame', async () => {
    const { client } = await pair({ path: sockPath() });
    expect(client.reserveFrame(client.maxFrame + 1)).toBe(false);
    expect(client.sendFrame(new Uint8Array(client.maxFrame + 1), 0, client.maxFrame + 1)).toBe(false);
    expect(client.tx.dropped).toBe(1);
  });
});

describe('StreamPort over TCP 127.0.0.1', () => {
  it('listens on an ephemeral port and carries frames both ways', async () => {
    const { client, server, listener } = await pair({ host: '127.0.0.1', port: 0 });
    const addr = listener.address();
    expect('port' in addr && addr.port > 0 && addr.host === '127.0.0.1').toBe(true);
    await exchange(client, server, 1000);
  });

  it('maps a taken port to E_PORT_IN_USE', async () => {
    const { listener } = await pair({ host: '127.0.0.1', port: 0 });
    const addr = listener.address();
    if (!('port' in addr)) throw new Error('expected TCP');
    const err = await listenStream({ port: addr.port }, () => {}).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code).toBe('E_PORT_IN_USE');
  });
});

describe('stale unix socket files', () => {
  it('removes a socket file nobody listens on, then listens', async () => {
    const live = sockPath();
    const stale = sockPath();
    const srv = net.createServer().listen(live);
    await once(srv, 'listening');
    linkSync(live, stale); // a second name for the socket inode...
    srv.close(); // ...which outlives the server: a stale socket file
    await once(srv, 'close');
    expect(statSync(stale).isSocket()).toBe(true);
    const { client, server } = await pair({ path: stale });
    await exchange(client, server, 10);
  });

  it('refuses to replace a live socket or a non-socket file', async () => {
    const path = sockPath();
    const { listener } = await pair({ path });
    const err = await listenStream({ path }, () => {}).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code).toBe('E_PORT_IN_USE');
    // The probe was a real (momentary) connection; it closes as peer-closed.
    await until(() => listener.ports.size === 1);

    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'x');
    const err2 = await removeStaleSocket(file).catch((e: unknown) => e);
    expect(isVmnetError(err2) && err2.code).toBe('E_PORT_IN_USE');
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('connectStream to a missing socket fails with E_NO_FILE', async () => {
    const err = await connectStream({ path: join(dir, 'missing.sock') }).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code).toBe('E_NO_FILE');
  });

  it('rejects ambiguous or missing endpoints with E_USAGE', async () => {
    const e1 = await listenStream({ path: 'x', port: 1 }, () => {}).catch((e: unknown) => e);
    const e2 = await connectStream({}).catch((e: unknown) => e);
    expect(isVmnetError(e1) && e1.code).toBe('E_USAGE');
    expect(isVmnetError(e2) && e2.code).toBe('E_USAGE');
  });
});

describe('portFromFd', () => {
  /**
   * A real inherited descriptor, as QEMU's `-netdev socket,fd=N` peer gets
   * one: the accepted socket is passed to a child Node process as fd 3 and the
   * child (this module, transpiled on the fly) echoes frames back.
   */
  it('adopts an inherited socket descriptor in a child process', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const out = join(dir, 'child');
    mkdirSync(join(out, 'link'), { recursive: true });
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    for (const rel of ['../errors.ts', 'stream-framer.ts', 'stream-port.ts']) {
      const src = readFileSync(join(here, rel), 'utf8');
      const js = ts.transpileModule(src, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      }).outputText;
      writeFileSync(join(out, rel === '../errors.ts' ? 'errors.js' : join('link', rel.replace(/\.ts$/, '.js'))), js);
    }
    writeFileSync(
      join(out, 'child.js'),
      `import { portFromFd } from './link/stream-port.js';
       const port = portFromFd(3);
       port.onFrame = (buf, _view, off, len) => { port.sendFrame(buf, off, len); };
       port.on('close', (reason) => { process.stdout.write('closed ' + reason + '\\n'); });
       process.stdout.write('ready\\n');`,
    );

    const path = sockPath();
    const server = net.createServer({ pauseOnConnect: true });
    server.listen(path);
    await once(server, 'listening');
    cleanups.push(() => new Promise((r) => server.close(r)));
    const accepted = once(server, 'connection');
    const client = await connectStream({ path });
    cleanups.push(() => client.close());
    const [sock] = (await accepted) as [net.Socket];

    const child = spawn(process.execPath, [join(out, 'child.js')], { stdio: ['ignore', 'pipe', 'inherit', sock] });
    sock.destroy(); // the child holds its own copy of the descriptor
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    cleanups.push(() => child.kill());
    await until(() => output.includes('ready'), 10_000);

    const echoed = collect(client);
    for (let i = 0; i < 200; i++) client.sendFrame(makeFrame(i), 0, makeFrame(i).length);
    await until(() => echoed.length === 200, 10_000);
    expect(sameFrames(echoed, 200)).toBe(true);

    client.close();
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(output).toContain('closed peer-closed');
  });
});
