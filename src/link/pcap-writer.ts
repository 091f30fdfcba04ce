/**
 * Theory of operation: a buffered libpcap capture writer.
 *
 * Format: classic libpcap ("tcpdump") files, as specified by
 * draft-ietf-opsawg-pcap and pcap-savefile(5). A 24-byte file header (magic,
 * version 2.4, thiszone 0, sigfigs 0, snaplen, link type) is followed by one
 * record per frame: a 16-byte record header (seconds, microseconds,
 * captured length, original length) and the captured bytes. We write:
 * - magic 0xa1b2c3d4, i.e. microsecond timestamps, which every reader
 *   understands (the nanosecond variant 0xa1b23c4d buys nothing for a
 *   gateway whose clock source is `Date.now()`/`performance` milliseconds);
 * - little-endian fields, explicitly (readers detect byte order from the
 *   magic, so the choice is free; fixing it makes files reproducible);
 * - LINKTYPE_ETHERNET (1): the frames are exactly what crosses the QEMU
 *   stream, without the 4-byte length prefix;
 * - snaplen 65535 by default (tcpdump's classic value); longer frames are
 *   truncated to snaplen and keep their real length in `orig_len`.
 *
 * Buffering: capture must not cost a syscall per frame. Records are appended
 * into a preallocated chunk (256 KiB by default) through one DataView per
 * chunk; a chunk is handed to the sink when full, on a short unref'd timer
 * (so a quiet link still shows up in the file promptly), or on close. Writes
 * are strictly sequential, one in flight at a time (concurrent positionless
 * `fs.write` calls could reorder). A chunk is reused only after its write
 * completed. If the sink falls behind by `maxChunks` chunks, new records are
 * dropped and counted rather than buffered without bound: capture is a
 * diagnostic and must never stall or bloat the data path.
 *
 * The sink is a file descriptor or a Writable (e.g. `fs.createWriteStream`);
 * {@link openPcap} opens a path (mode 0600: captures hold guest traffic;
 * never through a planted symlink, see user-file.ts).
 */

import { close as fsClose, write as fsWrite } from 'node:fs';
import type { Writable } from 'node:stream';
import { VmnetError } from '../errors.js';
import { openUserFile } from './user-file.js';

/** Magic number of microsecond-resolution pcap files. */
export const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
/** LINKTYPE_ETHERNET: IEEE 802.3 frames starting at the destination MAC. */
export const LINKTYPE_ETHERNET = 1;
/** Bytes of the pcap file header. */
export const FILE_HEADER_LEN = 24;
/** Bytes of a pcap record header. */
export const RECORD_HEADER_LEN = 16;
/** Default snapshot length. */
export const DEFAULT_SNAPLEN = 65535;

/**
 * Writes the 24-byte pcap file header (little-endian, microsecond magic).
 * @returns {@link FILE_HEADER_LEN}
 */
export function writeFileHeader(view: DataView, off: number, snaplen: number, linktype: number = LINKTYPE_ETHERNET): number {
  view.setUint32(off, PCAP_MAGIC_MICROS, true);
  view.setUint16(off + 4, 2, true); // version_major
  view.setUint16(off + 6, 4, true); // version_minor
  view.setInt32(off + 8, 0, true); // thiszone: UTC
  view.setUint32(off + 12, 0, true); // sigfigs
  view.setUint32(off + 16, snaplen, true);
  view.setUint32(off + 20, linktype, true);
  return FILE_HEADER_LEN;
}

/**
 * Writes a 16-byte pcap record header.
 * @param timeMs capture time in milliseconds since the Unix epoch (fractions kept to the microsecond)
 * @param inclLen bytes of the frame stored in the file
 * @param origLen bytes of the frame on the wire
 * @returns {@link RECORD_HEADER_LEN}
 */
export function writeRecordHeader(view: DataView, off: number, timeMs: number, inclLen: number, origLen: number): number {
  const t = timeMs > 0 ? timeMs : 0;
  const sec = Math.floor(t / 1000);
  let usec = Math.floor((t - sec * 1000) * 1000);
  if (usec > 999_999) usec = 999_999;
  view.setUint32(off, sec >>> 0, true);
  view.setUint32(off + 4, usec, true);
  view.setUint32(off + 8, inclLen, true);
  view.setUint32(off + 12, origLen, true);
  return RECORD_HEADER_LEN;
}

