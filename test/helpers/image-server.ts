/**
 * A local HTTP server (127.0.0.1 only) that serves image files the way the
 * download tests need: with or without range support and validators, cutting
 * the connection after N bytes of chosen responses, redirecting, slowing
 * down, answering with an error status; every request is logged with the
 * headers that matter for resuming.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  body: Buffer;
  /** Sent as ETag (default: a strong tag from the content); null: none. */
  etag?: string | null;
  /** Sent as Last-Modified (default none). */
  lastModified?: string | null;
  /** Honour Range requests (default true). */
  ranges?: boolean;
  /** Cut the connection after this many body bytes, for the first `cutTimes` responses (default 1). */
  cutAfter?: number;
  cutTimes?: number;
  /** At the cut, stop sending but keep the connection open (a stalled server) instead of closing it. */
  stall?: boolean;
  /** Pause this long (ms) after each 64 KiB of body (default 0). */
  delayMs?: number;
  /** Answer with this status and no body. */
  status?: number;
  /** Redirect (302) to this path instead. */
  redirect?: string;
  /** Leave out Content-Length (close-delimited body). */
  noLength?: boolean;
}

export interface LoggedRequest {
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
}

export interface ImageServer {
  port: number;
  url(path: string): string;
  files: Map<string, ServedFile>;
  log: LoggedRequest[];
  close(): Promise<void>;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Starts the server on a free loopback port. */
export async function startImageServer(files: Record<string, ServedFile> = {}): Promise<ImageServer> {
  const map = new Map(Object.entries(files));
  const log: LoggedRequest[] = [];
  const served = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const f = map.get(path);
    const entry: LoggedRequest = { path, range: req.headers.range ?? null, ifRange: (req.headers['if-range'] as string | undefined) ?? null, status: 0 };
    log.push(entry);
    const answer = (status: number, headers: http.OutgoingHttpHeaders = {}) => {
      entry.status = status;
      res.writeHead(status, headers);
    };
    if (!f) {
      answer(404, { 'content-length': 0 });
      return res.end();
    }
    if (f.redirect) {
      answer(302, { location: f.redirect, 'content-length': 0 });
      return res.end();
    }
    if (f.status) {
      answer(f.status, { 'content-length': 0 });
      return res.end();
    }
    const etag = f.etag === undefined ? `"${sha256(f.body).slice(0, 16)}"` : f.etag;
    const validators: http.OutgoingHttpHeaders = { ...(etag ? { etag } : {}), ...(f.lastModified ? { 'last-modified': f.lastModified } : {}) };
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const fresh = ifRange === undefined || ifRange === etag || ifRange === f.lastModified;
    if (m && (f.ranges ?? true) && fresh) {
      start = Number(m[1]);
      if (start >= f.body.length) {
        answer(416, { 'content-range': `bytes */${f.body.length}`, 'content-length': 0 });
        return res.end();
      }
      status = 206;
    }
    const body = f.body.subarray(start);
    answer(status, {
      ...validators,
      'accept-ranges': (f.ranges ?? true) ? 'bytes' : 'none',
      ...(f.noLength ? {} : { 'content-length': body.length }),
      ...(status === 206 ? { 'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}` } : {}),
    });
    const n = (served.get(path) ?? 0) + 1;
    served.set(path, n);
    const cut = f.cutAfter !== undefined && n <= (f.cutTimes ?? 1) ? f.cutAfter - start : Infinity;
    void (async () => {
      const step = 64 * 1024;
      for (let at = 0; at < body.length; at += step) {
        const piece = body.subarray(at, Math.min(body.length, at + step, at + Math.max(0, cut - at)));
        if (piece.length && !res.write(piece)) await new Promise((r) => res.once('drain', r));
        if (at + step >= cut) {
          if (f.stall) return; // the client gives up on its own (server.close() ends it)
          // Let the bytes leave, then cut the connection mid-body.
          await new Promise((r) => setTimeout(r, 20));
          res.socket?.destroy();
          return;
        }
        if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
      }
      res.end();
    })().catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    files: map,
    log,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
