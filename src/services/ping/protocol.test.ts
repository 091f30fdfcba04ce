/**
 * The helper pipe protocol: the gateway's encoders write what
 * native/ping-helper.c reads (fixture bytes), the decoder reads what the
 * helper writes (fixture bytes taken from a real helper run), and the
 * stream reader splits messages across arbitrary chunk boundaries and
 * refuses an impossible length.
 */
import { describe, expect, it } from 'vitest';
import { decode, encodeClose, encodeOpen, encodeSend, MAX_BODY, MessageReader } from './protocol.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('ping helper protocol', () => {
  it('encodes OPEN, SEND and CLOSE as the helper reads them', () => {
    expect(encodeOpen(0x00012003, 4, 63, Uint8Array.of(198, 51, 100, 1))).toEqual(hex('0000000b 01 00012003 04 3f c6336401'));
    expect(encodeSend(7, 2, hex('0800f7ff00000000'))).toEqual(hex('0000000e 02 00000007 02 0800f7ff00000000'));
    expect(encodeClose(0xfffff000)).toEqual(hex('00000005 03 fffff000'));
    expect(encodeOpen(1, 6, 64, new Uint8Array(16)).length).toBe(4 + 1 + 4 + 2 + 16);
  });

  it('decodes what a real helper wrote (pinging in a namespace: HELLO, OPENED, REPLY, ICMP_ERROR, OPEN_FAILED)', () => {
    expect(decode(hex('80 00000001 00001000'))).toEqual({ type: 'hello', version: 1, slots: 4096 });
    expect(decode(hex('81 00000000 1bc9 04 c6336402'))).toEqual({ type: 'opened', flow: 0, ident: 0x1bc9, family: 4, local: Uint8Array.of(198, 51, 100, 2) });
    expect(decode(hex('83 00000000 04 40 c6336401 0000e3001bc90007 68656c6c6f2d7061796c6f6164'))).toEqual({
      type: 'reply',
      flow: 0,
      family: 4,
      ttl: 64,
      from: Uint8Array.of(198, 51, 100, 1),
      message: hex('0000e3001bc90007 68656c6c6f2d7061796c6f6164'),
    });
    // No ARP answer for 198.51.100.99: the host's own "host unreachable", offender its own address.
    expect(decode(hex('84 00000001 04 02 03 01 00000000 c6336402 0800daff1bca0007 68656c6c6f2d7061796c6f6164'))).toEqual({
      type: 'icmp-error',
      flow: 1,
      family: 4,
      origin: 2,
      icmpType: 3,
      code: 1,
      info: 0,
      offender: Uint8Array.of(198, 51, 100, 2),
      request: hex('0800daff1bca0007 68656c6c6f2d7061796c6f6164'),
    });
    expect(decode(hex('82 00000002 00000065'))).toEqual({ type: 'open-failed', flow: 2, errno: 101 }); // ENETUNREACH
    expect(decode(hex('82 00000002 0000000d'))).toEqual({ type: 'open-failed', flow: 2, errno: 13 }); // EACCES
    expect(decode(hex('85 00000002 00000009'))).toEqual({ type: 'send-failed', flow: 2, errno: 9 });
  });

  it('rejects unknown types, bad families and wrong sizes', () => {
    for (const bad of ['', '7f 00000000', '80 00000001', '81 00000000 1bc6 05 c6336402', '83 00000000 04 40 c63364', '82 00000002 00'])
      expect(decode(hex(bad)), bad).toBeNull();
  });

  it('splits a stream at any chunk boundary', () => {
    const stream = new Uint8Array([...hex('00000009 80 00000001 00001000'), ...hex('00000009 82 00000002 0000000d')]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const got: string[] = [];
      const r = new MessageReader((b) => got.push(Buffer.from(b).toString('hex')));
      for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) for (const b of chunk) expect(r.push(Uint8Array.of(b))).toBe(true);
      expect(got, `cut at ${cut}`).toEqual(['800000000100001000', '82000000020000000d']);
    }
  });

  it('a zero or oversized length prefix breaks the reader for good', () => {
    const r = new MessageReader(() => undefined);
    const big = new Uint8Array(4);
    new DataView(big.buffer).setUint32(0, MAX_BODY + 1);
    expect(r.push(big)).toBe(false);
    expect(r.push(hex('00000009 80 00000001 00001000'))).toBe(false);
    expect(new MessageReader(() => undefined).push(hex('00000000'))).toBe(false);
  });
});
