/**
 * Theory of operation: the switch server's clock (the engine's injected
 * `now`, switch.ts). `performance.now()` costs about 70 ns on this kind of
 * machine, and the engine read it for every frame (twice for a frame an
 * in-process sender builds in place): at MTU 1500 that was a third of the
 * engine's own time per frame, work the gateway on its own socket does not
 * do (it keeps its own coarse tick for the same reason, gateway.ts).
 *
 * {@link macrotaskClock} reads it once per macrotask: the first call in a
 * callback (a socket read, a timer) reads the clock, and a microtask forgets
 * the reading once that callback's synchronous work is done. So the frames
 * of one socket read, and everything they set off, share one reading, as
 * they arrived together; the next read, timer or promise continuation gets a
 * fresh one. What the engine times (ageing in minutes, flap windows and the
 * storm limit's refill in milliseconds) never needs finer than that: one
 * callback's synchronous work is bounded by one read.
 */
import { performance } from 'node:perf_hooks';

/**
 * A monotonic millisecond clock that reads `read` at most once per
 * macrotask (see Theory of operation).
 * @param read the underlying clock; default `performance.now`
 * @returns the clock
 */
export function macrotaskClock(read: () => number = () => performance.now()): () => number {
  let t = 0;
  let fresh = false;
  const forget = (): void => {
    fresh = false;
  };
  return () => {
    if (!fresh) {
      t = read();
      fresh = true;
      queueMicrotask(forget);
    }
    return t;
  };
}
