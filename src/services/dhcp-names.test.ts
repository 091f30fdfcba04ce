import { describe, expect, it } from 'vitest';
import { HostNames } from './dhcp-names.js';

describe('HostNames', () => {
  it('keeps a name with its first holder while it holds it; frees it on release or when the hold ends', () => {
    const held = new Set<string>(['a', 'b']);
    const t = new HostNames<string>('example', (c) => held.has(c));
    expect(t.claim('a', null, 'Web.example.', 0)).toBe(true);
    expect(t.holder('WEB')).toBe('a');
    expect(t.claim('b', null, 'web', 0)).toBe(false);
    held.delete('a');
    expect(t.claim('b', null, 'web', 0)).toBe(true);
    expect(t.holder('web.example')).toBe('b');
    expect(t.claim('b', 'web', 'api', 0)).toBe(true); // renamed: the old name is free
    expect(t.holder('web')).toBeUndefined();
    t.release('b', 'api');
    expect(t.holder('api')).toBeUndefined();
    expect(t.key('x.example.')).toBe('x');
    expect(t.claim('a', null, '.', 0)).toBe(true); // an empty name registers nothing
    expect(t.holder('')).toBeUndefined();
  });
});
