/**
 * The Node edge of the UDP NAT: one node:dgram socket per flow, connected to
 * its peer so the kernel filters replies and reports ICMP port unreachable
 * as ECONNREFUSED. Datagrams queued before the connect completes (at most
 * 64) are sent once it does. After that, a datagram finds the socket's send
 * queue (libuv's, which grows when the kernel says EAGAIN) holding
 * MAX_SEND_QUEUE datagrams already is dropped: UDP may lose it, and a guest
 * must not be able to grow that queue without bound.
 *
 * Receive buffer. A socket asks for RECV_BUFFER (1 MiB; the kernel
 * doubles it for its bookkeeping and caps it at net.core.rmem_max). With
 * the kernel's default (rmem_default, 208 KiB on Debian) a flow held some
 * 90 datagrams of 1,400 bytes, a millisecond at 1 Gbit/s: less than one
 * busy turn of the gateway's event loop, and the bench's host→guest UDP row
 * lost 5-9% at 500 Mbit/s offered in this socket (the host namespace's
 * RcvbufErrors). The large buffers have a budget (`recvBudget`, default
 * RECV_BUDGET: 64 sockets at once): a flow opened while it is spent keeps
 * the kernel's default (counted: `defaultBuffers`), so 4,096 flows cannot
 * hold 8 GiB of kernel memory between them. The kernel counts what still
 * overflows (RcvbufErrors; per socket, the drops column of /proc/net/udp).
 */
import { createSocket, type Socket } from 'node:dgram';
import type { HostUdp, HostUdpSocket } from './nat.js';

/** Datagrams waiting in one flow's send queue beyond which new ones are dropped. */
export const MAX_SEND_QUEUE = 256;
/** Datagrams held per flow while its connect() is under way. */
const MAX_EARLY = 64;
/** A host UDP socket's receive buffer in bytes (SO_RCVBUF; the kernel doubles it and caps it at net.core.rmem_max). */
export const RECV_BUFFER = 1024 * 1024;
/** Default budget of RECV_BUFFER-sized receive buffers: bytes asked for by all open flow sockets together. */
export const RECV_BUDGET = 64 * RECV_BUFFER;

export class NodeHostUdp implements HostUdp {
  /** Flow sockets opened with the kernel's default receive buffer because the budget was spent. */
  readonly counters = { defaultBuffers: 0 };
  /** RECV_BUFFER bytes still to give. */
  #budget: number;

  /** @param o.recvBudget bytes of receive buffer the open flow sockets may ask for together (default RECV_BUDGET) */
  constructor(o: { recvBudget?: number } = {}) {
    this.#budget = o.recvBudget ?? RECV_BUDGET;
  }

  connect(host: string, port: number, events: { message(data: Uint8Array): void; refused(): void; error(err: Error): void }): HostUdpSocket {
    const large = this.#budget >= RECV_BUFFER;
    if (large) this.#budget -= RECV_BUFFER;
    else this.counters.defaultBuffers++;
    const sock: Socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ...(large ? { recvBufferSize: RECV_BUFFER } : {}) });
    let connected = false;
    let closed = false;
    const queue: Uint8Array[] = [];
    sock.on('message', (msg) => events.message(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') events.refused();
      else events.error(err);
    });
    try {
      sock.connect(port, host, (err?: Error) => {
        if (closed) return;
        if (err) {
          // No route (ENETUNREACH) and friends: the flow is dead; the guest hears nothing.
          if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') events.refused();
          else events.error(err);
          return;
        }
        connected = true;
        for (const d of queue.splice(0)) sock.send(d);
      });
    } catch (e) {
      // Synchronous refusals (bad port): report on a later tick, like every other error.
      queueMicrotask(() => events.error(e as Error));
    }
    return {
      send(data) {
        if (closed) return false;
        // The caller's bytes may live in a reused frame buffer: send a copy.
        if (!connected) {
          if (queue.length >= MAX_EARLY) return false;
          queue.push(Buffer.from(data));
          return true;
        }
        if (sock.getSendQueueCount() >= MAX_SEND_QUEUE) return false;
        sock.send(Buffer.from(data));
        return true;
      },
      close: () => {
        if (closed) return;
        closed = true;
        if (large) this.#budget += RECV_BUFFER;
        try {
          sock.close();
        } catch {
          /* already closed after an error */
        }
      },
    };
  }
}
