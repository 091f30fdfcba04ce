/**
 * Theory of operation: the filtering database of the switch (IEEE
 * 802.1Q-2018 §8.8), sans-IO: (VLAN, MAC) → port.
 *
 * Layout. One Map per VLAN id keyed by `macKey` (48 bits fit a double
 * exactly; 12 more would not). An entry remembers its port, when its MAC was
 * last seen, the port it was first learned on (its origin), and the flap
 * window the loop guard keeps for it (loop-guard.ts).
 *
 * Dynamic entries (§8.8.3) are learned from source MACs and age out
 * `ageingMs` after the MAC was last seen (time comes from the caller).
 * Expired entries are ignored at lookup (and deleted there) and reclaimed by
 * {@link Fdb.sweep}. A MAC seen on another port than its entry moves there.
 * The table is bounded twice: `maxEntries` per switch and each port's
 * `maxMacs`, so one port flooding random source MACs cannot crowd the others
 * out. At a bound, new MACs are simply not learned (`learnRefused` on the
 * port; `tableFull` / `portLimit` on the switch); live entries are never
 * evicted, and a MAC that moves to a port at its limit loses its old entry
 * rather than keep pointing at the wrong port. A full table triggers an early
 * sweep of expired entries at most once a second.
 *
 * Static entries (§8.8.1) are configured, not learned: the gateway's MAC on
 * a segment. They never age, do not count against the bounds, and never
 * move: a frame from another port with a static entry's MAC as its source is
 * reported to the caller, which drops it (a guest spoofing the gateway's MAC
 * cannot pull the gateway's traffic to itself). They go when their port goes.
 *
 * MAC blocks (loop-guard.ts, "Shared ports"). The loop guard may block a
 * dynamic entry's MAC on a shared port (a link to another switch, the VXLAN
 * port) instead of blocking that port: the entry goes back to its origin
 * (the guest's own port) and stays there, and a frame with that source MAC
 * from any other port is reported to the caller, which drops it, as for a
 * static entry. A blocked entry does not age (its guest may be silent) and
 * counts against the bounds as before; at most `maxMacBlocks` entries are
 * blocked at once. The block goes when the entry goes (its port is removed)
 * or when it is lifted ({@link Fdb.unblockMacs}).
 *
 * Pure: no I/O, no timers.
 */
import { formatMac } from '../wire/addr.js';
import { MAX_VID } from './vlan.js';

/** What the database needs from a port. */
export interface FdbPort {
  readonly id: number;
  /** Dynamic entries on this port (kept by the database). */
  macCount: number;
  readonly maxMacs: number;
  readonly counters: { learnRefused: number; moves: number };
}

/** Switch-wide counters the database keeps. */
export interface FdbCounters {
  learned: number;
  moves: number;
  aged: number;
  tableFull: number;
  portLimit: number;
}

/** One entry. */
export interface Entry<P extends FdbPort> {
  port: P;
  /** When the MAC was last seen (dynamic entries). */
  seen: number;
  readonly vlan: number;
  readonly key: number;
  readonly isStatic: boolean;
  /** The port the MAC was first learned on (where a guest's own frames arrive first). */
  readonly origin: P;
  /** The loop guard's flap window: start and moves in it. */
  flapStart: number;
  flaps: number;
  /** True once deleted (callers may cache an entry; they check this). */
  dead: boolean;
  /** Set while its MAC is blocked on a shared port (it then stays on `origin`): see Theory, "MAC blocks". */
  macBlock: MacBlock<P> | null;
}

/** A MAC blocked on a shared port. */
export interface MacBlock<P> {
  /** The shared port its frames kept arriving on. */
  readonly on: P;
  /** Moves of the MAC in its last flap window, and when it was blocked. */
  readonly moves: number;
  readonly at: number;
}

/** One row of {@link Fdb.macBlocks}. */
export interface MacBlockRow {
  /** The shared port the MAC is blocked on, and the port it lives on. */
  port: number;
  homePort: number;
  mac: string;
  vlan: number;
  moves: number;
  at: number;
}

/** One row of {@link Fdb.table}. */
export interface TableRow {
  vlan: number;
  mac: string;
  /** Port id. */
  port: number;
  /** Milliseconds since the MAC was last seen (0 for static entries). */
  ageMs: number;
  static: boolean;
}

// What Fdb.learn did (numbers, STYLE §2):
/** Known on this port (refreshed), or newly learned. */
export const LEARNED = 0;
/** Not learned: a bound was reached. */
export const REFUSED = 1;
/** Moved from another port, whose live entry it was: see {@link Fdb.moved}, {@link Fdb.movedFrom}. */
export const MOVED = 2;
/** The MAC is a static entry of another port: drop the frame. */
export const STATIC_ELSEWHERE = 3;
/** The MAC is blocked on every port but its own (see "MAC blocks"): drop the frame. */
export const MAC_BLOCKED = 4;

