/**
 * Theory of operation: a sans-IO learning Ethernet switch with 802.1Q VLANs
 * (IEEE 802.1Q-2018 §8.6 "The forwarding process", in the small).
 *
 * Ports. A port is anything with `sendFrame(buf, off, len)` (a StreamPort, or
 * an in-process peer such as the gateway) plus a role fixed when it is added:
 * - access VLAN N (1..4094), the default being access VLAN 1, "the untagged
 *   network": frames arrive untagged and belong to N; frames of N leave
 *   untagged. A frame arriving with an 802.1Q tag (TPID 0x8100) is dropped
 *   (`taggedOnAccess`), except a priority tag (VID 0, §6.9.1), which means
 *   "untagged, with a priority" and is accepted as VLAN N.
 * - trunk: an allowed set of VLANs, plus optionally a native VLAN (the PVID).
 *   Tagged frames of an allowed VLAN belong to it; other VIDs, and VID 4095,
 *   are dropped (`vlanNotAllowed`). Untagged (and priority-tagged) frames
 *   belong to the native VLAN, or are dropped (`untaggedOnTrunk`) without one.
 *   Frames leave a trunk tagged with their VLAN, except native-VLAN frames,
 *   which leave untagged. The native VLAN is always a member, allowed or not,
 *   and a frame tagged with the native VID is accepted too.
 * A port only ever exchanges frames with ports of the same VLAN: the VLAN is
 * decided once at ingress and every later step (learning, lookup, flooding)
 * is scoped by it, so access 10 and access 20 never see each other's frames,
 * broadcasts included.
 *
 * Ingress checks, in order, each drop counted on the ingress port and the
 * switch: shorter than 14 bytes, or 18 when tagged (`runt`); longer than
 * MTU + 14 once any tag is set aside (`oversize`; so the tagged form is at
 * most MTU + 18, the "max frame"); the VLAN rules above; a group (multicast
 * or broadcast) or all-zero source MAC (`badSource`; such a source can never
 * be a destination, so it is not learned and the frame is dropped, as the
 * Linux bridge does). Nothing here throws on guest bytes.
 *
 * Learning. The filtering database maps (VLAN, MAC) → port; one Map per VLAN
 * keyed by `macKey` (48 bits fit a double exactly; 12 more would not).
 * Entries age out `ageingMs` (default 300 s, §8.8.3) after the source was
 * last seen; time comes from the injected `now()`. Expired entries are
 * ignored at lookup (and deleted there) and reclaimed by {@link Switch.sweep}.
 * A MAC seen on another port than its entry moves there (counted in `moves`).
 * The table is bounded twice: `maxEntries` per switch (default 4096) and
 * `maxMacsPerPort` (default 1024) so one port flooding random source MACs
 * cannot crowd the others out. When a bound is reached, new MACs are simply
 * not learned (`learnRefused` on the port; `tableFull` / `portLimit` on the
 * switch); live entries are never evicted, frames keep flowing (flooded), and
 * a MAC that moves to a port at its limit loses its old entry rather than
 * keep pointing at the wrong port. A full table triggers an early sweep of
 * expired entries at most once a second.
 *
 * Forwarding. A unicast destination known in the frame's VLAN goes to that
 * one port, unless it is the ingress port itself: then the frame is dropped
 * (`filtered`, the destination already heard it). Group and unknown unicast
 * destinations are flooded to every other member of the VLAN (`flooded`). A
 * frame never goes back out of its ingress port. An egress port whose
 * `isCongested()` reports true gets the frame dropped (`txDropped`): the
 * switch is a tail-drop queue, not an unbounded buffer. A port whose
 * `sendFrame` throws is counted (`txErrors`) and the frame goes on to the rest.
 *
 * Zero copy. Every egress port receives either the frame's untagged or its
 * tagged form. Whichever form equals the ingress bytes is passed as is (the
 * same buffer and offset to every port; `sendFrame` must copy, as
 * StreamPort's does, or finish with the bytes before returning). The other
 * form is written once per frame, on first need, into a scratch buffer
 * preallocated at construction; later ports reuse it. A priority-tagged
 * frame matches neither form, so both may be written (two scratch halves).
 * Egress ports also get a DataView covering `buf` as a fourth argument, so an
 * in-process peer can parse without making one, and the ingress port as a
 * fifth, so the gateway knows which link a guest's frame came from.
 *
 * Tap. If `tap` is set, each frame that passed the ingress checks is
 * recorded exactly once, after learning and before forwarding, in its tagged
 * form: with an 802.1Q tag carrying its VLAN (VLAN 1 included; PCP and DEI
 * as received, else 0), whatever its ingress and egress forms. So a capture
 * shows every VLAN's traffic once, marked by VLAN (`tcpdump -r F 'vlan 10'`;
 * note that plain filters such as `icmp` need `vlan and icmp`). Frames
 * dropped at ingress are not recorded; filtered frames and frames with no
 * other member to go to are.
 *
 * Reentrancy. An in-process port may answer from inside its `sendFrame`
 * (the gateway replies to an ARP request synchronously) by calling
 * {@link Switch.input} again. That inner frame is copied to a small queue
 * (at most 256 frames, else dropped and counted) and processed when the
 * outer frame is done, so the scratch buffer and per-frame state are never
 * overwritten mid-flood and frames keep their order.
 */

