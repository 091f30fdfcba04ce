import { describe, expect, it } from 'vitest';
import { xorshift32 } from '../../test/helpers/frames.js';
import { PREFIX_LEN, QEMU_MAX_FRAME, StreamFramer, readLengthPrefix, writeLengthPrefix } from './stream-framer.js';

/** Seeded xorshift32 (deterministic "random" splits, as smoltcp's fault injector). */
const xorshift = (seed: number): (() => number) => xorshift32(seed).next;

/** A frame whose bytes encode its index, so corruption and reordering show. */
function makeFrame(i: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let j = 0; j < len; j++) f[j] = (i * 31 + j * 7) & 0xff;
  return f;
}

function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  return b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Concatenates prefixed frames into one stream (test side only). */
function encodeStream(frames: Uint8Array[]): Uint8Array {
  const total = frames.reduce((n, f) => n + PREFIX_LEN + f.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const f of frames) {
    off += writeLengthPrefix(view, off, f.length);
    out.set(f, off);
    off += f.length;
  }
  return out;
}

/** A framer that records copies of delivered frames and checks buf/view agree. */
function recorder(maxFrame = 2048) {
  const got: Uint8Array[] = [];
  const framer = new StreamFramer(maxFrame, (buf, view, off, len) => {
    if (view.byteLength !== buf.byteLength || view.getUint8(off) !== buf[off]) throw new Error('view does not match buf');
    got.push(Uint8Array.prototype.slice.call(buf, off, off + len));
  });
  return { framer, got };
}

describe('writeLengthPrefix / readLengthPrefix', () => {
  it('writes 4 bytes big-endian into headroom', () => {
    const buf = new Uint8Array(10);
    const view = new DataView(buf.buffer);
    expect(writeLengthPrefix(view, 2, 0x01020304)).toBe(4);
    expect([...buf]).toEqual([0, 0, 1, 2, 3, 4, 0, 0, 0, 0]);
    expect(readLengthPrefix(view, 2)).toBe(0x01020304);
  });
});