const FULL_SWEEP_INTERVAL_MS = 1000;

/** The filtering database. */
export class Fdb<P extends FdbPort> {
  readonly #maps: Array<Map<number, Entry<P>> | undefined> = new Array<Map<number, Entry<P>> | undefined>(MAX_VID + 2);
  /** Dynamic entries (bounded by maxEntries). */
  #dynamic = 0;
  #static = 0;
  /** Entries with a MAC block. */
  #macBlocks = 0;
  #lastFullSweep = -Infinity;
  /** After {@link learn} returned MOVED: the entry and the port it left. */
  moved: Entry<P> | null = null;
  movedFrom: P | null = null;
  /** After {@link learn} or {@link lookup}: the live entry of that key, or null. */
  entry: Entry<P> | null = null;

  constructor(
    readonly ageingMs: number,
    readonly maxEntries: number,
    private readonly counters: FdbCounters,
    /** Most entries blocked at once (see "MAC blocks"). */
    readonly maxMacBlocks = 256,
  ) {}

  /** Entries, dynamic (including expired ones not yet swept) and static. */
  get size(): number {
    return this.#dynamic + this.#static;
  }

  /**
   * Learns that `key` was seen on `p` in `vlan` at `now`.
   * @returns {@link LEARNED}, {@link REFUSED}, {@link MOVED}, {@link STATIC_ELSEWHERE} or {@link MAC_BLOCKED}
   */
  learn(p: P, vlan: number, key: number, now: number): number {
    let map = this.#maps[vlan];
    const e = map?.get(key);
    this.entry = null;
    if (e !== undefined) {
      if (e.port === p) {
        e.seen = now;
        this.entry = e;
        return LEARNED;
      }
      if (e.isStatic) return STATIC_ELSEWHERE;
      if (e.macBlock !== null) return MAC_BLOCKED;
      // Moved (or an expired entry of another port): rebind if this port may learn more.
      if (p.macCount >= p.maxMacs) {
        map!.delete(key);
        this.#forget(e);
        p.counters.learnRefused++;
        this.counters.portLimit++;
        return REFUSED;
      }
      const live = this.live(e, now); // neither static nor MAC-blocked here: not aged out
      const from = e.port;
      from.macCount--;
      e.port = p;
      e.seen = now;
      p.macCount++;
      this.entry = e;
      if (!live) return LEARNED;
      p.counters.moves++;
      this.counters.moves++;
      this.moved = e;
      this.movedFrom = from;
      return MOVED;
    }
    if (p.macCount >= p.maxMacs) {
      p.counters.learnRefused++;
      this.counters.portLimit++;
      return REFUSED;
    }
    if (this.#dynamic >= this.maxEntries) {
      if (now - this.#lastFullSweep >= FULL_SWEEP_INTERVAL_MS) {
        this.#lastFullSweep = now;
        this.sweep(now);
        map = this.#maps[vlan];
      }
      if (this.#dynamic >= this.maxEntries) {
        p.counters.learnRefused++;
        this.counters.tableFull++;
        return REFUSED;
      }
    }
    if (map === undefined) {
      map = new Map();
      this.#maps[vlan] = map;
    }
    const created: Entry<P> = { port: p, seen: now, vlan, key, isStatic: false, origin: p, flapStart: -Infinity, flaps: 0, dead: false, macBlock: null };
    map.set(key, created);
    this.entry = created;
    p.macCount++;
    this.#dynamic++;
    this.counters.learned++;
    return LEARNED;
  }

  /**
   * Adds a static entry, replacing any dynamic entry of that MAC.
   * @returns false when the MAC is already a static entry of another port
   */
  addStatic(p: P, vlan: number, key: number): boolean {
    let map = this.#maps[vlan];
    const e = map?.get(key);
    if (e !== undefined) {
      if (e.isStatic) return e.port === p;
      map!.delete(key);
      this.#forget(e);
    }
    if (map === undefined) {
      map = new Map();
      this.#maps[vlan] = map;
    }
    map.set(key, { port: p, seen: 0, vlan, key, isStatic: true, origin: p, flapStart: -Infinity, flaps: 0, dead: false, macBlock: null });
    this.#static++;
    return true;
  }

  /**
   * The port of `key` in `vlan`, or null when unknown or aged out (an
   * expired entry is deleted here and counted as aged).
   */
  lookup(vlan: number, key: number, now: number): P | null {
    const map = this.#maps[vlan];
    const e = map?.get(key);
    this.entry = null;
    if (e === undefined) return null;
    if (this.live(e, now)) {
      this.entry = e;
      return e.port;
    }
    map!.delete(key);
    this.#forget(e);
    this.counters.aged++;
    return null;
  }

