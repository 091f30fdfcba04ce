/**
 * Theory of operation: DNS over TCP at the gateway's DNS address (RFC 1035
 * §4.2.2, RFC 7766). The TCP NAT terminates a guest connection to
 * 10.0.2.3:53 as usual, but its host end is this in-process stream instead
 * of a socket: it cuts 2-byte length-prefixed queries out of the bytes the
 * guest sends, answers each through the DNS service (which forwards upstream
 * as needed), and writes length-prefixed replies back, in the order the
 * queries came (RFC 7766 §6.2.1.1 allows out-of-order replies; in order is
 * simpler and always correct).
 *
 * Bounded both ways, like a socket (issue 11, item 8):
 * - Guest → service. The bytes `write` is given stay the caller's until their
 *   `done` runs (the HostStream contract): they are views of the connection's
 *   receive buffer, read in place. A chunk's `done` runs only once every
 *   query in it has been handed to the service, and at most MAX_IN_FLIGHT
 *   queries are handed over and not yet answered; beyond that, parsing stops
 *   and `write` returns false until the answers go out ('drain'). Unparsed
 *   bytes therefore stay in the receive buffer and keep the guest's window
 *   closed: a guest that pipelines faster than it reads answers is slowed by
 *   TCP itself. Only a query that straddles two chunks is copied, into a
 *   buffer that grows with the bytes that came (at most one message, 65,535
 *   bytes) and is let go once the query is whole.
 * - Service → guest. `pause()` holds replies (at most MAX_IN_FLIGHT, one per
 *   query) instead of delivering them; `resume()` delivers them in order. A
 *   reply counts as in flight until delivered, so a guest that does not read
 *   its answers also stops the parsing above.
 * Replies held for the guest (answered, not yet delivered) are charged to the
 * connection's TCP budget account, like the send buffer they are waiting
 * for: an answer that does not fit the guest's share is replaced by SERVFAIL
 * (the stub retries) and counted in the budget's `limited`. Otherwise 32
 * held answers of up to 64 KiB on each of a guest's 4096 connections would
 * be gigabytes outside every bound.
 * The guest's FIN (`end`) is answered with ours once every query before it
 * was answered and delivered.
 */
import type { BudgetAccount } from '../../tcp/budget.js';
import { errorReply, SERVFAIL } from '../dns/message.js';
import type { DnsService } from '../dns/server.js';
import type { HostStream, HostStreamEvents } from './host-stream.js';

/** Largest DNS message over TCP (the length prefix is 16 bits). */
const MAX_MESSAGE = 65535;
/** Queries handed to the service and not yet answered and delivered, per connection. */
export const MAX_IN_FLIGHT = 32;

interface Chunk {
  bytes: Uint8Array;
  /** Parse position within `bytes`. */
  pos: number;
  done: () => void;
}

/**
 * The in-process stream behind a guest's TCP connection to the DNS address.
 * @param dns the service answering each query
 * @param ev the TCP NAT's events for this flow
 * @param guest the asking guest's key (its share of the service's forwarding slots is bounded)
 * @param account the connection's TCP budget account, charged for held replies (null: none)
 */
