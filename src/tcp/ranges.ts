/**
 * Theory of operation: a small bounded set of disjoint byte ranges, used for
 * both SACK bookkeeping directions (RFC 2018):
 *
 * - the receive side records which out-of-order bytes it holds beyond RCV.NXT
 *   (smoltcp's `storage/assembler.rs` idea) and turns them into SACK blocks;
 * - the send side records which bytes beyond SND.UNA the peer has SACKed (the
 *   "scoreboard", RFC 6675 §3 in miniature) so retransmissions skip them.
 *
 * Ranges are half-open [start, end) offsets relative to a moving base (RCV.NXT
 * or SND.UNA); when the base advances by k, `shift(k)` subtracts k and drops
 * what fell below 0. At most `max` ranges are kept; an insertion that would
 * need more is refused (the caller then simply does not keep that data /
 * information: both uses tolerate it). The storage array is allocated on the
 * first insertion, so an idle connection pays for two numbers only.
 */

/** A bounded, sorted set of disjoint half-open ranges. */
export class RangeSet {
  /** Pairs [start0, end0, start1, end1, ...], sorted, disjoint, non-adjacent. */
  #a: number[] | null = null;
  /** Number of ranges. */
  count = 0;
  /** Offset of the range most recently added or extended (for SACK ordering, RFC 2018 §4), -1 if none. */
  last = -1;

  constructor(readonly max: number) {}

  /** Start of range i (0 <= i < count). */
  start(i: number): number {
    return this.#a![2 * i]!;
  }

  /** End (exclusive) of range i. */
  end(i: number): number {
    return this.#a![2 * i + 1]!;
  }

  /**
   * Adds [s, e), merging with overlapping or adjacent ranges.
   * @returns false (set unchanged) when it would need more than `max` ranges
   */
  add(s: number, e: number): boolean {
    if (e <= s) return true;
    const a = (this.#a ??= new Array<number>(2 * this.max).fill(0));
    let i = 0;
    while (i < this.count && a[2 * i + 1]! < s) i++;
    // ranges i..j-1 touch [s, e)
    let j = i;
    while (j < this.count && a[2 * j]! <= e) j++;
    if (j === i) {
      if (this.count === this.max) return false;
      for (let k = this.count; k > i; k--) {
        a[2 * k] = a[2 * k - 2]!;
        a[2 * k + 1] = a[2 * k - 1]!;
      }
      a[2 * i] = s;
      a[2 * i + 1] = e;
      this.count++;
    } else {
      const ns = Math.min(s, a[2 * i]!);
      const ne = Math.max(e, a[2 * j - 1]!);
      a[2 * i] = ns;
      a[2 * i + 1] = ne;
      const gone = j - i - 1;
      if (gone > 0) {
        for (let k = i + 1; k + gone < this.count; k++) {
          a[2 * k] = a[2 * (k + gone)]!;
          a[2 * k + 1] = a[2 * (k + gone) + 1]!;
        }
        this.count -= gone;
      }
    }
    this.last = s;
    return true;
  }

  /** Moves the base forward by k: subtracts k from every range, dropping or clipping what falls below 0. */
  shift(k: number): void {
    if (k <= 0 || this.count === 0) {
      if (this.last >= 0) this.last = Math.max(-1, this.last - k);
      return;
    }
    const a = this.#a!;
    let w = 0;
    for (let r = 0; r < this.count; r++) {
      const s = a[2 * r]! - k;
      const e = a[2 * r + 1]! - k;
      if (e <= 0) continue;
      a[2 * w] = s < 0 ? 0 : s;
      a[2 * w + 1] = e;
      w++;
    }
    this.count = w;
    this.last = this.last - k < 0 ? -1 : this.last - k;
  }

  /** Removes everything. */
  clear(): void {
    this.count = 0;
    this.last = -1;
  }

  /** Frees the storage (only when empty). */
  release(): void {
    if (this.count === 0) this.#a = null;
  }

  /**
   * The end of the range containing x, or -1 when x is in no range.
   * @param x an offset
   */
  endOf(x: number): number {
    for (let i = 0; i < this.count; i++) {
      const s = this.#a![2 * i]!;
      if (s > x) return -1;
      if (x < this.#a![2 * i + 1]!) return this.#a![2 * i + 1]!;
    }
    return -1;
  }

  /** The start of the first range beginning after x, or Infinity. */
  nextStart(x: number): number {
    for (let i = 0; i < this.count; i++) {
      const s = this.#a![2 * i]!;
      if (s > x) return s;
    }
    return Infinity;
  }

  /** End of the last range, or 0 when empty. */
  highest(): number {
    return this.count === 0 ? 0 : this.#a![2 * this.count - 1]!;
  }

  /** Index of the range containing offset `last` (the most recent), or -1. */
  indexOfLast(): number {
    if (this.last < 0) return -1;
    for (let i = 0; i < this.count; i++) {
      if (this.#a![2 * i]! <= this.last && this.last < this.#a![2 * i + 1]!) return i;
    }
    return -1;
  }
}
