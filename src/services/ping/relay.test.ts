/**
 * The ping relay, sans-IO: a fake backend plays the helper and the kernel's
 * ping sockets (host identifiers, replies, error queues, EACCES), a fake
 * clock drives expiry and retries. Checks the identifier mapping both ways,
 * one socket per flow, the refusal path (no reply ever made up, one warning),
 * ICMP errors relayed with the guest's own request quoted, and the bounds.
 */
import { describe, expect, it } from 'vitest';
import { EACCES, EHOSTUNREACH, ENETUNREACH, MAX_SLOTS } from './protocol.js';
import { PingRelay, type EchoRequest, type PingFlowInfo, type PingRelayOptions } from './relay.js';
import { echoMessage, FakePingBackend, hostIdent } from '../../../test/helpers/fake-ping.js';

const GUEST = Uint8Array.of(10, 0, 2, 15);
const OUTSIDE = Uint8Array.of(198, 51, 100, 1);
const OTHER = Uint8Array.of(198, 51, 100, 7);
const ROUTER = Uint8Array.of(198, 51, 100, 254);
const HOST = Uint8Array.of(198, 51, 100, 2);
const PAYLOAD = new TextEncoder().encode('abcdefghijklmnopqrstuvwx');

interface Seen {
  replies: Array<{ flow: PingFlowInfo; seq: number; payload: Uint8Array; ttl: number }>;
  errors: Array<{ flow: PingFlowInfo; from: Uint8Array | null; type: number; code: number; info: number; request: Uint8Array; ttl: number }>;
  warnings: Array<[string, string]>;
}

function rig(opts: Partial<PingRelayOptions> = {}) {
  const clock = { t: 1000 };
  const backend = new FakePingBackend();
  const seen: Seen = { replies: [], errors: [], warnings: [] };
  const relay = new PingRelay({
    backend: backend.factory,
    now: () => clock.t,
    events: {
      reply: (flow, seq, payload, ttl) => seen.replies.push({ flow, seq, payload: payload.slice(), ttl }),
      error: (flow, from, type, code, info, request, ttl) => seen.errors.push({ flow, from, type, code, info, request, ttl }),
      warn: (kind, detail) => seen.warnings.push([kind, detail]),
    },
    ...opts,
  });
  const request = (o: { guest?: number; src?: Uint8Array; dst?: Uint8Array; id?: number; seq?: number; ttl?: number } = {}): EchoRequest => ({
    guest: o.guest ?? 1,
    family: 4,
    src: o.src ?? GUEST,
    dst: o.dst ?? OUTSIDE,
    ttl: o.ttl ?? 63,
    message: echoMessage(8, o.id ?? 0x4242, o.seq ?? 1, PAYLOAD),
  });
  return { clock, backend, seen, relay, request };
}

describe('PingRelay: the identifier mapping', () => {
  it('opens one socket for the flow, sends the request as the guest made it, and maps the reply back to the guest identifier', () => {
    const { backend, seen, relay, request } = rig();
    const req = request({ id: 0x4242, seq: 7, ttl: 63 });
    expect(relay.fromGuest(req)).toBe('sent');
    expect(backend.opens).toEqual([{ flow: backend.opens[0]!.flow, family: 4, dst: OUTSIDE, ttl: 63 }]);
    expect(backend.sends).toHaveLength(1);
    expect(backend.sends[0]!.message).toEqual(req.message);
    expect(backend.sends[0]!.ttl).toBe(63);
    backend.opened(HOST);

    backend.replyTo(backend.sends[0]!, { ttl: 61 });
    expect(seen.replies).toHaveLength(1);
    const r = seen.replies[0]!;
    expect(r.flow).toMatchObject({ guest: 1, family: 4, src: GUEST, dst: OUTSIDE, id: 0x4242 });
    expect(r.seq).toBe(7);
    expect(r.payload).toEqual(PAYLOAD);
    expect(r.ttl).toBe(61);
    expect(relay.counters).toMatchObject({ flowsOpened: 1, requests: 1, replies: 1, denied: 0 });
  });

  it('keeps one flow per (guest, address, identifier, destination)', () => {
    const { backend, relay, request } = rig();
    relay.fromGuest(request({ seq: 1 }));
    relay.fromGuest(request({ seq: 2 }));
    relay.fromGuest(request({ id: 0x4343 }));
    relay.fromGuest(request({ dst: OTHER }));
    relay.fromGuest(request({ guest: 2, src: Uint8Array.of(10, 0, 2, 16) }));
    expect(backend.opens).toHaveLength(4);
    expect(backend.sends.map((s) => backend.opens.findIndex((o) => o.flow === s.flow))).toEqual([0, 0, 1, 2, 3]);
    expect(relay.size).toBe(4);
  });

  it('honours each request TTL (traceroute-style probes on one flow)', () => {
    const { backend, relay, request } = rig();
    for (const ttl of [1, 2, 3]) relay.fromGuest(request({ seq: ttl, ttl }));
    expect(backend.opens.map((o) => o.ttl)).toEqual([1]);
    expect(backend.sends.map((s) => s.ttl)).toEqual([1, 2, 3]);
  });

  it('drops a reply from any address other than the flow destination (foreign)', () => {
    const { backend, seen, relay, request } = rig();
    relay.fromGuest(request());
    backend.replyTo(backend.sends[0]!, { from: OTHER });
    expect(seen.replies).toEqual([]);
    expect(relay.counters.foreign).toBe(1);
  });

  it('never takes a late message about a closed flow for the flow that reuses its slot (stale)', () => {
    const { backend, seen, relay, request } = rig({ maxFlows: 1 });
    relay.fromGuest(request());
    const first = backend.sends[0]!;
    relay.closeGuest(1);
    expect(backend.closes).toEqual([first.flow]);
    relay.fromGuest(request({ id: 0x5555 }));
    const second = backend.sends[1]!;
    expect(second.flow).not.toBe(first.flow);
    expect(second.flow % MAX_SLOTS).toBe(first.flow % MAX_SLOTS); // the same slot, another generation
    backend.replyTo(first);
    expect(seen.replies).toEqual([]);
    expect(relay.counters.stale).toBe(1);
    backend.replyTo(second);
    expect(seen.replies.map((r) => r.flow.id)).toEqual([0x5555]);
  });
});

