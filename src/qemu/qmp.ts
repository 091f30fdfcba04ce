/**
 * Theory of operation: a client for the QEMU Machine Protocol (QMP), the
 * JSON monitor QEMU serves on `-chardev socket,...,server=on -mon
 * chardev=...,mode=control` (qemuArgs' `qmpSocket`). It follows QEMU's
 * docs/interop/qmp-spec (section numbers below are those of the spec):
 *
 * - Transport (§2.1): messages are JSON objects, one per line (QEMU ends them
 *   with "\r\n"). A read may hold part of a message or several, so bytes are
 *   split on "\n" with a buffered line splitter that never assumes message
 *   boundaries match reads, and caps a line at `maxLineBytes` (4 MiB by
 *   default): a longer one is a protocol error that closes the connection
 *   instead of growing memory without bound. A line that is not a JSON object
 *   is counted (`stats.garbageLines`) and ignored; nothing thrown while
 *   handling input ever escapes the socket's data handler.
 * - Server greeting (§2.2): the first message is `{"QMP": {"version": …,
 *   "capabilities": […]}}`. `connect()` waits for it, then leaves
 *   capabilities negotiation mode (§4) with `qmp_capabilities` (asking for no
 *   optional capability: out-of-band execution is not used), and only then
 *   hands the client to the caller.
 * - Issuing commands (§2.3): every `execute` carries an `id`, here a
 *   monotonic counter. QEMU copies it into the response (§2.4: `{"return":
 *   …}` on success, `{"error": {"class", "desc"}}` on failure), so responses
 *   are matched by id, never by arrival order; a falsy `return` (`0`, `{}`,
 *   `false`) is a success like any other. A response whose id is unknown
 *   (its command already timed out) or absent (QEMU could not parse the
 *   request: it never happens with JSON.stringify'd input) is counted in
 *   `stats.unmatchedResponses` and dropped rather than guessed at.
 * - Asynchronous events (§2.5): `{"event", "data", "timestamp": {"seconds",
 *   "microseconds"}}` may arrive at any time, between or before responses,
 *   and are delivered whole (data and timestamp: a SHUTDOWN's `guest` and
 *   `reason` tell a guest power-off from a host `quit`) to `on('event')`
 *   listeners and to `waitForEvent()`.
 *
 * Failure is explicit: each command has a timeout (E_TIMEOUT), QEMU's errors
 * become QmpCommandError (E_QMP, with QEMU's class and description), and when
 * the connection ends (QEMU exited, or close()) every pending command and
 * event wait rejects with E_CLOSED and `closed` resolves. QEMU's
 * `system_powerdown` only presses the virtual ACPI power button (it emits
 * POWERDOWN); whether the machine then stops is up to the guest's OS.
 */
import dc from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { VmnetError } from '../errors.js';

/** Default cap on one QMP message (a line); see qmp-spec §2.1. */
export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** Every message sent and received, for tracing: `{ path, direction: 'send' | 'recv', message }`. */
const traceChannel = dc.channel('vmnet:qmp');

/** QEMU's event timestamp (qmp-spec §2.5): host wall-clock time of the event. */
export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

/** An asynchronous event (qmp-spec §2.5). `data` is `{}` when QEMU sent none. */
export interface QmpEvent<D = Record<string, unknown>> {
  event: string;
  data: D;
  timestamp: QmpTimestamp;
}

/** The server greeting's body (qmp-spec §2.2). */
export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

/** What `query-status` reports; `status` is QEMU's RunState ('prelaunch', 'running', 'paused', 'shutdown', …). */
export interface QmpStatus {
  running: boolean;
  status: string;
}

/** How the connection ended. */
export interface QmpClosed {
  /** True when close() ended it, false when QEMU (or a protocol error) did. */
  byUs: boolean;
  /** The socket or protocol error that ended it, if any. */
  error?: VmnetError;
}

export interface QmpConnectOptions {
  /** Budget for connecting (retrying until QEMU has created the socket), the greeting and capabilities negotiation. Default 10 s. */
  timeoutMs?: number;
  /** Default timeout of each later command. Default 10 s. */
  commandTimeoutMs?: number;
  /** Longest accepted message. Default 4 MiB. */
  maxLineBytes?: number;
  /** Stops the connect retries (e.g. when QEMU has exited). */
  signal?: AbortSignal;
  /** An `on('event')` listener attached before negotiation, so no event that follows it closely is missed. */
  onEvent?: (e: QmpEvent) => void;
}

export interface QmpExecuteOptions {
  /** Overrides the client's commandTimeoutMs for this command. */
  timeoutMs?: number;
}

