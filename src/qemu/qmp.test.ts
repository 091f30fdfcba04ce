/**
 * QMP client tests: first against a scripted fake QMP server on a unix socket
 * (so every framing and ordering case can be produced on purpose), then
 * against real QEMU (TCG): a CPU-less `-machine none` for the command/event
 * life cycle, and the bundled test guest for system_powerdown.
 */
import { rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { VmnetError } from '../errors.js';
import { findBundledGuest } from '../guest/bundled.js';
import { runConsoleScript } from '../guest/console.js';
import { qemuArgs } from './args.js';
import { findQemu } from './binary.js';
import { QemuProcess } from './process.js';
import { LineSplitter, QmpClient, QmpCommandError, type QmpEvent } from './qmp.js';

const GREETING = JSON.stringify({ QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'Debian é 7.2' }, capabilities: ['oob'] } });
const line = (m: unknown) => `${JSON.stringify(m)}\r\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EVENT = { event: 'STOP', data: { reason: 'x' }, timestamp: { seconds: 1700000000, microseconds: 123456 } };

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id: number;
}

/** One connection of the fake server: what the client sent, and a way to answer. */
class Peer {
  readonly commands: Command[] = [];
  private waiters: Array<(c: Command) => void> = [];
  private buf = '';
  constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (s: string) => {
      this.buf += s;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const c = JSON.parse(this.buf.slice(0, nl)) as Command;
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(c);
        else this.commands.push(c);
      }
    });
    sock.on('error', () => undefined);
  }
  /** The next command the client sends. */
  next(): Promise<Command> {
    const c = this.commands.shift();
    return c ? Promise.resolve(c) : new Promise((r) => this.waiters.push(r));
  }
  write(s: string | Buffer): void {
    this.sock.write(s);
  }
}

/** A fake QMP server on a unix socket in a private temp dir. */
class FakeQmp {
  readonly dir = privateTmp('vmnet-qmp-');
  readonly path = join(this.dir, 'qmp.sock');
  private server: net.Server | undefined;
  private peers: Peer[] = [];
  private waiters: Array<(p: Peer) => void> = [];

  listen(): Promise<void> {
    this.server = net.createServer((s) => {
      const p = new Peer(s);
      const w = this.waiters.shift();
      if (w) w(p);
      else this.peers.push(p);
    });
    return new Promise((r) => this.server!.listen(this.path, r));
  }
  accepted(): Promise<Peer> {
    const p = this.peers.shift();
    return p ? Promise.resolve(p) : new Promise((r) => this.waiters.push(r));
  }
  async close(): Promise<void> {
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const fakes: FakeQmp[] = [];
const clients: QmpClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function fake(): Promise<FakeQmp> {
  const f = new FakeQmp();
  fakes.push(f);
  await f.listen();
  return f;
}

/** Answers qmp_capabilities on `peer`, checking the request. */
async function negotiate(peer: Peer): Promise<void> {
  const cap = await peer.next();
  expect(cap.execute).toBe('qmp_capabilities');
  expect(cap.arguments).toBeUndefined();
  peer.write(line({ return: {}, id: cap.id }));
}

/** A negotiated client and its server-side peer. */
async function session(opts: Parameters<typeof QmpClient.connect>[1] = {}): Promise<{ client: QmpClient; peer: Peer; server: FakeQmp }> {
  const server = await fake();
  const connecting = QmpClient.connect(server.path, { timeoutMs: 2000, ...opts });
  const peer = await server.accepted();
  peer.write(`${GREETING}\r\n`);
  await negotiate(peer);
  const client = await connecting;
  clients.push(client);
  return { client, peer, server };
}

async function rejection(p: Promise<unknown>): Promise<VmnetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(VmnetError);
  return e as VmnetError;
}

describe('LineSplitter', () => {
  it('splits lines across and within chunks and keeps split UTF-8 characters whole', () => {
    const s = new LineSplitter(100);
    const out: string[] = [];
    const bytes = Buffer.from('é1\r\nab\ncd', 'utf8');
    expect(s.push(bytes.subarray(0, 1), (l) => out.push(l))).toBe(true);
    expect(s.push(bytes.subarray(1), (l) => out.push(l))).toBe(true);
    expect(out).toEqual(['é1\r', 'ab']);
    expect(s.buffered).toBe(2);
    s.push(Buffer.from('e\n\n'), (l) => out.push(l));
    expect(out).toEqual(['é1\r', 'ab', 'cde', '']);
    expect(s.buffered).toBe(0);
  });

  it('refuses a line longer than the cap, whether complete or still growing', () => {
    expect(new LineSplitter(4).push(Buffer.from('12345\n'), () => undefined)).toBe(false);
    const s = new LineSplitter(4);
    expect(s.push(Buffer.from('123'), () => undefined)).toBe(true);
    expect(s.push(Buffer.from('45'), () => undefined)).toBe(false);
    expect(new LineSplitter(4).push(Buffer.from('1234\n'), () => undefined)).toBe(true);
  });
});

describe('QmpClient against a fake server', () => {
  it('retries until the socket exists, then reads a greeting split across writes (mid UTF-8 character)', async () => {
    const server = new FakeQmp();
    fakes.push(server);
    const connecting = QmpClient.connect(server.path, { timeoutMs: 3000 });
    await sleep(150); // the client is now retrying ENOENT
    await server.listen();
    const peer = await server.accepted();
    const g = Buffer.from(`${GREETING}\r\n`, 'utf8');
    const cut = g.indexOf(Buffer.from('é')) + 1; // between the two bytes of 'é'
    peer.write(g.subarray(0, 5));
    await sleep(20);
    peer.write(g.subarray(5, cut));
    await sleep(20);
    peer.write(g.subarray(cut));
    await negotiate(peer);
    const client = await connecting;
    clients.push(client);
    expect(client.greeting).toEqual({ version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'Debian é 7.2' }, capabilities: ['oob'] });
    expect(client.isOpen).toBe(true);
  });

  it('handles a greeting followed by an event in one read, and a response followed by an event', async () => {
    const server = await fake();
    const events: QmpEvent[] = [];
    const connecting = QmpClient.connect(server.path, { timeoutMs: 2000, onEvent: (e) => events.push(e) });
    const peer = await server.accepted();
    const first = { ...EVENT, event: 'FIRST' };
    peer.write(`${GREETING}\r\n${line(first)}`);
    const cap = await peer.next();
    expect(cap.execute).toBe('qmp_capabilities');
    peer.write(line({ return: {}, id: cap.id }) + line(EVENT));
    const client = await connecting;
    clients.push(client);
    expect(client.greeting?.capabilities).toEqual(['oob']);
    await sleep(10);
    expect(events).toEqual([first, EVENT]);
  });

  it('delivers events with data and timestamp, defaulting absent data to {}', async () => {
    const { client, peer } = await session();
    const seen: QmpEvent[] = [];
    client.on('event', (e) => seen.push(e));
    const shutdown = client.waitForEvent<{ guest: boolean; reason: string }>('SHUTDOWN', 1000);
    const filtered = client.waitForEvent('STOP', 1000, (e) => e.data.reason === 'second');
    peer.write(line(EVENT) + line({ event: 'RESUME', timestamp: { seconds: 1, microseconds: 2 } }));
    peer.write(line({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 3, microseconds: 4 } }));
    peer.write(line({ ...EVENT, data: { reason: 'second' } }));
    expect(await shutdown).toEqual({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 3, microseconds: 4 } });
    expect((await filtered).data).toEqual({ reason: 'second' });
    expect(seen.map((e) => e.event)).toEqual(['STOP', 'RESUME', 'SHUTDOWN', 'STOP']);
    expect(seen[1]).toEqual({ event: 'RESUME', data: {}, timestamp: { seconds: 1, microseconds: 2 } });
    const err = await rejection(client.waitForEvent('NEVER', 30));
    expect(err.code).toBe('E_TIMEOUT');
    expect(err.message).toContain('NEVER');
  });

  it('sends execute/arguments/id with increasing ids and matches out-of-order responses by id', async () => {
    const { client, peer } = await session();
    const a = client.execute('query-a');
    const b = client.execute('query-b', { x: 1 });
    const c = client.execute('query-c');
    const [ca, cb, cc] = [await peer.next(), await peer.next(), await peer.next()];
    expect(ca).toEqual({ execute: 'query-a', id: 2 });
    expect(cb).toEqual({ execute: 'query-b', arguments: { x: 1 }, id: 3 });
    expect(cc.id).toBe(4);
    peer.write(line({ return: 'C', id: cc.id }) + line(EVENT) + line({ return: 'A', id: ca.id }));
    await sleep(10);
    peer.write(line({ return: 'B', id: cb.id }));
    expect(await Promise.all([a, b, c])).toEqual(['A', 'B', 'C']);
  });

  it('rejects error responses with E_QMP, QEMU class and desc, without disturbing other commands', async () => {
    const { client, peer } = await session();
    const bad = client.execute('device_del', { id: 'nope' });
    const good = client.execute('query-status');
    const [cbad, cgood] = [await peer.next(), await peer.next()];
    peer.write(line({ error: { class: 'DeviceNotFound', desc: "Device 'nope' not found" }, id: cbad.id }));
    peer.write(line({ return: { running: true, status: 'running', singlestep: false }, id: cgood.id }));
    const err = await rejection(bad);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err.code).toBe('E_QMP');
    expect(err.message).toBe("QMP command device_del failed: DeviceNotFound: Device 'nope' not found");
    expect((err as QmpCommandError).errorClass).toBe('DeviceNotFound');
    expect((err as QmpCommandError).desc).toBe("Device 'nope' not found");
    expect(await good).toEqual({ running: true, status: 'running', singlestep: false });
  });

  it('resolves falsy returns (0, false, "", null, {}) and stays in step afterwards', async () => {
    const { client, peer } = await session();
    const values = [0, false, '', null, {}];
    const results = values.map((_, i) => client.execute(`c${i}`));
    for (const v of values) peer.write(line({ return: v, id: (await peer.next()).id }));
    expect(await Promise.all(results)).toEqual(values);
    const status = client.queryStatus();
    peer.write(line({ return: { running: false, status: 'paused' }, id: (await peer.next()).id }));
    expect(await status).toEqual({ running: false, status: 'paused' });
  });

  it('times out a command with E_TIMEOUT and drops its late response', async () => {
    const { client, peer } = await session();
    const slow = client.execute('slow', undefined, { timeoutMs: 40 });
    const cmd = await peer.next();
    const err = await rejection(slow);
    expect(err.code).toBe('E_TIMEOUT');
    expect(err.message).toContain('slow');
    peer.write(line({ return: 'late', id: cmd.id }) + line({ return: 'no id' }));
    const next = client.execute('next');
    peer.write(line({ return: 'ok', id: (await peer.next()).id }));
    expect(await next).toBe('ok');
    expect(client.stats.unmatchedResponses).toBe(2);
  });

  it('ignores and counts garbage lines without throwing', async () => {
    const { client, peer } = await session();
    const r = client.execute('x');
    const cmd = await peer.next();
    peer.write('hello\r\n[1,2]\r\n{"unterminated": \r\n42\r\n\r\n{"neither":"kind"}\r\n\u0000\u00ff\n');
    peer.write(line({ return: 7, id: cmd.id }));
    expect(await r).toBe(7);
    expect(client.stats.garbageLines).toBe(6);
    expect(client.isOpen).toBe(true);
  });

  it('rejects pending commands and event waits with E_CLOSED when the server hangs up, and resolves closed', async () => {
    const { client, peer } = await session();
    const closeEvents: unknown[] = [];
    client.on('close', (c) => closeEvents.push(c));
    const p1 = client.execute('one');
    const p2 = client.execute('two');
    const ev = client.waitForEvent('SHUTDOWN', 5000);
    await peer.next();
    await peer.next();
    peer.sock.end();
    for (const [p, what] of [
      [p1, 'one'],
      [p2, 'two'],
      [ev, 'SHUTDOWN'],
    ] as const) {
      const err = await rejection(p);
      expect(err.code).toBe('E_CLOSED');
      expect(err.message).toContain(what);
      expect(err.message).toContain('QEMU closed the QMP connection');
    }
    expect(await client.closed).toEqual({ byUs: false });
    expect(closeEvents).toEqual([{ byUs: false }]);
    expect(client.isOpen).toBe(false);
    expect((await rejection(client.execute('after'))).code).toBe('E_CLOSED');
  });

  it('close() ends the session: pending commands reject with E_CLOSED and closed says byUs', async () => {
    const { client, peer } = await session();
    const p = client.execute('pending');
    await peer.next();
    await client.close();
    const err = await rejection(p);
    expect(err.code).toBe('E_CLOSED');
    expect(err.message).toContain('client was closed');
    expect(await client.closed).toEqual({ byUs: true });
    await client.close(); // idempotent
  });

  it('drops the connection on a line over the cap (E_QMP) and fails pending commands', async () => {
    const { client, peer } = await session({ maxLineBytes: 1024 });
    const p = client.execute('big');
    await peer.next();
    peer.write(`{"return": "${'x'.repeat(600)}`);
    await sleep(10);
    peer.write('x'.repeat(600));
    const err = await rejection(p);
    expect(err.code).toBe('E_CLOSED');
    expect(err.message).toContain('exceeds 1024 bytes');
    const closed = await client.closed;
    expect(closed.byUs).toBe(false);
    expect(closed.error?.code).toBe('E_QMP');
  });

  it('accepts a message of a few MiB under the default cap', async () => {
    const { client, peer } = await session();
    const p = client.execute<string>('big');
    const big = 'y'.repeat(3 * 1024 * 1024);
    peer.write(line({ return: big, id: (await peer.next()).id }));
    expect(await p).toBe(big);
  });

  it('quit() succeeds whether QEMU answers before closing or just closes', async () => {
    for (const answer of [true, false]) {
      const { client, peer } = await session();
      const q = client.quit(2000);
      const cmd = await peer.next();
      expect(cmd.execute).toBe('quit');
      if (answer) peer.write(line({ return: {}, id: cmd.id }) + line({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' }, timestamp: { seconds: 1, microseconds: 0 } }));
      peer.sock.end();
      await q;
      expect(await client.closed).toEqual({ byUs: false });
    }
  });

  it('convenience methods send the right commands', async () => {
    const { client, peer } = await session();
    const calls: Array<[() => Promise<unknown>, Omit<Command, 'id'>, unknown, unknown]> = [
      [() => client.systemPowerdown(), { execute: 'system_powerdown' }, {}, undefined],
      [() => client.systemReset(), { execute: 'system_reset' }, {}, undefined],
      [() => client.cont(), { execute: 'cont' }, {}, undefined],
      [() => client.stop(), { execute: 'stop' }, {}, undefined],
      [() => client.humanMonitorCommand('info version'), { execute: 'human-monitor-command', arguments: { 'command-line': 'info version' } }, '7.2.0\r\n', '7.2.0\r\n'],
    ];
    for (const [call, sent, ret, result] of calls) {
      const p = call();
      const cmd = await peer.next();
      expect(cmd).toEqual({ ...sent, id: cmd.id });
      peer.write(line({ return: ret, id: cmd.id }));
      expect(await p).toEqual(result);
    }
  });

  it('fails to connect to a server that is not QMP (E_QMP) or says nothing (E_TIMEOUT)', async () => {
    const server = await fake();
    const c1 = QmpClient.connect(server.path, { timeoutMs: 2000 });
    (await server.accepted()).write('{"hello": "world"}\n');
    const e1 = await rejection(c1);
    expect(e1.code).toBe('E_QMP');
    expect(e1.message).toContain('not a QMP monitor');

    const c2 = QmpClient.connect(server.path, { timeoutMs: 200 });
    (await server.accepted()).write('login: \r\nnot json\r\n');
    const e2 = await rejection(c2);
    expect(e2.code).toBe('E_TIMEOUT');
    expect(e2.message).toContain('no QMP greeting');
    expect(e2.message).toContain('2 non-JSON lines');

    const c3 = QmpClient.connect(server.path, { timeoutMs: 2000 });
    (await server.accepted()).sock.end();
    expect((await rejection(c3)).code).toBe('E_CLOSED');
  });

  it('gives up on a socket that never appears (E_TIMEOUT) and honours an abort signal', async () => {
    const dir = privateTmp('vmnet-qmp-');
    try {
      const t0 = Date.now();
      const err = await rejection(QmpClient.connect(join(dir, 'absent.sock'), { timeoutMs: 150 }));
      expect(err.code).toBe('E_TIMEOUT');
      expect(err.message).toContain('ENOENT');
      expect(Date.now() - t0).toBeLessThan(1000);
      const ac = new AbortController();
      const p = QmpClient.connect(join(dir, 'absent.sock'), { timeoutMs: 5000, signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      expect((await rejection(p)).code).toBe('E_CLOSED');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('QmpClient against real QEMU (TCG)', () => {
  const qemus: QemuProcess[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(qemus.splice(0).map((q) => q.kill(1000)));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = privateTmp('vmnet-qmp-');
    dirs.push(d);
    return d;
  };

  it('negotiates, queries, controls run state and quits a -machine none QEMU', async () => {
    const sock = join(tmp(), 'qmp.sock');
    const qemu = new QemuProcess(findQemu(undefined), ['-nodefaults', '-display', 'none', '-accel', 'tcg', '-machine', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`], 'ignore');
    qemus.push(qemu);
    // Connect immediately: the socket does not exist yet, so connect() must retry.
    const client = await QmpClient.connect(sock, { timeoutMs: 20_000 });
    clients.push(client);
    expect(client.greeting?.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await client.queryStatus()).toEqual({ running: false, status: 'prelaunch' });

    const resumed = client.waitForEvent('RESUME', 5000);
    await client.cont();
    expect((await resumed).timestamp.seconds).toBeGreaterThan(1_600_000_000);
    expect(await client.queryStatus()).toEqual({ running: true, status: 'running' });

    const stopped = client.waitForEvent('STOP', 5000);
    await client.stop();
    await stopped;
    expect(await client.queryStatus()).toEqual({ running: false, status: 'paused' });

    expect(await client.humanMonitorCommand('info version')).toMatch(/^\d+\.\d+\.\d+/);
    const err = await rejection(client.execute('no-such-command'));
    expect(err).toBeInstanceOf(QmpCommandError);
    expect((err as QmpCommandError).errorClass).toBe('CommandNotFound');
    expect(err.message).toContain('no-such-command');
    // Falsy-looking but valid: query-name returns {} when -name was not given.
    expect(await client.execute('query-name')).toEqual({});

    const shutdown = client.waitForEvent<{ guest: boolean; reason: string }>('SHUTDOWN', 5000);
    await client.quit(10_000);
    expect((await shutdown).data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    expect(await client.closed).toEqual({ byUs: false });
    expect((await qemu.exited).code).toBe(0);
  });

  it('on the test guest: system_powerdown raises POWERDOWN but the guest ignores it; a guest poweroff is a SHUTDOWN with guest=true', async () => {
    const guest = findBundledGuest();
    const sock = join(tmp(), 'qmp.sock');
    const args = qemuArgs({
      accel: 'tcg',
      memoryMiB: 256,
      cpus: 1,
      name: 'qmp-test',
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: guest.append,
      serial: { kind: 'stdio' },
      qmpSocket: sock,
      nics: [],
      // -no-shutdown: a guest power-off leaves QEMU up (status 'shutdown') so the SHUTDOWN event can be inspected.
      extra: ['-no-reboot', '-no-shutdown'],
    });
    const qemu = new QemuProcess(findQemu(undefined), args, 'pipe');
    qemus.push(qemu);
    const events: QmpEvent[] = [];
    const client = await QmpClient.connect(sock, { timeoutMs: 20_000, onEvent: (e) => events.push(e) });
    clients.push(client);
    expect(await client.queryStatus()).toEqual({ running: true, status: 'running' });

    // The test guest's /init runs no acpid and its initramfs lacks button.ko
    // (CONFIG_ACPI_BUTTON=m), so the ACPI power button does nothing: QEMU still
    // reports the press, and the guest keeps waiting on its console.
    // The script's input is held back until the button has been tried on the booted guest.
    const gate = new PassThrough();
    let booted!: () => void;
    const ready = new Promise<void>((r) => (booted = r));
    const script = runConsoleScript(qemu.child.stdout!, gate, 'echo powered', { timeoutMs: 90_000, onLine: (l) => l.includes('VMNET-READY') && booted() });
    await ready;
    const powerdown = client.waitForEvent('POWERDOWN', 5000);
    await client.systemPowerdown();
    expect((await powerdown).data).toEqual({});
    await sleep(1500);
    expect(await client.queryStatus()).toEqual({ running: true, status: 'running' });
    expect(qemu.running).toBe(true);

    gate.pipe(qemu.child.stdin!);
    // The console script ends with `poweroff -f` in the guest.
    const shutdown = client.waitForEvent<{ guest: boolean; reason: string }>('SHUTDOWN', 90_000);
    expect((await script).output).toContain('powered');
    expect((await shutdown).data).toEqual({ guest: true, reason: 'guest-shutdown' });
    expect(await client.queryStatus()).toEqual({ running: false, status: 'shutdown' });
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['POWERDOWN', 'SHUTDOWN', 'STOP']));

    await client.quit(10_000);
    expect((await client.closed).byUs).toBe(false);
    expect((await qemu.exited).code).toBe(0);
  });
});
