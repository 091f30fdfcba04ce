/**
 * Cut-through (switch.ts): an in-process sender's frame built straight into
 * the output of the port it goes to. The switch must decide exactly as it
 * does for a frame built in its arena and copied: same ports, same bytes,
 * same counters, same tap; only the copy into the port it was built in goes.
 */
import { describe, expect, it } from 'vitest';
import { AwarePort, BCAST, BuildingPort, FakePort, frame, mac, setup } from '../../test/helpers/switch-kit.js';
import type { PortConfig, SwitchOptions, SwitchPort } from './types.js';

const GW = mac(1);

/** `where` is not `p`'s output (not.toBe would compare two 1 MiB arrays element by element for its message). */
const expectElsewhere = (where: Uint8Array, p: BuildingPort): void => expect(where === p.out, 'built in that port').toBe(false);

/** A switch with the gateway's kind of port on it, and a tap recording copies (`tap: false`: none). */
function rig(opts: SwitchOptions = {}, gwRole: PortConfig['role'] = { vlan: 1 }, tap = true) {
  const tapped: Uint8Array[] = [];
  const r = setup({ ...(tap ? { tap: { record: (buf, off, len) => tapped.push(buf.slice(off, off + len)) } } : {}), ...opts });
  const gwSink = new AwarePort();
  const gw = r.sw.addPort(gwSink, { name: 'gateway', role: gwRole, staticMacs: [GW], stormLimit: false });
  const addBuilding = (cfg?: PortConfig): [SwitchPort, BuildingPort] => {
    const b = new BuildingPort();
    return [r.sw.addPort(b, cfg), b];
  };
  /**
   * The gateway builds `f` in place after reserving for `dst` (undefined: says nothing, the arena);
   * `meanwhile` runs between the reservation and the commit.
   */
  const build = (f: Uint8Array, dst: Uint8Array | undefined, maxLen = r.sw.maxFrame, meanwhile = () => {}): { answer: boolean; where: Uint8Array } => {
    expect(r.sw.reserveInput(gw, maxLen, dst)).toBe(true);
    const where = r.sw.inputBuffer();
    expect(r.sw.inputView().buffer).toBe(where.buffer);
    where.set(f, r.sw.inputOffset());
    meanwhile();
    return { answer: r.sw.commitInput(f.length), where };
  };
  return { ...r, gw, gwSink, tapped, addBuilding, build };
}

