/**
 * Theory of operation: the bookkeeping behind per-guest flow shares, shared
 * by the UDP NAT (udp-nat/nat.ts) and the ping relay (ping/relay.ts). Each
 * guest (the caller's key: the gateway's link, never an address a guest can
 * pick) has its flows in a set kept in least-recently-used order (a flow is
 * re-inserted when used). Before opening a flow the caller asks victim():
 * a guest at its share gives up its own least recently used flow; when the
 * whole table is full, the guest holding the most gives up its least
 * recently used one. So a guest that opens flows without end only ever
 * evicts its own. idle() lists the flows unused for a given time, cheaply:
 * in LRU order the first young flow ends each guest's scan. Sans-IO; the
 * caller closes what it is handed and then calls delete().
 */

/** What a flow needs to be kept here. */
export interface GuestFlow {
  /** The guest's key. */
  readonly guest: number;
  /** When it was last used (ms on the caller's clock). */
  lastUsed: number;
}

export class GuestFlows<F extends GuestFlow> {
  private readonly byGuest = new Map<number, Set<F>>();
  private count = 0;

  /**
   * @param maxFlows most flows in all
   * @param maxPerGuest most flows of one guest
   */
  constructor(
    private readonly maxFlows: number,
    private readonly maxPerGuest: number,
  ) {}

  /** Flows held. */
  get size(): number {
    return this.count;
  }

  /** Adds a new flow as its guest's most recently used. */
  add(f: F): void {
    let mine = this.byGuest.get(f.guest);
    if (mine === undefined) this.byGuest.set(f.guest, (mine = new Set()));
    mine.add(f);
    this.count++;
  }

  /** Marks a flow used at `now`. */
  touch(f: F, now: number): void {
    f.lastUsed = now;
    const mine = this.byGuest.get(f.guest);
    if (mine?.delete(f)) mine.add(f);
  }

  /** Forgets a flow (no-op when it is not held). */
  delete(f: F): void {
    const mine = this.byGuest.get(f.guest);
    if (!mine?.delete(f)) return;
    if (mine.size === 0) this.byGuest.delete(f.guest);
    this.count--;
  }

  /**
   * The flow to close so that `guest` may open one more: its own least
   * recently used at its share, else, when the table is full, the least
   * recently used of the guest holding the most; null when there is room.
   */
  victim(guest: number): F | null {
    let victims = this.byGuest.get(guest);
    if (victims === undefined || victims.size < this.maxPerGuest) {
      if (this.count < this.maxFlows) return null;
      for (const flows of this.byGuest.values()) if (victims === undefined || flows.size > victims.size) victims = flows;
    }
    const first = victims?.values().next();
    return first === undefined || first.done ? null : first.value;
  }

  /** The flows unused for `idleMs` or longer at `now`. */
  idle(now: number, idleMs: number): F[] {
    const out: F[] = [];
    for (const flows of this.byGuest.values()) {
      for (const f of flows) {
        if (now - f.lastUsed < idleMs) break; // LRU order: the rest are younger
        out.push(f);
      }
    }
    return out;
  }

  /** One guest's flows (a copy). */
  ofGuest(guest: number): F[] {
    return [...(this.byGuest.get(guest) ?? [])];
  }

  /** Every flow (a copy). */
  all(): F[] {
    const out: F[] = [];
    for (const flows of this.byGuest.values()) out.push(...flows);
    return out;
  }
}