import { formatMac, macKey } from '../wire/addr.js';
import * as eth from '../wire/ethernet.js';
import { VmnetError } from '../errors.js';

/** Where the switch sends frames: a StreamPort, or an in-process peer. */
export interface FramePort {
  /**
   * Sends one frame. The bytes are lent: copy them before returning.
   * @param view a DataView covering all of `buf` (extra, optional to use)
   * @param from the port the frame came in on (the gateway keys guests on it)
   */
  sendFrame(buf: Uint8Array, off: number, len: number, view: DataView, from: SwitchPort): unknown;
  /** Optional: true while the port's queue is full; frames to it are then dropped. */
  isCongested?(): boolean;
}

/** Optional frame tap (a PcapWriter fits). */
export interface FrameTap {
  record(buf: Uint8Array, off: number, len: number, timeMs: number): unknown;
}

/** The VLAN role of a port: access (untagged) VLAN, or a trunk. */
export type PortRole = { vlan: number } | { trunk: readonly number[]; native?: number };

/** A normalised role: trunk VLANs sorted and unique. */
export type NormalRole = { vlan: number } | { trunk: number[]; native?: number };

/** Per-port configuration. */
export interface PortConfig {
  /** VLAN role; default `{ vlan: 1 }`. */
  role?: PortRole;
  /** Label for snapshots and logs; default `port<id>`. */
  name?: string;
  /** Most MACs learned on this port; default the switch's `maxMacsPerPort`. */
  maxMacs?: number;
}

/** Options of {@link Switch}. */
export interface SwitchOptions {
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
  /** Largest payload after the Ethernet header (and tag); default 1500. Max frame = mtu + 18. */
  mtu?: number;
  /** Frame tap (see Theory of operation). */
  tap?: FrameTap | null;
}

/** Why an ingress frame was dropped. Counted per port and per switch. */
export interface DropCounters {
  /** Shorter than 14 bytes (18 when tagged). */
  runt: number;
  /** Longer than mtu + 14 without its tag. */
  oversize: number;
  /** Tagged (VID ≠ 0) frame on an access port. */
  taggedOnAccess: number;
  /** Tagged with a VID the trunk does not carry (or 4095). */
  vlanNotAllowed: number;
  /** Untagged frame on a trunk without a native VLAN. */
  untaggedOnTrunk: number;
  /** Group or all-zero source MAC. */
  badSource: number;
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
  /** Frames whose `sendFrame` threw. */
  txErrors: number;
  /** Received frames that were flooded (group or unknown destination). */
  flooded: number;
  /** New source MACs not learned (port limit or full table). */
  learnRefused: number;
  /** MACs that moved to this port from another. */
  moves: number;
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
  /** Tap `record` calls that threw (the frame is forwarded anyway). */
  tapErrors: number;
  /** Ingress drops of all ports, by reason. */
  drops: DropCounters;
}

