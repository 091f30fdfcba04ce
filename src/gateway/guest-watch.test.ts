/**
 * GuestWatch: only watched MACs are recorded, the first frame once, the
  * lease (a renewal keeps its time); `waiting` drops to false once every watched MAC has sent.
 */
import { describe, expect, it } from 'vitest';
import { parseMac } from '../wire/addr.js';
import { GuestWatch, MAX_WATCHED } from './guest-watch.js';

const A = '52:54:00:00:00:0a';

describe('GuestWatch', () => {
  it('records the first frame and the lease (address, since when) of a watched MAC, nothing of others', () => {
    const w = new GuestWatch();
    expect(w.waiting).toBe(false);
    expect(w.watch(A)).toBe(true);
    expect(w.waiting).toBe(true);
    w.frame(parseMac('52:54:00:00:00:0b')!, 5);
    expect(w.seen(A)).toEqual({ firstFrameAt: null, lease: null });
    w.frame(parseMac(A)!, 10);
    w.frame(parseMac(A)!, 20);
    expect(w.waiting).toBe(false);
    w.lease(parseMac(A)!, 0x0a00020f, 30);
    w.lease(parseMac(A)!, 0x0a00020f, 35); // a renewal (or the same address asked for again) keeps the first time
    expect(w.seen(A)).toEqual({ firstFrameAt: 10, lease: { at: 30, address: '10.0.2.15' } });
    w.lease(parseMac(A)!, 0x0a000210, 40);
    expect(w.seen(A)).toEqual({ firstFrameAt: 10, lease: { at: 40, address: '10.0.2.16' } });
    expect(w.seen('52:54:00:00:00:0b')).toBeNull();
    w.unwatch(A);
    expect(w.seen(A)).toBeNull();
  });

  it('watches at most MAX_WATCHED MACs', () => {
    const w = new GuestWatch();
    for (let i = 0; i < MAX_WATCHED; i++) expect(w.watch(`52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`)).toBe(true);
    expect(w.watch('52:54:00:ff:ff:ff')).toBe(false);
    expect(w.watch('nonsense')).toBe(false);
  });
});
