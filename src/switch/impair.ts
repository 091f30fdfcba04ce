/**
 * Theory of operation: link faults for one direction of one switch port,
 * sans-IO: what `tc netem` (Linux, root) and VDE's `wirefilter` do to a
 * link, with time and randomness injected. The switch's I/O edge
 * (impair-port.ts) owns two of these per impaired port, one per direction,
 * and a timer; this file never reads a clock.
 *
 * A frame offered at time `now` goes through these steps, in netem's order
 * (net/sched/sch_netem.c, netem_enqueue):
 * 1. down: the link is down; the frame is lost (`down`).
 * 2. loss: lost with probability `loss` (`lost`). Random (independent per
 *    frame) by default; with `lossBurst` > 1, bursty: a two-state
 *    Gilbert-Elliott chain (Gilbert 1960, Elliott 1963; netem's `gemodel`
 *    with 1-h = 100%, 1-k = 0%) where the bad state loses every frame, the
 *    good state none, a bad state lasts `lossBurst` frames on average
 *    (r = 1/lossBurst) and p = loss·r/(1-loss), so the long-run loss rate
 *    is still `loss` (the chain's stationary bad-state share p/(p+r)).
 * 3. corrupt: with probability `corrupt`, one random bit of a copy is
 *    flipped, past the 14-byte Ethernet header (`corrupted`). A real link's
 *    FCS check would drop such a frame; this one is delivered, as netem's
 *    is, for the checksums above Ethernet to find.
 * 4. duplicate: with probability `dup`, the frame goes twice (`duplicated`).
 * 5. timing. With `rateBps`, the link sends one frame at a time: a frame
 *    starts when the link is free and takes len·8/rate (its Ethernet bytes,
 *    no preamble or FCS), and leaves when its last bit is out; then `delayMs`
 *    plus a uniform jitter in [-jitterMs, +jitterMs] (never below 0). The
 *    link's "free at" time is kept apart from when frames really leave, so a
 *    late timer batches frames but never lowers the rate. Frames leave in
 *    the order they came (a frame due earlier than the one ahead of it waits
 *    for it: jitter alone never reorders, unlike netem's tfifo).
 * 6. reorder: with probability `reorder` (only with a delay, as netem), a
 *    frame skips the delay and the queue and goes at once, ahead of the
 *    frames held (`reordered` when any were held).
 * A frame with no time to wait, and nothing held ahead of it, goes at once.
 *
 * Bounded. Held frames are copied into one arena allocated when the link is
 * configured (`limit` frames, default 1000 as netem's, and at most
 * limit × maxFrame bytes, capped at 8 MiB); a frame that does not fit is
 * dropped (`queueFull`): a rate limit with a faster sender is a tail-drop
 * queue, as netem's is. Taking the link down drops what is held (`flushed`).
 *
 * Randomness comes from a seeded {@link Prng}: the same seed and the same
 * frames at the same times give the same faults.
 */
import { copyBytes } from '../link/stream-framer.js';
import { Prng } from './prng.js';

/** How one direction of a link misbehaves. */
export interface ImpairSettings {
  /** The link is down: every frame is lost. */
  down: boolean;
  /** Fixed delay in ms. */
  delayMs: number;
  /** Uniform jitter in ms around the delay (± jitterMs). */
  jitterMs: number;
  /** Loss probability, 0..1. */
  loss: number;
  /** Mean length of a loss burst in frames; 1: independent losses (Gilbert-Elliott above 1). */
  lossBurst: number;
  /** Duplication probability, 0..1. */
  dup: number;
  /** Probability of one flipped bit, 0..1. */
  corrupt: number;
  /** Probability that a frame skips the delay, 0..1 (needs a delay). */
  reorder: number;
  /** Rate limit in bits per second; 0: none. */
  rateBps: number;
  /** Most frames held (delayed or waiting for the rate limit). */
  limit: number;
  /** PRNG seed. */
  seed: number;
}

/** What the faults did to frames in one direction. */
export interface ImpairCounters {
  /** Frames offered to the link. */
  offered: number;
  /** Frames that left it (duplicates included). */
  delivered: number;
  /** Lost because the link was down. */
  down: number;
  /** Lost by the loss setting (random or in a burst). */
  lost: number;
  /** Loss bursts begun (Gilbert-Elliott bad states entered). */
  lossBursts: number;
  /** Frames with a bit flipped. */
  corrupted: number;
  /** Frames sent twice. */
  duplicated: number;
  /** Frames that went ahead of held ones. */
  reordered: number;
  /** Frames held for a delay or the rate limit. */
  held: number;
  /** Dropped because the hold queue was full (frames or bytes). */
  queueFull: number;
  /** Held frames dropped when the link went down or was reconfigured. */
  flushed: number;
  /** Held frames dropped on release because the port was congested (counted by the edge). */
  congested: number;
}

