/**
 * Theory of operation: a VM's serial console, shared. QEMU serves the
 * guest's ttyS0 on one unix socket (`-chardev socket,server=on`) and accepts
 * a single client: the launcher. The hub fans the guest's output out to
 *
 * - the log `serial.log` in the VM directory (and a copy file if asked),
 * - `vm.serial`, a Duplex for the library (reading gives guest output,
 *   writing types into the guest); it buffers at most 1 MiB while nobody
 *   reads, then drops (counted), so a chatty guest cannot grow memory,
 * - every client of `console.sock` (what `vmnet console NAME` and scripts
 *   connect to); a new client first gets the last 64 KiB of output, so it
 *   sees the prompt (or the test guest's VMNET-READY) it would have missed,
 *
 * and merges input from all of them into the guest's console.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { listenPrivate } from '../link/unix-listen.js';
import net from 'node:net';
import { Duplex } from 'node:stream';

const HISTORY = 64 * 1024;
const SERIAL_BUFFER_CAP = 1024 * 1024;

export class SerialHub {
  /** Guest output in, guest input out. */
  readonly stream: Duplex;
  /** Output bytes dropped because nobody read `stream`. */
  dropped = 0;
  private history = Buffer.alloc(0);
  private readonly logs: WriteStream[] = [];
  private readonly clients = new Set<net.Socket>();
  private server: net.Server | null = null;
  private serverPath: string | null = null;
  private ended = false;

  /**
   * @param qemu the connection to QEMU's serial socket
   * @param logs files that get a copy of the output: paths (appended to) or open descriptors (owned from now on)
   */
  constructor(private readonly qemu: net.Socket, logs: Array<string | number>) {
    for (const p of logs) {
      const w = typeof p === 'number' ? createWriteStream('', { fd: p }) : createWriteStream(p, { flags: 'a', mode: 0o600 });
      w.on('error', () => undefined);
      this.logs.push(w);
    }
    this.stream = new Duplex({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        this.input(chunk);
        cb();
      },
    });
    qemu.on('data', (b: Buffer) => this.output(b));
    qemu.on('error', () => undefined);
    qemu.on('close', () => this.end());
  }

  /** Sends bytes to the guest's console. */
  input(b: Buffer | string): void {
    if (!this.qemu.destroyed) this.qemu.write(b);
  }

  /** Serves `console.sock`: raw bytes both ways. */
  async listen(path: string): Promise<void> {
    const server = net.createServer((c) => {
      if (this.ended) {
        c.end(this.history);
        return;
      }
      this.clients.add(c);
      c.on('error', () => undefined);
      c.on('close', () => this.clients.delete(c));
      if (this.history.length) c.write(this.history);
      c.on('data', (b: Buffer) => this.input(b));
    });
    await listenPrivate(server, path);
    this.server = server;
    this.serverPath = path;
  }

  private output(b: Buffer): void {
    this.history = this.history.length + b.length <= HISTORY ? Buffer.concat([this.history, b]) : Buffer.concat([this.history, b]).subarray(-HISTORY);
    for (const w of this.logs) w.write(b);
    for (const c of this.clients) c.write(b);
    if (this.stream.readableLength < SERIAL_BUFFER_CAP) this.stream.push(b);
    else this.dropped += b.length;
  }

  /** The last 64 KiB of guest output. */
  tail(): string {
    return this.history.toString('utf8');
  }

  /** Ends everything: clients, logs, the stream. Idempotent. */
  async close(): Promise<void> {
    this.end();
    if (this.server) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
    }
    if (this.serverPath) await unlink(this.serverPath).catch(() => undefined);
    await Promise.all(this.logs.map((w) => new Promise<void>((r) => w.end(() => r()))));
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.qemu.destroy();
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.server?.close();
    this.stream.push(null);
  }
}
