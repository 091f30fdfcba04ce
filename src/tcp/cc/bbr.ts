/**
 * Theory of operation: BBR congestion control (draft-cardwell-iccrg-bbr-
 * congestion-control-00, "BBR v1", with the ACK-aggregation allowance of
 * its later versions) for one SACK connection, sans-IO, time passed in (ms).
 *
 * BBR keeps a model of the path instead of reacting to loss: the bottleneck
 * bandwidth (BtlBw: a windowed maximum of the delivery-rate samples over the
 * last 10 round trips, cc/rate.ts, cc/windowed-max.ts) and the round-trip
 * propagation time (RTprop: the minimum RTT of the last 10 s). Their product
 * is the BDP, and cwnd follows gain × BDP. Random loss (the bench's 5% each
 * way) does not shrink the model: a rate sample measures what was delivered,
 * so a loss costs its retransmission, not half the window as in Reno.
 *
 * States (§4.3):
 * - Startup: gain 2/ln 2 ≈ 2.89, cwnd grows by what each ACK delivers
 *   (doubling per round trip) until the bandwidth stops growing by 25% for
 *   three rounds not limited by the application ("full pipe", §4.3.2.2);
 * - Drain: until what is in flight falls to one BDP (the queue Startup
 *   built);
 * - ProbeBW: an eight-phase gain cycle, one RTprop each: 1.25 (probe for
 *   more bandwidth, until in flight reaches 1.25 BDP or a loss), 0.75 (drain
 *   what the probe queued, or until in flight is down to one BDP), then six
 *   at 1; the first phase is drawn from the connection's random seed (not
 *   the 0.75 one), so that flows do not probe in step;
 * - ProbeRTT: when RTprop has not been refreshed for 10 s, cwnd is 4
 *   segments for max(200 ms, one round trip) so that a queue we built cannot
 *   hide the propagation time, then back to ProbeBW (or Startup).
 *
 * cwnd (§4.2.3, and Linux's bbr_set_cwnd that the draft describes): target
 * = gain × BDP + 3 segments (the send quantum's allowance, `#inflight`) +
 * the ACK aggregation allowance (`extra_acked`: how much more than bw ×
 * elapsed the ACKs of an aggregation epoch delivered, a windowed max over
 * 5-10 rounds, capped at 100 ms × bw) once the pipe is full and outside
 * Drain; cwnd moves toward the target by at most what each ACK delivers (in
 * Startup it only grows), never below 4 segments. Loss (§4.2.3.4):
 * the first ACK of a recovery episode sets cwnd = in flight + delivered, and
 * for one round trip cwnd does not fall below that (packet conservation);
 * then the model's target again, and at the episode's end cwnd is at least
 * what it was before (`priorCwnd`). An RTO keeps the same rules from the loss
 * window recovery.ts sets.
 *
 * Round trips below a millisecond. On a local virtual link RTprop is
 * 0.04-0.7 ms (measured in the bench), shorter than one turn of the
 * gateway's event loop on a loaded host, so data leaves and ACKs come back
 * in batches; the ACK-aggregation allowance is what keeps cwnd above those
 * batches (it made up most of the 0.1-1.6 MB cwnd measured). Computing the
 * BDP from an RTprop of at least 1 ms instead was tried and measured (three
 * interleaved 10 s runs each of the loss row): 398-689 Mbit/s with 5-15
 * RTOs a run, against 1201-1306 with 0-1 RTO without it (not verified why:
 * the larger flight, 0.5-0.8 MB, nears the 1 MiB send buffer, and with the
 * buffer full no new segment follows a lost retransmission for RACK to see
 * it by), so the measured RTprop stays.
 *
 * Pacing: none. BBR proper paces at pacing_gain × BtlBw and bounds the
 * flight by cwnd_gain (2) × BDP; this gateway's sender has only millisecond
 * timers (a Node event loop), so the smallest quantum a pacing timer could
 * release is 1 ms of data at the pacing rate (250 KB at the 2 Gbit/s the
 * loss row's model measured), 13 times the BDP there (RTprop 0.076 ms):
 * paced that coarsely the flight still leaves in bursts of many BDPs, which
 * is what the ACK clock does already. So the gains act on cwnd alone: in a
 * cwnd-limited flight the sending rate is cwnd / RTT, and the phase's gain
 * moves the flight as pacing would move the rate — Startup and
 * its growth with gain 2.89, Drain with gain 1 and no aggregation allowance
 * (in flight must fall to one BDP + 3 segments, Drain's exit test; with a
 * larger cwnd and no pacing it never would: a test caught that), ProbeBW
 * with cwnd_gain + the phase's pacing gain - 1 (2.25, 1.75, then 2),
 * ProbeRTT with 4 segments.
 *
 * Not done: restart from idle (the model is dropped with the scoreboard when
 * the connection idles: recovery.ts `release`, the next burst starts again in
 * Startup from the cwnd it had), and the long-term bandwidth sampling for
 * policers (a local link has none).
 */
