import { describe, expect, it } from 'vitest';
import { isVmnetError } from '../errors.js';
import { formatMac } from '../wire/addr.js';
import { BCAST, FakePort, frame, MCAST, mac, parse, setup } from '../../test/helpers/switch-kit.js';
import { Switch } from './switch.js';
import type { PortConfig, SwitchPort } from './types.js';
import { normaliseRole } from './vlan.js';

describe('learning and forwarding', () => {
  it('floods unknown unicast, learns, then forwards to the one port', () => {
    const { sw, add, send } = setup();
    const [a, fa] = add();
    const [b, fb] = add();
    const [, fc] = add();
    send(a, frame({ dst: mac(2), src: mac(1) }));
    expect(fb.got).toHaveLength(1);
    expect(fc.got).toHaveLength(1);
    expect(fa.got).toHaveLength(0);
    expect(sw.counters.flooded).toBe(1);
    expect(a.counters.flooded).toBe(1);
    fb.clear();
    fc.clear();
    send(b, frame({ dst: mac(1), src: mac(2) }));
    expect(fa.got).toHaveLength(1);
    expect(fc.got).toHaveLength(0);
    expect(sw.counters.forwarded).toBe(1);
    send(a, frame({ dst: mac(2), src: mac(1) }));
    expect(fb.got).toHaveLength(1);
    expect(fc.got).toHaveLength(0);
    expect(sw.table().map((e) => [e.vlan, e.mac, e.port])).toEqual([
      [1, '52:54:00:00:00:01', a.id],
      [1, '52:54:00:00:00:02', b.id],
    ]);
    expect(a.counters).toMatchObject({ rxFrames: 2, txFrames: 1 });
    expect(b.counters).toMatchObject({ rxFrames: 1, txFrames: 2, txBytes: 120 });
  });

  it('floods broadcast and multicast to all but the ingress port, even when learned', () => {
    const { add, send } = setup();
    const ports = [add(), add(), add(), add()];
    for (const [p] of ports) send(p, frame({ dst: BCAST, src: mac(p.id) }));
    for (const [, f] of ports) {
      expect(f.got).toHaveLength(3);
      expect(f.got.map((g) => formatMac(parse(g.bytes).src))).not.toContain(formatMac(mac(ports.indexOf(ports.find(([, x]) => x === f)!) + 1)));
      f.clear();
    }
    send(ports[0]![0], frame({ dst: MCAST, src: mac(1) }));
    expect(ports.map(([, f]) => f.got.length)).toEqual([0, 1, 1, 1]);
  });

  it('never sends a frame back to its ingress port; filters frames to a MAC on the ingress port', () => {
    const { sw, add, send } = setup();
    const [a, fa] = add();
    const [, fb] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    send(a, frame({ dst: BCAST, src: mac(3) })); // two MACs behind port a (a bridge in the VM)
    fb.clear();
    send(a, frame({ dst: mac(3), src: mac(1) }));
    expect(fa.got).toHaveLength(0);
    expect(fb.got).toHaveLength(0);
    expect(a.counters.drops.filtered).toBe(1);
    expect(sw.counters.drops.filtered).toBe(1);
  });

  it('forwards zero-copy: the same buffer and offset reach every port', () => {
    const { sw, add } = setup();
    const [a] = add();
    const [, fb] = add();
    const [, fc] = add();
    const big = new Uint8Array(200);
    const f = frame({ dst: BCAST, src: mac(1) });
    big.set(f, 37);
    sw.input(a, big, new DataView(big.buffer), 37, f.length);
    expect(fb.got[0]!.buf).toBe(big);
    expect(fb.got[0]!.off).toBe(37);
    expect(fc.got[0]!.buf).toBe(big);
    expect(fb.got[0]!.bytes).toEqual(f);
  });

  it('relearns a MAC that moves to another port', () => {
    const { sw, add, send } = setup();
    const [a] = add();
    const [b, fb] = add();
    const [c, fc] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    send(b, frame({ dst: BCAST, src: mac(1) })); // the VM moved
    expect(sw.counters.moves).toBe(1);
    expect(b.counters.moves).toBe(1);
    expect(a.macCount).toBe(0);
    expect(b.macCount).toBe(1);
    fb.clear();
    fc.clear();
    send(c, frame({ dst: mac(1), src: mac(9) }));
    expect(fb.got).toHaveLength(1);
    expect(fc.got).toHaveLength(0);
    expect(sw.lookup(1, mac(1))).toBe(b);
  });

  it('ages entries out with the injected clock', () => {
    const { sw, clock, add, send } = setup({ ageingMs: 10_000 });
    const [a] = add();
    const [b, fb] = add();
    const [, fc] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    clock.t += 9_999;
    fb.clear();
    fc.clear();
    send(b, frame({ dst: mac(1), src: mac(2) }));
    expect(fc.got).toHaveLength(0); // still known: unicast
    clock.t += 1;
    send(b, frame({ dst: mac(1), src: mac(2) }));
    expect(fc.got).toHaveLength(1); // aged: flooded again
    expect(sw.counters.aged).toBe(1);
    expect(sw.table().map((e) => e.mac)).toEqual(['52:54:00:00:00:02']);
    expect(sw.table()[0]!.ageMs).toBe(0);
    clock.t += 10_000;
    expect(sw.table()).toEqual([]);
    expect(sw.sweep()).toBe(1);
    expect(sw.size).toBe(0);
    expect(b.macCount).toBe(0);
  });

  it('removePort forgets its MACs and stops its frames', () => {
    const { sw, add, send } = setup();
    const [a, fa] = add();
    const [b, fb] = add();
    const [, fc] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    sw.removePort(a);
    sw.removePort(a);
    expect(sw.size).toBe(0);
    fb.clear();
    fc.clear();
    send(b, frame({ dst: mac(1), src: mac(2) }));
    expect(fa.got).toHaveLength(0);
    expect(fc.got).toHaveLength(1); // unknown again: flooded to the rest
    send(a, frame({ dst: BCAST, src: mac(1) }));
    expect(fb.got).toHaveLength(0);
    expect(sw.ports().map((p) => p.id)).toEqual([b.id, 3]);
    expect(() => new Switch().input(b, new Uint8Array(14), new DataView(new ArrayBuffer(14)), 0, 14)).toThrow(/belong/);
  });

  it('drops frames to congested ports', () => {
    const { add, send } = setup();
    const [a] = add();
    const [b, fb] = add();
    const [c, fc] = add();
    fb.congested = true;
    send(a, frame({ dst: BCAST, src: mac(1) }));
    expect(fb.got).toHaveLength(0);
    expect(b.counters.txDropped).toBe(1);
    expect(fc.got).toHaveLength(1);
    expect(c.counters.txFrames).toBe(1);
  });

  it('counts a throwing sendFrame and carries on to the other ports', () => {
    const clock = { t: 0 };
    const sw = new Switch({ now: () => clock.t });
    const a = sw.addPort(new FakePort());
    const bad = sw.addPort({
      sendFrame() {
        throw new Error('boom');
      },
    });
    const fc = new FakePort();
    sw.addPort(fc);
    const f = frame({ dst: BCAST, src: mac(1) });
    sw.input(a, f, new DataView(f.buffer), 0, f.length);
    expect(bad.counters.txErrors).toBe(1);
    expect(fc.got).toHaveLength(1);
  });
});

