/**
 * Theory of operation: a table of operations in flight on guests' behalf
 * (forwarded DNS queries, dns/server.ts; host dials, tcp-nat/nat.ts),
 * shared fairly between the guests that ask. Written for DNS queries below;
 * a dial is the same with "query" read as "dial".
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
 * the newest prefers queries most likely already lost upstream. Unlike the
 * UDP and ping flow tables (guest-flows.ts), a query never gives way to
 * one of its own guest or of a guest holding as many: there the newest use
 * wins and an evicted flow costs nothing, here that would turn a flood past
 * its share into as many upstream queries as it sends, instead of refusals.
 *
 * Costs: one small node per query, linked into its guest's list (oldest
 * first), so admission and release are O(1) with no hashing of objects
 * (about 0.1 µs for both together here, less than the per-guest count in a
 * Map it replaces); only an admission into a full table scans the guests
 * with queries in flight (at most `total` of them, in practice the handful
 * of links of a gateway). No timers. Every refusal says which bound it hit and every eviction goes
 * through `onEvict`, so the caller counts them.
 */

/** Options of {@link FairSlots}. */
export interface FairSlotsOptions<T> {
  /** Slots in all (at least 1). */
  total: number;
  /** Slots one guest may hold (at least 1). */
  perGuest: number;
  /** Called, synchronously inside {@link FairSlots.admit}, with the value of the query whose slot was taken. */
  onEvict: (value: T) => void;
}

/** A query holding a slot (hand it back to {@link FairSlots.release}). */
export interface Slot<T> {
  readonly value: T;
}

/**
 * Why {@link FairSlots.admit} refused: 'guest' = the guest already holds
 * `perGuest`; 'full' = the table is full and no guest holds two more than the asker.
 */
export type SlotRefusal = 'guest' | 'full';

/** One guest's queries in flight, a doubly linked list, oldest first. */
class GuestQueue<T> {
  head: Node<T> | null = null;
  tail: Node<T> | null = null;
  size = 0;
  constructor(readonly guest: number) {}
}

/** A slot: a link in its guest's queue; `queue` is null once released or evicted. */
class Node<T> implements Slot<T> {
  prev: Node<T> | null = null;
  next: Node<T> | null = null;
  constructor(
    public queue: GuestQueue<T> | null,
    readonly value: T,
  ) {}
}

/** The fair-share table; see the module comment. */
export class FairSlots<T> {
  readonly #total: number;
  readonly #perGuest: number;
  readonly #onEvict: (value: T) => void;
  /** The queues of the guests with queries in flight (a guest with none has no entry). */
  readonly #byGuest = new Map<number, GuestQueue<T>>();
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
   * Makes sure `guest` may take a slot, taking one from the heaviest guest
   * if the table is full and that is fair (see the module comment); for a
   * caller whose value does not exist before it knows (an {@link admit}
   * right after cannot be refused).
   * @returns null when there is room now, or why there is none
   */
  makeRoom(guest: number): SlotRefusal | null {
    const n = this.#byGuest.get(guest)?.size ?? 0;
    if (n >= this.#perGuest) return 'guest';
    if (this.#size >= this.#total && !this.#evictFor(n)) return 'full';
    return null;
  }

  /**
   * Gives `guest`'s query `value` a slot, making room first ({@link makeRoom}).
   * @returns the slot to {@link release} when the query ends, or why it was refused
   */
  admit(guest: number, value: T): Slot<T> | SlotRefusal {
    const refused = this.makeRoom(guest);
    if (refused !== null) return refused;
    let q = this.#byGuest.get(guest);
    if (q === undefined) {
      q = new GuestQueue(guest);
      this.#byGuest.set(guest, q);
    }
    const node = new Node(q, value);
    node.prev = q.tail;
    if (q.tail) q.tail.next = node;
    else q.head = node;
    q.tail = node;
    q.size++;
    this.#size++;
    return node;
  }

  /** Frees `slot`; a no-op for a slot evicted or released already. */
  release(slot: Slot<T>): void {
    const node = slot as Node<T>;
    const q = node.queue;
    if (q === null) return;
    node.queue = null;
    if (node.prev) node.prev.next = node.next;
    else q.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else q.tail = node.prev;
    node.prev = node.next = null;
    this.#size--;
    if (--q.size === 0) this.#byGuest.delete(q.guest);
  }

  /** Evicts the oldest query of the guest with the most in flight if it holds at least `held + 2`. */
  #evictFor(held: number): boolean {
    let victim: GuestQueue<T> | undefined;
    for (const q of this.#byGuest.values()) if (q.size > (victim?.size ?? held + 1)) victim = q;
    if (victim === undefined) return false;
    const oldest = victim.head!;
    this.release(oldest);
    this.#onEvict(oldest.value);
    return true;
  }
}
