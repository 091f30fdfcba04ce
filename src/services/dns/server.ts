/**
 * Theory of operation: the DNS service the gateway runs at its DNS address
 * (libslirp's 10.0.2.3). The gateway hands over one DNS message at a time
 * (UDP payload, or a TCP message without its 2-byte length prefix) and sends
 * back whatever {@link DnsService.query} returns; this file does no socket
 * I/O of its own.
 *
 * Per query:
 *  1. Fewer than 12 bytes, or QR set (a response: never answer those, it
 *     would let two resolvers ping-pong) → dropped (null).
 *  2. OPCODE other than QUERY → NOTIMP (RFC 1035 §4.1.1).
 *  3. Undecodable (dns-packet throws) → FORMERR. QDCOUNT ≠ 1 → FORMERR
 *     (RFC 9619). More than one OPT record → FORMERR, EDNS version > 0 →
 *     BADVERS (RFC 6891 §6.1.1, §6.1.3). Zone transfers (AXFR, IXFR,
 *     MAILA/MAILB) → NOTIMP: a stub-facing service does not do them.
 *  4. Local names (local.ts: RFC 6761 names, `vmnet.internal`, user
 *     records, VM names) are answered here with AA set and a TTL of 60 s;
 *     they are never forwarded.
 *  5. Everything else goes to the upstream servers through forwarder.ts and
 *     the upstream reply is passed through as bytes (only the ID restored).
 *     Isolated mode (`upstream: null`) answers REFUSED instead: a policy
 *     refusal, final and not a transient failure (SERVFAIL would invite
 *     retries, NXDOMAIN would be a lie that gets cached). No configured
 *     server → SERVFAIL. Queries in flight are bounded (`maxInFlight` in
 *     all, `maxInFlightPerGuest` per guest) and shared fairly between
 *     guests (../fair-slots.ts): a guest at its own cap gets SERVFAIL; when
 *     the table is full, the oldest query of the guest with the most in
 *     flight is cancelled and answered SERVFAIL to make room for a guest
 *     with fewer, and only if no guest has more than the asker, the new
 *     query gets SERVFAIL. So guests flooding queries (to a slow or dead
 *     upstream, or a fast one) cannot deny DNS to a quiet guest.
 *  6. A UDP reply larger than the client's limit (512 bytes, or the EDNS
 *     UDP payload size it advertised, RFC 6891 §6.2.5) is cut to header +
 *     question + OPT with TC set; the client retries over TCP (RFC 7766).
 *
 * Replies to queries carrying OPT carry OPT (RFC 6891 §7), advertising
 * {@link msg.EDNS_UDP_SIZE}. Error replies copy the question bytes verbatim.
 * Counters are plain numbers; each query is also published on the
 * diagnostics channel `vmnet:dns:query` when someone subscribes.
 */

import dc from 'node:diagnostics_channel';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer } from 'dns-packet';
import type { Ip4 } from '../../wire/addr.js';
import { FairSlots } from '../fair-slots.js';
import { Cancel, Forwarder, type DnsLogger, type Transport, type UpstreamSource } from './forwarder.js';
import { LocalZone, type LocalResult, type LocalZoneOptions } from './local.js';
import * as msg from './message.js';
import { NodeTransport } from './node-transport.js';
import { bulkRandom32 } from './random.js';

/** Options of {@link DnsService}: the local zone's (names, records, VM-name hooks, TTL) plus forwarding. */
export interface DnsServiceOptions extends LocalZoneOptions {
  /** Where to forward non-local names; null = isolated (REFUSED). */
  upstream: UpstreamSource | null;
  /** Socket I/O for forwarding (default {@link NodeTransport}). */
  transport?: Transport | undefined;
  /** Monotonic clock in ms (default performance.now). */
  now?: (() => number) | undefined;
  logger?: DnsLogger | null | undefined;
  /** Forwarding budget per query, ms (default 4000). */
  deadlineMs?: number | undefined;
  /** Per-try UDP timeout cap, ms (default 1500). */
  tryTimeoutMs?: number | undefined;
  /** Uniform random u32s for query IDs and socket choice (default {@link bulkRandom32}). */
  random32?: (() => number) | undefined;
  /**
   * Forwarded queries in flight at once (default 1024, like Unbound's
   * num-queries-per-thread and BIND's recursive-clients; a query in flight
   * costs a table entry and a timer, not a socket). When full, a guest with
   * fewer in flight than the busiest takes one of its slots (../fair-slots.ts).
   */
  maxInFlight?: number | undefined;
  /** Forwarded queries in flight per guest (default a quarter of maxInFlight: 256, room for dnsperf's default 100). */
  maxInFlightPerGuest?: number | undefined;
}