describe('ingress validation', () => {
  it('counts runts, oversize and group/zero sources, never throws', () => {
    const { sw, add, send } = setup({ mtu: 1500 });
    const [a] = add();
    const [, fb] = add();
    send(a, new Uint8Array(0));
    send(a, new Uint8Array(13));
    const shortTag = frame({ dst: BCAST, src: mac(1), payload: 0 }).subarray(0, 14);
    shortTag[12] = 0x81;
    shortTag[13] = 0x00;
    send(a, shortTag); // a tag TPID but no room for the TCI
    send(a, frame({ dst: BCAST, src: mac(1), payload: 1501 }));
    send(a, frame({ dst: BCAST, src: BCAST }));
    send(a, frame({ dst: BCAST, src: MCAST }));
    send(a, frame({ dst: BCAST, src: new Uint8Array(6) }));
    expect(a.counters.drops).toMatchObject({ runt: 3, oversize: 1, badSource: 3 });
    expect(sw.counters.drops).toMatchObject({ runt: 3, oversize: 1, badSource: 3 });
    expect(sw.size).toBe(0);
    expect(fb.got).toHaveLength(0);
    // Exactly 14 bytes and exactly MTU + 14 pass.
    send(a, frame({ dst: BCAST, src: mac(1), payload: 0 }));
    send(a, frame({ dst: BCAST, src: mac(1), payload: 1500 }));
    expect(fb.got.map((g) => g.bytes.length)).toEqual([14, 1514]);
    expect(sw.maxFrame).toBe(1522); // room for two tags (Q-in-Q)
  });

  it('rejects bad roles and options with E_USAGE', () => {
    const bad: Array<() => unknown> = [
      () => normaliseRole({ vlan: 0 }),
      () => normaliseRole({ vlan: 4095 }),
      () => normaliseRole({ vlan: 1.5 }),
      () => normaliseRole({ trunk: [] }),
      () => normaliseRole({ trunk: [10, 5000] }),
      () => normaliseRole({ trunk: [10], native: 0 }),
      () => new Switch({ mtu: 10 }),
      () => new Switch({ maxEntries: 0 }),
    ];
    for (const f of bad) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(isVmnetError(err) && err.code === 'E_USAGE').toBe(true);
    }
    expect(normaliseRole({ trunk: [30, 10, 30] })).toEqual({ trunk: [10, 30] });
    expect(normaliseRole({ trunk: [], native: 5 })).toEqual({ trunk: [], native: 5 });
  });
});

