/**
 * Theory of operation: the send-side scoreboard of one connection (RFC 6675
 * §3, RFC 8985 §5.2): one record per segment in flight, from SND.UNA to
 * SND.MAX, in sequence order, each with its last transmission time and three
 * flags — SACKED (the peer holds it, RFC 2018), LOST (detected lost and not
 * sent again since) and RETRANS (sent again at least once; never cleared).
 *
 * Records are the segments as first sent, so SACK blocks (which the receiver
 * builds from the segments it got) cover whole records; a retransmission
 * re-sends one record (split first when it no longer fits one segment), so
 * the boundaries stay aligned. A block that covers only part of a record does
 * not mark it (conservative: it may be sent again).
 *
 * Counters kept in step with the flags give RFC 6675's pipe without a walk:
 * `pipe = flight - sacked - lost` (a record sent again after it was marked
 * lost is in flight once, like Linux's packets_out - sacked_out - lost_out +
 * retrans_out).
 *
 * Send-time order (RFC 8985 §6.2 step 5 walks segments oldest first): a record
 * sent once is older than every record after it; a retransmitted one carries
 * its new time. RACK compares each record's (time, end) with its own
 * (`sentAfter`), so walking in sequence order gives the same verdicts as
 * walking in time order; only the early exit is lost, and the flight is at
 * most a few hundred records.
 *
 * Delivery-rate snapshots (draft-cheng-iccrg-delivery-rate-estimation §3.2,
 * for a rate-based congestion controller, cc/rate.ts): with `rate` on, each
 * record also holds what the connection had delivered when it was last sent,
 * when that delivery happened and when the flight it belongs to began, plus
 * an APP_LIMITED flag; three more columns, made only for such connections.
 *
 * Storage: parallel typed arrays as a ring, allocated on the first send,
 * doubled as the flight grows, at most `max` records (then the sender waits:
 * `full`); recovery.ts drops the whole scoreboard when the connection idles.
 * No allocation per segment.
 */
import * as seq from '../wire/seq.js';

/** The peer holds this record (SACK). */
export const SACKED = 1;
/** Detected lost, not sent again since. */
export const LOST = 2;
/** Sent again at least once. */
export const RETRANS = 4;
/** Sent while the sender was application-limited (delivery-rate snapshot). */
export const APP_LIMITED = 8;

/** Receives the records an ACK or SACK block newly delivers (RACK, RFC 8985 §6.2 step 2). */
export interface DeliverySink {
  /**
   * @param ts the record's last transmission time @param end its end sequence number
   * @param flags its flags before delivery @param i its index (still valid during the call)
   */
  delivered(ts: number, end: number, flags: number, i: number): void;
}

const INITIAL = 16;

/** Per-segment records of the flight (see the file comment). */
export class Scoreboard {
  #start: Uint32Array | null = null;
  #end: Uint32Array | null = null;
  #ts: Float64Array | null = null;
  #flags: Uint8Array | null = null;
  // Delivery-rate snapshots (only with `rate`): C.delivered, C.delivered_time, C.first_sent_time.
  #dlv: Float64Array | null = null;
  #dlvTime: Float64Array | null = null;
  #firstSent: Float64Array | null = null;
  #mask = 0;
  #head = 0;
  /** Records in flight. */
  count = 0;
  /** Sequence space in the records (SND.MAX - SND.UNA once in step). */
  flight = 0;
  /** Of which SACKed. */
  sacked = 0;
  /** Of which marked lost and not sent again. */
  lost = 0;
  /** Records SACKed (RACK's DupThresh test, RFC 8985 §6.2 step 4). */
  sackedRecords = 0;
  /** Sends refused because `max` records were in flight (a bound hit). */
  nFull = 0;

  /**
   * @param max most records in flight (a bound: the sender then waits for ACKs)
   * @param rate keep delivery-rate snapshots per record (`snapshot`)
   */
  constructor(
    readonly max = 2048,
    readonly rate = false,
  ) {}

  /** RFC 6675 pipe: bytes (sequence space) believed in the network. */
  get pipe(): number {
    return this.flight - this.sacked - this.lost;
  }

  /** No room for another record: the sender must wait for an ACK. */
  get full(): boolean {
    return this.count >= this.max;
  }

  #at(i: number): number {
    return (this.#head + i) & this.#mask;
  }

