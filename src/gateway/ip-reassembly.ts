/**
 * Theory of operation: IP fragment reassembly, IPv4 (RFC 791 §3.2
 * "Reassembly") and IPv6 (RFC 8200 §4.5), with RFC 815's hole bookkeeping
 * simplified to a byte coverage count and RFC 5722's rule against overlaps
 * (for IPv4 too): overlapping fragments poison the datagram, which is then
 * dropped whole, as Linux does. Both families share one table and its
 * bounds. IPv6: only packets whose Fragment header follows the fixed
 * header directly are reassembled (what hosts send; one with extension
 * headers before it is dropped, counted `tooBig`); the packet is rebuilt
 * as the first fragment's fixed header, its Next Header taken from the
 * Fragment header, and the data.
 *
 * Memory is bounded three ways: at most `maxDatagrams` datagrams in progress,
 * each at most `maxSize` bytes (65535 by the IPv4 length field), and the
 * whole table at most `maxBytes`; an incomplete datagram is dropped
 * `timeoutMs` after its first fragment (RFC 791 suggests 15 s; Linux uses
 * 30 s). Each guest (the key the caller passes: the gateway's link, never
 * an address a guest can pick) has a share, `maxDatagramsPerGuest` and
 * `maxBytesPerGuest` (default a quarter of each bound): a guest at its share
 * gives up its own oldest datagram for a new one; when the table is full,
 * the oldest datagram of the guest holding the most goes. So fragment trains
 * from one guest never evict another guest's datagrams while that guest is
 * within its share. Every drop is counted by reason. Sans-IO: time is passed
 * in, nothing runs on its own.
 */
import type { Header as Ip4Header } from '../wire/ipv4.js';
import { FLAG_MF, HEADER_LEN, fillChecksum } from '../wire/ipv4.js';
import * as ipv6 from '../wire/ipv6.js';
import { ip6Key } from '../wire/addr.js';

/** One fragment of either family, as `add` takes it. */
interface Piece {
  key: string;
  /** Offset of its data in the datagram's payload (bytes). */
  start: number;
  /** More fragments follow. */
  more: boolean;
  /** Absolute offsets in the view: its data, and the header kept from the first fragment. */
  dataOffset: number;
  dataLength: number;
  headerOffset: number;
  headerLength: number;
  /** Family-specific changes to the kept header (IPv6: its Next Header). */
  fixHeader?(header: Uint8Array): void;
}

export interface ReassemblyLimits {
  maxDatagrams: number;
  maxSize: number;
  maxBytes: number;
  timeoutMs: number;
  /** Datagrams in progress per guest (default a quarter of maxDatagrams). */
  maxDatagramsPerGuest?: number;
  /** Bytes held per guest (default a quarter of maxBytes, at least maxSize). */
  maxBytesPerGuest?: number;
}

export const DEFAULT_REASSEMBLY: ReassemblyLimits = { maxDatagrams: 64, maxSize: 65535, maxBytes: 4 * 1024 * 1024, timeoutMs: 15_000 };

export interface ReassemblyCounters {
  fragments: number;
  reassembled: number;
  timedOut: number;
  evicted: number;
  overlap: number;
  tooBig: number;
}

interface Pending {
  key: string;
  guest: number;
  started: number;
  /** Payload bytes, allocated at the maximum size seen so far. */
  data: Uint8Array;
  /** Byte ranges received, as sorted [start, end) pairs. */
  ranges: number[];
  received: number;
  /** Total payload length, known once the last fragment (MF clear) arrives; -1 before. */
  total: number;
  /** The first fragment's IPv4 header (offset 0), kept to rebuild the datagram. */
  header: Uint8Array | null;
}

/** A complete datagram: a fresh buffer holding a 20-byte header + payload. */
export interface Reassembled {
  buf: Uint8Array;
  view: DataView;
  len: number;
}

export class Reassembler {
  readonly counters: ReassemblyCounters = { fragments: 0, reassembled: 0, timedOut: 0, evicted: 0, overlap: 0, tooBig: 0 };
  private readonly pending = new Map<string, Pending>();
  private bytes = 0;
  /** Per guest: datagrams in progress and bytes held. */
  private readonly shares = new Map<number, { datagrams: number; bytes: number }>();
  private readonly perGuestDatagrams: number;
  private readonly perGuestBytes: number;

