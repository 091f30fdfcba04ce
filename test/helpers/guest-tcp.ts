/**
 * A crafted guest TCP connection through a sans-IO Gateway (GatewayRig):
 * opens with a SYN, lets the fake host dialer connect (or is served in
 * process, as DNS at 10.0.2.3 is), then sends data, FIN and ACKs segment by
 * segment and records what the gateway sends back, acknowledging in-order
 * data and FIN the way a guest would. Enough TCP to drive the NAT through
 * its states from tests; no retransmission, no options.
 */
import { expect } from 'vitest';
import * as ipv4 from '../../src/wire/ipv4.js';
import * as tcp from '../../src/wire/tcp.js';
import type { Ip4, Mac } from '../../src/wire/addr.js';
import type { Session } from '../../src/gateway/gateway.js';
import { GUEST_IP, GW_IP, ipv4Frame, ipv4Packet, tcpSegment, viewOf, type DecodedFrame, type FakeTcpStream, type GatewayRig, type RecordingPort } from './frames.js';

/** The TCP header and payload of a decoded frame. */
export function tcpOf(f: DecodedFrame): { h: tcp.Header; payload: Uint8Array } {
  const h = tcp.blank();
  expect(tcp.parse(viewOf(f.payload), 0, f.payload.length, h)).toBe(true);
  return { h, payload: f.payload.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength) };
}

export interface GuestConnOptions {
  /** The guest's source port (default 40100). */
  port?: number;
  /** Destination (default the gateway, 10.0.2.2, port 8080: dialed on the fake host). */
  dst?: Ip4;
  dstPort?: number;
  /** The window the guest advertises (default 65535; no window scaling). */
  window?: number;
  /** False when the flow is served in process (no fake host dial to connect). */
  dialed?: boolean;
  /** Another guest: its address, MAC and link (default the rig's own guest, 10.0.2.15 on its session). */
  from?: { ip: Ip4; mac: Mac; session: Session; port: RecordingPort };
}

/** One guest connection through the NAT, driven segment by segment. */
export class GuestConn {
  seq = 1000;
  ack = 0;
  window: number;
  readonly port: number;
  readonly dst: Ip4;
  readonly dstPort: number;
  readonly from: GuestConnOptions['from'];
  /** The fake host stream it was dialed to (dialed flows only). */
  readonly host: FakeTcpStream;
  readonly received: Uint8Array[] = [];
  finSeen = false;
  rstSeen = false;

  constructor(
    readonly rig: GatewayRig,
    o: GuestConnOptions = {},
  ) {
    this.port = o.port ?? 40100;
    this.dst = o.dst ?? GW_IP;
    this.dstPort = o.dstPort ?? 8080;
    this.window = o.window ?? 65535;
    this.from = o.from;
    this.send({ flags: tcp.SYN, seq: this.seq });
    this.host = (o.dialed ?? true ? rig.tcp.dials.at(-1) : undefined) as FakeTcpStream;
    this.host?.ev.connected();
  }

  /** Completes the handshake once the gateway's SYN-ACK is out (dialed flows: at once). */
  establish(): this {
    const synack = this.take().find((s) => s.h.flags & tcp.SYN);
    expect(synack, 'SYN-ACK').toBeDefined();
    this.seq++;
    this.ack = (synack!.h.seq + 1) >>> 0;
    this.send({ flags: tcp.ACK });
    return this;
  }

  send(o: { flags: number; seq?: number }, payload?: Uint8Array): void {
    const src = this.from?.ip ?? GUEST_IP;
    const seg = tcpSegment(src, this.dst, this.port, this.dstPort, { seq: o.seq ?? this.seq, ack: this.ack, flags: o.flags, window: this.window }, payload);
    const frame = ipv4Frame(ipv4Packet({ src, dst: this.dst, proto: ipv4.PROTO_TCP }, seg), this.from ? { src: this.from.mac } : {});
    this.rig.send(frame, this.from?.session);
  }

  /** Segments the gateway sent since the last call; in-order data and FIN are taken like a guest would. */
  take(): Array<{ h: tcp.Header; payload: Uint8Array }> {
    const segs = (this.from?.port ?? this.rig.port).takeDecoded().map(tcpOf);
    for (const s of segs) {
      if (s.h.dstPort !== this.port) continue;
      if (s.h.flags & tcp.RST) this.rstSeen = true;
      if (s.h.seq === this.ack && s.payload.length > 0) {
        this.received.push(s.payload.slice());
        this.ack = (this.ack + s.payload.length) >>> 0;
      }
      if (s.h.flags & tcp.FIN && ((s.h.seq + s.payload.length) >>> 0) === this.ack) {
        this.ack = (this.ack + 1) >>> 0;
        this.finSeen = true;
      }
    }
    return segs;
  }

  /** Sends `data` in 1460-byte segments, then optionally FIN, then an ACK for what came back. */
  write(data: Uint8Array, fin: boolean): void {
    for (let o = 0; o < data.length; o += 1460) {
      const chunk = data.subarray(o, Math.min(data.length, o + 1460));
      this.send({ flags: tcp.ACK | tcp.PSH }, chunk);
      this.seq = (this.seq + chunk.length) >>> 0;
    }
    if (fin) {
      this.send({ flags: tcp.ACK | tcp.FIN });
      this.seq = (this.seq + 1) >>> 0;
    }
    this.take();
    this.send({ flags: tcp.ACK });
  }
}
