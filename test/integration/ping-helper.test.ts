/**
 * The real ping helper (native/ping-helper.c, built with the system C
 * compiler) driven by the real relay and Node backend, inside network
 * namespaces this test makes: "host" (198.51.100.2/24, 2001:db8::2/64) with
 * a veth to "outside" (198.51.100.1/24, 2001:db8::1/64). Ping sockets are
 * allowed in "host" by its own net.ipv4.ping_group_range (per namespace), and
 * left at the kernel default "1 0" in a third namespace. Checks: IPv4 and
 * IPv6 echo replies come back mapped to the guest's identifier (the outside
 * saw the host's); an address with no host behind it gives host unreachable
 * from the host itself, never a reply; EACCES gives one warning and nothing
 * else; a killed helper is reported. Also: the install hook builds the
 * helper; a helper file others may write is not run. Needs root (ip netns).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildHelper, findCompiler, findHelper, helperFileName } from '../../src/services/ping/helper-build.js';
import { helperBackend } from '../../src/services/ping/helper-backend.js';
import { PingRelay, type PingFlowInfo } from '../../src/services/ping/relay.js';
import { addVethPair, createNetns, ipCmd, requireRoot, runInNetns, type Netns } from '../helpers/netns.js';
import { echoMessage } from '../helpers/fake-ping.js';
import { privateTmp } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT4 = Uint8Array.of(198, 51, 100, 1);
const HOST4 = Uint8Array.of(198, 51, 100, 2);
const NOBODY4 = Uint8Array.of(198, 51, 100, 99);
const GUEST4 = Uint8Array.of(10, 0, 2, 15);
const v6 = (last: number) => Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
const GUEST6 = Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x15]);
const PAYLOAD = new TextEncoder().encode('vmnet ping helper test payload!');

let helper = '';
let host: Netns | null = null;
let outside: Netns | null = null;
let closed: Netns | null = null;

beforeAll(async () => {
  requireRoot('the ping helper integration test');
  const built = await buildHelper();
  if ('error' in built) throw new Error(built.error);
  helper = built.path;
  host = createNetns('vmnet-ph-host');
  outside = createNetns('vmnet-ph-out');
  closed = createNetns('vmnet-ph-closed');
  await addVethPair(outside, 'o0', '198.51.100.1/24', host, 'h0', '198.51.100.2/24');
  await ipCmd('-n', outside.name, 'addr', 'add', '2001:db8::1/64', 'dev', 'o0', 'nodad');
  await ipCmd('-n', host.name, 'addr', 'add', '2001:db8::2/64', 'dev', 'h0', 'nodad');
  await runInNetns(host, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=0 0']);
  expect((await runInNetns(closed, 'sysctl', ['-n', 'net.ipv4.ping_group_range'])).trim().split(/\s+/)).toEqual(['1', '0']);
}, 60_000);

afterAll(() => {
  for (const ns of [host, outside, closed]) ns?.delete();
});

/** A relay on the real helper inside `ns`, recording what it tells the gateway. */
/** The relay the running test made, closed after it. */
let current: PingRelay | null = null;

