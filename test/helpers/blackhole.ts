/**
 * A loopback TCP port that answers no SYN, as a filtered address would: a
 * child process listens with a backlog of 1 and is stopped (SIGSTOP), a few
 * connections fill its accept queue, and the kernel then drops further SYNs,
 * so a dial to the port stays in flight (`socket.connecting`) until it is
 * closed. Traffic stays on 127.0.0.1; nothing needs root.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';

export interface Blackhole {
  port: number;
  /** Kills the listener and closes the filler connections. */
  close(): void;
}

/** Starts a blackhole port (see the module comment). */
export async function blackholePort(): Promise<Blackhole> {
  const child = spawn(process.execPath, ['-e', "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })"]);
  const filler: Socket[] = [];
  const close = () => {
    for (const f of filler) f.destroy();
    child.kill('SIGKILL');
  };
  try {
    const port = await new Promise<number>((res, rej) => {
      child.once('error', rej);
      child.stdout.once('data', (b: Buffer) => res(Number(b.toString().trim())));
    });
    child.kill('SIGSTOP');
    for (let i = 0; i < 4; i++) filler.push(connect(port, '127.0.0.1').on('error', () => {}));
    await new Promise((r) => setTimeout(r, 100)); // their handshakes complete in the kernel
    return { port, close };
  } catch (e) {
    close();
    throw e;
  }
}