describe('PingRelay: ping sockets not allowed', () => {
  it('gives the guest nothing, warns once, retries sockets after 10 s', () => {
    const { clock, backend, seen, relay, request } = rig();
    expect(relay.fromGuest(request({ seq: 1 }))).toBe('sent');
    backend.openFailed(EACCES);
    expect(relay.size).toBe(0);
    expect(seen.warnings).toEqual([['denied', '']]);
    // While refused: counted, no socket tried.
    for (let seq = 2; seq <= 5; seq++) {
      clock.t += 1000;
      expect(relay.fromGuest(request({ seq }))).toBe('denied');
    }
    expect(backend.opens).toHaveLength(1);
    // 10 s on, it tries again; still refused: no second warning.
    clock.t += 7000;
    expect(relay.fromGuest(request({ seq: 6 }))).toBe('sent');
    expect(backend.opens).toHaveLength(2);
    backend.openFailed(EACCES);
    expect(seen.warnings).toHaveLength(1);
    expect(seen.replies).toEqual([]);
    expect(seen.errors).toEqual([]);
    expect(relay.counters.denied).toBe(6);
    expect(relay.counters.flowsOpened).toBe(2);
    // Allowed at last (the sysctl changed): replies flow.
    clock.t += 10_000;
    relay.fromGuest(request({ seq: 7 }));
    backend.replyTo(backend.sends.at(-1)!);
    expect(seen.replies.map((r) => r.seq)).toEqual([7]);
  });

  it('a helper that cannot run: requests counted as unavailable while the backend says, each reason warned once', () => {
    const { clock, backend, seen, relay, request } = rig();
    relay.fromGuest(request());
    backend.events!.down('no C compiler', 60_000);
    expect(relay.size).toBe(0);
    expect(relay.fromGuest(request())).toBe('unavailable');
    clock.t += 60_000;
    expect(relay.fromGuest(request())).toBe('sent');
    backend.events!.down('no C compiler', 60_000);
    backend.events!.down('the helper exited (signal SIGKILL)', 5000);
    expect(seen.warnings).toEqual([
      ['unavailable', 'no C compiler'],
      ['unavailable', 'the helper exited (signal SIGKILL)'],
    ]);
    expect(relay.counters.unavailable).toBe(1);
    expect(seen.replies).toEqual([]);
  });
});

