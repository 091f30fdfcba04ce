/**
 * Theory of operation: UDP NAT from guests to the host's sockets, the way
 * libslirp and passt do it without privileges: every guest flow — the
 * 5-tuple (guest address, guest port, destination address, destination
 * port) — gets its own host UDP socket, *connected* to the real destination.
 * Connecting gives three things for free: the kernel filters replies to that
 * one peer (address-and-port-dependent filtering, RFC 4787 §5), an ICMP port
 * unreachable from the destination comes back as ECONNREFUSED (which we turn
 * into an ICMP port unreachable toward the guest, as a real router would),
 * and the source port is the kernel's random ephemeral port.
 *
 * Where a datagram may go is the caller's policy (`route`): the gateway maps
 * its own address to the host's 127.0.0.1 (libslirp's 10.0.2.2 behaviour),
 * refuses everything in isolated mode, and so on. Flows expire after
 * `idleMs` without traffic either way, and at most `maxFlows` exist (the
 * least recently used is closed first). Sans-IO except for the injected
 * `HostUdp`, whose Node implementation lives in node-udp.ts.
 */
import type { Ip4 } from '../../wire/addr.js';

/** One host UDP socket, connected to one peer. */
export interface HostUdpSocket {
  send(data: Uint8Array): void;
  close(): void;
}

/** Opens host UDP sockets (node-udp.ts in production, a fake in tests). */
export interface HostUdp {
  /**
   * @param host destination address (IPv4 text)
   * @param port destination port
   * @param events message: a datagram from the peer; refused: the peer's port is closed; error: anything else (the flow is closed)
   */
  connect(host: string, port: number, events: { message(data: Uint8Array): void; refused(): void; error(err: Error): void }): HostUdpSocket;
}

/** Where a guest datagram goes: a host address to connect to, or why not. */
export type UdpRoute = { host: string; port: number } | { refuse: 'port-unreachable' | 'admin-prohibited' | 'drop' };

/** What the gateway must send back to the guest. */
export interface UdpNatEvents {
  /** A datagram for the guest, to be sent from (srcIp, srcPort) to (guestIp, guestPort). */
  toGuest(guestIp: Ip4, guestPort: number, srcIp: Ip4, srcPort: number, data: Uint8Array): void;
  /** An ICMP error for the guest about its flow (quoting needs the original datagram, kept by the caller). */
  unreachable(flow: UdpFlowKey, kind: 'port-unreachable' | 'admin-prohibited'): void;
}

export interface UdpFlowKey {
  guestIp: Ip4;
  guestPort: number;
  dstIp: Ip4;
  dstPort: number;
}

export interface UdpNatOptions {
  host: HostUdp;
  route(dstIp: Ip4, dstPort: number): UdpRoute;
  events: UdpNatEvents;
  /** Idle time before a flow is closed (default 60 s). */
  idleMs?: number;
  /** Most flows at once (default 4096). */
  maxFlows?: number;
}

export interface UdpNatCounters {
  flowsOpened: number;
  flowsExpired: number;
  flowsEvicted: number;
  toHost: number;
  toGuest: number;
  refused: number;
  prohibited: number;
  errors: number;
}

interface Flow extends UdpFlowKey {
  key: number;
  socket: HostUdpSocket;
  lastUsed: number;
}

/** Flow key: guest endpoint and destination packed into one number-ish string-free key. */
const flowKey = (guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number) =>
  // 96 bits do not fit a double; combine with a cheap mix and verify fields on lookup.
  (((guestIp ^ Math.imul(dstIp, 0x9e3779b1)) >>> 0) * 0x100000 + ((guestPort * 65536 + dstPort) % 0x100000)) % Number.MAX_SAFE_INTEGER;

export class UdpNat {
  readonly counters: UdpNatCounters = { flowsOpened: 0, flowsExpired: 0, flowsEvicted: 0, toHost: 0, toGuest: 0, refused: 0, prohibited: 0, errors: 0 };
  /** Map iteration order is insertion order; a flow is re-inserted on use, so the first entry is the least recently used. */
  private readonly flows = new Map<number, Flow[]>();
  private count = 0;
  private readonly idleMs: number;
  private readonly maxFlows: number;