/** One filtering-database entry, as {@link Switch.table} reports it. */
export interface TableEntry {
  vlan: number;
  mac: string;
  /** Port id. */
  port: number;
  /** Milliseconds since the MAC was last seen. */
  ageMs: number;
}

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
}

const DEFAULT_AGEING_MS = 300_000;
const DEFAULT_MAX_ENTRIES = 4096;
const DEFAULT_MAX_MACS_PER_PORT = 1024;
const DEFAULT_MTU = 1500;
const MAX_MTU = 65535;
const REENTRANT_QUEUE_MAX = 256;
const FULL_SWEEP_INTERVAL_MS = 1000;
const MAX_VID = 4094;

const newDrops = (): DropCounters => ({
  runt: 0,
  oversize: 0,
  taggedOnAccess: 0,
  vlanNotAllowed: 0,
  untaggedOnTrunk: 0,
  badSource: 0,
  filtered: 0,
});

const isVid = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_VID;

/**
 * Validates and normalises a role.
 * @throws VmnetError E_USAGE for VLAN ids outside 1..4094 or an empty trunk
 */
export function normaliseRole(role: PortRole | undefined): NormalRole {
  if (role === undefined) return { vlan: 1 };
  if ('vlan' in role) {
    if (!isVid(role.vlan)) throw new VmnetError('E_USAGE', `bad access VLAN ${String(role.vlan)}: give 1..4094`);
    return { vlan: role.vlan };
  }
  if (!Array.isArray(role.trunk)) throw new VmnetError('E_USAGE', 'a trunk needs a list of VLANs');
  for (const v of role.trunk) if (!isVid(v)) throw new VmnetError('E_USAGE', `bad trunk VLAN ${String(v)}: give 1..4094`);
  const trunk = [...new Set(role.trunk)].sort((a, b) => a - b);
  if (role.native !== undefined) {
    if (!isVid(role.native)) throw new VmnetError('E_USAGE', `bad native VLAN ${String(role.native)}: give 1..4094`);
    return { trunk, native: role.native };
  }
  if (trunk.length === 0) throw new VmnetError('E_USAGE', 'a trunk needs at least one VLAN or a native VLAN');
  return { trunk };
}

/** Formats a role as text: `access 10`, `trunk 10,20 native 1`. */
export function formatRole(role: NormalRole): string {
  if ('vlan' in role) return `access ${role.vlan}`;
  return `trunk ${role.trunk.join(',') || '-'}${role.native !== undefined ? ` native ${role.native}` : ''}`;
}

class Port implements SwitchPort {
  readonly counters: PortCounters = {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
    flooded: 0,
    learnRefused: 0,
    moves: 0,
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

  constructor(
    readonly owner: Switch,
    readonly id: number,
    readonly name: string,
    readonly role: NormalRole,
    readonly sink: FramePort,
    readonly maxMacs: number,
  ) {
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
  }

  /** VLANs this port is a member of. */
  vlans(): number[] {
    if (this.allowed === null) return [this.access];
    const out: number[] = [];
    for (let v = 1; v <= MAX_VID; v++) if (this.allowed[v] === 1) out.push(v);
    return out;
  }
}

interface Entry {
  port: Port;
  seen: number;
  readonly vlan: number;
  readonly key: number;
}

interface Pending {
  port: Port;
  buf: Uint8Array;
  view: DataView;
}

/**
 * The switch engine: feed it frames with {@link Switch.input}; it calls the
 * egress ports' `sendFrame` synchronously. See Theory of operation.
 */
export class Switch {
  readonly counters: SwitchCounters = {
    frames: 0,
    bytes: 0,
    forwarded: 0,
    flooded: 0,
    learned: 0,
    moves: 0,
    aged: 0,
    tableFull: 0,
    portLimit: 0,
    reentrantQueued: 0,
    reentrantDropped: 0,
    tapErrors: 0,
    drops: newDrops(),
  };
  /** Largest payload behind the header and tag. */
  readonly mtu: number;
  /** Largest frame in its tagged form: mtu + 18. */
  readonly maxFrame: number;
  readonly ageingMs: number;
  readonly maxEntries: number;
  readonly maxMacsPerPort: number;