/** Running totals of what the service did. */
export interface DnsCounters {
  /** Every call of {@link DnsService.query}. */
  queries: number;
  /** Calls that returned null (runts, responses). */
  dropped: number;
  /** Answered from local data (including NXDOMAIN/NODATA). */
  local: number;
  /** Sent upstream. */
  forwarded: number;
  /** Upstream replies passed on (any RCODE). */
  upstreamAnswered: number;
  /** SERVFAIL made by vmnet: upstream silent, no servers, overload, or evicted. */
  servfail: number;
  /** Of those, refused before forwarding: the guest at its own cap, or the table full and no guest holding more than the asker. */
  overload: number;
  /** Of the overload, the guest at its own cap (maxInFlightPerGuest). */
  overloadGuest: number;
  /** Of the servfail, forwarded queries cancelled to give their slot to a guest with fewer in flight. */
  evicted: number;
  /** REFUSED in isolated mode. */
  refused: number;
  formerr: number;
  notimp: number;
  /** UDP replies cut to fit the client's limit. */
  truncated: number;
  /** UDP tries that timed out or failed. */
  upstreamFailures: number;
  /** TCP fallbacks after a truncated upstream reply. */
  tcpRetries: number;
  /** Datagrams on the upstream sockets that no query in flight took (wrong ID or question: late, duplicate or forged). */
  upstreamStray: number;
}

/** What each query published on `vmnet:dns:query` carries. */
export interface DnsQueryEvent {
  name: string;
  type: string;
  via: 'udp' | 'tcp';
  source: 'local' | 'upstream' | 'vmnet';
  rcode: number;
  ms: number;
}

const queryChannel = dc.channel('vmnet:dns:query');

/** The guest key of queries whose caller names no guest. */
const ANONYMOUS = -1;

/** RCODE numbers of the local verdicts. */
const LOCAL_RCODE = { NOERROR: msg.NOERROR, NXDOMAIN: msg.NXDOMAIN } as const;

/** The gateway's DNS service; see the module comment. */
export class DnsService {
  /** Running totals; read them, do not write them. */
  readonly counters: DnsCounters = {
    queries: 0,
    dropped: 0,
    local: 0,
    forwarded: 0,
    upstreamAnswered: 0,
    servfail: 0,
    overload: 0,
    overloadGuest: 0,
    evicted: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    truncated: 0,
    upstreamFailures: 0,
    tcpRetries: 0,
    upstreamStray: 0,
  };
  /** The local names (exposed for the VM-name hooks and tests). */
  readonly zone: LocalZone;
  private readonly upstream: UpstreamSource | null;
  private readonly forwarder: Forwarder;
  private readonly transport: Transport;
  private readonly now: () => number;
  private readonly logger: DnsLogger | null;
  /** Forwarded queries in flight, by guest; the value ends the query early. */
  private readonly slots: FairSlots<Cancel>;

  /** @param opts addresses, records, upstream and I/O; see {@link DnsServiceOptions} */
  constructor(opts: DnsServiceOptions) {
    this.zone = new LocalZone(opts);
    this.upstream = opts.upstream;
    this.now = opts.now ?? (() => performance.now());
    const total = opts.maxInFlight ?? 1024;
    this.slots = new FairSlots({
      total,
      perGuest: opts.maxInFlightPerGuest ?? Math.max(1, Math.floor(total / 4)),
      onEvict: (cancel) => {
        this.counters.evicted++;
        cancel.cancel();
      },
    });
    this.logger = opts.logger ?? null;
    const random32 = opts.random32 ?? bulkRandom32();
    this.transport = opts.transport ?? new NodeTransport({ random32, now: this.now, onStray: () => void this.counters.upstreamStray++ });
    this.forwarder = new Forwarder({
      transport: this.transport,
      deadlineMs: opts.deadlineMs,
      tryTimeoutMs: opts.tryTimeoutMs,
      now: this.now,
      random16: () => random32() & 0xffff,
      logger: opts.logger,
    });
  }

  /** Closes the upstream sockets; forwarded queries in flight get SERVFAIL. */
  close(): void {
    this.transport.close?.();
  }

  /**
   * Answers one guest DNS message.
   * @param bytes the message (for TCP without the 2-byte length prefix); not modified
   * @param via the guest transport: UDP replies are truncated to the client's limit
   * @param guest the asking guest's key (the gateway's link): guests share
   *   maxInFlight fairly (see the module comment); omitted, the query counts
   *   as one anonymous guest's
   * @returns the reply (for TCP without length prefix), or null to send nothing;
   *   never rejects, settles within the forwarding deadline
   */
  async query(bytes: Uint8Array, via: 'udp' | 'tcp', guest?: number): Promise<Uint8Array | null> {
    this.counters.queries++;
    try {
      return await this.answer(bytes, via, guest);
    } catch (e) {
      // Defensive: a bug here must cost one SERVFAIL, not an unhandled rejection in the gateway.
      this.logger?.warn(`dns: internal error: ${e instanceof Error ? e.message : String(e)}`);
      this.counters.servfail++;
      return bytes.length >= msg.HEADER_LEN ? msg.errorReply(bytes, msg.SERVFAIL, { ra: this.upstream !== null, edns: false }) : null;
    }
  }

