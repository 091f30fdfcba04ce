/**
 * Theory of operation: what the user named as a disk image, checked before
 * anything is fetched or started. An image argument with a URL scheme is a
 * remote image; only `http:` and `https:` are fetched (RFC 9110 §4.2), and
 * any other scheme is a usage error rather than a file name. A URL with a
 * user name or password is refused: RFC 9110 §4.2.4 deprecates userinfo in
 * http(s) URLs, and vmnet would print it in events, logs and `vmnet ls`.
 * The fragment is never sent (RFC 3986 §3.5), so it is dropped.
 *
 * A digest is `sha256:` and 64 hex digits, the form used by OCI and by
 * distributions' SHA256SUMS files. It names the bytes served at the URL
 * (the compressed file, for a .gz or .xz image).
 *
 * Pure: no I/O (node:crypto only hashes the URL into a cache key).
 */
import { createHash } from 'node:crypto';
import { VmnetError } from '../errors.js';
import { compressionFromName } from './compression.js';

/** Looks like `scheme://…`: a URL, not a file name. */
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
const DIGEST_RE = /^sha256:([0-9a-fA-F]{64})$/;

/**
 * True when the image argument is a URL (any scheme), not a local path.
 * @param image what the user gave as IMAGE
 */
export function isImageUrl(image: string): boolean {
  return SCHEME_RE.test(image);
}

/**
 * Parses and checks an image URL.
 * @param text the URL as given
 * @returns the URL, fragment removed
 * @throws VmnetError E_USAGE for a malformed URL, a scheme other than http/https, no host, or credentials in it
 */
export function parseImageUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new VmnetError('E_USAGE', `bad image URL ${JSON.stringify(text)}: not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VmnetError('E_USAGE', `image URL ${JSON.stringify(text)} uses ${url.protocol.slice(0, -1)}: vmnet downloads http:// and https:// images only; fetch it yourself and give the file`);
  }
  if (!url.hostname) throw new VmnetError('E_USAGE', `bad image URL ${JSON.stringify(text)}: no host`);
  if (url.username || url.password) {
    throw new VmnetError('E_USAGE', 'an image URL with a user name or password is not supported (it would be shown in logs and vmnet ls); download the image yourself and give the file');
  }
  url.hash = '';
  return url;
}

/**
 * Parses `--digest sha256:HEX`.
 * @returns the 64 hex digits, lower case
 * @throws VmnetError E_USAGE
 */
export function parseDigest(text: string): string {
  const m = DIGEST_RE.exec(text.trim());
  if (!m) {
    const algo = /^([a-z0-9]+):/i.exec(text)?.[1];
    const why = algo && algo.toLowerCase() !== 'sha256' ? `${algo} is not supported, only sha256` : 'expected sha256: and 64 hex digits';
    throw new VmnetError('E_USAGE', `bad --digest ${JSON.stringify(text)}: ${why} (e.g. from the distribution's SHA256SUMS)`);
  }
  return m[1]!.toLowerCase();
}

/** `sha256:HEX`, the form `--digest` takes and events print. */
export const formatDigest = (hex: string): string => `sha256:${hex}`;

/**
 * The file name a URL serves (its last path segment, percent-decoded, any
 * compression suffix dropped), for naming the VM.
 * @param url an image URL
 */
export function urlFileName(url: URL): string {
  const segment = url.pathname.split('/').filter(Boolean).at(-1) ?? url.hostname;
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    name = segment;
  }
  const c = compressionFromName(name);
  return c ? name.slice(0, -c.suffix.length) : name;
}

/**
 * The cache key of a URL: 32 hex digits of its SHA-256 (the URL as sent,
 * without fragment).
 * @param url an image URL
 */
export function urlKey(url: URL): string {
  const u = new URL(url.href);
  u.hash = '';
  return createHash('sha256').update(u.href).digest('hex').slice(0, 32);
}
