/**
 * Theory of operation: a segment is one switch plus, optionally, the gateway
 * sitting on it as one more port, so that the gateway serves the whole L2
 * segment rather than one guest connection.
 *
 *   guest A ─┐                        ┌─ gateway (internal port, access VLAN 1
 *   guest B ─┼─ role sockets ─ switch ┤    by default): DHCP, DNS, NAT, ICMP
 *   guest C ─┘  (server.ts)   engine  └─ (pcap tap: every frame, once, tagged)
 *
 * The gateway is built by startGateway() with no listener and attached
 * through a small in-process link that looks like a StreamPort to it
 * (sendFrame + onFrame + a 'close' event: all that startGateway's attach()
 * touches). Frames the gateway sends go into the switch through
 * {@link InternalPort.sendFrame}; frames the switch sends to the gateway
 * arrive on the link's `onFrame`. The gateway keeps one Session for the
 * whole segment and tells guests apart by their addresses (its neighbour
 * table maps IP → MAC), so DHCP hands out one lease per MAC and NAT, DNS and
 * ICMP serve every guest on the gateway's VLAN. The gateway answers from
 * inside sendFrame (ARP, ICMP echo, TCP data in answer to an ACK); the
 * switch queues such reentrant frames (switch.ts, "Reentrancy").
 *
 * Backpressure. The link behaves as a StreamPort does on `--net user`: its
 * `sendFrame` returns false when the switch says "hold back" (the guest's
 * port is congested, or the reentrant queue is filling), and it emits
 * 'drain' when the switch calls `drained()`; startGateway's attach() turns
 * that into `linkDrained`, and the TCP NAT holds data back meanwhile instead
 * of losing it in the switch.
 *
 * Its TCP segments are built in place (reserveFrame/commitFrame) in the
 * switch's reentrant arena, and guests' frames reach it in their ports' read
 * buffers; both come from the checksum kernel's memory: no copy on the way
 * into the switch, checksums summed and verified in place.
 *
 * The gateway's MAC is a static entry on its port (fdb.ts): a guest that
 * sends with that MAC as its source is dropped, and cannot pull the
 * gateway's traffic to itself.
 *
 * Names. The gateway's DNS answers `NAME` and `NAME.vmnet.internal` for
 *  1. vmnet names registered with {@link RunningSegment.setName} (the
 *     launcher knows the VM's name and its MAC): the address is the MAC's
 *     DHCP lease, else the address the gateway last saw that MAC use (a
 *     static guest);
 *  2. host names guests sent in DHCP (option 12), through the DHCP server's
 *     own lookup.
 * vmnet names win over DHCP host names. A DHCP lease stays with its MAC for
 * the life of the process (the DHCP server remembers bindings by MAC), so a
 * VM stopped and started again gets its address back.
 *
 * Without a gateway the segment is a pure private LAN: frames only go
 * between guests; nothing answers ARP, DHCP or DNS, and nothing leaves.
 */
import { EventEmitter } from 'node:events';
import { startGateway, type GatewayServerOptions, type RunningGateway } from '../gateway/server.js';
import type { GatewaySnapshot } from '../gateway/gateway.js';
import { LeaseState } from '../services/dhcp-server.js';
import { formatIp4, formatMac, parseMac, type Ip4 } from '../wire/addr.js';
import { releaseSimdBuffer, simdBuffer } from '../wire/checksum.js';
import type { StreamPort } from '../link/stream-port.js';
import { VmnetError } from '../errors.js';
import { startSwitch, type InternalPort, type RunningSwitch, type SwitchServerOptions, type SwitchSnapshot } from './server.js';
import type { PortRole } from './vlan.js';

/** Gateway options on a segment: the gateway's network, minus what the switch owns. */
export type SegmentGatewayOptions = Omit<GatewayServerOptions, 'socket' | 'tcpPort' | 'tcpHost' | 'pcap' | 'mtu'> & {
  /** The gateway's port role (default access VLAN 1, the untagged network). */
  role?: PortRole;
};

/** Options of {@link startSegment}. */
export interface SegmentOptions extends SwitchServerOptions {
  /** Put a gateway on the switch (false or omitted: a pure private LAN). */
  gateway?: SegmentGatewayOptions | false;
}

/** One name the segment's DNS answers, in {@link SegmentSnapshot}. */
export interface SegmentName {
  name: string;
  mac: string;
  ip: string | null;
  source: 'vmnet' | 'dhcp';
}