describe('StreamFramer', () => {
  it('reassembles in a buffer taken from its pool and gives it back after close', async () => {
    const pooled = new Uint8Array(64);
    const taken: number[] = [];
    const given: Uint8Array[] = [];
    const got: Array<[Uint8Array, number[]]> = [];
    const f = new StreamFramer(64, (buf, _v, off, len) => got.push([buf, [...buf.subarray(off, off + len)]]), {
      take: (n) => (taken.push(n), pooled),
      give: (b) => given.push(b),
    });
    expect(taken).toEqual([64]);
    const wire = new Uint8Array([0, 0, 0, 3, 7, 8, 9]);
    f.push(wire, 0, 5); // the frame straddles two pushes: reassembled
    f.push(wire, 5, 7);
    expect(got).toEqual([[pooled, [7, 8, 9]]]);
    f.close();
    f.close();
    expect(given).toEqual([]); // not while a frame callback might still read it
    await Promise.resolve();
    expect(given).toEqual([pooled]); // once
  });

  it('delivers several frames from one chunk in place, without copying', () => {
    const frames = [makeFrame(0, 60), makeFrame(1, 1500), makeFrame(2, 14)];
    const stream = encodeStream(frames);
    const seen: Array<[Uint8Array, number, number]> = [];
    const framer = new StreamFramer(2048, (buf, _view, off, len) => seen.push([buf, off, len]));
    expect(framer.push(stream)).toBe('ok');
    expect(seen.map(([b, o, l]) => [b === stream, o, l])).toEqual([
      [true, 4, 60],
      [true, 68, 1500],
      [true, 1572, 14],
    ]);
    expect(framer.counters).toMatchObject({ frames: 3, bytes: 1574, empty: 0, oversize: 0 });
    expect(framer.isMidFrame()).toBe(false);
  });

  it('reuses one DataView per chunk object across pushes (onread-style buffer)', () => {
    const views = new Set<DataView>();
    const framer = new StreamFramer(100, (_b, view) => views.add(view));
    const readBuf = new Uint8Array(64);
    const frame = encodeStream([makeFrame(0, 10), makeFrame(1, 20)]);
    for (let i = 0; i < 3; i++) {
      readBuf.set(frame);
      expect(framer.push(readBuf, 0, frame.length)).toBe('ok');
    }
    expect(views.size).toBe(1);
    expect(framer.counters.frames).toBe(6);
  });

  it('honours start/end bounds', () => {
    const { framer, got } = recorder();
    const stream = encodeStream([makeFrame(5, 9)]);
    const padded = new Uint8Array(stream.length + 6).fill(0xee);
    padded.set(stream, 3);
    expect(framer.push(padded, 3, 3 + stream.length)).toBe('ok');
    expect(got).toEqual([makeFrame(5, 9)]);
    expect(framer.isMidFrame()).toBe(false);
  });

  it('reassembles a stream fed byte by byte', () => {
    const frames = Array.from({ length: 20 }, (_, i) => makeFrame(i, 1 + ((i * 97) % 300)));
    const stream = encodeStream(frames);
    const boundaries = new Set<number>();
    frames.reduce((end, f) => (boundaries.add(end + PREFIX_LEN + f.length), end + PREFIX_LEN + f.length), 0);
    const { framer, got } = recorder();
    for (let i = 0; i < stream.length; i++) {
      expect(framer.push(stream.subarray(i, i + 1))).toBe('ok');
      expect(framer.isMidFrame()).toBe(!boundaries.has(i + 1));
    }
    expect(got).toEqual(frames);
    expect(framer.counters.frames).toBe(20);
  });

  it('handles the prefix split at every position', () => {
    const frame = makeFrame(7, 33);
    const stream = encodeStream([frame, frame]);
    for (let cut = 1; cut < stream.length; cut++) {
      const { framer, got } = recorder();
      expect(framer.push(stream.subarray(0, cut))).toBe('ok');
      expect(framer.push(stream.subarray(cut))).toBe('ok');
      expect(got).toEqual([frame, frame]);
    }
  });

  it('delivers frames intact and in order under random chunk splits (seeded)', () => {
    for (const seed of [1, 2, 3, 0xdeadbeef, 12345]) {
      const rnd = xorshift(seed);
      const frames = Array.from({ length: 500 }, (_, i) => makeFrame(i, 1 + (rnd() % 1600)));
      const stream = encodeStream(frames);
      const { framer, got } = recorder(1600);
      let pos = 0;
      while (pos < stream.length) {
        // Mix tiny splits (inside prefixes) with large ones (many frames per chunk).
        const r = rnd();
        const n = r % 4 === 0 ? 1 + (r % 5) : 1 + (r % 6000);
        const chunk = stream.slice(pos, Math.min(stream.length, pos + n)); // fresh buffer per read, like 'data'
        if (framer.push(chunk) !== 'ok') throw new Error(`push failed at ${pos}`);
        pos += n;
      }
      expect(got.length).toBe(frames.length);
      const bad = frames.findIndex((f, i) => !sameBytes(f, got[i]));
      expect(bad).toBe(-1);
      expect(framer.counters.bytes).toBe(frames.reduce((n, f) => n + f.length, 0));
      expect(framer.isMidFrame()).toBe(false);
    }
  });

  it('accepts a frame of exactly maxFrame, split or whole', () => {
    const frame = makeFrame(1, 256);
    const stream = encodeStream([frame, frame]);
    const { framer, got } = recorder(256);
    expect(framer.push(stream.subarray(0, 100))).toBe('ok');
    expect(framer.push(stream.subarray(100))).toBe('ok');
    expect(got).toEqual([frame, frame]);
  });

  it('skips and counts an honest frame longer than maxFrame, wherever the stream is cut, and carries on', () => {
    // A correct prefix for a frame too big for this port (2,000 bytes on a 1518-byte port):
    // the stream stays in step, so the frame is skipped, not the connection dropped.
    const big = makeFrame(1, 2000);
    const stream = encodeStream([makeFrame(0, 10), big, makeFrame(2, 10)]);
    for (let cut = 0; cut <= stream.length; cut += 7) {
      const { framer, got } = recorder(1518);
      expect(framer.push(stream.subarray(0, cut))).toBe('ok');
      expect(framer.push(stream.subarray(cut))).toBe('ok');
      expect(got).toEqual([makeFrame(0, 10), makeFrame(2, 10)]);
      expect(framer.counters).toMatchObject({ frames: 2, tooLong: 1, oversize: 0 });
      expect(framer.isMidFrame()).toBe(false);
    }
    // A hang-up inside the skipped frame is a hang-up mid-frame.
    const { framer } = recorder(1518);
    framer.push(stream.subarray(0, 100));
    expect(framer.isMidFrame()).toBe(true);
    expect(framer.end()).toBe(true);
  });

  it("stops on a prefix larger than QEMU's own limit (a lie), even when the prefix is split", () => {
    const lie = new Uint8Array(8);
    new DataView(lie.buffer).setUint32(0, QEMU_MAX_FRAME + 1);
    const stream = new Uint8Array([...encodeStream([makeFrame(0, 10)]), ...lie]);
    const { framer, got } = recorder(256);
    expect(framer.push(stream.subarray(0, 16))).toBe('ok'); // first frame + 2 bytes of the bad prefix
    expect(framer.push(stream.subarray(16))).toBe('oversize');
    expect(got).toEqual([makeFrame(0, 10)]);
    expect(framer.counters.oversize).toBe(1);
    // Sticky: nothing more is delivered.
    expect(framer.push(encodeStream([makeFrame(3, 5)]))).toBe('oversize');
    expect(got.length).toBe(1);
    // A smaller limit can be asked for.
    const strict = new StreamFramer(256, () => {}, undefined, 300);
    expect(strict.push(encodeStream([makeFrame(1, 280)]))).toBe('ok');
    expect(strict.push(encodeStream([makeFrame(1, 301)]))).toBe('oversize');
    expect(() => new StreamFramer(256, () => {}, undefined, 255)).toThrow(RangeError);
  });

  it('drops and counts zero-length frames, then continues', () => {
    const stream = encodeStream([new Uint8Array(0), makeFrame(1, 5), new Uint8Array(0)]);
    const { framer, got } = recorder();
    expect(framer.push(stream)).toBe('ok');
    expect(got).toEqual([makeFrame(1, 5)]);
    expect(framer.counters).toMatchObject({ frames: 1, empty: 2 });
  });

  it('reports a hang-up mid-prefix or mid-frame, and not at a boundary', () => {
    const stream = encodeStream([makeFrame(0, 50)]);
    for (const [cut, mid] of [
      [0, false],
      [2, true],
      [4, true],
      [30, true],
      [stream.length, false],
    ] as const) {
      const { framer } = recorder();
      framer.push(stream.subarray(0, cut));
      expect(framer.isMidFrame()).toBe(mid);
      expect(framer.end()).toBe(mid);
      expect(framer.counters.truncatedAtClose).toBe(mid ? 1 : 0);
      expect(framer.isMidFrame()).toBe(false);
    }
  });

  it('stops delivering when closed from inside the callback', () => {
    const stream = encodeStream([makeFrame(0, 5), makeFrame(1, 5), makeFrame(2, 5)]);
    let n = 0;
    const framer = new StreamFramer(100, () => {
      if (++n === 2) framer.close();
    });
    expect(framer.push(stream)).toBe('closed');
    expect(n).toBe(2);
    expect(framer.push(stream)).toBe('closed');
  });

  it('closes itself when the callback throws', () => {
    const framer = new StreamFramer(100, () => {
      throw new Error('boom');
    });
    const stream = encodeStream([makeFrame(0, 5)]);
    expect(() => framer.push(stream)).toThrow('boom');
    expect(framer.push(stream)).toBe('closed');
  });

  it('rejects a bad maxFrame and defaults to QEMU NET_BUFSIZE-sized frames', () => {
    expect(() => new StreamFramer(0, () => {})).toThrow(RangeError);
    expect(QEMU_MAX_FRAME).toBe(69632);
  });
});
