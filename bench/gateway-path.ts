/**
 * Theory of operation: the gateway's per-segment TCP path in process, with
 * no sockets and no kernel: CPU time per full-size segment of the sans-IO
 * Gateway (src/gateway/gateway.ts) and its TCP NAT, each way, over IPv4 and
 * IPv6. On a shared machine the socket benchmarks (bench/run.ts) move by
 * ±15% between runs; this moves far less, so it is what tells whether a
 * change to the frame path made it slower.
 *
 * One guest connection (the test helpers' GatewayRig: fake host dialer,
 * fake clock) to the gateway's address, established, then:
 *   guest→gateway  a 1460-byte (IPv4) / 1440-byte (IPv6) data segment from
 *                  the guest: Ethernet, IP, TCP parse and checksum, the
 *                  neighbour check, the flow lookup, the receive path, and
 *                  every other segment an ACK back; the fake host takes the
 *                  bytes at once (written once per batch, as from a socket
 *                  read).
 *   gateway→guest  the host delivers 64 KiB; the gateway sends it as
 *                  segments (headers built, checksums summed, the frame
 *                  handed to a port that keeps nothing); the guest
 *                  acknowledges all of it with one ACK.
 * The data frame is sent again with its sequence number and checksum patched
 * (RFC 1624), so nothing is allocated per segment on the bench's side. Each
 * cell is the best of ROUNDS runs, in ns of CPU time (user + system) per
 * data segment, batches of 32 frames per macrotask.
 *
 * The last two columns: gateway→guest again, with the segments built in a
 * port's output as StreamPort allows (reserveFrame … commitFrame, into an
 * area that keeps nothing), the guest's ACKs arriving on the same link:
 * on the user NIC the gateway's own link, on a segment the gateway's
 * switch port (an in-process Switch, the guest on another port: the
 * segment's frame path, src/switch/segment.ts, minus the sockets). Their
 * difference is what a segment adds per segment sent, load or not. The
 * guest's SYN carries no MSS option, so these segments are 536-byte ones
 * (590-byte frames, IPv4): the per-frame work is what is compared.
 *
 *   node --import ./bench/lib/ts-loader.mjs bench/gateway-path.ts [ROUNDS]
 */
import * as tcp from '../src/wire/tcp.js';
import { update32 } from '../src/wire/checksum.js';
import type { FakeTcpStream } from '../test/helpers/frames.js';
import type { Session } from '../src/gateway/gateway.js';
import { Output } from './lib/output.js';
import { macrotaskClock } from '../src/switch/clock.js';
import { Switch } from '../src/switch/switch.js';
import { GatewayRig, GUEST_IP, GW_IP, ipv4Frame, ipv4Packet, tcpSegment, viewOf, type TcpOptions } from '../test/helpers/frames.js';
import { GUEST6, GW6, ipv6Frame, ipv6Packet, tcpSegment6 } from '../test/helpers/frames6.js';

const ROUNDS = Number(process.argv[2]) || 7;
const N = 100_000;
const BATCH = 32;
const CHUNK = 64 * 1024;
const LINK_CHUNK = 16 * 1024;

/** How a family's guest frames are made, and where their TCP header sits. */
interface Family {
  name: string;
  mss: number;
  tcpAt: number;
  frame(o: TcpOptions, payload?: Uint8Array): Uint8Array;
  /** The rig's IPv6 prefix (IPv6 only). */
  subnet6?: string;
}

const families: Family[] = [
  {
    name: 'IPv4',
    mss: 1460,
    tcpAt: 34,
    frame: (o, payload) => ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: 6 }, tcpSegment(GUEST_IP, GW_IP, 40000, 8080, o, payload))),
  },
  {
    name: 'IPv6',
    mss: 1440,
    tcpAt: 54,
    subnet6: 'fd00:76:6d6e::/64',
    frame: (o, payload) => ipv6Frame(ipv6Packet({ src: GUEST6, dst: GW6, nextHeader: 6 }, tcpSegment6(GUEST6, GW6, 40000, 8080, o, payload))),
  },
];

/** A frame whose TCP seq or ack field is rewritten in place, checksum patched. */
class Patchable {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly at: number,
  ) {
    this.view = viewOf(bytes);
  }
  set(field: number, value: number): void {
    const v = this.view;
    const old = v.getUint32(this.at + field);
    v.setUint32(this.at + field, value >>> 0);
    v.setUint16(this.at + tcp.CHECKSUM, update32(v.getUint16(this.at + tcp.CHECKSUM), old, value >>> 0));
  }
}

