/**
 * The 802.1Q ingress classification on its own (ingress.ts): each rule's
 * verdict and what an admitted frame is classified as. The same rules seen
 * through the switch: ingress-rules.test.ts, vlan-hopping.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { BCAST, frame, mac } from '../../test/helpers/switch-kit.js';
import { classify, type Classified, type IngressRole } from './ingress.js';
import { TPID_CTAG, TPID_STAG } from './vlan.js';

const access10: IngressRole = { pvid: 10, allowed: null };
const trunk = (native: number, ...vids: number[]): IngressRole => {
  const allowed = new Uint8Array(4096);
  for (const v of [...vids, native]) if (v !== 0) allowed[v] = 1;
  return { pvid: native, allowed };
};
const out = (): Classified => ({ vlan: -1, tagged: false, tci: -1, nested: false, group: false });
const run = (b: Uint8Array, role: IngressRole, o = out(), mtu = 1500) => ({ why: classify(b, new DataView(b.buffer), 0, b.length, mtu, role, o), o });

describe('classify', () => {
  it('admits an untagged frame into the PVID; a trunk without a native VLAN drops it', () => {
    expect(run(frame({ dst: mac(2), src: mac(1) }), access10)).toEqual({ why: null, o: { vlan: 10, tagged: false, tci: 0, nested: false, group: false } });
    expect(run(frame({ dst: mac(2), src: mac(1) }), trunk(0, 20)).why).toBe('untaggedOnTrunk');
  });

  it('a tagged frame: its VID on a trunk that carries it, PCP kept in the TCI; dropped on access or when not allowed', () => {
    expect(run(frame({ dst: BCAST, src: mac(1), vlan: 20, pcp: 5 }), trunk(10, 20))).toEqual({ why: null, o: { vlan: 20, tagged: true, tci: (5 << 13) | 20, nested: false, group: true } });
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 20 }), access10).why).toBe('taggedOnAccess');
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 30 }), trunk(10, 20)).why).toBe('vlanNotAllowed');
  });

  it('a priority tag (VID 0) is untagged for VLAN purposes; a tag behind it or behind the native VID is dropped', () => {
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 0 }), access10).o).toMatchObject({ vlan: 10, tagged: true });
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 0, inner: [{ tpid: TPID_CTAG, vid: 20 }] }), access10).why).toBe('nestedTag');
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 10, inner: [{ tpid: TPID_STAG, vid: 20 }] }), trunk(10, 20)).why).toBe('nestedTag');
    // Q-in-Q on a trunk VLAN is admitted, marked nested.
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 20, inner: [{ tpid: TPID_CTAG, vid: 30 }] }), trunk(10, 20)).o).toMatchObject({ vlan: 20, nested: true });
  });

  it('runts, oversize frames (two tags set aside), bad sources and reserved destinations are dropped, and nothing is written', () => {
    const o = out();
    const tagged = frame({ dst: mac(2), src: mac(1), vlan: 20 });
    expect(run(tagged.subarray(0, 17), trunk(10, 20), o).why).toBe('runt');
    expect(run(frame({ dst: mac(2), src: mac(1), payload: 101 }), access10, o, 100).why).toBe('oversize');
    expect(run(frame({ dst: mac(2), src: mac(1), vlan: 20, inner: [{ tpid: TPID_CTAG, vid: 30 }], payload: 96 }), trunk(10, 20), o, 100).why).toBe(null);
    expect(run(frame({ dst: mac(2), src: BCAST }), access10, o).why).toBe('badSource');
    expect(run(frame({ dst: mac(2), src: new Uint8Array(6) }), access10, o).why).toBe('badSource');
    expect(run(frame({ dst: Uint8Array.of(1, 0x80, 0xc2, 0, 0, 0x0e), src: mac(1) }), access10, o).why).toBe('reserved');
    expect(run(frame({ dst: Uint8Array.of(1, 0x80, 0xc2, 0, 0, 0), src: mac(1) }), access10).why).toBe(null);
    const untouched = out();
    run(frame({ dst: mac(2), src: BCAST }), access10, untouched);
    expect(untouched).toEqual(out());
  });
});
