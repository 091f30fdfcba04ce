import { describe, expect, it } from 'vitest';
import { printable, toJson } from './printable.js';

describe('printable', () => {
  it('escapes C0, DEL, C1, line separators and bidi controls; leaves other text alone', () => {
    expect(printable('web\u001b[2J\u0007\r\n\t')).toBe('web\\x1b[2J\\x07\\x0d\\x0a\\x09');
    expect(printable('\u007f\u0080\u009b31m')).toBe('\\x7f\\x80\\x9b31m');
    expect(printable('a\u202eb\u2066c\u2028d\u200f')).toBe('a\\u{202e}b\\u{2066}c\\u{2028}d\\u{200f}');
    expect(printable('vm-1.example, ünïcødé ✓ \\ back')).toBe('vm-1.example, ünïcødé ✓ \\ back');
    expect(printable('')).toBe('');
  });
});

describe('toJson', () => {
  it('leaves no raw control character and decodes to the same value', () => {
    const v = { h: 'x\u001b\u009b\u007f\u202e\n', n: [1, 'ok'] };
    const s = toJson(v);
    expect(s).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(JSON.parse(s)).toEqual(v);
    expect(JSON.parse(toJson(v, 2))).toEqual(v);
    expect(toJson(v, 2)).toContain('\n  ');
  });
});
