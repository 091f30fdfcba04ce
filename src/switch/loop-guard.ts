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
 *
 * Shared ports. A link to another switch (`vmnet switch link`, a lab's
 * `links:`) and the VXLAN port carry many VMs each: blocking one cuts them
 * all off, and a bucket sized for one VM is shared by all of them. Real
 * switches draw the same line: BPDU guard and loop protection that shut a
 * port act on edge ports; MAC-move limiting on uplinks acts on the MAC
 * (Junos `mac-move-limit ... packet-action drop` drops the moving MAC's
 * frames rather than shut the interface; EVPN's duplicate-MAC detection,
 * RFC 7432 §15.1, stops acting on the MAC, not on the remote PE), and storm
 * control on uplinks is sized for the uplink. So on a port added `shared`:
 * - A MAC first learned on an edge port of this switch that is still
 *   attached and not blocked (a local guest's) and flapping between that port and a shared
 *   one, or between shared ones, is blocked, not a port: the MAC stays on
 *   its own port (fdb.ts, "MAC blocks"), and its frames from any other port
 *   are dropped (`drops.macBlocked`). That is right whatever the cause: a
 *   remote or a peer switch sending with a local guest's MAC (misconfigured
 *   or hostile) loses just those frames; a loop through the underlay or
 *   through links can no longer carry the guest's frames back; the guest's
 *   own traffic and every other VM behind the shared port are untouched.
 *   It happens at once, with no random delay: only the MAC's own switch
 *   does it, and it takes nothing away that another switch needs. A MAC
 *   block lasts until the shared port is unblocked or goes, or the guest's
 *   port goes (the guest stopped: its MAC may then come back elsewhere). A
 *   local guest that spoke first with a remote VM's MAC (or after the
 *   remote's entry aged out) and keeps using it keeps that MAC: the remote
 *   VM loses its frames here, not the whole port. At most
 *   `maxMacBlocks` (default 256) at once; past that (counted,
 *   `macBlocksFull`) the port is chosen for blocking as an edge port is.
 * - A MAC whose first port is a shared one (a VM behind a link or a
 *   remote) flapping between two shared ports is a loop through links (two
 *   switches joined twice), or a peer sending a MAC that lives behind
 *   another peer. The first is the common case and only a port block ends
 *   it; a MAC block cannot, because two switches would each pin the other's
 *   MACs to the cable their first copy came in on, and those need not be
 *   the same cable (unicast would be lost between them). So one port is
 *   blocked as above (one switch, after the delay, the other link carries
 *   the traffic): exactly what a spanning tree would do on such a loop.
 *   Not done: telling the peer-spoofing case from a loop (loop-detection
 *   probes would; until then a VXLAN remote that keeps sending the MAC of a
 *   VM behind a link still gets the VXLAN port blocked, after
 *   `remoteDeferMs` unless the switch has a local MAC flapping), or
 *   blocking one VXLAN remote (the switch sees the VXLAN port, not the
 *   remote a frame came from).
 * - The storm limit is per source MAC: each source behind the port gets its
 *   own bucket (`stormRate`, `stormBurst`, as a VM's port), so one chatty
 *   VM cannot starve the others' ARP and DHCP, and the port as a whole is
 *   held to `sharedStormRate` (default 8 × `stormRate`), which is what
 *   bounds a loop through shared ports until it is ended. The source table
 *   holds at most `maxStormSources` (default 1024) buckets; a full table is
 *   swept of idle sources (a full bucket) at most once a second, and a
 *   source that still finds no room shares one overflow bucket (counted per
 *   frame, `stormSourcesFull`). A sender that changes its source MAC for
 *   every frame gets a fresh bucket each time, so against it only the
 *   port's total holds, and it can take that total from the others; behind
 *   a link, a VM's own port on the other switch already holds it to
 *   `stormRate` whatever MACs it uses, so it takes more than 8 such VMs (or
 *   a VXLAN remote that is not vmnet) to fill a link's total.
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
  /** Group frames per second a shared port may send, all sources together; default 8 × `stormRate`. */
  sharedStormRate?: number;
  /** Per-source buckets per shared port; default 1024. */
  maxStormSources?: number;
  /** Most MACs blocked on shared ports at once; default 256. */
  maxMacBlocks?: number;
  /** Random numbers in [0, 1); default Math.random. */
  random?: () => number;
}

/** A token bucket. */
interface Bucket {
  tokens: number;
  refilled: number;
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
export class PortGuard implements Bucket {
  /** Token bucket (the port's, or on a shared port the bucket of all its sources together). */
  tokens: number;
  refilled = -Infinity;
  /** Shared ports: a bucket per source MAC (key), the overflow bucket, and when idle sources were last swept. */
  readonly sources: Map<number, Bucket> | null;
  readonly overflow: Bucket;
  sourcesSwept = -Infinity;
  /** Where frames without a bucket of their own are counted (the port's counters, set by the port). */
  counters: { stormSourcesFull: number } = { stormSourcesFull: 0 };
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

