/**
 * Theory of operation: what keeps a cabling loop from eating the machine,
 * and what finds it. Sans-IO; time and randomness are injected.
 *
 * vmnet does not run a spanning tree (see README, "Loops"). A loop (two
 * switches joined twice, a port cabled back into its own switch) makes every
 * flooded frame circulate forever. Two mechanisms bound and end that:
 *
 * Storm limit (always on). Each port has a token bucket for the group
 * (broadcast and multicast) frames it receives: `stormRate` frames per
 * second, bursts of `stormBurst`. A frame over the limit is dropped and
 * counted (`drops.storm`). A loop can then only carry group frames at that
 * rate per port, whatever it does, so its cost is bounded from the first
 * frame. Unicast is not limited on a healthy port (a silent receiver's
 * unknown-unicast flood is a normal bulk transfer), only on a suspect one.
 *
 * MAC flap detection. A MAC that moves between ports (fdb.ts) `flapMoves`
 * times within `flapWindowMs` is flapping: a guest does not move 20 times a
 * second, a frame circulating in a loop does. Both ports of the move become
 * suspect: for the next `blockJitterMs + flapWindowMs` they are held to the
 * storm limit for every frame, unicast included (a unicast frame can circle
 * a loop forever without flooding). One of the two is chosen for blocking:
 * never the port the MAC was first learned on (its owner's: so a guest that
 * keeps sending with another guest's MAC gets its own port blocked, not the
 * victim's); else the one more MACs moved *to* in the current window (a
 * loop port receives every circulating MAC; a guest's own port only its
 * guest's), the port the MAC moved to on a tie.
 *
 * Which switch blocks. Every switch on a loop sees the same MACs flap, and
 * if each blocked a port of its own, two switches joined twice could end up
 * with both cables blocked, cut apart. So the block is not immediate, and
 * not equal for all:
 * - it is due after a random delay in [0, blockJitterMs), and takes effect
 *   only if the flapping goes on after that (`flapMoves` more moves touching
 *   the port within `flapWindowMs` of the deadline; else it stands down);
 * - at that point it goes ahead only on the switch where the lowest MAC
 *   flapping is local: first learned on a port that is not one of its
 *   flapping pair (the guest's own port, where its frames arrive first). On
 *   every other switch that MAC is remote; there the block waits until the
 *   flapping has lasted `remoteDeferMs` (re-checked as moves go on), which it
 *   does not once the first switch has blocked. The deferral is the fallback
 *   for loops where no switch sees a local MAC (a loop through switches whose
 *   guests stay silent: then it takes longer, and the random delay is what
 *   separates the switches).
 * All switches see the same lowest MAC, so one switch acts; the delay also
 * separates two ports of one switch.
 *
 * A blocked port receives nothing (dropped, `drops.blocked`) and is sent
 * nothing; its learned MACs are forgotten, so traffic to them floods to the
 * port the MAC really lives on. It stays blocked until unblocked (the switch
 * says which port and why: it logs the MAC, the VLAN and both ports).
 */
import { VmnetError } from '../errors.js';

/** Options of the loop guard (part of SwitchOptions). */
export interface LoopGuardOptions {
  /** Group frames per second a port may send into the switch; 0 turns the limit off. Default 1000. */
  stormRate?: number;
  /** Bucket size in frames; default `stormRate`. */
  stormBurst?: number;
  /** Moves of one MAC within `flapWindowMs` that mean "flapping"; default 20. */
  flapMoves?: number;
  /** Default 1000 ms. */
  flapWindowMs?: number;
  /** A block takes effect after a random delay below this; default 1500 ms. */
  blockJitterMs?: number;
  /** Where the lowest flapping MAC is not local, a block waits until the flapping has lasted this long; default 5000 ms. */
  remoteDeferMs?: number;
  /** Random numbers in [0, 1); default Math.random. */
  random?: () => number;
}

/** Why and since when a port is blocked. */
export interface BlockInfo {
  reason: 'mac-flap';
  /** The flapping MAC and its VLAN. */
  mac: string;
  vlan: number;
  /** The other port the MAC kept moving to and from. */
  otherPort: number;
  /** Moves of that MAC in its last window. */
  moves: number;
  /** When it was blocked (the switch's clock, ms). */
  at: number;
}

/** Per-port state; one per switch port. */
export class PortGuard {
  /** Token bucket. */
  tokens: number;
  refilled = -Infinity;
  /** Storm drops not yet reported, and when the last report went out. */
  stormUnreported = 0;
  stormReported = -Infinity;
  /** When this port was last reported as chosen for a block (reports are rate-limited). */
  flapReported = -Infinity;
  /** MACs moved to this port in the current window. */
  movesIn = 0;
  movesInStart = -Infinity;
  /** Held to the storm limit for every frame until then. */
  suspectUntil = -Infinity;
  /** A pending block: since when, due at, and the moves counted since it was due. */
  pendingSince = Infinity;
  blockAt = Infinity;
  confirmMoves = 0;
  blocked: BlockInfo | null = null;

  constructor(burst: number) {
    this.tokens = burst;
  }
}

/** What {@link LoopGuard.onMove} found. */
export interface MoveVerdict<P> {
  /** A port whose block was confirmed by this move, or null. */
  block: P | null;
  /** A port newly chosen for blocking (pending), or null. */
  pending: P | null;
}

