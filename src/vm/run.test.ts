import { describe, expect, it } from 'vitest';
import { parseMemory } from './run.js';

describe('parseMemory', () => {
  it.each([
    ['1G', 1024],
    ['512M', 512],
    ['512', 512],
    ['2GiB', 2048],
    ['1.5g', 1536],
  ])('%s → %i MiB', (t, mib) => expect(parseMemory(t)).toBe(mib));
  it.each(['', 'lots', '8', '-1G', '1X'])('rejects %j', (t) => expect(() => parseMemory(t)).toThrow(expect.objectContaining({ code: 'E_USAGE' })));
});