  constructor(private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY) {
    this.perGuestDatagrams = limits.maxDatagramsPerGuest ?? Math.max(1, Math.floor(limits.maxDatagrams / 4));
    this.perGuestBytes = limits.maxBytesPerGuest ?? Math.max(limits.maxSize, Math.floor(limits.maxBytes / 4));
  }

  /** Datagrams in progress. */
  get size(): number {
    return this.pending.size;
  }

  /** Fragments and datagrams dropped so far, for any reason. */
  get dropped(): number {
    const c = this.counters;
    return c.timedOut + c.evicted + c.overlap + c.tooBig;
  }

  /** Bytes held by datagrams in progress. */
  get heldBytes(): number {
    return this.bytes;
  }

  /**
   * Adds one fragment.
   * @param h its parsed header (isFragment(h) is true)
   * @param v the view holding it
   * @param now current time (ms)
   * @param guest the sender's key for its share (default: one guest)
   * @returns the whole datagram when this fragment completes it, else null
   */
  push(h: Ip4Header, v: DataView, now: number, guest = 0): Reassembled | null {
    const piece: Piece = {
      key: `${h.src}:${h.dst}:${h.proto}:${h.id}`,
      start: h.fragOffset,
      more: (h.flags & FLAG_MF) !== 0,
      dataOffset: h.payloadOffset,
      dataLength: h.payloadLength,
      headerOffset: h.payloadOffset - h.headerLength,
      headerLength: HEADER_LEN,
    };
    return this.add(piece, v, now, guest, (buf, total) => {
      // Options dropped, flags and offset cleared.
      buf[0] = 0x45;
      const view = new DataView(buf.buffer);
      view.setUint16(2, HEADER_LEN + total);
      view.setUint16(6, 0);
      fillChecksum(view, 0, HEADER_LEN);
    });
  }

  /**
   * Adds one IPv6 fragment (RFC 8200 §4.5).
   * @param v the view holding the packet, its fixed header at `o`
   * @param c its extension header walk (`c.fragment` is true)
   * @param now current time (ms)
   * @param guest the sender's key for its share
   * @returns the whole packet (fixed header + payload, no Fragment header) when this completes it, else null
   */
  push6(v: DataView, o: number, c: ipv6.Chain, now: number, guest = 0): Reassembled | null {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const piece: Piece = {
      key: `6:${ip6Key(bytes, o + ipv6.SRC)}:${ip6Key(bytes, o + ipv6.DST)}:${c.fragId}`,
      start: c.fragOffset,
      more: c.fragMore,
      dataOffset: c.fragDataOffset,
      dataLength: c.fragDataLength,
      headerOffset: o,
      headerLength: ipv6.HEADER_LEN,
      fixHeader: (header) => (header[ipv6.NEXT_HEADER] = c.fragNextHeader),
    };
    if (c.fragmentHeader !== ipv6.HEADER_LEN) {
      this.counters.fragments++;
      this.counters.tooBig++;
      return null;
    }
    return this.add(piece, v, now, guest, (buf, total) => new DataView(buf.buffer).setUint16(ipv6.PAYLOAD_LENGTH, total));
  }

