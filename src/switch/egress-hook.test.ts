import { describe, expect, it } from 'vitest';
import { BuildingPort, frame, mac, marked, setup } from '../../test/helpers/switch-kit.js';

describe('egress hook (link faults)', () => {
  it('takes a port’s frames in the form it would get (untagged on access, tagged on a trunk), counted as sent, instead of its sink', () => {
    const r = setup();
    const [a] = r.add({ role: { vlan: 10 } });
    const [b, bSink] = r.add({ role: { vlan: 10 } });
    const [t, tSink] = r.add({ role: { trunk: [10] } });
    const hooked: Array<{ port: string; bytes: Uint8Array }> = [];
    r.sw.setEgressHook(b, (buf, view, off, len) => {
      expect(view.buffer).toBe(buf.buffer);
      hooked.push({ port: 'b', bytes: buf.slice(off, off + len) });
    });
    r.sw.setEgressHook(t, (buf, _view, off, len) => hooked.push({ port: 't', bytes: buf.slice(off, off + len) }));
    r.send(a, marked(mac(99), mac(1), 7)); // unknown destination: flooded to b and t
    expect(bSink.got).toEqual([]);
    expect(tSink.got).toEqual([]);
    expect(hooked.map((h) => h.port)).toEqual(['b', 't']);
    expect(hooked[0]!.bytes).toEqual(marked(mac(99), mac(1), 7));
    const u = hooked[0]!.bytes;
    expect(hooked[1]!.bytes).toEqual(Uint8Array.of(...u.subarray(0, 12), 0x81, 0, 0, 10, ...u.subarray(12))); // the same frame, tagged for VLAN 10
    expect(b.counters.txFrames).toBe(1);
    r.sw.setEgressHook(b, null);
    r.send(a, marked(mac(99), mac(1), 8));
    expect(bSink.got.length).toBe(1);
  });

  it('a hooked port is never a cut-through target: the frame is copied to the hook', () => {
    const r = setup();
    const [gw] = r.add();
    const out = new BuildingPort();
    const guest = r.sw.addPort(out);
    r.send(guest, frame({ dst: mac(1), src: mac(2) })); // guest's MAC learned
    r.send(gw, frame({ dst: mac(2), src: mac(1) }));
    out.clear();
    const got: Uint8Array[] = [];
    r.sw.setEgressHook(guest, (buf, _v, off, len) => got.push(buf.slice(off, off + len)));
    expect(r.sw.reserveInput(gw, 100, mac(2))).toBe(true);
    expect(r.sw.inputBuffer()).not.toBe(out.out); // in the arena, not in the port's output
    const f = frame({ dst: mac(2), src: mac(1), payload: 60 });
    r.sw.inputBuffer().set(f, r.sw.inputOffset());
    r.sw.commitInput(f.length);
    expect(got).toEqual([f]);
    expect(out.got).toEqual([]);
    expect(r.sw.counters.cutThrough).toBe(0);
  });
});
