import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { dialTcp, pendingDialCount, type HostStreamEvents } from './host-stream.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Records what a host stream reports. */
function recorder(): { ev: HostStreamEvents; log: string[]; next: Promise<string> } {
  const log: string[] = [];
  let wake: (s: string) => void = () => {};
  const r = {
    log,
    next: new Promise<string>((res) => (wake = res)),
    ev: {} as HostStreamEvents,
  };
  const note = (s: string) => {
    log.push(s);
    wake(s);
  };
  r.ev = {
    connected: () => note('connected'),
    refused: () => note('refused'),
    failed: () => note('failed'),
    data: () => note('data'),
    end: () => note('end'),
    reset: () => note('reset'),
    drain: () => {},
  };
  return r;
}

async function listener(): Promise<number> {
  const srv = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

/**
 * A loopback port that never completes a handshake: a listener (backlog 0)
 * whose queue is filled and never accepted, so the kernel drops further SYNs.
 */
async function silentPort(): Promise<number> {
  const py = [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'fill = []',
    'for i in range(4):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(s.getsockname())',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'time.sleep(0.2); print(s.getsockname()[1], flush=True); time.sleep(60)',
  ].join('\n');
  const child: ChildProcess = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => child.kill());
  const line = await new Promise<string>((res) => child.stdout!.once('data', (b: Buffer) => res(b.toString())));
  return Number(line.trim());
}

describe('dialTcp: the connect path', () => {
  it('connects, and the dial leaves the timeout table', async () => {
    const port = await listener();
    const r = recorder();
    const s = dialTcp('127.0.0.1', port, 10_000, r.ev);
    cleanups.push(() => s.destroy());
    expect(pendingDialCount()).toBe(1);
    expect(await r.next).toBe('connected');
    expect(pendingDialCount()).toBe(0);
  });

  it('reports refused for a closed port, and the dial leaves the table', async () => {
    const port = await listener();
    cleanups.splice(0).forEach((c) => c()); // close it again: nothing listens there now
    await new Promise((res) => setTimeout(res, 20));
    const r = recorder();
    dialTcp('127.0.0.1', port, 10_000, r.ev);
    expect(await r.next).toBe('refused');
    expect(pendingDialCount()).toBe(0);
  });

  it('times out a dial nobody answers (failed), each at its own deadline, with one shared timer', async () => {
    const port = await silentPort();
    const a = recorder();
    const b = recorder();
    const t0 = performance.now();
    const sa = dialTcp('127.0.0.1', port, 300, a.ev);
    const sb = dialTcp('127.0.0.1', port, 150, b.ev); // an earlier deadline than the one armed
    cleanups.push(() => (sa.destroy(), sb.destroy()));
    expect(pendingDialCount()).toBe(2);
    expect(await b.next).toBe('failed');
    expect(a.log).toEqual([]);
    expect(await a.next).toBe('failed');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(299);
    expect(pendingDialCount()).toBe(0);
  });

  it('forgets a dial closed before it completes', async () => {
    const port = await silentPort();
    const r = recorder();
    const s = dialTcp('127.0.0.1', port, 10_000, r.ev);
    expect(pendingDialCount()).toBe(1);
    s.destroy();
    expect(pendingDialCount()).toBe(0);
    await new Promise((res) => setTimeout(res, 20));
    expect(r.log).toEqual([]);
  });
});