  /** Like {@link lookup} but changes nothing. */
  peek(vlan: number, key: number, now: number): P | null {
    const e = this.#maps[vlan]?.get(key);
    return e !== undefined && this.live(e, now) ? e.port : null;
  }

  /**
   * Forgets the entries of `p` in `vlans`: only the dynamic ones, or static
   * ones too.
   */
  flush(p: P, vlans: readonly number[], withStatic: boolean): void {
    for (const v of vlans) {
      const map = this.#maps[v];
      if (map === undefined) continue;
      for (const [k, e] of map) {
        if (e.port !== p || (e.isStatic && !withStatic)) continue;
        map.delete(k);
        this.#forget(e);
      }
      if (map.size === 0) this.#maps[v] = undefined;
    }
  }

  /**
   * Deletes dynamic entries older than the ageing time.
   * @returns the number of entries removed
   */
  sweep(now: number): number {
    let n = 0;
    for (let v = 1; v <= MAX_VID; v++) {
      const map = this.#maps[v];
      if (map === undefined) continue;
      for (const [k, e] of map) {
        if (!this.live(e, now)) {
          map.delete(k);
          this.#forget(e);
          this.counters.aged++;
          n++;
        }
      }
      if (map.size === 0) this.#maps[v] = undefined;
    }
    return n;
  }

  /** Live entries, ordered by VLAN then MAC. */
  table(now: number): TableRow[] {
    const out: TableRow[] = [];
    for (let v = 1; v <= MAX_VID; v++) {
      const map = this.#maps[v];
      if (map === undefined) continue;
      const rows: Array<Entry<P>> = [];
      for (const e of map.values()) if (this.live(e, now)) rows.push(e);
      rows.sort((a, b) => a.key - b.key);
      for (const e of rows) out.push({ vlan: v, mac: macText(e.key), port: e.port.id, ageMs: e.isStatic ? 0 : now - e.seen, static: e.isStatic });
    }
    return out;
  }

  /**
   * Whether entry `e` holds at `now`: static or MAC-blocked (neither ages),
   * or seen within the ageing time. (A cached entry: check `dead` first.)
   */
  live(e: Entry<P>, now: number): boolean {
    return e.isStatic || e.macBlock !== null || now - e.seen < this.ageingMs;
  }

  /** Whether another MAC block fits under `maxMacBlocks`. */
  get macBlockRoom(): boolean {
    return this.#macBlocks < this.maxMacBlocks;
  }

  /**
   * Blocks a live dynamic entry's MAC on `on` (a shared port): the entry goes
   * back to its origin and stays there (see "MAC blocks").
   * @returns false when `maxMacBlocks` entries are blocked already
   */
  blockMac(e: Entry<P>, on: P, now: number): boolean {
    if (e.dead || e.isStatic) return false;
    if (e.macBlock === null) {
      if (this.#macBlocks >= this.maxMacBlocks) return false;
      this.#macBlocks++;
    }
    e.macBlock = { on, moves: e.flaps, at: now };
    e.port.macCount--;
    e.port = e.origin;
    e.origin.macCount++;
    e.seen = now;
    return true;
  }

  /**
   * Lifts the MAC blocks made on port `on`.
   * @returns how many were lifted
   */
  unblockMacs(on: P): number {
    let n = 0;
    for (const e of this.#blocked()) {
      if (e.macBlock!.on !== on) continue;
      e.macBlock = null;
      this.#macBlocks--;
      n++;
    }
    return n;
  }

  /** The MAC blocks, ordered by VLAN then MAC. */
  macBlocks(): MacBlockRow[] {
    return this.#blocked().map((e) => ({ port: e.macBlock!.on.id, homePort: e.port.id, mac: macText(e.key), vlan: e.vlan, moves: e.macBlock!.moves, at: e.macBlock!.at }));
  }

  #blocked(): Array<Entry<P>> {
    const out: Array<Entry<P>> = [];
    if (this.#macBlocks === 0) return out;
    for (let v = 1; v <= MAX_VID; v++) {
      const map = this.#maps[v];
      if (map === undefined) continue;
      const rows: Array<Entry<P>> = [];
      for (const e of map.values()) if (e.macBlock !== null) rows.push(e);
      rows.sort((a, b) => a.key - b.key);
      out.push(...rows);
    }
    return out;
  }

  #forget(e: Entry<P>): void {
    e.dead = true;
    if (e.macBlock !== null) {
      e.macBlock = null;
      this.#macBlocks--;
    }
    if (e.isStatic) {
      this.#static--;
      return;
    }
    e.port.macCount--;
    this.#dynamic--;
  }
}

/** MAC text of a `macKey`. */
export function macText(key: number): string {
  const b = new Uint8Array(6);
  let k = key;
  for (let i = 5; i >= 0; i--) {
    b[i] = k % 256;
    k = Math.floor(k / 256);
  }
  return formatMac(b);
}
