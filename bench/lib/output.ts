/**
 * Theory of operation: a port output for the in-process benches
 * (bench/switch-path.ts, bench/gateway-path.ts) with StreamPort's in-place
 * contract (src/link/stream-port.ts): frames are built at frameOffset() and
 * committed with a 4-byte length prefix, or copied in by sendFrame, into a
 * 1 MiB area that wraps round, so it keeps nothing and allocates nothing per
 * frame. It remembers where the last frame went; while `recording` is an
 * array (a bench's set-up) it also keeps a copy of each frame.
 */
import type { FramePort } from '../../src/switch/types.js';

/** A StreamPort-like output that keeps nothing (see Theory of operation). */
export class Output implements FramePort {
  readonly buf = new Uint8Array(1 << 20);
  readonly view = new DataView(this.buf.buffer);
  used = 0;
  /** Where the last frame committed starts, and its length. */
  last = 0;
  lastLen = 0;
  /** Copies of the frames committed, or null: none kept. */
  recording: Uint8Array[] | null;

  constructor(recording = false) {
    this.recording = recording ? [] : null;
  }
  sendFrame(buf: Uint8Array, off: number, len: number): boolean {
    this.reserveFrame(len);
    this.buf.set(buf.subarray(off, off + len), this.used + 4);
    return this.commitFrame(len);
  }
  isCongested(): boolean {
    return false;
  }
  reserveFrame(maxLen: number): boolean {
    if (this.used + 4 + maxLen > this.buf.length) this.used = 0;
    return true;
  }
  frameBuffer(): Uint8Array {
    return this.buf;
  }
  frameView(): DataView {
    return this.view;
  }
  frameOffset(): number {
    return this.used + 4;
  }
  commitFrame(len: number): boolean {
    this.view.setUint32(this.used, len);
    this.last = this.used + 4;
    this.lastLen = len;
    this.recording?.push(this.buf.slice(this.last, this.last + len));
    this.used += 4 + len;
    return true;
  }
}
