/**
 * Theory of operation: DNS over TCP at the gateway's DNS address (RFC 1035
 * §4.2.2, RFC 7766). The TCP NAT terminates a guest connection to
 * 10.0.2.3:53 as usual, but its host end is this in-process stream instead
 * of a socket: it reassembles 2-byte length-prefixed queries from the bytes
 * the guest sends, answers each through the DNS service (which forwards
 * upstream as needed), and writes length-prefixed replies back, in order.
 * Pipelined queries are answered in the order they came (RFC 7766 §6.2.1.1
 * allows out-of-order replies; in-order is simpler and always correct).
 */
import type { DnsService } from '../dns/server.js';
import type { HostStream, HostStreamEvents } from './host-stream.js';

/** Largest DNS message over TCP (the length prefix is 16 bits). */
const MAX_MESSAGE = 65535;

export function dnsStream(dns: DnsService, ev: HostStreamEvents): HostStream {
  let pending = new Uint8Array(0);
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  let ended = false;
  let inFlight = 0;
  let endSent = false;
  const reply = (answer: Uint8Array | null) => {
    if (closed || !answer || answer.length > MAX_MESSAGE) return;
    const framed = new Uint8Array(2 + answer.length);
    framed[0] = answer.length >>> 8;
    framed[1] = answer.length & 255;
    framed.set(answer, 2);
    ev.data(framed);
  };
  const maybeEnd = () => {
    if (ended && inFlight === 0 && !closed && !endSent) {
      endSent = true;
      ev.end();
    }
  };
  queueMicrotask(() => ev.connected());
  return {
    write(chunk, done) {
      queueMicrotask(done); // `chunk` is copied below, before this returns
      if (closed) return false;
      const all = new Uint8Array(pending.length + chunk.length);
      all.set(pending);
      all.set(chunk, pending.length);
      let o = 0;
      while (all.length - o >= 2) {
        const n = (all[o]! << 8) | all[o + 1]!;
        if (all.length - o - 2 < n) break;
        const query = all.slice(o + 2, o + 2 + n);
        o += 2 + n;
        inFlight++;
        const answer = dns.query(query, 'tcp').catch(() => null);
        chain = chain.then(async () => {
          reply(await answer);
          inFlight--;
          maybeEnd();
        });
      }
      pending = all.slice(o);
      return true;
    },
    end() {
      // The guest is done sending: finish answering, then close our side.
      ended = true;
      void chain.then(maybeEnd);
    },
    reset() {
      closed = true;
    },
    destroy() {
      closed = true;
    },
    pause() {},
    resume() {},
  };
}
