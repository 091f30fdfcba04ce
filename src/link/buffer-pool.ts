/**
 * Theory of operation: a bounded pool of I/O buffers shared by the ports of
 * one process.
 *
 * A StreamPort keeps a few idle output chunks of its own (enough for its
 * high-water mark); while a port is congested beyond that, as a switch port
 * is when it queues up to its `queueBytes` (switch.ts, "Congestion and
 * backpressure"), every further 64 KiB chunk was a fresh `allocUnsafeSlow`
 * dropped after its write: at 1 Gbit/s that is some 2,000 external
 * allocations a second, and V8 answers external memory with full garbage
 * collections (25-31% of the switch's busy time in
 * `bench/switch.ts --profile-switch`). {@link boundedPool} keeps buffers
 * given back, by size, up to `maxBytes` in all, and hands them out again;
 * past the bound a given-back buffer is left to the garbage collector. So a
 * burst costs the process at most `maxBytes` of retained memory afterwards.
 *
 * Buffers are handed out as they were given back: contents are stale
 * (callers overwrite before reading, as with `Buffer.allocUnsafe`).
 */
import type { BufferPool } from './stream-framer.js';

/**
 * A {@link BufferPool} that keeps at most `maxBytes` of idle buffers.
 * @param maxBytes bound of the idle buffers kept, summed over all sizes
 * @returns the pool; `take` allocates (`Buffer.allocUnsafeSlow`) when none of that size is idle
 */
export function boundedPool(maxBytes: number): BufferPool & { readonly idleBytes: number } {
  const idle = new Map<number, Uint8Array[]>();
  let idleBytes = 0;
  return {
    get idleBytes() {
      return idleBytes;
    },
    take(size) {
      const b = idle.get(size)?.pop();
      if (b === undefined) return Buffer.allocUnsafeSlow(size);
      idleBytes -= size;
      return b;
    },
    give(b) {
      if (idleBytes + b.length > maxBytes) return;
      let list = idle.get(b.length);
      if (list === undefined) idle.set(b.length, (list = []));
      list.push(b);
      idleBytes += b.length;
    },
  };
}
