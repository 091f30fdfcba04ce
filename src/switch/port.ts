/**
 * Theory of operation: one port of the switch engine (switch.ts) and the
 * state the engine keeps per port: its role turned into lookups (access
 * VLAN, PVID, the allowed-VLAN bitmap), its counters, its loop-guard state,
 * its backpressure bookkeeping and the last source and destination entries
 * it saw. The engine hands it out as a {@link SwitchPort}; only the engine
 * writes to it.
 */
import type { Holder } from './backpressure.js';
import { newDrops, type PortCounters } from './counters.js';
import type { Entry } from './fdb.js';
import type { BlockInfo, PortGuard } from './loop-guard.js';
import type { EgressHook, FramePort, SwitchPort } from './types.js';
import { MAX_VID, type NormalRole } from './vlan.js';

/** A port of the engine (the engine's own view of a {@link SwitchPort}). */
export class Port implements SwitchPort, Holder {
  readonly counters: PortCounters = {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
    txNestedTag: 0,
    flooded: 0,
    learnRefused: 0,
    moves: 0,
    blocks: 0,
    macBlocks: 0,
    stormSourcesFull: 0,
    drops: newDrops(),
  };
  macCount = 0;
  attached = true;
  /** Access VLAN, or 0 on a trunk. */
  readonly access: number;
  /** VLAN of untagged ingress (access VLAN or native), or 0 for none. */
  readonly pvid: number;
  /** Trunk: allowed[vid] === 1 for carried VLANs (native included). Access: null. */
  readonly allowed: Uint8Array | null;
  /** The sink has drained(): a sender that honours backpressure. */
  readonly aware: boolean;
  /** The sink has all five of the in-place building methods (reserveFrame … commitFrame): a cut-through target. */
  readonly buildsInPlace: boolean;
  // Backpressure bookkeeping (backpressure.ts).
  waiters: Port[] = [];
  onQueue = false;
  notifyQueued = false;
  /** Bytes handed over while congested, since the last drain. */
  overshoot = 0;
  /** Of `overshoot`, the bytes from senders that honour backpressure (their own `reentrantBytes` allowance). */
  awareOvershoot = 0;
  /** The entries of the last source and destination MACs seen on this port (checked before use). */
  lastSrc: Entry<Port> | null = null;
  lastDst: Entry<Port> | null = null;
  /** Link faults (switch.ts, "Link faults"): frames for this port go here instead of to the sink, or null. */
  egressHook: EgressHook | null = null;

  constructor(
    /** The engine it belongs to (checked on every call that takes a port). */
    readonly owner: object,
    readonly id: number,
    readonly name: string,
    readonly role: NormalRole,
    readonly sink: FramePort,
    readonly maxMacs: number,
    readonly guard: PortGuard,
    readonly stormLimit: boolean,
    /** PortConfig.queueBytes: what ordinary senders may hand the port past congestion. */
    readonly queueBytes: number,
  ) {
    guard.counters = this.counters;
    if ('vlan' in role) {
      this.access = role.vlan;
      this.pvid = role.vlan;
      this.allowed = null;
    } else {
      this.access = 0;
      this.pvid = role.native ?? 0;
      this.allowed = new Uint8Array(MAX_VID + 2);
      for (const v of role.trunk) this.allowed[v] = 1;
      if (this.pvid !== 0) this.allowed[this.pvid] = 1;
    }
    this.aware = typeof sink.drained === 'function';
    this.buildsInPlace = [sink.reserveFrame, sink.frameBuffer, sink.frameView, sink.frameOffset, sink.commitFrame].every((f) => typeof f === 'function');
  }

  get blocked(): BlockInfo | null {
    return this.guard.blocked;
  }

  /** VLANs this port is a member of. */
  vlans(): number[] {
    if (this.allowed === null) return [this.access];
    const out: number[] = [];
    for (let v = 1; v <= MAX_VID; v++) if (this.allowed[v] === 1) out.push(v);
    return out;
  }
}
