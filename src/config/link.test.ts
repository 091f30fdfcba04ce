import { describe, expect, it } from 'vitest';
import { checkImpairSettings, formatImpair, linkPatchFromJson, parseLinkWords, formatLinkPatch } from './link.js';
import { PERFECT } from '../switch/impair.js';

describe('parseLinkWords', () => {
  it('reads every setting with its unit', () => {
    const p = parseLinkWords(['loss=5%', 'burst=4', 'delay=50ms', 'jitter=500us', 'rate=10mbit', 'dup=1%', 'corrupt=0.1%', 'reorder=5%', 'seed=42', 'limit=200', 'dir=both']);
    expect(p).toEqual({
      set: { loss: 0.05, lossBurst: 4, delayMs: 50, jitterMs: 0.5, rateBps: 10e6, dup: 0.01, corrupt: 0.001, reorder: 0.05, seed: 42, limit: 200 },
      dir: 'both',
      clear: false,
    });
    expect(parseLinkWords(['delay=1.5s', 'rate=1mbps']).set).toEqual({ delayMs: 1500, rateBps: 8e6 });
    expect(parseLinkWords(['down']).set).toEqual({ down: true });
    expect(parseLinkWords(['up', 'clear'])).toEqual({ set: { down: false }, dir: 'egress', clear: true });
  });

  it.each([
    [['loss=5'], /bad link setting "loss=5": give a percentage/],
    [['loss=101%'], /percentage/],
    [['delay=fast'], /give a time/],
    [['rate=10'], /give a rate/],
    [['rate=1bit'], /give a rate/],
    [['seed=-1'], /whole number/],
    [['dir=up'], /dir=egress/],
    [['speed=1'], /known settings/],
    [[], /no link setting given/],
  ])('refuses %j in one line', (words, re) => {
    let msg = '';
    try {
      parseLinkWords(words);
    } catch (e) {
      msg = (e as Error).message;
      expect((e as { code?: string }).code).toBe('E_USAGE');
    }
    expect(msg).toMatch(re);
    expect(msg).not.toContain('\n');
  });

  it('checks settings as a whole: reorder needs a delay, bursts must fit the loss', () => {
    expect(() => checkImpairSettings({ ...PERFECT, reorder: 0.1 })).toThrow(/reorder needs a delay/);
    expect(() => checkImpairSettings({ ...PERFECT, reorder: 0.1, delayMs: 10 })).not.toThrow();
    expect(() => checkImpairSettings({ ...PERFECT, loss: 0.9, lossBurst: 2 })).toThrow(/bursts/);
  });

  it('a JSON patch is held to the same rules, and formats back', () => {
    const p = parseLinkWords(['loss=5%', 'delay=50ms', 'rate=10mbit', 'down']);
    expect(linkPatchFromJson(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(() => linkPatchFromJson({ set: { loss: 2 } })).toThrow(/percentage/);
    expect(() => linkPatchFromJson({ set: { nope: 1 } })).toThrow(/unknown setting/);
    expect(() => linkPatchFromJson({ set: {}, dir: 'sideways' })).toThrow(/dir must be/);
    expect(formatImpair({ ...PERFECT, ...p.set } as typeof PERFECT)).toBe('down delay=50ms loss=5% rate=10mbit');
    expect(formatImpair(PERFECT)).toBe('ok');
  });
});

describe('formatLinkPatch', () => {
  it('says a patch in one order, whatever order it was written in, and reads back the same', () => {
    const a = parseLinkWords(['seed=7', 'delay=50ms', 'loss=5%', 'dir=both', 'rate=10mbit']);
    const b = parseLinkWords(['loss=5%', 'rate=10mbit', 'dir=both', 'delay=50ms', 'seed=7']);
    expect(formatLinkPatch(a)).toBe('delay=50ms loss=5% rate=10mbit seed=7 dir=both');
    expect(formatLinkPatch(b)).toBe(formatLinkPatch(a));
    expect(parseLinkWords(formatLinkPatch(a).split(' '))).toEqual(a);
    expect(formatLinkPatch(parseLinkWords(['down']))).toBe('down');
    expect(formatLinkPatch(parseLinkWords(['dir=ingress', 'down']))).toBe('down'); // down is both ways: the direction says nothing
    expect(formatLinkPatch(parseLinkWords(['burst=4', 'loss=0.5%', 'corrupt=0.1%', 'limit=50']))).toBe('loss=0.5% burst=4 corrupt=0.1% limit=50');
    // Whatever the words took, what they say reads back (no 1e-7ms).
    for (const w of ['delay=0.0001us', 'jitter=0.00000001s', 'loss=0.0000001%', 'rate=8000bit', 'rate=1000gbit', 'delay=60s']) {
      const text = formatLinkPatch(parseLinkWords([w]));
      expect(() => parseLinkWords(text.split(' ')), `${w} → ${text}`).not.toThrow();
    }
  });
});
