import { execFile } from 'node:child_process';
import { chmodSync, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVmnetError } from '../errors.js';
import { FILE_HEADER_LEN, LINKTYPE_ETHERNET, PCAP_MAGIC_MICROS, PcapWriter, RECORD_HEADER_LEN, openPcap } from './pcap-writer.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmnet-pcap-'));
  chmodSync(dir, 0o700);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Rec {
  sec: number;
  usec: number;
  incl: number;
  orig: number;
  data: Buffer;
}

/** Minimal reader for the files we write (little-endian, microsecond magic). */
function parsePcap(file: Buffer): { snaplen: number; linktype: number; records: Rec[] } {
  expect(file.readUInt32LE(0)).toBe(PCAP_MAGIC_MICROS);
  expect(file.readUInt16LE(4)).toBe(2);
  expect(file.readUInt16LE(6)).toBe(4);
  const snaplen = file.readUInt32LE(16);
  const linktype = file.readUInt32LE(20);
  const records: Rec[] = [];
  let off = FILE_HEADER_LEN;
  while (off < file.length) {
    const incl = file.readUInt32LE(off + 8);
    records.push({
      sec: file.readUInt32LE(off),
      usec: file.readUInt32LE(off + 4),
      incl,
      orig: file.readUInt32LE(off + 12),
      data: file.subarray(off + RECORD_HEADER_LEN, off + RECORD_HEADER_LEN + incl),
    });
    off += RECORD_HEADER_LEN + incl;
  }
  expect(off).toBe(file.length);
  return { snaplen, linktype, records };
}

/** A broadcast ARP request (42 bytes) plus a padded IPv4/UDP-looking frame: tshark must accept them. */
function arpRequest(i: number): Uint8Array {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6); // dst broadcast
  Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, i & 0xff]).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // htype Ethernet
  f.writeUInt16BE(0x0800, 16); // ptype IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  f.copy(f, 22, 6, 12); // sender MAC
  Buffer.from([10, 0, 2, 15]).copy(f, 28);
  Buffer.from([10, 0, 2, 2]).copy(f, 38);
  return f;
}

const tshark = '/usr/bin/tshark';

