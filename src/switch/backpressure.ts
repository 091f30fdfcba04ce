/**
 * Theory of operation: who waits for what when the switch tells a sender to
 * hold back (switch.ts, "Congestion and backpressure"). Sans-IO.
 *
 * A sender that honours backpressure (its sink has `drained()`) is told
 * "hold back" when one of its frames went into a congested port, or into the
 * reentrant queue past its threshold. It is then registered with what was
 * congested: the port (a list of waiters per port) or the queue (one list).
 * When that port drains, or the queue has been worked off, each registered
 * sender is called back once (`drained()`), whatever else it may still be
 * waiting for: a sender that sends again into a port still congested is
 * simply told to hold back again. Waiting for all of them instead would let
 * one slow guest stall the gateway's traffic to every other guest.
 *
 * Call-backs run from a work list, never nested: a `drained()` that sends
 * (and so registers or releases more senders) only adds to the list, which
 * the outermost call works off. A call-back that throws is counted on its
 * port (`txErrors`) and the others still run.
 */

/** What the bookkeeping needs from a port. */
export interface Holder {
  readonly attached: boolean;
  readonly sink: { drained?(): void };
  readonly counters: { txErrors: number };
  /** Senders waiting for this port to drain. */
  waiters: Holder[];
  /** Waiting for the reentrant queue. */
  onQueue: boolean;
  /** On the work list. */
  notifyQueued: boolean;
}

/** Waiters and call-backs of one switch. */
export class Backpressure<P extends Holder> {
  readonly #onQueue: P[] = [];
  readonly #toNotify: P[] = [];
  #notifying = false;

  /** `sender` waits for `port` to drain. */
  holdOn(port: P, sender: P): void {
    if (!port.waiters.includes(sender)) port.waiters.push(sender);
  }

  /** `sender` waits for the reentrant queue to be worked off. */
  holdOnQueue(sender: P): void {
    if (sender.onQueue) return;
    sender.onQueue = true;
    this.#onQueue.push(sender);
  }

  /** `port` drained (or is gone): its waiters are due. */
  release(port: P): void {
    const ws = port.waiters as P[];
    if (ws.length === 0) return;
    port.waiters = [];
    for (const w of ws) this.#due(w);
  }

  /** The reentrant queue was worked off: its waiters are due. */
  releaseQueue(): void {
    if (this.#onQueue.length === 0) return;
    for (const w of this.#onQueue) {
      w.onQueue = false;
      this.#due(w);
    }
    this.#onQueue.length = 0;
  }

  /** Calls `drained()` on every due sender, unless already doing so further up the stack. */
  notify(): void {
    if (this.#notifying || this.#toNotify.length === 0) return;
    this.#notifying = true;
    try {
      let w: P | undefined;
      while ((w = this.#toNotify.shift()) !== undefined) {
        w.notifyQueued = false;
        if (!w.attached) continue;
        try {
          w.sink.drained?.();
        } catch {
          w.counters.txErrors++;
        }
      }
    } finally {
      this.#notifying = false;
    }
  }

  #due(w: P): void {
    if (w.attached && !w.notifyQueued) {
      w.notifyQueued = true;
      this.#toNotify.push(w);
    }
  }
}
