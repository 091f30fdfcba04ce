/**
 * Backpressure between the switch and an in-process sender (the gateway):
 * the sender is told to hold back instead of having its frames dropped, and
 * is called back once the congested port or the reentrant queue drains.
 */
import { describe, expect, it } from 'vitest';
import { AwarePort, BCAST, frame, mac, setup } from '../../test/helpers/switch-kit.js';

describe('backpressure', () => {
  it('a frame from an aware sender into a congested port is handed over, answered false, and drained() follows the port', () => {
    const { sw, add, send } = setup();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink, { name: 'gateway' });
    const [guest, fg] = add();
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    fg.congested = true;
    expect(send(gw, frame({ dst: mac(2), src: mac(1) }))).toBe(false);
    expect(fg.got).toHaveLength(1); // handed over, not dropped
    expect(guest.counters.txDropped).toBe(0);
    expect(sw.counters.heldBack).toBe(1);
    expect(gwSink.drains).toBe(0);
    fg.congested = false;
    sw.portDrained(guest);
    expect(gwSink.drains).toBe(1);
    sw.portDrained(guest); // nothing was waiting any more
    expect(gwSink.drains).toBe(1);
    // An ordinary sender still gets the tail drop.
    const [other] = add();
    fg.congested = true;
    expect(send(other, frame({ dst: mac(2), src: mac(3) }))).toBe(true);
    expect(guest.counters.txDropped).toBe(1);
  });

  it('sendFrame returning false (the port just filled) holds the sender back too', () => {
    const { sw, add, send } = setup();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink);
    const [guest, fg] = add();
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    fg.sendFrame = (buf, off, len) => {
      fg.got.push({ bytes: buf.slice(off, off + len), buf, off });
      return false;
    };
    expect(send(gw, frame({ dst: mac(2), src: mac(1) }))).toBe(false);
    sw.portDrained(guest);
    expect(gwSink.drains).toBe(1);
  });

  it('a burst answered from inside sendFrame fills the reentrant queue to holdBytes, then holds back; nothing is dropped', () => {
    const { sw, add, send } = setup();
    const [guest, fg] = add();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink, { name: 'gateway' });
    const data = frame({ dst: mac(2), src: mac(1), payload: 1500 });
    const answers: boolean[] = [];
    let burst = 0;
    // The gateway answers a guest's ACK with a burst, stopping at the first "hold back" (as the TCP NAT does).
    gwSink.sendFrame = () => {
      for (let i = 0; i < burst; i++) {
        const ok = sw.input(gw, data, new DataView(data.buffer), 0, data.length);
        answers.push(ok);
        if (!ok) break;
      }
      return true;
    };
    burst = 1000;
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    const held = answers.indexOf(false);
    expect(held).toBe(Math.ceil(sw.holdBytes / data.length) - 1);
    expect(fg.got).toHaveLength(held + 1); // every queued frame delivered after the ACK
    expect(sw.counters.reentrantDropped).toBe(0);
    expect(sw.counters.reentrantQueued).toBe(held + 1);
    // The queue was worked off before input() returned: drained() came with it.
    expect(gwSink.drains).toBe(1);
  });

  it('a sender that ignores the answer is tail-dropped once it overshoots a congested port by reentrantBytes', () => {
    const { sw, add, send } = setup();
    const gw = sw.addPort(new AwarePort());
    const [guest, fg] = add();
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    fg.congested = true;
    const f = frame({ dst: mac(2), src: mac(1), payload: 1500 });
    const n = Math.ceil(sw.reentrantBytes / f.length);
    for (let i = 0; i < n + 10; i++) send(gw, f);
    expect(guest.counters.txFrames).toBe(n);
    expect(guest.counters.txDropped).toBe(10);
    sw.portDrained(guest); // the overshoot allowance starts again
    send(gw, f);
    expect(guest.counters.txFrames).toBe(n + 1);
  });

  it("an ordinary sender hands a congested port its queueBytes, then is tail-dropped until the port drains", () => {
    const { sw, add, send } = setup();
    const [vm] = add();
    const [other, fo] = add({ queueBytes: 0 }); // the default: the tail drop starts at congestion
    const [guest, fg] = add({ queueBytes: 10 * 1514 });
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    send(other, frame({ dst: BCAST, src: mac(3) }));
    fg.congested = true;
    fo.congested = true;
    const f = frame({ dst: mac(2), src: mac(1), payload: 1500 });
    for (let i = 0; i < 15; i++) expect(send(vm, f)).toBe(true);
    expect(f.length).toBe(1514);
    expect(guest.counters.txFrames).toBe(11); // other's broadcast, then 10 of vm's 15
    expect(guest.counters.txDropped).toBe(5);
    const seen = fo.got.length;
    send(vm, frame({ dst: mac(3), src: mac(1) }));
    expect(other.counters.txDropped).toBe(1);
    expect(fo.got).toHaveLength(seen);
    sw.portDrained(guest); // the allowance starts again
    send(vm, f);
    expect(guest.counters.txFrames).toBe(12);
    expect(() => add({ queueBytes: -1 })).toThrow(/queueBytes/);
  });

  it("ordinary senders filling a congested port's queueBytes do not use up the aware sender's reentrantBytes", () => {
    const { sw, add, send } = setup();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink, { name: 'gateway' });
    const [vm] = add();
    const [guest, fg] = add({ queueBytes: 2 * sw.reentrantBytes });
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    fg.congested = true;
    const f = frame({ dst: mac(2), src: mac(1), payload: 1500 });
    const n = Math.ceil((2 * sw.reentrantBytes) / f.length);
    for (let i = 0; i < n + 5; i++) send(vm, f); // a VM's bulk stream fills the queue allowance, then is tail-dropped
    expect(guest.counters.txDropped).toBe(5);
    const before = fg.got.length;
    // The gateway's segment is still handed over with "hold back", as with no VM traffic.
    expect(send(gw, frame({ dst: mac(2), src: mac(3), payload: 1500 }))).toBe(false);
    expect(fg.got).toHaveLength(before + 1);
    expect(guest.counters.txDropped).toBe(5);
    // It still has only its own reentrantBytes.
    const m = Math.ceil(sw.reentrantBytes / f.length);
    const g = frame({ dst: mac(2), src: mac(3), payload: 1500 });
    for (let i = 1; i < m + 3; i++) send(gw, g);
    expect(fg.got).toHaveLength(before + m);
    expect(guest.counters.txDropped).toBe(5 + 3);
    sw.portDrained(guest);
    expect(send(vm, f)).toBe(true);
    expect(fg.got).toHaveLength(before + m + 1);
  });

  it('a slow port does not stall the sender towards a port that drained', () => {
    const { sw, add, send } = setup();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink);
    const [a, fa] = add();
    const [b, fb] = add();
    send(a, frame({ dst: BCAST, src: mac(2) }));
    send(b, frame({ dst: BCAST, src: mac(3) }));
    fa.congested = true;
    fb.congested = true;
    send(gw, frame({ dst: mac(2), src: mac(1) }));
    send(gw, frame({ dst: mac(3), src: mac(1) }));
    fb.congested = false;
    sw.portDrained(b);
    expect(gwSink.drains).toBe(1); // a is still congested; the sender hears about b at once
    sw.removePort(a); // a port that goes away counts as drained
    expect(gwSink.drains).toBe(2);
  });

  it('drained() may send again, and one that throws is counted without stopping the others', () => {
    const { sw, add, send } = setup();
    const s1 = new AwarePort();
    const s2 = new AwarePort();
    const p1 = sw.addPort(s1);
    sw.addPort(s2);
    const [guest, fg] = add();
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    fg.congested = true;
    const f = frame({ dst: mac(2), src: mac(7) });
    send(p1, f);
    sw.input(sw.ports()[1]!, f, new DataView(f.buffer), 0, f.length);
    s1.onDrained = () => {
      throw new Error('boom');
    };
    let again = 0;
    s2.onDrained = () => {
      // Sends from inside the call-back: still congested, so held back again, not called back in a loop.
      if (++again < 5) sw.input(sw.ports()[1]!, f, new DataView(f.buffer), 0, f.length);
    };
    sw.portDrained(guest);
    expect(s1.drains).toBe(1);
    expect(p1.counters.txErrors).toBe(1);
    expect(s2.drains).toBe(1);
    expect(again).toBe(1);
  });
});