export function dnsStream(dns: Pick<DnsService, 'query'>, ev: HostStreamEvents, guest?: number, account: BudgetAccount | null = null): HostStream {
  const chunks: Chunk[] = [];
  /**
   * A query that straddles chunks, being assembled with its length prefix:
   * grown with the bytes that came (a byte on each of many connections must
   * not cost a whole message buffer each), let go once the query is whole.
   */
  let partial = new Uint8Array(0);
  let partialLen = 0;
  /** Replies in query order, from the first not yet delivered: undefined = not answered yet, null = nothing to send. */
  const replies: Array<Uint8Array | null | undefined> = [];
  /** Replies delivered (or skipped) so far: replies[i] belongs to query number delivered + i. */
  let delivered = 0;
  let closed = false;
  let paused = false;
  let guestEnded = false;
  let finSent = false;
  let wantDrain = false;
  /** Bytes of held replies charged to `account`. */
  let charged = 0;

  const room = (): boolean => replies.length < MAX_IN_FLIGHT;

  /** An answer held for the guest, charged to its budget; SERVFAIL when its share cannot hold it. */
  const hold = (query: Uint8Array, answer: Uint8Array | null): Uint8Array | null => {
    if (answer === null || answer.length > MAX_MESSAGE) return null;
    if (account === null) return answer;
    if (answer.length > account.available()) {
      account.budget.counters.limited++;
      answer = errorReply(query, SERVFAIL, { ra: true, edns: false });
    }
    account.charge(answer.length);
    charged += answer.length;
    return answer;
  };

  /** Gives back what held replies were charged (the connection is done). */
  const uncharge = (): void => {
    if (account !== null && charged > 0) account.credit(charged);
    charged = 0;
  };

  /** Hands one whole query (without its prefix) to the service; its reply slot keeps the order. */
  const dispatch = (query: Uint8Array): void => {
    const index = delivered + replies.length;
    replies.push(undefined);
    const settle = (answer: Uint8Array | null): void => {
      if (closed) return;
      replies[index - delivered] = hold(query, answer);
      flush();
    };
    dns.query(query, 'tcp', guest).then(settle, () => settle(null));
  };

  /** Cuts queries out of the queued chunks while fewer than MAX_IN_FLIGHT are out. */
  const parse = (): void => {
    while (chunks.length > 0 && room()) {
      const c = chunks[0]!;
      const b = c.bytes;
      const avail = b.length - c.pos;
      if (partialLen === 0 && avail >= 2 && avail >= 2 + ((b[c.pos]! << 8) | b[c.pos + 1]!)) {
        const end = c.pos + 2 + ((b[c.pos]! << 8) | b[c.pos + 1]!);
        dispatch(b.slice(c.pos + 2, end)); // the service may keep it: copied out of the lent chunk
        c.pos = end;
      } else {
        // A query that does not fit in what is here: assemble it (prefix first, then body).
        const need = partialLen < 2 ? 2 : 2 + ((partial[0]! << 8) | partial[1]!);
        const n = Math.min(need - partialLen, avail);
        if (partialLen + n > partial.length) {
          const grown = new Uint8Array(Math.min(need, Math.max(partialLen + n, 2 * partial.length, 64)));
          grown.set(partial.subarray(0, partialLen));
          partial = grown;
        }
        partial.set(b.subarray(c.pos, c.pos + n), partialLen);
        partialLen += n;
        c.pos += n;
        if (partialLen >= 2 && partialLen === 2 + ((partial[0]! << 8) | partial[1]!)) {
          dispatch(partial.subarray(2, partialLen)); // the service may keep it: `partial` is let go
          partial = new Uint8Array(0);
          partialLen = 0;
        }
      }
      if (c.pos >= b.length) {
        chunks.shift();
        queueMicrotask(c.done); // never inside write(): the NAT consumes the bytes afterwards
      }
    }
  };

  /** Delivers answered replies at the head, in order, unless paused; then parses more, and ends when due. */
  const flush = (): void => {
    if (closed) return;
    while (!paused && replies.length > 0 && replies[0] !== undefined) {
      const answer = replies.shift()!;
      delivered++;
      if (answer === null) continue;
      const framed = new Uint8Array(2 + answer.length);
      framed[0] = answer.length >>> 8;
      framed[1] = answer.length & 255;
      framed.set(answer, 2);
      if (account !== null) {
        account.credit(answer.length); // the send buffer charges for it now
        charged -= answer.length;
      }
      ev.data(framed);
      if (closed) return; // the NAT may reset the flow from inside data()
    }
    parse();
    if (wantDrain && chunks.length === 0 && room()) {
      wantDrain = false;
      ev.drain();
    }
    if (guestEnded && !finSent && !paused && chunks.length === 0 && replies.length === 0) {
      finSent = true;
      ev.end();
    }
  };

  queueMicrotask(() => {
    if (!closed) ev.connected();
  });
  return {
    write(chunk, done) {
      if (closed || chunk.length === 0) {
        queueMicrotask(done);
        return !closed;
      }
      chunks.push({ bytes: chunk, pos: 0, done });
      parse();
      if (chunks.length === 0 && room()) return true;
      wantDrain = true;
      return false;
    },
    end(finished) {
      // The guest is done sending (the NAT ends only once every written byte was
      // consumed): answer what it asked, then close our side.
      guestEnded = true;
      if (finished) queueMicrotask(finished);
      flush();
    },
    reset() {
      closed = true;
      uncharge();
    },
    destroy() {
      closed = true;
      uncharge();
    },
    pause() {
      paused = true;
    },
    resume() {
      if (!paused) return;
      paused = false;
      flush();
    },
  };
}