/** QEMU answered a command with `{"error": {"class", "desc"}}` (qmp-spec §2.4.2). */
export class QmpCommandError extends VmnetError {
  /** The command that failed. */
  readonly command: string;
  /** QEMU's error class, e.g. 'GenericError', 'CommandNotFound', 'DeviceNotFound'. */
  readonly errorClass: string;
  /** QEMU's human-readable description. */
  readonly desc: string;
  constructor(command: string, errorClass: string, desc: string) {
    super('E_QMP', `QMP command ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpCommandError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/**
 * Splits a byte stream into lines at "\n" (a trailing "\r" is left for the
 * JSON parser, which treats it as white space). Lines are decoded as UTF-8
 * only once whole, so a multi-byte character split across reads survives.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partLen = 0;

  /** @param maxLineBytes longest accepted line, without its "\n" */
  constructor(readonly maxLineBytes: number) {}

  /**
   * Consumes one read.
   * @param chunk bytes as received
   * @param onLine called for each complete line, in order
   * @returns false when a line exceeded maxLineBytes (input after it is not consumed)
   */
  push(chunk: Buffer, onLine: (line: string) => void): boolean {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      let line = chunk.subarray(start, nl);
      if (this.partLen > 0) {
        this.parts.push(line);
        line = Buffer.concat(this.parts, this.partLen + line.length);
        this.parts = [];
        this.partLen = 0;
      }
      if (line.length > this.maxLineBytes) return false;
      start = nl + 1;
      onLine(line.toString('utf8'));
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partLen += rest.length;
      if (this.partLen > this.maxLineBytes) return false;
      this.parts.push(rest);
    }
    return true;
  }

  /** Bytes of the incomplete line held so far. */
  get buffered(): number {
    return this.partLen;
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Listeners {
  event: [QmpEvent];
  close: [QmpClosed];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const errnoCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A connected, negotiated QMP session. Create it with `QmpClient.connect()`.
 */
export class QmpClient {
  /** The server greeting (QEMU version and offered capabilities). */
  greeting: QmpGreeting | undefined = undefined;
  /** Resolves once, when the connection has ended for any reason; never rejects. */
  readonly closed: Promise<QmpClosed>;
  /** Counters of input that was ignored. */
  readonly stats = { garbageLines: 0, unmatchedResponses: 0 };
  /** Timeout applied to commands that do not set their own. */
  commandTimeoutMs: number;

  private readonly socket: net.Socket;
  private readonly path: string;
  private readonly splitter: LineSplitter;
  private readonly emitter = new EventEmitter();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ending: QmpClosed | undefined = undefined;
  private socketError: Error | undefined = undefined;
  private resolveClosed!: (c: QmpClosed) => void;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined = undefined;
  private readonly greetingPromise: Promise<QmpGreeting>;

  private constructor(socket: net.Socket, path: string, opts: QmpConnectOptions) {
    this.socket = socket;
    this.path = path;
    this.splitter = new LineSplitter(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.emitter.setMaxListeners(0);
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.greetingPromise = new Promise((resolve, reject) => (this.greetingWaiter = { resolve, reject }));
    this.greetingPromise.catch(() => undefined);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => (this.socketError ??= e));
    socket.on('close', () => this.finish());
    if (opts.onEvent) this.on('event', opts.onEvent);
  }

  /**
   * Connects to QEMU's QMP socket, reads the greeting and negotiates
   * capabilities (qmp-spec §2.2, §4). QEMU creates the socket some time after
   * it starts, so a missing socket (ENOENT) or one nobody listens on yet
   * (ECONNREFUSED) is retried until `timeoutMs` has passed.
   * @param path the unix socket QEMU serves QMP on
   * @param opts timeouts, line cap, abort signal
   * @returns a client in command mode
   * @throws VmnetError E_TIMEOUT (socket, greeting or negotiation late), E_QMP (not a QMP server, or connect failed for good), E_CLOSED (aborted, or QEMU hung up)
   */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const socket = await dialUnix(path, deadline, timeoutMs, opts.signal);
    const client = new QmpClient(socket, path, opts);
    const onAbort = () => client.destroy(new VmnetError('E_CLOSED', `QMP connect to ${path} aborted`, { cause: opts.signal?.reason }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const hint = client.stats.garbageLines > 0 ? ` (${client.stats.garbageLines} non-JSON lines received: is this a QMP socket?)` : '';
          reject(new VmnetError('E_TIMEOUT', `no QMP greeting on ${path} within ${timeoutMs} ms${hint}`));
        }, Math.max(0, deadline - Date.now()));
      });
      try {
        client.greeting = await Promise.race([client.greetingPromise, late]);
      } finally {
        clearTimeout(timer);
      }
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      return client;
    } catch (e) {
      client.destroy();
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** True until the connection has ended. */
  get isOpen(): boolean {
    return this.ending === undefined;
  }

  /**
   * Runs a QMP command (qmp-spec §2.3) and waits for its response.
   * @param command e.g. 'query-status'
   * @param args the command's `arguments` object, if any
   * @param opts per-command timeout
   * @returns the response's `return` value (QEMU's schema decides T; often `{}`)
   * @throws QmpCommandError (E_QMP) on an error response, VmnetError E_TIMEOUT, E_CLOSED when the connection is or goes away
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.ending) return Promise.reject(this.closedError(command));
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VmnetError('E_TIMEOUT', `QMP command ${command} got no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.send(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    });
  }

