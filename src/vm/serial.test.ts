import net from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { CLIENT_CAP, SERIAL_LOG_CAP, SerialHub } from './serial.js';

/** A fake QEMU serial socket: returns the hub side and the "QEMU" side. */
async function pair(dir: string): Promise<{ hubSide: net.Socket; qemuSide: net.Socket; server: net.Server }> {
  const path = join(dir, 'serial.sock');
  let qemuSide!: net.Socket;
  const server = net.createServer((s) => (qemuSide = s));
  await new Promise<void>((r) => server.listen(path, r));
  const hubSide = net.createConnection(path);
  await new Promise<void>((r) => hubSide.once('connect', r));
  while (!qemuSide) await new Promise((r) => setTimeout(r, 5));
  qemuSide.on('error', () => undefined);
  return { hubSide, qemuSide, server };
}

const connect = (path: string) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });

/** Writes `total` bytes of guest output in small writes, as QEMU's UART does, yielding now and then. */
async function print(qemu: net.Socket, total: number, chunk = 64): Promise<void> {
  const line = Buffer.alloc(chunk, 'x'.charCodeAt(0));
  for (let sent = 0; sent < total; sent += chunk) {
    if (!qemu.write(line)) await new Promise((r) => qemu.once('drain', r));
    if (sent % (chunk * 256) === 0) await new Promise((r) => setImmediate(r));
  }
}

let cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

describe('SerialHub', () => {
  it('cuts off a client that does not read, keeps serving one that does, rotates serial.log, and closes at once', async () => {
    const dir = privateTmp('vmnet-serial-');
    const { hubSide, qemuSide, server } = await pair(dir);
    cleanup.push(() => server.close());
    const log = join(dir, 'serial.log');
    const hub = new SerialHub(hubSide, [{ path: log, rotateAt: SERIAL_LOG_CAP }]);
    await hub.listen(join(dir, 'console.sock'));
    const slow = await connect(join(dir, 'console.sock'));
    slow.pause();
    slow.on('error', () => undefined);
    let slowClosed = false;
    slow.on('close', () => (slowClosed = true));
    const reader = await connect(join(dir, 'console.sock'));
    reader.on('error', () => undefined);
    let got = 0;
    reader.on('data', (b: Buffer) => (got += b.length));
    const total = 3 * CLIENT_CAP + SERIAL_LOG_CAP;
    await print(qemuSide, total);
    await new Promise((r) => setTimeout(r, 300));
    while (got < total) await new Promise((r) => setTimeout(r, 20));
    expect(got).toBe(total);
    expect(hub.counters).toMatchObject({ clients: 1, slowClientsCut: 1, logDropped: 0 });
    slow.resume(); // it finds its connection closed once it reads again
    while (!slowClosed) await new Promise((r) => setTimeout(r, 20));
    expect(hub.counters.logRotations).toBeGreaterThanOrEqual(1);
    // A client that stops reading now must not hold up the close.
    const stuck = await connect(join(dir, 'console.sock'));
    stuck.pause();
    stuck.on('error', () => undefined);
    await print(qemuSide, 512 * 1024);
    const t0 = Date.now();
    await hub.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(statSync(log).size).toBeLessThanOrEqual(SERIAL_LOG_CAP);
    expect(statSync(`${log}.1`).size).toBeLessThanOrEqual(SERIAL_LOG_CAP);
    expect(existsSync(join(dir, 'console.sock'))).toBe(false);
    expect(readFileSync(`${log}.1`, 'latin1')).toMatch(/^x+$/);
    reader.destroy();
    stuck.destroy();
  });
});
