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
 * Costs: no object of its own per query (the caller's handle is the
 * entry); admission and release are O(1) (a Set per guest keeps its
 * queries' handles in arrival order); only an admission
 * into a full table scans the guests with queries in flight (at most
 * `total` of them, in practice the handful of links of a gateway). No
 * timers. Every refusal says which bound it hit and every eviction goes
 * through `onEvict`, so the caller counts them.
 */

/** Options of {@link FairSlots}. */
export interface FairSlotsOptions<T> {
  /** Slots in all (at least 1). */
  total: number;
  /** Slots one guest may hold (at least 1). */
  perGuest: number;
  /** Called, synchronously inside {@link FairSlots.admit}, with the handle of the query whose slot was taken. */
  onEvict: (value: T) => void;
}

/**
 * What {@link FairSlots.admit} did: 'ok' = the query holds a slot; 'guest' =
 * refused, the guest already holds `perGuest`; 'full' = refused, the table
 * is full and no guest holds two more than the asker.
 */
export type Admission = 'ok' | 'guest' | 'full';

/** The fair-share table of query handles (each handle at most once); see the module comment. */
export class FairSlots<T> {
  readonly #total: number;
  readonly #perGuest: number;
  readonly #onEvict: (value: T) => void;
  /** Each guest's queries in flight, oldest first; a guest with none has no entry. */
  readonly #byGuest = new Map<number, Set<T>>();
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
   * Gives `guest`'s query `handle` a slot, taking one from the heaviest
   * guest if the table is full and that is fair (see the module comment).
   * @returns 'ok' (then {@link release} it when the query ends), or why it was refused
   */
  admit(guest: number, handle: T): Admission {
    let mine = this.#byGuest.get(guest);
    const n = mine?.size ?? 0;
    if (n >= this.#perGuest) return 'guest';
    if (this.#size >= this.#total && !this.#evictFor(n)) return 'full';
    if (mine === undefined) {
      mine = new Set();
      this.#byGuest.set(guest, mine);
    }
    mine.add(handle);
    this.#size++;
    return 'ok';
  }

  /** Frees the slot of `guest`'s query `handle`; a no-op for one evicted or released already. */
  release(guest: number, handle: T): void {
    const set = this.#byGuest.get(guest);
    if (set === undefined || !set.delete(handle)) return;
    this.#size--;
    if (set.size === 0) this.#byGuest.delete(guest);
  }

  /** Evicts the oldest query of the guest with the most in flight if it holds at least `held + 2`. */
  #evictFor(held: number): boolean {
    let most = held + 1;
    let victim: number | undefined;
    for (const [guest, set] of this.#byGuest) {
      if (set.size <= most) continue;
      most = set.size;
      victim = guest;
    }
    if (victim === undefined) return false;
    const oldest = this.#byGuest.get(victim)!.values().next().value as T;
    this.release(victim, oldest);
    this.#onEvict(oldest);
    return true;
  }
}