interface Conn {
  rig: GatewayRig;
  host: FakeTcpStream;
  data: Patchable;
  ack: Patchable;
  /** Next guest sequence number. */
  seq: number;
  /** Next gateway sequence number the guest expects. */
  rcv: number;
}

function open(f: Family): Conn {
  const rig = new GatewayRig(f.subnet6 ? { subnet6: f.subnet6 } : {});
  const port = rig.port;
  rig.send(f.frame({ flags: tcp.SYN, seq: 1000 }));
  const host = rig.tcp.dials[0]!;
  host.ev.connected();
  const synAck = port.take()[0]!;
  const iss = viewOf(synAck).getUint32(f.tcpAt + tcp.SEQ);
  const rcv = (iss + 1) >>> 0;
  rig.send(f.frame({ flags: tcp.ACK, seq: 1001, ack: rcv }));
  // From here on the port keeps nothing: what is measured is the gateway, not the recording.
  port.sendFrame = () => true;
  host.write = (_chunk, done) => {
    queueMicrotask(done);
    return true;
  };
  const data = new Patchable(f.frame({ flags: tcp.ACK | tcp.PSH, seq: 1001, ack: rcv }, new Uint8Array(f.mss).fill(0x61)), f.tcpAt);
  const ack = new Patchable(f.frame({ flags: tcp.ACK, seq: 1001, ack: rcv }), f.tcpAt);
  return { rig, host, data, ack, seq: 1001, rcv };
}

/** A guest connection whose frames go both ways through `link`: the gateway's own (user NIC) or a switch (segment). */
interface LinkConn {
  rig: GatewayRig;
  host: FakeTcpStream;
  ack: Patchable;
  seq: number;
  /** Hands a guest frame to the gateway over the link. */
  deliver(frame: Uint8Array): void;
  /** The sequence number after the last segment the gateway sent (what the guest acknowledges). */
  sent(): number;
}

function openLink(f: Family, link: 'user' | 'segment'): LinkConn {
  const rig = new GatewayRig(f.subnet6 ? { subnet6: f.subnet6 } : {});
  const out = new Output(true);
  let deliver: (frame: Uint8Array) => void;
  if (link === 'user') {
    const session = rig.gateway.attach(out);
    deliver = (b) => rig.gateway.handleFrame(session, viewOf(b), 0, b.length);
  } else {
    // As startSegment wires it: the gateway on an internal port (static MAC, no storm limit), its Session's port that one.
    const sw = new Switch({ mtu: rig.config.mtu, now: macrotaskClock() });
    let session: Session | null = null;
    const gw = sw.addPort(
      { sendFrame: (_b, off, len, view) => rig.gateway.handleFrame(session!, view, off, len), drained: () => rig.gateway.linkDrained(session!) },
      { name: 'gateway', staticMacs: [rig.config.gatewayMac], stormLimit: false },
    );
    const guest = sw.addPort(out, { name: 'guest' });
    session = rig.gateway.attach({
      sendFrame: (b, off, len) => sw.input(gw, b, viewOf(b), off, len),
      reserveFrame: (maxLen, dst) => sw.reserveInput(gw, maxLen, dst),
      frameBuffer: () => sw.inputBuffer(),
      frameView: () => sw.inputView(),
      frameOffset: () => sw.inputOffset(),
      commitFrame: (len) => sw.commitInput(len),
    });
    deliver = (b) => sw.input(guest, b, viewOf(b), 0, b.length);
  }
  deliver(f.frame({ flags: tcp.SYN, seq: 1000 }));
  const host = rig.tcp.dials[0]!;
  host.ev.connected();
  const synAck = out.recording!.find((b) => b.length > f.tcpAt + tcp.SEQ && (viewOf(b).getUint8(f.tcpAt + 13) & tcp.SYN) !== 0)!;
  const rcv = (viewOf(synAck).getUint32(f.tcpAt + tcp.SEQ) + 1) >>> 0;
  deliver(f.frame({ flags: tcp.ACK, seq: 1001, ack: rcv }));
  out.recording = null;
  const sent = (): number => {
    const at = out.last + f.tcpAt;
    return (out.view.getUint32(at + tcp.SEQ) + out.lastLen - f.tcpAt - (out.buf[at + 12]! >>> 4) * 4) >>> 0;
  };
  return { rig, host, ack: new Patchable(f.frame({ flags: tcp.ACK, seq: 1001, ack: rcv }), f.tcpAt), seq: 1001, deliver, sent };
}

