import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { freePort } from '../../test/helpers/ports.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { sha256, startImageServer, type ImageServer } from '../../test/helpers/image-server.js';
import { fetchImage, type DownloadEvent, type FetchOptions } from './download.js';

const SIZE = 3 * 1024 * 1024 + 123;
let srv: ImageServer;
beforeAll(async () => {
  srv = await startImageServer();
});
afterAll(() => srv.close());

/** A fresh cache, a fresh file on the server, and a fetch that records its events. */
function setup(path: string, file: Partial<Parameters<ImageServer['files']['set']>[1]> = {}) {
  const body = file.body ?? randomBytes(SIZE);
  srv.files.set(path, { ...file, body });
  const cache = privateTmp('vmnet-dl-');
  const env = { ...process.env, XDG_CACHE_HOME: cache };
  const images = join(cache, 'vmnet', 'images');
  const events: DownloadEvent[] = [];
  const fetch = (o: FetchOptions = {}) => fetchImage(srv.url(path), { env, retryDelayMs: 10, onEvent: (e) => events.push(e), ...o });
  const requests = () => srv.log.filter((r) => r.path === path);
  const leftovers = () => readdirSync(images).filter((n) => !n.startsWith('sha256-') && !n.endsWith('.json'));
  return { body, env, images, events, fetch, requests, leftovers, digest: sha256(body) };
}

describe('fetchImage: download and cache', () => {
  it('downloads once into sha256-<hex> (read-only, private directory), with start/progress/done events; the next fetch is a cache hit', async () => {
    const t = setup('/plain.qcow2');
    const got = await t.fetch();
    expect(got).toMatchObject({ sha256: t.digest, cached: false, path: join(t.images, `sha256-${t.digest}`) });
    expect(sha256(readFileSync(got.path))).toBe(t.digest);
    expect(statSync(got.path).mode & 0o777).toBe(0o444);
    expect(statSync(t.images).mode & 0o777).toBe(0o700);
    expect(statSync(join(t.images, '..')).mode & 0o777).toBe(0o700);
    const phases = t.events.map((e) => e.phase);
    expect(phases[0]).toBe('start');
    expect(phases.at(-1)).toBe('done');
    expect(t.events.filter((e) => e.phase === 'progress').at(-1)).toMatchObject({ bytes: SIZE, total: SIZE });
    expect(t.events[0]).toMatchObject({ bytes: 0, total: SIZE, resumed: false, insecure: true });
    expect(t.leftovers()).toEqual([]);
    const n = t.requests().length;
    t.events.length = 0;
    const again = await t.fetch();
    expect(again).toMatchObject({ cached: true, path: got.path });
    expect(t.events.map((e) => e.phase)).toEqual(['cached']);
    expect(t.requests().length).toBe(n); // no request at all
    // With the digest: a hit by content, whatever URL names it.
    expect((await fetchImage(srv.url('/nowhere'), { env: t.env, digest: t.digest })).cached).toBe(true);
  });

  it('a digest is checked: the right one passes (no insecure flag); a wrong one removes the download and is a usage error', async () => {
    const t = setup('/digest.img');
    const wrong = 'f'.repeat(64);
    const err = (await t.fetch({ digest: wrong }).catch((e: unknown) => e)) as Error & { code: string; usage: boolean };
    expect(err).toMatchObject({ code: 'E_DIGEST', usage: true });
    expect(err.message).toMatch(new RegExp(`expected sha256:${wrong}, got sha256:${t.digest} .*; the download was removed$`));
    expect(readdirSync(t.images)).toEqual([]); // no file, no partial, no index
    expect(t.events.at(-1)).toMatchObject({ phase: 'failed', reason: err.message });
    t.events.length = 0;
    const got = await t.fetch({ digest: t.digest });
    expect(got.sha256).toBe(t.digest);
    expect(t.events[0]).not.toHaveProperty('insecure');
  });
});

