/**
 * Ingress rules beyond VLANs: static entries (the gateway's MAC) that a
 * spoofed frame cannot move, the IEEE 802.1Q reserved group addresses
 * (Table 8-1), and sinks that throw.
 */
import { describe, expect, it } from 'vitest';
import { BCAST, FakePort, frame, mac, setup } from '../../test/helpers/switch-kit.js';

const GW = Uint8Array.of(0x52, 0x55, 0x0a, 0, 2, 2);
const reserved = (last: number) => Uint8Array.of(0x01, 0x80, 0xc2, 0, 0, last);

describe('static entries', () => {
  it("a spoofed frame cannot move the gateway's MAC; static entries never age", () => {
    const { sw, clock, add, send } = setup({ ageingMs: 10_000 });
    const [gw, fgw] = add({ name: 'gateway', staticMacs: [GW] });
    const [evil, fevil] = add();
    const [guest] = add();
    expect(sw.lookup(1, GW)).toBe(gw);
    send(evil, frame({ dst: BCAST, src: GW }));
    expect(evil.counters.drops.staticSource).toBe(1);
    expect(sw.counters.drops.staticSource).toBe(1);
    expect(sw.lookup(1, GW)).toBe(gw);
    clock.t += 60_000;
    sw.sweep();
    expect(sw.lookup(1, GW)).toBe(gw);
    send(guest, frame({ dst: GW, src: mac(3) }));
    expect(fgw.got).toHaveLength(1);
    expect(fevil.got).toHaveLength(0);
    // The gateway's own frames are fine and do not count as moves.
    send(gw, frame({ dst: mac(3), src: GW }));
    expect(sw.counters.moves).toBe(0);
    expect(sw.table().find((e) => e.mac === '52:55:0a:00:02:02')).toMatchObject({ port: gw.id, static: true });
    sw.removePort(gw);
    expect(sw.lookup(1, GW)).toBeNull();
  });
});

describe('reserved addresses (802.1Q Table 8-1)', () => {
  it('PAUSE and the other link-local addresses are never forwarded; STP BPDUs and 01-80-C2-00-00-10 are', () => {
    const { sw, add, send } = setup();
    const [a] = add();
    const [, fb] = add();
    for (let last = 1; last <= 0x0f; last++) send(a, frame({ dst: reserved(last), src: mac(1) }));
    expect(fb.got).toHaveLength(0);
    expect(a.counters.drops.reserved).toBe(15);
    expect(sw.counters.drops.reserved).toBe(15);
    send(a, frame({ dst: reserved(0), src: mac(1), type: 0x0026 }));
    send(a, frame({ dst: reserved(0x10), src: mac(1) }));
    expect(fb.got).toHaveLength(2);
  });
});

describe('sinks that throw', () => {
  it('a sink whose isCongested throws is counted and cannot stop the other ports', () => {
    const { sw, add, send } = setup();
    const [a] = add();
    const bad = sw.addPort({
      sendFrame: () => {},
      isCongested() {
        throw new Error('boom');
      },
    });
    const [, fc] = add();
    send(a, frame({ dst: BCAST, src: mac(1) }));
    send(a, frame({ dst: BCAST, src: mac(1) }));
    expect(bad.counters.txErrors).toBe(2);
    expect(fc.got).toHaveLength(2);
    void FakePort;
  });
});
