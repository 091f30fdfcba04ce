/**
 * Theory of operation: `fetchImage(url)` gives the path of a verified copy
 * of the image at a URL in the cache (cache-fs.ts), downloading it only
 * when the cache does not have it:
 *
 * 1. A name that says tar, zstd or bzip2 is refused before any byte is
 *    fetched (compression.ts), and so is xz when the xz tool is missing.
 * 2. Cache hit: with a digest, the file `sha256-<digest>` (wherever it came
 *    from); without one, the file the URL gave last time (downloaded once,
 *    never checked again upstream: give --digest to ask for a new version).
 * 3. Otherwise the download goes into a partial directory of this process
 *    (adopting a dead process's, which is then resumed), hashing as it
 *    writes. A cut connection (reset, closed early, idle for the timeout)
 *    is retried with a range request (http-range.ts) after 1, 2, 4, 8 s …
 *    up to `maxRetries` attempts in a row that bring no byte; a first
 *    request that gets no answer or an HTTP error is not retried: that is
 *    the user's URL to fix (exit 2). A download that gives up keeps its
 *    partial file for the next run, which resumes it.
 * 4. The SHA-256 of the bytes received is compared with the digest; on a
 *    mismatch the partial file is removed and E_DIGEST raised. Then the
 *    content decides (compression.ts): gzip and xz are decompressed
 *    (decompress.ts), other archives refused; the result is installed as
 *    `sha256-<hex of the bytes received>` (read-only) and the URL's index
 *    updated.
 *
 * Bounded: a file larger than `maxBytes` (default 64 GiB, larger than any
 * distribution's cloud image, raw or compressed) is refused, when its
 * Content-Length says so before a byte is written, else when the body
 * passes the bound (a body with no length that never ends would otherwise
 * fill the disk); so is a compressed download that expands past the bound
 * (a decompression bomb). Such a download is removed, not kept to resume.
 *
 * Progress is reported through `onEvent` (DownloadEvent, also part of a
 * VM's events): `start` for each request that sends data (offset > 0 when
 * resumed; `insecure` for plain HTTP without a digest), `progress` at most
 * every 500 ms and once at the end, `retry` with the reason and the delay,
 * `done` or `cached` with the path and SHA-256, or `failed` (then the
 * error is thrown) once a download has started.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VmnetError } from '../errors.js';
import { blobPath, claimPartial, dropPartial, ensureImageCache, hasBlob, installBlob, readIndex, releasePartial, writeIndex, writePartialMeta, type Partial } from './cache-fs.js';
import { compressionFromMagic, compressionFromName, MAGIC_BYTES, unsupportedMessage } from './compression.js';
import { decompress, requireXz } from './decompress.js';
import { describeNetError, httpGet } from './http-download.js';
import { planResponse, resumeHeaders, validatorOf } from './http-range.js';
import { ProgressMeter } from './progress.js';
import { formatBytes, ImageTooBig } from './size.js';
import { formatDigest, parseImageUrl, urlKey } from './source.js';

/** A download's progress, as an event (NDJSON in `vmnet run --json`). */
export interface DownloadEvent {
  event: 'download';
  time: string;
  phase: 'start' | 'progress' | 'retry' | 'done' | 'cached' | 'failed';
  url: string;
  /** Bytes of the file so far (start: where this request starts). */
  bytes: number;
  /** The file's size when known. */
  total: number | null;
  /** start: a resumed request (bytes > 0). */
  resumed?: boolean;
  /** start: plain HTTP somewhere on the way and no digest: nothing authenticates the image. */
  insecure?: boolean;
  /** progress: bytes per second over the last seconds. */
  rateBps?: number;
  /** progress: seconds left, when known. */
  etaS?: number | null;
  /** retry: what happened, and when the next request goes out; failed: why the download ended (the error follows). */
  reason?: string;
  retryInMs?: number;
  /** done, cached: the image in the cache and the SHA-256 of the bytes downloaded. */
  path?: string;
  sha256?: string;
  /** done: the download was compressed and has been decompressed. */
  decompressed?: 'gzip' | 'xz';
}

