import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import * as msg from './message.js';

const decode = (b: Uint8Array) => dnsPacket.decode(Buffer.from(b)) as DecodedPacket & { rcode: string };
const opt: Answer = { type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };

function response(n: number, withOpt: boolean): Uint8Array {
  const answers: Answer[] = [];
  for (let i = 0; i < n; i++) answers.push({ name: 'a.test', type: 'A', ttl: 1, data: `10.0.0.${i}` });
  return new Uint8Array(
    dnsPacket.encode({ id: 7, type: 'response', flags: 0x0180, questions: [{ name: 'a.test', type: 'A' }], answers, additionals: withOpt ? [opt] : [] }),
  );
}

describe('message helpers', () => {
  it('questionEnd / skipName reject runaway or truncated names', () => {
    const q = new Uint8Array(dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: 'ab.c', type: 'A' }] }));
    expect(msg.questionEnd(q)).toBe(q.length);
    expect(msg.questionEnd(q.subarray(0, q.length - 1))).toBe(-1);
    expect(msg.skipName(new Uint8Array([0x40]), 0)).toBe(-1); // reserved label type
    expect(msg.skipName(new Uint8Array([0xc0]), 0)).toBe(-1); // pointer cut short
    expect(msg.skipName(new Uint8Array([0xc0, 0x00]), 0)).toBe(2); // pointers are not followed
  });

  it('truncate keeps header, question and OPT, sets TC, and leaves small replies alone', () => {
    const small = response(2, true);
    expect(msg.truncate(small, 512)).toBe(small);
    const big = response(50, true);
    const cut = msg.truncate(big, 512);
    const d = decode(cut);
    expect(d.flag_tc).toBe(true);
    expect(d.id).toBe(7);
    expect(d.questions).toEqual([{ name: 'a.test', type: 'A', class: 'IN' }]);
    expect(d.answers).toEqual([]);
    expect(d.additionals?.map((a) => a.type)).toEqual(['OPT']);
    expect(decode(msg.truncate(response(50, false), 512)).additionals).toEqual([]);
  });

  it('findOpt skips answer records and finds OPT among additionals', () => {
    const r = response(3, true);
    const at = msg.findOpt(r, msg.questionEnd(r));
    expect(at).toEqual([r.length - 11, r.length]);
    expect(msg.findOpt(response(3, false), msg.questionEnd(response(3, false)))).toBeNull();
  });

  it('errorReply copies ID, RD, CD and the question; sets QR/RA/RCODE', () => {
    const q = new Uint8Array(dnsPacket.encode({ id: 0x2222, type: 'query', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED, questions: [{ name: 'X.y', type: 'MX' }] }));
    const d = decode(msg.errorReply(q, msg.SERVFAIL, { ra: true, edns: true }));
    expect(d).toMatchObject({ id: 0x2222, flag_qr: true, flag_rd: true, flag_cd: true, flag_ra: true, flag_aa: false, rcode: 'SERVFAIL' });
    expect(d.questions).toEqual([{ name: 'X.y', type: 'MX', class: 'IN' }]);
    expect(d.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: msg.EDNS_UDP_SIZE }]);
  });
});
