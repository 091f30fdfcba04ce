/**
 * Theory of operation: the table of forwarded DNS queries in flight, shared
 * fairly between the guests that ask.
 *
 * Two bounds: `total` slots in all (what the forwarder may hold: a table
 * entry, a timer and a pooled-socket waiter each) and `perGuest` for any one
 * guest (so a lone guest cannot hand the upstream more than its share). A
 * fixed per-guest cap alone is not fair: `total / perGuest` busy guests
 * fill the table and every other guest is refused until they slow down, and
 * a guest flooding a black-holed zone keeps its slots for the whole
 * forwarding deadline. So when the table is full, a new query from guest G
 * takes the slot of the oldest query of the guest H with the most in flight,
 * provided H has at least two more than G; that query is cancelled (the
 * caller answers it SERVFAIL). Otherwise the new query is refused. This is
 * BIND's answer to a full `recursive-clients` quota (drop the oldest pending
 * client) and Unbound's `jostle-timeout` (replace running queries when
 * `num-queries-per-thread` is full), aimed at the heaviest guest: in-flight
 * counts converge to max-min fair shares (with N busy guests each keeps
 * about `total / N`), and a guest with fewer than its share in flight is
 * never refused while another holds more. Evicting the oldest rather than
 * the newest prefers queries most likely already lost upstream.
 *
 * Costs: one entry object per query; admission and release are O(1)
 * (a Set per guest keeps its queries in arrival order); only an admission
 * into a full table scans the guests with queries in flight (at most
 * `total` of them, in practice the handful of links of a gateway). No
 * timers. Every refusal says which bound it hit and every eviction goes
 * through `onEvict`, so the caller counts them.
 */

/** One query holding a slot. */
export interface SlotEntry<T> {
  readonly guest: number;
  /** The caller's handle for the query (what `onEvict` gets). */
  readonly value: T;
}

/** Options of {@link FairSlots}. */
export interface FairSlotsOptions<T> {
  /** Slots in all (at least 1). */
  total: number;
  /** Slots one guest may hold (at least 1). */
  perGuest: number;
  /** Called, synchronously inside {@link FairSlots.admit}, with the query whose slot was taken. */
  onEvict: (value: T) => void;
}

/**
 * Why {@link FairSlots.admit} refused: 'guest' = the guest already holds
 * `perGuest`; 'full' = the table is full and no guest holds two more than the asker.
 */
export type SlotRefusal = 'guest' | 'full';

/** The fair-share table; see the module comment. */
export class FairSlots<T> {
  readonly #total: number;
  readonly #perGuest: number;
  readonly #onEvict: (value: T) => void;
  /** Each guest's queries in flight, oldest first; a guest with none has no entry. */
  readonly #byGuest = new Map<number, Set<SlotEntry<T>>>();
  #size = 0;

  /** @param opts bounds and the eviction hook; see {@link FairSlotsOptions} */
  constructor(opts: FairSlotsOptions<T>) {
    this.#total = Math.max(1, Math.floor(opts.total));
    this.#perGuest = Math.max(1, Math.floor(opts.perGuest));
    this.#onEvict = opts.onEvict;
  }

  /** Slots held now. */
  get size(): number {
    return this.#size;
  }

  /** Slots `guest` holds now. */
  held(guest: number): number {
    return this.#byGuest.get(guest)?.size ?? 0;
  }

  /**
   * Gives `guest` a slot for `value`, taking one from the heaviest guest if
   * the table is full and that is fair (see the module comment).
   * @returns the entry to {@link release} when the query ends, or why it was refused
   */
  admit(guest: number, value: T): SlotEntry<T> | SlotRefusal {
    let mine = this.#byGuest.get(guest);
    const n = mine?.size ?? 0;
    if (n >= this.#perGuest) return 'guest';
    if (this.#size >= this.#total && !this.#evictFor(n)) return 'full';
    if (mine === undefined) {
      mine = new Set();
      this.#byGuest.set(guest, mine);
    }
    const entry: SlotEntry<T> = { guest, value };
    mine.add(entry);
    this.#size++;
    return entry;
  }

  /** Frees `entry`'s slot; a no-op for an entry already evicted or released. */
  release(entry: SlotEntry<T>): void {
    const set = this.#byGuest.get(entry.guest);
    if (set === undefined || !set.delete(entry)) return;
    this.#size--;
    if (set.size === 0) this.#byGuest.delete(entry.guest);
  }

  /** Evicts the oldest query of the guest with the most in flight if it holds at least `held + 2`. */
  #evictFor(held: number): boolean {
    let victim: Set<SlotEntry<T>> | undefined;
    for (const set of this.#byGuest.values()) if (set.size > (victim?.size ?? held + 1)) victim = set;
    if (victim === undefined) return false;
    const oldest = victim.values().next().value as SlotEntry<T>;
    this.release(oldest);
    this.#onEvict(oldest.value);
    return true;
  }
}
