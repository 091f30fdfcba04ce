/**
 * Theory of operation: the Node edge of the ping relay. One helper process
 * (native/ping-helper.c) per gateway, started when the first flow opens:
 * the executable is found or built first (helper-build.ts), messages the
 * relay sends meanwhile wait in a queue. The relay's OPEN, SEND and CLOSE
 * go to the helper's stdin; its stdout is split into messages (protocol.ts)
 * and handed to the relay. The process and its pipes are unref'd: the
 * helper never keeps Node alive, and it exits when its stdin closes or its
 * parent dies.
 *
 * The helper is off the TCP/UDP data path: it carries echo requests and
 * replies only, and the gateway's event loop only writes to and reads from
 * its pipes.
 *
 * Bounds: while more than `maxQueuedBytes` (default 1 MiB) wait for the
 * helper's stdin, echo requests are refused (the relay counts them as
 * `sendDropped`); OPEN and CLOSE still go, until four times that waits: a
 * helper that far behind has stopped reading, and is killed and reported
 * like one that died. When the helper cannot be found
 * or built, or cannot start, the relay hears `down` with one line saying
 * why and is asked to wait a minute before the next try; when it exits or
 * breaks the protocol, five seconds.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { buildHelper, type HelperResult } from './helper-build.js';
import { decode, encodeClose, encodeOpen, encodeSend, MessageReader, PROTOCOL_VERSION, type Family } from './protocol.js';
import type { PingBackend, PingBackendEvents, PingBackendFactory } from './relay.js';

type HelperProcess = ChildProcessByStdio<Writable, Readable, Readable>;

export interface HelperBackendOptions {
  /** Finds or builds the executable (default: buildHelper()). */
  locate?: () => Promise<HelperResult>;
  /** Starts it with three pipes (default: spawn); tests start it inside a network namespace. */
  spawn?: (path: string) => HelperProcess;
  /** Bytes waiting for the helper beyond which echo requests are refused (default 1 MiB). */
  maxQueuedBytes?: number;
}

/** Retry delays after the helper could not start, and after it stopped. */
const RETRY_MISSING_MS = 60_000;
const RETRY_EXITED_MS = 5000;

/** A backend factory for PingRelay that runs the real helper. */
export function helperBackend(opts: HelperBackendOptions = {}): PingBackendFactory {
  return (events) => new HelperBackend(events, opts);
}

class HelperBackend implements PingBackend {
  private state: 'idle' | 'starting' | 'running' | 'closed' = 'idle';
  private child: HelperProcess | null = null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Why the running helper was killed, when it was. */
  private stuck: string | null = null;
  private readonly maxQueued: number;

  constructor(
    private readonly events: PingBackendEvents,
    private readonly opts: HelperBackendOptions,
  ) {
    this.maxQueued = opts.maxQueuedBytes ?? 1024 * 1024;
  }

  open(flow: number, family: Family, dst: Uint8Array, ttl: number): void {
    this.write(encodeOpen(flow, family, ttl, dst));
  }

  send(flow: number, ttl: number, message: Uint8Array): boolean {
    if (this.state === 'closed' || this.queued() > this.maxQueued) return false;
    this.write(encodeSend(flow, ttl, message));
    return true;
  }

  close(flow: number): void {
    if (this.state === 'starting' || this.state === 'running') this.write(encodeClose(flow));
  }

  shutdown(): void {
    this.state = 'closed';
    this.stop();
  }

  /** Bytes written and not yet taken by the helper (or waiting for it to start). */
  private queued(): number {
    return this.pendingBytes + (this.child?.stdin.writableLength ?? 0);
  }

  private write(msg: Uint8Array): void {
    if (this.state === 'closed') return;
    if (this.queued() > 4 * this.maxQueued) {
      // Stuck: dropped; a running helper is killed, and its exit reports why.
      if (this.child !== null && this.stuck === null) {
        this.stuck = `the ping helper stopped reading (${this.queued()} bytes waiting)`;
        this.child.kill('SIGKILL');
      }
      return;
    }
    if (this.state === 'idle') this.start();
    if (this.state === 'running') {
      this.child!.stdin.write(msg);
    } else {
      this.pending.push(msg);
      this.pendingBytes += msg.length;
    }
  }

  private start(): void {
    this.state = 'starting';
    void (this.opts.locate ?? buildHelper)().then(
      (r) => this.spawned(r),
      (e: unknown) => this.fail(`the ping helper could not be built: ${e instanceof Error ? e.message : String(e)}`, RETRY_MISSING_MS),
    );
  }

  private spawned(r: HelperResult): void {
    if (this.state !== 'starting') return; // shut down meanwhile
    if ('error' in r) return this.fail(r.error, RETRY_MISSING_MS);
    let child: HelperProcess;
    try {
      child = this.opts.spawn ? this.opts.spawn(r.path) : spawn(r.path, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      return this.fail(`cannot start the ping helper ${r.path}: ${(e as Error).message}`, RETRY_MISSING_MS);
    }
    this.child = child;
    this.stuck = null;
    let stderr = '';
    let greeted = false;
    const reader = new MessageReader((body) => {
      const m = decode(body);
      if (m === null) return this.lost(child, 'the ping helper broke the protocol (a message it should not send)');
      if (m.type === 'hello') {
        greeted = true;
        if (m.version !== PROTOCOL_VERSION) this.lost(child, `the ping helper speaks protocol ${m.version}, not ${PROTOCOL_VERSION}: rebuild it`);
        return;
      }
      if (greeted) this.events.message(m);
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (!reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) this.lost(child, 'the ping helper broke the protocol (a bad length)');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1024) stderr += d;
    });
    child.stdin.on('error', () => undefined); // EPIPE: its exit says more
    child.on('error', (e) => this.lost(child, `cannot start the ping helper ${r.path}: ${e.message}`, RETRY_MISSING_MS));
    child.on('exit', (code, signal) => {
      const why = stderr.trim().split('\n')[0];
      this.lost(child, this.stuck ?? `the ping helper exited (${signal ? `signal ${signal}` : `code ${code}`})${why ? `: ${why}` : ''}`);
    });
    for (const s of [child.stdin, child.stdout, child.stderr] as Array<{ unref?: () => void }>) s.unref?.();
    child.unref();
    this.state = 'running';
    for (const m of this.pending) child.stdin.write(m);
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** The running helper `child` is gone or unusable (ignored when it is no longer the current one). */
  private lost(child: HelperProcess, detail: string, retryMs = RETRY_EXITED_MS): void {
    if (this.child !== child) return;
    this.fail(detail, retryMs);
  }

  private fail(detail: string, retryMs: number): void {
    this.stop();
    if (this.state === 'closed') return;
    this.state = 'idle';
    this.events.down(detail, retryMs);
  }

  private stop(): void {
    this.pending = [];
    this.pendingBytes = 0;
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null && c.signalCode === null) c.kill();
  }
}