/**
 * CPU ns per gateway → guest data segment over a link: the host delivers 16 KiB at a time (well inside
 * the guest's window, so the segments go out as the bytes arrive, as in a bulk transfer), the guest
 * acknowledges everything sent after each.
 */
async function gatewayToGuestVia(c: LinkConn): Promise<number> {
  const chunk = new Uint8Array(LINK_CHUNK).fill(0x62);
  const gw = c.rig.gateway;
  const out0 = gw.counters.framesOut;
  const bytes0 = gw.counters.bytesOut;
  const t0 = process.cpuUsage();
  for (let i = 1; gw.counters.framesOut - out0 < N; i++) {
    c.host.ev.data(chunk);
    c.ack.set(tcp.SEQ, c.seq);
    c.ack.set(tcp.ACK_NUM, c.sent());
    c.deliver(c.ack.bytes);
    if (i % BATCH === 0) await tick();
  }
  const t = process.cpuUsage(t0);
  const frames = gw.counters.framesOut - out0;
  if (gw.counters.bytesOut - bytes0 < frames * 500) throw new Error('the gateway sent no data segments');
  return ((t.user + t.system) * 1000) / frames;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** CPU ns per guest → gateway data segment. */
async function guestToGateway(c: Conn, f: Family): Promise<number> {
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      c.data.set(tcp.SEQ, c.seq);
      c.rig.gateway.handleFrame(c.rig.session, c.data.view, 0, c.data.bytes.length);
      c.seq = (c.seq + f.mss) >>> 0;
    }
    await tick();
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / N;
}

/** CPU ns per gateway → guest data segment. */
async function gatewayToGuest(c: Conn): Promise<number> {
  const chunk = new Uint8Array(CHUNK).fill(0x62);
  const gw = c.rig.gateway;
  const out0 = gw.counters.framesOut;
  const t0 = process.cpuUsage();
  let sent = 0;
  while (gw.counters.framesOut - out0 < N) {
    c.host.ev.data(chunk);
    sent += CHUNK;
    // Acknowledge everything the gateway has sent (its window is the guest's 64240).
    c.ack.set(tcp.SEQ, c.seq);
    c.ack.set(tcp.ACK_NUM, (c.rcv + sent) >>> 0);
    gw.handleFrame(c.rig.session, c.ack.view, 0, c.ack.bytes.length);
    if ((sent / CHUNK) % BATCH === 0) await tick();
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / (gw.counters.framesOut - out0);
}

const lines = ['| family | guest→gateway, per segment | gateway→guest, per segment | gateway→guest built in place, user NIC | the same on a segment |', '|---|---:|---:|---:|---:|'];
for (const f of families) {
  const best = { in: Infinity, out: Infinity, user: Infinity, segment: Infinity };
  const a = open(f);
  const b = open(f);
  const u = openLink(f, 'user');
  const sg = openLink(f, 'segment');
  await guestToGateway(a, f); // warm-up
  await gatewayToGuest(b);
  await gatewayToGuestVia(u);
  await gatewayToGuestVia(sg);
  for (let r = 0; r < ROUNDS; r++) {
    best.in = Math.min(best.in, await guestToGateway(a, f));
    best.out = Math.min(best.out, await gatewayToGuest(b));
    best.user = Math.min(best.user, await gatewayToGuestVia(u));
    best.segment = Math.min(best.segment, await gatewayToGuestVia(sg));
  }
  const drops = { ...a.rig.drops(), ...b.rig.drops(), ...u.rig.drops(), ...sg.rig.drops() };
  if (Object.keys(drops).length > 0) throw new Error(`${f.name}: unexpected drops ${JSON.stringify(drops)}`);
  const ns = (n: number) => `${n.toFixed(0)} ns`;
  lines.push(`| ${f.name} | ${ns(best.in)} | ${ns(best.out)} | ${ns(best.user)} | ${ns(best.segment)} |`);
}
process.stdout.write(`CPU time per full-size TCP segment through the gateway, best of ${ROUNDS} runs of ${N} segments (Node ${process.version}):\n\n${lines.join('\n')}\n`);
