/**
 * VLAN hopping: a frame must never change VLAN by having the switch remove
 * one tag and expose another (IEEE 802.1Q-2018 §6.9: a C-VLAN component
 * classifies by the one C-TAG in front; what follows is data).
 */
import { describe, expect, it } from 'vitest';
import * as eth from '../wire/ethernet.js';
import { BCAST, FakePort, frame, mac, parse, setup } from '../../test/helpers/switch-kit.js';
import { Switch } from './switch.js';
import type { SwitchPort } from './types.js';

const ARP = eth.ETHERTYPE_ARP;
const TPIDS = [0x8100, 0x88a8, 0x9100];

describe('VLAN hopping', () => {
  for (const tpid of TPIDS) {
    it(`access 10: a priority tag followed by a ${tpid.toString(16)} tag is dropped and counted`, () => {
      const { sw, add, send } = setup();
      const [a10] = add({ role: { vlan: 10 } });
      const [, f10] = add({ role: { vlan: 10 } });
      const [, ft] = add({ role: { trunk: [20], native: 10 } });
      const [, f20] = add({ role: { vlan: 20 } });
      send(a10, frame({ dst: BCAST, src: mac(1), vlan: 0, inner: [{ tpid, vid: 20 }], type: ARP }));
      expect([f10.got.length, ft.got.length, f20.got.length]).toEqual([0, 0, 0]);
      expect(a10.counters.drops.nestedTag).toBe(1);
      expect(sw.counters.drops.nestedTag).toBe(1);
      expect(sw.size).toBe(0); // not learned either
      // A plain priority-tagged frame still passes (§6.9.1).
      send(a10, frame({ dst: BCAST, src: mac(1), vlan: 0, type: ARP }));
      expect([f10.got.length, ft.got.length, f20.got.length]).toEqual([1, 1, 0]);
    });

    it(`trunk native 10: a native-VID tag followed by a ${tpid.toString(16)} tag is dropped and counted`, () => {
      const { sw, add, send } = setup();
      const [t] = add({ role: { trunk: [20], native: 10 } });
      const [, f10] = add({ role: { vlan: 10 } });
      const [, f20] = add({ role: { vlan: 20 } });
      const [, ft] = add({ role: { trunk: [10, 20] } });
      send(t, frame({ dst: BCAST, src: mac(1), vlan: 10, inner: [{ tpid, vid: 20 }], type: ARP }));
      send(t, frame({ dst: BCAST, src: mac(1), vlan: 0, inner: [{ tpid, vid: 20 }], type: ARP }));
      expect([f10.got.length, f20.got.length, ft.got.length]).toEqual([0, 0, 0]);
      expect(t.counters.drops.nestedTag).toBe(2);
      expect(sw.counters.drops.nestedTag).toBe(2);
    });
  }

  it('Q-in-Q passes trunk to trunk tagged, full size, but never leaves untagged with its inner tag exposed', () => {
    const { sw, add, send } = setup();
    const [t] = add({ role: { trunk: [10, 20] } });
    const [t2, ft2] = add({ role: { trunk: [10] } });
    const [a10, f10] = add({ role: { vlan: 10 } });
    const [n10, fn10] = add({ role: { trunk: [20], native: 10 } });
    // 1500 bytes of payload behind two tags: 1522 bytes.
    const f = frame({ dst: BCAST, src: mac(1), vlan: 10, inner: [{ tpid: 0x8100, vid: 20 }], payload: 1500 });
    expect(f.length).toBe(1522);
    send(t, f);
    expect(ft2.got.map((g) => g.bytes)).toEqual([f]);
    expect(f10.got).toHaveLength(0);
    expect(fn10.got).toHaveLength(0);
    expect(a10.counters.txNestedTag).toBe(1);
    expect(n10.counters.txNestedTag).toBe(1);
    expect(t2.counters.txNestedTag).toBe(0);
    expect(sw.counters.drops.oversize).toBe(0);
    // One byte more is oversize; so is a single-tagged frame over mtu + 18.
    send(t, frame({ dst: BCAST, src: mac(1), vlan: 10, inner: [{ tpid: 0x8100, vid: 20 }], payload: 1501 }));
    send(t, frame({ dst: BCAST, src: mac(1), vlan: 10, payload: 1501 }));
    expect(t.counters.drops.oversize).toBe(2);
    expect(sw.maxFrame).toBe(1522);
  });

  it('two switches joined by a trunk (native 10, allowed 20): the crafted frame never reaches access 20', () => {
    const clock = { t: 0 };
    const a = new Switch({ now: () => clock.t });
    const b = new Switch({ now: () => clock.t });
    let bTrunk: SwitchPort;
    let aTrunk: SwitchPort;
    // The trunk between them: each side's sink feeds the other switch.
    aTrunk = a.addPort({ sendFrame: (buf, off, len, view) => b.input(bTrunk, buf, view, off, len) }, { role: { trunk: [20], native: 10 } });
    bTrunk = b.addPort({ sendFrame: (buf, off, len, view) => a.input(aTrunk, buf, view, off, len) }, { role: { trunk: [20], native: 10 } });
    const attacker = a.addPort(new FakePort(), { role: { vlan: 10 } });
    const victim = new FakePort();
    b.addPort(victim, { role: { vlan: 20 } });
    const peer10 = new FakePort();
    b.addPort(peer10, { role: { vlan: 10 } });
    const send = (f: Uint8Array) => a.input(attacker, f, new DataView(f.buffer), 0, f.length);
    for (const tpid of TPIDS) send(frame({ dst: BCAST, src: mac(1), vlan: 0, inner: [{ tpid, vid: 20 }], type: ARP }));
    expect(victim.got).toHaveLength(0);
    expect(peer10.got).toHaveLength(0);
    expect(a.counters.drops.nestedTag).toBe(3);
    // The link works: a plain broadcast on VLAN 10 crosses to B's VLAN 10 only.
    send(frame({ dst: BCAST, src: mac(1), type: ARP }));
    expect(peer10.got).toHaveLength(1);
    expect(parse(peer10.got[0]!.bytes).vlan).toBe(-1);
    expect(victim.got).toHaveLength(0);
  });
});