describe('PcapWriter', () => {
  it('writes a valid file (header once, records in order) that tshark reads', async () => {
    const path = join(dir, 'a.pcap');
    const pcap = await openPcap(path);
    const t0 = 1_700_000_000_123.456; // ms, with a fraction
    const frames = Array.from({ length: 50 }, (_, i) => arpRequest(i));
    // Frames sit at an offset inside a larger buffer, as on the data path.
    const big = new Uint8Array(4096);
    for (const [i, f] of frames.entries()) {
      big.set(f, 100);
      expect(pcap.record(big, 100, f.length, t0 + i)).toBe(true);
    }
    await pcap.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const { snaplen, linktype, records } = parsePcap(readFileSync(path));
    expect(snaplen).toBe(65535);
    expect(linktype).toBe(LINKTYPE_ETHERNET);
    expect(records.length).toBe(50);
    expect(records[0]).toMatchObject({ sec: 1_700_000_000, usec: 123_456, incl: 42, orig: 42 });
    expect(records[49]).toMatchObject({ sec: 1_700_000_000, usec: 172_456 });
    for (const [i, r] of records.entries()) expect(Buffer.from(frames[i] as Uint8Array).equals(r.data)).toBe(true);
    expect(pcap.counters).toMatchObject({ records: 50, bytes: 50 * 42, dropped: 0, writes: 1 });

    // tshark is part of the install (README); a missing one fails here rather than skipping the check.
    const { stdout } = await promisify(execFile)(tshark, ['-n', '-r', path], { timeout: 60_000 });
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBe(50);
    expect(lines[0]).toMatch(/ARP/);
  });

  it('truncates frames longer than snaplen and keeps the original length', async () => {
    const path = join(dir, 'b.pcap');
    const pcap = await openPcap(path, { snaplen: 100 });
    const frame = new Uint8Array(1500).map((_, i) => i & 0xff);
    pcap.record(frame, 0, 1500, 0);
    pcap.record(frame, 0, 60, 0);
    await pcap.close();
    const { snaplen, records } = parsePcap(readFileSync(path));
    expect(snaplen).toBe(100);
    expect(records.map((r) => [r.incl, r.orig])).toEqual([
      [100, 1500],
      [60, 60],
    ]);
    expect(records[0]?.data.equals(Buffer.from(frame.subarray(0, 100)))).toBe(true);
  });

  it('batches records into few writes, flushing when chunks fill', async () => {
    const writes: number[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        writes.push(chunk.length);
        setImmediate(cb);
      },
    });
    const pcap = new PcapWriter(sink, { chunkSize: 70_000, maxChunks: 64 });
    const frame = new Uint8Array(1500);
    for (let i = 0; i < 1000; i++) pcap.record(frame, 0, 1500, i);
    await pcap.close();
    const total = FILE_HEADER_LEN + 1000 * (RECORD_HEADER_LEN + 1500);
    expect(writes.reduce((a, b) => a + b, 0)).toBe(total);
    expect(pcap.counters.dropped).toBe(0);
    expect(writes.length).toBe(Math.ceil(1000 / Math.floor(70_000 / 1516))); // 46 records per chunk → 22 writes
    expect(sink.writableEnded).toBe(true);
  });

  it('flushes a quiet capture on a short timer, before close', async () => {
    const path = join(dir, 'c.pcap');
    const pcap = new PcapWriter(createWriteStream(path), { flushIntervalMs: 20 });
    pcap.record(arpRequest(1), 0, 42, Date.now());
    const t0 = Date.now();
    while (readFileSyncSafe(path).length < FILE_HEADER_LEN + RECORD_HEADER_LEN + 42) {
      if (Date.now() - t0 > 5000) throw new Error('not flushed by the timer');
      await new Promise((r) => setTimeout(r, 10));
    }
    await pcap.close();
    expect(parsePcap(readFileSync(path)).records.length).toBe(1);
  });

  it('drops and counts records when the sink falls behind, instead of buffering without bound', async () => {
    const pending: Array<() => void> = [];
    const sink = new Writable({
      highWaterMark: 1,
      write(_chunk, _enc, cb) {
        pending.push(() => cb());
      },
    });
    const pcap = new PcapWriter(sink, { chunkSize: 1 << 16, maxChunks: 2 });
    const frame = new Uint8Array(1500);
    let accepted = 0;
    for (let i = 0; i < 500; i++) if (pcap.record(frame, 0, 1500, i)) accepted++;
    expect(pcap.counters.dropped).toBe(500 - accepted);
    expect(pcap.counters.dropped).toBeGreaterThan(0);
    const closed = pcap.close();
    while (pending.length > 0 || !sink.writableEnded) {
      pending.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await closed;
  });

  it('keeps the sink open with closeSink: false, and refuses records after close', async () => {
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const pcap = new PcapWriter(sink, { closeSink: false });
    await pcap.close();
    expect(sink.writableEnded).toBe(false);
    expect(() => pcap.record(new Uint8Array(1), 0, 1, 0)).toThrowError(expect.objectContaining({ code: 'E_CLOSED', message: expect.stringMatching(/closed/) }));
  });

  it('reports a file that cannot be created as E_NO_FILE, and a sink error on close', async () => {
    const err = await openPcap(join(dir, 'no', 'such', 'dir.pcap')).catch((e: unknown) => e);
    expect(isVmnetError(err) && err.code).toBe('E_NO_FILE');

    const sink = new Writable({ write: (_c, _e, cb) => cb(new Error('disk full')) });
    sink.on('error', () => {});
    const pcap = new PcapWriter(sink, { closeSink: false });
    pcap.record(new Uint8Array(60), 0, 60, 0);
    await expect(pcap.close()).rejects.toThrow('disk full');
  });
});

function readFileSyncSafe(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    return Buffer.alloc(0);
  }
}
