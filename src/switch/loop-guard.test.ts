/**
 * Loops, sans-IO: switches cabled into loops through a simulated wire (a
 * FIFO of frames in flight, delivered one at a time on a fake clock), the
 * storm limit, MAC flap detection, blocking one port, and unblocking.
 */
import { describe, expect, it } from 'vitest';
import { BCAST, FakePort, frame, mac } from '../../test/helpers/switch-kit.js';
import { Switch } from './switch.js';
import type { SwitchEvent, SwitchOptions, SwitchPort } from './types.js';

/** Frames in flight between switches; a cable is two ports whose sinks feed each other. */
class Wire {
  readonly queue: Array<{ sw: Switch; port: () => SwitchPort; bytes: Uint8Array }> = [];
  delivered = 0;
  constructor(readonly clock: { t: number }) {}

  /** Cables port a of switch A to port b of switch B (either may be the same switch). */
  cable(a: Switch, b: Switch, roleA = {}, roleB = {}): [SwitchPort, SwitchPort] {
    let pa: SwitchPort;
    let pb: SwitchPort;
    pa = a.addPort({ sendFrame: (buf, off, len) => void this.queue.push({ sw: b, port: () => pb, bytes: buf.slice(off, off + len) }) }, { name: 'cable', ...roleA });
    pb = b.addPort({ sendFrame: (buf, off, len) => void this.queue.push({ sw: a, port: () => pa, bytes: buf.slice(off, off + len) }) }, { name: 'cable', ...roleB });
    return [pa, pb];
  }

  /** Delivers up to `n` frames, `stepMs` apart. */
  pump(n: number, stepMs = 0.05): void {
    for (let i = 0; i < n; i++) {
      const f = this.queue.shift();
      if (f === undefined) return;
      this.clock.t += stepMs;
      const p = f.port();
      if (p.attached) f.sw.input(p, f.bytes, new DataView(f.bytes.buffer), 0, f.bytes.length);
      this.delivered++;
    }
  }
}

function rig(opts: SwitchOptions = {}) {
  const clock = { t: 1000 };
  const events: SwitchEvent[] = [];
  const make = (random: number) => new Switch({ now: () => clock.t, random: () => random, onEvent: (e) => events.push(e), ...opts });
  return { clock, events, make, wire: new Wire(clock) };
}

const sendFrom = (sw: Switch, p: SwitchPort, f: Uint8Array) => sw.input(p, f, new DataView(f.buffer), 0, f.length);

/** Sends `n` broadcasts from MAC `src`, `stepMs` apart, alternately from `a` and `b` (a MAC flapping between them). */
function flap(sw: Switch, clock: { t: number }, a: SwitchPort, b: SwitchPort, src: Uint8Array, n: number, stepMs: number): void {
  for (let i = 0; i < n; i++) {
    clock.t += stepMs;
    sendFrom(sw, i % 2 === 0 ? a : b, frame({ dst: BCAST, src }));
  }
}

/** Runs the wire for `ms` of fake time, calling `chatter` every `everyMs` (guests broadcasting). */
function runFor(clock: { t: number }, wire: Wire, ms: number, everyMs: number, chatter: () => void): void {
  const start = clock.t;
  let sent = 0;
  while (clock.t - start < ms) {
    if (clock.t - start >= sent * everyMs) {
      chatter();
      sent++;
    }
    if (wire.queue.length > 0) wire.pump(200);
    else clock.t += 1;
  }
}

/** Two switches joined twice by links (shared ports); A blocks sooner than B where both would. */
function linkedTwice(r: ReturnType<typeof rig>) {
  const A = r.make(0.1);
  const B = r.make(0.9);
  const shared = { shared: true };
  const [l1] = r.wire.cable(A, B, shared, shared);
  const [l2] = r.wire.cable(A, B, shared, shared);
  return { A, B, l1, l2 };
}