/** JSON-ready state of a segment. */
export interface SegmentSnapshot {
  switch: SwitchSnapshot;
  gateway: (GatewaySnapshot & { subnet: string; gatewayIp: string; dnsIp: string; isolated: boolean; mac: string }) | null;
  names: SegmentName[];
}

/** A running segment from {@link startSegment}. */
export interface RunningSegment {
  readonly switch: RunningSwitch;
  /** The gateway, or null on a private LAN. */
  readonly gateway: RunningGateway | null;
  /** The gateway's switch port, or null. */
  readonly gatewayPort: InternalPort | null;
  /** The default (access VLAN 1) socket. */
  readonly socket: string;
  /** Opens (or finds) the socket of a role; see RunningSwitch.socketFor. */
  socketFor(role: PortRole): Promise<string>;
  /**
   * Registers a vmnet VM name for a MAC address, answered by the gateway's DNS.
   * @throws VmnetError E_USAGE for a bad MAC or name
   */
  setName(mac: string, name: string): void;
  /** Forgets the vmnet name of a MAC. */
  removeName(mac: string): void;
  /** The address `name` resolves to at the gateway's DNS, or null. */
  lookupName(name: string): Ip4 | null;
  snapshot(): SegmentSnapshot;
  /** QEMU arguments for a NIC on a role socket path. */
  qemuNetdevArgs(path: string, id?: string): string[];
  close(): Promise<void>;
}

/** A DNS label: what a vmnet name must be to be answered. */
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * The gateway's side of its switch port: looks like a StreamPort to
 * startGateway's attach() (sendFrame, onFrame, 'close').
 */
class GatewayLink extends EventEmitter {
  onFrame: (buf: Uint8Array, view: DataView, off: number, len: number) => void = () => {};
  out: InternalPort | null = null;
  /** Gateway → switch; false: hold back until 'drain'. */
  sendFrame(buf: Uint8Array, off: number, len: number): boolean {
    return this.out?.sendFrame(buf, off, len) ?? false;
  }
  /** TCP segments are built in place, in the switch's (checksum-kernel) arena: StreamPort's contract. */
  reserveFrame(maxLen: number): boolean {
    return this.out?.reserveFrame(maxLen) ?? false;
  }
  frameBuffer(): Uint8Array {
    return this.out!.frameBuffer();
  }
  frameView(): DataView {
    return this.out!.frameView();
  }
  frameOffset(): number {
    return this.out!.frameOffset();
  }
  commitFrame(len: number): boolean {
    return this.out!.commitFrame(len);
  }
  /** Switch → gateway (the FramePort the switch sees). */
  readonly peer = {
    sendFrame: (buf: Uint8Array, off: number, len: number, view: DataView): void => this.onFrame(buf, view, off, len),
    drained: (): void => {
      this.emit('drain');
    },
  };
  close(): void {
    this.emit('close', 'local', undefined);
  }
}

/**
 * Starts a switch and, when asked, a gateway on it.
 * @throws VmnetError E_USAGE for bad options, E_NO_FILE / E_PORT_IN_USE from
 *   the switch server
 */