describe('VLANs', () => {
  it('access 10 and access 20 never exchange a frame, broadcasts included', () => {
    const { sw, add, send } = setup();
    const [a10, f10a] = add({ role: { vlan: 10 } });
    const [b10, f10b] = add({ role: { vlan: 10 } });
    const [a20, f20a] = add({ role: { vlan: 20 } });
    const [b20, f20b] = add({ role: { vlan: 20 } });
    send(a10, frame({ dst: BCAST, src: mac(1) }));
    send(a20, frame({ dst: BCAST, src: mac(2) }));
    send(b10, frame({ dst: mac(2), src: mac(3) })); // mac(2) is known only in VLAN 20
    send(b20, frame({ dst: mac(1), src: mac(4) }));
    send(a10, frame({ dst: MCAST, src: mac(1) }));
    const srcs = (f: FakePort): string[] => f.got.map((g) => formatMac(parse(g.bytes).src));
    expect(srcs(f10a)).toEqual([formatMac(mac(3))]);
    expect(srcs(f10b)).toEqual([formatMac(mac(1)), formatMac(mac(1))]);
    expect(srcs(f20a)).toEqual([formatMac(mac(4))]);
    expect(srcs(f20b)).toEqual([formatMac(mac(2))]);
    for (const f of [f10a, f10b, f20a, f20b]) for (const g of f.got) expect(parse(g.bytes).vlan).toBe(-1);
    // The same MAC may live in both VLANs on different ports.
    send(b20, frame({ dst: BCAST, src: mac(1) }));
    expect(sw.lookup(10, mac(1))).toBe(a10);
    expect(sw.lookup(20, mac(1))).toBe(b20);
    expect(sw.counters.moves).toBe(0);
  });

  it('a trunk receives both VLANs tagged with the right VID, and trunk → access untags', () => {
    const { sw, add, send } = setup();
    const [a10, f10] = add({ role: { vlan: 10 } });
    const [a20, f20] = add({ role: { vlan: 20 } });
    const [t, ft] = add({ role: { trunk: [10, 20] } });
    const f1 = frame({ dst: BCAST, src: mac(1), mark: 1 });
    send(a10, f1);
    send(a20, frame({ dst: BCAST, src: mac(2), mark: 2 }));
    expect(ft.got.map((g) => parse(g.bytes).vlan)).toEqual([10, 20]);
    // Tagged form = original with a tag inserted after the MACs.
    const tagged = ft.got[0]!.bytes;
    expect(tagged.length).toBe(f1.length + 4);
    expect([...tagged.subarray(12, 16)]).toEqual([0x81, 0x00, 0x00, 10]);
    expect(tagged.subarray(16)).toEqual(f1.subarray(12));
    expect(tagged.subarray(0, 12)).toEqual(f1.subarray(0, 12));
    f10.clear();
    f20.clear();
    // Trunk → access: VLAN 20 tagged frame to mac(2) arrives untagged only on a20.
    const f3 = frame({ dst: mac(2), src: mac(3), vlan: 20, pcp: 5, mark: 3 });
    send(t, f3);
    expect(f10.got).toHaveLength(0);
    expect(f20.got).toHaveLength(1);
    const un = f20.got[0]!.bytes;
    expect(un.length).toBe(f3.length - 4);
    expect(parse(un).vlan).toBe(-1);
    expect(un.subarray(12)).toEqual(f3.subarray(16));
    expect(sw.lookup(20, mac(3))).toBe(t);
    expect(sw.lookup(10, mac(3))).toBeNull();
    // Broadcast on trunk VLAN 10 reaches only a10, untagged.
    send(t, frame({ dst: BCAST, src: mac(3), vlan: 10 }));
    expect(f10.got).toHaveLength(1);
    expect(f20.got).toHaveLength(1);
    expect(parse(f10.got[0]!.bytes).vlan).toBe(-1);
  });

  it('trunk to trunk keeps the tag, PCP included, zero-copy', () => {
    const { add, send } = setup();
    const [t1] = add({ role: { trunk: [10, 20] } });
    const [, ft2] = add({ role: { trunk: [10] } });
    const [, ft3] = add({ role: { trunk: [20] } });
    const f = frame({ dst: BCAST, src: mac(1), vlan: 10, pcp: 6 });
    send(t1, f);
    expect(ft2.got).toHaveLength(1);
    expect(ft2.got[0]!.buf).toBe(f);
    const h = parse(ft2.got[0]!.bytes);
    expect([h.vlan, h.pcp]).toEqual([10, 6]);
    expect(ft3.got).toHaveLength(0);
  });

  it('rewrites once per egress form, not once per port', () => {
    const { add, send } = setup();
    const [a] = add({ role: { vlan: 10 } });
    const trunks = [add({ role: { trunk: [10] } }), add({ role: { trunk: [10, 11] } }), add({ role: { trunk: [10], native: 3 } })];
    const [, fu] = add({ role: { vlan: 10 } });
    const f = frame({ dst: BCAST, src: mac(1) });
    send(a, f);
    const bufs = new Set(trunks.map(([, ft]) => ft.got[0]!.buf));
    expect(bufs.size).toBe(1);
    expect(bufs.has(f)).toBe(false);
    expect(trunks.map(([, ft]) => ft.got[0]!.off)).toEqual([0, 0, 0]);
    expect(fu.got[0]!.buf).toBe(f);
  });

  it('native VLAN: untagged in, untagged out; tagged native accepted; others tagged', () => {
    const { sw, add, send } = setup();
    const [a1, f1] = add(); // access 1
    const [a10, f10] = add({ role: { vlan: 10 } });
    const [t, ft] = add({ role: { trunk: [10], native: 1 } });
    send(a1, frame({ dst: BCAST, src: mac(1) }));
    send(a10, frame({ dst: BCAST, src: mac(2) }));
    expect(ft.got.map((g) => parse(g.bytes).vlan)).toEqual([-1, 10]);
    send(t, frame({ dst: BCAST, src: mac(3) })); // untagged on trunk = native 1
    expect(f1.got).toHaveLength(1);
    expect(parse(f1.got[0]!.bytes).vlan).toBe(-1);
    expect(f10.got).toHaveLength(0);
    send(t, frame({ dst: mac(1), src: mac(3), vlan: 1 })); // tagged with the native VID
    expect(f1.got).toHaveLength(2);
    expect(parse(f1.got[1]!.bytes).vlan).toBe(-1);
    expect(sw.lookup(1, mac(3))).toBe(t);
  });

  it('drops tagged frames on access ports, disallowed VIDs and untagged frames on a trunk without native', () => {
    const { sw, add, send } = setup();
    const [a10, f10] = add({ role: { vlan: 10 } });
    const [t, ft] = add({ role: { trunk: [10, 20] } });
    send(a10, frame({ dst: BCAST, src: mac(1), vlan: 10 }));
    send(a10, frame({ dst: BCAST, src: mac(1), vlan: 20 }));
    expect(a10.counters.drops.taggedOnAccess).toBe(2);
    expect(ft.got).toHaveLength(0);
    send(t, frame({ dst: BCAST, src: mac(2), vlan: 30 }));
    send(t, frame({ dst: BCAST, src: mac(2), vlan: 4095 }));
    send(t, frame({ dst: BCAST, src: mac(2) }));
    send(t, frame({ dst: BCAST, src: mac(2), vlan: 0 }));
    expect(t.counters.drops).toMatchObject({ vlanNotAllowed: 2, untaggedOnTrunk: 2 });
    expect(f10.got).toHaveLength(0);
    expect(sw.size).toBe(0);
    expect(sw.counters.drops).toMatchObject({ taggedOnAccess: 2, vlanNotAllowed: 2, untaggedOnTrunk: 2 });
  });

  it('priority-tagged frames (VID 0) belong to the port VLAN', () => {
    const { add, send } = setup();
    const [a10] = add({ role: { vlan: 10 } });
    const [, fb] = add({ role: { vlan: 10 } });
    const [, ft] = add({ role: { trunk: [10] } });
    const f = frame({ dst: BCAST, src: mac(1), vlan: 0, pcp: 3 });
    send(a10, f);
    expect(parse(fb.got[0]!.bytes).vlan).toBe(-1);
    expect(fb.got[0]!.bytes.subarray(12)).toEqual(f.subarray(16));
    const h = parse(ft.got[0]!.bytes);
    expect([h.vlan, h.pcp]).toEqual([10, 3]);
    expect(ft.got[0]!.bytes.subarray(16)).toEqual(f.subarray(16));
  });
});