describe('PingRelay: ICMP errors', () => {
  it('relays a time exceeded from a router, quoting the request exactly as the guest sent it', () => {
    const { backend, seen, relay, request } = rig();
    const req = request({ id: 0x4242, seq: 9, ttl: 1 });
    relay.fromGuest(req);
    backend.opened(HOST);
    backend.errorAbout(backend.sends[0]!, 11, 0, ROUTER);
    expect(seen.errors).toHaveLength(1);
    const e = seen.errors[0]!;
    expect(e.from).toEqual(ROUTER);
    expect([e.type, e.code, e.ttl]).toEqual([11, 0, 1]);
    expect(e.request).toEqual(req.message.subarray(0, 8)); // identifier and checksum are the guest's again
  });

  it('relays fragmentation needed with its next-hop MTU', () => {
    const { backend, seen, relay, request } = rig();
    relay.fromGuest(request());
    backend.errorAbout(backend.sends[0]!, 3, 4, ROUTER, { info: 1400 });
    expect(seen.errors[0]).toMatchObject({ type: 3, code: 4, info: 1400 });
  });

  it('an error the host raised about itself (offender: its own source address) comes from the gateway', () => {
    const { backend, seen, relay, request } = rig();
    relay.fromGuest(request());
    backend.opened(HOST);
    backend.errorAbout(backend.sends[0]!, 3, 1, HOST);
    expect(seen.errors[0]).toMatchObject({ from: null, type: 3, code: 1 });
  });

  it('counts, and does not relay, errors raised without an ICMP message or of other types', () => {
    const { backend, seen, relay, request } = rig();
    relay.fromGuest(request());
    backend.errorAbout(backend.sends[0]!, 3, 4, HOST, { origin: 1 });
    backend.errorAbout(backend.sends[0]!, 5, 0, ROUTER); // a redirect
    expect(seen.errors).toEqual([]);
    expect(relay.counters.localErrors).toBe(2);
  });

  it.each([
    ['ENETUNREACH', ENETUNREACH, 0],
    ['EHOSTUNREACH', EHOSTUNREACH, 1],
  ])('no route (%s on open) becomes unreachable from the gateway about the request', (_n, errno, code) => {
    const { backend, seen, relay, request } = rig();
    const req = request({ id: 0x0102, seq: 3 });
    relay.fromGuest(req);
    backend.openFailed(errno);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]).toMatchObject({ from: null, type: 3, code });
    expect(seen.errors[0]!.request).toEqual(req.message.subarray(0, 8));
    expect(relay.size).toBe(0);
    expect(relay.counters.openFailed).toBe(1);
    expect(seen.warnings).toEqual([]);
  });

  it('IPv6: echo 128/129, and an error quote whose checksum is the guest’s again (identifier and source address both restored)', () => {
    const { backend, seen, relay } = rig();
    const guest6 = Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x15]);
    const host6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    const out6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    const message = echoMessage(128, 0x6666, 4, PAYLOAD, { src: guest6, dst: out6 });
    relay.fromGuest({ guest: 1, family: 6, src: guest6, dst: out6, ttl: 63, message });
    expect(backend.opens[0]).toMatchObject({ family: 6, dst: out6 });
    backend.opened(host6);
    backend.replyTo(backend.sends[0]!, { local: host6 });
    expect(seen.replies[0]).toMatchObject({ seq: 4, flow: { id: 0x6666, family: 6 } });
    backend.errorAbout(backend.sends[0]!, 3, 0, out6, { local: host6 });
    expect(seen.errors[0]!.request).toEqual(message.subarray(0, 8));
  });
});

describe('PingRelay: bounds', () => {
  it('a guest at its share closes its own least recently used flow', () => {
    const { backend, relay, request } = rig({ maxFlows: 8, maxFlowsPerGuest: 2 });
    relay.fromGuest(request({ id: 1 }));
    relay.fromGuest(request({ id: 2 }));
    relay.fromGuest(request({ id: 1, seq: 2 })); // id 2 is now the least recently used
    relay.fromGuest(request({ id: 3 }));
    expect(backend.closes).toEqual([backend.opens[1]!.flow]);
    expect(relay.counters.flowsEvicted).toBe(1);
    expect(relay.size).toBe(2);
  });

  it('a full table closes the least recently used flow of the guest holding the most', () => {
    const { backend, relay, request } = rig({ maxFlows: 3, maxFlowsPerGuest: 3 });
    relay.fromGuest(request({ guest: 1, id: 1 }));
    relay.fromGuest(request({ guest: 1, id: 2 }));
    relay.fromGuest(request({ guest: 2, src: Uint8Array.of(10, 0, 2, 16), id: 1 }));
    relay.fromGuest(request({ guest: 3, src: Uint8Array.of(10, 0, 2, 17), id: 1 }));
    expect(backend.closes).toEqual([backend.opens[0]!.flow]);
    expect(relay.size).toBe(3);
  });

  it('closes flows idle for the idle time; a reply keeps a flow alive', () => {
    const { clock, backend, relay, request } = rig({ idleMs: 60_000 });
    relay.fromGuest(request({ id: 1 }));
    relay.fromGuest(request({ id: 2 }));
    clock.t += 59_000;
    backend.replyTo(backend.sends[1]!);
    relay.sweep(clock.t);
    expect(relay.size).toBe(2);
    clock.t += 1000;
    relay.sweep(clock.t);
    expect(backend.closes).toEqual([backend.opens[0]!.flow]);
    expect(relay.counters.flowsExpired).toBe(1);
  });

  it('closes the flows of an address that changed hands, and everything at close', () => {
    const { backend, relay, request } = rig();
    relay.fromGuest(request({ src: GUEST }));
    relay.fromGuest(request({ src: Uint8Array.of(10, 0, 2, 16) }));
    relay.closeAddress(GUEST);
    expect(backend.closes).toEqual([backend.opens[0]!.flow]);
    relay.closeAll();
    expect(relay.size).toBe(0);
    expect(backend.shutdowns).toBe(1);
  });

  it('counts a request the helper could not take (sendDropped) and says dropped', () => {
    const { backend, relay, request } = rig();
    backend.accept = false;
    expect(relay.fromGuest(request())).toBe('dropped');
    expect(relay.counters).toMatchObject({ sendDropped: 1, requests: 0 });
  });

  it('the host identifier never leaks to the guest', () => {
    const { backend, seen, relay, request } = rig();
    relay.fromGuest(request({ id: 0x0001 }));
    backend.replyTo(backend.sends[0]!);
    expect(hostIdent(backend.sends[0]!.flow)).not.toBe(1);
    expect(seen.replies[0]!.flow.id).toBe(1);
  });
});