  /** Start sequence number of record i (0 = the one at SND.UNA). */
  start(i: number): number {
    return this.#start![this.#at(i)]!;
  }
  /** End sequence number (exclusive) of record i. */
  end(i: number): number {
    return this.#end![this.#at(i)]!;
  }
  /** Last transmission time of record i (ms). */
  ts(i: number): number {
    return this.#ts![this.#at(i)]!;
  }
  /** Flags of record i. */
  flags(i: number): number {
    return this.#flags![this.#at(i)]!;
  }
  /** Sequence length of record i. */
  len(i: number): number {
    return seq.sub(this.end(i), this.start(i));
  }
  /** Bytes the connection had delivered when record i was last sent (with `rate`). */
  snapDelivered(i: number): number {
    return this.#dlv![this.#at(i)]!;
  }
  /** When that delivery happened (ms, with `rate`). */
  snapDeliveredTime(i: number): number {
    return this.#dlvTime![this.#at(i)]!;
  }
  /** When the flight record i was sent in began (ms, with `rate`). */
  snapFirstSent(i: number): number {
    return this.#firstSent![this.#at(i)]!;
  }

  /**
   * Records the delivery-rate snapshot of record i as it is (re)sent
   * (draft-cheng-iccrg-delivery-rate-estimation §3.2); needs `rate`.
   */
  snapshot(i: number, delivered: number, deliveredTime: number, firstSent: number, appLimited: boolean): void {
    const j = this.#at(i);
    this.#dlv![j] = delivered;
    this.#dlvTime![j] = deliveredTime;
    this.#firstSent![j] = firstSent;
    this.#flags![j] = appLimited ? this.#flags![j]! | APP_LIMITED : this.#flags![j]! & ~APP_LIMITED;
  }