import { RateSampler } from './rate.js';
import type { Recovery } from '../recovery.js';
import type { CongestionControl } from './types.js';
import { WindowedMax } from './windowed-max.js';

/** BBR states (§4.3). */
export const STARTUP = 0;
export const DRAIN = 1;
export const PROBE_BW = 2;
export const PROBE_RTT = 3;

/** 2/ln 2: Startup's gain, the smallest that doubles the delivery rate each round (§4.3.2.1). */
export const HIGH_GAIN = 2.885;
/** ProbeBW's cwnd gain (§4.2.3). */
export const CWND_GAIN = 2;
/** ProbeBW's pacing-gain cycle (§4.3.3.1). */
export const GAIN_CYCLE: readonly number[] = [1.25, 0.75, 1, 1, 1, 1, 1, 1];
/** BtlBw filter window, round trips (§4.1.1). */
export const BW_WINDOW = 10;
/** RTprop filter window, ms (§4.1.2). */
export const MIN_RTT_WINDOW = 10_000;
/** ProbeRTT's least duration, ms (§4.3.4). */
export const PROBE_RTT_TIME = 200;
/** Full pipe: growth below this factor for FULL_BW_ROUNDS rounds (§4.3.2.2). */
export const FULL_BW_THRESH = 1.25;
export const FULL_BW_ROUNDS = 3;
/** The least cwnd, segments (§4.2.3.1). */
export const MIN_CWND_SEGS = 4;
/** ACK aggregation: the max filter's window (rounds, in two halves) and the allowance's cap (ms of bw). */
export const EXTRA_ACKED_ROUNDS = 5;
export const EXTRA_ACKED_MAX_MS = 100;

/** One connection's BBR: the path model, its state machine and the rate sampler feeding it. */
export class Bbr implements CongestionControl {
  /** Delivery-rate estimation (cc/rate.ts); recovery.ts feeds it from the scoreboard. */
  readonly rate = new RateSampler();
  /** STARTUP, DRAIN, PROBE_BW or PROBE_RTT. */
  state = STARTUP;
  readonly #bw = new WindowedMax(BW_WINDOW);
  /** RTprop estimate (ms), Infinity before a sample. */
  minRtt = Infinity;
  #minRttStamp = 0;
  /** Round trips counted (§4.1.1.3), and whether this ACK began one. */
  rounds = 0;
  #roundStart = false;
  #nextRoundDelivered = 0;
  /** Full pipe detection. */
  filledPipe = false;
  #fullBw = 0;
  #fullBwCount = 0;
  /** ProbeBW phase (index into GAIN_CYCLE) and when it began. */
  cycleIndex = 0;
  #cycleStamp = 0;
  #probeRttDone = -1;
  #probeRttRoundDone = false;
  /** Loss: packet conservation for a round; cwnd before the episode. */
  #conservation = false;
  #cutPending = false;
  #priorCwnd = 0;
  // ACK aggregation (extra_acked): the epoch, and a max over two half-windows.
  #ackEpochStamp = 0;
  #ackEpochAcked = 0;
  #extraAcked0 = 0;
  #extraAcked1 = 0;
  #extraAckedSlot = 0;
  #extraAckedRounds = 0;

  /** @param seed random bits (the connection's ISN) for ProbeBW's first phase */
  constructor(readonly seed: number) {}

  /** BtlBw: bytes per ms (0 before a sample). */
  get bw(): number {
    return this.#bw.value;
  }

