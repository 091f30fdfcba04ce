/**
 * Theory of operation: a segment is one switch plus, optionally, the gateway
 * sitting on it as one more port, so that the gateway serves the whole L2
 * segment rather than one guest connection.
 *
 *   guest A ─┐                        ┌─ gateway (internal port, access VLAN 1
 *   guest B ─┼─ role sockets ─ switch ┤    by default): DHCP, DNS, NAT, ICMP
 *   guest C ─┘  (server.ts)   engine  └─ (pcap tap: every frame, once, tagged)
 *
 * The gateway is built by startGateway() with no listener and joins the
 * switch as an internal port through a small in-process link. Frames the
 * gateway sends go into the switch through {@link InternalPort.sendFrame};
 * frames the switch sends to the gateway arrive on the link's `onFrame`
 * together with the switch port they came in on. That ingress port is the
 * guest's identity, as a connection is on a stand-alone gateway: the
 * gateway gets one Session per switch port, made on the port's first frame
 * and detached within a second of the port closing (at once when another
 * port sends its first frame), so the gateway's rules
 * hold per port (gateway.ts, neighbors.ts: a port may use only the
 * addresses leased to it or first used by it; per-guest caps and DHCP lease
 * bounds are per port). The NICs of one VM (ports that came in on per-NIC
 * sockets with owners `VM:0`, `VM:1`, server.ts) are one guest: they share
 * one Session, so a bond inside the guest that moves its MAC and address
 * from one NIC to the other keeps its lease and its connections; ports of
 * different VMs, or without an owner, never share. Replies leave through the same link and the switch
 * delivers them by MAC. The gateway answers from inside sendFrame (ARP,
 * ICMP echo, TCP data in answer to an ACK); the switch queues such
 * reentrant frames (switch.ts, "Reentrancy").
 *
 * Backpressure. Each Session's FramePort is the gateway's switch port
 * itself, which behaves as a StreamPort does on `--net user`: its
 * `sendFrame` (and `commitFrame`) returns false when the switch says "hold
 * back" (the guest's port is congested, or the reentrant queue is filling),
 * and when the switch calls `drained()` every session gets `linkDrained`;
 * the TCP NAT holds data back meanwhile instead of losing it in the switch.
 *
 * Its TCP segments are built in place (reserveFrame/commitFrame, with the
 * guest's MAC): straight into the guest's port output when the switch can
 * tell the segment goes there and nowhere else (switch.ts, "Cut-through"),
 * else in the switch's reentrant arena; guests' frames reach it in their
 * ports' read buffers. All of these come from the checksum kernel's memory:
 * no copy on the way through the switch, checksums summed and verified in
 * place.
 *
 * The gateway's MAC is a static entry on its port (fdb.ts): a guest that
 * sends with that MAC as its source is dropped, and cannot pull the
 * gateway's traffic to itself.
 *
 * Names. The gateway's DNS answers `NAME` and `NAME.vmnet.internal` for
 * vmnet names registered with {@link RunningSegment.setName} (the launcher
 * knows the VM's name and its MAC), then for host names guests sent in DHCP
 * (option 12); vmnet names always win and cannot be taken by a guest, also
 * while their VM has no address (gateway/names.ts). A DHCP binding stays
 * with its MAC while remembered (a day after its lease ended), so a VM
 * stopped and started again gets its address back.
 *
 * Forwards that name no VM go to the gateway's owner as on a stand-alone
 * gateway: the guest of the first switch port that got an address, until
 * that port closes (Gateway.primaryGuest). On a switch, name the VM.
 *
 * VXLAN. With `vxlan`, the switch also gets a VXLAN port (vxlan.ts,
 * vxlan-socket.ts) joining it to switches on other hosts, and its MTU
 * defaults to the underlay's minus the 50 bytes of encapsulation (1450), so
 * the gateway announces that in DHCP option 26 and sizes its TCP segments
 * by it. Every guest behind the VXLAN port arrives through that one switch
 * port, so the gateway keys their Sessions by source MAC instead, a MAC
 * getting one while the VTEP has it learned behind a configured remote:
 * the gateway's per-guest rules (addresses, DHCP lease bounds) then hold
 * per remote guest, and the number of such Sessions is bounded by the
 * VTEP's MAC table. A frame from an unlearned remote MAC (its table was
 * full) does not reach the gateway (`gatewayUnlearned`); a Session whose
 * MAC has aged out of the VTEP (300 s without a frame) is detached.
 *
 * Without a gateway the segment is a pure private LAN: frames only go
 * between guests; nothing answers ARP, DHCP or DNS, and nothing leaves.
 */