/** The loop guard of one switch. */
export class LoopGuard<P extends { readonly guard: PortGuard }> {
  readonly stormRate: number;
  readonly stormBurst: number;
  readonly flapMoves: number;
  readonly flapWindowMs: number;
  readonly blockJitterMs: number;
  readonly remoteDeferMs: number;
  readonly #random: () => number;
  readonly #verdict: MoveVerdict<P> = { block: null, pending: null };
  /** The lowest MAC (key) seen flapping lately, whether it is local, and until when this holds. */
  #lowestKey = Infinity;
  #lowestLocal = false;
  #lowestUntil = -Infinity;

  /** @throws VmnetError E_USAGE for negative or non-finite numbers */
  constructor(o: LoopGuardOptions = {}) {
    this.stormRate = nonNegative(o.stormRate, 1000, 'stormRate');
    this.stormBurst = nonNegative(o.stormBurst, Math.max(1, this.stormRate), 'stormBurst');
    this.flapMoves = Math.max(2, nonNegative(o.flapMoves, 20, 'flapMoves'));
    this.flapWindowMs = nonNegative(o.flapWindowMs, 1000, 'flapWindowMs');
    this.blockJitterMs = nonNegative(o.blockJitterMs, 1500, 'blockJitterMs');
    this.remoteDeferMs = nonNegative(o.remoteDeferMs, 5000, 'remoteDeferMs');
    this.#random = o.random ?? Math.random;
  }

  /** A fresh per-port state. */
  newPort(): PortGuard {
    return new PortGuard(this.stormBurst);
  }

  /**
   * Whether a frame received on a port may go on: group frames always, and
   * every frame while the port is suspect, spend a token of its bucket.
   * @returns false when over the limit (the caller drops and counts it)
   */
  admit(g: PortGuard, group: boolean, now: number): boolean {
    if (this.stormRate === 0 || (!group && now >= g.suspectUntil)) return true;
    const t = g.tokens + ((now - g.refilled) * this.stormRate) / 1000;
    g.refilled = now;
    g.tokens = t > this.stormBurst ? this.stormBurst : t;
    if (g.tokens >= 1) {
      g.tokens -= 1;
      return true;
    }
    g.stormUnreported++;
    return false;
  }

  /**
   * Accounts for one move of a MAC from `from` to `to` (both attached).
   * @param e the moving entry: its key, origin port and flap window (fdb.ts Entry)
   * @returns the verdict object (reused: read it before the next call)
   */
  onMove(e: { readonly key: number; readonly origin: P; flapStart: number; flaps: number }, from: P, to: P, now: number): MoveVerdict<P> {
    const v = this.#verdict;
    v.block = null;
    v.pending = null;
    const w = this.flapWindowMs;
    if (now - e.flapStart >= w) {
      e.flapStart = now;
      e.flaps = 0;
    }
    e.flaps++;
    const tg = to.guard;
    if (now - tg.movesInStart >= w) {
      tg.movesInStart = now;
      tg.movesIn = 0;
    }
    tg.movesIn++;
    const flapping = e.flaps >= this.flapMoves;
    if (flapping && (now >= this.#lowestUntil || e.key <= this.#lowestKey)) {
      this.#lowestKey = e.key;
      this.#lowestLocal = e.origin !== from && e.origin !== to;
      this.#lowestUntil = now + w;
    }
    for (const p of [from, to]) {
      const g = p.guard;
      if (g.blockAt > now) continue;
      if (now - g.blockAt > w) {
        // The flapping stopped before it was confirmed (another switch blocked its side, say).
        g.pendingSince = Infinity;
        g.blockAt = Infinity;
        g.confirmMoves = 0;
      } else if (++g.confirmMoves >= this.flapMoves) {
        g.confirmMoves = 0;
        if ((this.#lowestLocal && now < this.#lowestUntil) || now - g.pendingSince >= this.remoteDeferMs) {
          g.pendingSince = Infinity;
          g.blockAt = Infinity;
          v.block = p;
          return v;
        }
        // Not ours to block yet: confirm again, a window at a time, and keep both ports held to the limit.
        g.blockAt = now;
        const until = now + this.blockJitterMs + w;
        if (from.guard.suspectUntil < until) from.guard.suspectUntil = until;
        if (tg.suspectUntil < until) tg.suspectUntil = until;
      }
    }
    if (!flapping || from.guard.blockAt !== Infinity || tg.blockAt !== Infinity) return v;
    const fg = from.guard;
    // The MAC's first port is its owner's: never the one to block (a guest spoofing another's
    // MAC gets its own port blocked). Else the port more MACs keep arriving on: a loop port.
    const pick = e.origin === to ? from : e.origin === from ? to : fg.movesIn > tg.movesIn && now - fg.movesInStart < w ? from : to;
    pick.guard.pendingSince = now;
    pick.guard.blockAt = now + this.#random() * this.blockJitterMs;
    pick.guard.confirmMoves = 0;
    const until = now + this.blockJitterMs + w;
    if (fg.suspectUntil < until) fg.suspectUntil = until;
    if (tg.suspectUntil < until) tg.suspectUntil = until;
    v.pending = pick;
    return v;
  }

  /** Clears a port's loop state (unblock). */
  reset(g: PortGuard): void {
    g.blocked = null;
    g.pendingSince = Infinity;
    g.blockAt = Infinity;
    g.confirmMoves = 0;
    g.suspectUntil = -Infinity;
    g.movesIn = 0;
    g.movesInStart = -Infinity;
    g.tokens = this.stormBurst;
  }
}

function nonNegative(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new VmnetError('E_USAGE', `bad switch ${what} ${v}: give a number ≥ 0`);
  return v;
}
