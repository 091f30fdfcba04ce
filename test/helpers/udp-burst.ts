/**
 * A burst of 1,400-byte UDP datagrams into a host socket the code under test
 * reads, sent while the test's process cannot read (connected sends go out
 * synchronously): how many the socket's receive buffer must hold. Node's
 * UDP receive sockets of the gateway ask for RECV_BUFFER bytes; the kernel
 * doubles SO_RCVBUF for its overhead and caps it at net.core.rmem_max, and a
 * 1,400-byte datagram takes about 2.3 KiB of it on loopback (its skb's
 * truesize), so this counts 3,000 bytes a datagram.
 */
import * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Datagrams a socket asking for `recvBuffer` bytes must hold, at most `max`. */
export function burstSize(recvBuffer: number, max = 600): number {
  const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  return Math.min(max, Math.floor((2 * Math.min(recvBuffer, rmemMax)) / 3000));
}

/**
 * Sends `n` datagrams of 1,400 bytes from `from` (connected to `port` on
 * 127.0.0.1 first) back to back, then waits until `count()` stops growing.
 * @returns the final count
 */
export async function burst(from: dgram.Socket, port: number, n: number, count: () => number): Promise<number> {
  await new Promise<void>((r) => from.connect(port, '127.0.0.1', () => r()));
  const data = Buffer.alloc(1400, 7);
  for (let i = 0; i < n; i++) from.send(data);
  let last = -1;
  while (count() !== last) {
    last = count();
    await sleep(100);
  }
  return last;
}