/** Options of {@link PcapWriter}. */
export interface PcapWriterOptions {
  /** Snapshot length; longer frames are truncated. Default {@link DEFAULT_SNAPLEN}. */
  snaplen?: number;
  /** Bytes per buffer chunk (raised to fit one full record). Default 256 KiB. */
  chunkSize?: number;
  /** Chunks that may wait for the sink before records are dropped. Default 8. */
  maxChunks?: number;
  /** Flush a partly filled chunk this long after its first record. Default 200 ms. */
  flushIntervalMs?: number;
  /** Close the fd / end the stream in {@link PcapWriter.close}. Default true. */
  closeSink?: boolean;
}

/** Running totals of a writer. */
export interface PcapCounters {
  /** Records appended. */
  records: number;
  /** Captured bytes appended (after snaplen truncation). */
  bytes: number;
  /** Records dropped because the sink fell behind or failed. */
  dropped: number;
  /** Writes issued to the sink (chunks), for tests and diagnostics. */
  writes: number;
}

interface Chunk {
  readonly buf: Buffer;
  readonly view: DataView;
  used: number;
}

/**
 * Appends Ethernet frames to a pcap file through a chunk buffer.
 *
 * ```ts
 * const pcap = await openPcap('/tmp/vm.pcap');
 * port.onFrame = (buf, view, off, len) => { pcap.record(buf, off, len, Date.now()); ... };
 * await pcap.close();
 * ```
 */
export class PcapWriter {
  /** Running totals; read freely. */
  readonly counters: PcapCounters = { records: 0, bytes: 0, dropped: 0, writes: 0 };
  /** The snapshot length written in the header. */
  readonly snaplen: number;

  readonly #sink: number | Writable;
  readonly #chunkSize: number;
  readonly #maxChunks: number;
  readonly #closeSink: boolean;
  readonly #flushIntervalMs: number;
  readonly #free: Chunk[] = [];
  readonly #queue: Chunk[] = [];
  #chunks = 0;
  #cur: Chunk | null;
  #inFlight: Chunk | null = null;
  #timer: NodeJS.Timeout | null = null;
  #timerArmed = false;
  #error: Error | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  #idle: (() => void) | null = null;

  /**
   * Writes the file header into the first chunk (it reaches the sink with
   * the first flush).
   * @param sink an open, writable file descriptor, or a Writable stream
   * @param options see {@link PcapWriterOptions}
   */
  constructor(sink: number | Writable, options: PcapWriterOptions = {}) {
    this.#sink = sink;
    this.snaplen = options.snaplen ?? DEFAULT_SNAPLEN;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1 || this.snaplen > 0x7fffffff) {
      throw new VmnetError('E_USAGE', `bad pcap snaplen ${this.snaplen}`);
    }
    this.#chunkSize = Math.max(options.chunkSize ?? 256 * 1024, FILE_HEADER_LEN + RECORD_HEADER_LEN + this.snaplen);
    this.#maxChunks = Math.max(2, options.maxChunks ?? 8);
    this.#flushIntervalMs = options.flushIntervalMs ?? 200;
    this.#closeSink = options.closeSink ?? true;
    const first = this.#newChunk();
    first.used = writeFileHeader(first.view, 0, this.snaplen);
    this.#cur = first;
    this.#armTimer();
    if (typeof sink !== 'number') sink.on('error', (err: Error) => this.#fail(err));
  }

  /**
   * Appends one frame.
   * @param buf holds the frame; copied, so it may be reused at once
   * @param off frame start in `buf`
   * @param len frame length in bytes (truncated to `snaplen` in the file)
   * @param timeMs capture time, milliseconds since the Unix epoch
   * @returns false when the record was dropped (sink behind or failed)
   * @throws VmnetError E_CLOSED after {@link close}
   */
  record(buf: Uint8Array, off: number, len: number, timeMs: number): boolean {
    if (this.#closed) throw new VmnetError('E_CLOSED', 'pcap writer is closed');
    if (this.#error !== null) {
      this.counters.dropped++;
      return false;
    }
    const incl = len < this.snaplen ? len : this.snaplen;
    const need = RECORD_HEADER_LEN + incl;
    let c = this.#cur;
    if (c !== null && c.used + need > c.buf.length) {
      this.flush();
      c = null;
    }
    if (c === null) {
      c = this.#takeChunk();
      if (c === null) {
        this.counters.dropped++;
        return false;
      }
      this.#cur = c;
    }
    if (c.used === 0) this.#armTimer();
    const at = c.used;
    writeRecordHeader(c.view, at, timeMs, incl, len);
    if (incl < 64) {
      for (let i = 0; i < incl; i++) c.buf[at + RECORD_HEADER_LEN + i] = buf[off + i] as number;
    } else {
      c.buf.set(buf.subarray(off, off + incl), at + RECORD_HEADER_LEN);
    }
    c.used = at + need;
    this.counters.records++;
    this.counters.bytes += incl;
    return true;
  }

