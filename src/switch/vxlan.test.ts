import { describe, expect, it } from 'vitest';
import { viewOf } from '../../test/helpers/round-trip.js';
import { BCAST, frame, mac } from '../../test/helpers/switch-kit.js';
import * as vxlan from '../wire/vxlan.js';
import { Vtep, type DatagramSink, type Remote } from './vxlan.js';

const A = 0xc0a80001; // 192.168.0.1
const B = 0xc0a80002; // 192.168.0.2
const STRANGER = 0xc0a80063;

/** A sink that records datagrams (copies) and can be made full. */
class FakeSink implements DatagramSink {
  readonly sent: Array<{ bytes: Uint8Array; to: string[] }> = [];
  readonly buf = new Uint8Array(4096);
  readonly dv = viewOf(this.buf);
  full = false;
  reserve(len: number): boolean {
    return !this.full && len <= this.buf.length - 10;
  }
  buffer(): Uint8Array {
    return this.buf;
  }
  view(): DataView {
    return this.dv;
  }
  offset(): number {
    return 10;
  }
  commit(len: number, to: readonly Remote[]): void {
    this.sent.push({ bytes: this.buf.slice(10, 10 + len), to: to.map((r) => r.text) });
  }
  congested(): boolean {
    return this.full;
  }
}

function rig(opts: { vni?: number; underlayMtu?: number; maxMacsPerRemote?: number; maxMacs?: number; remotes?: Array<{ addr: number; port: number; strictPort?: boolean }> } = {}) {
  const clock = { t: 1000 };
  const sink = new FakeSink();
  const vtep = new Vtep({ vni: opts.vni ?? 42, underlayMtu: opts.underlayMtu, maxMacsPerRemote: opts.maxMacsPerRemote, maxMacs: opts.maxMacs, remotes: opts.remotes ?? [{ addr: A, port: 4789 }, { addr: B, port: 4789 }], now: () => clock.t }, sink);
  const delivered: Uint8Array[] = [];
  vtep.deliver = (buf, off, len) => delivered.push(buf.slice(off, off + len));
  /** A datagram as a remote would send it: VXLAN header + inner frame. */
  const dgram = (inner: Uint8Array, vni = opts.vni ?? 42, flags = vxlan.FLAG_I): Uint8Array => {
    const b = new Uint8Array(8 + inner.length);
    vxlan.emit({ vni }, viewOf(b), 0);
    b[0] = flags;
    b.set(inner, 8);
    return b;
  };
  const receive = (b: Uint8Array, addr: number, port = 4789) => vtep.receive(b, viewOf(b), 0, b.length, addr, port);
  const send = (f: Uint8Array) => vtep.sendFrame(f, 0, f.length);
  return { clock, sink, vtep, delivered, dgram, receive, send };
}

