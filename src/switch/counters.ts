/**
 * Theory of operation: the switch's counters, as plain objects of numbers
 * updated in place on the data path (switch.ts says when each one moves):
 * per port (received, sent, dropped on the way in by reason, held at egress)
 * and for the whole switch (the same drops summed, learning, the reentrant
 * queue, loop protection). Snapshots copy them.
 */

/** Why an ingress frame was dropped. Counted per port and per switch. */
export interface DropCounters {
  /** Shorter than 14 bytes (18 when tagged). */
  runt: number;
  /** Payload over the MTU once the header and up to two tags are set aside. */
  oversize: number;
  /** Tagged (VID ≠ 0) frame on an access port. */
  taggedOnAccess: number;
  /** Tagged with a VID the trunk does not carry (or 4095). */
  vlanNotAllowed: number;
  /** Untagged frame on a trunk without a native VLAN. */
  untaggedOnTrunk: number;
  /** Priority- or native-tagged frame with another VLAN tag behind (VLAN hopping). */
  nestedTag: number;
  /** Group or all-zero source MAC. */
  badSource: number;
  /** Source MAC is a static entry of another port. */
  staticSource: number;
  /** Destination is a reserved link-local address, 01-80-C2-00-00-01..0F. */
  reserved: number;
  /** Received on a blocked port. */
  blocked: number;
  /** Over the storm limit. */
  storm: number;
  /** Source MAC blocked on this port by loop protection (loop-guard.ts, "Shared ports"). */
  macBlocked: number;
  /** Destination learned on the ingress port itself. */
  filtered: number;
}

/** Counters of one port. Plain numbers, updated in place. */
export interface PortCounters {
  /** Frames and bytes received from the port (all, including dropped ones). */
  rxFrames: number;
  rxBytes: number;
  /** Frames and bytes handed to the port's `sendFrame`. */
  txFrames: number;
  txBytes: number;
  /** Frames not sent because the port was congested. */
  txDropped: number;
  /** Frames whose `sendFrame` or `isCongested` threw. */
  txErrors: number;
  /** Frames not sent untagged because that would expose an inner VLAN tag. */
  txNestedTag: number;
  /** Received frames that were flooded (group or unknown destination). */
  flooded: number;
  /** New source MACs not learned (port limit or full table). */
  learnRefused: number;
  /** MACs that moved to this port from another. */
  moves: number;
  /** Times loop protection blocked this port. */
  blocks: number;
  /** MACs loop protection blocked on this (shared) port. */
  macBlocks: number;
  /** Group frames from a source that found the per-source storm table full (shared ports). */
  stormSourcesFull: number;
  /** Received frames dropped, by reason. */
  drops: DropCounters;
}

/** Switch-wide counters. */
export interface SwitchCounters {
  /** Frames and bytes received on all ports. */
  frames: number;
  bytes: number;
  /** Frames forwarded to one known port. */
  forwarded: number;
  /** Frames flooded. */
  flooded: number;
  /** Entries created, moved, aged out. */
  learned: number;
  moves: number;
  aged: number;
  /** New MACs refused because the table was full / the port at its limit. */
  tableFull: number;
  portLimit: number;
  /** Reentrant frames queued / dropped because the queue was full. */
  reentrantQueued: number;
  reentrantDropped: number;
  /** Times input() told a backpressure-aware sender to hold back. */
  heldBack: number;
  /** Frames an in-process port built straight into the output of the port they went to (switch.ts, "Cut-through"). */
  cutThrough: number;
  /** Ports blocked by loop protection. */
  blocks: number;
  /** MACs blocked on shared ports, and flapping moves that found `maxMacBlocks` in place (a port is chosen instead). */
  macBlocks: number;
  macBlocksFull: number;
  /** Tap `record` calls that threw (the frame is forwarded anyway). */
  tapErrors: number;
  /** `onEvent` calls that threw. */
  eventErrors: number;
  /** Ingress drops of all ports, by reason. */
  drops: DropCounters;
}

/** A zeroed set of drop counters. */
export const newDrops = (): DropCounters => ({
  runt: 0,
  oversize: 0,
  taggedOnAccess: 0,
  vlanNotAllowed: 0,
  untaggedOnTrunk: 0,
  nestedTag: 0,
  badSource: 0,
  staticSource: 0,
  reserved: 0,
  blocked: 0,
  storm: 0,
  macBlocked: 0,
  filtered: 0,
});