  readonly #now: () => number;
  readonly #wallNow: () => number;
  readonly #tap: FrameTap | null;
  readonly #ports = new Map<number, Port>();
  #nextId = 1;
  /** Filtering database, one map per VLAN id. */
  readonly #fdb: Array<Map<number, Entry> | undefined> = new Array<Map<number, Entry> | undefined>(MAX_VID + 2);
  #entries = 0;
  #lastFullSweep = -Infinity;
  /** Members of each VLAN; each array is replaced, never mutated, so floods can iterate safely. */
  readonly #members: Array<readonly Port[] | undefined> = new Array<readonly Port[] | undefined>(MAX_VID + 2);

  // Scratch for rewritten forms: tagged at [0, half), untagged at [half, 2·half).
  readonly #scratch: Uint8Array;
  readonly #scratchView: DataView;
  readonly #half: number;

  // The frame being forwarded (valid inside #process only).
  #buf: Uint8Array = new Uint8Array(0);
  #view: DataView = new DataView(new ArrayBuffer(0));
  #off = 0;
  #len = 0;
  #vlan = 0;
  /** 0 untagged ingress; otherwise the received TCI (≠ 0 VID, or a priority tag). */
  #inTagged = false;
  #inTci = 0;
  /** The current frame's ingress port (handed to egress ports). */
  #inPort: Port | null = null;
  #haveTagged = false;
  #haveUntagged = false;

  #busy = false;
  readonly #pending: Pending[] = [];

  constructor(options: SwitchOptions = {}) {
    const mtu = options.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 46 || mtu > MAX_MTU) throw new VmnetError('E_USAGE', `bad switch MTU ${mtu}: give 46..${MAX_MTU}`);
    this.mtu = mtu;
    this.maxFrame = mtu + eth.HEADER_LEN + eth.VLAN_TAG_LEN;
    this.ageingMs = positive(options.ageingMs, DEFAULT_AGEING_MS, 'ageingMs');
    this.maxEntries = positive(options.maxEntries, DEFAULT_MAX_ENTRIES, 'maxEntries');
    this.maxMacsPerPort = positive(options.maxMacsPerPort, DEFAULT_MAX_MACS_PER_PORT, 'maxMacsPerPort');
    this.#now = options.now ?? (() => performance.now());
    this.#wallNow = options.wallNow ?? Date.now;
    this.#tap = options.tap ?? null;
    this.#half = this.maxFrame + eth.VLAN_TAG_LEN;
    this.#scratch = new Uint8Array(2 * this.#half);
    this.#scratchView = new DataView(this.#scratch.buffer);
  }

  /**
   * Adds a port.
   * @param sink where frames for the port go
   * @param config role (default access VLAN 1), name, MAC limit
   * @returns the port handle to pass to {@link input} and {@link removePort}
   * @throws VmnetError E_USAGE for a bad role or limit
   */
  addPort(sink: FramePort, config: PortConfig = {}): SwitchPort {
    const role = normaliseRole(config.role);
    const id = this.#nextId++;
    const maxMacs = positive(config.maxMacs, this.maxMacsPerPort, 'maxMacs');
    const p = new Port(this, id, config.name ?? `port${id}`, role, sink, maxMacs);
    this.#ports.set(id, p);
    for (const v of p.vlans()) this.#members[v] = [...(this.#members[v] ?? []), p];
    return p;
  }