  /** Hands the current chunk to the sink now, if it holds anything. */
  flush(): void {
    const c = this.#cur;
    if (c === null || c.used === 0) return;
    this.#cur = null;
    this.#queue.push(c);
    this.#pump();
  }

  /**
   * Flushes everything, waits until the sink has it, and closes the sink
   * (unless `closeSink: false`). Idempotent.
   * @throws the first write error of the sink, if any
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.flush();
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#inFlight !== null || this.#queue.length > 0) {
      await new Promise<void>((resolve) => (this.#idle = resolve));
    }
    if (this.#closeSink) {
      const sink = this.#sink;
      await new Promise<void>((resolve) => {
        if (typeof sink === 'number') {
          fsClose(sink, (err) => {
            if (err) this.#fail(err);
            resolve();
          });
        } else if (sink.writableEnded || sink.destroyed) {
          resolve();
        } else {
          sink.end(() => resolve());
          sink.once('error', () => resolve());
        }
      });
    }
    if (this.#error !== null) throw this.#error;
  }

  #newChunk(): Chunk {
    const buf = Buffer.allocUnsafeSlow(this.#chunkSize);
    this.#chunks++;
    return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength), used: 0 };
  }

  #takeChunk(): Chunk | null {
    const c = this.#free.pop();
    if (c !== undefined) {
      c.used = 0;
      return c;
    }
    return this.#chunks < this.#maxChunks ? this.#newChunk() : null;
  }

  #armTimer(): void {
    if (this.#timerArmed || this.#closed) return;
    this.#timerArmed = true;
    if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
      this.#timer.unref();
    } else {
      this.#timer.refresh();
    }
  }

  readonly #onTimer = (): void => {
    this.#timerArmed = false;
    this.flush();
  };

  #pump(): void {
    if (this.#inFlight !== null) return;
    const c = this.#queue.shift();
    if (c === undefined) {
      const idle = this.#idle;
      this.#idle = null;
      idle?.();
      return;
    }
    if (this.#error !== null) {
      // The sink failed: discard what was queued.
      this.#release(c);
      this.#pump();
      return;
    }
    this.#inFlight = c;
    this.counters.writes++;
    const sink = this.#sink;
    if (typeof sink === 'number') this.#writeFd(sink, c, 0);
    else sink.write(c.buf.subarray(0, c.used), this.#afterWrite);
  }

  #writeFd(fd: number, c: Chunk, from: number): void {
    fsWrite(fd, c.buf, from, c.used - from, null, (err, written) => {
      if (err === null && from + written < c.used) {
        this.#writeFd(fd, c, from + written); // short write: finish this chunk first
        return;
      }
      this.#afterWrite(err);
    });
  }

  readonly #afterWrite = (err?: Error | null): void => {
    if (err) this.#fail(err);
    const c = this.#inFlight;
    this.#inFlight = null;
    if (c !== null) this.#release(c);
    this.#pump();
  };

  #release(c: Chunk): void {
    c.used = 0;
    this.#free.push(c);
  }

  #fail(err: Error): void {
    this.#error ??= err;
  }
}

/**
 * Creates (or truncates) a pcap file at `path`, mode 0600, and returns a
 * writer that owns the descriptor. A symlink at `path` is not followed and
 * only a regular file of the user is truncated (user-file.ts); a FIFO gets
 * the capture as a stream.
 * @throws VmnetError E_NO_FILE when the file cannot be created or may not be written
 */
export async function openPcap(path: string, options: Omit<PcapWriterOptions, 'closeSink'> = {}): Promise<PcapWriter> {
  const fd = await openUserFile(path, 'truncate', 'pcap file');
  return new PcapWriter(fd, { ...options, closeSink: true });
}
