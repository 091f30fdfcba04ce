import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf, type Codec } from '../../test/helpers/round-trip.js';
import * as vxlan from './vxlan.js';

/** Round-trip adapter: the header followed by a 14-byte inner Ethernet header of zeros. */
const codec: Codec<vxlan.Header> = {
  length: () => vxlan.HEADER_LEN + 14,
  emit: (h, v, o) => vxlan.emit(h, v, o) + 14,
  parse: vxlan.parse,
  blank: vxlan.blank,
};

describe('vxlan', () => {
  it('round-trips a header (RFC 7348 §5 layout: I flag, VNI, zero reserved bits)', () => {
    roundTrip(codec, { vni: 0x123456 }, '08000000 12345600' + '00'.repeat(14));
    roundTrip(codec, { vni: 0 }, '08000000 00000000' + '00'.repeat(14));
    roundTrip(codec, { vni: vxlan.MAX_VNI }, '08000000 ffffff00' + '00'.repeat(14));
  });

  it('parses a header with VNI 42 in front of an inner ARP request', () => {
    const b = hex('08000000 00002a00 ffffffffffff 7a1c2d3e4f50 0806 0001080006040001');
    const h = vxlan.blank();
    expect(vxlan.parse(viewOf(b), 0, b.length, h)).toBe(true);
    expect(h.vni).toBe(42);
    expect(vxlan.vni(viewOf(b), 0)).toBe(42);
  });

  it('ignores reserved bits on receipt (§5), but needs the I flag', () => {
    const b = hex('ff7f7f7f 0000 2aff' + '00'.repeat(14));
    const h = vxlan.blank();
    expect(vxlan.parse(viewOf(b), 0, b.length, h)).toBe(true);
    expect(h.vni).toBe(42);
    b[0] = 0xf7; // every flag but I
    expect(vxlan.parse(viewOf(b), 0, b.length, h)).toBe(false);
  });

  it('rejects a datagram too short for the header and an inner Ethernet header', () => {
    const b = hex('08000000 00002a00' + '00'.repeat(13));
    expect(vxlan.parse(viewOf(b), 0, b.length, vxlan.blank())).toBe(false);
    expect(vxlan.parse(viewOf(b), 0, 7, vxlan.blank())).toBe(false);
    expect(vxlan.parse(viewOf(b), 0, 0, vxlan.blank())).toBe(false);
  });

  it('masks a VNI to 24 bits on emit', () => {
    const b = new Uint8Array(8);
    vxlan.emit({ vni: 0x1abcdef }, viewOf(b), 0);
    expect(vxlan.vni(viewOf(b), 0)).toBe(0xabcdef);
  });
});
