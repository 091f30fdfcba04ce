/**
 * Theory of operation: download progress without I/O. A ProgressMeter is
 * fed the byte count as data arrives, with the time passed in (tests use a
 * fake clock), and says when a progress report is due: at most one per
 * interval, plus the final one. The rate is measured over a sliding window
 * of the last few seconds, and only once a second of data is in (so a stall shows at once, and an early burst
 * does not flatter the ETA for the rest of the download); the ETA is what
 * is left divided by that rate, unknown without a total or a rate.
 *
 * formatProgress() renders one line for a terminal (size, rate, ETA).
 */
import { formatBytes } from './size.js';

/** One progress report. */
export interface ProgressSnapshot {
  /** Bytes of the file so far (a resumed download counts what it had). */
  bytes: number;
  /** The file's size, when the server said it. */
  total: number | null;
  /** Bytes per second over the window, 0 until a second has been measured. */
  rateBps: number;
  /** Seconds left at that rate; null when unknown. */
  etaS: number | null;
}

export interface ProgressOptions {
  /** Least time between two reports, ms (default 500). */
  intervalMs?: number;
  /** Width of the rate window, ms (default 5000). */
  windowMs?: number;
}

/** Counts bytes and time; decides when to report. */
export class ProgressMeter {
  readonly #intervalMs: number;
  readonly #windowMs: number;
  #total: number | null;
  #bytes: number;
  #lastReport = -Infinity;
  /** (time, bytes) samples inside the window, oldest first. */
  #samples: Array<[number, number]> = [];

  /**
   * @param total the file's size, or null when unknown
   * @param bytes bytes already there (a resumed download)
   * @param now the current time, ms
   */
  constructor(total: number | null, bytes: number, now: number, opts: ProgressOptions = {}) {
    this.#intervalMs = opts.intervalMs ?? 500;
    this.#windowMs = opts.windowMs ?? 5000;
    this.#total = total;
    this.#bytes = bytes;
    this.#samples.push([now, bytes]);
  }

  /** Restarts the count (the server sent the file from the start again, or a resumed request went out). */
  reset(total: number | null, bytes: number, now: number): void {
    this.#total = total;
    this.#bytes = bytes;
    this.#samples = [[now, bytes]];
  }

  /**
   * Records the byte count.
   * @returns true when a report is due (the first update after each interval)
   */
  update(bytes: number, now: number): boolean {
    this.#bytes = bytes;
    if (now - this.#lastReport < this.#intervalMs) return false;
    this.#lastReport = now;
    this.#samples.push([now, bytes]);
    while (this.#samples.length > 2 && now - this.#samples[0]![0] > this.#windowMs) this.#samples.shift();
    return true;
  }

  /** The numbers to report now. */
  snapshot(now: number): ProgressSnapshot {
    const [t0, b0] = this.#samples[0]!;
    const dt = (now - t0) / 1000;
    // Under a second of data says little (the first chunks come in a burst): no rate yet.
    const rateBps = dt >= 1 ? Math.max(0, Math.round((this.#bytes - b0) / dt)) : 0;
    const etaS = this.#total !== null && rateBps > 0 ? Math.max(0, Math.ceil((this.#total - this.#bytes) / rateBps)) : null;
    return { bytes: this.#bytes, total: this.#total, rateBps, etaS };
  }
}

/** `m:ss` or `h:mm:ss`. */
function clock(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/**
 * One progress line: `12.3 MiB / 300 MiB (4%), 5.1 MiB/s, ETA 0:56`.
 * @param p a snapshot
 */
export function formatProgress(p: ProgressSnapshot): string {
  const size = p.total !== null ? `${formatBytes(p.bytes)} / ${formatBytes(p.total)} (${p.total > 0 ? Math.floor((p.bytes / p.total) * 100) : 100}%)` : formatBytes(p.bytes);
  const rate = p.rateBps > 0 ? `, ${formatBytes(p.rateBps)}/s` : '';
  const eta = p.etaS !== null ? `, ETA ${clock(p.etaS)}` : '';
  return `${size}${rate}${eta}`;
}