  constructor(private readonly opts: UdpNatOptions) {
    this.idleMs = opts.idleMs ?? 60_000;
    this.maxFlows = opts.maxFlows ?? 4096;
  }

  /** Open flows. */
  get size(): number {
    return this.count;
  }

  /**
   * Sends a guest datagram on.
   * @returns what happened: 'sent', or the refusal the caller turns into ICMP (or silence)
   */
  fromGuest(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array, now: number): 'sent' | 'port-unreachable' | 'admin-prohibited' | 'drop' {
    const key = flowKey(guestIp, guestPort, dstIp, dstPort);
    let flow = this.find(key, guestIp, guestPort, dstIp, dstPort);
    if (!flow) {
      const r = this.opts.route(dstIp, dstPort);
      if ('refuse' in r) {
        if (r.refuse === 'admin-prohibited') this.counters.prohibited++;
        return r.refuse;
      }
      while (this.count >= this.maxFlows) this.evictOldest();
      flow = this.open(key, { guestIp, guestPort, dstIp, dstPort }, r.host, r.port, now);
    } else {
      this.touch(flow, now);
    }
    this.counters.toHost++;
    flow.socket.send(data);
    return 'sent';
  }

  /** Closes flows idle for longer than the idle timeout. Call periodically. */
  sweep(now: number): void {
    for (const bucket of this.flows.values()) {
      for (const f of bucket) {
        if (now - f.lastUsed < this.idleMs) return; // LRU order: the rest are younger
        this.counters.flowsExpired++;
        this.close(f);
      }
    }
  }

  /** Closes every flow. */
  closeAll(): void {
    for (const bucket of [...this.flows.values()]) for (const f of [...bucket]) this.close(f);
  }

  /** The open flows (for counters and `ls`). */
  list(): UdpFlowKey[] {
    const out: UdpFlowKey[] = [];
    for (const bucket of this.flows.values()) for (const f of bucket) out.push({ guestIp: f.guestIp, guestPort: f.guestPort, dstIp: f.dstIp, dstPort: f.dstPort });
    return out;
  }

  private find(key: number, guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number): Flow | undefined {
    const bucket = this.flows.get(key);
    return bucket?.find((f) => f.guestIp === guestIp && f.guestPort === guestPort && f.dstIp === dstIp && f.dstPort === dstPort);
  }

  private open(key: number, k: UdpFlowKey, host: string, port: number, now: number): Flow {
    const flow: Flow = { ...k, key, lastUsed: now, socket: null as unknown as HostUdpSocket };
    flow.socket = this.opts.host.connect(host, port, {
      message: (data) => {
        if (!this.isOpen(flow)) return;
        this.counters.toGuest++;
        flow.lastUsed = Math.max(flow.lastUsed, now);
        this.opts.events.toGuest(flow.guestIp, flow.guestPort, flow.dstIp, flow.dstPort, data);
      },
      refused: () => {
        if (!this.isOpen(flow)) return;
        this.counters.refused++;
        this.opts.events.unreachable(flow, 'port-unreachable');
      },
      error: () => {
        this.counters.errors++;
        if (this.isOpen(flow)) this.close(flow);
      },
    });
    this.insert(flow);
    this.count++;
    this.counters.flowsOpened++;
    return flow;
  }

  private isOpen(f: Flow): boolean {
    return this.flows.get(f.key)?.includes(f) ?? false;
  }

  private insert(f: Flow): void {
    const bucket = this.flows.get(f.key);
    if (bucket) bucket.push(f);
    else this.flows.set(f.key, [f]);
  }

  private touch(f: Flow, now: number): void {
    f.lastUsed = now;
    // Move to the back (most recently used).
    const bucket = this.flows.get(f.key)!;
    if (bucket.length === 1) {
      this.flows.delete(f.key);
      this.flows.set(f.key, bucket);
    }
  }

  private evictOldest(): void {
    const first = this.flows.values().next();
    if (first.done) return;
    this.counters.flowsEvicted++;
    this.close(first.value[0]!);
  }

  private close(f: Flow): void {
    const bucket = this.flows.get(f.key);
    if (!bucket) return;
    const i = bucket.indexOf(f);
    if (i < 0) return;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.flows.delete(f.key);
    this.count--;
    f.socket.close();
  }
}
