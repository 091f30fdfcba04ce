/**
 * Theory of operation: a UDP port forward from the host into a guest. One
 * host socket is bound at BIND:HOSTPORT; every host client (address, port)
 * becomes a flow with an endpoint on the guest's side of the gateway: a
 * client on the host's loopback appears as the gateway address (10.0.2.2)
 * with the client's own port, any other client as its real IPv4 address (as
 * passt does: guest logs and firewalls then mean something). The guest's
 * replies, sent to that endpoint, are matched back to the client before UDP
 * NAT sees them. Flows expire after the idle time, like NAT flows.
 *
 * Bounds (issue 11, item 9). Anyone who can reach the bound address can
 * create flows, one per source port, so the table holds at most `maxFlows`
 * (default 4096) and evicts the least recently used flow beyond that
 * (counted: `evicted`). Two clients may want the same guest-side endpoint
 * (127.0.0.1:5000 and 127.0.0.2:5000 both appear as 10.0.2.2:5000); the
 * second gets the next free port from where the last such search stopped
 * (a cursor that only moves on), and since at most `maxFlows` endpoints are
 * ever taken, that search ends within `maxFlows + 1` steps (before the cap
 * existed, a client on every port 1024-65535 and one more made it spin
 * forever). Starting from the cursor rather than the client's own port
 * keeps the work amortized constant: clients laid out so that every search
 * from their own port walked past 4,095 taken ones cost 57 µs a datagram
 * (1 µs otherwise), enough for one local sender to stall the gateway. Datagrams toward host
 * clients are dropped (counted: `sendDropped`) while the socket's send queue
 * already holds `MAX_SEND_QUEUE` of them, so a guest cannot grow it. The
 * socket asks for the NAT flows' receive buffer (RECV_BUFFER,
 * ../udp-nat/node-udp.ts), so a client's burst waits in the kernel while the
 * gateway is busy instead of overflowing it.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { parseIp4, type Ip4 } from '../../wire/addr.js';
import type { ForwardSpec } from '../../config/forward.js';
import { RECV_BUFFER } from '../udp-nat/node-udp.js';
import { bindError } from './bind.js';

export interface UdpForwardDeps {
  /** The guest a forward goes to, or null when none is known yet (datagram dropped). */
  guestIp(spec: ForwardSpec): Ip4 | null;
  /** The gateway's own address, used for loopback clients. */
  gatewayIp: Ip4;
  sendToGuest(srcIp: Ip4, srcPort: number, guestIp: Ip4, guestPort: number, data: Uint8Array): void;
  now(): number;
  idleMs: number;
  /** Most flows per forward (default 4096). */
  maxFlows?: number;
}

/** What a forward needs of its host socket (a node:dgram Socket). */
export interface UdpForwardSocket {
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  send(msg: Uint8Array, port: number, address: string): void;
  getSendQueueCount(): number;
  close(): void;
}

interface Flow {
  clientAddress: string;
  clientPort: number;
  srcIp: Ip4;
  srcPort: number;
  guestIp: Ip4;
  lastUsed: number;
}

/** Default for {@link UdpForwardDeps.maxFlows}. */
export const MAX_FLOWS = 4096;
/** Datagrams queued on the host socket beyond which guest replies are dropped. */
export const MAX_SEND_QUEUE = 256;

const key = (ip: Ip4, port: number) => ip * 65536 + port;
const clientId = (address: string, port: number) => `${address}|${port}`;
/** The next port of the search, wrapping within 1024..65535. */
const nextPort = (p: number) => 1024 + ((p + 1 - 1024) % (65536 - 1024));

export class UdpForward {
  /** Datagrams each way, and what was dropped or evicted. */
  readonly counters = { toGuest: 0, toHost: 0, noGuest: 0, evicted: 0, sendDropped: 0 };
  /** Host client → flow, least recently used first (a flow is re-inserted on use). */
  private readonly byClient = new Map<string, Flow>();
  /** Guest-side endpoint (srcIp, srcPort) → flow. */
  private readonly byEndpoint = new Map<number, Flow>();
  private readonly maxFlows: number;
  /** Where the search for a free guest-side port goes on from (see open). */
  private cursor = 1024;

  private constructor(
    readonly spec: ForwardSpec,
    private readonly socket: UdpForwardSocket,
    private readonly deps: UdpForwardDeps,
  ) {
    this.maxFlows = Math.min(65535 - 1024, Math.max(1, deps.maxFlows ?? MAX_FLOWS)); // fewer than the ports: a search always ends
    socket.on('message', (msg, rinfo) => this.fromHost(msg, rinfo.address, rinfo.port));
    socket.on('error', () => undefined); // ICMP errors from clients: nothing to do
  }

