/**
 * Theory of operation: the receive buffer of one connection (RFC 9293 §3.8.6
 * "Managing the Window", §3.10.7.4 "seventh, process the segment text").
 *
 * In-order bytes the application has not read yet (`readable`) sit in a byte
 * ring, from the read head on; `view` lends them without copying (the relay
 * hands them to host sockets as they are). Out-of-order bytes sit apart, in
 * 4 KiB pages keyed by their position in the stream, allocated only where
 * bytes arrive; a `RangeSet` (the "assembler") remembers which bytes beyond
 * RCV.NXT are present and gives the SACK blocks (RFC 2018 §4). When a
 * segment fills the hole at RCV.NXT, the contiguous run is copied from its
 * pages into the ring and the pages are freed (RFC 9293 §3.10.7.4: "segments
 * with higher beginning sequence numbers SHOULD be held for later
 * processing").
 *
 * Why pages: out-of-order data may land anywhere in the window, and placing
 * it at its final position in one ring (as before) made one byte at the far
 * end of a 1 MiB window allocate, and soon touch, the whole megabyte — per
 * connection. Now memory follows the bytes held: the ring grows with the
 * in-order bytes (doubling from 4 KiB to `max`), the pages with the
 * out-of-order ones (at most 4 KiB of slack at each end of each run). The
 * price is one extra copy of out-of-order bytes, which only loss or a
 * hostile peer produce (the guest's stream socket neither loses nor
 * reorders). Pages rather than one growable array per run: a run that grows
 * downward, or two runs that merge, cost no copying. Pages sit in a slot
 * array indexed by page number (live pages span less than the window, so
 * none collide), and pages freed by promotion are kept as spares until the
 * buffer is released, so steady loss allocates nothing per segment. The
 * slot array (8 bytes a slot, one slot per 4 KiB of window) exists only
 * while out-of-order bytes do, and is charged with the pages.
 *
 * Bounds: the connection only accepts bytes inside [RCV.NXT, RCV.NXT + free)
 * where free = max - readable, which is never less than the window it
 * advertised, so out-of-order data is bounded by the window, and at most
 * `MAX_HOLES` separate out-of-order runs are kept (a segment that would need
 * another is dropped; the peer retransmits it).
 *
 * Budget (budget.ts): storage is charged to the guest's account. The window
 * the connection advertises is `room`, what the ring can hold without the
 * budget's leave; in-order bytes that would need more than the budget allows
 * are not stored (the peer resends them); out-of-order bytes the budget
 * cannot hold are not kept. Bytes made in order by a hole being filled are
 * always kept (their pages were charged already). The ring may always grow
 * to 4 KiB, so a connection keeps moving when the budget is spent.
 *
 * Memory is lazy: the ring appears with the first in-order byte;
 * `release()` frees it when nothing is readable; `dispose()` frees all. The
 * RangeSet, the slot array and the pages exist only while out-of-order bytes
 * do (the pages linger as spares until `release()`).
 */
import type { BudgetAccount } from './budget.js';
import { grownCapacity, MIN_RING, ringCopyOut } from './ring.js';
import { RangeSet } from './ranges.js';

/** Most out-of-order runs kept beyond RCV.NXT. */
export const MAX_HOLES = 8;
/** Bytes per out-of-order page. */
export const PAGE = 4096;

/** What `ooo` reads while there are no out-of-order runs: empty, and never written. */
const NO_RUNS = new RangeSet(0);

/** In-order readable bytes in a ring, out-of-order segments in pages. */
export class RecvBuffer {
  #buf: Uint8Array | null = null;
  #head = 0;
  /** In-order bytes ready for the application. */
  readable = 0;
  /** Out-of-order runs, made with the first ones and dropped when none are left (`ooo` reads NO_RUNS then). */
  #ooo: RangeSet | null = null;
  /**
   * Out-of-order pages by page number (stream offset / PAGE) modulo the
   * slot count: live pages lie within [RCV.NXT, RCV.NXT + max) and so never
   * share a slot. null while there are none.
   */
  #slots: (Uint8Array | undefined)[] | null = null;
  /** Pages in the slots. */
  #live = 0;
  /** Pages freed by promotion, kept for the next out-of-order bytes (no allocation per segment); freed by release(). null: none (made on first use). */
  #spare: Uint8Array[] | null = null;
  /** Stream offset of RCV.NXT (bytes made in order since this buffer began). */
  #nxt = 0;

  /**
   * @param max the most bytes held (readable + out-of-order window)
   * @param account the budget account storage is charged to (null: unlimited)
   */
  constructor(
    readonly max: number,
    readonly account: BudgetAccount | null = null,
  ) {}

  /** Out-of-order runs, offsets relative to the end of the readable bytes (RCV.NXT); read-only for callers. */
  get ooo(): RangeSet {
    return this.#ooo ?? NO_RUNS;
  }

