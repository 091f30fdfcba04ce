/**
 * Theory of operation: a windowed maximum over a sliding window of "time"
 * (BBR's BtlBw filter, draft-cardwell-iccrg-bbr-congestion-control §4.1.1:
 * the largest delivery rate seen in the last 10 round trips; the unit of
 * time is the caller's, round trips there). Kathleen Nichols' algorithm as
 * BBR uses it: three samples — the best, the second best since it, the
 * third best since that — so that when the best ages out of the window the
 * next best is already at hand, in O(1) per update and three number pairs of
 * memory. Sans-IO: the caller passes the time with each sample.
 */

/** The maximum of the samples of the last `window` time units (approximately, as the three-sample filter is). */
export class WindowedMax {
  #v0 = 0;
  #t0 = 0;
  #v1 = 0;
  #t1 = 0;
  #v2 = 0;
  #t2 = 0;

  /** @param window the window's length, in the caller's time units */
  constructor(readonly window: number) {}

  /** The current maximum (0 before any sample). */
  get value(): number {
    return this.#v0;
  }

  /** Starts over with a single sample. */
  reset(t: number, v: number): void {
    this.#v0 = this.#v1 = this.#v2 = v;
    this.#t0 = this.#t1 = this.#t2 = t;
  }

  /**
   * Adds sample `v` at time `t` (never before the last one).
   * @returns the maximum over the window now
   */
  update(t: number, v: number): number {
    if (v >= this.#v0 || t - this.#t2 > this.window) {
      // A new best, or nothing in the window any more: it is all three.
      this.reset(t, v);
      return v;
    }
    if (v >= this.#v1) {
      this.#v1 = this.#v2 = v;
      this.#t1 = this.#t2 = t;
    } else if (v >= this.#v2) {
      this.#v2 = v;
      this.#t2 = t;
    }
    // Age the samples out: the best first, then the second.
    if (t - this.#t0 > this.window) {
      this.#shift(t, v);
      if (t - this.#t0 > this.window) this.#shift(t, v);
    } else if (this.#t1 === this.#t0 && t - this.#t1 > this.window / 4) {
      // A quarter of the window passed with no second best: take one now.
      this.#v1 = this.#v2 = v;
      this.#t1 = this.#t2 = t;
    } else if (this.#t2 === this.#t1 && t - this.#t2 > this.window / 2) {
      this.#v2 = v;
      this.#t2 = t;
    }
    return this.#v0;
  }

  /** The best ages out: the second and third move up, the sample (t, v) comes third. */
  #shift(t: number, v: number): void {
    this.#v0 = this.#v1;
    this.#t0 = this.#t1;
    this.#v1 = this.#v2;
    this.#t1 = this.#t2;
    this.#v2 = v;
    this.#t2 = t;
  }
}
