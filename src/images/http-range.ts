/**
 * Theory of operation: resuming a download with HTTP range requests,
 * decided without I/O (http-download.ts does the requests).
 *
 * A partial file is kept with the validator of the response it came from
 * (RFC 9110 §8.8: the ETag, else Last-Modified). To resume, the request
 * asks for the rest, `Range: bytes=N-` (§14.2), conditional on the
 * resource being unchanged, `If-Range: <validator>` (§13.1.5): a server
 * that still has the same representation answers 206 with the rest; one
 * whose representation changed, or that ignores ranges, answers 200 with
 * the whole file, which then replaces the partial file from byte 0. A weak
 * ETag may not be used in If-Range (§13.1.5), so then Last-Modified is
 * used, and without any usable validator the download starts over (a part
 * of an unknown version is not worth the risk of splicing two versions).
 *
 * The answers (§15.3.7 206, §15.5.17 416, §14.4 Content-Range):
 * - 206 with `Content-Range: bytes N-…/total` starting at N: append;
 *   starting elsewhere: start over without a range;
 * - 200: the whole file, from byte 0 (restart in place);
 * - 416 with `Content-Range: bytes *\/total`: when total is N the partial
 *   file is already whole (a previous run died after the last byte), else
 *   start over without a range;
 * - anything else is an error the caller reports (404 is the user's).
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What identifies the version of the file a partial download holds. */
export interface Validator {
  etag: string | null;
  lastModified: string | null;
}

/** A parsed `Content-Range` (§14.4): a range, or `*` with the complete length. */
export interface ContentRange {
  /** First byte, or null for an unsatisfied range (`bytes *\/total`). */
  start: number | null;
  end: number | null;
  /** Complete length, or null when the server wrote `*`. */
  total: number | null;
}

const header = (h: IncomingHttpHeaders, name: string): string | null => {
  const v = h[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? null) : null;
};

/**
 * The validator a response carries.
 * @param h response headers
 */
export function validatorOf(h: IncomingHttpHeaders): Validator {
  return { etag: header(h, 'etag'), lastModified: header(h, 'last-modified') };
}

/**
 * The If-Range value for a validator: a strong ETag, else Last-Modified, else null (§13.1.5).
 * @param v the partial file's validator
 */
export function ifRangeValue(v: Validator | null): string | null {
  if (!v) return null;
  if (v.etag && !v.etag.startsWith('W/')) return v.etag;
  return v.lastModified;
}

/**
 * Request headers that resume a partial file of `have` bytes, or none (start from byte 0).
 * @param have bytes already on disk
 * @param v their validator
 */
export function resumeHeaders(have: number, v: Validator | null): Record<string, string> {
  const ifRange = ifRangeValue(v);
  if (have <= 0 || ifRange === null) return {};
  return { range: `bytes=${have}-`, 'if-range': ifRange };
}

const NUM = '(\\d{1,16})';
const RANGE_RE = new RegExp(`^bytes ${NUM}-${NUM}/(?:${NUM}|\\*)$`, 'i');
const UNSATISFIED_RE = new RegExp(`^bytes \\*/${NUM}$`, 'i');

/**
 * Parses a Content-Range header value.
 * @returns null when malformed (or first > last, or last ≥ total)
 */
export function parseContentRange(text: string | null): ContentRange | null {
  if (!text) return null;
  const t = text.trim();
  const m = RANGE_RE.exec(t);
  if (m) {
    const start = Number(m[1]);
    const end = Number(m[2]);
    const total = m[3] !== undefined ? Number(m[3]) : null;
    if (end < start || (total !== null && end >= total)) return null;
    return { start, end, total };
  }
  const u = UNSATISFIED_RE.exec(t);
  return u ? { start: null, end: null, total: Number(u[1]) } : null;
}

/** What to do with a response to a (possibly ranged) GET. */
export type ResponsePlan =
  /** 206 for the rest: append the body at `offset`. */
  | { kind: 'append'; offset: number; total: number | null }
  /** 200: the body is the whole file; write it from byte 0. */
  | { kind: 'restart'; total: number | null }
  /** 416 and the partial file is the whole file already. */
  | { kind: 'complete'; total: number }
  /** The answer does not fit the partial file: drop it, ask again without a range. */
  | { kind: 'start-over'; why: string }
  /** Not a download: the caller reports the status. */
  | { kind: 'error'; status: number };

/**
 * Decides what a response means for a partial file.
 * @param status the response status
 * @param h its headers
 * @param have bytes of the partial file when the request was sent
 * @param ranged whether the request carried a Range header
 */
export function planResponse(status: number, h: IncomingHttpHeaders, have: number, ranged: boolean): ResponsePlan {
  const length = header(h, 'content-length');
  const bodyLength = length !== null && /^\d{1,16}$/.test(length) ? Number(length) : null;
  if (status === 200) return { kind: 'restart', total: bodyLength };
  if (status === 206) {
    if (!ranged) return { kind: 'error', status };
    const cr = parseContentRange(header(h, 'content-range'));
    if (!cr || cr.start === null) return { kind: 'start-over', why: 'the server sent a range it did not describe' };
    if (cr.start !== have) return { kind: 'start-over', why: `the server sent bytes from ${cr.start}, not ${have}` };
    return { kind: 'append', offset: have, total: cr.total };
  }
  if (status === 416 && ranged) {
    const cr = parseContentRange(header(h, 'content-range'));
    if (cr && cr.start === null && cr.total === have) return { kind: 'complete', total: have };
    return { kind: 'start-over', why: 'the server has less than the partial file holds' };
  }
  return { kind: 'error', status };
}