describe('frames built in place (reserveInput / commitInput)', () => {
  it('go through the arena with no copy, in order, both from inside a delivery and outside one', () => {
    const { sw, add, send } = setup();
    const [guest, fg] = add();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink);
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    const build = (mark: number): boolean => {
      expect(sw.reserveInput(gw, 200)).toBe(true);
      const f = frame({ dst: mac(2), src: mac(1), mark });
      sw.inputBuffer().set(f, sw.inputOffset());
      expect(sw.inputView().buffer).toBe(sw.inputBuffer().buffer);
      return sw.commitInput(f.length);
    };
    // Outside a delivery: processed at once.
    fg.clear();
    expect(build(1)).toBe(true);
    expect(fg.got.map((g) => g.bytes[14])).toEqual([1]);
    expect(fg.got[0]!.buf).toBe(sw.inputBuffer()); // handed straight from the arena
    // From inside a delivery (the gateway answering an ACK): queued behind it, no copy.
    gwSink.sendFrame = () => {
      build(2);
      build(3);
      return true;
    };
    fg.clear();
    send(guest, frame({ dst: mac(1), src: mac(2) }));
    expect(fg.got.map((g) => g.bytes[14])).toEqual([2, 3]);
    expect(sw.counters.reentrantQueued).toBe(2);
    expect(() => sw.commitInput(60)).toThrow(/reserveInput/);
    expect(sw.reserveInput(gw, 100)).toBe(true);
    expect(() => sw.commitInput(101)).toThrow(/reserving 100/);
    // Once closed (its arena given back to its pool), nothing is built there or taken in.
    sw.close();
    expect(sw.reserveInput(gw, 100)).toBe(false);
    fg.clear();
    expect(send(gw, frame({ dst: mac(2), src: mac(1) }))).toBe(true);
    expect(fg.got).toHaveLength(0);
  });

  it('refuse room past the arena, and answer hold back past holdBytes', () => {
    const { sw, add, send } = setup();
    const [guest] = add();
    const gwSink = new AwarePort();
    const gw = sw.addPort(gwSink);
    const answers: boolean[] = [];
    let rooms = 0;
    gwSink.sendFrame = () => {
      while (sw.reserveInput(gw, 1514)) {
        rooms++;
        sw.inputBuffer().set(frame({ dst: mac(2), src: mac(1), payload: 1500 }), sw.inputOffset());
        answers.push(sw.commitInput(1514));
      }
      return true;
    };
    send(guest, frame({ dst: BCAST, src: mac(2) }));
    expect(rooms).toBe(Math.floor(sw.reentrantBytes / 1514));
    expect(answers.indexOf(false)).toBe(Math.ceil(sw.holdBytes / 1514) - 1);
    expect(gwSink.drains).toBe(1);
  });
});