  constructor(
    burst: number,
    sourceBurst: number,
    /** A link to another switch or the VXLAN port (see Theory, "Shared ports"). */
    readonly shared: boolean,
  ) {
    this.tokens = burst;
    this.sources = shared ? new Map() : null;
    this.overflow = { tokens: sourceBurst, refilled: -Infinity };
  }
}

/** What {@link LoopGuard.onMove} found. */
export interface MoveVerdict<P> {
  /** A port whose block was confirmed by this move, or null. */
  block: P | null;
  /** A port newly chosen for blocking (pending), or null. */
  pending: P | null;
  /** A shared port to block the moving MAC on (it goes back to its origin), or null. */
  macBlock: P | null;
  /** Whether a MAC block was due but there was no room for it (a port was picked instead). */
  macBlockFull: boolean;
}

/** The loop guard of one switch. */
export class LoopGuard<P extends { readonly guard: PortGuard; readonly attached: boolean }> {
  readonly stormRate: number;
  readonly stormBurst: number;
  readonly sharedStormRate: number;
  readonly sharedStormBurst: number;
  readonly maxStormSources: number;
  readonly maxMacBlocks: number;
  readonly flapMoves: number;
  readonly flapWindowMs: number;
  readonly blockJitterMs: number;
  readonly remoteDeferMs: number;
  readonly #random: () => number;
  readonly #verdict: MoveVerdict<P> = { block: null, pending: null, macBlock: null, macBlockFull: false };
  /** The lowest MAC (key) seen flapping lately, whether it is local, and until when this holds. */
  #lowestKey = Infinity;
  #lowestLocal = false;
  #lowestUntil = -Infinity;

  /** @throws VmnetError E_USAGE for negative or non-finite numbers */
  constructor(o: LoopGuardOptions = {}) {
    this.stormRate = nonNegative(o.stormRate, 1000, 'stormRate');
    this.stormBurst = nonNegative(o.stormBurst, Math.max(1, this.stormRate), 'stormBurst');
    this.sharedStormRate = nonNegative(o.sharedStormRate, 8 * this.stormRate, 'sharedStormRate');
    this.sharedStormBurst = Math.max(1, this.sharedStormRate, this.stormBurst);
    this.maxStormSources = nonNegative(o.maxStormSources, 1024, 'maxStormSources');
    this.maxMacBlocks = nonNegative(o.maxMacBlocks, 256, 'maxMacBlocks');
    this.flapMoves = Math.max(2, nonNegative(o.flapMoves, 20, 'flapMoves'));
    this.flapWindowMs = nonNegative(o.flapWindowMs, 1000, 'flapWindowMs');
    this.blockJitterMs = nonNegative(o.blockJitterMs, 1500, 'blockJitterMs');
    this.remoteDeferMs = nonNegative(o.remoteDeferMs, 5000, 'remoteDeferMs');
    this.#random = o.random ?? Math.random;
  }

  /** A fresh per-port state; `shared` for a link or the VXLAN port (see Theory, "Shared ports"). */
  newPort(shared = false): PortGuard {
    return new PortGuard(shared ? this.sharedStormBurst : this.stormBurst, this.stormBurst, shared);
  }

  /**
   * Whether a frame received on a port may go on: group frames always, and
   * every frame while the port is suspect, spend a token of its bucket (on a
   * shared port, of its source's bucket and of the port's).
   * @param src the source MAC's key (shared ports keep a bucket per source)
   * @returns false when over the limit (the caller drops and counts it)
   */
  admit(g: PortGuard, group: boolean, now: number, src: number): boolean {
    if (this.stormRate === 0 || (!group && now >= g.suspectUntil)) return true;
    if (g.sources === null) {
      if (take(g, this.stormRate, this.stormBurst, now)) return true;
    } else {
      const b = this.#source(g, src, now);
      if (take(b, this.stormRate, this.stormBurst, now)) {
        if (this.sharedStormRate === 0 || take(g, this.sharedStormRate, this.sharedStormBurst, now)) return true;
        b.tokens += 1; // the port's bucket said no: the source's token is not spent
      }
    }
    g.stormUnreported++;
    return false;
  }

  /** The bucket of source `src` on shared port `g`: its own, or the overflow bucket when the table is full (counted). */
  #source(g: PortGuard, src: number, now: number): Bucket {
    const m = g.sources!;
    let b = m.get(src);
    if (b !== undefined) return b;
    if (m.size >= this.maxStormSources && now - g.sourcesSwept >= 1000) {
      g.sourcesSwept = now;
      // A bucket that would be full again holds nothing worth keeping.
      const idleMs = this.stormRate > 0 ? (1000 * this.stormBurst) / this.stormRate : Infinity;
      for (const [k, x] of m) if (now - x.refilled >= idleMs) m.delete(k);
    }
    if (m.size >= this.maxStormSources) {
      g.counters.stormSourcesFull++;
      return g.overflow;
    }
    b = { tokens: this.stormBurst, refilled: now };
    m.set(src, b);
    return b;
  }

  /**
   * Accounts for one move of a MAC from `from` to `to` (both attached).
   * @param e the moving entry: its key, origin port and flap window (fdb.ts Entry)
   * @returns the verdict object (reused: read it before the next call)
   */
  onMove(e: { readonly key: number; readonly origin: P; flapStart: number; flaps: number }, from: P, to: P, now: number, macBlockRoom: boolean): MoveVerdict<P> {
    const v = this.#verdict;
    v.block = null;
    v.pending = null;
    v.macBlock = null;
    v.macBlockFull = false;
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
    // A local guest's MAC flapping onto a shared port: block the MAC there, not a port (Theory, "Shared ports").
    const o = e.origin;
    if (flapping && (to.guard.shared || from.guard.shared) && !o.guard.shared && o.attached && o.guard.blocked === null) {
      if (macBlockRoom) {
        v.macBlock = to.guard.shared ? to : from;
        return v;
      }
      v.macBlockFull = true;
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
    g.tokens = g.shared ? this.sharedStormBurst : this.stormBurst;
    g.sources?.clear();
  }
}

/** Spends one token of `b` (refilled at `rate` per second up to `burst`); false when there is none. */
function take(b: Bucket, rate: number, burst: number, now: number): boolean {
  const t = b.tokens + ((now - b.refilled) * rate) / 1000;
  b.refilled = now;
  b.tokens = t > burst ? burst : t;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

function nonNegative(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new VmnetError('E_USAGE', `bad switch ${what} ${v}: give a number ≥ 0`);
  return v;
}
