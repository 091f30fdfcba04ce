import { describe, expect, it } from 'vitest';
import { ifRangeValue, parseContentRange, planResponse, resumeHeaders, validatorOf } from './http-range.js';

describe('resume requests (RFC 9110 §13.1.5, §14.2)', () => {
  it('a strong ETag, else Last-Modified; never a weak ETag; nothing to resume without a validator', () => {
    expect(resumeHeaders(100, { etag: '"abc"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' })).toEqual({ range: 'bytes=100-', 'if-range': '"abc"' });
    expect(ifRangeValue({ etag: 'W/"abc"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' })).toBe('Mon, 01 Jan 2024 00:00:00 GMT');
    expect(resumeHeaders(100, { etag: 'W/"abc"', lastModified: null })).toEqual({});
    expect(resumeHeaders(0, { etag: '"abc"', lastModified: null })).toEqual({});
    expect(resumeHeaders(100, null)).toEqual({});
    expect(validatorOf({ etag: '"x"', 'last-modified': 'y' })).toEqual({ etag: '"x"', lastModified: 'y' });
  });
});

describe('Content-Range (§14.4)', () => {
  it('parses ranges and unsatisfied ranges; rejects nonsense', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ start: 100, end: 199, total: null });
    expect(parseContentRange('bytes */200')).toEqual({ start: null, end: null, total: 200 });
    expect(parseContentRange('bytes 200-100/300')).toBeNull();
    expect(parseContentRange('bytes 0-200/200')).toBeNull();
    expect(parseContentRange('items 0-1/2')).toBeNull();
    expect(parseContentRange(null)).toBeNull();
  });
});

describe('planResponse', () => {
  const cr = (v: string) => ({ 'content-range': v });
  it('206 at the offset appends; elsewhere starts over', () => {
    expect(planResponse(206, cr('bytes 100-199/200'), 100, true)).toEqual({ kind: 'append', offset: 100, total: 200 });
    expect(planResponse(206, cr('bytes 0-199/200'), 100, true).kind).toBe('start-over');
    expect(planResponse(206, {}, 100, true).kind).toBe('start-over');
    expect(planResponse(206, cr('bytes 100-199/200'), 100, false)).toEqual({ kind: 'error', status: 206 });
  });
  it('200 (Range ignored, or If-Range failed) restarts from byte 0 with this body', () => {
    expect(planResponse(200, { 'content-length': '200' }, 100, true)).toEqual({ kind: 'restart', total: 200 });
    expect(planResponse(200, {}, 0, false)).toEqual({ kind: 'restart', total: null });
  });
  it('416: complete when the partial file is the whole file, else start over', () => {
    expect(planResponse(416, cr('bytes */200'), 200, true)).toEqual({ kind: 'complete', total: 200 });
    expect(planResponse(416, cr('bytes */150'), 200, true).kind).toBe('start-over');
  });
  it('anything else is an error to report', () => {
    expect(planResponse(404, {}, 0, false)).toEqual({ kind: 'error', status: 404 });
    expect(planResponse(503, {}, 100, true)).toEqual({ kind: 'error', status: 503 });
  });
});
