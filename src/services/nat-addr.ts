/**
 * Theory of operation: the numbers the NAT engines (tcp-nat, udp-nat) and
 * the gateway's neighbour table key addresses by, one number space for both
 * IP versions. An IPv4 address is its own number (0 .. 2^32 - 1), as it
 * always was, so the IPv4 path does no conversion at all. An IPv6 address is
 * interned (`Ip6Ids`) into an id from 2^32 up; ids count up and are never
 * reused, so a stale id can never name another address. Every id stays
 * below 2^37, so `id * 65536 + port` (the engines' endpoint key) is an exact
 * double, and a flow table keyed that way holds both families.
 *
 * Why interning: a 16-byte address fits in no JS number, and a Map keyed by
 * a string made from it costs about 47 ns a lookup against 4.7 ns for a
 * number (bench/results/ipv6-parse.md). `Ip6Ids` finds an address straight
 * from the packet's view: an open-addressing table (linear probing,
 * backward-shift deletion, at most half full, doubled when it would pass
 * that) of the four big-endian 32-bit words, probed without allocating
 * (measured at 7 ns in the same bench). Id → address is a Map on the id.
 *
 * Lifetime: the gateway marks and sweeps. Once a second it lists the ids
 * something still uses (its IPv6 neighbour entries, the TCP and UDP flows
 * and ping flows on IPv6) and `retain`s only those. An address interned for
 * a packet that created nothing (a stray segment, a refused datagram) is
 * forgotten at the next sweep. Between sweeps a guest could intern one new
 * address per packet, so the table has a hard bound (`maxSize`): past it,
 * `intern` answers -1 and the caller drops the packet (counted).
 *
 * Pure: no I/O, no Node runtime imports; no allocation on a hit.
 */
import { IP6_LEN, type Ip6 } from '../wire/addr.js';

/** An address as the NAT keys it: an IPv4 address, or an interned IPv6 id (>= V6_BASE). */
export type AddrId = number;

/** The first IPv6 id: every IPv4 address is below it. */
export const V6_BASE = 2 ** 32;

/** True when `a` is an IPv6 id. */
export const isV6 = (a: AddrId): boolean => a >= V6_BASE;

/** Most addresses interned at once by default (a full table costs about 12 MiB). */
export const DEFAULT_MAX_IDS = 1 << 17;

/** The initial table size (slots, a power of two). */
const INITIAL_SLOTS = 64;

export class Ip6Ids {
  /** Four words per slot. */
  #words = new Int32Array(INITIAL_SLOTS * 4);
  /** The id in each slot, 0 when empty. */
  #ids = new Float64Array(INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #count = 0;
  #next = V6_BASE;
  readonly #byId = new Map<AddrId, Ip6>();

  /** @param maxSize most addresses interned at once (see "Lifetime") */
  constructor(readonly maxSize: number = DEFAULT_MAX_IDS) {}

  /** Addresses interned. */
  get size(): number {
    return this.#count;
  }

  /**
   * The id of the address at `o` of a view, or -1 when it has none.
   * @param v the packet's DataView
   * @param o offset of the 16-byte address
   */
  find(v: DataView, o: number): AddrId {
    const w0 = v.getInt32(o);
    const w1 = v.getInt32(o + 4);
    const w2 = v.getInt32(o + 8);
    const w3 = v.getInt32(o + 12);
    const words = this.#words;
    const ids = this.#ids;
    for (let i = hash(w0, w1, w2, w3) & this.#mask; ; i = (i + 1) & this.#mask) {
      const id = ids[i]!;
      if (id === 0) return -1;
      const k = i << 2;
      if (words[k] === w0 && words[k + 1] === w1 && words[k + 2] === w2 && words[k + 3] === w3) return id;
    }
  }

  /**
   * The id of the address at `o`, interned when new; -1 when it is new and
   * the table is full.
   * @param v the packet's DataView
   * @param o offset of the 16-byte address
   */
  intern(v: DataView, o: number): AddrId {
    const id = this.find(v, o);
    if (id !== -1) return id;
    if (this.#count >= this.maxSize) return -1;
    const addr = new Uint8Array(IP6_LEN);
    for (let i = 0; i < IP6_LEN; i++) addr[i] = v.getUint8(o + i);
    return this.#add(addr);
  }

  /** `intern` for an address held in an array. @param a the address */
  internAddress(a: Ip6): AddrId {
    return this.intern(new DataView(a.buffer, a.byteOffset, IP6_LEN), 0);
  }

  /** The address of an id (do not modify it), or undefined when the id is gone. */
  address(id: AddrId): Ip6 | undefined {
    return this.#byId.get(id);
  }

  /** Forgets every id not in `live` (the sweep of "Lifetime"). */
  retain(live: ReadonlySet<AddrId>): void {
    for (const [id, addr] of this.#byId) if (!live.has(id)) this.#remove(id, addr);
  }

  #add(addr: Ip6): AddrId {
    if ((this.#count + 1) * 2 > this.#ids.length) this.#grow();
    const id = this.#next++;
    this.#byId.set(id, addr);
    this.#place(addr, id);
    this.#count++;
    return id;
  }

  #place(addr: Ip6, id: AddrId): void {
    const w0 = word(addr, 0);
    const w1 = word(addr, 4);
    const w2 = word(addr, 8);
    const w3 = word(addr, 12);
    let i = hash(w0, w1, w2, w3) & this.#mask;
    while (this.#ids[i] !== 0) i = (i + 1) & this.#mask;
    const k = i << 2;
    this.#words[k] = w0;
    this.#words[k + 1] = w1;
    this.#words[k + 2] = w2;
    this.#words[k + 3] = w3;
    this.#ids[i] = id;
  }

  #grow(): void {
    const old = [...this.#byId];
    const slots = this.#ids.length * 2;
    this.#words = new Int32Array(slots * 4);
    this.#ids = new Float64Array(slots);
    this.#mask = slots - 1;
    for (const [id, addr] of old) this.#place(addr, id);
  }

  /** Removes the entry, then shifts later entries of its probe run back (no tombstones). */
  #remove(id: AddrId, addr: Ip6): void {
    this.#byId.delete(id);
    this.#count--;
    const mask = this.#mask;
    const ids = this.#ids;
    const words = this.#words;
    let i = hash(word(addr, 0), word(addr, 4), word(addr, 8), word(addr, 12)) & mask;
    while (ids[i] !== id) i = (i + 1) & mask;
    ids[i] = 0;
    for (let j = (i + 1) & mask; ids[j] !== 0; j = (j + 1) & mask) {
      const k = j << 2;
      const home = hash(words[k]!, words[k + 1]!, words[k + 2]!, words[k + 3]!) & mask;
      // Move j into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home > i && home <= j : home > i || home <= j) continue;
      ids[i] = ids[j]!;
      const h = i << 2;
      words[h] = words[k]!;
      words[h + 1] = words[k + 1]!;
      words[h + 2] = words[k + 2]!;
      words[h + 3] = words[k + 3]!;
      ids[j] = 0;
      i = j;
    }
  }
}

/** The big-endian 32-bit word of an address array at `o`, signed (as DataView.getInt32 reads it). */
function word(a: Ip6, o: number): number {
  return (a[o]! << 24) | (a[o + 1]! << 16) | (a[o + 2]! << 8) | a[o + 3]!;
}

/** Mixes four words into a slot hash (the interface identifier words vary most, so all four count). */
function hash(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ w1 ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ w2 ^ (h >>> 13), 0x85ebca6b);
  h = Math.imul(h ^ w3 ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 15)) >>> 0;
}
