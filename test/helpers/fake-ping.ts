/**
 * A fake ping backend for sans-IO tests of the ping relay and the gateway:
 * it records what the relay asks of the helper (open, send, close) and lets
 * a test play the helper's and the kernel's part: OPENED with a host
 * identifier, replies as a ping socket delivers them (the host identifier in
 * place of the guest's), ICMP errors from the error queue (the request as
 * the kernel sent it), refusals (EACCES) and the helper going down.
 */
import { finish, sum } from '../../src/wire/checksum.js';
import { ORIGIN_ICMP, ORIGIN_ICMP6, type Family, type HelperMessage } from '../../src/services/ping/protocol.js';
import type { PingBackend, PingBackendEvents, PingBackendFactory } from '../../src/services/ping/relay.js';

export interface OpenCall {
  flow: number;
  family: Family;
  dst: Uint8Array;
  ttl: number;
}

export interface SendCall {
  flow: number;
  ttl: number;
  message: Uint8Array;
}

/** The identifier the fake kernel gives the socket of `flow`. */
export const hostIdent = (flow: number): number => 0x8000 | (flow & 0x7fff);

/**
 * An echo message with a valid checksum: ICMPv4 (no pseudo-header), or
 * ICMPv6 when `addrs` (source, destination) are given (RFC 4443 §2.3).
 */
export function echoMessage(type: number, id: number, seq: number, payload: Uint8Array, addrs?: { src: Uint8Array; dst: Uint8Array }): Uint8Array {
  const m = new Uint8Array(8 + payload.length);
  m[0] = type;
  m[4] = id >>> 8;
  m[5] = id & 255;
  m[6] = seq >>> 8;
  m[7] = seq & 255;
  m.set(payload, 8);
  const v = new DataView(m.buffer);
  let acc = 0;
  if (addrs) {
    const ph = new Uint8Array(40);
    ph.set(addrs.src, 0);
    ph.set(addrs.dst, 16);
    acc = sum(new DataView(ph.buffer), 0, 32) + m.length + 58;
  }
  v.setUint16(2, finish(sum(v, 0, m.length, acc)));
  return m;
}

export class FakePingBackend implements PingBackend {
  events: PingBackendEvents | null = null;
  readonly opens: OpenCall[] = [];
  readonly sends: SendCall[] = [];
  readonly closes: number[] = [];
  shutdowns = 0;
  /** What send() returns (false: the helper's input is full). */
  accept = true;

  /** The factory to hand the relay. */
  readonly factory: PingBackendFactory = (events) => {
    this.events = events;
    return this;
  };

  open(flow: number, family: Family, dst: Uint8Array, ttl: number): void {
    this.opens.push({ flow, family, dst: dst.slice(), ttl });
  }

  send(flow: number, ttl: number, message: Uint8Array): boolean {
    if (this.accept) this.sends.push({ flow, ttl, message: message.slice() });
    return this.accept;
  }

  close(flow: number): void {
    this.closes.push(flow);
  }

  shutdown(): void {
    this.shutdowns++;
  }

  /** Delivers a helper message to the relay. */
  deliver(m: HelperMessage): void {
    this.events!.message(m);
  }

  /** OPENED for the last opened flow (or `flow`), sending from `local`. */
  opened(local: Uint8Array, flow = this.lastOpen().flow): void {
    this.deliver({ type: 'opened', flow, ident: hostIdent(flow), family: local.length === 4 ? 4 : 6, local });
  }

  /** OPEN_FAILED for the last opened flow (or `flow`). */
  openFailed(errno: number, flow = this.lastOpen().flow): void {
    this.deliver({ type: 'open-failed', flow, errno });
  }

  /**
   * The echo reply the kernel hands the socket for a request sent on `s`:
   * from `from` (default the flow's destination), the host identifier, the
   * request's sequence number and payload (ICMPv6 checksums cover the
   * addresses: `local` is the host's source).
   */
  replyTo(s: SendCall, opts: { from?: Uint8Array; ttl?: number; local?: Uint8Array } = {}): void {
    const open = this.opens.find((o) => o.flow === s.flow)!;
    const from = opts.from ?? open.dst;
    const seq = (s.message[6]! << 8) | s.message[7]!;
    const v6 = open.family === 6;
    const message = echoMessage(v6 ? 129 : 0, hostIdent(s.flow), seq, s.message.subarray(8), v6 ? { src: from, dst: opts.local ?? new Uint8Array(16) } : undefined);
    this.deliver({ type: 'reply', flow: s.flow, family: open.family, ttl: opts.ttl ?? 63, from, message });
  }

  /**
   * The request of `s` as the kernel sent it (host identifier, checksum
   * recomputed; ICMPv6 over the host's `local` source).
   */
  asSent(s: SendCall, local?: Uint8Array): Uint8Array {
    const open = this.opens.find((o) => o.flow === s.flow)!;
    const seq = (s.message[6]! << 8) | s.message[7]!;
    return echoMessage(s.message[0]!, hostIdent(s.flow), seq, s.message.subarray(8), open.family === 6 ? { src: local!, dst: open.dst } : undefined);
  }

  /** An ICMP error from the socket's error queue about the request of `s`. */
  errorAbout(s: SendCall, icmpType: number, code: number, offender: Uint8Array, opts: { info?: number; origin?: number; local?: Uint8Array } = {}): void {
    const open = this.opens.find((o) => o.flow === s.flow)!;
    const origin = opts.origin ?? (open.family === 4 ? ORIGIN_ICMP : ORIGIN_ICMP6);
    this.deliver({ type: 'icmp-error', flow: s.flow, family: open.family, origin, icmpType, code, info: opts.info ?? 0, offender, request: this.asSent(s, opts.local) });
  }

  private lastOpen(): OpenCall {
    const o = this.opens.at(-1);
    if (!o) throw new Error('nothing was opened');
    return o;
  }
}
