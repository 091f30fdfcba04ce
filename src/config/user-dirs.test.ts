import { describe, expect, it } from 'vitest';
import { cacheRoot, dataRoot } from './user-dirs.js';

describe('XDG cache and data directories', () => {
  it('absolute XDG_* wins, a relative one is ignored for $HOME/…, neither is an error', () => {
    expect(cacheRoot({ XDG_CACHE_HOME: '/x/cache', HOME: '/home/u' })).toBe('/x/cache/vmnet');
    expect(cacheRoot({ XDG_CACHE_HOME: 'rel', HOME: '/home/u' })).toBe('/home/u/.cache/vmnet');
    expect(dataRoot({ XDG_DATA_HOME: '/x/data', HOME: '/home/u' })).toBe('/x/data/vmnet');
    expect(dataRoot({ HOME: '/home/u' })).toBe('/home/u/.local/share/vmnet');
    expect(() => dataRoot({ HOME: 'rel' })).toThrow(expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(/neither XDG_DATA_HOME nor HOME is an absolute path/) }));
  });
});