/** Where a frame goes when it leaves (lent bytes, as FramePort.sendFrame). */
export type Deliver = (buf: Uint8Array, view: DataView, off: number, len: number) => void;

/** Settings of a perfect link. */
export const PERFECT: Readonly<ImpairSettings> = Object.freeze({
  down: false,
  delayMs: 0,
  jitterMs: 0,
  loss: 0,
  lossBurst: 1,
  dup: 0,
  corrupt: 0,
  reorder: 0,
  rateBps: 0,
  limit: 1000,
  seed: 1,
});

/** True when the settings change nothing (the seed and limit aside). */
export function isPerfect(s: ImpairSettings): boolean {
  return !s.down && s.delayMs === 0 && s.jitterMs === 0 && s.loss === 0 && s.dup === 0 && s.corrupt === 0 && s.reorder === 0 && s.rateBps === 0;
}

const MAX_ARENA = 8 * 1024 * 1024;

/** A zeroed set of counters. */
export const newImpairCounters = (): ImpairCounters => ({
  offered: 0,
  delivered: 0,
  down: 0,
  lost: 0,
  lossBursts: 0,
  corrupted: 0,
  duplicated: 0,
  reordered: 0,
  held: 0,
  queueFull: 0,
  flushed: 0,
  congested: 0,
});

/** One direction of an impaired link. See Theory of operation. */
export class Impairment {
  readonly counters: ImpairCounters = newImpairCounters();
  #s: ImpairSettings = { ...PERFECT };
  #rng = new Prng(1);
  /** Gilbert-Elliott: in the bad state; p (good→bad) and r (bad→good). */
  #bad = false;
  #p = 0;
  #r = 1;
  /** When the rate-limited link is free again (ms). */
  #linkFree = -Infinity;
  /** Due time of the newest held frame (frames leave in order). */
  #lastDue = -Infinity;

  // The hold queue: a ring of frames in one arena.
  #arena = new Uint8Array(0);
  #view = new DataView(this.#arena.buffer);
  #due = new Float64Array(0);
  #offs = new Int32Array(0);
  #lens = new Int32Array(0);
  #head = 0;
  #count = 0;
  /** Arena offset just past the newest held frame. */
  #wr = 0;
  readonly #maxFrame: number;
  /** Scratch for a corrupted frame that goes at once. */
  readonly #scratch: Uint8Array;
  readonly #scratchView: DataView;

  /**
   * @param maxFrame largest frame the switch passes (switch.maxFrame)
   * @param settings initial settings (validated by the caller: config/link.ts)
   */
  constructor(maxFrame: number, settings: ImpairSettings) {
    this.#maxFrame = maxFrame;
    this.#scratch = new Uint8Array(maxFrame);
    this.#scratchView = new DataView(this.#scratch.buffer);
    this.configure(settings, true);
  }

  /** The settings in force. */
  get settings(): Readonly<ImpairSettings> {
    return this.#s;
  }

  /** Frames held. */
  get queued(): number {
    return this.#count;
  }

