/**
 * Theory of operation: the control socket of a running VM, `control.sock`
 * in its 0700 directory, served by whichever process runs the VM (the
 * foreground `vmnet run`, the detached supervisor, or a library user's
 * process). `vmnet ls`, `stop`, `forward` and `wait` are its clients.
 *
 * Protocol: JSON lines. A request is `{"id": N, "op": ..., ...}`; the reply
 * is `{"id": N, "ok": true, ...result}` or `{"id": N, "ok": false, "code":
 * "E_...", "message": "...", "usage": bool}` so a VmnetError crosses the
 * socket with its code and exit status intact. Requests on one connection
 * may be answered out of order (a `wait-port` can take a while); the id
 * matches them. Lines longer than 64 KiB close the connection. The socket
 * file is 0600 inside a 0700 directory: only the VM's user reaches it.
 */
import net from 'node:net';
import { unlink } from 'node:fs/promises';
import { listenPrivate } from '../link/unix-listen.js';
import { VmnetError, type VmnetErrorCode } from '../errors.js';
import type { SerialCounters } from './serial.js';
import type { VmSsh } from './vm.js';

/** What `status` reports (also `vmnet ls --json`). */
export interface VmStatus {
  name: string;
  state: 'running' | 'stopping';
  /** The process serving the VM. */
  pid: number;
  qemuPid: number | null;
  accel: string;
  macs: string[];
  /** Guest IPv4 addresses leased by the gateway. */
  addresses: string[];
  /** Forwards as `BIND:HOST:GUEST/proto`. */
  forwards: string[];
  startedAt: number;
  uptimeS: number;
  dir: string;
  image: string | null;
  kernel: string | null;
  /** The serial console's counters (console.sock clients, what was cut or dropped), absent when the VM does not answer. */
  console?: SerialCounters;
  /** Its SSH forward and how vmnet logs in (absent without one). */
  ssh?: VmSsh;
}

export type ControlRequest =
  | { op: 'status' }
  | { op: 'forward-add'; spec: string }
  | { op: 'forward-rm'; spec: string }
  | { op: 'forward-ls' }
  | { op: 'wait-port'; port: number; timeoutMs: number }
  | { op: 'boot-status' }
  | { op: 'stop'; force: boolean; timeoutMs: number };

export type ControlHandler = (req: ControlRequest) => Promise<Record<string, unknown>>;

const MAX_LINE = 64 * 1024;

export interface ControlServer {
  close(): Promise<void>;
}

/**
 * Serves the control protocol on a unix socket.
 * @param path socket path (inside the VM directory)
 * @param handler answers one request; a thrown VmnetError becomes an error reply
 */
export async function serveControl(path: string, handler: ControlHandler): Promise<ControlServer> {
  // Requests in flight per connection: on close, idle connections end at
  // once, busy ones right after their last reply (a `stop` is answered after
  // the VM, and this server, have gone).
  const pending = new Map<net.Socket, number>();
  let closing = false;
  const server = net.createServer((sock) => {
    pending.set(sock, 0);
    sock.on('close', () => pending.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) void answer(sock, line);
      }
    });
  });
  const answer = async (sock: net.Socket, line: string) => {
    pending.set(sock, (pending.get(sock) ?? 0) + 1);
    let id: unknown = null;
    let reply: Record<string, unknown>;
    try {
      const req = JSON.parse(line) as ControlRequest & { id?: unknown };
      id = req.id ?? null;
      if (typeof req !== 'object' || req === null || typeof req.op !== 'string') throw new VmnetError('E_USAGE', 'bad control request');
      reply = { id, ok: true, ...(await handler(req)) };
    } catch (e) {
      const v = e instanceof VmnetError ? e : new VmnetError('E_USAGE', `control request failed: ${(e as Error)?.message ?? String(e)}`);
      reply = { id, ok: false, code: v.code, message: v.message, usage: v.usage };
    }
    const left = (pending.get(sock) ?? 1) - 1;
    pending.set(sock, left);
    if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
    if (closing && left === 0) sock.end();
  };
  await listenPrivate(server, path);
  return {
    async close() {
      if (closing) return;
      closing = true;
      server.close();
      for (const [sock, n] of pending) if (n === 0) sock.end();
      await unlink(path).catch(() => undefined);
    },
  };
}

/**
 * Sends one request to a VM's control socket and waits for the reply.
 * @param path control socket path
 * @param req the request
 * @param timeoutMs budget for connect + reply
 * @returns the reply's fields (without id/ok)
 * @throws VmnetError from the VM (same code), E_NO_VM when nothing listens, E_TIMEOUT
 */
export function controlCall<T = Record<string, unknown>>(path: string, req: ControlRequest, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const sock = net.createConnection(path);
    let buf = '';
    let done = false;
    const finish = (err: Error | null, value?: T) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => finish(new VmnetError('E_TIMEOUT', `the VM's control socket ${path} did not answer ${req.op} within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ id: 1, ...req }) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const r = JSON.parse(buf.slice(0, nl)) as { ok: boolean; code?: VmnetErrorCode; message?: string; usage?: boolean } & Record<string, unknown>;
        if (r.ok) {
          const { id: _id, ok: _ok, ...rest } = r;
          finish(null, rest as T);
        } else {
          finish(new VmnetError(r.code ?? 'E_USAGE', r.message ?? 'control request failed', { usage: r.usage ?? false }));
        }
      } catch (e) {
        finish(new VmnetError('E_USAGE', `bad reply on ${path}: ${(e as Error).message}`));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') finish(new VmnetError('E_NO_VM', `the VM's control socket ${path} is not answering (the VM is starting or gone)`, { cause: e }));
      else finish(new VmnetError('E_NO_VM', `cannot reach ${path}: ${e.message}`, { cause: e }));
    });
    sock.on('close', () => finish(new VmnetError('E_NO_VM', `the VM's control socket ${path} closed without answering ${req.op}`)));
  });
}