describe('table bounds', () => {
  it('a MAC flood from one port stops at its limit and cannot evict the others', () => {
    const { sw, add, send } = setup({ maxEntries: 64, maxMacsPerPort: 16 });
    const [good, fg] = add();
    const [flood] = add();
    const [, fx] = add();
    send(good, frame({ dst: BCAST, src: mac(1) }));
    for (let i = 0; i < 1000; i++) send(flood, frame({ dst: mac(1), src: mac(0x1000 + i) }));
    expect(flood.macCount).toBe(16);
    expect(flood.counters.learnRefused).toBe(1000 - 16);
    expect(sw.counters.portLimit).toBe(1000 - 16);
    expect(sw.lookup(1, mac(1))).toBe(good);
    expect(fg.got).toHaveLength(1000); // unicast to the good MAC still works
    expect(fx.got).toHaveLength(1); // only the first broadcast
  });

  it('the switch-wide bound refuses new MACs when full and reclaims expired ones', () => {
    const { sw, clock, add, send } = setup({ maxEntries: 32, maxMacsPerPort: 1024, ageingMs: 5000 });
    const [a] = add();
    const [b] = add();
    for (let i = 0; i < 100; i++) send(a, frame({ dst: BCAST, src: mac(0x100 + i) }));
    expect(sw.size).toBe(32);
    expect(sw.counters.tableFull).toBe(100 - 32);
    send(b, frame({ dst: BCAST, src: mac(2) }));
    expect(sw.lookup(1, mac(2))).toBeNull();
    expect(b.counters.learnRefused).toBe(1);
    clock.t += 5000;
    send(b, frame({ dst: BCAST, src: mac(2) }));
    expect(sw.lookup(1, mac(2))).toBe(b);
    expect(sw.size).toBe(1);
    expect(a.macCount).toBe(0);
  });

  it('a MAC moving to a port at its limit loses its stale entry', () => {
    const { sw, add, send } = setup({ maxMacsPerPort: 1 });
    const [a] = add();
    const [b] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    send(b, frame({ dst: BCAST, src: mac(2) }));
    send(b, frame({ dst: BCAST, src: mac(1) }));
    expect(sw.lookup(1, mac(1))).toBeNull();
    expect(a.macCount).toBe(0);
    expect(b.macCount).toBe(1);
  });
});