  /**
   * Changes the settings at run time. Held frames stay (and leave at the
   * times already given them) unless the link goes down or the limit
   * changes: then they are dropped (`flushed`).
   * @param reseed restart the generator from `settings.seed` (a seed was given)
   */
  configure(settings: ImpairSettings, reseed: boolean): void {
    const old = this.#s;
    this.#s = { ...settings };
    if (reseed) {
      this.#rng = new Prng(settings.seed);
      this.#bad = false;
    }
    this.#r = settings.lossBurst > 1 ? 1 / settings.lossBurst : 1;
    this.#p = settings.loss >= 1 ? 1 : (settings.loss * this.#r) / (1 - settings.loss);
    if (settings.rateBps !== old.rateBps) this.#linkFree = -Infinity;
    if (settings.down || this.#due.length !== settings.limit) {
      this.#flush();
      if (this.#due.length !== settings.limit) this.#alloc(settings.limit);
    }
  }

  /**
   * Offers one frame (bytes lent for the call).
   * @param now the time in ms
   * @param out where frames that leave at once go (held ones leave by {@link poll})
   */
  offer(buf: Uint8Array, view: DataView, off: number, len: number, now: number, out: Deliver): void {
    const s = this.#s;
    const c = this.counters;
    c.offered++;
    if (s.down) {
      c.down++;
      return;
    }
    if (s.loss > 0 && this.#lose()) {
      c.lost++;
      return;
    }
    let copies = 1;
    if (s.dup > 0 && this.#rng.next() < s.dup) {
      copies = 2;
      c.duplicated++;
    }
    let flip = -1;
    if (s.corrupt > 0 && len > 14 && this.#rng.next() < s.corrupt) {
      flip = 14 * 8 + Math.floor(this.#rng.next() * (len - 14) * 8);
      c.corrupted++;
    }
    for (let k = 0; k < copies; k++) {
      let due = now;
      if (s.rateBps > 0) {
        this.#linkFree = Math.max(this.#linkFree, now) + (len * 8000) / s.rateBps;
        due = this.#linkFree;
      }
      let skip = false;
      if (s.delayMs > 0 || s.jitterMs > 0) {
        if (s.reorder > 0 && this.#rng.next() < s.reorder) {
          skip = true;
          if (this.#count > 0) c.reordered++;
        } else {
          due += Math.max(0, s.delayMs + (s.jitterMs > 0 ? (2 * this.#rng.next() - 1) * s.jitterMs : 0));
        }
      }
      if (skip || (due <= now && this.#count === 0)) {
        this.#send(buf, view, off, len, flip, out);
      } else {
        this.#hold(buf, off, len, Math.max(due, this.#lastDue), flip);
      }
    }
  }

  /**
   * Sends every held frame that is due.
   * @param now the time in ms
   */
  poll(now: number, out: Deliver): void {
    while (this.#count > 0) {
      const i = this.#head;
      if (this.#due[i]! > now) return;
      this.#head = i + 1 === this.#due.length ? 0 : i + 1;
      this.#count--;
      this.counters.delivered++;
      out(this.#arena, this.#view, this.#offs[i]!, this.#lens[i]!);
    }
  }

  /** When the next held frame is due (ms), or Infinity when none is held. */
  nextDue(): number {
    return this.#count > 0 ? this.#due[this.#head]! : Infinity;
  }

  /** Gilbert-Elliott (or independent) loss decision for one frame. */
  #lose(): boolean {
    const x = this.#rng.next();
    if (this.#r >= 1) return x < this.#s.loss;
    if (this.#bad) {
      if (x < this.#r) this.#bad = false;
    } else if (x < this.#p) {
      this.#bad = true;
      this.counters.lossBursts++;
    }
    return this.#bad;
  }

  #send(buf: Uint8Array, view: DataView, off: number, len: number, flip: number, out: Deliver): void {
    this.counters.delivered++;
    if (flip < 0) return out(buf, view, off, len);
    copyBytes(this.#scratch, 0, buf, off, len);
    this.#scratch[flip >>> 3]! ^= 1 << (flip & 7);
    out(this.#scratch, this.#scratchView, 0, len);
  }

  #hold(buf: Uint8Array, off: number, len: number, due: number, flip: number): void {
    const at = this.#room(len);
    if (at < 0) {
      this.counters.queueFull++;
      return;
    }
    copyBytes(this.#arena, at, buf, off, len);
    if (flip >= 0) this.#arena[at + (flip >>> 3)]! ^= 1 << (flip & 7);
    let i = this.#head + this.#count;
    if (i >= this.#due.length) i -= this.#due.length;
    this.#due[i] = due;
    this.#offs[i] = at;
    this.#lens[i] = len;
    this.#count++;
    this.#wr = at + len;
    this.#lastDue = due;
    this.counters.held++;
  }

  /** Where a frame of `len` bytes goes in the arena, or -1 (frames or bytes full). */
  #room(len: number): number {
    if (this.#count >= this.#due.length || len > this.#arena.length) return -1;
    if (this.#count === 0) return 0;
    const oldest = this.#offs[this.#head]!;
    const wr = this.#wr;
    if (wr > oldest) {
      // Held bytes run from oldest to wr: room at the end, else at the start.
      if (wr + len <= this.#arena.length) return wr;
      return len <= oldest ? 0 : -1;
    }
    // Wrapped: the free bytes are between wr and oldest.
    return wr + len <= oldest ? wr : -1;
  }

  #flush(): void {
    this.counters.flushed += this.#count;
    this.#count = 0;
    this.#head = 0;
    this.#wr = 0;
    this.#lastDue = -Infinity;
  }

  #alloc(limit: number): void {
    const bytes = Math.min(MAX_ARENA, Math.max(2 * this.#maxFrame, limit * this.#maxFrame));
    this.#arena = new Uint8Array(bytes);
    this.#view = new DataView(this.#arena.buffer);
    this.#due = new Float64Array(limit);
    this.#offs = new Int32Array(limit);
    this.#lens = new Int32Array(limit);
  }
}
