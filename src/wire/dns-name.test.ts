import { describe, expect, it } from 'vitest';
import { hex, viewOf } from '../../test/helpers/round-trip.js';
import { decodeNames, emitNames, labels, namesLength, type NameRules } from './dns-name.js';

const PLAIN: NameRules = { pointers: false, padding: false };
const PADDED: NameRules = { pointers: false, padding: true };
const COMPRESSED: NameRules = { pointers: true, padding: false };
const decode = (text: string, rules: NameRules, o = 0): string[] | null => {
  const b = hex(text);
  return decodeNames(viewOf(b), o, b.length - o, rules);
};

describe('RFC 1035 name lists', () => {
  it('decodes uncompressed names (RFC 3646 §4, the captured dnsmasq search list)', () => {
    expect(decode('05766d6e657408696e7465726e616c00 076578616d706c65036f726700', PLAIN)).toEqual(['vmnet.internal', 'example.org']);
    expect(decode('00', PLAIN)).toEqual(['']);
    expect(decode('', PLAIN)).toEqual([]);
  });

  it('stops at padding where a name would start (RFC 8106 §5.2)', () => {
    expect(decode('0161 00 000000 0000', PADDED)).toEqual(['a']);
    expect(decode('00 0161 00', PADDED)).toEqual([]);
    expect(decode('0161 00 000000', PLAIN)).toEqual(['a', '', '', '']);
  });

  it('follows backward pointers only when allowed (RFC 1035 §4.1.4, RFC 3397)', () => {
    expect(decode('0161 00 0162 c000', COMPRESSED)).toEqual(['a', 'b.a']);
    expect(decode('ff 0161 00 0162 c000', COMPRESSED, 1)).toEqual(['a', 'b.a']); // offsets count from the list start
    expect(decode('0161 00 0162 c000', PLAIN)).toBeNull();
    expect(decode('c000', COMPRESSED)).toBeNull();
    expect(decode('0161 c000', COMPRESSED)).toBeNull();
    expect(decode('c002 0161 00', COMPRESSED)).toBeNull();
    expect(decode('0161 00 0162 c0', COMPRESSED)).toBeNull();
  });

  it('rejects malformed names', () => {
    for (const bad of ['0361 62', '0161', '4161 00', '8161 00', '032e6162 00', '0161 02612e 00']) expect(decode(bad, PLAIN), bad).toBeNull();
    // 255 bytes is the longest name: 4 labels of 62 + length bytes = 252, plus one 1-byte label (2) and the zero = 255
    const label = '3e' + '61'.repeat(62);
    expect(decode(label.repeat(4) + '0161 00', PLAIN)?.[0]?.length).toBe(4 * 63 + 1);
    expect(decode(label.repeat(4) + '0261 62 00', PLAIN)).toBeNull();
  });

  it('encodes names uncompressed, dropping empty labels and cutting long ones', () => {
    expect(labels('.vmnet..internal.')).toEqual(['vmnet', 'internal']);
    expect(labels('x'.repeat(70))[0]).toHaveLength(63);
    const names = ['vmnet.internal', 'example.org.', ''];
    const n = namesLength(names);
    const b = new Uint8Array(n + 3);
    expect(emitNames(names, viewOf(b), 3)).toBe(n);
    expect(Buffer.from(b.subarray(3)).toString('hex')).toBe('05766d6e657408696e7465726e616c00076578616d706c65036f72670000');
    expect(decodeNames(viewOf(b), 3, n, PLAIN)).toEqual(['vmnet.internal', 'example.org', '']);
  });
});