describe('tap', () => {
  it('records each accepted frame once, in tagged form', () => {
    const recs: Array<{ bytes: Uint8Array; t: number }> = [];
    const tap = { record: (b: Uint8Array, o: number, l: number, t: number) => recs.push({ bytes: b.slice(o, o + l), t }) };
    const { add, send } = setup({ tap, wallNow: () => 1234 });
    const [a1] = add();
    add();
    add();
    const [t] = add({ role: { trunk: [10, 20] } });
    add({ role: { vlan: 20 } });
    const f = frame({ dst: BCAST, src: mac(1) });
    send(a1, f);
    const g = frame({ dst: BCAST, src: mac(2), vlan: 20, pcp: 2 });
    send(t, g);
    send(t, frame({ dst: BCAST, src: mac(2), vlan: 30 })); // dropped: not recorded
    send(a1, new Uint8Array(5));
    expect(recs).toHaveLength(2);
    expect(recs[0]!.t).toBe(1234);
    expect(parse(recs[0]!.bytes).vlan).toBe(1);
    expect(recs[0]!.bytes.subarray(16)).toEqual(f.subarray(12));
    expect(recs[1]!.bytes).toEqual(g);
  });

  it('a throwing tap is counted and forwarding goes on', () => {
    const { sw, add, send } = setup({
      tap: {
        record() {
          throw new Error('closed');
        },
      },
    });
    const [a] = add();
    const [, fb] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    expect(sw.counters.tapErrors).toBe(1);
    expect(fb.got).toHaveLength(1);
  });
});

