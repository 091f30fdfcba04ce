/**
 * Theory of operation: the memory budget for TCP buffers of one gateway,
 * with a share per guest, so that no guest (and no number of connections)
 * can make the gateway hold more than a fixed amount of payload memory.
 *
 * Every send and receive buffer of a connection charges its guest's account
 * (`BudgetAccount`) for the storage it allocates and credits it when it
 * frees storage. Sans-IO and synchronous: an account is two numbers, a
 * charge is an addition.
 *
 * What the buffers do with it (send-buffer.ts, recv-buffer.ts, receiver.ts):
 * - a buffer may grow only into `available()` = min(the guest's share left,
 *   the gateway's total left), except to MIN_RING (4 KiB), which every
 *   buffer may always have, so every connection keeps moving, slowly, when
 *   the budget is spent;
 * - send side: `writable` is what fits, so the relay pauses the host socket
 *   rather than have the buffer grow;
 * - receive side: the window advertised is what fits, so the peer sends no
 *   more than we can hold; a window already advertised is never taken back
 *   (RFC 9293 §3.8.6.2.2: the right edge never moves back), but data inside
 *   it that would need storage the budget does not have is not stored (the
 *   peer retransmits it, as after a loss); out-of-order data the budget
 *   cannot hold is not kept (nor SACKed). Data already acknowledged is never
 *   dropped, and out-of-order data already SACKed is kept.
 *
 * So the gateway's TCP payload memory stays below `total` plus 8 KiB per
 * connection (the two floors), and one guest's below `perGuest` plus its
 * floors. The defaults (DEFAULT_TOTAL = 256 MiB, DEFAULT_PER_GUEST = 64 MiB)
 * let a guest run several bulk transfers with fully grown buffers (1 MiB each
 * way at MTU 1500, 4 MiB above 9000: iperf3 -P 4 at MTU 65520 peaks near
 * 32 MiB) while four guests at their share fit the total.
 *
 * Counters (`counters`) say how often the budget held something back.
 */

/** Default total for one gateway: 256 MiB. */
export const DEFAULT_TOTAL = 256 * 1024 * 1024;
/** Default share of one guest: 64 MiB. */
export const DEFAULT_PER_GUEST = 64 * 1024 * 1024;

/** How often the budget held a buffer back. */
export interface BudgetCounters {
  /** A buffer (send or receive) could not grow as far as it wanted. */
  limited: number;
  /** Out-of-order segments not kept for lack of budget. */
  oooDropped: number;
  /** In-order bytes inside the advertised window not stored for lack of budget (the peer resends them). */
  inOrderDropped: number;
}

/** The TCP buffer budget of one gateway. */
export class TcpBudget {
  /** Bytes charged by all accounts. */
  used = 0;
  readonly counters: BudgetCounters = { limited: 0, oooDropped: 0, inOrderDropped: 0 };
  readonly #accounts = new Map<unknown, BudgetAccount>();

  /**
   * @param total the most bytes all buffers may hold together (beyond the floors)
   * @param perGuest the most bytes one guest's buffers may hold (beyond the floors)
   */
  constructor(
    readonly total = DEFAULT_TOTAL,
    readonly perGuest = DEFAULT_PER_GUEST,
  ) {}

  /**
   * The account of one guest, for a new connection (`release` it when the
   * connection is done).
   * @param key whatever identifies the guest to the owner (compared with ===)
   */
  acquire(key: unknown): BudgetAccount {
    let a = this.#accounts.get(key);
    if (a === undefined) this.#accounts.set(key, (a = new BudgetAccount(this, key)));
    a.refs++;
    return a;
  }

  /** Guests with an account (connections or charged bytes). */
  get guests(): number {
    return this.#accounts.size;
  }

  /** Forgets an account that holds nothing and serves no connection. */
  forget(a: BudgetAccount): void {
    if (a.used === 0 && a.refs === 0 && this.#accounts.get(a.key) === a) this.#accounts.delete(a.key);
  }
}

/** One guest's share of a TcpBudget. */
export class BudgetAccount {
  /** Bytes charged by this guest's buffers. */
  used = 0;
  /** Connections using this account. */
  refs = 0;

  constructor(
    readonly budget: TcpBudget,
    readonly key: unknown,
  ) {}

  /** Bytes this guest's buffers may still grow by: min(its share left, the gateway's total left). */
  available(): number {
    const b = this.budget;
    return Math.max(0, Math.min(b.perGuest - this.used, b.total - b.used));
  }

  /** Records `n` bytes allocated (the caller checked `available`, or is growing to its floor). */
  charge(n: number): void {
    this.used += n;
    this.budget.used += n;
  }

  /** Records `n` bytes freed. */
  credit(n: number): void {
    this.used -= n;
    this.budget.used -= n;
    if (this.used === 0 && this.refs === 0) this.budget.forget(this);
  }

  /** A connection is done with this account (after crediting what it held). */
  release(): void {
    this.refs--;
    this.budget.forget(this);
  }
}
