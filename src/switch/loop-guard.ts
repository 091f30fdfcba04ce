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
 * the one more MACs moved *to* in the current window (a loop port receives
 * every circulating MAC; a guest's own port only its guest's), the port the
 * MAC moved to on a tie. The block is not immediate: it takes effect after a
 * random delay in [0, blockJitterMs), and only if the flapping goes on after
 * it (`flapMoves` more moves touching that port within `flapWindowMs` of the
 * deadline). Two switches that see the same loop thus do not both block a
 * port at the same instant (which could cut them apart): the first to block
 * ends the flapping the other sees, and the other stands down.
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
  /** MACs moved to this port in the current window. */
  movesIn = 0;
  movesInStart = -Infinity;
  /** Held to the storm limit for every frame until then. */
  suspectUntil = -Infinity;
  /** A pending block: due at, and the moves counted since. */
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
  readonly #random: () => number;
  readonly #verdict: MoveVerdict<P> = { block: null, pending: null };

  /** @throws VmnetError E_USAGE for negative or non-finite numbers */
  constructor(o: LoopGuardOptions = {}) {
    this.stormRate = nonNegative(o.stormRate, 1000, 'stormRate');
    this.stormBurst = nonNegative(o.stormBurst, Math.max(1, this.stormRate), 'stormBurst');
    this.flapMoves = Math.max(2, nonNegative(o.flapMoves, 20, 'flapMoves'));
    this.flapWindowMs = nonNegative(o.flapWindowMs, 1000, 'flapWindowMs');
    this.blockJitterMs = nonNegative(o.blockJitterMs, 1500, 'blockJitterMs');
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
   * @param e the entry's flap window (fdb.ts Entry)
   * @returns the verdict object (reused: read it before the next call)
   */
  onMove(e: { flapStart: number; flaps: number }, from: P, to: P, now: number): MoveVerdict<P> {
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
    for (const p of [from, to]) {
      const g = p.guard;
      if (g.blockAt > now) continue;
      if (now - g.blockAt > w) {
        // The flapping stopped before it was confirmed (another switch blocked its side, say).
        g.blockAt = Infinity;
        g.confirmMoves = 0;
      } else if (++g.confirmMoves >= this.flapMoves) {
        g.blockAt = Infinity;
        g.confirmMoves = 0;
        v.block = p;
        return v;
      }
    }
    if (e.flaps < this.flapMoves || from.guard.blockAt !== Infinity || tg.blockAt !== Infinity) return v;
    const fg = from.guard;
    const pick = fg.movesIn > tg.movesIn && now - fg.movesInStart < w ? from : to;
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