  /**
   * Removes a port and forgets the MACs learned on it. Idempotent; frames
   * given to {@link input} for it afterwards are ignored.
   */
  removePort(port: SwitchPort): void {
    const p = this.#own(port);
    if (!p.attached) return;
    p.attached = false;
    this.#ports.delete(p.id);
    for (const v of p.vlans()) {
      const left = (this.#members[v] ?? []).filter((m) => m !== p);
      this.#members[v] = left.length > 0 ? left : undefined;
      const map = this.#fdb[v];
      if (map === undefined) continue;
      for (const [k, e] of map) {
        if (e.port === p) {
          map.delete(k);
          this.#entries--;
        }
      }
    }
    p.macCount = 0;
  }

  /** Ports currently attached, in id order. */
  ports(): SwitchPort[] {
    return [...this.#ports.values()];
  }

  /** Entries in the filtering database (including expired ones not yet swept). */
  get size(): number {
    return this.#entries;
  }

  /**
   * Receives one frame from `port`. Never throws on frame contents.
   * @param port the ingress port
   * @param buf holds the frame; lent for the duration of the call
   * @param view a DataView covering all of `buf`
   * @param off frame start
   * @param len frame length (no FCS)
   */
  input(port: SwitchPort, buf: Uint8Array, view: DataView, off: number, len: number): void {
    const p = this.#own(port);
    if (!p.attached) return;
    if (this.#busy) {
      this.#defer(p, buf, off, len);
      return;
    }
    this.#busy = true;
    try {
      this.#process(p, buf, view, off, len);
      let next: Pending | undefined;
      while ((next = this.#pending.shift()) !== undefined) {
        if (next.port.attached) this.#process(next.port, next.buf, next.view, 0, next.buf.length);
      }
    } finally {
      this.#busy = false;
      this.#pending.length = 0;
      this.#buf = this.#scratch; // let go of the caller's buffer
      this.#view = this.#scratchView;
      this.#inPort = null;
    }
  }

  /**
   * Deletes entries older than the ageing time.
   * @returns the number of entries removed
   */
  sweep(): number {
    const now = this.#now();
    let n = 0;
    for (let v = 1; v <= MAX_VID; v++) {
      const map = this.#fdb[v];
      if (map === undefined) continue;
      for (const [k, e] of map) {
        if (now - e.seen >= this.ageingMs) {
          map.delete(k);
          this.#forget(e);
          this.counters.aged++;
          n++;
        }
      }
      if (map.size === 0) this.#fdb[v] = undefined;
    }
    return n;
  }

  /** A snapshot of the live entries, ordered by VLAN then MAC. */
  table(): TableEntry[] {
    const now = this.#now();
    const out: TableEntry[] = [];
    for (let v = 1; v <= MAX_VID; v++) {
      const map = this.#fdb[v];
      if (map === undefined) continue;
      const rows: Array<[number, Entry]> = [];
      for (const [k, e] of map) if (now - e.seen < this.ageingMs) rows.push([k, e]);
      rows.sort((a, b) => a[0] - b[0]);
      for (const [k, e] of rows) out.push({ vlan: v, mac: macText(k), port: e.port.id, ageMs: now - e.seen });
    }
    return out;
  }

  /**
   * Looks up where a MAC was learned.
   * @returns the port, or null when unknown or aged out
   */
  lookup(vlan: number, mac: Uint8Array, off = 0): SwitchPort | null {
    const e = this.#fdb[vlan]?.get(macKey(mac, off));
    return e !== undefined && this.#now() - e.seen < this.ageingMs ? e.port : null;
  }

  #own(port: SwitchPort): Port {
    if (!(port instanceof Port) || port.owner !== this) throw new VmnetError('E_USAGE', 'port does not belong to this switch');
    return port;
  }

  #defer(p: Port, buf: Uint8Array, off: number, len: number): void {
    if (this.#pending.length >= REENTRANT_QUEUE_MAX || len < 0 || off < 0 || off + len > buf.length) {
      this.counters.reentrantDropped++;
      return;
    }
    const copy = new Uint8Array(len);
    copy.set(buf.subarray(off, off + len));
    this.#pending.push({ port: p, buf: copy, view: new DataView(copy.buffer) });
    this.counters.reentrantQueued++;
  }

  #process(p: Port, buf: Uint8Array, view: DataView, off: number, len: number): void {
    const pc = p.counters;
    const sc = this.counters;
    pc.rxFrames++;
    pc.rxBytes += len;
    sc.frames++;
    sc.bytes += len;

    // --- classify (802.1Q §8.6.1 ingress) ---
    if (len < eth.HEADER_LEN) return this.#dropIn(p, 'runt');
    let vlan: number;
    let tagged = false;
    let tci = 0;
    if (view.getUint16(off + eth.TYPE) === eth.ETHERTYPE_VLAN) {
      if (len < eth.HEADER_LEN + eth.VLAN_TAG_LEN) return this.#dropIn(p, 'runt');
      if (len - eth.VLAN_TAG_LEN > this.mtu + eth.HEADER_LEN) return this.#dropIn(p, 'oversize');
      tagged = true;
      tci = view.getUint16(off + eth.TYPE + 2);
      const vid = tci & 0x0fff;
      if (vid === 0) {
        // Priority tag: untagged for VLAN purposes.
        vlan = p.pvid;
        if (vlan === 0) return this.#dropIn(p, 'untaggedOnTrunk');
      } else if (p.allowed === null) {
        return this.#dropIn(p, 'taggedOnAccess');
      } else if (p.allowed[vid] !== 1) {
        return this.#dropIn(p, 'vlanNotAllowed');
      } else {
        vlan = vid;
      }
    } else {
      if (len > this.mtu + eth.HEADER_LEN) return this.#dropIn(p, 'oversize');
      vlan = p.pvid;
      if (vlan === 0) return this.#dropIn(p, 'untaggedOnTrunk');
    }
    const s = off + eth.SRC;
    if ((buf[s]! & 1) === 1 || (buf[s]! | buf[s + 1]! | buf[s + 2]! | buf[s + 3]! | buf[s + 4]! | buf[s + 5]!) === 0) {
      return this.#dropIn(p, 'badSource');
    }

    // --- learn ---
    const now = this.#now();
    this.#learn(p, vlan, macKey(buf, s), now);

    // --- per-frame forwarding state ---
    this.#buf = buf;
    this.#view = view;
    this.#off = off;
    this.#len = len;
    this.#vlan = vlan;
    this.#inTagged = tagged;
    this.#inTci = tci;
    this.#inPort = p;
    this.#haveTagged = false;
    this.#haveUntagged = false;

    if (this.#tap !== null) {
      try {
        if (tagged && (tci & 0x0fff) === vlan) this.#tap.record(buf, off, len, this.#wallNow());
        else this.#tap.record(this.#scratch, 0, this.#taggedForm(), this.#wallNow());
      } catch {
        sc.tapErrors++;
      }
    }

    // --- forward (§8.6.3 filtering, §8.6.6 queuing) ---
    if ((buf[off]! & 1) === 0) {
      const map = this.#fdb[vlan];
      const e = map?.get(macKey(buf, off));
      if (e !== undefined) {
        if (now - e.seen < this.ageingMs) {
          if (e.port === p) return this.#dropIn(p, 'filtered');
          sc.forwarded++;
          this.#egress(e.port);
          return;
        }
        map!.delete(e.key);
        this.#forget(e);
        sc.aged++;
      }
    }
    sc.flooded++;
    pc.flooded++;
    const members = this.#members[vlan];
    if (members === undefined) return;
    for (const m of members) if (m !== p && m.attached) this.#egress(m);
  }

