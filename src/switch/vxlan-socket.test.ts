import { describe, expect, it } from 'vitest';
import type { Socket } from 'node:dgram';
import { AwarePort, BCAST, frame, mac } from '../../test/helpers/switch-kit.js';
import { Switch } from './switch.js';
import { DatagramRing, RING_SLOTS } from './vxlan-socket.js';
import { Vtep } from './vxlan.js';

/** A socket whose sends complete only when the test says so. */
class SlowSocket {
  readonly pending: Array<{ to: string; bytes: Uint8Array; cb: (e: Error | null) => void }> = [];
  send(buf: Uint8Array, off: number, len: number, port: number, host: string, cb: (e: Error | null) => void): void {
    this.pending.push({ to: `${host}:${port}`, bytes: new Uint8Array(buf.subarray(off, off + len)), cb });
  }
  complete(n: number, err: Error | null = null): void {
    for (const p of this.pending.splice(0, n)) p.cb(err);
  }
}

function rig() {
  const sock = new SlowSocket();
  const clock = { t: 1000 };
  const sw = new Switch({ now: () => clock.t });
  const ring = new DatagramRing(sock as unknown as Socket, 8 + sw.maxFrame, ['', '192.0.2.2', '192.0.2.3']);
  const vtep = new Vtep({ vni: 5, remotes: [{ addr: 0xc0000202, port: 4789 }, { addr: 0xc0000203, port: 4789 }], now: () => clock.t }, ring);
  const trunk = Array.from({ length: 4094 }, (_, i) => i + 1);
  const vxPort = sw.addPort(vtep, { name: 'vxlan', role: { trunk, native: 1 } });
  let drains = 0;
  ring.onDrain = () => {
    drains++;
    sw.portDrained(vxPort);
  };
  ring.onError = () => void vtep.counters.txErrors++;
  const gw = new AwarePort();
  const gwPort = sw.addPort(gw, { name: 'gateway' });
  const send = (f: Uint8Array) => sw.input(gwPort, f, new DataView(f.buffer), 0, f.length);
  return { sock, sw, ring, vtep, vxPort, gw, send, drains: () => drains };
}

describe('VXLAN edge: the ring of datagrams in flight', () => {
  it('sends each frame once per remote from one slot; a full ring makes the port congested, holds an aware sender back and calls it back when a slot frees', () => {
    const { sock, sw, vtep, vxPort, gw, send, drains } = rig();
    const f = frame({ dst: BCAST, src: mac(1) });
    expect(send(f)).toBe(true);
    expect(sock.pending.map((p) => p.to)).toEqual(['192.0.2.2:4789', '192.0.2.3:4789']);
    expect(sock.pending[0]!.bytes.subarray(8)).toEqual(f);
    for (let i = 1; i < RING_SLOTS; i++) send(f);
    expect(vtep.isCongested()).toBe(true);
    // The gateway's next frame is still handed over (it honours backpressure) and it is told to hold back...
    expect(send(f)).toBe(false);
    expect(vtep.counters.txBusy).toBe(1);
    // ...an ordinary port's frame is dropped and counted by the switch.
    const guest = sw.addPort({ sendFrame: () => true });
    const g = frame({ dst: BCAST, src: mac(2) });
    sw.input(guest, g, new DataView(g.buffer), 0, g.length);
    expect(vxPort.counters.txDropped).toBe(1);
    // One slot's sends complete (both remotes): the port drains, the gateway is called back.
    expect(gw.drains).toBe(0);
    sock.complete(1);
    expect(drains()).toBe(0); // half a slot is not a free slot
    sock.complete(1);
    expect(drains()).toBe(1);
    expect(gw.drains).toBe(1);
    expect(vtep.isCongested()).toBe(false);
  });

  it('counts send errors and never throws', () => {
    const { sock, vtep, send } = rig();
    send(frame({ dst: BCAST, src: mac(1) }));
    sock.complete(2, new Error('ENETUNREACH'));
    expect(vtep.counters.txErrors).toBe(2);
  });
});