export async function startSegment(opts: SegmentOptions): Promise<RunningSegment> {
  const { gateway: gwOpts = false, ...swOpts } = opts;
  // With a gateway, guests' frames arrive in, and its TCP segments are built in, the switch's
  // buffers: take them from the checksum kernel's memory, so checksums are summed in place (as
  // on the gateway's own socket, gateway/server.ts).
  const sw = await startSwitch(gwOpts === false ? swOpts : { ...swOpts, pool: { take: simdBuffer, give: releaseSimdBuffer } });
  let gw: RunningGateway | null = null;
  let gwPort: InternalPort | null = null;
  let link: GatewayLink | null = null;
  /** vmnet names: lower-case name → MAC text, and back. */
  const macByName = new Map<string, string>();
  const nameByMac = new Map<string, string>();

  const macAddress = (mac: string): Ip4 | null => {
    if (gw === null) return null;
    const lease = gw.gateway.dhcp.leaseFor(mac);
    if (lease !== null && lease.state === LeaseState.BOUND) return lease.ip;
    // A static guest: the address the gateway saw this MAC use last.
    let ip: Ip4 | null = null;
    for (const n of gw.gateway.snapshot().neighbors) if (n.mac === mac) ip = ipNumber(n.ip);
    return ip;
  };
  const bareName = (name: string): string => {
    let n = name.toLowerCase().replace(/\.$/, '');
    const domain = `.${gw?.config.domain.toLowerCase() ?? 'vmnet.internal'}`;
    if (n.endsWith(domain)) n = n.slice(0, -domain.length);
    return n;
  };
  /** What the gateway's DNS answers for a single label (after the hook below is installed). */
  const lookupName = (name: string): Ip4 | null => (gw === null ? null : gw.gateway.dhcp.hostnameLookup(name));

  if (gwOpts !== false) {
    const { role, ...rest } = gwOpts;
    try {
      // Forwards naming a guest resolve like the DNS does: vmnet names, then DHCP host names.
      gw = await startGateway({ ...rest, mtu: sw.switch.mtu, resolveGuest: (guest) => lookupName(bareName(guest)) });
      link = new GatewayLink();
      gw.attach(link as unknown as StreamPort);
      gwPort = sw.addInternalPort(link.peer, { name: 'gateway', role: role ?? { vlan: 1 }, staticMacs: [gw.config.gatewayMac] });
      link.out = gwPort;
      // startGateway's DNS hook asks the DHCP server for names; put vmnet names in front of it.
      const dhcp = gw.gateway.dhcp;
      const dhcpLookup = dhcp.hostnameLookup.bind(dhcp);
      dhcp.hostnameLookup = (name: string): Ip4 | null => {
        const mac = macByName.get(bareName(name));
        const ip = mac === undefined ? null : macAddress(mac);
        return ip ?? dhcpLookup(name);
      };
    } catch (e) {
      await gw?.close();
      await sw.close();
      throw e;
    }
  }

  let closing: Promise<void> | null = null;
  return {
    switch: sw,
    gateway: gw,
    gatewayPort: gwPort,
    socket: sw.socket,
    socketFor: (role) => sw.socketFor(role),
    setName(mac, name) {
      const m = parseMac(mac);
      if (m === null) throw new VmnetError('E_USAGE', `bad MAC address ${mac}`);
      if (!LABEL_RE.test(name)) throw new VmnetError('E_USAGE', `bad VM name ${JSON.stringify(name)} for DNS: use letters, digits and inner dashes`);
      const key = formatMac(m);
      const n = name.toLowerCase();
      const oldMac = macByName.get(n);
      if (oldMac !== undefined) nameByMac.delete(oldMac);
      const oldName = nameByMac.get(key);
      if (oldName !== undefined) macByName.delete(oldName);
      macByName.set(n, key);
      nameByMac.set(key, n);
    },
    removeName(mac) {
      const m = parseMac(mac);
      if (m === null) return;
      const key = formatMac(m);
      const n = nameByMac.get(key);
      if (n !== undefined) macByName.delete(n);
      nameByMac.delete(key);
    },
    lookupName,
    snapshot() {
      const names: SegmentName[] = [];
      for (const [mac, name] of nameByMac) {
        const ip = macAddress(mac);
        names.push({ name, mac, ip: ip === null ? null : formatIp4(ip), source: 'vmnet' });
      }
      let gateway: SegmentSnapshot['gateway'] = null;
      if (gw !== null) {
        const c = gw.config;
        const s = gw.snapshot();
        for (const l of gw.gateway.dhcp.leases()) {
          if (l.hostname !== null && l.state === LeaseState.BOUND) names.push({ name: l.hostname, mac: l.mac, ip: formatIp4(l.ip), source: 'dhcp' });
        }
        gateway = {
          ...s,
          subnet: `${formatIp4(c.subnet.net)}/${c.subnet.prefix}`,
          gatewayIp: formatIp4(c.gatewayIp),
          dnsIp: formatIp4(c.dnsIp),
          isolated: c.isolated,
          mac: formatMac(c.gatewayMac),
        };
      }
      return { switch: sw.snapshot(), gateway, names };
    },
    qemuNetdevArgs: (path, id) => sw.qemuNetdevArgs(path, id),
    close() {
      closing ??= (async () => {
        gwPort?.remove();
        link?.close();
        await gw?.close();
        await sw.close();
      })();
      return closing;
    },
  };
}

function ipNumber(text: string): Ip4 | null {
  const p = text.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !(x >= 0 && x <= 255))) return null;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}