export interface FetchOptions {
  /** The SHA-256 (hex) the downloaded bytes must have. */
  digest?: string | null;
  /** Where that digest comes from, for the mismatch message (default --digest). */
  digestFrom?: string;
  /** XDG_CACHE_HOME / HOME (the cache) and PATH (xz). */
  env?: NodeJS.ProcessEnv;
  onEvent?: (e: DownloadEvent) => void;
  signal?: AbortSignal;
  /** Attempts in a row without a byte before giving up (default 5). */
  maxRetries?: number;
  /** First delay before a retry, doubled each time up to 16×, ms (default 1000). */
  retryDelayMs?: number;
  /** No byte for this long is a dropped connection, ms (default 30000). */
  idleTimeoutMs?: number;
  /** Least time between progress events, ms (default 500). */
  progressIntervalMs?: number;
  /** The most bytes downloaded, and the most a compressed download may expand to (default 64 GiB). */
  maxBytes?: number;
}

/** The default of `maxBytes`. */
export const MAX_IMAGE_BYTES = 64 * 2 ** 30;


/** A verified image in the cache. */
export interface FetchedImage {
  path: string;
  /** SHA-256 of the bytes downloaded (what --digest names). */
  sha256: string;
  url: string;
  /** True when no byte was downloaded. */
  cached: boolean;
}

const time = (): string => new Date().toISOString();
const CHUNK_HASH = 1 << 20;

/** Hashes the first `n` bytes of a file (a partial download being resumed). */
async function hashPrefix(path: string, n: number, hash: ReturnType<typeof createHash>): Promise<void> {
  if (n === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: n - 1, highWaterMark: CHUNK_HASH })) hash.update(chunk as Buffer);
}