describe('storm limit', () => {
  it('caps group frames per port at the rate, counts the rest, reports once per 10 s; unicast is not limited', () => {
    const { clock, events, make } = rig({ stormRate: 100, stormBurst: 100 });
    const sw = make(0);
    const a = sw.addPort(new FakePort());
    const fb = new FakePort();
    sw.addPort(fb);
    for (let i = 0; i < 1000; i++) {
      clock.t += 1; // 1000 broadcasts in one second
      sendFrom(sw, a, frame({ dst: BCAST, src: mac(1) }));
    }
    // The burst, plus 100/s refill over the second.
    expect(fb.got.length).toBeGreaterThanOrEqual(199);
    expect(fb.got.length).toBeLessThanOrEqual(201);
    expect(a.counters.drops.storm).toBe(1000 - fb.got.length);
    const storms = events.filter((e) => e.kind === 'storm');
    expect(storms).toHaveLength(1);
    fb.clear();
    for (let i = 0; i < 1000; i++) sendFrom(sw, a, frame({ dst: mac(9), src: mac(1) })); // unknown unicast, same instant
    expect(fb.got).toHaveLength(1000);
  });
});

describe('loops', () => {
  it('two switches joined twice: the loop is found and one port blocked, on one switch only; unicast works after', () => {
    const { clock, events, make, wire } = rig();
    const A = make(0.1); // blocks after 150 ms
    const B = make(0.9); // would block after 1350 ms: by then the loop is gone
    const [l1] = wire.cable(A, B);
    const [l2] = wire.cable(A, B);
    const fx = new FakePort();
    const x = A.addPort(fx, { name: 'x' });
    const fy = new FakePort();
    const y = B.addPort(fy, { name: 'y' });
    sendFrom(A, x, frame({ dst: BCAST, src: mac(1), mark: 1 }));
    // 3 s of simulated time, one frame every 0.05 ms at most.
    for (let i = 0; i < 60 && wire.queue.length > 0; i++) wire.pump(1000);
    expect(wire.queue).toHaveLength(0); // the loop is broken: nothing left circulating
    const blocked = [...A.ports(), ...B.ports()].filter((p) => p.blocked !== null);
    expect(blocked).toHaveLength(1);
    expect([l1, l2]).toContain(blocked[0]);
    expect(blocked[0]!.blocked).toMatchObject({ reason: 'mac-flap', vlan: 1 });
    expect(A.counters.blocks + B.counters.blocks).toBe(1);
    expect(events.some((e) => e.kind === 'flapping')).toBe(true);
    // The log names both ports of the loop on that switch.
    const ev = events.find((e) => e.kind === 'blocked');
    expect(ev?.kind === 'blocked' ? [ev.port.id, ev.other?.id].sort() : []).toEqual([l1.id, l2.id].sort());
    // Unicast both ways, exactly once each.
    fx.clear();
    fy.clear();
    clock.t += 1000;
    sendFrom(B, y, frame({ dst: BCAST, src: mac(2), mark: 2 }));
    wire.pump(10_000);
    expect(fx.got).toHaveLength(1);
    sendFrom(A, x, frame({ dst: mac(2), src: mac(1), mark: 3 }));
    wire.pump(10_000);
    sendFrom(B, y, frame({ dst: mac(1), src: mac(2), mark: 4 }));
    wire.pump(10_000);
    expect(fy.got.map((g) => g.bytes[14])).toEqual([3]);
    expect(fx.got.map((g) => g.bytes[14])).toEqual([2, 4]);
    expect(x.blocked).toBeNull();
    expect(y.blocked).toBeNull();
  });

  it('when both switches would block at the same instant, only the one where the lowest flapping MAC is local does', () => {
    const { clock, make, wire } = rig();
    const A = make(0.5);
    const B = make(0.5); // same delay: the random part alone would block one port on each
    wire.cable(A, B);
    wire.cable(A, B);
    const x = A.addPort(new FakePort(), { name: 'x' });
    const y = B.addPort(new FakePort(), { name: 'y' });
    // Both guests broadcast every 100 ms for 3 s.
    for (let round = 0; round < 30; round++) {
      const next = clock.t + 100;
      sendFrom(A, x, frame({ dst: BCAST, src: mac(1) })); // mac(1) < mac(2): local to A
      sendFrom(B, y, frame({ dst: BCAST, src: mac(2) }));
      wire.pump(1900);
      clock.t = Math.max(clock.t, next);
    }
    expect(A.ports().filter((p) => p.blocked !== null)).toHaveLength(1);
    expect(B.ports().filter((p) => p.blocked !== null)).toHaveLength(0);
  });

  it('with no local MAC flapping anywhere, a switch still blocks after remoteDeferMs', () => {
    const { clock, events, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const a = sw.addPort(new FakePort());
    const b = sw.addPort(new FakePort());
    sw.addPort(new FakePort());
    const start = clock.t;
    // First learned on a: the flapping pair itself, so the MAC is not local.
    while (a.blocked === null && b.blocked === null && clock.t - start < 10_000) {
      clock.t += 5;
      sendFrom(sw, Math.round((clock.t - start) / 5) % 2 === 0 ? a : b, frame({ dst: BCAST, src: mac(1) }));
    }
    const at = clock.t - start;
    expect(at).toBeGreaterThanOrEqual(5000);
    expect(at).toBeLessThan(6500);
    expect(events.filter((e) => e.kind === 'blocked')).toHaveLength(1);
  });

  it('a port cabled back into its own switch is blocked (never the guest port), and the cost stays bounded', () => {
    const { clock, events, make, wire } = rig();
    const A = make(0.5);
    const [p, q] = wire.cable(A, A);
    const fx = new FakePort();
    const x = A.addPort(fx, { name: 'x' });
    const fz = new FakePort();
    A.addPort(fz, { name: 'z' });
    // The guest keeps broadcasting (ARP retries) every 10 ms while the loop runs: 3 s.
    const start = clock.t;
    let sent = 0;
    while (clock.t - start < 3000) {
      if (clock.t - start >= sent * 10) {
        sendFrom(A, x, frame({ dst: BCAST, src: mac(1) }));
        sent++;
      }
      if (wire.queue.length > 0) wire.pump(200);
      else clock.t += 1;
    }
    expect([p.blocked !== null, q.blocked !== null].filter(Boolean)).toHaveLength(1);
    expect(x.blocked).toBeNull();
    const ev = events.find((e) => e.kind === 'blocked');
    expect(ev).toMatchObject({ info: { mac: '52:54:00:00:00:01', vlan: 1 } });
    // The storm limit kept the loop near 1000 group frames/s per port until the block (at most ~2.5 s).
    expect(wire.delivered).toBeLessThan(2 * 1000 * 3 + 2 * 1000);
    // After the block each broadcast reaches z once.
    fz.clear();
    sendFrom(A, x, frame({ dst: BCAST, src: mac(1) }));
    wire.pump(1000);
    expect(fz.got).toHaveLength(1);
  });

  it('a pending block stands down when the flapping stops before it is due', () => {
    const { clock, events, make } = rig({ blockJitterMs: 1000 });
    const sw = make(0.5);
    const a = sw.addPort(new FakePort());
    const b = sw.addPort(new FakePort());
    const c = sw.addPort(new FakePort());
    sendFrom(sw, c, frame({ dst: BCAST, src: mac(1) })); // the MAC's own port: local
    const flap = (n: number, stepMs: number) => {
      for (let i = 0; i < n && a.blocked === null && b.blocked === null; i++) {
        clock.t += stepMs;
        sendFrom(sw, i % 2 === 0 ? a : b, frame({ dst: BCAST, src: mac(1) }));
      }
    };
    flap(21, 1);
    expect(events.filter((e) => e.kind === 'flapping')).toHaveLength(1); // due 500 ms later
    // Quiet past the due time and its window: the pending block stands down, so a new
    // burst of flapping starts a new pending block with its own delay, not an instant block.
    clock.t += 3000;
    flap(25, 1);
    expect(a.blocked ?? b.blocked).toBeNull();
    // Flapping on past the new deadline: blocked.
    flap(200, 5);
    expect(a.blocked ?? b.blocked).not.toBeNull();
    void c;
  });

  it('a guest that keeps sending with another guest\'s MAC gets its own port blocked, not the victim\'s', () => {
    const { clock, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const victim = sw.addPort(new FakePort());
    const spoofer = sw.addPort(new FakePort());
    sw.addPort(new FakePort());
    sendFrom(sw, victim, frame({ dst: BCAST, src: mac(7) }));
    for (let i = 0; i < 4000 && spoofer.blocked === null; i++) {
      clock.t += 2;
      // The spoofer sends more often than the victim.
      sendFrom(sw, i % 3 === 0 ? victim : spoofer, frame({ dst: BCAST, src: mac(7) }));
    }
    expect(spoofer.blocked).toMatchObject({ mac: '52:54:00:00:00:07', otherPort: victim.id });
    expect(victim.blocked).toBeNull();
  });

  it('a blocked port drops what it receives, gets nothing, forgets its MACs, and can be unblocked', () => {
    const { clock, events, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const fa = new FakePort();
    const a = sw.addPort(fa);
    const b = sw.addPort(new FakePort());
    const fc = new FakePort();
    const c = sw.addPort(fc);
    sendFrom(sw, c, frame({ dst: BCAST, src: mac(1) })); // the guest's own port: its MAC is local here
    for (let i = 0; i < 100 && a.blocked === null && b.blocked === null; i++) {
      clock.t += 1;
      sendFrom(sw, i % 2 === 0 ? a : b, frame({ dst: BCAST, src: mac(1) }));
    }
    const blocked = a.blocked !== null ? a : b;
    const sink = blocked === a ? fa : null;
    expect(blocked.blocked).not.toBeNull();
    expect(blocked.macCount).toBe(0);
    const before = blocked.counters.drops.blocked;
    sendFrom(sw, blocked, frame({ dst: BCAST, src: mac(5) }));
    expect(blocked.counters.drops.blocked).toBe(before + 1);
    fa.clear();
    sendFrom(sw, c, frame({ dst: BCAST, src: mac(3) }));
    if (sink !== null) expect(sink.got).toHaveLength(0);
    expect(sw.unblock(blocked)).toBe(true);
    expect(sw.unblock(blocked)).toBe(false);
    expect(events.at(-1)).toMatchObject({ kind: 'unblocked' });
    sendFrom(sw, c, frame({ dst: BCAST, src: mac(3) }));
    expect(blocked.counters.txFrames).toBeGreaterThan(0);
    void fc;
  });

  it('a suspect port is held to the storm limit for unicast too', () => {
    const { clock, make } = rig({ stormRate: 10, stormBurst: 10, blockJitterMs: 10_000 });
    const sw = make(0.99);
    const a = sw.addPort(new FakePort());
    const b = sw.addPort(new FakePort());
    const fc = new FakePort();
    sw.addPort(fc);
    for (let i = 0; i < 21; i++) {
      clock.t += 10;
      sendFrom(sw, i % 2 === 0 ? a : b, frame({ dst: mac(9), src: mac(1) }));
    }
    fc.clear();
    for (let i = 0; i < 100; i++) sendFrom(sw, b, frame({ dst: mac(9), src: mac(2) }));
    expect(fc.got.length).toBeLessThanOrEqual(11);
    expect(b.counters.drops.storm).toBeGreaterThan(80);
  });
});

describe('shared ports (links between switches, the VXLAN port)', () => {
  it('a shared port that keeps sending a local guest\'s MAC is not blocked: that MAC is, on it; counted, logged, unblockable', () => {
    const { clock, events, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const fx = new FakePort();
    const x = sw.addPort(fx, { name: 'x' });
    const fv = new FakePort();
    const v = sw.addPort(fv, { name: 'vxlan', shared: true });
    const fz = new FakePort();
    const z = sw.addPort(fz, { name: 'z' });
    sendFrom(sw, x, frame({ dst: BCAST, src: mac(1) })); // the guest's own port
    sendFrom(sw, v, frame({ dst: BCAST, src: mac(5) })); // a remote VM
    // A remote keeps sending with the guest's MAC (a hostile remote, or the guest's frames looping back), for 7 s.
    flap(sw, clock, x, v, mac(1), 1000, 7);
    expect(v.blocked).toBeNull();
    expect(x.blocked).toBeNull();
    expect(sw.counters.blocks).toBe(0);
    expect(sw.counters.macBlocks).toBe(1);
    expect(v.counters.macBlocks).toBe(1);
    expect(v.counters.drops.macBlocked).toBeGreaterThan(50);
    expect(sw.macBlocks()).toEqual([{ port: v.id, homePort: x.id, mac: '52:54:00:00:00:01', vlan: 1, moves: expect.any(Number), at: expect.any(Number) }]);
    expect(events.find((e) => e.kind === 'macBlocked')).toMatchObject({ port: v, home: x, mac: '52:54:00:00:00:01', vlan: 1 });
    // The guest's MAC stays on its own port; the remote VM still reaches z, and is reached.
    expect(sw.lookup(1, mac(1))).toBe(x);
    fx.clear();
    fz.clear();
    fv.clear();
    sendFrom(sw, z, frame({ dst: mac(1), src: mac(3), mark: 1 }));
    sendFrom(sw, v, frame({ dst: mac(3), src: mac(5), mark: 2 }));
    sendFrom(sw, z, frame({ dst: mac(5), src: mac(3), mark: 3 }));
    expect(fx.got.map((g) => g.bytes[14])).toEqual([1]);
    expect(fz.got.map((g) => g.bytes[14])).toEqual([2]);
    expect(fv.got.map((g) => g.bytes[14])).toEqual([3]);
    // Unblocking the shared port lifts its MAC blocks.
    expect(sw.unblock(v)).toBe(true);
    expect(sw.macBlocks()).toEqual([]);
    expect(events.at(-1)).toMatchObject({ kind: 'unblocked', port: v, macs: 1 });
    expect(sw.unblock(v)).toBe(false);
    clock.t += 10_000;
    sendFrom(sw, v, frame({ dst: BCAST, src: mac(1) }));
    expect(sw.lookup(1, mac(1))).toBe(v); // learned again: a guest may move for real
  });

  it('a MAC block goes with its home port (the guest left: its MAC may come back through the link), and with its shared port', () => {
    const { clock, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const x = sw.addPort(new FakePort(), { name: 'x' });
    const l = sw.addPort(new FakePort(), { name: 'link', shared: true });
    sw.addPort(new FakePort());
    sendFrom(sw, x, frame({ dst: BCAST, src: mac(1) }));
    flap(sw, clock, x, l, mac(1), 100, 2);
    expect(sw.macBlocks()).toHaveLength(1);
    sw.removePort(x);
    expect(sw.macBlocks()).toEqual([]);
    // The same with the shared port going (a link cut): its MAC blocks go with it.
    const x2 = sw.addPort(new FakePort(), { name: 'x2' });
    const l2 = sw.addPort(new FakePort(), { name: 'link2', shared: true });
    sendFrom(sw, x2, frame({ dst: BCAST, src: mac(2) }));
    flap(sw, clock, x2, l2, mac(2), 100, 2);
    expect(sw.macBlocks()).toHaveLength(1);
    sw.removePort(l2);
    expect(sw.macBlocks()).toEqual([]);
    sendFrom(sw, l, frame({ dst: BCAST, src: mac(1) }));
    expect(sw.lookup(1, mac(1))).toBe(l);
    expect(l.counters.drops.macBlocked).toBeGreaterThan(0);
  });

  it('a MAC is never kept on a port that loop protection blocked', () => {
    const { clock, make } = rig({ blockJitterMs: 0 });
    const sw = make(0);
    const victim = sw.addPort(new FakePort(), { name: 'victim' });
    const h = sw.addPort(new FakePort(), { name: 'h' });
    const v = sw.addPort(new FakePort(), { name: 'vxlan', shared: true });
    const w = sw.addPort(new FakePort(), { name: 'link', shared: true });
    sendFrom(sw, h, frame({ dst: BCAST, src: mac(9) })); // first learned on h...
    clock.t += 1;
    sendFrom(sw, v, frame({ dst: BCAST, src: mac(9) })); // ...then it lives behind v
    sendFrom(sw, victim, frame({ dst: BCAST, src: mac(7) }));
    for (let i = 0; i < 4000 && h.blocked === null; i++) {
      clock.t += 2;
      sendFrom(sw, i % 3 === 0 ? victim : h, frame({ dst: BCAST, src: mac(7) })); // h spoofs the victim: h is blocked
    }
    expect(h.blocked).not.toBeNull();
    flap(sw, clock, v, w, mac(9), 100, 2);
    expect(sw.macBlocks()).toEqual([]);
  });

  it('MAC blocks are bounded: past the bound the shared port is blocked as an edge port would be (counted)', () => {
    const { clock, make } = rig({ blockJitterMs: 0, maxMacBlocks: 2 });
    const sw = make(0);
    const xs = [1, 2, 3].map((i) => sw.addPort(new FakePort(), { name: `x${i}` }));
    const l = sw.addPort(new FakePort(), { name: 'link', shared: true });
    sw.addPort(new FakePort());
    for (let m = 0; m < 3 && l.blocked === null; m++) {
      sendFrom(sw, xs[m]!, frame({ dst: BCAST, src: mac(m + 1) }));
      for (let i = 0; i < 1000 && l.blocked === null; i++) {
        clock.t += 7;
        sendFrom(sw, i % 2 === 0 ? xs[m]! : l, frame({ dst: BCAST, src: mac(m + 1) }));
      }
    }
    expect(sw.macBlocks()).toHaveLength(2);
    expect(sw.counters.macBlocksFull).toBeGreaterThan(0);
    expect(l.blocked).toMatchObject({ reason: 'mac-flap', mac: '52:54:00:00:00:03' });
  });

  it('two switches joined twice by links: the loop still ends, bounded, and unicast works', () => {
    const r = rig();
    const { clock, wire } = r;
    const { A, B } = linkedTwice(r);
    const fx = new FakePort();
    const x = A.addPort(fx, { name: 'x' });
    const fy = new FakePort();
    const y = B.addPort(fy, { name: 'y' });
    // Both guests keep broadcasting every 100 ms for 4 s.
    runFor(clock, wire, 4000, 100, () => {
      sendFrom(A, x, frame({ dst: BCAST, src: mac(1) }));
      sendFrom(B, y, frame({ dst: BCAST, src: mac(2) }));
    });
    // Bounded while it ran: far below the ~20,000 frames/s an unchecked loop moves here.
    expect(wire.delivered).toBeLessThan(4 * 2 * 8000);
    // Each guest's MAC is blocked on the links of its own switch.
    expect(A.macBlocks().map((b) => b.mac)).toEqual(['52:54:00:00:00:01']);
    expect(B.macBlocks().map((b) => b.mac)).toEqual(['52:54:00:00:00:02']);
    // Nothing circulates once the guests are quiet.
    clock.t += 2000;
    wire.pump(100_000);
    expect(wire.queue).toHaveLength(0);
    expect(x.blocked).toBeNull();
    expect(y.blocked).toBeNull();
    // Unicast both ways, each frame at least once (a link pair not blocked carries floods twice).
    fx.clear();
    fy.clear();
    sendFrom(A, x, frame({ dst: mac(2), src: mac(1), mark: 3 }));
    wire.pump(10_000);
    sendFrom(B, y, frame({ dst: mac(1), src: mac(2), mark: 4 }));
    wire.pump(10_000);
    expect(new Set(fy.got.map((g) => g.bytes[14]))).toEqual(new Set([3]));
    expect(new Set(fx.got.map((g) => g.bytes[14]))).toEqual(new Set([4]));
    expect(wire.queue).toHaveLength(0);
  });
});

describe('storm limit on shared ports', () => {
  it('is per source MAC: one chatty VM behind a link does not starve the others\' ARP', () => {
    const { clock, make } = rig({ stormRate: 100, stormBurst: 100 });
    const sw = make(0);
    const l = sw.addPort(new FakePort(), { name: 'link', shared: true });
    const fb = new FakePort();
    sw.addPort(fb);
    let quiet = 0;
    for (let i = 0; i < 1000; i++) {
      clock.t += 1;
      sendFrom(sw, l, frame({ dst: BCAST, src: mac(1), mark: 1 })); // 1000 broadcasts/s
      if (i % 100 === 50) {
        sendFrom(sw, l, frame({ dst: BCAST, src: mac(2), mark: 2 })); // 10 ARPs/s
        quiet++;
      }
    }
    expect(fb.got.filter((g) => g.bytes[14] === 2)).toHaveLength(quiet);
    const chatty = fb.got.filter((g) => g.bytes[14] === 1).length;
    expect(chatty).toBeGreaterThanOrEqual(199);
    expect(chatty).toBeLessThanOrEqual(201);
  });

  it('is bounded for the port as a whole, at sharedStormRate, and its source table is bounded (counted when full)', () => {
    const { clock, make } = rig({ stormRate: 100, stormBurst: 100, sharedStormRate: 300, maxStormSources: 4 });
    const sw = make(0);
    const l = sw.addPort(new FakePort(), { name: 'link', shared: true });
    const fb = new FakePort();
    sw.addPort(fb);
    // 8 sources, each 100/s: 800/s offered over 2 s.
    for (let i = 0; i < 1600; i++) {
      clock.t += 1.25;
      sendFrom(sw, l, frame({ dst: BCAST, src: mac(1 + (i % 8)) }));
    }
    // The port's bucket: its burst (300) plus 300/s over 2 s.
    expect(fb.got.length).toBeGreaterThanOrEqual(880);
    expect(fb.got.length).toBeLessThanOrEqual(905);
    expect(l.counters.stormSourcesFull).toBeGreaterThan(0);
    expect(l.counters.drops.storm).toBe(1600 - fb.got.length);
  });
});

describe('a loop through links carrying a MAC that is local to neither switch', () => {
  it('gets one link port blocked (the MAC has no home here to keep it on), and unicast works after', () => {
    const r = rig();
    const { clock, wire } = r;
    const { A, B, l1, l2 } = linkedTwice(r);
    const C = r.make(0.5);
    wire.cable(C, A, { shared: true }, { shared: true });
    const fz = new FakePort();
    const z = C.addPort(fz, { name: 'z' });
    const fy = new FakePort();
    const y = B.addPort(fy, { name: 'y' });
    runFor(clock, wire, 4000, 100, () => sendFrom(C, z, frame({ dst: BCAST, src: mac(3) })));
    clock.t += 1000;
    wire.pump(100_000);
    expect(wire.queue).toHaveLength(0);
    const blocked = [...A.ports(), ...B.ports(), ...C.ports()].filter((p) => p.blocked !== null);
    expect(blocked).toHaveLength(1);
    expect([l1, l2]).toContain(blocked[0]);
    expect(blocked[0]!.blocked).toMatchObject({ mac: '52:54:00:00:00:03' });
    fz.clear();
    fy.clear();
    sendFrom(B, y, frame({ dst: mac(3), src: mac(2), mark: 5 }));
    wire.pump(10_000);
    sendFrom(C, z, frame({ dst: mac(2), src: mac(3), mark: 6 }));
    wire.pump(10_000);
    expect(fz.got.map((g) => g.bytes[14])).toEqual([5]);
    expect(fy.got.map((g) => g.bytes[14])).toEqual([6]);
  });
});