  /** Adds a fragment of either family; `finish` fixes the rebuilt datagram's header (its lengths). */
  private add(f: Piece, v: DataView, now: number, guest: number, finish: (buf: Uint8Array, total: number) => void): Reassembled | null {
    this.counters.fragments++;
    this.expire(now);
    const key = f.key;
    const start = f.start;
    const end = start + f.dataLength;
    const more = f.more;
    if (end + f.headerLength > this.limits.maxSize || (more && (f.dataLength & 7) !== 0)) {
      this.counters.tooBig++;
      this.drop(key);
      return null;
    }
    let p = this.pending.get(key);
    if (!p) {
      if (this.share(guest).datagrams >= this.perGuestDatagrams) this.evictOldest(guest);
      while (this.pending.size >= this.limits.maxDatagrams && this.evictOldest(this.biggest('datagrams')));
      p = { key, guest, started: now, data: new Uint8Array(0), ranges: [], received: 0, total: -1, header: null };
      this.pending.set(key, p);
      this.share(guest).datagrams++;
    }
    if (!more) {
      if ((p.total !== -1 && p.total !== end) || end < p.received) {
        this.counters.overlap++;
        this.drop(key);
        return null;
      }
      p.total = end;
    } else if (p.total !== -1 && end > p.total) {
      this.counters.overlap++;
      this.drop(key);
      return null;
    }
    // Reject overlaps (RFC 5722 rationale): any intersection with a received range.
    for (let i = 0; i < p.ranges.length; i += 2) {
      if (start < p.ranges[i + 1]! && end > p.ranges[i]!) {
        this.counters.overlap++;
        this.drop(key);
        return null;
      }
    }
    if (end > p.data.length) {
      const grow = Math.min(this.limits.maxSize, Math.max(end, p.total, p.data.length * 2, 1500));
      const need = grow - p.data.length;
      const mine = this.share(guest);
      while (mine.bytes + need > this.perGuestBytes && this.evictOldest(guest, key));
      while (this.bytes + need > this.limits.maxBytes && this.evictOldest(this.biggest('bytes', key), key));
      if (mine.bytes + need > this.perGuestBytes || this.bytes + need > this.limits.maxBytes) {
        this.counters.tooBig++;
        this.drop(key);
        return null;
      }
      const bigger = new Uint8Array(grow);
      bigger.set(p.data);
      this.bytes += need;
      mine.bytes += need;
      p.data = bigger;
    }
    p.data.set(new Uint8Array(v.buffer, v.byteOffset + f.dataOffset, f.dataLength), start);
    p.received += end - start;
    insertRange(p.ranges, start, end);
    if (start === 0) {
      p.header = new Uint8Array(v.buffer.slice(v.byteOffset + f.headerOffset, v.byteOffset + f.headerOffset + f.headerLength));
      f.fixHeader?.(p.header);
    }
    if (p.total === -1 || p.received !== p.total || !p.header) return null;
    // Complete: the kept header + payload, its lengths fixed by the family.
    this.drop(key);
    this.counters.reassembled++;
    const hl = p.header.length;
    const buf = new Uint8Array(hl + p.total);
    buf.set(p.header);
    buf.set(p.data.subarray(0, p.total), hl);
    finish(buf, p.total);
    return { buf, view: new DataView(buf.buffer), len: buf.length };
  }

  /** Drops datagrams whose first fragment is older than the timeout. */
  expire(now: number): void {
    for (const p of this.pending.values()) {
      if (now - p.started < this.limits.timeoutMs) break; // insertion order = age order
      this.counters.timedOut++;
      this.drop(p.key);
    }
  }

  private share(guest: number): { datagrams: number; bytes: number } {
    let s = this.shares.get(guest);
    if (s === undefined) this.shares.set(guest, (s = { datagrams: 0, bytes: 0 }));
    return s;
  }

  /** The guest holding the most datagrams or bytes (other than the datagram `except`). */
  private biggest(what: 'datagrams' | 'bytes', except?: string): number {
    let best = -1;
    let most = -1;
    for (const [g, s] of this.shares) {
      const n = s[what] - (except !== undefined && this.pending.get(except)?.guest === g ? (what === 'bytes' ? this.pending.get(except)!.data.length : 1) : 0);
      if (n > most) {
        most = n;
        best = g;
      }
    }
    return best;
  }

  /** Evicts `guest`'s oldest datagram other than `except` (counted); false when it has none. */
  private evictOldest(guest: number, except?: string): boolean {
    for (const p of this.pending.values()) {
      if (p.guest !== guest || p.key === except) continue;
      this.counters.evicted++;
      this.drop(p.key);
      return true;
    }
    return false;
  }

  private drop(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.bytes -= p.data.length;
    this.pending.delete(key);
    const s = this.shares.get(p.guest)!;
    s.bytes -= p.data.length;
    if (--s.datagrams === 0) this.shares.delete(p.guest);
  }
}

/** Inserts [s, e) into sorted, non-overlapping pairs, merging neighbours. */
function insertRange(r: number[], s: number, e: number): void {
  let i = 0;
  while (i < r.length && r[i]! < s) i += 2;
  r.splice(i, 0, s, e);
  for (let j = Math.max(0, i - 2); j + 2 < r.length; ) {
    if (r[j + 1] === r[j + 2]) {
      r.splice(j + 1, 2);
    } else j += 2;
  }
}
