/**
 * Theory of operation: the real {@link Transport} for the forwarder, on
 * node:dgram and node:net. This is the DNS service's only socket I/O.
 *
 * UDP (RFC 1035 §4.2.1): every exchange opens a fresh socket, lets the OS
 * pick a random ephemeral source port, and `connect()`s it to the server.
 * A connected UDP socket only receives datagrams whose source is exactly the
 * server's address and port (the kernel filters them), and an ICMP port
 * unreachable surfaces as ECONNREFUSED, so a dead loopback resolver fails in
 * microseconds instead of timing out. Datagrams that pass the kernel are
 * offered to `accept`; the first accepted one settles the exchange.
 *
 * TCP (RFC 7766 §8): one connection per exchange, the query sent with a
 * two-byte length prefix, replies reassembled from the byte stream and
 * offered to `accept` until one is accepted.
 *
 * Every exchange settles within its timeout (VmnetError E_TIMEOUT) and
 * releases its socket and timer whatever happens.
 */

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { VmnetError } from '../../errors.js';
import type { ReplyFilter, Transport } from './forwarder.js';

/** Largest DNS message (the TCP length prefix is 16 bits). */
const MAX_MESSAGE = 65535;

/** The node:dgram / node:net {@link Transport}. Holds no state between exchanges. */
export class NodeTransport implements Transport {
  /**
   * Sends `query` over UDP from a fresh connected socket.
   * @returns the first datagram from host:port that `accept` takes
   * @throws VmnetError E_TIMEOUT after `timeoutMs`; socket errors (e.g. ECONNREFUSED) as they come
   */
  udpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const sock = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
      let done = false;
      const finish = (err: Error | null, reply?: Uint8Array) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          sock.close();
        } catch {
          // already closed
        }
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => finish(new VmnetError('E_TIMEOUT', `no DNS reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      sock.on('error', (e) => finish(e));
      sock.on('message', (m) => {
        if (!done && accept(m)) finish(null, new Uint8Array(m.buffer, m.byteOffset, m.byteLength));
      });
      sock.connect(port, host, () => {
        if (done) return;
        sock.send(query, (e) => {
          if (e) finish(e);
        });
      });
    });
  }

  /**
   * Sends `query` over a fresh TCP connection with RFC 7766 §8 framing.
   * @returns the first framed message that `accept` takes
   * @throws VmnetError E_TIMEOUT after `timeoutMs`; socket errors as they come;
   *   an Error when the server closes before an accepted reply
   */
  tcpQuery(host: string, port: number, query: Uint8Array, timeoutMs: number, accept: ReplyFilter): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (query.length > MAX_MESSAGE) {
        reject(new VmnetError('E_USAGE', 'DNS message too long for TCP'));
        return;
      }
      const sock = net.connect({ host, port });
      let done = false;
      let buf: Buffer = Buffer.alloc(0);
      const finish = (err: Error | null, reply?: Uint8Array) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => finish(new VmnetError('E_TIMEOUT', `no DNS reply over TCP from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      sock.on('error', (e) => finish(e));
      sock.on('close', () => finish(new Error(`TCP connection to ${host}:${port} closed before a reply`)));
      sock.on('connect', () => {
        const framed = Buffer.allocUnsafe(2 + query.length);
        framed.writeUInt16BE(query.length, 0);
        framed.set(query, 2);
        // No half-close: some servers drop a connection whose client sent FIN first.
        sock.write(framed);
      });
      sock.on('data', (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const m = new Uint8Array(buf.subarray(2, 2 + len));
          buf = buf.subarray(2 + len);
          if (accept(m)) {
            finish(null, m);
            return;
          }
        }
      });
    });
  }
}
