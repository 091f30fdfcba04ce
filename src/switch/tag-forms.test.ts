/** The egress forms of a frame (tag-forms.ts): written once per frame, tags added and removed as 802.1Q says. */
import { describe, expect, it } from 'vitest';
import { frame, mac, parse } from '../../test/helpers/switch-kit.js';
import { TagForms } from './tag-forms.js';

const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

describe('TagForms', () => {
  it('the tagged form of an untagged frame carries the VLAN; the bytes behind the header are the same', () => {
    const f = new TagForms(1522);
    const b = frame({ dst: mac(2), src: mac(1), mark: 9 });
    f.begin(b, viewOf(b), 0, b.length, { vlan: 42, tagged: false, tci: 0, nested: false, group: false });
    const len = f.tagged();
    expect(len).toBe(b.length + 4);
    const out = f.scratch.subarray(0, len);
    expect(parse(out)).toMatchObject({ vlan: 42, pcp: 0 });
    expect(out.subarray(16)).toEqual(b.subarray(12));
  });

  it('a priority-tagged frame gets both forms, PCP kept in the tagged one; each is written once per frame', () => {
    const f = new TagForms(1522);
    const b = frame({ dst: mac(2), src: mac(1), vlan: 0, pcp: 6, mark: 3 });
    f.begin(b, viewOf(b), 0, b.length, { vlan: 7, tagged: true, tci: 6 << 13, nested: false, group: false });
    expect(f.tagged()).toBe(b.length);
    expect(parse(f.scratch.subarray(0, b.length))).toMatchObject({ vlan: 7, pcp: 6 });
    const ulen = f.untagged();
    expect(ulen).toBe(b.length - 4);
    const u = f.scratch.subarray(f.half, f.half + ulen);
    expect(parse(u).vlan).toBe(-1);
    expect(u.subarray(12)).toEqual(b.subarray(16));
    // Written once: changing the source after the first write does not change the form.
    b[20] = b[20]! ^ 0xff;
    f.tagged();
    expect(f.scratch[20]).not.toBe(b[20]);
    // The next frame writes afresh.
    f.begin(b, viewOf(b), 0, b.length, { vlan: 7, tagged: true, tci: 6 << 13, nested: false, group: false });
    f.tagged();
    expect(f.scratch[20]).toBe(b[20]);
  });

  it('select passes the received bytes when they are the form asked for, and has no untagged form of a Q-in-Q frame', () => {
    const f = new TagForms(1526);
    const b = frame({ dst: mac(2), src: mac(1), vlan: 7, inner: [{ tpid: 0x8100, vid: 20 }], mark: 4 });
    const v = viewOf(b);
    f.begin(b, v, 0, b.length, { vlan: 7, tagged: true, tci: 7, nested: true, group: false });
    expect(f.select(true)).toBe(true);
    expect([f.outBuf, f.outView, f.outOff, f.outLen, f.asReceived]).toEqual([b, v, 0, b.length, true]);
    expect(f.select(false)).toBe(false);
    f.begin(b, v, 0, b.length, { vlan: 7, tagged: true, tci: 7, nested: false, group: false });
    expect(f.select(false)).toBe(true);
    expect([f.outBuf, f.outOff, f.outLen, f.asReceived]).toEqual([f.scratch, f.half, b.length - 4, false]);
    f.release();
    expect(f.outBuf).toBe(f.scratch);
  });
});
