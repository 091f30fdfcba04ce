/**
 * The Node edge of the UDP NAT: one node:dgram socket per flow, connected to
 * its peer so the kernel filters replies and reports ICMP port unreachable
 * as ECONNREFUSED. Datagrams queued before the connect completes are sent
 * once it does.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { HostUdp, HostUdpSocket } from './nat.js';

export class NodeHostUdp implements HostUdp {
  connect(host: string, port: number, events: { message(data: Uint8Array): void; refused(): void; error(err: Error): void }): HostUdpSocket {
    const sock: Socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
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
        if (closed) return;
        // The caller's bytes may live in a reused frame buffer: send a copy.
        if (connected) sock.send(Buffer.from(data));
        else if (queue.length < 64) queue.push(Buffer.from(data));
      },
      close() {
        if (closed) return;
        closed = true;
        try {
          sock.close();
        } catch {
          /* already closed after an error */
        }
      },
    };
  }
}