  /**
   * Binds the host socket.
   * @throws VmnetError E_PORT_IN_USE, E_PORT_PRIVILEGED, E_USAGE
   */
  static async open(spec: ForwardSpec, deps: UdpForwardDeps): Promise<UdpForward> {
    const socket = createSocket({ type: spec.bindAddress.includes(':') ? 'udp6' : 'udp4', recvBufferSize: RECV_BUFFER });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (e) => reject(bindError(e as NodeJS.ErrnoException, spec)));
      socket.bind(spec.hostPort, spec.bindAddress, () => resolve());
    });
    return new UdpForward(spec, socket, deps);
  }

  /** A forward over a socket that is already bound (tests, inherited sockets). */
  static over(spec: ForwardSpec, socket: UdpForwardSocket, deps: UdpForwardDeps): UdpForward {
    return new UdpForward(spec, socket, deps);
  }

  private fromHost(msg: Buffer, address: string, port: number): void {
    const guestIp = this.deps.guestIp(this.spec);
    if (guestIp === null) {
      this.counters.noGuest++;
      return;
    }
    const id = clientId(address, port);
    let flow = this.byClient.get(id);
    if (flow !== undefined && flow.guestIp !== guestIp) {
      this.remove(flow); // the forward's guest changed: a new endpoint toward the new one
      flow = undefined;
    }
    if (flow === undefined) flow = this.open(address, port, guestIp);
    this.touch(flow);
    this.counters.toGuest++;
    this.deps.sendToGuest(flow.srcIp, flow.srcPort, guestIp, this.spec.guestPort, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
  }

  /** A new flow for a host client, evicting the least recently used one at the cap. */
  private open(address: string, port: number, guestIp: Ip4): Flow {
    while (this.byClient.size >= this.maxFlows) {
      this.counters.evicted++;
      this.remove(this.byClient.values().next().value!);
    }
    const mapped = address.replace(/^::ffff:/, '');
    const loopback = mapped.startsWith('127.') || mapped === '::1';
    const srcIp = !loopback && isIPv4(mapped) ? (parseIp4(mapped) as Ip4) : this.deps.gatewayIp;
    // The client's own port when free; else, from the cursor. At most maxFlows - 1
    // endpoints are taken here, so this ends within maxFlows steps.
    let srcPort = port;
    if (this.byEndpoint.has(key(srcIp, srcPort))) {
      srcPort = this.cursor;
      while (this.byEndpoint.has(key(srcIp, srcPort))) srcPort = nextPort(srcPort);
      this.cursor = nextPort(srcPort);
    }
    const flow: Flow = { clientAddress: address, clientPort: port, srcIp, srcPort, guestIp, lastUsed: 0 };
    this.byClient.set(clientId(address, port), flow);
    this.byEndpoint.set(key(srcIp, srcPort), flow);
    return flow;
  }

  /** Marks a flow used now (it moves to the young end of the table). */
  private touch(f: Flow): void {
    f.lastUsed = this.deps.now();
    const id = clientId(f.clientAddress, f.clientPort);
    this.byClient.delete(id);
    this.byClient.set(id, f);
  }

  private remove(f: Flow): void {
    this.byClient.delete(clientId(f.clientAddress, f.clientPort));
    if (this.byEndpoint.get(key(f.srcIp, f.srcPort)) === f) this.byEndpoint.delete(key(f.srcIp, f.srcPort));
  }

  /**
   * Offers a guest datagram; true when it was a reply on one of this forward's flows (and was sent to the client).
   */
  fromGuest(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array): boolean {
    if (guestPort !== this.spec.guestPort) return false;
    const flow = this.byEndpoint.get(key(dstIp, dstPort));
    if (!flow || flow.guestIp !== guestIp) return false;
    this.touch(flow);
    if (this.socket.getSendQueueCount() >= MAX_SEND_QUEUE) {
      this.counters.sendDropped++;
      return true;
    }
    this.counters.toHost++;
    this.socket.send(Buffer.from(data), flow.clientPort, flow.clientAddress); // a copy: `data` lives in a reused frame buffer
    return true;
  }

  /** Forgets flows idle longer than the idle time. */
  sweep(now: number): void {
    for (const f of this.byClient.values()) {
      if (now - f.lastUsed < this.deps.idleMs) return; // least recently used first: the rest are younger
      this.remove(f);
    }
  }

  /** Open flows. */
  get flows(): number {
    return this.byClient.size;
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }
}