describe('Vtep (sans-IO VXLAN port)', () => {
  it('floods group and unknown frames to every remote (head-end replication), one datagram with the I flag and the VNI', () => {
    const { sink, vtep, send } = rig();
    const f = frame({ dst: BCAST, src: mac(1) });
    expect(send(f)).toBe(true);
    send(frame({ dst: mac(9), src: mac(1) })); // unknown unicast
    expect(sink.sent.map((s) => s.to)).toEqual([
      ['192.168.0.1:4789', '192.168.0.2:4789'],
      ['192.168.0.1:4789', '192.168.0.2:4789'],
    ]);
    const d = sink.sent[0]!.bytes;
    expect(Buffer.from(d.subarray(0, 8)).toString('hex')).toBe('0800000000002a00');
    expect(d.subarray(8)).toEqual(f);
    expect(vtep.counters).toMatchObject({ txFrames: 2, flooded: 2, txDatagrams: 4, txBytes: 4 * (8 + f.length) });
    expect(vtep.remotes[0]!.counters).toMatchObject({ txDatagrams: 2 });
  });

  it('learns inner source MACs per remote and sends known unicast to that remote alone; a MAC that moves follows', () => {
    const { sink, vtep, delivered, dgram, receive, send, clock } = rig();
    const fromA = frame({ dst: mac(1), src: mac(0xa) });
    receive(dgram(fromA), A, 33333); // the kernel's per-flow source port: matched by address
    receive(dgram(frame({ dst: BCAST, src: mac(0xb) })), B);
    expect(delivered).toEqual([fromA, frame({ dst: BCAST, src: mac(0xb) })]);
    expect(vtep.remoteOf(mac(0xa))?.text).toBe('192.168.0.1:4789');
    send(frame({ dst: mac(0xa), src: mac(1) }));
    send(frame({ dst: mac(0xb), src: mac(1) }));
    expect(sink.sent.map((s) => s.to)).toEqual([['192.168.0.1:4789'], ['192.168.0.2:4789']]);
    // 0xa now speaks from behind B.
    receive(dgram(frame({ dst: mac(1), src: mac(0xa) })), B);
    expect(vtep.remoteOf(mac(0xa))?.text).toBe('192.168.0.2:4789');
    expect(vtep.counters.moves).toBe(1);
    // Aged out: flooded again.
    clock.t += 300_001;
    sink.sent.length = 0;
    send(frame({ dst: mac(0xa), src: mac(1) }));
    expect(sink.sent[0]!.to).toHaveLength(2);
    expect(vtep.sweep()).toBe(1); // 0xb (0xa was reaped at lookup)
    expect(vtep.size).toBe(0);
  });

  it('drops and counts datagrams from a non-configured sender, malformed ones and other VNIs; the process never throws', () => {
    const { vtep, delivered, dgram, receive } = rig();
    const f = frame({ dst: BCAST, src: mac(0xc) });
    receive(dgram(f), STRANGER);
    receive(dgram(f, 43), A);
    receive(dgram(f, 42, 0x00), A); // I flag clear
    receive(dgram(f).subarray(0, 21), A); // shorter than header + Ethernet header
    receive(new Uint8Array(0), A);
    for (let i = 0; i < 200; i++) {
      const junk = new Uint8Array((i * 37) % 90).map((_, j) => (i * 131 + j * 17) & 0xff);
      receive(junk, B);
    }
    expect(vtep.counters.unknownRemote).toBe(1);
    expect(vtep.counters.badVni).toBeGreaterThanOrEqual(1);
    expect(vtep.counters.malformed).toBeGreaterThanOrEqual(3);
    expect(vtep.remoteOf(mac(0xc))).toBeNull(); // nothing learned from the stranger
    // Every delivered frame came from a datagram with the I flag and VNI 42.
    expect(delivered.length).toBe(vtep.counters.rxFrames);
    expect(vtep.counters.rxDatagrams).toBe(205);
  });

  it('with two remotes on one address, requires the port too', () => {
    const { vtep, delivered, dgram, receive } = rig({ remotes: [{ addr: A, port: 4789 }, { addr: A, port: 4790 }] });
    const f = frame({ dst: BCAST, src: mac(0xd) });
    receive(dgram(f), A, 5000);
    expect(vtep.counters.unknownRemote).toBe(1);
    receive(dgram(f), A, 4790);
    expect(delivered).toHaveLength(1);
    expect(vtep.remoteOf(mac(0xd))?.text).toBe('192.168.0.1:4790');
  });

  it('hears a strictPort remote (an address of this host) from its own port only', () => {
    const { vtep, delivered, dgram, receive } = rig({ remotes: [{ addr: 0x7f000001, port: 4790, strictPort: true }] });
    const f = frame({ dst: BCAST, src: mac(0xe) });
    receive(dgram(f), 0x7f000001, 40000); // another local user's socket on 127.0.0.1
    expect(vtep.counters.unknownRemote).toBe(1);
    receive(dgram(f), 0x7f000001, 4790);
    expect(delivered).toHaveLength(1);
  });

  it('bounds the remote-MAC table per remote and overall, counting refusals; unlearned MACs are still delivered', () => {
    const { vtep, delivered, dgram, receive } = rig({ maxMacsPerRemote: 3, maxMacs: 5 });
    for (let i = 0; i < 10; i++) receive(dgram(frame({ dst: BCAST, src: mac(0x100 + i) })), A);
    for (let i = 0; i < 10; i++) receive(dgram(frame({ dst: BCAST, src: mac(0x200 + i) })), B);
    expect(delivered).toHaveLength(20);
    expect(vtep.remotes.map((r) => r.macCount)).toEqual([3, 2]);
    expect(vtep.remotes[0]!.counters.learnRefused).toBe(7);
    expect(vtep.remotes[1]!.counters.learnRefused).toBe(8);
    expect(vtep.counters).toMatchObject({ portLimit: 7, tableFull: 8 });
    expect(vtep.size).toBe(5);
  });

  it('drops frames too big for the underlay (never fragments), counting them; VLAN-tagged frames are carried tagged', () => {
    const { sink, vtep, send } = rig({ underlayMtu: 1500 });
    expect(vtep.maxInnerFrame).toBe(1464);
    send(frame({ dst: BCAST, src: mac(1), payload: 1450 })); // 1464: fits (inner MTU 1450)
    send(frame({ dst: BCAST, src: mac(1), payload: 1451 }));
    const tagged = frame({ dst: BCAST, src: mac(1), vlan: 20, payload: 100 });
    send(tagged);
    send(frame({ dst: BCAST, src: mac(1), vlan: 20, payload: 1450 })); // 1468: over
    expect(vtep.counters.tooBig).toBe(2);
    expect(sink.sent).toHaveLength(2);
    expect(sink.sent[1]!.bytes.subarray(8)).toEqual(tagged);
  });

  it('reports congestion when the sink is full and counts what it could not send', () => {
    const { sink, vtep, send } = rig();
    sink.full = true;
    expect(vtep.isCongested()).toBe(true);
    expect(send(frame({ dst: BCAST, src: mac(1) }))).toBe(false);
    expect(vtep.counters.txBusy).toBe(1);
    expect(sink.sent).toHaveLength(0);
  });

  it('refuses a VNI outside 24 bits', () => {
    expect(() => new Vtep({ vni: 1 << 24, remotes: [], now: () => 0 }, new FakeSink())).toThrow(/VNI/);
  });
});