  #grow(): void {
    const cap = this.#start === null ? INITIAL : this.#start.length * 2;
    const s = new Uint32Array(cap);
    const e = new Uint32Array(cap);
    const t = new Float64Array(cap);
    const f = new Uint8Array(cap);
    for (let i = 0; i < this.count; i++) {
      const j = this.#at(i);
      s[i] = this.#start![j]!;
      e[i] = this.#end![j]!;
      t[i] = this.#ts![j]!;
      f[i] = this.#flags![j]!;
    }
    this.#start = s;
    this.#end = e;
    this.#ts = t;
    this.#flags = f;
    if (this.rate) {
      this.#dlv = this.#regrow(this.#dlv, cap);
      this.#dlvTime = this.#regrow(this.#dlvTime, cap);
      this.#firstSent = this.#regrow(this.#firstSent, cap);
    }
    this.#head = 0;
    this.#mask = cap - 1;
  }

  /** A snapshot column at capacity `cap`, its records moved to the front (as #grow does the others). */
  #regrow(a: Float64Array | null, cap: number): Float64Array {
    const n = new Float64Array(cap);
    if (a !== null) for (let i = 0; i < this.count; i++) n[i] = a[this.#at(i)]!;
    return n;
  }

  /**
   * A first transmission of [start, end) at `now` (it follows the last
   * record). @returns false when `max` records are in flight (counted)
   */
  append(start: number, end: number, now: number): boolean {
    if (this.count >= this.max) {
      this.nFull++;
      return false;
    }
    if (this.#start === null || this.count === this.#start.length) this.#grow();
    const j = this.#at(this.count++);
    this.#start![j] = start >>> 0;
    this.#end![j] = end >>> 0;
    this.#ts![j] = now;
    this.#flags![j] = 0;
    this.flight += seq.sub(end, start);
    return true;
  }

  #setFlags(i: number, f: number): void {
    const j = this.#at(i);
    const old = this.#flags![j]!;
    const n = seq.sub(this.#end![j]!, this.#start![j]!);
    if ((old & SACKED) !== (f & SACKED)) {
      this.sacked += f & SACKED ? n : -n;
      this.sackedRecords += f & SACKED ? 1 : -1;
    }
    if ((old & LOST) !== (f & LOST)) this.lost += f & LOST ? n : -n;
    this.#flags![j] = f;
  }

  /**
   * SND.UNA moved to `una`: drops the records below it (a partly
   * acknowledged one is trimmed), telling `sink` about every one not SACKed
   * before (RFC 8985 §6.2 step 1-2).
   */
  advance(una: number, sink: DeliverySink | null): void {
    while (this.count > 0) {
      const j = this.#head;
      const s = this.#start![j]!;
      const e = this.#end![j]!;
      if (!seq.gt(una, s)) break;
      const f = this.#flags![j]!;
      if (seq.le(e, una)) {
        if (sink !== null && (f & SACKED) === 0) sink.delivered(this.#ts![j]!, e, f, 0);
        this.#setFlags(0, 0);
        this.flight -= seq.sub(e, s);
        this.#head = (j + 1) & this.#mask;
        this.count--;
      } else {
        // Partly acknowledged (the receiver trimmed, or a split we did not make): keep the rest.
        const cut = seq.sub(una, s);
        if (f & SACKED) this.sacked -= cut;
        if (f & LOST) this.lost -= cut;
        this.flight -= cut;
        this.#start![j] = una >>> 0;
        break;
      }
    }
  }

  /**
   * A SACK block [l, r): marks the records inside it SACKED, telling `sink`
   * about each. @returns sequence space newly SACKed
   */
  sack(l: number, r: number, sink: DeliverySink | null): number {
    if (this.count === 0) return 0;
    let i = this.#find(l);
    let n = 0;
    for (; i < this.count; i++) {
      const s = this.start(i);
      const e = this.end(i);
      if (seq.lt(s, l)) continue; // starts before the block: only partly covered
      if (seq.gt(e, r)) break;
      const f = this.flags(i);
      if (f & SACKED) continue;
      if (sink !== null) sink.delivered(this.ts(i), e, f, i);
      this.#setFlags(i, (f | SACKED) & ~LOST);
      n += seq.sub(e, s);
    }
    return n;
  }

  /** Index of the first record whose end is after `x` (binary search; count when none). */
  #find(x: number): number {
    if (this.count === 0) return 0;
    const base = this.start(0);
    const rx = seq.sub(x, base);
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seq.sub(this.end(mid), base) <= rx) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Marks record i lost (RACK or an RTO): it leaves the pipe until sent again. */
  markLost(i: number): void {
    const f = this.flags(i);
    if (f & (SACKED | LOST)) return;
    this.#setFlags(i, f | LOST);
  }

  /** Record i was sent again at `now`: back in the pipe, RETRANS. */
  retransmitted(i: number, now: number): void {
    this.#setFlags(i, (this.flags(i) & ~LOST) | RETRANS);
    this.#ts![this.#at(i)] = now;
  }

  /**
   * Splits record i after `n` sequence numbers (a retransmission that must
   * be shorter than the record). @returns false when no room (the caller
   * then sends the first part only, as a partial retransmission)
   */
  split(i: number, n: number): boolean {
    if (n <= 0 || n >= this.len(i)) return true;
    if (this.count >= this.max) {
      this.nFull++;
      return false;
    }
    if (this.count === this.#start!.length) this.#grow();
    // Shift records i+1.. one place toward the tail.
    for (let k = this.count; k > i + 1; k--) {
      const to = this.#at(k);
      const from = this.#at(k - 1);
      this.#start![to] = this.#start![from]!;
      this.#end![to] = this.#end![from]!;
      this.#ts![to] = this.#ts![from]!;
      this.#flags![to] = this.#flags![from]!;
      if (this.rate) this.#copySnapshot(from, to);
    }
    const a = this.#at(i);
    const b = this.#at(i + 1);
    const mid = seq.add(this.#start![a]!, n);
    this.#start![b] = mid;
    this.#end![b] = this.#end![a]!;
    this.#ts![b] = this.#ts![a]!;
    this.#flags![b] = this.#flags![a]!;
    if (this.rate) this.#copySnapshot(a, b);
    this.#end![a] = mid;
    this.count++;
    if (this.#flags![a]! & SACKED) this.sackedRecords++;
    return true;
  }

  /** Copies the delivery-rate snapshot of ring slot `from` to slot `to`. */
  #copySnapshot(from: number, to: number): void {
    this.#dlv![to] = this.#dlv![from]!;
    this.#dlvTime![to] = this.#dlvTime![from]!;
    this.#firstSent![to] = this.#firstSent![from]!;
  }

  /**
   * A retransmission timeout (RFC 8985 §6.3, RFC 6675 §5.1): every record
   * not SACKed is lost. If the record at SND.UNA is SACKED, the receiver has
   * reneged (RFC 2018 §8): every SACK mark is forgotten.
   */
  markAllLost(): void {
    if (this.count === 0) return;
    const reneged = (this.flags(0) & SACKED) !== 0;
    for (let i = 0; i < this.count; i++) {
      const f = reneged ? this.flags(i) & ~SACKED : this.flags(i);
      this.#setFlags(i, f & SACKED ? f : f | LOST);
    }
  }

  /** Clears every LOST mark (an undone episode: they were not lost). */
  unmarkLost(): void {
    if (this.lost === 0) return;
    for (let i = 0; i < this.count; i++) {
      const f = this.flags(i);
      if (f & LOST) this.#setFlags(i, f & ~LOST);
    }
  }

  /** Index of the first LOST record at or after `from`, or -1. */
  nextLost(from: number): number {
    if (this.lost === 0) return -1;
    for (let i = from; i < this.count; i++) if (this.flags(i) & LOST) return i;
    return -1;
  }

  /** Forgets every record (the connection's send sequence space ended). */
  clear(): void {
    this.count = 0;
    this.#head = 0;
    this.flight = this.sacked = this.lost = this.sackedRecords = 0;
  }
}
