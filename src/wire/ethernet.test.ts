import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as eth from './ethernet.js';

/** Round-trip adapter: report payloadOffset relative to the frame start, so it is position-independent. */
const codec: Codec<eth.Header> = {
  length: eth.length,
  emit: eth.emit,
  blank: eth.blank,
  parse(v, o, len, out) {
    const r = eth.parse(v, o, len, out);
    out.payloadOffset -= o;
    return r;
  },
};

const mac = (s: string): Uint8Array => hex(s.replace(/:/g, ''));

describe('ethernet', () => {
  it('round-trips an untagged ARP broadcast header (fixture)', () => {
    roundTrip(
      codec,
      {
        dst: mac('ff:ff:ff:ff:ff:ff'),
        src: mac('52:54:00:12:34:56'),
        vlan: -1,
        pcp: 0,
        dei: 0,
        ethertype: eth.ETHERTYPE_ARP,
        payloadOffset: 14,
        payloadLength: 0,
      },
      'ffffffffffff 525400123456 0806',
    );
  });

  it('round-trips an 802.1Q tagged header (PCP 5, DEI 1, VID 100)', () => {
    roundTrip(
      codec,
      {
        dst: mac('52:55:0a:00:02:02'),
        src: mac('52:54:00:12:34:56'),
        vlan: 100,
        pcp: 5,
        dei: 1,
        ethertype: eth.ETHERTYPE_IPV4,
        payloadOffset: 18,
        payloadLength: 0,
      },
      '52550a000202 525400123456 8100 b064 0800',
    );
  });

  it('parses payload bounds at an absolute offset and the accessors agree', () => {
    const frame = hex('00 00 00' + '525400123456 52550a000202 8100 0005 86dd' + 'aabbccdd');
    const v = viewOf(frame);
    const h = eth.blank();
    expect(eth.parse(v, 3, frame.length - 3, h)).toBe(true);
    expect(h.vlan).toBe(5);
    expect(h.pcp).toBe(0);
    expect(h.ethertype).toBe(eth.ETHERTYPE_IPV6);
    expect(h.payloadOffset).toBe(3 + 18);
    expect(h.payloadLength).toBe(4);
    expect(eth.ethertype(v, 3)).toBe(eth.ETHERTYPE_IPV6);
    expect(eth.outerType(v, 3)).toBe(eth.ETHERTYPE_VLAN);
    expect(eth.isGroupDst(v, 3)).toBe(false);
  });

  it('copies MACs into the preallocated arrays (stable after buffer reuse)', () => {
    const frame = hex('ffffffffffff 525400123456 0800');
    const h = eth.blank();
    const { dst, src } = h;
    expect(eth.parse(viewOf(frame), 0, frame.length, h)).toBe(true);
    expect(h.dst).toBe(dst);
    expect(h.src).toBe(src);
    frame.fill(0);
    expect(Array.from(h.src)).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(eth.isGroupDst(viewOf(hex('ffffffffffff')), 0)).toBe(true);
  });

  it('resets tag fields when a reused header parses an untagged frame', () => {
    const h = eth.blank();
    const tagged = hex('ffffffffffff 525400123456 8100 e00a 0800');
    expect(eth.parse(viewOf(tagged), 0, tagged.length, h)).toBe(true);
    expect([h.vlan, h.pcp]).toEqual([10, 7]);
    const plain = hex('ffffffffffff 525400123456 0800');
    expect(eth.parse(viewOf(plain), 0, plain.length, h)).toBe(true);
    expect([h.vlan, h.pcp, h.dei]).toEqual([-1, 0, 0]);
  });

  it('rejects truncated frames at every length', () => {
    const plain = hex('ffffffffffff 525400123456 0800');
    const tagged = hex('ffffffffffff 525400123456 8100 000a 0800');
    const h = eth.blank();
    for (let n = 0; n < 14; n++) expect(eth.parse(viewOf(plain), 0, n, h)).toBe(false);
    for (let n = 0; n < 18; n++) expect(eth.parse(viewOf(tagged), 0, n, h)).toBe(false);
    expect(eth.parse(viewOf(tagged), 0, 18, h)).toBe(true);
  });
});