/** The first bytes of a file. */
async function head(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(MAGIC_BYTES);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Makes sure the image at `url` is in the cache, downloading (or resuming) it if needed.
 * @param urlText an http or https URL
 * @param o digest, environment, events, cancel signal, retry knobs
 * @returns the cached image
 * @throws VmnetError E_USAGE (bad URL), E_DOWNLOAD (no answer, HTTP error, cut off too often: the
 *   latter is not a usage error), E_DIGEST (wrong bytes: removed), E_BAD_IMAGE (an archive or a
 *   compression vmnet does not unpack); the signal's reason when cancelled (the partial file is kept)
 */
export async function fetchImage(urlText: string | URL, o: FetchOptions = {}): Promise<FetchedImage> {
  const url = parseImageUrl(String(urlText));
  const env = o.env ?? process.env;
  const emit = o.onEvent ?? (() => undefined);
  const byName = compressionFromName(url.pathname);
  if (byName && byName.kind !== 'gzip' && byName.kind !== 'xz') throw new VmnetError('E_BAD_IMAGE', unsupportedMessage(byName.kind, url.href));
  if (byName?.kind === 'xz') requireXz(url.href, env);
  const cacheDir = ensureImageCache(env);
  const key = urlKey(url);
  const cached = async (sha256: string): Promise<FetchedImage> => {
    const path = blobPath(cacheDir, sha256);
    emit({ event: 'download', time: time(), phase: 'cached', url: url.href, bytes: 0, total: null, path, sha256 });
    return { path, sha256, url: url.href, cached: true };
  };
  const digest = o.digest ?? null;
  if (digest !== null && (await hasBlob(cacheDir, digest))) return cached(digest);
  const index = await readIndex(cacheDir, key);
  if (digest === null && index && index.url === url.href && (await hasBlob(cacheDir, index.sha256))) return cached(index.sha256);

  const partial = await claimPartial(cacheDir, key);
  let keep = true;
  let done = false;
  try {
    const got = await download(url, partial, o, emit);
    if (digest !== null && got.sha256 !== digest) {
      keep = false;
      throw new VmnetError('E_DIGEST', `${url.href} is not the expected image (${o.digestFrom ?? '--digest'}): expected ${formatDigest(digest)}, got ${formatDigest(got.sha256)} (${formatBytes(got.size)}); the download was removed`);
    }
    let file = partial.data;
    const kind = compressionFromMagic(await head(partial.data));
    if (kind === 'gzip' || kind === 'xz') {
      file = join(partial.dir, 'image');
      await rm(file, { force: true }); // left by a run that died while decompressing
      await decompress(kind, partial.data, file, url.href, { env, maxBytes: o.maxBytes ?? MAX_IMAGE_BYTES, ...(o.signal ? { signal: o.signal } : {}) });
    }
    const inner = kind === 'gzip' || kind === 'xz' ? compressionFromMagic(await head(file)) : kind;
    if (inner !== null) {
      keep = false;
      throw new VmnetError('E_BAD_IMAGE', `${unsupportedMessage(inner, url.href)}; the download was removed`);
    }
    const path = await installBlob(cacheDir, got.sha256, file);
    await writeIndex(cacheDir, key, { url: url.href, sha256: got.sha256, size: got.size, validator: partial.meta?.validator ?? { etag: null, lastModified: null }, fetchedAt: Date.now() });
    keep = false;
    done = true;
    emit({ event: 'download', time: time(), phase: 'done', url: url.href, bytes: got.size, total: got.size, path, sha256: got.sha256, ...(kind === 'gzip' || kind === 'xz' ? { decompressed: kind } : {}) });
    return { path, sha256: got.sha256, url: url.href, cached: false };
  } catch (e) {
    if (e instanceof ImageTooBig) keep = false;
    if (!done) emit({ event: 'download', time: time(), phase: 'failed', url: url.href, bytes: 0, total: null, reason: e instanceof Error ? e.message : String(e) });
    throw e;
  } finally {
    if (keep) await releasePartial(partial, key);
    else await dropPartial(partial);
  }
}

/** The bytes of a download as it goes: file, hash, count. */
interface Sink {
  fh: FileHandle;
  hash: ReturnType<typeof createHash>;
  have: number;
}

/** Empties the partial file and starts the hash afresh. */
async function truncate(sink: Sink): Promise<void> {
  await sink.fh.truncate(0);
  sink.hash = createHash('sha256');
  sink.have = 0;
}

/** An attempt that failed in a way worth another: `now` skips the delay (the next request differs). */
class Retry extends Error {
  constructor(
    message: string,
    readonly now = false,
  ) {
    super(message);
  }
}

/**
 * Downloads `url` into the partial directory, resuming what it holds.
 * @returns the SHA-256 and size of the whole file
 */
async function download(url: URL, partial: Partial, o: FetchOptions, emit: (e: DownloadEvent) => void): Promise<{ sha256: string; size: number }> {
  const maxRetries = o.maxRetries ?? 5;
  const baseDelay = o.retryDelayMs ?? 1000;
  // Positioned writes: not O_APPEND, which Linux pwrite(2) would ignore the position for.
  const fh = await open(partial.data, constants.O_RDWR | constants.O_CREAT, 0o600);
  const sink: Sink = { fh, hash: createHash('sha256'), have: 0 };
  const state = { total: partial.meta?.total ?? null, noRange: false, answered: false };
  const meter = new ProgressMeter(state.total, 0, Date.now(), { intervalMs: o.progressIntervalMs ?? 500 });
  try {
    // A partial file of another URL (a key collision) is not resumed.
    if (partial.size > 0 && partial.meta?.url === url.href) {
      await hashPrefix(partial.data, partial.size, sink.hash);
      sink.have = partial.size;
    } else await truncate(sink);
    let failures = 0;
    for (;;) {
      const before = sink.have;
      try {
        const done = await attempt(url, partial, sink, state, meter, o, emit);
        if (done) return { sha256: sink.hash.digest('hex'), size: sink.have };
        throw new Retry(`the connection closed at ${formatBytes(sink.have)} of ${formatBytes(state.total ?? 0)}`);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : e;
        if (e instanceof VmnetError) throw e;
        // Anything else broke the body: a reset, an early close, the idle timeout.
        const retry = e instanceof Retry ? e : new Retry(describeNetError(e, url));
        failures = sink.have > before ? 1 : failures + 1;
        if (failures > maxRetries) {
          throw new VmnetError('E_DOWNLOAD', `the download of ${url.href} stopped at ${formatBytes(sink.have)}${state.total !== null ? ` of ${formatBytes(state.total)}` : ''} (${retry.message}) ${maxRetries + 1} times in a row; run again to resume it`, { usage: false });
        }
        const delay = retry.now ? 0 : baseDelay * 2 ** Math.min(failures - 1, 4);
        emit({ event: 'download', time: time(), phase: 'retry', url: url.href, bytes: sink.have, total: state.total, reason: retry.message, retryInMs: delay });
        if (delay > 0) {
          await sleep(delay, undefined, o.signal ? { signal: o.signal } : {}).catch((x: unknown) => {
            throw o.signal?.reason instanceof Error ? o.signal.reason : x;
          });
        }
      }
    }
  } finally {
    await fh.close();
  }
}

/**
 * One request and its body.
 * @returns true when the file is whole; false when the body ended early
 * @throws Retry, a VmnetError (fatal), or the body's stream error (retried)
 */
async function attempt(
  url: URL,
  partial: Partial,
  sink: Sink,
  state: { total: number | null; noRange: boolean; answered: boolean },
  meter: ProgressMeter,
  o: FetchOptions,
  emit: (e: DownloadEvent) => void,
): Promise<boolean> {
  const headers = state.noRange ? {} : resumeHeaders(sink.have, partial.meta?.validator ?? null);
  const ranged = 'range' in headers;
  if (!ranged && sink.have > 0) await truncate(sink);
  let got;
  try {
    got = await httpGet(url, { headers, ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  } catch (e) {
    // No answer: the user's URL on the first request; a passing failure once the server has answered.
    if (state.answered && e instanceof VmnetError && e.cause !== undefined) throw new Retry(e.message.replace(/^cannot download \S+: /, ''));
    throw e;
  }
  const { res, chain } = got;
  const plan = planResponse(res.statusCode ?? 0, res.headers, sink.have, ranged);
  if (plan.kind === 'error' || plan.kind === 'start-over' || plan.kind === 'complete') res.destroy();
  if (plan.kind === 'error') {
    const status = `HTTP ${plan.status}${res.statusMessage ? ` ${res.statusMessage.slice(0, 60)}` : ''}`;
    // A server error after the download began may pass; anything else is the URL's answer.
    if (state.answered && plan.status >= 500) throw new Retry(status);
    throw new VmnetError('E_DOWNLOAD', `cannot download ${url.href}: ${status}`);
  }
  state.answered = true;
  if (plan.kind === 'start-over') {
    state.noRange = true;
    throw new Retry(plan.why, true);
  }
  state.noRange = false;
  if (plan.kind === 'complete') return true;
  if (plan.kind === 'restart') {
    if (sink.have > 0) await truncate(sink);
    await writePartialMeta(partial, { url: url.href, validator: validatorOf(res.headers), total: plan.total });
  } else if (plan.total !== null && partial.meta) {
    partial.meta.total = plan.total;
  }
  const max = o.maxBytes ?? MAX_IMAGE_BYTES;
  if (plan.total !== null && plan.total > max) {
    res.destroy();
    throw new ImageTooBig(`${url.href} is ${formatBytes(plan.total)}, more than ${formatBytes(max)}, the most vmnet downloads (maxBytes)`);
  }
  state.total = plan.total;
  meter.reset(state.total, sink.have, Date.now());
  const insecure = o.digest == null && chain.some((u) => u.protocol === 'http:');
  emit({ event: 'download', time: time(), phase: 'start', url: url.href, bytes: sink.have, total: state.total, resumed: sink.have > 0, ...(insecure ? { insecure } : {}) });
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (sink.have + chunk.length > max) {
      res.destroy();
      throw new ImageTooBig(`${url.href} sent more than ${formatBytes(max)}, the most vmnet downloads (maxBytes)`);
    }
    try {
      await sink.fh.write(chunk, 0, chunk.length, sink.have);
    } catch (e) {
      res.destroy();
      throw new VmnetError('E_DOWNLOAD', `cannot write the download of ${url.href} to the cache: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { usage: false });
    }
    sink.hash.update(chunk);
    sink.have += chunk.length;
    if (meter.update(sink.have, Date.now())) emit({ event: 'download', time: time(), phase: 'progress', url: url.href, ...meter.snapshot(Date.now()) });
  }
  if (state.total !== null && sink.have > state.total) {
    state.noRange = true;
    throw new Retry(`the server sent more than the ${state.total} bytes it announced`, true);
  }
  if (state.total !== null && sink.have < state.total) return false;
  emit({ event: 'download', time: time(), phase: 'progress', url: url.href, ...meter.snapshot(Date.now()) });
  return true;
}