  private async answer(bytes: Uint8Array, via: 'udp' | 'tcp', guest: number | undefined): Promise<Uint8Array | null> {
    const c = this.counters;
    if (bytes.length < msg.HEADER_LEN || msg.isResponse(bytes)) {
      c.dropped++;
      return null;
    }
    const start = this.now();
    const ra = this.upstream !== null;
    const fail = (rcode: number, edns: boolean, extendedRcode = 0): Uint8Array => {
      if (rcode === msg.FORMERR) c.formerr++;
      else if (rcode === msg.NOTIMP) c.notimp++;
      return msg.errorReply(bytes, rcode, { ra, edns, extendedRcode });
    };
    if (msg.opcode(bytes) !== 0) return fail(msg.NOTIMP, false);

    let pkt: DecodedPacket;
    try {
      pkt = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch {
      return fail(msg.FORMERR, false);
    }
    const qEnd = msg.questionEnd(bytes);
    const q = pkt.questions?.[0];
    if (msg.qdcount(bytes) !== 1 || q === undefined || qEnd === -1) return fail(msg.FORMERR, false);
    const opts = (pkt.additionals ?? []).filter((a): a is OptAnswer => a.type === 'OPT');
    if (opts.length > 1) return fail(msg.FORMERR, false);
    const opt = opts[0];
    const edns = opt !== undefined;
    if (opt && opt.ednsVersion !== 0) return fail(msg.NOERROR, true, 1); // BADVERS = 16
    const limit = via === 'tcp' ? 65535 : edns ? Math.min(65535, Math.max(msg.CLASSIC_UDP_SIZE, opt.udpPayloadSize)) : msg.CLASSIC_UDP_SIZE;
    const type = q.type as string;
    if (type === 'OPT') return fail(msg.FORMERR, edns);
    if (type === 'AXFR' || type === 'IXFR' || type === 'UNKNOWN_253' || type === 'UNKNOWN_254') return fail(msg.NOTIMP, edns);

    let reply: Uint8Array;
    let source: DnsQueryEvent['source'];
    const local = this.zone.resolve(q.name, type, q.class ?? 'IN');
    if (local) {
      c.local++;
      source = 'local';
      reply = this.localReply(bytes, qEnd, local, ra, edns);
    } else if (this.upstream === null) {
      c.refused++;
      source = 'vmnet';
      reply = msg.errorReply(bytes, msg.REFUSED, { ra, edns });
    } else {
      // Inline rather than in a method of its own: one async layer less per forwarded query.
      const cancel = new Cancel();
      const slot = this.slots.admit(guest ?? ANONYMOUS, cancel);
      if (typeof slot === 'string') {
        c.servfail++;
        c.overload++;
        if (slot === 'guest') c.overloadGuest++;
        source = 'vmnet';
        reply = msg.errorReply(bytes, msg.SERVFAIL, { ra, edns });
      } else {
        c.forwarded++;
        try {
          const r = await this.forwarder.forward(bytes, this.upstream.servers(), edns, cancel);
          c.upstreamFailures += r.failures;
          c.tcpRetries += r.tcpRetries;
          if (r.outcome === 'answered') c.upstreamAnswered++;
          else c.servfail++;
          source = r.outcome === 'answered' ? 'upstream' : 'vmnet';
          reply = r.reply;
        } finally {
          this.slots.release(slot);
        }
      }
    }
    if (reply.length > limit) {
      c.truncated++;
      reply = msg.truncate(reply, limit);
    }
    if (queryChannel.hasSubscribers) {
      const ev: DnsQueryEvent = { name: q.name, type, via, source, rcode: msg.rcode(reply), ms: this.now() - start };
      queryChannel.publish(ev);
    }
    return reply;
  }

  /** Builds a local answer: encoded by dns-packet, with the guest's question bytes spliced in verbatim. */
  private localReply(query: Uint8Array, qEnd: number, local: LocalResult, ra: boolean, edns: boolean): Uint8Array {
    let flags = dnsPacket.AUTHORITATIVE_ANSWER | LOCAL_RCODE[local.rcode];
    if (query[2]! & 0x01) flags |= dnsPacket.RECURSION_DESIRED;
    if (ra) flags |= dnsPacket.RECURSION_AVAILABLE;
    if (query[3]! & 0x10) flags |= dnsPacket.CHECKING_DISABLED;
    const additionals: Answer[] = edns
      ? [{ type: 'OPT', name: '.', udpPayloadSize: msg.EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
      : [];
    const body = dnsPacket.encode({ id: msg.id(query), type: 'response', flags, answers: local.answers, additionals });
    const qLen = qEnd - msg.HEADER_LEN;
    const out = new Uint8Array(body.length + qLen);
    out.set(body.subarray(0, msg.HEADER_LEN), 0);
    out.set(query.subarray(msg.HEADER_LEN, qEnd), msg.HEADER_LEN);
    out.set(body.subarray(msg.HEADER_LEN), qEnd);
    out[5] = 1; // QDCOUNT = 1 (high byte is already 0)
    return out;
  }
}
