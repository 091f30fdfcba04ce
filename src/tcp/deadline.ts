/**
 * Theory of operation: timer deadlines as the TCP engine stores them.
 *
 * Every connection keeps a handful of timers (RTO, TLP, RACK reordering,
 * persist, delayed ACK, TIME-WAIT, connect, buffer trim) as absolute
 * deadlines in fields, and the gateway asks `nextTimeout()` for the earliest.
 * A field holding a non-integer number — `Infinity` for "off", or a
 * fractional `performance.now()` instant — makes V8 keep that field as a
 * 16-byte heap box in every connection object of its shape (x64 Node without
 * pointer compression: an integer in the signed 32-bit range is stored in
 * place, a "Smi"). With 10,000 idle connections those boxes were a tenth of
 * the gateway's memory per connection (README, Known limits). So:
 * - a deadline is a whole millisecond, rounded up (`after`): a timer fires at
 *   most 1 ms late, which is below the granularity of the Node timer that
 *   drives it;
 * - "off" is {@link OFF} (-1), a Smi; `due` and `earlier` treat it as never.
 * The clock is `performance.now()` (ms since the process started): deadlines
 * stay Smis for the first 2^31 ms (24.8 days) of a gateway's life and are
 * heap numbers after that — still correct, only bigger.
 *
 * Pure: no I/O, no allocation.
 */

/** A timer field's value while the timer is off. */
export const OFF = -1;

/**
 * The deadline `delay` ms after `now`, a whole ms (rounded up), or OFF when
 * `delay` is not finite (a configured timeout of Infinity disables it).
 */
export const after = (now: number, delay: number): number => (delay < Infinity ? Math.ceil(now + delay) : OFF);

/** Whether the deadline `at` (or OFF) has come at `now`. */
export const due = (at: number, now: number): boolean => at >= 0 && now >= at;

/** The earlier of two deadlines, either possibly OFF (OFF only when both are). */
export const earlier = (a: number, b: number): number => (a < 0 ? b : b < 0 || a < b ? a : b);