  /** The BDP times `gain` (bytes); before an RTT sample, the initial window. */
  #bdp(r: Recovery, gain: number): number {
    if (this.minRtt === Infinity || this.bw === 0) return 10 * r.c.smss;
    return gain * this.bw * this.minRtt;
  }

  /**
   * What may be in flight at `gain` (Linux's bbr_inflight): gain × BDP plus
   * three segments for the send quantum, whole bytes (the sender's segment
   * arithmetic is integral), at least the cwnd floor.
   */
  #inflight(r: Recovery, gain: number): number {
    const smss = r.c.smss;
    return Math.max(Math.floor(this.#bdp(r, gain)) + 3 * smss, MIN_CWND_SEGS * smss);
  }

  /** The gain on the BDP that cwnd aims at now (see "Pacing" in the file comment). */
  get #gain(): number {
    switch (this.state) {
      case STARTUP:
        return HIGH_GAIN;
      case DRAIN:
        return 1;
      case PROBE_BW:
        return CWND_GAIN + GAIN_CYCLE[this.cycleIndex]! - 1;
      default:
        return 1;
    }
  }

  onAdvance(): void {}

  onRecoveryStart(r: Recovery): void {
    this.#saveCwnd(r);
    this.#conservation = true;
    this.#cutPending = true;
    this.#nextRoundDelivered = this.rate.delivered;
  }

  onRecoveryEnd(r: Recovery): void {
    r.cwnd = Math.max(r.cwnd, this.#priorCwnd);
    this.#conservation = false;
    this.#cutPending = false;
  }

  onRto(r: Recovery): void {
    this.#saveCwnd(r);
    this.#conservation = true;
    this.#cutPending = false; // recovery.ts sets the loss window
    this.#nextRoundDelivered = this.rate.delivered;
    this.#fullBw = 0; // Linux: the full-pipe count starts over after a timeout
    this.#fullBwCount = 0;
  }

  /** Remembers cwnd before an episode (max with the last one when inside one or in ProbeRTT). */
  #saveCwnd(r: Recovery): void {
    if (r.inRecovery || r.inLoss || this.state === PROBE_RTT) this.#priorCwnd = Math.max(this.#priorCwnd, r.cwnd);
    else this.#priorCwnd = r.cwnd;
  }

  onAck(r: Recovery, delivered: number, now: number): void {
    const rs = this.rate;
    const smss = r.c.smss;
    const pipe = r.sb.pipe;
    const haveSample = rs.sample(now);
    this.#roundStart = false;
    if (haveSample) {
      // Round trips (§4.1.1.3): one ends when a segment sent after the last one began is delivered.
      if (rs.priorDelivered >= this.#nextRoundDelivered) {
        this.#nextRoundDelivered = rs.delivered;
        this.rounds++;
        this.#roundStart = true;
        this.#conservation = false;
      }
      // BtlBw (§4.1.1.5): app-limited samples only when they raise it.
      if (rs.rate >= 0 && (rs.rate >= this.bw || !rs.isAppLimited)) this.#bw.update(this.rounds, rs.rate);
    }
    this.#ackAggregation(now, delivered);
    if (this.state === PROBE_BW) this.#cycle(r, now, pipe);
    if (this.#roundStart && !rs.isAppLimited && !this.filledPipe) this.#checkFullPipe();
    if (this.state === STARTUP && this.filledPipe) this.state = DRAIN;
    if (this.state === DRAIN && pipe <= this.#inflight(r, 1)) this.#enterProbeBw(now);
    this.#updateMinRtt(r, now, pipe);
    this.#setCwnd(r, delivered, pipe, smss);
  }

  #checkFullPipe(): void {
    if (this.bw >= this.#fullBw * FULL_BW_THRESH) {
      this.#fullBw = this.bw;
      this.#fullBwCount = 0;
      return;
    }
    if (++this.#fullBwCount >= FULL_BW_ROUNDS) this.filledPipe = true;
  }

  #enterProbeBw(now: number): void {
    this.state = PROBE_BW;
    // Any phase but the draining one (index 1) first.
    const k = (this.seed >>> 0) % (GAIN_CYCLE.length - 1);
    this.cycleIndex = k === 0 ? 0 : k + 1;
    this.#cycleStamp = now;
  }

  /** ProbeBW's phase advance (§4.3.3.1). */
  #cycle(r: Recovery, now: number, pipe: number): void {
    const g = GAIN_CYCLE[this.cycleIndex]!;
    const full = now - this.#cycleStamp > this.minRtt;
    let next: boolean;
    if (g === 1) next = full;
    else if (g > 1) next = full && (r.sb.lost > 0 || pipe >= this.#inflight(r, g));
    else next = full || pipe <= this.#inflight(r, 1);
    if (next) {
      this.cycleIndex = (this.cycleIndex + 1) % GAIN_CYCLE.length;
      this.#cycleStamp = now;
    }
  }

  /** RTprop (§4.1.2) and ProbeRTT (§4.3.4). */
  #updateMinRtt(r: Recovery, now: number, pipe: number): void {
    const rtt = this.rate.rtt;
    const expired = now > this.#minRttStamp + MIN_RTT_WINDOW;
    if (rtt >= 0 && (rtt < this.minRtt || expired)) {
      this.minRtt = rtt;
      this.#minRttStamp = now;
    }
    if (expired && this.state !== PROBE_RTT && this.minRtt !== Infinity) {
      this.#saveCwnd(r);
      this.state = PROBE_RTT;
      this.#probeRttDone = -1;
    }
    if (this.state !== PROBE_RTT) return;
    if (this.#probeRttDone < 0 && pipe <= MIN_CWND_SEGS * r.c.smss) {
      this.#probeRttDone = now + PROBE_RTT_TIME;
      this.#probeRttRoundDone = false;
      this.#nextRoundDelivered = this.rate.delivered;
    } else if (this.#probeRttDone >= 0) {
      if (this.#roundStart) this.#probeRttRoundDone = true;
      if (this.#probeRttRoundDone && now >= this.#probeRttDone) {
        this.#minRttStamp = now;
        r.cwnd = Math.max(r.cwnd, this.#priorCwnd);
        if (this.filledPipe) this.#enterProbeBw(now);
        else this.state = STARTUP;
      }
    }
  }

  /**
   * ACK aggregation (extra_acked): an epoch starts when the ACKs fall behind
   * bw × elapsed; what they deliver beyond that is how much data arrives in
   * bursts the model's rate does not show. A max over 5-10 round trips, each
   * sample at most 100 ms of bw (Linux also caps it at cwnd; not done here,
   * unmeasured: the flight is bounded by the send buffer and the link anyway).
   */
  #ackAggregation(now: number, delivered: number): void {
    if (this.bw === 0 || delivered <= 0) return;
    if (this.#roundStart && ++this.#extraAckedRounds >= EXTRA_ACKED_ROUNDS) {
      this.#extraAckedRounds = 0;
      this.#extraAckedSlot ^= 1;
      if (this.#extraAckedSlot === 0) this.#extraAcked0 = 0;
      else this.#extraAcked1 = 0;
    }
    let expected = this.bw * (now - this.#ackEpochStamp);
    if (this.#ackEpochAcked <= expected) {
      this.#ackEpochAcked = 0;
      this.#ackEpochStamp = now;
      expected = 0;
    }
    this.#ackEpochAcked += delivered;
    const extra = Math.min(this.#ackEpochAcked - expected, EXTRA_ACKED_MAX_MS * this.bw);
    if (this.#extraAckedSlot === 0) {
      if (extra > this.#extraAcked0) this.#extraAcked0 = extra;
    } else if (extra > this.#extraAcked1) this.#extraAcked1 = extra;
  }

  /** The aggregation allowance (bytes). */
  get extraAcked(): number {
    return Math.max(this.#extraAcked0, this.#extraAcked1);
  }

  /** cwnd (§4.2.3): toward gain × BDP + allowances, by at most what was delivered; loss rules first. */
  #setCwnd(r: Recovery, delivered: number, pipe: number, smss: number): void {
    const floor = MIN_CWND_SEGS * smss;
    if (this.state === PROBE_RTT) {
      r.cwnd = floor;
      return;
    }
    if (delivered <= 0) return;
    if (this.#cutPending) {
      // The first ACK of an episode: what is in flight plus what this ACK delivered.
      this.#cutPending = false;
      r.cwnd = Math.max(pipe + delivered, floor);
      return;
    }
    if (this.#conservation) {
      r.cwnd = Math.max(r.cwnd, pipe + delivered, floor);
      return;
    }
    let target = this.#inflight(r, this.#gain);
    // The aggregation allowance once the pipe is full, but not while draining: in flight must come down.
    if (this.filledPipe && this.state !== DRAIN) target += Math.floor(this.extraAcked);
    let cwnd = r.cwnd;
    if (this.filledPipe) cwnd = Math.min(cwnd + delivered, target);
    else if (cwnd < target || this.rate.delivered < 10 * smss) cwnd += delivered;
    r.cwnd = Math.max(cwnd, floor);
  }
}