  #dropIn(p: Port, reason: keyof DropCounters): void {
    p.counters.drops[reason]++;
    this.counters.drops[reason]++;
  }

  #learn(p: Port, vlan: number, key: number, now: number): void {
    let map = this.#fdb[vlan];
    const e = map?.get(key);
    if (e !== undefined) {
      if (e.port === p) {
        e.seen = now;
        return;
      }
      // Moved (or an expired entry of another port): rebind if this port may learn more.
      if (p.macCount >= p.maxMacs) {
        map!.delete(key);
        this.#forget(e);
        p.counters.learnRefused++;
        this.counters.portLimit++;
        return;
      }
      if (now - e.seen < this.ageingMs) {
        p.counters.moves++;
        this.counters.moves++;
      }
      e.port.macCount--;
      e.port = p;
      e.seen = now;
      p.macCount++;
      return;
    }
    if (p.macCount >= p.maxMacs) {
      p.counters.learnRefused++;
      this.counters.portLimit++;
      return;
    }
    if (this.#entries >= this.maxEntries) {
      if (now - this.#lastFullSweep >= FULL_SWEEP_INTERVAL_MS) {
        this.#lastFullSweep = now;
        this.sweep();
        map = this.#fdb[vlan];
      }
      if (this.#entries >= this.maxEntries) {
        p.counters.learnRefused++;
        this.counters.tableFull++;
        return;
      }
    }
    if (map === undefined) {
      map = new Map();
      this.#fdb[vlan] = map;
    }
    map.set(key, { port: p, seen: now, vlan, key });
    p.macCount++;
    this.#entries++;
    this.counters.learned++;
  }

  /** Accounts for an entry already deleted from its map. */
  #forget(e: Entry): void {
    e.port.macCount--;
    this.#entries--;
  }

  /** Writes the tagged form into scratch[0..) once per frame; returns its length. */
  #taggedForm(): number {
    const len = this.#inTagged ? this.#len : this.#len + eth.VLAN_TAG_LEN;
    if (this.#haveTagged) return len;
    const d = this.#scratch;
    const b = this.#buf;
    const o = this.#off;
    for (let i = 0; i < 12; i++) d[i] = b[o + i]!;
    this.#scratchView.setUint16(12, eth.ETHERTYPE_VLAN);
    this.#scratchView.setUint16(14, (this.#inTci & 0xf000) | this.#vlan);
    const from = this.#inTagged ? o + 16 : o + 12;
    copy(d, 16, b, from, o + this.#len - from);
    this.#haveTagged = true;
    return len;
  }

  /** Writes the untagged form into scratch[half..) once per frame; returns its length. */
  #untaggedForm(): number {
    const len = this.#len - eth.VLAN_TAG_LEN; // only called for tagged ingress
    if (this.#haveUntagged) return len;
    const d = this.#scratch;
    const b = this.#buf;
    const o = this.#off;
    const h = this.#half;
    for (let i = 0; i < 12; i++) d[h + i] = b[o + i]!;
    copy(d, h + 12, b, o + 16, this.#len - 16);
    this.#haveUntagged = true;
    return len;
  }

  #egress(m: Port): void {
    const c = m.counters;
    if (m.sink.isCongested?.() === true) {
      c.txDropped++;
      return;
    }
    const wantTagged = m.access === 0 && m.pvid !== this.#vlan;
    let buf = this.#buf;
    let view = this.#view;
    let off = this.#off;
    let len = this.#len;
    if (wantTagged) {
      if (!this.#inTagged || (this.#inTci & 0x0fff) !== this.#vlan) {
        len = this.#taggedForm();
        buf = this.#scratch;
        view = this.#scratchView;
        off = 0;
      }
    } else if (this.#inTagged) {
      len = this.#untaggedForm();
      buf = this.#scratch;
      view = this.#scratchView;
      off = this.#half;
    }
    try {
      m.sink.sendFrame(buf, off, len, view, this.#inPort!);
    } catch {
      c.txErrors++;
      return;
    }
    c.txFrames++;
    c.txBytes += len;
  }
}

function positive(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new VmnetError('E_USAGE', `bad switch ${what} ${v}: give a positive number`);
  return v;
}

function copy(dst: Uint8Array, at: number, src: Uint8Array, from: number, n: number): void {
  if (n < 64) for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
  else dst.set(src.subarray(from, from + n), at);
}

function macText(key: number): string {
  const b = new Uint8Array(6);
  let k = key;
  for (let i = 5; i >= 0; i--) {
    b[i] = k % 256;
    k = Math.floor(k / 256);
  }
  return formatMac(b);
}
