/**
 * Theory of operation: a guest console on the user's terminal. Input is
 * put in raw mode (so Ctrl-C, arrows, tab go to the guest, like any serial
 * console), bytes flow both ways unchanged, and one escape byte, Ctrl-]
 * (0x1d, telnet's and virsh's), is kept by vmnet: `vmnet console` detaches
 * on it, `vmnet run` stops the VM on it. Without a terminal, input is not
 * read at all and output is copied. Output follows stdout's pace: when
 * stdout's buffer is full the console stream is paused (its own bound then
 * drops output, counted), so a slow reader of vmnet's stdout cannot grow
 * vmnet's memory.
 */
import type { Duplex, Readable, Writable } from 'node:stream';

export const ESCAPE = 0x1d;

export interface TerminalIo {
  stdin?: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable;
  /** Read input (only when stdin is a terminal, unless forced). */
  interactive: boolean;
}

/**
 * Connects a console stream to the terminal until Ctrl-] or the stream ends.
 * @returns 'escape' when the user pressed Ctrl-], 'closed' when the console ended
 */
export function attachTerminal(console: Duplex, io: TerminalIo): { done: Promise<'escape' | 'closed'>; detach(): void } {
  const stdin = io.interactive ? io.stdin : undefined;
  let finish!: (why: 'escape' | 'closed') => void;
  const done = new Promise<'escape' | 'closed'>((r) => (finish = r));
  const raw = Boolean(stdin?.isTTY && stdin.setRawMode);
  // Backpressure: a slow stdout pauses the console stream, whose own bound (serial.ts) then drops, counted.
  const resume = () => console.resume();
  const onOut = (b: Buffer) => {
    if (!io.stdout.write(b)) {
      console.pause();
      io.stdout.once('drain', resume);
    }
  };
  const onIn = (b: Buffer) => {
    const i = b.indexOf(ESCAPE);
    if (i >= 0) {
      if (i > 0) console.write(b.subarray(0, i));
      cleanup('escape');
      return;
    }
    console.write(b);
  };
  const onEnd = () => cleanup('closed');
  let cleaned = false;
  const cleanup = (why: 'escape' | 'closed') => {
    if (cleaned) return;
    cleaned = true;
    console.off('data', onOut);
    io.stdout.off('drain', resume);
    console.off('end', onEnd);
    console.off('close', onEnd);
    if (stdin) {
      stdin.off('data', onIn);
      if (raw) stdin.setRawMode!(false);
      stdin.pause();
    }
    finish(why);
  };
  console.on('data', onOut);
  console.on('end', onEnd);
  console.on('close', onEnd);
  if (stdin) {
    if (raw) stdin.setRawMode!(true);
    stdin.on('data', onIn);
    stdin.resume();
  }
  return { done, detach: () => cleanup('closed') };
}