describe('reentrancy', () => {
  it('a port answering from inside sendFrame is queued until the current frame is done', () => {
    const clock = { t: 0 };
    const sw = new Switch({ now: () => clock.t });
    const order: string[] = [];
    const fa = new FakePort();
    const a = sw.addPort(fa, { name: 'a' });
    const t = sw.addPort(
      {
        sendFrame: (buf, off, len) => {
          order.push('t');
          void buf;
          void off;
          void len;
        },
      },
      { role: { trunk: [1] } },
    );
    // The gateway-like port replies synchronously (unicast back to the sender).
    let gw: SwitchPort;
    const reply = frame({ dst: mac(1), src: mac(99), mark: 9 });
    gw = sw.addPort({
      sendFrame: () => {
        order.push('gw');
        sw.input(gw, reply, new DataView(reply.buffer), 0, reply.length);
        reply.fill(0); // the replier reuses its buffer at once
      },
    });
    sw.addPort({ sendFrame: () => order.push('z') });
    const f = frame({ dst: BCAST, src: mac(1) });
    sw.input(a, f, new DataView(f.buffer), 0, f.length);
    expect(order).toEqual(['t', 'gw', 'z']); // the flood finished first, untouched
    expect(fa.got).toHaveLength(1);
    expect(parse(fa.got[0]!.bytes).src).toEqual(mac(99));
    expect(fa.got[0]!.bytes[14]).toBe(9);
    expect(sw.counters.reentrantQueued).toBe(1);
    void t;
  });
});

describe('fuzz', () => {
  it('50,000 random frames never throw and the table stays bounded', () => {
    let seed = 0x12345678;
    const rnd = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const clock = { t: 0 };
    const sw = new Switch({ now: () => clock.t, maxEntries: 256, maxMacsPerPort: 64, ageingMs: 2000, mtu: 200 });
    const sinks: FakePort[] = [];
    let badEgress = 0;
    const roles: PortConfig[] = [{}, {}, { role: { vlan: 10 } }, { role: { vlan: 20 } }, { role: { trunk: [10, 20] } }, { role: { trunk: [20, 30], native: 1 } }];
    let ports = roles.map((r) => {
      const f = new FakePort();
      f.sendFrame = function (_b, _o, len) {
        if (len < 14 || len > sw.maxFrame) badEgress++;
      };
      sinks.push(f);
      return sw.addPort(f, r);
    });
    const buf = new Uint8Array(400);
    const view = new DataView(buf.buffer);
    for (let i = 0; i < 50_000; i++) {
      clock.t += rnd() * 5;
      const p = ports[Math.floor(rnd() * ports.length)]!;
      const len = Math.floor(rnd() * 260);
      const off = Math.floor(rnd() * (buf.length - len));
      for (let j = 0; j < len; j++) buf[off + j] = (rnd() * 256) | 0;
      // Bias towards plausible frames: small MAC space, some tags.
      if (len >= 14 && rnd() < 0.8) {
        buf[off] = rnd() < 0.2 ? 0xff : 0x52;
        buf[off + 5] = (rnd() * 300) & 0xff;
        buf[off + 6] = 0x52;
        buf[off + 11] = (rnd() * 400) & 0xff;
        if (rnd() < 0.4) {
          buf[off + 12] = 0x81;
          buf[off + 13] = 0;
          buf[off + 14] = 0;
          buf[off + 15] = [0, 1, 10, 20, 30, 40][Math.floor(rnd() * 6)]!;
        }
      }
      sw.input(p, buf, view, off, len); // a throw fails the test
      if (sw.size > 256) expect.fail(`table grew to ${sw.size}`);
      if (i % 10_000 === 9_999) {
        // Churn a port.
        sw.removePort(ports[0]!);
        ports = [sw.addPort(new FakePort()), ...ports.slice(1)];
      }
    }
    for (const p of ports) expect(p.macCount).toBeLessThanOrEqual(64);
    const total = sw.ports().reduce((n, p) => n + p.macCount, 0);
    expect(total).toBe(sw.size);
    expect(sw.table().length).toBeLessThanOrEqual(256);
    expect(sw.counters.frames).toBe(50_000);
    expect(badEgress).toBe(0);
    expect(sinks.reduce((n, _f, i) => n + (ports[i]?.counters.txErrors ?? 0), 0)).toBe(0);
    expect(sw.counters.forwarded + sw.counters.flooded).toBeGreaterThan(1000);
  });
});
