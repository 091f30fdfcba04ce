/**
 * Theory of operation: a VM's serial console, shared. QEMU serves the
 * guest's ttyS0 on one unix socket (`-chardev socket,server=on`) and accepts
 * a single client: the launcher. The hub fans the guest's output out to
 *
 * - the log `serial.log` in the VM directory, which lives in a RAM-backed
 *   runtime directory: it is rotated at {@link SERIAL_LOG_CAP} bytes into
 *   `serial.log.1` (one old file kept), so a chatty guest costs at most
 *   twice that;
 * - a copy file the user asked for (`--console file:`), appended to and not
 *   rotated (the user chose where it goes);
 * - `vm.serial`, a Duplex for the library (reading gives guest output,
 *   writing types into the guest); it keeps at most the last 1 MiB while
 *   nobody reads (older output dropped, counted);
 * - every client of `console.sock` (what `vmnet console NAME` and scripts
 *   connect to); a new client first gets the last 64 KiB of output, so it
 *   sees the prompt (or the test guest's VMNET-READY) it would have missed.
 *
 * Bounds. Nothing a guest prints or a client fails to read grows memory
 * without limit. QEMU's serial output arrives a few bytes per read; it is
 * gathered (byte-queue.ts: copied into 64 KiB slabs) and handed out at most
 * every {@link BATCH_MS} ms, or at once when 64 KiB are waiting, so every
 * queue downstream holds few large buffers rather than millions of tiny
 * ones (whose per-object cost would dwarf the bytes counted: a stream that
 * held "1 MiB" of 5-byte reads grew vmnet's heap by ~50 MB). The history and
 * the unread part of `vm.serial` are byte queues too (oldest dropped,
 * counted). A console client whose unsent output passes {@link CLIENT_CAP}
 * bytes or {@link CLIENT_MAX_WRITES} writes is disconnected (a client that
 * does not read cannot see a console anyway) and counted; a log file whose
 * pending writes pass {@link LOG_PENDING_CAP} bytes or as many writes
 * (slow disk, a FIFO nobody reads) drops output, counted. Input from every
 * client and from `vm.serial` is merged into the guest's console with
 * backpressure: while QEMU's socket has more than {@link INPUT_CAP} unsent
 * bytes, clients are paused.
 *
 * Stop. close() never waits for a client: clients with nothing pending are
 * ended, the others destroyed, the listener closed without waiting for
 * connections to drain.
 */
