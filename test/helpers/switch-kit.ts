/**
 * Test kit for the switch (src/switch/): for the sans-IO engine a recording
 * port, an Ethernet frame builder (tags, priority tags, nested tags), a
 * parser for what ports got and a switch on a fake clock; for real sockets a
 * raw stream client, marked frames and a poll helper.
 */
import { expect } from 'vitest';
import { connectStream, type StreamPort } from '../../src/link/stream-port.js';
import * as eth from '../../src/wire/ethernet.js';
import { Switch } from '../../src/switch/switch.js';
import type { FramePort, PortConfig, SwitchOptions, SwitchPort } from '../../src/switch/types.js';

/** A received frame: a copy, plus what the switch handed over. */
export interface Got {
  bytes: Uint8Array;
  buf: Uint8Array;
  off: number;
}

/** A port that records every frame and reports congestion on demand. */
export class FakePort implements FramePort {
  readonly got: Got[] = [];
  congested = false;
  sendFrame(buf: Uint8Array, off: number, len: number, view: DataView): unknown {
    expect(view.buffer).toBe(buf.buffer);
    this.got.push({ bytes: buf.slice(off, off + len), buf, off });
    return !this.congested;
  }
  isCongested(): boolean {
    return this.congested;
  }
  clear(): void {
    this.got.length = 0;
  }
}

/** A sender port that honours backpressure (the gateway's kind) and records its call-backs. */
export class AwarePort extends FakePort {
  drains = 0;
  onDrained: () => void = () => {};
  drained(): void {
    this.drains++;
    this.onDrained();
  }
}

/**
 * A port that builds in place as StreamPort does: one output buffer of
 * length-prefixed frames, where a frame is copied (sendFrame) or built and
 * committed (reserveFrame … commitFrame). Records how each frame came.
 */
export class BuildingPort extends FakePort {
  readonly out = new Uint8Array(1 << 20);
  readonly outView = new DataView(this.out.buffer);
  used = 0;
  /** How each frame in `got` arrived. */
  readonly how: Array<'copy' | 'commit'> = [];
  /** false: reserveFrame finds no room. */
  room = true;
  override sendFrame(buf: Uint8Array, off: number, len: number, view: DataView): unknown {
    expect(view.buffer).toBe(buf.buffer);
    this.out.set(buf.subarray(off, off + len), this.used + 4);
    return this.#commit(len, 'copy');
  }
  reserveFrame(maxLen: number): boolean {
    return this.room && this.used + 4 + maxLen <= this.out.length;
  }
  frameBuffer(): Uint8Array {
    return this.out;
  }
  frameView(): DataView {
    return this.outView;
  }
  frameOffset(): number {
    return this.used + 4;
  }
  commitFrame(len: number): unknown {
    return this.#commit(len, 'commit');
  }
  /** Everything sent so far, prefixes included: what the peer would read. */
  output(): Uint8Array {
    return this.out.slice(0, this.used);
  }
  override clear(): void {
    super.clear();
    this.how.length = 0;
  }
  #commit(len: number, how: 'copy' | 'commit'): boolean {
    this.outView.setUint32(this.used, len);
    const off = this.used + 4;
    this.got.push({ bytes: this.out.slice(off, off + len), buf: this.out, off });
    this.how.push(how);
    this.used = off + len;
    return !this.congested;
  }
}

export const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0, (n >>> 8) & 0xff, n & 0xff);
export const BCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);
export const MCAST = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);

export interface FrameSpec {
  dst: Uint8Array;
  src: Uint8Array;
  /** Tag VID (0 = priority tag); absent: untagged. */
  vlan?: number;
  pcp?: number;
  /** EtherType after the tag(s); default IPv4. */
  type?: number;
  /** Tags after the first one, outermost first: TPID and VID each. */
  inner?: Array<{ tpid: number; vid: number }>;
  /** Payload length, default 46. */
  payload?: number;
  /** First payload byte, to tell frames apart. */
  mark?: number;
}