import { startGateway, type GatewayServerOptions, type RunningGateway } from '../gateway/server.js';
import type { GatewaySnapshot, Session } from '../gateway/gateway.js';
import { GuestNames } from '../gateway/names.js';
import { LeaseState } from '../services/dhcp-server.js';
import { formatIp4, formatMac, type Ip4 } from '../wire/addr.js';
import { releaseSimdBuffer, simdBuffer } from '../wire/checksum.js';
import { startSwitch, type InternalPort, type RunningSwitch, type SwitchServerOptions, type SwitchSnapshot } from './server.js';
import type { SwitchPort } from './types.js';
import type { PortRole } from './vlan.js';
import { defaultVxlanMtu, type VxlanConfig } from '../config/vxlan.js';
import { startVtep, type RunningVtep, type VtepServerOptions, type VtepSnapshot } from './vxlan-socket.js';

/** Gateway options on a segment: the gateway's network, minus what the switch owns. */
export type SegmentGatewayOptions = Omit<GatewayServerOptions, 'socket' | 'tcpPort' | 'tcpHost' | 'pcap' | 'mtu'> & {
  /** The gateway's port role (default access VLAN 1, the untagged network). */
  role?: PortRole;
};

/** Options of {@link startSegment}. */
export interface SegmentOptions extends SwitchServerOptions {
  /** Put a gateway on the switch (false or omitted: a pure private LAN). */
  gateway?: SegmentGatewayOptions | false;
  /** Join a VXLAN segment (a VXLAN port on the switch); the MTU then defaults to the underlay's − 50. */
  vxlan?: VxlanConfig & VtepServerOptions;
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
  gateway: (GatewaySnapshot & { subnet: string; gatewayIp: string; dnsIp: string; isolated: boolean; hostLoopback: boolean; hostAccess: boolean; mac: string }) | null;
  names: SegmentName[];
  /** The VXLAN port, or null; `gatewayUnlearned`: frames from unlearned remote MACs kept from the gateway. */
  vxlan: (VtepSnapshot & { gatewaySessions: number; gatewayUnlearned: number }) | null;
}