describe('cut-through', () => {
  it('builds a frame in the output of the port it goes to and commits it there: no copy', () => {
    const { sw, add, send, addBuilding, build } = rig();
    const [a, fa] = addBuilding();
    const [b, fb] = add();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    send(b, frame({ dst: BCAST, src: mac(3) }));
    fa.clear();
    fb.clear();
    const f = frame({ dst: mac(2), src: GW, payload: 1000, mark: 7 });
    const { answer, where } = build(f, mac(2));
    expect(answer).toBe(true);
    expect(where).toBe(fa.out);
    expect(fa.how).toEqual(['commit']);
    expect(fa.got[0]!.bytes).toEqual(f);
    expect(fb.got).toHaveLength(0);
    expect(sw.counters.cutThrough).toBe(1);
    expect(a.counters.txFrames).toBe(2); // b's broadcast, then this one
    expect(a.counters.txBytes).toBe(60 + f.length);
  });

  // Without a tap, a frame built as its sender said takes the short way (switch.ts #asReserved): the same outcome.
  it.each([true, false])('decides, counts and taps exactly as the copying path, whatever the frame built turns out to be (tap: %s)', (tap) => {
    // The same steps on two switches: one told each frame's destination (cut-through), one not (arena + copy).
    const run = (cut: boolean) => {
      const w = rig({}, { vlan: 1 }, tap);
      const [a, fa] = w.addBuilding({ name: 'a' });
      const [b, fb] = w.add({ name: 'b' });
      const [t, ft] = w.add({ name: 't', role: { trunk: [1] } }); // VLAN 1 leaves it tagged
      w.send(a, frame({ dst: BCAST, src: mac(2) }));
      w.send(b, frame({ dst: BCAST, src: mac(3) }));
      w.send(t, frame({ dst: BCAST, src: mac(4), vlan: 1 }));
      const answers: boolean[] = [];
      const step = (f: Uint8Array, dst: Uint8Array) => answers.push(w.build(f, cut ? dst : undefined).answer);
      step(frame({ dst: mac(2), src: GW, mark: 1 }), mac(2)); // to a
      step(frame({ dst: mac(3), src: GW, mark: 2 }), mac(3)); // to b, which does not build in place
      step(frame({ dst: mac(3), src: GW, mark: 3 }), mac(2)); // said a, built for b: b gets a copy, a nothing
      step(frame({ dst: mac(2), src: GW, mark: 4 }), mac(2)); // a again: lands where mark 3 was scratch
      step(frame({ dst: BCAST, src: GW, mark: 5 }), mac(2)); // said a, built a broadcast: flooded, a gets it where it lies
      step(frame({ dst: mac(9), src: GW, mark: 6 }), mac(2)); // unknown destination: flooded
      step(frame({ dst: BCAST, src: GW, vlan: 0, pcp: 5, mark: 7 }), mac(2)); // priority-tagged: every port another form
      step(frame({ dst: mac(2), src: GW, vlan: 0, mark: 8 }), mac(2)); // priority-tagged unicast to a
      step(frame({ dst: mac(2), src: GW }).subarray(0, 10), mac(2)); // runt
      step(frame({ dst: mac(2), src: GW, payload: w.sw.maxFrame - 14 }), mac(2)); // oversize
      step(frame({ dst: mac(2), src: BCAST, mark: 9 }), mac(2)); // group source
      step(frame({ dst: mac(2), src: Uint8Array.of(0x01, 0x80, 0xc2, 0, 0, 1) }), mac(2)); // group source again (PAUSE's)
      step(frame({ dst: Uint8Array.of(0x01, 0x80, 0xc2, 0, 0, 2), src: GW }), mac(2)); // reserved destination
      fa.congested = true; // congested: handed over (the gateway honours backpressure), answered false
      step(frame({ dst: mac(2), src: GW, mark: 10 }), mac(2));
      fa.congested = false;
      w.sw.portDrained(a);
      fa.room = false; // no room in a's output: the arena
      step(frame({ dst: mac(2), src: GW, mark: 11 }), mac(2));
      fa.room = true;
      step(frame({ dst: mac(2), src: mac(3), mark: 12 }), mac(2)); // b's MAC from the gateway: it moves
      step(frame({ dst: mac(3), src: GW, mark: 13 }), mac(3)); // now on the gateway's own port: filtered
      step(frame({ dst: mac(2), src: GW, mark: 14 }), mac(2));
      // a's MAC ages out between the reservation and the commit: flooded (to a and t), as any frame to an unknown MAC.
      answers.push(w.build(frame({ dst: mac(2), src: GW, mark: 15 }), cut ? mac(2) : undefined, w.sw.maxFrame, () => (w.clock.t += w.sw.ageingMs)).answer);
      const ports = w.sw.ports().map((p) => ({ name: p.name, counters: p.counters, macs: p.macCount }));
      const { cutThrough, ...counters } = w.sw.counters;
      return { answers, ports, counters, cutThrough, tapped: w.tapped, a: fa.output(), aGot: fa.got.map((g) => g.bytes), b: fb.got.map((g) => g.bytes), t: ft.got.map((g) => g.bytes), table: w.sw.table(), gwDrains: w.gwSink.drains, how: fa.how };
    };
    const copied = run(false);
    const cut = run(true);
    expect(copied.cutThrough).toBe(0);
    expect(cut.cutThrough).toBe(7); // marks 1, 4, 5, 6, 12, 14, 15
    expect(cut.how.filter((h) => h === 'commit')).toHaveLength(7);
    expect(cut.answers).toEqual(copied.answers);
    expect(cut.answers).toContain(false);
    expect(cut.counters).toEqual(copied.counters);
    expect(cut.ports).toEqual(copied.ports);
    expect(cut.tapped).toEqual(copied.tapped);
    expect(cut.aGot).toEqual(copied.aGot);
    expect(cut.a).toEqual(copied.a); // a's whole output, prefixes included
    expect(cut.b).toEqual(copied.b);
    expect(cut.t).toEqual(copied.t);
    expect(cut.table).toEqual(copied.table);
    expect(cut.gwDrains).toEqual(copied.gwDrains);
    // And what that is: a got marks 1, 4, 5, 6, 7 (untagged), 8 (untagged), 10, 11, 12, 14, 15.
    expect(cut.aGot.slice(2).map((f) => f[14])).toEqual([1, 4, 5, 6, 7, 8, 10, 11, 12, 14, 15]);
    expect(cut.t.at(-1)![18]).toBe(15); // flooded, tagged
    expect(cut.counters.drops).toMatchObject({ runt: 1, oversize: 1, badSource: 2, reserved: 1, filtered: 1 });
    expect(cut.counters.forwarded).toBe(copied.counters.forwarded);
  });

  it('a run of frames built in place keeps its order and counts; the port filling mid-run tells the gateway to hold back, and its drain reaches it', () => {
    for (const tap of [true, false]) {
      const { sw, send, addBuilding, build, gw, gwSink } = rig({}, { vlan: 1 }, tap);
      const [a, fa] = addBuilding();
      send(a, frame({ dst: BCAST, src: mac(2) }));
      fa.clear();
      // Like StreamPort, whose reserveFrame may flush a full chunk and turn congested: the fifth reservation does.
      let reserved = 0;
      const reserve = fa.reserveFrame.bind(fa);
      fa.reserveFrame = (maxLen) => {
        if (++reserved === 5) fa.congested = true;
        return reserve(maxLen);
      };
      const answers: boolean[] = [];
      for (let i = 1; i <= 5; i++) answers.push(build(frame({ dst: mac(2), src: GW, mark: i, payload: 1000 }), mac(2)).answer);
      expect(answers).toEqual([true, true, true, true, false]);
      expect(fa.got.map((g) => g.bytes[14])).toEqual([1, 2, 3, 4, 5]);
      expect(fa.how).toEqual(['commit', 'commit', 'commit', 'commit', 'commit']);
      expect(sw.counters).toMatchObject({ cutThrough: 5, heldBack: 1, forwarded: 5 });
      expect(gw.counters).toMatchObject({ rxFrames: 5, rxBytes: 5 * 1014 });
      expect(a.counters).toMatchObject({ txFrames: 5, txBytes: 5 * 1014, txDropped: 0 });
      // Congested now: the next frame is built in the arena and still handed over (the gateway holds back).
      const { answer, where } = build(frame({ dst: mac(2), src: GW, mark: 6 }), mac(2));
      expect(answer).toBe(false);
      expectElsewhere(where, fa);
      expect(fa.got.at(-1)!.bytes[14]).toBe(6);
      expect(gwSink.drains).toBe(0);
      fa.congested = false;
      sw.portDrained(a);
      expect(gwSink.drains).toBe(1);
      expect(build(frame({ dst: mac(2), src: GW, mark: 7 }), mac(2)).answer).toBe(true);
      expect(fa.how.at(-1)).toBe('commit');
    }
  });

  it('a frame built in place whose port was tail-dropping is not committed, and counted', () => {
    const { sw, send, addBuilding, build, gwSink } = rig({}, { vlan: 1 }, false);
    const [a, fa] = addBuilding();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    // Congested, and handed its bound since it became so: one more would pass the bound.
    fa.congested = true;
    for (let i = 0; i < 2000 && a.counters.txDropped === 0; i++) {
      expectElsewhere(build(frame({ dst: mac(2), src: GW, payload: 1400 }), mac(2)).where, fa); // congested: the arena
      fa.used = 0; // the fake output wraps round
    }
    expect(a.counters.txDropped).toBe(1);
    fa.clear();
    // Congestion that shows only after the reservation (a flush in reserveFrame): the frame built in a's output is dropped, not committed.
    fa.congested = false;
    const { answer, where } = build(frame({ dst: mac(2), src: GW, mark: 3 }), mac(2), sw.maxFrame, () => (fa.congested = true));
    expect(where).toBe(fa.out);
    expect(answer).toBe(false);
    expect(fa.got).toHaveLength(0);
    expect(a.counters.txDropped).toBe(2);
    fa.congested = false;
    sw.portDrained(a);
    expect(gwSink.drains).toBe(1);
  });

  it('follows a MAC that moved, and builds in the arena for a port that cannot build in place', () => {
    const { sw, send, addBuilding, add, build } = rig();
    const [a, fa] = addBuilding();
    const [b, fb] = addBuilding();
    const [c, fc] = add();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    expect(build(frame({ dst: mac(2), src: GW }), mac(2)).where).toBe(fa.out);
    send(b, frame({ dst: BCAST, src: mac(2) })); // the guest moved to b
    fa.clear();
    fb.clear();
    expect(build(frame({ dst: mac(2), src: GW, mark: 2 }), mac(2)).where).toBe(fb.out);
    expect(fb.how).toEqual(['commit']);
    expect(fa.got).toHaveLength(0);
    send(c, frame({ dst: BCAST, src: mac(2) })); // and to c, a plain port
    const { where } = build(frame({ dst: mac(2), src: GW, mark: 3 }), mac(2));
    expectElsewhere(where, fa);
    expectElsewhere(where, fb);
    expect(fc.got.at(-1)!.bytes[14]).toBe(3);
    expect(sw.counters.cutThrough).toBe(2);
    void a;
  });

  it('never builds in a blocked port, nor for a blocked sender', () => {
    const { sw, clock, send, addBuilding, add, build, gw } = rig({ flapMoves: 4, blockJitterMs: 0, remoteDeferMs: 0, random: () => 0 });
    const [a, fa] = addBuilding({ staticMacs: [mac(2)] }); // a static entry outlives the block
    const [b] = add();
    send(b, frame({ dst: BCAST, src: mac(5) })); // first learned on b: a, where it flaps to, gets blocked
    for (let i = 0; i < 20 && a.blocked === null; i++) {
      clock.t += 1;
      send(a, frame({ dst: BCAST, src: mac(5) }));
      send(b, frame({ dst: BCAST, src: mac(5) }));
    }
    expect(a.blocked).not.toBeNull();
    fa.clear();
    const { where } = build(frame({ dst: mac(2), src: GW }), mac(2));
    expectElsewhere(where, fa);
    expect(fa.got).toHaveLength(0);
    expect(sw.counters.cutThrough).toBe(0);
    sw.unblock(a);
    expect(build(frame({ dst: mac(2), src: GW }), mac(2)).where).toBe(fa.out);
    expect(sw.counters.cutThrough).toBe(1);
    void gw;
  });

  it('builds in a trunk only where the frame leaves it untagged (its native VLAN)', () => {
    const { sw, send, addBuilding, build } = rig({}, { vlan: 10 });
    const [tagged, ft] = addBuilding({ role: { trunk: [10] } });
    const [native, fn] = addBuilding({ role: { trunk: [20], native: 10 } });
    send(tagged, frame({ dst: BCAST, src: mac(2), vlan: 10 }));
    send(native, frame({ dst: BCAST, src: mac(3) }));
    ft.clear();
    fn.clear();
    const toTagged = frame({ dst: mac(2), src: GW, mark: 1 });
    expectElsewhere(build(toTagged, mac(2)).where, ft);
    expect(ft.how).toEqual(['copy']);
    expect(ft.got[0]!.bytes.subarray(12, 16)).toEqual(Uint8Array.of(0x81, 0, 0, 10));
    expect(build(frame({ dst: mac(3), src: GW, mark: 2 }), mac(3)).where).toBe(fn.out);
    expect(fn.how).toEqual(['commit']);
    expect(fn.got[0]!.bytes[12]).toBe(0x08); // untagged IPv4
    expect(sw.counters.cutThrough).toBe(1);
  });

  it('a tagged frame is moved to the arena first: a copy of another form sent into its port would overwrite it mid-flood', () => {
    // The gateway on a trunk (native 10, 20 tagged) builds a frame tagged with the native VID, to a
    // broadcast: a (access 10) gets the untagged form, t (trunk 10 tagged) the bytes as built.
    const { sw, send, addBuilding, add, build } = rig({}, { trunk: [20], native: 10 });
    const [a, fa] = addBuilding({ role: { vlan: 10 } });
    const [t, ft] = add({ role: { trunk: [10] } });
    send(a, frame({ dst: BCAST, src: mac(2) }));
    send(t, frame({ dst: BCAST, src: mac(3), vlan: 10 }));
    fa.clear();
    ft.clear();
    const f = frame({ dst: BCAST, src: GW, vlan: 10, mark: 9, payload: 200 });
    build(f, mac(2));
    expect(ft.got[0]!.bytes).toEqual(f);
    const untagged = new Uint8Array(f.length - 4);
    untagged.set(f.subarray(0, 12), 0);
    untagged.set(f.subarray(16), 12);
    expect(fa.got[0]!.bytes).toEqual(untagged);
    expect(sw.counters.cutThrough).toBe(0);
    void t;
  });

  it('inside a delivery (the switch busy) builds in the arena, in order; a frame built in place keeps its place before what it sets off', () => {
    const { sw, send, addBuilding, add, build, gwSink } = rig();
    const [a, fa] = addBuilding();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    // The gateway answers a's ACK from inside the delivery: queued behind it, built in the arena.
    gwSink.sendFrame = () => {
      expectElsewhere(build(frame({ dst: mac(2), src: GW, mark: 1 }), mac(2)).where, fa);
      expectElsewhere(build(frame({ dst: mac(2), src: GW, mark: 2 }), mac(2)).where, fa);
      return true;
    };
    fa.clear();
    send(a, frame({ dst: GW, src: mac(2) }));
    expect(fa.got.map((g) => g.bytes[14])).toEqual([1, 2]);
    expect(fa.how).toEqual(['copy', 'copy']);
    expect(sw.counters.cutThrough).toBe(0);
    // A frame built in a's output sets off an answer to a from another in-process port
    // (reached by a flood): the answer is queued and follows it into a's output.
    const echoSink = new FakePort();
    const echo = sw.addPort(echoSink);
    echoSink.sendFrame = (buf, off, len) => {
      echoSink.got.push({ bytes: buf.slice(off, off + len), buf, off });
      const r = frame({ dst: mac(2), src: mac(7), mark: 99 });
      sw.input(echo, r, new DataView(r.buffer), 0, r.length);
      return true;
    };
    const [, fb] = add();
    fa.clear();
    const { where } = build(frame({ dst: BCAST, src: GW, mark: 3 }), mac(2));
    expect(where).toBe(fa.out);
    expect(fa.got.map((g) => g.bytes[14])).toEqual([3, 99]);
    expect(fa.how).toEqual(['commit', 'copy']);
    expect(fb.got.map((g) => g.bytes[14])).toEqual([3]);
    expect(sw.counters.cutThrough).toBe(1);
    expect(sw.counters.reentrantQueued).toBe(3);
  });

  it('a frame built from inside a delivery for a congested port answers hold back at once, as that port would itself; its drain reaches the gateway', () => {
    // The gateway answering a guest's ACK with data (the switch busy): before, every frame up to the
    // queue's hold mark (256 KiB) was answered "go on" and handed to the full port afterwards; ACK after
    // ACK that passed the port's bound and frames were tail-dropped (txDropped, seen at MTU 65520).
    const { sw, send, addBuilding, build, gwSink } = rig({}, { vlan: 1 }, false);
    const [a, fa] = addBuilding();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    fa.congested = true;
    const answers: boolean[] = [];
    gwSink.sendFrame = () => {
      answers.push(build(frame({ dst: mac(2), src: GW, mark: 1, payload: 1000 }), mac(2)).answer);
      return true;
    };
    fa.clear();
    expect(send(a, frame({ dst: GW, src: mac(2) }))).toBe(true); // the guest's own frame is never held back
    expect(answers).toEqual([false]);
    expect(fa.got.map((g) => g.bytes[14])).toEqual([1]); // still delivered (the port takes a sender's backlog up to its bound)
    expect(a.counters.txDropped).toBe(0);
    expect(gwSink.drains).toBe(0);
    fa.congested = false;
    sw.portDrained(a);
    expect(gwSink.drains).toBe(1);
    // Not congested: queued frames are answered "go on" until the queue's hold mark.
    answers.length = 0;
    send(a, frame({ dst: GW, src: mac(2) }));
    expect(answers).toEqual([true]);
  });

  it('a port whose isCongested throws is not built in, and counts the error as before', () => {
    const { sw, send, addBuilding, build } = rig();
    const [a, fa] = addBuilding();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    fa.isCongested = () => {
      throw new Error('boom');
    };
    fa.clear();
    expectElsewhere(build(frame({ dst: mac(2), src: GW }), mac(2)).where, fa);
    expect(fa.got).toHaveLength(0);
    expect(a.counters.txErrors).toBe(1);
    expect(sw.counters.cutThrough).toBe(0);
  });

  it('reserves nowhere once closed, and not for more than the largest frame', () => {
    const { sw, send, addBuilding, gw } = rig();
    const [a, fa] = addBuilding();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    expect(sw.reserveInput(gw, sw.maxFrame + 1, mac(2))).toBe(true);
    expectElsewhere(sw.inputBuffer(), fa);
    sw.commitInput(0);
    sw.close();
    expect(sw.reserveInput(gw, 100, mac(2))).toBe(false);
    void a;
  });
});