/** Builds one frame exactly (no slack after it). */
export function frame(f: FrameSpec): Uint8Array {
  const h = eth.blank();
  h.dst.set(f.dst);
  h.src.set(f.src);
  h.vlan = f.vlan ?? -1;
  h.pcp = f.pcp ?? 0;
  const inner = f.inner ?? [];
  h.ethertype = inner.length > 0 ? inner[0]!.tpid : (f.type ?? eth.ETHERTYPE_IPV4);
  const hl = eth.length(h);
  const b = new Uint8Array(hl + 4 * inner.length + (f.payload ?? 46));
  const v = new DataView(b.buffer);
  eth.emit(h, v, 0);
  let p = hl;
  for (let i = 0; i < inner.length; i++) {
    v.setUint16(p, inner[i]!.vid);
    v.setUint16(p + 2, i + 1 < inner.length ? inner[i + 1]!.tpid : (f.type ?? eth.ETHERTYPE_IPV4));
    p += 4;
  }
  for (let i = p; i < b.length; i++) b[i] = (i * 7 + (f.mark ?? 0)) & 0xff;
  if (b.length > p) b[p] = f.mark ?? 0;
  return b;
}

/** Parses what a port got: VLAN tag (-1 untagged), source, destination. */
export function parse(b: Uint8Array): eth.Header {
  const h = eth.blank();
  expect(eth.parse(new DataView(b.buffer, b.byteOffset, b.byteLength), 0, b.length, h)).toBe(true);
  return h;
}

export interface Rig {
  sw: Switch;
  clock: { t: number };
  add: (cfg?: PortConfig) => [SwitchPort, FakePort];
  /** Feeds a frame; returns what input() returned. */
  send: (p: SwitchPort, b: Uint8Array) => boolean;
}

/** A switch on a fake clock (starting at 1000 ms) with FakePorts. */
export function setup(opts: SwitchOptions = {}): Rig {
  const clock = { t: 1000 };
  const sw = new Switch({ now: () => clock.t, ...opts });
  const add = (cfg?: PortConfig): [SwitchPort, FakePort] => {
    const fp = new FakePort();
    return [sw.addPort(fp, cfg), fp];
  };
  const send = (p: SwitchPort, b: Uint8Array): boolean => sw.input(p, b, new DataView(b.buffer, b.byteOffset, b.byteLength), 0, b.length);
  return { sw, clock, add, send };
}

/** A frame of the local experimental EtherType 0x88b5 whose first payload byte is `mark`. */
export const marked = (dst: Uint8Array, src: Uint8Array, mark: number, vlan = -1): Uint8Array =>
  frame({ dst, src, vlan: vlan >= 0 ? vlan : undefined, type: 0x88b5, payload: 50, mark });

/** The VID of a received frame's tag, or -1 when untagged. */
export const vlanOf = (b: Uint8Array): number => (b[12] === 0x81 && b[13] === 0 ? ((b[14]! << 8) | b[15]!) & 0xfff : -1);
/** The mark of a frame built by {@link marked}, whichever form it arrived in. */
export const markOf = (b: Uint8Array): number => b[vlanOf(b) >= 0 ? 18 : 14]!;

/** A raw QEMU-stream connection to a switch socket, keeping a copy of every frame it gets. */
export interface StreamClient {
  port: StreamPort;
  got: Uint8Array[];
  send(b: Uint8Array): void;
}

/**
 * Connects to a switch (or gateway) socket.
 * @param cleanups gets the close call
 */
export async function streamClient(path: string, cleanups: Array<() => unknown>): Promise<StreamClient> {
  const port = await connectStream({ path });
  const got: Uint8Array[] = [];
  port.onFrame = (buf, _v, off, len) => got.push(new Uint8Array(buf.subarray(off, off + len))); // a copy: Buffer#slice would not copy
  cleanups.push(() => port.close());
  return { port, got, send: (b) => port.sendFrame(b, 0, b.length) };
}

/** Polls `cond` every 5 ms; throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
