/**
 * The one round-trip check every codec goes through (after dns-packet's
 * testEncoder): emit → parse gives the value back, length() equals the bytes
 * written, writing at a non-zero offset of a larger buffer works, and, when
 * given, fixture bytes are reproduced exactly.
 */
import { expect } from 'vitest';

export interface Codec<T> {
  length(h: T): number;
  emit(h: T, v: DataView, o: number): number;
  parse(v: DataView, o: number, len: number, out: T): boolean;
  blank(): T;
}

export function roundTrip<T>(codec: Codec<T>, value: T, fixtureHex?: string): Uint8Array {
  const n = codec.length(value);
  const buf = new Uint8Array(n + 23);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const written = codec.emit(value, v, 10);
  expect(written).toBe(n);
  const out = codec.blank();
  expect(codec.parse(v, 10, n, out)).toBe(true);
  expect(out).toEqual(value);
  const bytes = buf.subarray(10, 10 + n);
  if (fixtureHex !== undefined) expect(Buffer.from(bytes).toString('hex')).toBe(fixtureHex.replace(/\s+/g, ''));
  return bytes;
}

/** A DataView over a whole Uint8Array (the one-view-per-buffer rule). */
export function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Bytes from hex text (whitespace ignored). */
export function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}
