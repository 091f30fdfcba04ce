/**
 * Theory of operation: the set of port forwards of one gateway, changeable
 * while it runs. Each forward binds its host side first (errors are thrown
 * before anything is recorded, so a taken port leaves the table unchanged);
 * TCP forwards hand every accepted host connection, paused, to the TCP NAT,
 * which opens a connection to the guest (the gateway is the TCP client
 * toward the guest); UDP forwards keep a flow per host client
 * (udp-forward.ts). Removing a forward closes its listener only: connections
 * already open carry on until they end.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { VmnetError } from '../../errors.js';
import { formatForward, type ForwardSpec } from '../../config/forward.js';
import type { Ip4 } from '../../wire/addr.js';
import { bindError } from './bind.js';
import { UdpForward, type UdpForwardDeps } from './udp-forward.js';

export interface PortForwardDeps extends UdpForwardDeps {
  /** A host client connected to a TCP forward; the socket is paused. */
  onTcpConnection(spec: ForwardSpec, socket: Socket): void;
}

interface TcpForward {
  spec: ForwardSpec;
  server: Server;
}

const same = (a: ForwardSpec, b: Pick<ForwardSpec, 'proto' | 'hostPort'> & { bindAddress?: string }) =>
  a.proto === b.proto && a.hostPort === b.hostPort && (b.bindAddress === undefined || a.bindAddress === b.bindAddress);

export class PortForwards {
  private readonly tcp: TcpForward[] = [];
  private readonly udp: UdpForward[] = [];

  constructor(private readonly deps: PortForwardDeps) {}

  /**
   * Adds a forward, binding its host side. A TCP forward with host port 0
   * gets a free port, which the forward returned (and listed) carries.
   * @returns the forward as bound
   * @throws VmnetError E_PORT_IN_USE, E_PORT_PRIVILEGED, E_USAGE (already forwarded, bad address)
   */
  async add(spec: ForwardSpec): Promise<ForwardSpec> {
    if (spec.hostPort !== 0 && this.list().some((f) => same(f, spec))) throw new VmnetError('E_USAGE', `${formatForward(spec)} is already forwarded`);
    if (spec.proto === 'udp') {
      if (spec.hostPort === 0) throw new VmnetError('E_USAGE', 'a UDP forward needs a host port');
      this.udp.push(await UdpForward.open(spec, this.deps));
      return spec;
    }
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.deps.onTcpConnection(spec, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(bindError(e as NodeJS.ErrnoException, spec)));
      server.listen({ port: spec.hostPort, host: spec.bindAddress, exclusive: true }, () => resolve());
    });
    server.on('error', () => undefined);
    const bound = spec.hostPort === 0 ? { ...spec, hostPort: (server.address() as AddressInfo).port } : spec;
    this.tcp.push({ spec: bound, server });
    return bound;
  }

  /**
   * Removes a forward: its listener closes, open connections stay.
   * @returns false when no such forward exists
   */
  async remove(which: Pick<ForwardSpec, 'proto' | 'hostPort'> & { bindAddress?: string }): Promise<boolean> {
    const t = this.tcp.findIndex((f) => same(f.spec, which));
    if (t >= 0) {
      const [f] = this.tcp.splice(t, 1);
      await new Promise<void>((r) => f!.server.close(() => r()));
      return true;
    }
    const u = this.udp.findIndex((f) => same(f.spec, which));
    if (u >= 0) {
      this.udp.splice(u, 1)[0]!.close();
      return true;
    }
    return false;
  }

  /** The forwards in force. */
  list(): ForwardSpec[] {
    return [...this.tcp.map((f) => f.spec), ...this.udp.map((f) => f.spec)];
  }

  /** Offers a guest UDP datagram to the UDP forwards; true when one took it. */
  fromGuestUdp(guestIp: Ip4, guestPort: number, dstIp: Ip4, dstPort: number, data: Uint8Array): boolean {
    for (const f of this.udp) if (f.fromGuest(guestIp, guestPort, dstIp, dstPort, data)) return true;
    return false;
  }

  sweep(now: number): void {
    for (const f of this.udp) f.sweep(now);
  }

  /** Closes every listener (open TCP connections are the TCP NAT's to close). */
  async closeAll(): Promise<void> {
    const all = this.list();
    await Promise.all(all.map((f) => this.remove(f)));
  }
}
