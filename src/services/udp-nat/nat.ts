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
 * `idleMs` without traffic either way. At most `maxFlows` exist, and each
 * guest (the key the caller passes: the gateway's link, never an address a
 * guest can pick) has a share of `maxFlowsPerGuest`: a guest at its share
 * closes its own least recently used flow to open another; when the table is
 * full, the least recently used flow of the guest holding the most goes
 * (../guest-flows.ts). So a guest that opens flows without end only ever
 * evicts its own. Sans-IO
 * except for the injected `HostUdp`, whose Node implementation lives in
 * node-udp.ts.
 */
import type { Ip4 } from '../../wire/addr.js';
import { GuestFlows } from '../guest-flows.js';

/** One host UDP socket, connected to one peer. */
export interface HostUdpSocket {
  /** Sends a copy of `data`. @returns false when it was dropped (the socket's send queue is full) */
  send(data: Uint8Array): boolean;
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
  /** Most flows of one guest (default a quarter of maxFlows). */
  maxFlowsPerGuest?: number;
  /** Monotonic clock (ms): host replies keep a flow alive too. */
  now: () => number;
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
  /** Guest datagrams dropped because the flow's host socket could not queue more. */
  sendDropped: number;
}

interface Flow extends UdpFlowKey {
  socket: HostUdpSocket;
  lastUsed: number;
  open: boolean;
  /** The guest's key (see fromGuest). */
  guest: number;
}

/** 48-bit endpoint key: address and port packed into one exact double. */
const endpoint = (ip: Ip4, port: number) => ip * 65536 + port;

export class UdpNat {
  readonly counters: UdpNatCounters = { flowsOpened: 0, flowsExpired: 0, flowsEvicted: 0, toHost: 0, toGuest: 0, refused: 0, prohibited: 0, errors: 0, sendDropped: 0 };
  /** guest endpoint → destination endpoint → flow. */
  private readonly flows = new Map<number, Map<number, Flow>>();
  /** Each guest's open flows, least recently used first. */
  private readonly byGuest: GuestFlows<Flow>;
  private readonly idleMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: UdpNatOptions) {
    this.idleMs = opts.idleMs ?? 60_000;
    const maxFlows = opts.maxFlows ?? 4096;
    this.byGuest = new GuestFlows(maxFlows, opts.maxFlowsPerGuest ?? Math.max(1, Math.floor(maxFlows / 4)));
    this.now = opts.now;
  }

  /** Open flows. */
  get size(): number {
    return this.byGuest.size;
  }

  /**
   * Sends a guest datagram on.
   * @param guest the guest's key for its share (default: the address)
   * @returns what happened: 'sent', or the refusal the caller turns into ICMP (or silence)
   */
  fromGuest(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array, now: number, guest: number = guestIp): 'sent' | 'port-unreachable' | 'admin-prohibited' | 'drop' {
    const src = endpoint(guestIp, guestPort);
    const dst = endpoint(dstIp, dstPort);
    let flow = this.flows.get(src)?.get(dst);
    if (!flow) {
      const r = this.opts.route(dstIp, dstPort);
      if ('refuse' in r) {
        if (r.refuse === 'admin-prohibited') this.counters.prohibited++;
        return r.refuse;
      }
      const victim = this.byGuest.victim(guest);
      if (victim !== null) {
        this.counters.flowsEvicted++;
        this.close(victim);
      }
      flow = this.openFlow({ guestIp, guestPort, dstIp, dstPort }, r.host, r.port, now, guest);
    } else {
      this.byGuest.touch(flow, now);
    }
    if (flow.socket.send(data)) this.counters.toHost++;
    else this.counters.sendDropped++;
    return 'sent';
  }

  /** Closes flows idle for longer than the idle timeout. Call periodically. */
  sweep(now: number): void {
    for (const f of this.byGuest.idle(now, this.idleMs)) {
      this.counters.flowsExpired++;
      this.close(f);
    }
  }

  /** Closes the flows of one guest (its link went away: nothing it opened outlives it). */
  closeGuest(guest: number): void {
    for (const f of this.byGuest.ofGuest(guest)) this.close(f);
  }

  /** Closes the flows from one guest address (it changed hands: its next holder gets none of their replies). */
  closeAddress(guestIp: Ip4): void {
    for (const f of this.byGuest.all()) if (f.guestIp === guestIp) this.close(f);
  }

  /** Closes every flow. */
  closeAll(): void {
    for (const f of this.byGuest.all()) this.close(f);
  }

  /** The open flows (for counters and `ls`). */
  list(): UdpFlowKey[] {
    return this.byGuest.all().map((f) => ({ guestIp: f.guestIp, guestPort: f.guestPort, dstIp: f.dstIp, dstPort: f.dstPort }));
  }

  private openFlow(k: UdpFlowKey, host: string, port: number, now: number, guest: number): Flow {
    const flow: Flow = { ...k, lastUsed: now, open: true, guest, socket: { send: () => false, close() {} } };
    flow.socket = this.opts.host.connect(host, port, {
      message: (data) => {
        if (!flow.open) return;
        this.counters.toGuest++;
        this.byGuest.touch(flow, this.now());
        this.opts.events.toGuest(flow.guestIp, flow.guestPort, flow.dstIp, flow.dstPort, data);
      },
      refused: () => {
        if (!flow.open) return;
        this.counters.refused++;
        this.opts.events.unreachable(flow, 'port-unreachable');
      },
      error: () => {
        this.counters.errors++;
        this.close(flow);
      },
    });
    const src = endpoint(k.guestIp, k.guestPort);
    let byDst = this.flows.get(src);
    if (!byDst) this.flows.set(src, (byDst = new Map()));
    byDst.set(endpoint(k.dstIp, k.dstPort), flow);
    this.byGuest.add(flow);
    this.counters.flowsOpened++;
    return flow;
  }

  private close(f: Flow): void {
    if (!f.open) return;
    f.open = false;
    this.byGuest.delete(f);
    const src = endpoint(f.guestIp, f.guestPort);
    const byDst = this.flows.get(src);
    byDst?.delete(endpoint(f.dstIp, f.dstPort));
    if (byDst?.size === 0) this.flows.delete(src);
    f.socket.close();
  }
}