  /** Bytes that may still arrive beyond RCV.NXT: max - readable (segment acceptance). */
  get free(): number {
    return this.max - this.readable;
  }

  /**
   * Bytes beyond RCV.NXT the ring can hold in order now within the budget:
   * the window to advertise (never more than `free`).
   */
  get room(): number {
    if (this.account === null) return this.free;
    return Math.max(0, this.#ringLimit() - this.readable);
  }

  /** Bytes of storage currently allocated (ring + pages). */
  get capacity(): number {
    return (this.#buf === null ? 0 : this.#buf.length) + (this.#live + (this.#spare?.length ?? 0)) * PAGE + this.#slotBytes();
  }

  /** True when nothing (readable or out-of-order) is held. */
  get empty(): boolean {
    return this.readable === 0 && this.ooo.count === 0;
  }

  /** The largest ring the budget allows now: its floor (MIN_RING) or what it has, plus the account's leave, at most `max`. */
  #ringLimit(): number {
    if (this.account === null) return this.max;
    const cap = this.#buf === null ? 0 : this.#buf.length;
    return Math.min(this.max, Math.max(cap, MIN_RING) + this.account.available());
  }

  /**
   * Grows the ring toward `need` bytes: within the budget, or to `need`
   * whatever the budget (`force`: bytes already held in pages move in).
   * @returns the ring's capacity afterwards
   */
  #grow(need: number, force: boolean): number {
    const old = this.#buf === null ? 0 : this.#buf.length;
    const limit = force ? Math.max(need, this.#ringLimit()) : this.#ringLimit();
    const cap = grownCapacity(this.#buf, Math.min(need, limit), limit);
    if (cap < 0) return old;
    const nb = new Uint8Array(cap);
    if (this.#buf !== null && this.readable > 0) ringCopyOut(this.#buf, this.#head, 0, this.readable, nb, 0);
    this.#buf = nb;
    this.#head = 0;
    this.account?.charge(cap - old);
    return cap;
  }

  /**
   * Stores `len` bytes of `src` from `srcOff`, which belong `rel` bytes after
   * RCV.NXT. The caller has trimmed them to the window: rel + len <= free.
   * @returns bytes by which RCV.NXT advances (0 for out-of-order data kept;
   *   fewer than `len` when the budget held in-order bytes back); -1 when
   *   nothing was kept (too many holes, or no budget)
   */
  write(rel: number, src: Uint8Array, srcOff: number, len: number): number {
    if (len <= 0) return 0;
    if (rel > 0) return this.#writeOoo(rel, src, srcOff, len) ? 0 : -1;
    // in order
    let n = len;
    const cap = this.#buf === null || this.#buf.length < this.readable + n ? this.#grow(this.readable + n, false) : this.#buf.length;
    if (cap < this.readable + n) {
      n = cap - this.readable;
      const c = this.account?.budget.counters;
      if (c !== undefined) {
        c.inOrderDropped += len - n;
        c.limited++;
      }
      if (n <= 0) return -1;
    }
    // advance past this segment and any out-of-order run it reaches
    let adv = n;
    const runs = this.#ooo;
    if (runs !== null) for (let i = 0; i < runs.count && runs.start(i) <= adv; i++) adv = Math.max(adv, runs.end(i));
    if (adv > n && this.#buf!.length < this.readable + adv) this.#grow(this.readable + adv, true);
    this.#put(this.readable, src, srcOff, n);
    if (adv > n) this.#promote(n, adv);
    const from = this.#nxt;
    runs?.shift(adv);
    if (runs?.count === 0) this.#ooo = null;
    this.readable += adv;
    this.#nxt += adv;
    // No out-of-order bytes left: every page goes, the one RCV.NXT stopped inside too (it holds
    // nothing beyond RCV.NXT any more; kept, it stayed allocated for as long as the connection idled).
    if (this.#live > 0) this.#freePages(from, this.#ooo === null ? Infinity : this.#nxt);
    return adv;
  }

  /** Copies `len` bytes of `src` into the ring `at` bytes after the read head. */
  #put(at: number, src: Uint8Array, srcOff: number, len: number): void {
    const b = this.#buf!;
    const cap = b.length;
    let pos = this.#head + at;
    if (pos >= cap) pos -= cap;
    const first = Math.min(len, cap - pos);
    b.set(src.subarray(srcOff, srcOff + first), pos);
    if (first < len) b.set(src.subarray(srcOff + first, srcOff + len), 0);
  }

  /** Moves out-of-order bytes [from, to) (relative to RCV.NXT) from their pages into the ring. */
  #promote(from: number, to: number): void {
    const slots = this.#slots!;
    for (let abs = this.#nxt + from, end = this.#nxt + to; abs < end; ) {
      const p = Math.floor(abs / PAGE);
      const o = abs - p * PAGE;
      const k = Math.min(PAGE - o, end - abs);
      this.#put(this.readable + (abs - this.#nxt), slots[p % slots.length]!, o, k);
      abs += k;
    }
  }

  /** What the slot array costs (8 bytes a slot), charged with the pages. */
  #slotBytes(): number {
    return this.#slots === null ? 0 : this.#slots.length * 8;
  }

  /** Retires the pages that lie wholly in [from, to) (now in order; `to` Infinity: every page) to the spares. */
  #freePages(from: number, to: number): void {
    const slots = this.#slots!;
    for (let p = Math.floor(from / PAGE), last = to === Infinity ? p + slots.length : Math.floor(to / PAGE); p < last && this.#live > 0; p++) {
      const i = p % slots.length;
      const page = slots[i];
      if (page === undefined) continue;
      slots[i] = undefined;
      this.#live--;
      (this.#spare ??= []).push(page);
    }
    if (this.#live === 0) {
      this.account?.credit(this.#slotBytes());
      this.#slots = null;
    }
  }

  /** Keeps an out-of-order segment in pages (spares first, new ones within the budget). */
  #writeOoo(rel: number, src: Uint8Array, srcOff: number, len: number): boolean {
    const abs = this.#nxt + rel;
    const first = Math.floor(abs / PAGE);
    const last = Math.floor((abs + len - 1) / PAGE);
    const n = Math.ceil(this.max / PAGE) + 2;
    const slots = this.#slots;
    let missing = 0;
    for (let p = first; p <= last; p++) if (slots === null || slots[p % n] === undefined) missing++;
    const fresh = Math.max(0, missing - (this.#spare?.length ?? 0)) * PAGE + (slots === null ? n * 8 : 0);
    if (fresh > 0 && this.account !== null && fresh > this.account.available()) {
      const c = this.account.budget.counters;
      c.oooDropped++;
      c.limited++;
      return false;
    }
    if (!(this.#ooo ??= new RangeSet(MAX_HOLES)).add(rel, rel + len)) return false;
    const s = (this.#slots ??= new Array<Uint8Array | undefined>(n).fill(undefined));
    if (fresh > 0) this.account?.charge(fresh);
    for (let a = abs, end = abs + len; a < end; ) {
      const p = Math.floor(a / PAGE);
      const o = a - p * PAGE;
      const k = Math.min(PAGE - o, end - a);
      let page = s[p % n];
      if (page === undefined) {
        s[p % n] = page = this.#spare?.pop() ?? new Uint8Array(PAGE);
        this.#live++;
      }
      page.set(src.subarray(srcOff + (a - abs), srcOff + (a - abs) + k), o);
      a += k;
    }
    return true;
  }

  /** Copies up to `len` readable bytes into dst without consuming them. @returns bytes copied */
  peek(dst: Uint8Array, dstOff: number, len: number): number {
    const n = Math.min(len, this.readable);
    if (n > 0) ringCopyOut(this.#buf!, this.#head, 0, n, dst, dstOff);
    return n;
  }

  /**
   * A view (no copy) of readable bytes from `offset` on: at most `len` bytes,
   * and only up to the end of the ring storage (call again for the rest). The
   * bytes stay valid until consumed: the ring only writes into free space, and
   * growing it copies into new storage, leaving old views intact.
   */
  view(offset: number, len: number): Uint8Array {
    const n = Math.min(len, this.readable - offset);
    if (n <= 0 || this.#buf === null) return new Uint8Array(0);
    const b = this.#buf;
    let pos = this.#head + offset;
    if (pos >= b.length) pos -= b.length;
    return b.subarray(pos, pos + Math.min(n, b.length - pos));
  }

  /** Discards up to n readable bytes. @returns bytes discarded */
  consume(n: number): number {
    const k = Math.min(n, this.readable);
    if (k <= 0) return 0;
    this.readable -= k;
    this.#head += k;
    const cap = this.#buf!.length;
    if (this.#head >= cap) this.#head -= cap;
    if (this.readable === 0) this.#head = 0;
    return k;
  }

  /** Frees the spare pages, and the ring when nothing is readable. @returns true when something was freed */
  release(): boolean {
    let freed = (this.#spare?.length ?? 0) * PAGE;
    this.#spare = null;
    if (this.readable === 0 && this.#buf !== null) {
      freed += this.#buf.length;
      this.#buf = null;
      this.#head = 0;
    }
    this.account?.credit(freed);
    return freed > 0;
  }

  /** Forgets the out-of-order bytes (the connection closed: no hole will be filled). */
  dropOoo(): void {
    this.account?.credit(this.#live * PAGE + this.#slotBytes());
    this.#slots = null;
    this.#live = 0;
    this.#ooo = null;
  }

  /** Frees everything, readable bytes included (the owner is done with the connection). */
  dispose(): void {
    this.dropOoo();
    this.readable = 0;
    this.release();
  }
}