import { createWriteStream, renameSync, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { listenPrivate } from '../link/unix-listen.js';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { ByteQueue } from './byte-queue.js';

const HISTORY = 64 * 1024;
const SERIAL_BUFFER_CAP = 1024 * 1024;
/** Unsent output per console client before it is disconnected. */
export const CLIENT_CAP = 1024 * 1024;
/** Unfinished writes per console client (or log file) before it is disconnected (or drops). */
export const CLIENT_MAX_WRITES = 4096;
/** Longest wait before gathered output is handed out. */
export const BATCH_MS = 5;
const BATCH_MAX = 64 * 1024;
/** serial.log is rotated at this size. */
export const SERIAL_LOG_CAP = 1024 * 1024;
/** Pending writes per log file before output is dropped. */
export const LOG_PENDING_CAP = 4 * 1024 * 1024;
/** Unsent input to QEMU before clients are paused. */
export const INPUT_CAP = 256 * 1024;

/** What the hub counted (`vmnet ls --json`: `console`). */
export interface SerialCounters {
  /** console.sock clients connected now. */
  clients: number;
  /** Clients disconnected because they did not read. */
  slowClientsCut: number;
  /** Output bytes dropped because nobody read `vm.serial`. */
  streamDropped: number;
  /** Output bytes a log file could not take (its writes fell behind). */
  logDropped: number;
  /** serial.log rotations. */
  logRotations: number;
}

/** One file that gets a copy of the output; rotated when it has a cap. */
class LogCopy {
  #w: WriteStream;
  #size = 0;
  dropped = 0;
  rotations = 0;

  /**
   * @param target a path (appended to) or an open descriptor (owned from now on)
   * @param rotateAt rotate to `<path>.1` at this size (paths only), or null
   */
  constructor(
    private readonly target: string | number,
    private readonly rotateAt: number | null,
  ) {
    this.#w = this.#open(typeof target === 'number' ? 'fd' : 'a');
  }

  #open(how: 'fd' | 'a' | 'w'): WriteStream {
    const w = how === 'fd' ? createWriteStream('', { fd: this.target as number }) : createWriteStream(this.target as string, { flags: how, mode: 0o600 });
    w.on('error', () => undefined);
    return w;
  }

  #pending = 0;
  readonly #done = () => void this.#pending--;

  write(b: Buffer): void {
    if (this.#w.writableLength > LOG_PENDING_CAP || this.#pending >= CLIENT_MAX_WRITES) {
      this.dropped += b.length;
      return;
    }
    if (this.rotateAt !== null && typeof this.target === 'string' && this.#size + b.length > this.rotateAt && this.#size > 0) {
      // Pending writes of the old stream land in the renamed file (same descriptor).
      this.#w.end();
      try {
        renameSync(this.target, `${this.target}.1`);
      } catch {
        /* the directory is going away */
      }
      this.#w = this.#open('w');
      this.#size = 0;
      this.rotations++;
    }
    this.#pending++;
    this.#w.write(b, this.#done);
    this.#size += b.length;
  }

  close(): Promise<void> {
    return new Promise<void>((r) => this.#w.end(() => r()));
  }
}

export class SerialHub {
  /** Guest output in, guest input out. */
  readonly stream: Duplex;
  #slowClientsCut = 0;
  /** The last HISTORY bytes of output (replayed to new clients). */
  readonly #history = new ByteQueue(HISTORY);
  /** Output `stream`'s reader has not asked for yet. */
  readonly #unread = new ByteQueue(SERIAL_BUFFER_CAP);
  /** The stream's reader wants data (read() called, push() not yet refused). */
  #reading = false;
  /** Output gathered since the last hand-out. */
  readonly #batch = new ByteQueue(Number.MAX_SAFE_INTEGER);
  #batchTimer: NodeJS.Timeout | null = null;
  readonly #logs: LogCopy[] = [];
  /** console.sock clients and their unfinished writes. */
  readonly #clients = new Map<net.Socket, { pending: number }>();
  #server: net.Server | null = null;
  #serverPath: string | null = null;
  #ended = false;

  /**
   * @param qemu the connection to QEMU's serial socket
   * @param logs files that get a copy of the output: `{ path, rotateAt }` or an open descriptor (owned from now on, never rotated)
   */
  constructor(
    private readonly qemu: net.Socket,
    logs: Array<{ path: string; rotateAt: number | null } | number>,
  ) {
    for (const l of logs) this.#logs.push(typeof l === 'number' ? new LogCopy(l, null) : new LogCopy(l.path, l.rotateAt));
    this.stream = new Duplex({
      read: () => {
        this.#reading = true;
        this.#feedStream();
      },
      write: (chunk: Buffer, _enc, cb) => {
        if (this.input(chunk)) cb();
        else this.#afterInputDrains(() => cb());
      },
    });
    qemu.on('data', (b: Buffer) => this.#collect(b));
    qemu.on('error', () => undefined);
    qemu.on('close', () => this.#end());
  }

  /** What the hub counted. */
  get counters(): SerialCounters {
    return {
      clients: this.#clients.size,
      slowClientsCut: this.#slowClientsCut,
      streamDropped: this.#unread.dropped,
      logDropped: this.#logs.reduce((n, l) => n + l.dropped, 0),
      logRotations: this.#logs.reduce((n, l) => n + l.rotations, 0),
    };
  }

  /**
   * Sends bytes to the guest's console.
   * @returns false when QEMU's socket holds more than INPUT_CAP unsent bytes (wait for it to drain)
   */
  input(b: Buffer | string): boolean {
    if (this.qemu.destroyed) return true;
    this.qemu.write(b);
    return this.qemu.writableLength <= INPUT_CAP;
  }

  #afterInputDrains(go: () => void): void {
    if (this.qemu.destroyed) go();
    else this.qemu.once('drain', go);
  }

  /** Serves `console.sock`: raw bytes both ways. */
  async listen(path: string): Promise<void> {
    const server = net.createServer((c) => {
      c.on('error', () => undefined);
      if (this.#ended) {
        c.end(this.#history.peek());
        return;
      }
      this.#clients.set(c, { pending: 0 });
      c.on('close', () => this.#clients.delete(c));
      if (this.#history.length) this.#send(c, this.#history.peek());
      c.on('data', (b: Buffer) => {
        if (!this.input(b)) {
          c.pause();
          this.#afterInputDrains(() => c.resume());
        }
      });
    });
    await listenPrivate(server, path);
    this.#server = server;
    this.#serverPath = path;
  }

  /** Gathers QEMU's output (a few bytes per read) for the next hand-out. */
  #collect(b: Buffer): void {
    this.#batch.push(b);
    if (this.#batch.length >= BATCH_MAX) this.#flush();
    else this.#batchTimer ??= setTimeout(this.#flush, BATCH_MS);
  }

  readonly #flush = (): void => {
    if (this.#batchTimer) clearTimeout(this.#batchTimer);
    this.#batchTimer = null;
    for (const b of this.#batch.take()) this.#output(b);
  };

  #output(b: Buffer): void {
    this.#history.push(b);
    for (const w of this.#logs) w.write(b);
    for (const [c, st] of this.#clients) {
      if (c.writableLength + b.length > CLIENT_CAP || st.pending >= CLIENT_MAX_WRITES) {
        // It does not read: cut it off rather than hold the guest's output for it.
        this.#slowClientsCut++;
        this.#clients.delete(c);
        c.destroy();
        continue;
      }
      this.#send(c, b);
    }
    this.#unread.push(b);
    if (this.#reading) this.#feedStream();
  }

  #send(c: net.Socket, b: Buffer): void {
    const st = this.#clients.get(c);
    if (!st) return;
    st.pending++;
    c.write(b, () => void st.pending--);
  }

  /** Hands `stream`'s reader what it has not had yet, as long as it wants more. */
  #feedStream(): void {
    if (this.#unread.length === 0) return;
    for (const b of this.#unread.take()) {
      if (!this.stream.push(b)) this.#reading = false;
    }
  }

  /** The last 64 KiB of guest output. */
  tail(): string {
    return this.#history.peek().toString('utf8');
  }

  /** Ends everything: clients, logs, the stream. Idempotent; never waits for a client. */
  async close(): Promise<void> {
    this.#end();
    if (this.#server) {
      this.#server.close();
      this.#server = null;
    }
    if (this.#serverPath) await unlink(this.#serverPath).catch(() => undefined);
    this.#serverPath = null;
    await Promise.all(this.#logs.map((w) => w.close()));
  }

  #end(): void {
    if (this.#ended) return;
    this.#flush();
    this.#ended = true;
    this.qemu.destroy();
    // Never wait for a client: one with output pending (not reading) is destroyed now, the others once their FIN is queued.
    for (const c of this.#clients.keys()) {
      if (c.writableLength === 0) c.end(() => c.destroy());
      else c.destroy();
    }
    this.#clients.clear();
    this.#server?.close();
    for (const b of this.#unread.take()) this.stream.push(b); // the reader gets the end of the output too
    this.stream.push(null);
  }
}
