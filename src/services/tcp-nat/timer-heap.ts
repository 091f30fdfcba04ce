/**
 * Theory of operation: one deadline queue for many TCP connections, so the
 * gateway runs a single Node timer however many flows are open. A binary
 * min-heap of (deadline, item) with lazy deletion: an item is pushed again
 * whenever its deadline moves earlier; stale entries are recognised on pop
 * (the owner re-checks the item's real deadline) and discarded.
 */
export class TimerHeap<T> {
  private at: number[] = [];
  private items: T[] = [];

  get size(): number {
    return this.at.length;
  }

  /** The earliest deadline, or Infinity. */
  peek(): number {
    return this.at.length ? this.at[0]! : Infinity;
  }

  push(at: number, item: T): void {
    let i = this.at.length;
    this.at.push(at);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.at[p]! <= at) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes and returns the earliest item if its deadline is <= now. */
  popDue(now: number): T | undefined {
    if (!this.at.length || this.at[0]! > now) return undefined;
    const item = this.items[0]!;
    const lastAt = this.at.pop()!;
    const lastItem = this.items.pop()!;
    if (this.at.length) {
      this.at[0] = lastAt;
      this.items[0] = lastItem;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.at.length && this.at[l]! < this.at[m]!) m = l;
        if (r < this.at.length && this.at[r]! < this.at[m]!) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return item;
  }

  private swap(a: number, b: number): void {
    const t = this.at[a]!;
    this.at[a] = this.at[b]!;
    this.at[b] = t;
    const u = this.items[a]!;
    this.items[a] = this.items[b]!;
    this.items[b] = u;
  }
}