describe('fetchImage: resume', () => {
  it('a connection cut halfway is resumed with Range + If-Range (206), and the file is whole', async () => {
    const t = setup('/cut.qcow2', { cutAfter: Math.floor(SIZE / 2) });
    const got = await t.fetch();
    expect(got.sha256).toBe(t.digest);
    const [first, second] = t.requests();
    expect(first).toMatchObject({ range: null, status: 200 });
    expect(second!.range).toMatch(/^bytes=\d+-$/);
    const from = Number(/\d+/.exec(second!.range!)![0]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(Math.floor(SIZE / 2));
    expect(second).toMatchObject({ ifRange: `"${t.digest.slice(0, 16)}"`, status: 206 });
    const retry = t.events.find((e) => e.phase === 'retry')!;
    expect(retry.reason).toMatch(/reset|closed/);
    expect(t.events.filter((e) => e.phase === 'start').at(-1)).toMatchObject({ resumed: true, bytes: from, total: SIZE });
  });

  it('a server that stops sending mid-body (connection left open) is given up on after the idle timeout and resumed', async () => {
    const t = setup('/stall.qcow2', { cutAfter: SIZE >> 1, stall: true });
    const got = await t.fetch({ idleTimeoutMs: 300 });
    expect(got.sha256).toBe(t.digest);
    expect(t.requests().map((r) => r.status)).toEqual([200, 206]);
    expect(t.events.find((e) => e.phase === 'retry')).toBeDefined();
  });

  it('Last-Modified serves as the validator without an ETag; a weak ETag alone is not used (the retry starts over)', async () => {
    const lm = 'Mon, 01 Jan 2024 00:00:00 GMT';
    const a = setup('/lm.qcow2', { etag: null, lastModified: lm, cutAfter: SIZE >> 1 });
    expect((await a.fetch()).sha256).toBe(a.digest);
    expect(a.requests()[1]).toMatchObject({ ifRange: lm, status: 206 });
    const b = setup('/weak.qcow2', { etag: 'W/"x"', cutAfter: SIZE >> 1 });
    expect((await b.fetch()).sha256).toBe(b.digest);
    expect(b.requests()[1]).toMatchObject({ range: null, status: 200 });
  });

  it('a server that ignores Range: the retry gets 200 and the file is written from byte 0', async () => {
    const t = setup('/norange.qcow2', { ranges: false, cutAfter: SIZE >> 1 });
    const got = await t.fetch();
    expect(got.sha256).toBe(t.digest);
    expect(t.requests().map((r) => [r.range !== null, r.status])).toEqual([
      [false, 200],
      [true, 200],
    ]);
    expect(t.events.filter((e) => e.phase === 'start').at(-1)).toMatchObject({ resumed: false, bytes: 0 });
  });

  it('If-Range with a changed ETag: the server sends the new file whole, which replaces the partial one', async () => {
    const t = setup('/changing.qcow2', { cutAfter: SIZE >> 1 });
    const next = randomBytes(SIZE + 1000);
    const got = await t.fetch({
      onEvent: (e) => {
        // The first response was cut: the file changes upstream before the retry.
        if (e.phase === 'retry') srv.files.set('/changing.qcow2', { body: next });
      },
    });
    expect(got.sha256).toBe(sha256(next));
    expect(sha256(readFileSync(got.path))).toBe(sha256(next));
    expect(t.requests()[1]).toMatchObject({ ifRange: `"${t.digest.slice(0, 16)}"`, status: 200 });
  });

  it('a download that gives up keeps its partial file; the next fetch (another process, or this one) resumes it', async () => {
    const t = setup('/giveup.qcow2', { cutAfter: SIZE >> 1, cutTimes: 1 });
    const err = (await t.fetch({ maxRetries: 0 }).catch((e: unknown) => e)) as Error & { code: string; usage: boolean };
    expect(err).toMatchObject({ code: 'E_DOWNLOAD', usage: false });
    expect(err.message).toMatch(/stopped at .* of 3\.0 MiB .* 1 times in a row; run again to resume it$/);
    expect(t.leftovers()).toHaveLength(1);
    expect(t.leftovers()[0]).toMatch(/^url-[0-9a-f]{32}\.0-0-[0-9a-f]+\.partial$/);
    const got = await t.fetch();
    expect(got.sha256).toBe(t.digest);
    expect(t.requests()[1]).toMatchObject({ status: 206 });
    expect(t.leftovers()).toEqual([]);
  });

  it('a cancel keeps the partial file for the next run', async () => {
    const t = setup('/cancel.qcow2', { delayMs: 20 });
    const ac = new AbortController();
    const p = t.fetch({ signal: ac.signal, onEvent: (e) => e.phase === 'progress' && e.bytes > 0 && ac.abort(new Error('stop')) , progressIntervalMs: 0 });
    await expect(p).rejects.toThrow('stop');
    expect(t.leftovers()).toHaveLength(1);
    srv.files.get('/cancel.qcow2')!.delayMs = 0;
    const got = await t.fetch();
    expect(got.sha256).toBe(t.digest);
    expect(t.requests().at(-1)).toMatchObject({ status: 206 });
  });
});

describe('fetchImage: size bound (maxBytes)', () => {
  it('a body that does not end (no Content-Length) is stopped at the bound: refused, nothing kept, the connection closed', async () => {
    const t = setup('/endless.img', { noLength: true });
    const err = (await t.fetch({ maxBytes: 1 << 20 }).catch((e: unknown) => e)) as Error & { code: string; usage: boolean };
    expect(err).toMatchObject({ code: 'E_BAD_IMAGE', usage: true });
    expect(err.message).toMatch(/endless\.img sent more than 1\.0 MiB, the most vmnet downloads \(maxBytes\); the download was removed$/);
    expect(readdirSync(t.images)).toEqual([]);
    expect(t.requests().length).toBe(1); // not retried
  });

  it('a Content-Length past the bound is refused before any byte is written', async () => {
    const t = setup('/huge.img');
    const err = (await t.fetch({ maxBytes: 1 << 20 }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err).toMatchObject({ code: 'E_BAD_IMAGE' });
    expect(err.message).toMatch(/huge\.img is 3\.0 MiB, more than 1\.0 MiB, the most vmnet downloads \(maxBytes\); the download was removed$/);
    expect(readdirSync(t.images)).toEqual([]);
  });

  it('a small gzip stream that expands past the bound (a decompression bomb) is refused, nothing kept', async () => {
    const t = setup('/bomb.img.gz', { body: gzipSync(Buffer.alloc(4 << 20)) });
    expect(t.body.length).toBeLessThan(1 << 20);
    const err = (await t.fetch({ maxBytes: 1 << 20 }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err).toMatchObject({ code: 'E_BAD_IMAGE' });
    expect(err.message).toMatch(/bomb\.img\.gz expands to more than 1\.0 MiB, the most vmnet unpacks \(maxBytes\); the download was removed$/);
    expect(readdirSync(t.images)).toEqual([]);
    const x = setup('/bomb.raw.xz', { body: execFileSync('xz', ['-c'], { input: Buffer.alloc(4 << 20) }) });
    await expect(x.fetch({ maxBytes: 1 << 20 })).rejects.toThrow(/bomb\.raw\.xz expands to more than 1\.0 MiB/);
    expect(readdirSync(x.images)).toEqual([]);
  });
});

describe('fetchImage: redirects, errors, concurrency, compression', () => {
  it('follows redirects (bounded)', async () => {
    const t = setup('/final.qcow2');
    srv.files.set('/hop1', { body: Buffer.alloc(0), redirect: '/hop2' });
    srv.files.set('/hop2', { body: Buffer.alloc(0), redirect: srv.url('/final.qcow2') });
    expect((await fetchImage(srv.url('/hop1'), { env: t.env })).sha256).toBe(t.digest);
    srv.files.set('/loop', { body: Buffer.alloc(0), redirect: '/loop' });
    await expect(fetchImage(srv.url('/loop'), { env: t.env })).rejects.toMatchObject({ code: 'E_DOWNLOAD', usage: true, message: expect.stringMatching(/more than 10 redirects$/) });
    srv.files.set('/ftp', { body: Buffer.alloc(0), redirect: 'ftp://127.0.0.1/x' });
    await expect(fetchImage(srv.url('/ftp'), { env: t.env })).rejects.toThrow(/redirected to a ftp URL/);
  });

  it('HTTP errors, refused connections and unknown hosts fail at once as usage errors (no retry)', async () => {
    const t = setup('/x');
    await expect(fetchImage(srv.url('/missing.qcow2'), { env: t.env })).rejects.toMatchObject({ code: 'E_DOWNLOAD', usage: true, message: `cannot download ${srv.url('/missing.qcow2')}: HTTP 404 Not Found` });
    srv.files.set('/err', { body: Buffer.alloc(0), status: 503 });
    await expect(fetchImage(srv.url('/err'), { env: t.env })).rejects.toThrow(/HTTP 503/);
    const closed = await freePort(); // nobody listens there
    await expect(fetchImage(`http://127.0.0.1:${closed}/a.qcow2`, { env: t.env })).rejects.toMatchObject({ code: 'E_DOWNLOAD', usage: true, message: expect.stringMatching(/127\.0\.0\.1:\d+ refused the connection$/) });
    await expect(fetchImage('http://no-such-host.invalid/a.qcow2', { env: t.env })).rejects.toThrow(/cannot resolve host no-such-host\.invalid$/);
    expect(t.leftovers()).toEqual([]);
  });

  it('two concurrent downloads of one URL both finish with the same verified file and leave nothing behind', async () => {
    const t = setup('/concurrent.qcow2', { delayMs: 5 });
    const [a, b] = await Promise.all([t.fetch(), t.fetch()]);
    expect(a.path).toBe(b.path);
    expect(a.sha256).toBe(t.digest);
    expect(sha256(readFileSync(a.path))).toBe(t.digest);
    expect(t.requests().length).toBe(2);
    expect(t.leftovers()).toEqual([]);
  });

  it('gzip and xz are decompressed (the digest names the compressed bytes); tar, zstd and bzip2 are refused with what to do', async () => {
    const raw = randomBytes(200_000);
    const gz = setup('/disk.img.gz', { body: gzipSync(raw) });
    const g = await gz.fetch({ digest: gz.digest });
    expect(g.sha256).toBe(gz.digest);
    expect(sha256(readFileSync(g.path))).toBe(sha256(raw));
    expect(gz.events.at(-1)).toMatchObject({ phase: 'done', decompressed: 'gzip' });
    const xzBody = execFileSync('xz', ['-c'], { input: raw });
    const xz = setup('/disk.raw.xz', { body: xzBody });
    expect(sha256(readFileSync((await xz.fetch()).path))).toBe(sha256(raw));
    // Without the xz tool: refused before any request.
    const n = xz.requests().length;
    await expect(fetchImage(srv.url('/other.raw.xz'), { env: { ...xz.env, PATH: '/nonexistent' } })).rejects.toThrow(/is xz-compressed and the xz tool is not on PATH: install it \(Debian\/Ubuntu: apt-get install xz-utils\)/);
    await expect(fetchImage(srv.url('/debian.tar.xz'), { env: xz.env })).rejects.toThrow(/is a tar archive, not a disk image/);
    expect(srv.log.some((r) => r.path === '/debian.tar.xz')).toBe(false);
    expect(xz.requests().length).toBe(n);
    // By content: a .img that is a tar inside a gzip stream.
    const tar = Buffer.alloc(1024);
    tar.write('ustar', 257);
    const t = setup('/sneaky.img', { body: gzipSync(tar) });
    await expect(t.fetch()).rejects.toThrow(/sneaky\.img is a tar archive.*; the download was removed$/);
    expect(t.leftovers()).toEqual([]);
    expect(existsSync(join(t.images, `sha256-${t.digest}`))).toBe(false);
  });
});