function relayIn(ns: Netns, maxQueuedBytes?: number) {
  const replies: Array<{ flow: PingFlowInfo; seq: number; payload: Uint8Array; ttl: number }> = [];
  const errors: Array<{ flow: PingFlowInfo; from: Uint8Array | null; type: number; code: number; request: Uint8Array }> = [];
  const warnings: Array<[string, string]> = [];
  const children: Array<ReturnType<typeof spawn>> = [];
  const relay = new PingRelay({
    now: () => performance.now(),
    backend: helperBackend({
      maxQueuedBytes,
      locate: async () => ({ path: helper }),
      spawn: (path) => {
        const c = spawn('ip', ['netns', 'exec', ns.name, path], { stdio: ['pipe', 'pipe', 'pipe'] });
        children.push(c);
        return c;
      },
    }),
    events: {
      reply: (flow, seq, payload, ttl) => replies.push({ flow, seq, payload: payload.slice(), ttl }),
      error: (flow, from, type, code, _info, request) => errors.push({ flow, from, type, code, request }),
      warn: (kind, detail) => warnings.push([kind, detail]),
    },
  });
  const until = async (what: string, ok: () => boolean, ms = 8000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: replies ${replies.length}, errors ${JSON.stringify(errors)}, warnings ${JSON.stringify(warnings)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** A guest's IPv4 echo request from 10.0.2.15 (TTL 63 on). */
  const echo4 = (dst: Uint8Array, id: number, seq: number) => relay.fromGuest({ guest: 1, family: 4, src: GUEST4, dst, ttl: 63, message: echoMessage(8, id, seq, PAYLOAD) });
  current = relay;
  return { relay, replies, errors, warnings, children, until, echo4 };
}

describe('the ping helper in a namespace', () => {
  afterEach(() => current?.closeAll());

  it('IPv4 and IPv6: replies come back with the guest identifier, sequence and payload', async () => {
    const r = relayIn(host!);
    for (const seq of [1, 2, 3]) expect(r.echo4(OUT4, 0x4242, seq)).toBe('sent');
    const m6 = echoMessage(128, 0x6464, 9, PAYLOAD, { src: GUEST6, dst: v6(1) });
    expect(r.relay.fromGuest({ guest: 1, family: 6, src: GUEST6, dst: v6(1), ttl: 63, message: m6 })).toBe('sent');
    await r.until('4 replies', () => r.replies.length === 4);
    const v4 = r.replies.filter((x) => x.flow.family === 4);
    expect(v4.map((x) => [x.flow.id, x.seq])).toEqual([
      [0x4242, 1],
      [0x4242, 2],
      [0x4242, 3],
    ]);
    for (const x of r.replies) expect(x.payload).toEqual(PAYLOAD);
    expect(v4[0]!.ttl).toBe(64); // Linux's default TTL, as the reply reached the host
    const six = r.replies.find((x) => x.flow.family === 6)!;
    expect([six.flow.id, six.seq]).toEqual([0x6464, 9]);
    expect(r.relay.counters).toMatchObject({ flowsOpened: 2, requests: 4, replies: 4, foreign: 0, denied: 0 });
    expect(r.warnings).toEqual([]);
  });

  it('an address nobody answers: host unreachable from the host itself, and no reply', async () => {
    const r = relayIn(host!);
    r.echo4(NOBODY4, 0x0707, 1);
    await r.until('an error', () => r.errors.length > 0);
    expect(r.errors[0]).toMatchObject({ from: null, type: 3, code: 1 });
    expect(r.errors[0]!.request).toEqual(echoMessage(8, 0x0707, 1, PAYLOAD).subarray(0, 8)); // the guest's own request header
    expect(r.replies).toEqual([]);
  });

  it('ping sockets refused (ping_group_range "1 0"): one warning, no reply, requests counted', async () => {
    const r = relayIn(closed!);
    r.echo4(Uint8Array.of(127, 0, 0, 1), 1, 1);
    await r.until('the refusal', () => r.warnings.length > 0);
    expect(r.warnings).toEqual([['denied', '']]);
    expect(r.echo4(Uint8Array.of(127, 0, 0, 1), 1, 2)).toBe('denied');
    await new Promise((res) => setTimeout(res, 200));
    expect(r.replies).toEqual([]);
    expect(r.relay.counters.denied).toBe(2);
  });

  it('a helper that dies is reported, and the relay stops sending to it', async () => {
    const r = relayIn(host!);
    r.echo4(OUT4, 2, 1);
    await r.until('a reply', () => r.replies.length === 1);
    r.children[0]!.kill('SIGKILL');
    await r.until('the warning', () => r.warnings.length > 0);
    expect(r.warnings).toEqual([['unavailable', 'the ping helper exited (signal SIGKILL)']]);
    expect(r.relay.size).toBe(0);
    expect(r.echo4(OUT4, 2, 2)).toBe('unavailable');
  });

  it('a helper that stops reading is bounded: requests refused past the queue bound, then killed and reported', async () => {
    const r = relayIn(host!, 4096);
    r.echo4(OUT4, 3, 1);
    await r.until('a reply', () => r.replies.length === 1);
    r.children[0]!.kill('SIGSTOP');
    // New destinations each time: an OPEN (and, past the guest's share, a CLOSE) per request, whatever the queue.
    let refused = 0;
    for (let i = 0; i < 20_000 && r.warnings.length === 0; i++) {
      if (r.echo4(Uint8Array.of(198, 51, 100 + (i >> 8), i & 255), 3, i) !== 'sent') refused++;
      if (i % 500 === 0) await new Promise((res) => setImmediate(res));
    }
    await r.until('the warning', () => r.warnings.length > 0);
    expect(r.warnings[0]![0]).toBe('unavailable');
    expect(r.warnings[0]![1]).toMatch(/^the ping helper stopped reading \(\d+ bytes waiting\)$/);
    expect(refused).toBeGreaterThan(0);
    expect(r.relay.counters.sendDropped).toBeGreaterThan(0);
    expect(r.relay.size).toBe(0);
  });
});

describe('pingStatus (for vmnet doctor)', () => {
  const statusIn = async (ns: Netns) =>
    JSON.parse(await runInNetns(ns, process.execPath, ['--input-type=module', '-e', `import { pingStatus } from ${JSON.stringify(join(ROOT, 'dist/index.js'))}; console.log(JSON.stringify(pingStatus()))`]));

  it('says available where the namespace allows the group, and gives the sysctl where it does not (the built library)', async () => {
    const ok = await statusIn(host!);
    expect(ok).toMatchObject({ ok: true, helper, socketsAllowed: true, range: [0, 0] });
    expect(ok.line).toBe(`ping to the outside: available (helper ${helper}; ping sockets allowed for group 0)`);
    const off = await statusIn(closed!);
    expect(off).toMatchObject({ ok: false, socketsAllowed: false, range: [1, 0] });
    expect(off.line).toContain('sysctl -w net.ipv4.ping_group_range="0 2147483647"');
  });
});

describe('building and finding the helper', () => {
  it('the install hook builds it (after `npm run build`) and says where', () => {
    if (!existsSync(join(ROOT, 'dist', 'services', 'ping', 'helper-build.js'))) throw new Error('dist is missing: run `npm run build` first (npm test does it in pretest)');
    const out = execFileSync(process.execPath, [join(ROOT, 'native', 'install.mjs')], { encoding: 'utf8' });
    expect(out.trim()).toBe(`vmnet: ping helper built: ${helper}`);
  });

  it('never runs a helper file that other users may write, or that lies in a directory they may write', () => {
    const dir = join(privateTmp(), 'cache');
    mkdirSync(dir, { mode: 0o755 });
    const planted = join(dir, helperFileName()!);
    copyFileSync(helper, planted);
    chmodSync(planted, 0o777);
    expect(findHelper([dir])).toBeNull();
    chmodSync(planted, 0o755);
    chmodSync(dir, 0o777);
    expect(findHelper([dir])).toBeNull();
    chmodSync(dir, 0o755);
    expect(findHelper([dir])).toBe(planted);
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds no compiler on an empty PATH, and $CC when it names one', () => {
    const saved = { PATH: process.env.PATH, CC: process.env.CC };
    try {
      process.env.PATH = '/nonexistent';
      delete process.env.CC;
      expect(findCompiler()).toBeNull();
      process.env.CC = '/usr/bin/gcc';
      expect(findCompiler()).toBe('/usr/bin/gcc');
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.CC === undefined) delete process.env.CC;
      else process.env.CC = saved.CC;
    }
  });
});
