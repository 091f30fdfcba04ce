import { describe, expect, it } from 'vitest';
import { hex, roundTrip, viewOf } from '../../test/helpers/round-trip.js';
import * as arp from './arp.js';

// who-has 10.0.2.2 tell 10.0.2.15, from 52:54:00:12:34:56 (QEMU's default guest MAC)
const REQUEST = '0001 0800 06 04 0001 525400123456 0a00020f 000000000000 0a000202';

describe('arp', () => {
  it('round-trips a request (fixture)', () => {
    roundTrip(
      arp,
      {
        op: arp.OP_REQUEST,
        sha: hex('525400123456'),
        spa: 0x0a00020f,
        tha: new Uint8Array(6),
        tpa: 0x0a000202,
      },
      REQUEST,
    );
  });

  it('round-trips a reply', () => {
    roundTrip(
      arp,
      { op: arp.OP_REPLY, sha: hex('52550a000202'), spa: 0x0a000202, tha: hex('525400123456'), tpa: 0x0a00020f },
      '0001 0800 0604 0002 52550a000202 0a000202 525400123456 0a00020f',
    );
  });

  it('parses with trailing Ethernet padding and answers in place', () => {
    const b = hex(REQUEST + '00'.repeat(18));
    const v = viewOf(b);
    const h = arp.blank();
    expect(arp.parse(v, 0, b.length, h)).toBe(true);
    expect([arp.op(v, 0), arp.spa(v, 0), arp.tpa(v, 0)]).toEqual([1, 0x0a00020f, 0x0a000202]);
    // reply in place (passt style): swap, fill our MAC
    const mine = hex('52550a000202');
    h.op = arp.OP_REPLY;
    h.tha.set(h.sha);
    [h.spa, h.tpa] = [h.tpa, h.spa];
    h.sha.set(mine);
    expect(arp.emit(h, v, 0)).toBe(28);
    expect(Buffer.from(b.subarray(0, 28)).toString('hex')).toBe('0001080006040002' + '52550a000202' + '0a000202' + '525400123456' + '0a00020f');
  });

  it('rejects truncated input at every length', () => {
    const v = viewOf(hex(REQUEST));
    const h = arp.blank();
    for (let n = 0; n < 28; n++) expect(arp.parse(v, 0, n, h)).toBe(false);
    expect(arp.parse(v, 0, 28, h)).toBe(true);
  });

  it.each([
    ['htype 6 (IEEE 802)', 0, 0x00, 0x06],
    ['ptype IPv6', 2, 0x86, 0xdd],
    ['hlen 8', 4, 0x08, 0x04],
    ['plen 16', 4, 0x06, 0x10],
    ['op 3 (RARP)', 6, 0x00, 0x03],
    ['op 0', 6, 0x00, 0x00],
  ])('rejects %s', (_name, at, b0, b1) => {
    const b = hex(REQUEST);
    b[at] = b0;
    b[at + 1] = b1;
    expect(arp.parse(viewOf(b), 0, b.length, arp.blank())).toBe(false);
  });
});
