/**
 * Theory of operation: the switch engine's contract with what surrounds it
 * (switch.ts has the engine and its Theory of operation): what a port's
 * sink must do ({@link FramePort}), the tap, per-port configuration, the
 * engine's options and events, and the handle a port is known by
 * ({@link SwitchPort}). Types only.
 */
import type { BufferPool } from '../link/stream-framer.js';
import type { PortCounters } from './counters.js';
import type { TableRow } from './fdb.js';
import type { BlockInfo, LoopGuardOptions } from './loop-guard.js';
import type { Switch } from './switch.js';
import type { NormalRole, PortRole } from './vlan.js';

/** Where the switch sends frames: a StreamPort, or an in-process peer. */
export interface FramePort {
  /**
   * Sends one frame. The bytes are lent: copy them before returning.
   * @param view a DataView covering all of `buf` (extra, optional to use)
   * @param from the port the frame came in on (the gateway keys guests on it)
   * @returns false when the port is congested now (StreamPort's contract);
   *   anything else means it is not
   */
  sendFrame(buf: Uint8Array, off: number, len: number, view: DataView, from: SwitchPort): unknown;
  /** Optional: true while the port's queue is full (switch.ts, "Congestion and backpressure"). */
  isCongested?(): boolean;
  /**
   * Optional: marks the port as a sender that honours backpressure. Called
   * after {@link Switch.input} answered false for one of its frames, once
   * the path that was congested has drained.
   */
  drained?(): void;
  /**
   * Optional building in place (StreamPort's): room for a frame of up to
   * `maxLen` bytes at `frameBuffer()[frameOffset()]` (the same bytes through
   * `frameView()`), sent by `commitFrame(len)` (same answer as sendFrame);
   * nothing else may be sent in between. With all five (looked at when the
   * port is added), the switch can build an in-process sender's frame
   * straight into this port's output (switch.ts, "Cut-through").
   * @returns false when there is no room (the frame is then sent a copy)
   */
  reserveFrame?(maxLen: number): boolean;
  frameBuffer?(): Uint8Array;
  frameView?(): DataView;
  frameOffset?(): number;
  commitFrame?(len: number): unknown;
}

/** Takes a port's egress frames in place of its sink (link faults, impair-port.ts); the bytes are lent. */
export type EgressHook = (buf: Uint8Array, view: DataView, off: number, len: number) => void;

/** Optional frame tap (a PcapWriter fits). */
export interface FrameTap {
  record(buf: Uint8Array, off: number, len: number, timeMs: number): unknown;
}

/** Per-port configuration. */
export interface PortConfig {
  /** VLAN role; default `{ vlan: 1 }`. */
  role?: PortRole;
  /** Label for snapshots and logs; default `port<id>`. */
  name?: string;
  /** Most MACs learned on this port; default the switch's `maxMacsPerPort`. */
  maxMacs?: number;
  /** MACs that live on this port for good (static entries in each of its VLANs). */
  staticMacs?: readonly Uint8Array[];
  /** Hold the port to the storm limit (default true; the gateway's port, which forwards nothing, is not). */
  stormLimit?: boolean;
  /** A port many VMs sit behind (a link to another switch, the VXLAN port): loop protection blocks MACs on it rather than the port, and limits group frames per source MAC (loop-guard.ts, "Shared ports"). Default false. */
  shared?: boolean;
  /**
   * Bytes ordinary senders may still hand this port once its sink reports
   * congestion, until it drains (Switch.portDrained); past them, the tail
   * drop. Default 0: the tail drop starts at congestion (a sink with a fixed
   * ring, such as the VXLAN edge, takes nothing more).
   */
  queueBytes?: number;
}

/** Something the switch wants said (the server logs it). */
export type SwitchEvent =
  /** A MAC is flapping between two ports; `port` will be blocked in `inMs` unless it stops (at most one per port per 10 s). */
  | { kind: 'flapping'; port: SwitchPort; other: SwitchPort; mac: string; vlan: number; moves: number; inMs: number }
  | { kind: 'blocked'; port: SwitchPort; other: SwitchPort | null; info: BlockInfo }
  /** A local guest's MAC kept arriving on shared port `port`: its frames are dropped there (and on any port but `home`). */
  | { kind: 'macBlocked'; port: SwitchPort; home: SwitchPort; mac: string; vlan: number; moves: number }
  /** The port's block and `macs` MAC blocks on it were lifted. */
  | { kind: 'unblocked'; port: SwitchPort; macs: number }
  /** Frames dropped by the storm limit since the last such event (at most one per port per 10 s). */
  | { kind: 'storm'; port: SwitchPort; dropped: number };

/** Options of {@link Switch}. */
export interface SwitchOptions extends LoopGuardOptions {
  /** Monotonic milliseconds; default `performance.now()`. */
  now?: () => number;
  /** Wall-clock milliseconds for tap timestamps; default `Date.now()`. */
  wallNow?: () => number;
  /** Ageing time of learned MACs in ms; default 300 000. */
  ageingMs?: number;
  /** Most entries in the filtering database; default 4096. */
  maxEntries?: number;
  /** Most MACs learned per port; default 1024. */
  maxMacsPerPort?: number;
  /** Largest payload after the Ethernet header and tags; default 1500. Max frame = mtu + 22. */
  mtu?: number;
  /** Frame tap (switch.ts, "Tap"). */
  tap?: FrameTap | null;
  /** Receives events; a throw is counted (`eventErrors`) and ignored. */
  onEvent?: (e: SwitchEvent) => void;
  /** Where the reentrant queue's arena comes from (frames built in place land there); see {@link Switch.close}. */
  pool?: BufferPool;
}

/** One filtering-database entry, as {@link Switch.table} reports it. */
export type TableEntry = TableRow;

/** A port of a {@link Switch}, as returned by {@link Switch.addPort}. */
export interface SwitchPort {
  readonly id: number;
  readonly name: string;
  readonly role: NormalRole;
  /** Where frames for this port go. */
  readonly sink: FramePort;
  readonly counters: PortCounters;
  /** MACs currently learned on this port (live or not yet swept). */
  readonly macCount: number;
  /** False once removed. */
  readonly attached: boolean;
  /** Why loop protection blocked it, or null. */
  readonly blocked: BlockInfo | null;
}
