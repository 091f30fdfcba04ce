/**
 * Theory of operation: one HTTP GET as a download needs it, on Node's own
 * http/https clients (no dependency): redirects followed up to a bound
 * (RFC 9110 §15.4: 301, 302, 303, 307 and 308 with a Location; only to
 * http and https), a connect-or-idle timeout on the socket (a server that
 * stops sending is a dropped connection, not a hang), no connection reuse
 * (each attempt is a fresh connection, so a cut one never poisons the
 * next), no content coding asked for (the bytes hashed are the bytes the
 * URL serves), and a cancel signal.
 *
 * Failures to get any answer are VmnetErrors E_DOWNLOAD with the reason in
 * words (no such host, connection refused, TLS certificate problem, …);
 * they are usage errors (exit 2: the URL is the user's), and the caller
 * decides whether to retry. The response body is the caller's to read.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { VmnetError } from '../errors.js';

export interface GetOptions {
  headers?: Record<string, string>;
  /** Redirects followed before giving up (default 10). */
  maxRedirects?: number;
  /** No byte for this long (connecting, or between body chunks) fails the request, ms (default 30000). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface GetResult {
  res: IncomingMessage;
  /** The URL that answered, after redirects. */
  url: URL;
  /** Every URL on the way, the first one included. */
  chain: URL[];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const UA = 'vmnet (image download)';

/** A network error in words; `code` is Node's (ENOTFOUND, ECONNREFUSED, CERT_HAS_EXPIRED, …). */
export function describeNetError(e: unknown, url: URL): string {
  const err = e as NodeJS.ErrnoException;
  const host = url.host;
  switch (err?.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve host ${url.hostname}`;
    case 'ECONNREFUSED':
      return `${host} refused the connection`;
    case 'ECONNRESET':
      return `${host} reset the connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${host} is unreachable`;
    case 'ETIMEDOUT':
    case 'E_IDLE':
      return `${host} stopped answering`;
    default:
      if (err?.code && /CERT|SSL|TLS|SELF_SIGNED/.test(err.code)) return `TLS with ${host} failed (${err.code})`;
      return `${host}: ${err?.message ?? String(e)}`;
  }
}

/** One request, no redirects. */
function request(url: URL, o: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(url, { headers: { 'user-agent': UA, accept: '*/*', ...o.headers }, agent: false, signal: o.signal }, (res) => {
      // From here the idle timeout covers the body: the socket's timer keeps running.
      resolve(res);
    });
    req.setTimeout(o.idleTimeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error('idle timeout'), { code: 'E_IDLE' })));
    req.once('error', reject);
  });
}

/**
 * GETs a URL, following redirects.
 * @param url http or https URL
 * @param o headers, redirect bound, idle timeout, cancel signal
 * @returns the final response (any status but a redirect) and where it came from
 * @throws VmnetError E_DOWNLOAD (no answer, too many redirects, a redirect to another scheme); the signal's AbortError when cancelled
 */
export async function httpGet(url: URL, o: GetOptions = {}): Promise<GetResult> {
  const max = o.maxRedirects ?? 10;
  const chain = [url];
  let at = url;
  for (;;) {
    let res: IncomingMessage;
    try {
      res = await request(at, o);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      throw new VmnetError('E_DOWNLOAD', `cannot download ${at.href}: ${describeNetError(e, at)}`, { cause: e });
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECTS.has(status) || !location) return { res, url: at, chain };
    res.resume(); // discard the redirect's body
    res.destroy();
    let next: URL;
    try {
      next = new URL(location, at);
    } catch {
      throw new VmnetError('E_DOWNLOAD', `cannot download ${url.href}: ${at.host} redirected to an invalid location`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new VmnetError('E_DOWNLOAD', `cannot download ${url.href}: redirected to a ${next.protocol.slice(0, -1)} URL (only http and https are followed)`);
    }
    if (chain.length > max) throw new VmnetError('E_DOWNLOAD', `cannot download ${url.href}: more than ${max} redirects`);
    next.hash = '';
    chain.push(next);
    at = next;
  }
}
