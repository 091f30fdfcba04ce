/**
 * Theory of operation: a UDP port forward from the host into a guest. One
 * host socket is bound at BIND:HOSTPORT; every host client (address, port)
 * becomes a flow with an endpoint on the guest's side of the gateway: a
 * client on the host's loopback appears as the gateway address (10.0.2.2)
 * with the client's own port, any other client as its real IPv4 address (as
 * passt does: guest logs and firewalls then mean something). The guest's
 * replies, sent to that endpoint, are matched back to the client before UDP
 * NAT sees them. Flows expire after the idle time, like NAT flows.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { parseIp4, type Ip4 } from '../../wire/addr.js';
import type { ForwardSpec } from '../../config/forward.js';
import { bindError } from './bind.js';

export interface UdpForwardDeps {
  /** The guest a forward goes to, or null when none is known yet (datagram dropped). */
  guestIp(spec: ForwardSpec): Ip4 | null;
  /** The gateway's own address, used for loopback clients. */
  gatewayIp: Ip4;
  sendToGuest(srcIp: Ip4, srcPort: number, guestIp: Ip4, guestPort: number, data: Uint8Array): void;
  now(): number;
  idleMs: number;
}

interface Flow {
  clientAddress: string;
  clientPort: number;
  srcIp: Ip4;
  srcPort: number;
  guestIp: Ip4;
  lastUsed: number;
}

const key = (ip: Ip4, port: number) => ip * 65536 + port;

export class UdpForward {
  /** Datagrams each way and drops (no guest yet). */
  readonly counters = { toGuest: 0, toHost: 0, noGuest: 0 };
  private readonly byClient = new Map<string, Flow>();
  /** Guest-side endpoint (srcIp, srcPort) → flow. */
  private readonly byEndpoint = new Map<number, Flow>();

  private constructor(
    readonly spec: ForwardSpec,
    private readonly socket: Socket,
    private readonly deps: UdpForwardDeps,
  ) {
    socket.on('message', (msg, rinfo) => this.fromHost(msg, rinfo.address, rinfo.port));
    socket.on('error', () => undefined); // ICMP errors from clients: nothing to do
  }

  /**
   * Binds the host socket.
   * @throws VmnetError E_PORT_IN_USE, E_PORT_PRIVILEGED, E_USAGE
   */
  static async open(spec: ForwardSpec, deps: UdpForwardDeps): Promise<UdpForward> {
    const socket = createSocket({ type: spec.bindAddress.includes(':') ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (e) => reject(bindError(e as NodeJS.ErrnoException, spec)));
      socket.bind(spec.hostPort, spec.bindAddress, () => resolve());
    });
    return new UdpForward(spec, socket, deps);
  }

  private fromHost(msg: Buffer, address: string, port: number): void {
    const guestIp = this.deps.guestIp(this.spec);
    if (guestIp === null) {
      this.counters.noGuest++;
      return;
    }
    const id = `${address}|${port}`;
    let flow = this.byClient.get(id);
    if (!flow || flow.guestIp !== guestIp) {
      const mapped = address.replace(/^::ffff:/, '');
      const loopback = mapped.startsWith('127.') || mapped === '::1';
      const srcIp = !loopback && isIPv4(mapped) ? (parseIp4(mapped) as Ip4) : this.deps.gatewayIp;
      let srcPort = port;
      while (this.byEndpoint.has(key(srcIp, srcPort))) srcPort = 1024 + ((srcPort + 1 - 1024) % (65536 - 1024));
      flow = { clientAddress: address, clientPort: port, srcIp, srcPort, guestIp, lastUsed: 0 };
      this.byClient.set(id, flow);
      this.byEndpoint.set(key(srcIp, srcPort), flow);
    }
    flow.lastUsed = this.deps.now();
    this.counters.toGuest++;
    this.deps.sendToGuest(flow.srcIp, flow.srcPort, guestIp, this.spec.guestPort, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
  }

  /**
   * Offers a guest datagram; true when it was a reply on one of this forward's flows (and was sent to the client).
   */
  fromGuest(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array): boolean {
    if (guestPort !== this.spec.guestPort) return false;
    const flow = this.byEndpoint.get(key(dstIp, dstPort));
    if (!flow || flow.guestIp !== guestIp) return false;
    flow.lastUsed = this.deps.now();
    this.counters.toHost++;
    this.socket.send(Buffer.from(data), flow.clientPort, flow.clientAddress);
    return true;
  }

  /** Forgets flows idle longer than the idle time. */
  sweep(now: number): void {
    for (const [id, f] of this.byClient) {
      if (now - f.lastUsed < this.deps.idleMs) continue;
      this.byClient.delete(id);
      this.byEndpoint.delete(key(f.srcIp, f.srcPort));
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
