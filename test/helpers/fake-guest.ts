/**
 * A fake guest on one real QEMU-stream connection (unix socket): it sends
 * crafted frames and awaits the decoded frames that come back (every
 * checksum verified by decodeFrame).
 */
import { connectStream, type StreamPort } from '../../src/link/stream-port.js';
import { decodeFrame, type DecodedFrame } from './frames.js';

export interface FakeGuest {
  send(frame: Uint8Array): void;
  /** The first received frame `match` accepts (removed from the inbox), or an error after `timeoutMs`. */
  next(match: (f: DecodedFrame) => boolean, timeoutMs?: number): Promise<DecodedFrame>;
  close(): void;
}

export async function fakeGuest(path: string): Promise<FakeGuest> {
  const port: StreamPort = await connectStream({ path });
  const inbox: DecodedFrame[] = [];
  const waiters: Array<() => void> = [];
  port.onFrame = (buf, _v, off, len) => {
    inbox.push(decodeFrame(buf.slice(off, off + len)));
    waiters.splice(0).forEach((w) => w());
  };
  return {
    send(frame) {
      port.sendFrame(frame, 0, frame.length);
    },
    async next(match, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex(match);
        if (i >= 0) return inbox.splice(i, 1)[0]!;
        if (Date.now() > deadline) throw new Error('no matching frame from the gateway');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    close: () => port.close(),
  };
}