  /**
   * Waits for the next event named `name` (qmp-spec §2.5). Call it before
   * the action that triggers the event: events that came earlier are not kept.
   * @param name e.g. 'SHUTDOWN', 'POWERDOWN', 'STOP'
   * @param timeoutMs how long to wait (default: the client's commandTimeoutMs)
   * @param filter accept only events it returns true for
   * @returns the event with its data and timestamp
   * @throws VmnetError E_TIMEOUT, E_CLOSED when the connection ends first
   */
  waitForEvent<D = Record<string, unknown>>(name: string, timeoutMs = this.commandTimeoutMs, filter?: (e: QmpEvent<D>) => boolean): Promise<QmpEvent<D>> {
    if (this.ending) return Promise.reject(this.closedError(`wait for event ${name}`));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || (filter && !filter(e as QmpEvent<D>))) return;
        done();
        resolve(e as QmpEvent<D>);
      };
      const onClose = () => {
        done();
        reject(this.closedError(`wait for event ${name}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new VmnetError('E_TIMEOUT', `QMP event ${name} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /** Listens for every event, or for the end of the connection. Listener exceptions are rethrown asynchronously, never into the protocol state. */
  on<K extends keyof Listeners>(name: K, listener: (...a: Listeners[K]) => void): this {
    this.emitter.on(name, listener as (...a: unknown[]) => void);
    return this;
  }

  once<K extends keyof Listeners>(name: K, listener: (...a: Listeners[K]) => void): this {
    this.emitter.once(name, listener as (...a: unknown[]) => void);
    return this;
  }

  off<K extends keyof Listeners>(name: K, listener: (...a: Listeners[K]) => void): this {
    this.emitter.off(name, listener as (...a: unknown[]) => void);
    return this;
  }

  /** `query-status`: whether the VM runs and QEMU's run state. */
  async queryStatus(opts?: QmpExecuteOptions): Promise<QmpStatus> {
    const r = await this.execute<{ running: boolean; status: string }>('query-status', undefined, opts);
    return { running: r.running, status: r.status };
  }

  /** `cont`: resumes a VM that was started with -S or stopped. */
  async cont(opts?: QmpExecuteOptions): Promise<void> {
    await this.execute('cont', undefined, opts);
  }

  /** `stop`: pauses the VM. */
  async stop(opts?: QmpExecuteOptions): Promise<void> {
    await this.execute('stop', undefined, opts);
  }

  /**
   * `system_powerdown`: presses the ACPI power button. QEMU emits POWERDOWN;
   * the guest powers off only if its OS acts on the button (acpid, systemd-logind).
   */
  async systemPowerdown(opts?: QmpExecuteOptions): Promise<void> {
    await this.execute('system_powerdown', undefined, opts);
  }

  /** `system_reset`: resets the machine (QEMU emits RESET). */
  async systemReset(opts?: QmpExecuteOptions): Promise<void> {
    await this.execute('system_reset', undefined, opts);
  }

  /**
   * `human-monitor-command`: runs an HMP command line.
   * @param commandLine e.g. 'info network'
   * @returns HMP's output text
   */
  async humanMonitorCommand(commandLine: string, opts?: QmpExecuteOptions): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, opts);
  }

  /**
   * `quit`: makes QEMU exit, then waits for it to close the connection.
   * QEMU may close the socket before its response is written; that counts as
   * success here.
   * @param timeoutMs budget for the response and the close together
   * @throws VmnetError E_TIMEOUT, E_CLOSED if the client was already closed
   */
  async quit(timeoutMs = this.commandTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    try {
      await this.execute('quit', undefined, { timeoutMs });
    } catch (e) {
      if (!(e instanceof VmnetError && e.code === 'E_CLOSED' && this.ending?.byUs === false)) throw e;
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VmnetError('E_TIMEOUT', `QEMU accepted quit but kept the QMP connection open for ${timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the session (QEMU keeps running). Pending commands reject with E_CLOSED. */
  async close(): Promise<void> {
    this.destroy();
    await this.closed;
  }

  private destroy(error?: VmnetError): void {
    this.ending ??= error ? { byUs: false, error } : { byUs: true };
    this.socket.destroy();
  }

  private send(message: Record<string, unknown>): void {
    if (traceChannel.hasSubscribers) traceChannel.publish({ path: this.path, direction: 'send', message });
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  private onData(chunk: Buffer): void {
    if (this.ending) return;
    const ok = this.splitter.push(chunk, (line) => {
      if (!this.ending) this.onLine(line);
    });
    if (!ok) this.destroy(new VmnetError('E_QMP', `QMP message from ${this.path} exceeds ${this.splitter.maxLineBytes} bytes; connection dropped`));
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.stats.garbageLines++;
      return;
    }
    if (!isObject(msg)) {
      this.stats.garbageLines++;
      return;
    }
    if (traceChannel.hasSubscribers) traceChannel.publish({ path: this.path, direction: 'recv', message: msg });
    if (this.greetingWaiter) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = undefined;
      if (isObject(msg.QMP)) {
        waiter.resolve(msg.QMP as unknown as QmpGreeting);
      } else {
        const err = new VmnetError('E_QMP', `${this.path} is not a QMP monitor: expected the {"QMP": …} greeting, got ${line.slice(0, 120)}`);
        waiter.reject(err);
        this.destroy(err);
      }
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = isObject(msg.timestamp) ? msg.timestamp : {};
      const event: QmpEvent = {
        event: msg.event,
        data: isObject(msg.data) ? msg.data : {},
        timestamp: { seconds: Number(ts.seconds ?? 0), microseconds: Number(ts.microseconds ?? 0) },
      };
      this.emit('event', event);
      return;
    }
    if ('return' in msg || 'error' in msg) {
      const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!p) {
        this.stats.unmatchedResponses++;
        return;
      }
      this.pending.delete(msg.id as number);
      clearTimeout(p.timer);
      if ('error' in msg) {
        const err = isObject(msg.error) ? msg.error : {};
        p.reject(new QmpCommandError(p.command, String(err.class ?? 'UnknownError'), String(err.desc ?? JSON.stringify(msg.error))));
      } else {
        p.resolve(msg.return);
      }
      return;
    }
    this.stats.garbageLines++;
  }

  private emit<K extends keyof Listeners>(name: K, ...args: Listeners[K]): void {
    try {
      this.emitter.emit(name, ...args);
    } catch (e) {
      // A listener's bug must not corrupt the session: report it like an uncaught exception.
      process.nextTick(() => {
        throw e;
      });
    }
  }

  private closedError(what: string): VmnetError {
    const c = this.ending;
    const why = !c ? 'the connection closed' : c.byUs ? 'the QMP client was closed' : c.error ? c.error.message : `QEMU closed the QMP connection ${this.path} (has it exited?)`;
    return new VmnetError('E_CLOSED', `QMP ${what} aborted: ${why}`, c?.error ? { cause: c.error } : undefined);
  }

  /** Runs once, on the socket's 'close'. */
  private finish(): void {
    if (!this.ending) {
      // A reset or broken pipe is how a peer that exits often looks: an ordinary hang-up, not a fault.
      const e = this.socketError && !['ECONNRESET', 'EPIPE'].includes(errnoCode(this.socketError) ?? '') ? this.socketError : undefined;
      this.ending = e ? { byUs: false, error: new VmnetError('E_QMP', `QMP connection ${this.path} failed: ${e.message}`, { cause: e }) } : { byUs: false };
    }
    const ending = this.ending;
    if (this.greetingWaiter) {
      this.greetingWaiter.reject(ending.error ?? new VmnetError('E_CLOSED', `QMP connection ${this.path} closed before the greeting`));
      this.greetingWaiter = undefined;
    }
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(this.closedError(`command ${p.command}`));
    }
    this.resolveClosed(ending);
    this.emit('close', ending);
  }
}

/**
 * Opens a unix socket connection, retrying while the socket file is missing
 * or not yet listened on.
 */
async function dialUnix(path: string, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
  let wait = 10;
  let last = 'no attempt';
  for (;;) {
    if (signal?.aborted) throw new VmnetError('E_CLOSED', `QMP connect to ${path} aborted`, { cause: signal.reason });
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new VmnetError('E_TIMEOUT', `QMP socket ${path} not ready within ${timeoutMs} ms (last attempt: ${last})`);
    try {
      return await dialOnce(path, remaining);
    } catch (e) {
      const code = errnoCode(e);
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED' && code !== 'EAGAIN' && code !== 'ETIMEDOUT') {
        throw new VmnetError('E_QMP', `cannot connect to QMP socket ${path}: ${(e as Error).message}`, { cause: e });
      }
      last = code;
    }
    await delay(Math.min(wait, Math.max(0, deadline - Date.now())));
    wait = Math.min(wait * 2, 200);
  }
}

function dialOnce(path: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    });
  });
}