/** A running segment from {@link startSegment}. */
export interface RunningSegment {
  readonly switch: RunningSwitch;
  /** The gateway, or null on a private LAN. */
  readonly gateway: RunningGateway | null;
  /** The gateway's switch port, or null. */
  readonly gatewayPort: InternalPort | null;
  /** The VXLAN port, or null. */
  readonly vxlan: RunningVtep | null;
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

/**
 * The switch's view of the gateway (`peer`), which passes each frame on with
 * its ingress port. The other way, every gateway Session's FramePort is the
 * gateway's switch port itself (InternalPort: sendFrame, and building in
 * place, where TCP segments go into the guest port's output or the switch's
 * arena), with nothing in between.
 */
class GatewayLink {
  onFrame: (from: SwitchPort, view: DataView, off: number, len: number) => void = () => {};
  onDrained: () => void = () => {};
  /** Switch → gateway (the FramePort the switch sees). */
  readonly peer = {
    sendFrame: (_buf: Uint8Array, off: number, len: number, view: DataView, from: SwitchPort): void => this.onFrame(from, view, off, len),
    drained: (): void => this.onDrained(),
  };
}

/** The VM of a port owner `VM:NIC`, or null. */
const vmOf = (owner: string | null): string | null => (owner === null ? null : owner.slice(0, owner.lastIndexOf(':')));

/** Interval at which sessions of switch ports that closed are detached (ms). */
const PORT_SWEEP_MS = 1000;

/**
 * Starts a switch and, when asked, a gateway on it.
 * @throws VmnetError E_USAGE for bad options, E_NO_FILE / E_PORT_IN_USE from
 *   the switch server
 */
export async function startSegment(opts: SegmentOptions): Promise<RunningSegment> {
  const { gateway: gwOpts = false, vxlan: vxOpts, ...swOpts } = opts;
  if (vxOpts !== undefined) swOpts.mtu ??= defaultVxlanMtu(vxOpts);
  // With a gateway, guests' frames arrive in, and its TCP segments are built in, the switch's
  // buffers: take them from the checksum kernel's memory, so checksums are summed in place (as
  // on the gateway's own socket, gateway/server.ts).
  const sw = await startSwitch(gwOpts === false ? swOpts : { ...swOpts, pool: { take: simdBuffer, give: releaseSimdBuffer } });
  let gw: RunningGateway | null = null;
  let gwPort: InternalPort | null = null;
  let link: GatewayLink | null = null;
  /** The gateway's Session of each switch port that has sent it a frame (of each remote MAC behind the VXLAN port: a macKey); the NICs of one VM share one. */
  const sessions = new Map<SwitchPort | number, Session>();
  /** The Session of each VM whose ports came in on per-NIC sockets (server.ts ownerSocket). */
  const byVm = new Map<string, Session>();
  let vx: RunningVtep | null = null;
  let gatewayUnlearned = 0;
  let portSweep: NodeJS.Timeout | null = null;
  /** Undoes a start that failed half-way, then throws `e`. */
  const abort = async (e: unknown): Promise<never> => {
    gwPort?.remove();
    if (portSweep) clearInterval(portSweep);
    await gw?.close();
    await sw.close();
    throw e;
  };
  if (gwOpts !== false) {
    const { role, ...rest } = gwOpts;
    try {
      gw = await startGateway({ ...rest, mtu: sw.switch.mtu });
      link = new GatewayLink();
      const gateway = gw.gateway;
      const detachClosedPorts = (): void => {
        for (const [p, s] of sessions) {
          if (typeof p === 'number' ? vx !== null && vx.port.port.attached && vx.vtep.knows(p) : p.attached) continue;
          sessions.delete(p);
          if ([...sessions.values()].includes(s)) continue; // another NIC of the same VM still holds it
          gateway.detach(s);
          for (const [vm, x] of byVm) if (x === s) byVm.delete(vm);
        }
      };
      link.onFrame = (from, view, off, len) => {
        let key: SwitchPort | number = from;
        if (vx !== null && from === vx.port.port) {
          key = view.getUint16(off + 6) * 0x100000000 + view.getUint32(off + 8); // macKey of the source
          if (!vx.vtep.knows(key)) return void gatewayUnlearned++;
        }
        let s = sessions.get(key);
        if (s === undefined) {
          detachClosedPorts(); // a VM reconnecting finds what its old port held already free
          const vm = typeof key === 'number' ? null : vmOf(sw.ownerOf(from));
          s = (vm !== null ? byVm.get(vm) : undefined) ?? gateway.attach(gwPort!); // frames only come once the port exists
          sessions.set(key, s);
          if (vm !== null) byVm.set(vm, s);
        }
        gateway.handleFrame(s, view, off, len);
      };
      // The switch says the path drained: every guest's held-back TCP data may go (a guest whose
      // port is still full is told to hold back again at its first frame).
      link.onDrained = () => {
        for (const s of sessions.values()) gateway.linkDrained(s);
      };
      portSweep = setInterval(detachClosedPorts, PORT_SWEEP_MS);
      portSweep.unref();
      // Its MAC is static (no guest can take it over); it forwards nothing, so it cannot be part of a
      // loop, and its broadcasts (DHCP, ARP) answer guests that are storm-limited themselves.
      gwPort = sw.addInternalPort(link.peer, { name: 'gateway', role: role ?? { vlan: 1 }, staticMacs: [gw.config.gatewayMac], stormLimit: false });
    } catch (e) {
      return abort(e);
    }
  }
  if (vxOpts !== undefined) {
    try {
      vx = await startVtep(sw, vxOpts, vxOpts);
    } catch (e) {
      return abort(e);
    }
  }

  // Without a gateway the names are only kept (and listed, with no address).
  const names = gw?.names ?? new GuestNames({ addressOf: () => null, dhcpLookup: () => null, domain: 'vmnet.internal' });
  let closing: Promise<void> | null = null;
  return {
    switch: sw,
    gateway: gw,
    gatewayPort: gwPort,
    vxlan: vx,
    socket: sw.socket,
    socketFor: (role) => sw.socketFor(role),
    setName: (mac, name) => names.set(mac, name),
    removeName: (mac) => names.remove(mac),
    lookupName: (name) => names.lookup(name),
    snapshot() {
      const list: SegmentName[] = names.list().map((n) => ({ name: n.name, mac: n.mac, ip: n.ip === null ? null : formatIp4(n.ip), source: 'vmnet' }));
      let gateway: SegmentSnapshot['gateway'] = null;
      if (gw !== null) {
        const c = gw.config;
        const s = gw.snapshot();
        // DHCP host names that resolve to their lease (held, and not a vmnet name).
        for (const l of gw.gateway.dhcp.leases()) {
          if (l.hostname !== null && l.state === LeaseState.BOUND && names.lookup(l.hostname) === l.ip) list.push({ name: l.hostname, mac: l.mac, ip: formatIp4(l.ip), source: 'dhcp' });
        }
        gateway = {
          ...s,
          subnet: `${formatIp4(c.subnet.net)}/${c.subnet.prefix}`,
          gatewayIp: formatIp4(c.gatewayIp),
          dnsIp: formatIp4(c.dnsIp),
          isolated: c.isolated,
          hostLoopback: c.hostLoopback,
          hostAccess: c.hostAccess,
          mac: formatMac(c.gatewayMac),
        };
      }
      let vxlan: SegmentSnapshot['vxlan'] = null;
      if (vx !== null) {
        let gatewaySessions = 0;
        for (const k of sessions.keys()) if (typeof k === 'number') gatewaySessions++;
        vxlan = { ...vx.snapshot(), gatewaySessions, gatewayUnlearned };
      }
      return { switch: sw.snapshot(), gateway, names: list, vxlan };
    },
    qemuNetdevArgs: (path, id) => sw.qemuNetdevArgs(path, id),
    close() {
      closing ??= (async () => {
        await vx?.close();
        gwPort?.remove();
        if (portSweep) clearInterval(portSweep);
        await gw?.close();
        await sw.close();
      })();
      return closing;
    },
  };
}
