/**
 * Theory of operation: a sans-IO learning Ethernet switch with 802.1Q VLANs
 * (IEEE 802.1Q-2018 §8.6 "The forwarding process", in the small).
 *
 * Ports. A port is anything with `sendFrame(buf, off, len)` (a StreamPort, or
 * an in-process peer such as the gateway) plus a role fixed when it is added
 * (vlan.ts):
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
 * VLAN hopping, the ingress checks and reserved addresses: ingress.ts, which
 * classifies every frame (VLAN, tags) before it is learned or forwarded.
 *
 * Learning. The filtering database (fdb.ts) maps (VLAN, MAC) → port with
 * ageing (default 300 s, §8.8.3), two bounds (`maxEntries`, `maxMacsPerPort`)
 * and static entries that never move. Time comes from the injected `now()`,
 * read once per input() for the frame and everything it sets off (and once
 * per reserveInput() that names a destination, Cut-through); the server's
 * clock reads the system clock once per macrotask (clock.ts). Each port
 * remembers the entries of the last source and destination MAC it saw (a
 * bulk flow repeats them), checked for life before use, so the steady state
 * does no table lookup.
 *
 * Loops. The loop guard (loop-guard.ts) limits each port's group frames
 * (the storm limit; `stormLimit: false` exempts a port that forwards
 * nothing, the gateway's), watches MACs that flap between ports, and blocks
 * one port of a flapping pair, or on a shared port (`shared`: a link to
 * another switch, the VXLAN port) blocks the MAC instead (`macBlocked`
 * drops) and limits group frames per source MAC; {@link Switch.unblock}
 * lifts a block. Events (flapping, blocked, MAC blocked, unblocked, storm
 * drops) go to `onEvent`.
 *
 * Forwarding. A unicast destination known in the frame's VLAN goes to that
 * one port, unless it is the ingress port itself: then the frame is dropped
 * (`filtered`, the destination already heard it). Group and unknown unicast
 * destinations are flooded to every other member of the VLAN (`flooded`). A
 * frame never goes back out of its ingress port and never to a blocked port.
 * A port whose `sendFrame` or `isCongested` throws is counted (`txErrors`)
 * and the frame goes on to the rest.
 *
 * Congestion and backpressure. An egress port whose `isCongested()` reports
 * true gets frames from ordinary ports dropped (`txDropped`) once they have
 * handed it its `queueBytes` (a port option, default 0) since it became
 * congested; its drain ({@link Switch.portDrained}) starts the count again.
 * So the switch is a tail-drop queue, not an unbounded buffer; the switch
 * server gives stream ports 3 MiB (server.ts, "Backpressure"). A port whose
 * sink has `drained()`
 * is a sender that honours backpressure (the gateway): for it the switch
 * behaves as a QEMU socket does on `--net user` (StreamPort). Its frame to a
 * congested port is still handed over, and {@link Switch.input} returns
 * false, "hold back"; once the port drains ({@link Switch.portDrained}, from
 * StreamPort's 'drain'), the switch calls the sender's `drained()`. So the
 * gateway's TCP NAT sees exactly the congestion of the guest's port. Only
 * past a further `reentrantBytes` (1 MiB at MTU 1500) handed to a port by
 * such senders since it became congested does the tail drop apply to them
 * too (an allowance of their own: what ordinary senders handed under
 * `queueBytes` does not use it up, so a VM's bulk stream into a guest's
 * port cannot turn the gateway's segments to that guest into drops): that
 * bounds what a sender that ignores the answer (UDP from the host) can
 * queue, and leaves room for a full reentrant queue worked off into a port
 * that filled meanwhile (a 20 MB download by Linux TCP peaked at ~420 KB).
 *
 * Zero copy. Every egress port receives either the frame's untagged or its
 * tagged form; whichever equals the ingress bytes is passed as is, the
 * other is written once per frame (tag-forms.ts).
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
 * (the gateway replies to an ARP request synchronously, and sends TCP data
 * in answer to a guest's ACK) by calling {@link Switch.input} again. That
 * inner frame is copied into a preallocated queue (frame-queue.ts,
 * `reentrantBytes`, at most 4096 frames; beyond that dropped and counted as
 * `reentrantDropped`), or built there in place ({@link Switch.reserveInput},
 * {@link Switch.commitInput}: the gateway's TCP segments), and processed
 * when the outer frame is done, so the scratch buffer and per-frame state
 * are never overwritten mid-flood and frames keep their order. The queue is
 * part of the backpressure path: once it holds `holdBytes`, input() answers
 * a backpressure-aware sender "hold back", and calls its `drained()` once
 * the queue has been worked off. A frame reserved with its destination (the
 * gateway's data in answer to a guest's ACK) whose destination port is
 * congested right now is answered "hold back" at once too, with `drained()`
 * when that port drains, as that port would answer the sender itself: the
 * queued frame still goes to it (the sender's backlog, within
 * `reentrantBytes`). Before, such frames were answered "go on" up to
 * `holdBytes` per ACK, ACK after ACK, and passed the port's bound: at MTU
 * 65520, 12 of 14 host→guest bench runs lost 61-1,890 frames per 3 s to the
 * tail drop (`txDropped`); none of the 5 since.
 *
 * Link faults. A port may have an egress hook (impair-port.ts): its frames,
 * once the checks above passed and its form (tagged or not) was chosen, go
 * to the hook instead of its sink, counted as sent (`txFrames`), and the
 * hook delays, drops or passes them on (impair.ts counts what it did). Such
 * a port is never a cut-through target. A port without a hook costs one
 * field test per frame.
 *
 * Cut-through. A sender that builds in place may say where the frame is
 * going (`dst` of {@link Switch.reserveInput}: the gateway knows the guest's
 * MAC before it writes a TCP segment). If the switch is idle (nothing being
 * processed, so nothing queued ahead of the frame), `dst` is a unicast MAC
 * known in the sender's untagged VLAN on another attached, unblocked port
 * that is an untagged member of that VLAN too (an access port of it, or a
 * trunk with it native: the frame leaves there as built), that port is not
 * congested and its sink builds in place (StreamPort.reserveFrame) and has
 * room, the frame is built in that port's output instead of the arena:
 * without this, a 64 KiB segment was built in the arena and then copied
 * once more into the port's output, about a tenth of the gateway's CPU per
 * byte on a host→guest transfer at MTU 65520. At commit it is processed as
 * any frame is (ingress checks on the bytes as built, counters, tap,
 * learning, loop guard, lookup); the one difference is that the port it was
 * built in gets `commitFrame(len)` where it would get a copy (counted,
 * `cutThrough`). Whatever the processing decides instead is right as it
 * stands: other ports (a flood; a destination that moved) get copies of the
 * bytes where they lie, and bytes the port is never given are scratch its
 * next frame overwrites. Only a tagged frame could leave for that port in
 * another form, whose copy would overwrite the bytes other ports still need:
 * a tagged frame is moved to the arena first. A frame reserved while the
 * switch is busy is built in the arena, queued behind the ones ahead of it.
 * The common case takes a short way: a frame built as its sender said it
 * would be (untagged, within the MTU, from the source MAC of the sender's
 * last frame, to the MAC it reserved for, both entries live in the sender's
 * untagged VLAN) passes every ingress check as that last frame did and goes
 * to that one port; it is counted, refreshes its source entry and is
 * committed (congestion and backpressure as for any frame), without the
 * checks and the lookup run again. A sender under the storm limit, or a
 * switch with a tap, always takes the whole way.
 */

import { macKey } from '../wire/addr.js';
import * as eth from '../wire/ethernet.js';
import { VmnetError } from '../errors.js';
import { copyBytes } from '../link/stream-framer.js';
import { Backpressure } from './backpressure.js';
import { FrameQueue } from './frame-queue.js';
import { Fdb, MAC_BLOCKED, MOVED, STATIC_ELSEWHERE, macText, type MacBlockRow } from './fdb.js';
import { LoopGuard, type BlockInfo } from './loop-guard.js';
import { newDrops, type DropCounters, type SwitchCounters } from './counters.js';
import { Port } from './port.js';
import type { EgressHook, FramePort, FrameTap, PortConfig, SwitchEvent, SwitchOptions, SwitchPort, TableEntry } from './types.js';
import { classify, type Classified } from './ingress.js';
import { TagForms } from './tag-forms.js';
import { isTpid, MAX_VID, normaliseRole, TPID_CTAG } from './vlan.js';

const DEFAULT_AGEING_MS = 300_000;
const DEFAULT_MAX_ENTRIES = 4096;
const DEFAULT_MAX_MACS_PER_PORT = 1024;
const DEFAULT_MTU = 1500;
const MAX_MTU = 65535;
/** Two tags: the largest frame is mtu + 14 + 8. */
const MAX_TAGS_LEN = 2 * eth.VLAN_TAG_LEN;
const REENTRANT_FRAMES = 4096;
/** At most one storm or flapping report per port in this time. */
const REPORT_MS = 10_000;


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
    heldBack: 0,
    cutThrough: 0,
    blocks: 0,
    macBlocks: 0,
    macBlocksFull: 0,
    tapErrors: 0,
    eventErrors: 0,
    drops: newDrops(),
  };
  /** Largest payload behind the header and tags. */
  readonly mtu: number;
  /** Largest frame: mtu + 22 (header and two tags). */
  readonly maxFrame: number;
  readonly ageingMs: number;
  readonly maxEntries: number;
  readonly maxMacsPerPort: number;
  /** Storm limit and flap detection settings. */
  readonly loopGuard: LoopGuard<Port>;
  /** Reentrant bytes (and bytes into a congested port) at which backpressure-aware senders are told to hold back. */
  readonly holdBytes: number;
  /** Size of the reentrant queue in bytes. */
  readonly reentrantBytes: number;

  readonly #now: () => number;
  readonly #wallNow: () => number;
  readonly #tap: FrameTap | null;
  readonly #onEvent: ((e: SwitchEvent) => void) | null;
  readonly #ports = new Map<number, Port>();
  #nextId = 1;
  readonly #fdb: Fdb<Port>;
  /** Members of each VLAN; each array is replaced, never mutated, so floods can iterate safely. */
  readonly #members: Array<readonly Port[] | undefined> = new Array<readonly Port[] | undefined>(MAX_VID + 2);

  /** The egress forms of the frame being processed (tag-forms.ts). */
  readonly #forms: TagForms;

  /** Ingress classification of the frame being processed (ingress.ts). */
  readonly #class: Classified = { vlan: 0, tagged: false, tci: 0, nested: false, group: false };

  // The frame being forwarded (valid inside #process only).
  #in: Port | null = null;
  /** The ingress port honours backpressure, and was told to hold back. */
  #aware = false;
  #heldBack = false;

  // The reentrant queue (frame-queue.ts), worked off before input() returns.
  #busy = false;
  readonly #queue: FrameQueue<Port>;
  /** Offset and size of the frame being built in place (reserveInput), or -1, and its sender. */
  #reserved = -1;
  #reservedLen = 0;
  #reservedBy: Port | null = null;
  /** The buffer (and view) the reserved frame is built in: the arena, or the cut-through port's output. */
  #reservedBuf: Uint8Array = new Uint8Array(0);
  #reservedView: DataView = new DataView(new ArrayBuffer(0));
  /** The port whose own output the reserved frame is built in (Cut-through), or null: the arena. */
  #cut: Port | null = null;
  /** A frame reserved while busy (built in the arena): the port its `dst` is known on, or null. */
  #queuedFor: Port | null = null;
  /** While that frame is processed: the port it is committed to instead of copied (Cut-through). */
  #cutTo: Port | null = null;
  #closed = false;
  readonly #bp = new Backpressure<Port>();

  /** @throws VmnetError E_USAGE for a bad MTU, bound or loop-guard setting */
  constructor(options: SwitchOptions = {}) {
    const mtu = options.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 46 || mtu > MAX_MTU) throw new VmnetError('E_USAGE', `bad switch MTU ${mtu}: give 46..${MAX_MTU}`);
    this.mtu = mtu;
    this.maxFrame = mtu + eth.HEADER_LEN + MAX_TAGS_LEN;
    this.ageingMs = positive(options.ageingMs, DEFAULT_AGEING_MS, 'ageingMs');
    this.maxEntries = positive(options.maxEntries, DEFAULT_MAX_ENTRIES, 'maxEntries');
    this.maxMacsPerPort = positive(options.maxMacsPerPort, DEFAULT_MAX_MACS_PER_PORT, 'maxMacsPerPort');
    this.loopGuard = new LoopGuard(options);
    this.#now = options.now ?? (() => performance.now());
    this.#wallNow = options.wallNow ?? Date.now;
    this.#tap = options.tap ?? null;
    this.#onEvent = options.onEvent ?? null;
    this.#fdb = new Fdb<Port>(this.ageingMs, this.maxEntries, this.counters, this.loopGuard.maxMacBlocks);
    this.#forms = new TagForms(this.maxFrame);
    this.holdBytes = Math.max(256 * 1024, 4 * this.maxFrame);
    this.reentrantBytes = 4 * this.holdBytes;
    this.#queue = new FrameQueue<Port>(this.reentrantBytes, REENTRANT_FRAMES, options.pool);
  }

  /**
   * Adds a port.
   * @param sink where frames for the port go
   * @param config role (default access VLAN 1), name, MAC limit, static MACs
   * @returns the port handle to pass to {@link input} and {@link removePort}
   * @throws VmnetError E_USAGE for a bad role, limit or static MAC (one that
   *   is already another port's)
   */
  addPort(sink: FramePort, config: PortConfig = {}): SwitchPort {
    const role = normaliseRole(config.role);
    const maxMacs = positive(config.maxMacs, this.maxMacsPerPort, 'maxMacs');
    const id = this.#nextId++;
    const queueBytes = config.queueBytes ?? 0;
    if (!Number.isSafeInteger(queueBytes) || queueBytes < 0) throw new VmnetError('E_USAGE', 'queueBytes must be a non-negative integer');
    const p = new Port(this, id, config.name ?? `port${id}`, role, sink, maxMacs, this.loopGuard.newPort(config.shared === true), config.stormLimit ?? true, queueBytes);
    const vlans = p.vlans();
    for (const m of config.staticMacs ?? []) {
      if (m.length !== 6 || (m[0]! & 1) === 1) throw new VmnetError('E_USAGE', 'a static MAC must be a 6-byte unicast address');
      for (const v of vlans) {
        if (!this.#fdb.addStatic(p, v, macKey(m, 0))) {
          this.#fdb.flush(p, vlans, true);
          throw new VmnetError('E_USAGE', `static MAC ${macText(macKey(m, 0))} already belongs to another port`);
        }
      }
    }
    this.#ports.set(id, p);
    for (const v of vlans) this.#members[v] = [...(this.#members[v] ?? []), p];
    return p;
  }

  /**
   * Removes a port and forgets the MACs on it, static ones included.
   * Idempotent; frames given to {@link input} for it afterwards are ignored.
   * Senders that were holding back because of it are told it drained.
   */
  removePort(port: SwitchPort): void {
    const p = this.#own(port);
    if (!p.attached) return;
    p.attached = false;
    this.#ports.delete(p.id);
    const vlans = p.vlans();
    for (const v of vlans) {
      const left = (this.#members[v] ?? []).filter((m) => m !== p);
      this.#members[v] = left.length > 0 ? left : undefined;
    }
    this.#fdb.flush(p, vlans, true);
    this.#fdb.unblockMacs(p); // MAC blocks on it (loop-guard.ts, "Shared ports") go with it
    this.#bp.release(p);
    if (!this.#busy) this.#bp.notify();
  }

  /** Ports currently attached, in id order. */
  ports(): SwitchPort[] {
    return [...this.#ports.values()];
  }

  /** Entries in the filtering database, static ones included (and expired ones not yet swept). */
  get size(): number {
    return this.#fdb.size;
  }

  /**
   * Receives one frame from `port`. Never throws on frame contents.
   * @param port the ingress port
   * @param buf holds the frame; lent for the duration of the call
   * @param view a DataView covering all of `buf`
   * @param off frame start
   * @param len frame length (no FCS)
   * @returns false when a backpressure-aware port should hold back until its
   *   `drained()` is called (see Theory of operation); true otherwise
   */
  input(port: SwitchPort, buf: Uint8Array, view: DataView, off: number, len: number): boolean {
    const p = this.#own(port);
    if (!p.attached || this.#closed) return true;
    if (this.#busy) return this.#defer(p, buf, off, len);
    return this.#run(p, buf, view, off, len, null);
  }

  /**
   * Processes a frame from `p` while idle, then the frames it set off (the
   * reentrant queue). `to`: the frame was built in to's output (Cut-through);
   * one the sender built as it said it would takes #forwardBuilt.
   */
  #run(p: Port, buf: Uint8Array, view: DataView, off: number, len: number, to: Port | null): boolean {
    this.#busy = true;
    let ok: boolean;
    try {
      const now = this.#now(); // one reading for the frame and everything it sets off
      if (to !== null && this.#asReserved(p, to, buf, view, off, len, now)) {
        ok = this.#forwardBuilt(p, to, buf, view, off, len, now);
      } else {
        this.#cutTo = to;
        ok = this.#process(p, buf, view, off, len, now);
      }
      this.#cutTo = null; // only ever that frame's
      const q = this.#queue;
      for (let i = 0; i < q.length; i++) {
        const from = q.port(i);
        if (from.attached) this.#process(from, q.arena, q.view, q.offset(i), q.size(i), now);
      }
    } finally {
      this.#busy = false;
      this.#cutTo = null;
      this.#queue.clear();
      this.#in = null;
      this.#forms.release(); // let go of the caller's buffer
      this.#bp.releaseQueue();
    }
    this.#bp.notify();
    if (!ok) this.counters.heldBack++;
    return ok;
  }

  /**
   * Room for one frame of up to `maxLen` bytes from `port`, to be built in
   * place (StreamPort's reserveFrame, for an in-process sender): the frame
   * goes at `inputBuffer()[inputOffset()]` (the same bytes through
   * `inputView()`), then {@link commitInput} takes it, with no copy on the
   * way in. That is the reentrant queue's arena, or, when `dst` says where
   * the frame is going and the switch can tell that it will leave as built
   * for one port that builds in place, that port's own output (Cut-through,
   * see Theory of operation). Nothing else may be input in between.
   * @param dst the destination MAC the frame will carry (at offset 0), if known
   * @returns false when the arena is full (send a copy with input(), which counts the drop)
   */
  reserveInput(port: SwitchPort, maxLen: number, dst?: Uint8Array): boolean {
    const p = this.#own(port);
    this.#reservedBy = p;
    this.#reservedLen = maxLen;
    const to = this.#closed || dst === undefined ? null : this.#cutTarget(p, dst, maxLen);
    this.#cut = to;
    this.#queuedFor = to === null && this.#busy && dst !== undefined ? this.#knownUnicast(p, dst) : null;
    if (to !== null) {
      const s = to.sink;
      this.#reservedBuf = s.frameBuffer!();
      this.#reservedView = s.frameView!();
      this.#reserved = s.frameOffset!();
      return true;
    }
    this.#reservedBuf = this.#queue.arena;
    this.#reservedView = this.#queue.view;
    this.#reserved = this.#closed ? -1 : this.#queue.room(maxLen);
    return this.#reserved >= 0;
  }

  /** The buffer a reserved frame is built in. */
  inputBuffer(): Uint8Array {
    return this.#reservedBuf;
  }

  /** The same bytes as a DataView. */
  inputView(): DataView {
    return this.#reservedView;
  }

  /** Where the reserved frame starts in inputBuffer(). */
  inputOffset(): number {
    return this.#reserved;
  }

  /**
   * Takes the frame built after {@link reserveInput}, as {@link input} would
   * from the port that reserved.
   * @param len its length, at most what was reserved
   * @returns as {@link input}
   */
  commitInput(len: number): boolean {
    const p = this.#reservedBy;
    const at = this.#reserved;
    const to = this.#cut;
    this.#reserved = -1;
    this.#reservedBy = null;
    this.#cut = null;
    if (p === null || at < 0) throw new VmnetError('E_USAGE', 'commitInput without reserveInput');
    if (!(len >= 0 && len <= this.#reservedLen)) throw new VmnetError('E_USAGE', `commitInput of ${len} bytes after reserving ${this.#reservedLen}`);
    if (!p.attached) return true;
    if (to !== null) return this.#commitCut(p, to, at, len);
    const q = this.#queue;
    if (this.#busy) {
      const dest = this.#queuedFor;
      this.#queuedFor = null;
      q.commit(p, len);
      this.counters.reentrantQueued++;
      if (q.used >= this.holdBytes) return this.#holdReentrant(p);
      // Queued for a port that is congested now: an aware sender holds back at once, as it would
      // writing to that port itself, rather than learning it only when the queue is worked off.
      if (dest !== null && p.aware && this.#congestedNow(dest)) {
        this.#bp.holdOn(dest, p);
        this.counters.heldBack++;
        return false;
      }
      return true;
    }
    q.claim(len); // frames it sets off queue behind it
    return this.input(p, q.arena, q.view, at, len);
  }

  /** Gives pooled buffers back; afterwards nothing can be built in place (reserveInput answers false). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.release();
  }

  /**
   * Tells the switch that `port`'s queue has drained (StreamPort's 'drain'):
   * senders that were told to hold back because of it get `drained()`.
   */
  portDrained(port: SwitchPort): void {
    const p = this.#own(port);
    p.overshoot = 0;
    p.awareOvershoot = 0;
    if (p.waiters.length === 0) return;
    this.#bp.release(p);
    if (!this.#busy) this.#bp.notify();
  }

  /**
   * Sends `port`'s egress frames to `hook` instead of its sink (link faults,
   * impair-port.ts), or to the sink again with null. See Theory of operation.
   */
  setEgressHook(port: SwitchPort, hook: EgressHook | null): void {
    this.#own(port).egressHook = hook;
  }

  /**
   * Lifts a loop-protection block of the port and the MAC blocks on it
   * (loop-guard.ts, "Shared ports"); the port's loop state starts afresh.
   * @returns false when neither the port nor a MAC on it was blocked
   */
  unblock(port: SwitchPort): boolean {
    const p = this.#own(port);
    const macs = this.#fdb.unblockMacs(p);
    if (p.guard.blocked === null && macs === 0) return false;
    this.loopGuard.reset(p.guard);
    this.#emit({ kind: 'unblocked', port: p, macs });
    return true;
  }

  /** The MACs blocked on shared ports (loop-guard.ts, "Shared ports"), ordered by VLAN then MAC. */
  macBlocks(): MacBlockRow[] {
    return this.#fdb.macBlocks();
  }

  /**
   * Deletes entries older than the ageing time.
   * @returns the number of entries removed
   */
  sweep(): number {
    return this.#fdb.sweep(this.#now());
  }

  /** A snapshot of the live entries, ordered by VLAN then MAC. */
  table(): TableEntry[] {
    return this.#fdb.table(this.#now());
  }

  /**
   * Looks up where a MAC was learned.
   * @returns the port, or null when unknown or aged out
   */
  lookup(vlan: number, mac: Uint8Array, off = 0): SwitchPort | null {
    return this.#fdb.peek(vlan, macKey(mac, off), this.#now());
  }

  #own(port: SwitchPort): Port {
    if (!(port instanceof Port) || port.owner !== this) throw new VmnetError('E_USAGE', 'port does not belong to this switch');
    return port;
  }

  /**
   * The port a frame from `p` to `dst` may be built in (Cut-through), or
   * null: the switch is idle, `dst` is a unicast MAC known in p's untagged
   * VLAN on another attached, unblocked port that is an untagged member of
   * that VLAN too (so the frame leaves as built), not congested, and that
   * builds in place and has room (reserved there now).
   */
  #cutTarget(p: Port, dst: Uint8Array, maxLen: number): Port | null {
    if (this.#busy || maxLen > this.maxFrame || p.guard.blocked !== null) return null;
    const to = this.#knownUnicast(p, dst);
    if (to === null || to.guard.blocked !== null || to.pvid !== p.pvid || to.egressHook !== null || !to.buildsInPlace) return null;
    const s = to.sink;
    try {
      return s.isCongested?.() !== true && s.reserveFrame!(maxLen) === true ? to : null;
    } catch {
      return null; // counted when the frame reaches that port
    }
  }

  /**
   * Processes a frame built in `to`'s output like any other, `to` getting it
   * by commitFrame (#egress). Only an untagged frame is sure to leave for `to`
   * exactly as built (its VLAN is then p's untagged one, also `to`'s); any
   * other goes the copying way, from the arena: sent to `to` in another form
   * it would overwrite itself while other ports still need it.
   */
  #commitCut(p: Port, to: Port, at: number, len: number): boolean {
    const buf = this.#reservedBuf;
    const view = this.#reservedView;
    if (this.#busy) return this.input(p, buf, view, at, len); // busy since reserveInput (against its contract): queued, a copy
    if (len >= eth.HEADER_LEN && view.getUint16(at + eth.TYPE) !== TPID_CTAG) return this.#run(p, buf, view, at, len, to);
    const q = this.#queue;
    const r = q.room(len); // always room: the queue is empty while idle, and len <= maxFrame (#cutTarget)
    if (r < 0) {
      this.counters.reentrantDropped++;
      return true;
    }
    copyBytes(q.arena, r, buf, at, len);
    q.claim(len);
    return this.input(p, q.arena, q.view, r, len);
  }

  /** The other attached port unicast MAC `dst` is known on in p's untagged VLAN, or null. */
  #knownUnicast(p: Port, dst: Uint8Array): Port | null {
    if (p.pvid === 0 || (dst[0]! & 1) === 1) return null;
    const to = this.#known(p, p.pvid, macKey(dst, 0), this.#now());
    return to !== null && to !== p && to.attached ? to : null;
  }

  /** Whether `m` reports congestion (false when isCongested throws: counted when a frame reaches it). */
  #congestedNow(m: Port): boolean {
    try {
      return m.sink.isCongested?.() === true;
    } catch {
      return false;
    }
  }

  /**
   * The port unicast MAC `dk` is known on in `vlan`, or null; the port's
   * last destination entry first (a bulk flow repeats it).
   */
  #known(p: Port, vlan: number, dk: number, now: number): Port | null {
    const d = p.lastDst;
    if (d !== null && d.key === dk && d.vlan === vlan && !d.dead && this.#fdb.live(d, now)) return d.port;
    const to = this.#fdb.lookup(vlan, dk, now);
    p.lastDst = this.#fdb.entry;
    return to;
  }

  #defer(p: Port, buf: Uint8Array, off: number, len: number): boolean {
    if (!this.#queue.push(p, buf, off, len)) {
      this.counters.reentrantDropped++;
      return this.#holdReentrant(p);
    }
    this.counters.reentrantQueued++;
    return this.#queue.used < this.holdBytes || this.#holdReentrant(p);
  }

  /** Tells an aware sender to hold back until the queue is worked off; returns false (true for others). */
  #holdReentrant(p: Port): boolean {
    if (!p.aware) return true;
    this.#bp.holdOnQueue(p);
    this.counters.heldBack++;
    return false;
  }

  /** @returns false when the (aware) sender must hold back */
  #process(p: Port, buf: Uint8Array, view: DataView, off: number, len: number, now: number): boolean {
    const sc = this.counters;
    this.#countIn(p, len);

    // --- classify (802.1Q §8.6.1, §8.6.2 ingress) ---
    if (len < eth.HEADER_LEN) return this.#dropIn(p, 'runt');
    if (p.guard.blocked !== null) return this.#dropIn(p, 'blocked');
    const k = this.#class;
    const why = classify(buf, view, off, len, this.mtu, p, k);
    if (why !== null) return this.#dropIn(p, why);
    const vlan = k.vlan;
    const group = k.group;

    // --- learn (the port's last source entry first: a bulk flow repeats it) ---
    const sk = macKey(buf, off + eth.SRC);
    const last = p.lastSrc;
    if (last !== null && last.key === sk && last.vlan === vlan && last.port === p && !last.dead) {
      last.seen = now;
    } else {
      const learned = this.#fdb.learn(p, vlan, sk, now);
      p.lastSrc = this.#fdb.entry;
      if (learned === STATIC_ELSEWHERE) return this.#dropIn(p, 'staticSource');
      if (learned === MAC_BLOCKED) return this.#dropIn(p, 'macBlocked');
      if (learned === MOVED) {
        this.#moved(now);
        if (p.guard.blocked !== null) return this.#dropIn(p, 'blocked');
        if (p.lastSrc!.port !== p) return this.#dropIn(p, 'macBlocked'); // blocked on p by that move
      }
    }
    if (p.stormLimit && !this.loopGuard.admit(p.guard, group, now, sk)) {
      this.#stormDrop(p, now);
      return this.#dropIn(p, 'storm');
    }

    // --- per-frame forwarding state ---
    this.#in = p;
    this.#aware = p.aware;
    this.#heldBack = false;
    const f = this.#forms;
    f.begin(buf, view, off, len, k);

    if (this.#tap !== null) {
      try {
        f.select(true);
        this.#tap.record(f.outBuf, f.outOff, f.outLen, this.#wallNow());
      } catch {
        sc.tapErrors++;
      }
    }

    // --- forward (§8.6.3 filtering, §8.6.6 queuing) ---
    if (!group) {
      const to = this.#known(p, vlan, macKey(buf, off), now);
      if (to !== null) {
        if (to === p) return this.#dropIn(p, 'filtered');
        sc.forwarded++;
        this.#egress(to);
        return !this.#heldBack;
      }
    }
    sc.flooded++;
    p.counters.flooded++;
    const members = this.#members[vlan];
    if (members !== undefined) for (const m of members) if (m !== p && m.attached) this.#egress(m);
    return !this.#heldBack;
  }

  /** Counts a received frame. */
  #countIn(p: Port, len: number): void {
    const pc = p.counters;
    const sc = this.counters;
    pc.rxFrames++;
    pc.rxBytes += len;
    sc.frames++;
    sc.bytes += len;
  }

  /**
   * Whether a frame built in `to`'s output (Cut-through) is as its sender
   * said when it reserved: untagged, within the MTU, from the source MAC of
   * the sender's last frame (p.lastSrc: learned there, so it passed the
   * source checks), to the unicast MAC reserveInput found on `to` (p.lastDst,
   * still live), both in p's untagged VLAN, with `to` an untagged member of
   * it, attached, unblocked and without an egress hook. Then every ingress
   * check passes as it did for that last frame and {@link #process} would
   * send it to `to` alone, where it lies: {@link #forwardBuilt} does that
   * without repeating them. Not for a sender under the storm limit, nor
   * with a tap (both take #process).
   */
  #asReserved(p: Port, to: Port, buf: Uint8Array, view: DataView, off: number, len: number, now: number): boolean {
    if (this.#tap !== null || p.stormLimit || p.guard.blocked !== null || len - eth.HEADER_LEN > this.mtu || isTpid(view.getUint16(off + eth.TYPE))) return false;
    const vlan = p.pvid;
    const e = p.lastSrc;
    if (e === null || e.dead || e.port !== p || e.vlan !== vlan || macKey(buf, off + eth.SRC) !== e.key) return false;
    const d = p.lastDst;
    if (d === null || d.dead || d.port !== to || d.vlan !== vlan || macKey(buf, off) !== d.key || !this.#fdb.live(d, now)) return false;
    return to.attached && to.guard.blocked === null && to.pvid === vlan && to.egressHook === null;
  }

  /** Forwards a frame that {@link #asReserved} passed: counted and learned as #process would, committed where it lies. */
  #forwardBuilt(p: Port, to: Port, buf: Uint8Array, view: DataView, off: number, len: number, now: number): boolean {
    this.#countIn(p, len);
    p.lastSrc!.seen = now;
    this.counters.forwarded++;
    this.#in = p;
    this.#aware = p.aware;
    this.#heldBack = false;
    const congested = this.#admitTo(to);
    if (congested !== null) this.#hand(to, buf, view, off, len, congested, true);
    return !this.#heldBack;
  }

  /** Counts an ingress drop; returns true (a drop is not congestion). */
  #dropIn(p: Port, reason: keyof DropCounters): true {
    p.counters.drops[reason]++;
    this.counters.drops[reason]++;
    return true;
  }

  /** A MAC moved (fdb.moved/movedFrom): flap accounting, maybe a block. */
  #moved(now: number): void {
    const e = this.#fdb.moved!;
    const from = this.#fdb.movedFrom!;
    const to = e.port;
    if (!from.attached) return;
    const v = this.loopGuard.onMove(e, from, to, now, this.#fdb.macBlockRoom);
    if (v.macBlockFull) this.counters.macBlocksFull++;
    if (v.macBlock !== null && this.#fdb.blockMac(e, v.macBlock, now)) {
      const port = v.macBlock;
      port.counters.macBlocks++;
      this.counters.macBlocks++;
      this.#emit({ kind: 'macBlocked', port, home: e.port, mac: macText(e.key), vlan: e.vlan, moves: e.flaps });
      return;
    }
    if (v.pending !== null && now - v.pending.guard.flapReported >= REPORT_MS) {
      const port = v.pending;
      port.guard.flapReported = now;
      this.#emit({ kind: 'flapping', port, other: port === to ? from : to, mac: macText(e.key), vlan: e.vlan, moves: e.flaps, inMs: Math.max(0, port.guard.blockAt - now) });
    }
    if (v.block !== null) {
      const port = v.block;
      const other = port === to ? from : to;
      const info: BlockInfo = { reason: 'mac-flap', mac: macText(e.key), vlan: e.vlan, otherPort: other.id, moves: e.flaps, at: now };
      port.guard.blocked = info;
      port.counters.blocks++;
      this.counters.blocks++;
      this.#fdb.flush(port, port.vlans(), false);
      this.#emit({ kind: 'blocked', port, other: other.attached ? other : null, info });
    }
  }

  #stormDrop(p: Port, now: number): void {
    const g = p.guard;
    if (now - g.stormReported < REPORT_MS) return;
    const dropped = g.stormUnreported;
    g.stormUnreported = 0;
    g.stormReported = now;
    this.#emit({ kind: 'storm', port: p, dropped });
  }

  #emit(e: SwitchEvent): void {
    if (this.#onEvent === null) return;
    try {
      this.#onEvent(e);
    } catch {
      this.counters.eventErrors++;
    }
  }

  #egress(m: Port): void {
    if (m.guard.blocked !== null) return;
    const congested = this.#admitTo(m);
    if (congested === null) return;
    const f = this.#forms;
    // Tagged on a trunk's VLANs but its native one (§8.8.2).
    if (!f.select(m.access === 0 && m.pvid !== f.vlan)) {
      m.counters.txNestedTag++; // no untagged form (ingress.ts, "VLAN hopping")
      return;
    }
    // Cut-through: the frame was built in this port's output; it is sent where it lies.
    this.#hand(m, f.outBuf, f.outView, f.outOff, f.outLen, congested, m === this.#cutTo && f.asReceived);
  }

  /**
   * Whether egress port `m` is congested, or null when the current frame
   * must not go to it: its isCongested threw (`txErrors`), or the tail drop
   * (`txDropped`; an aware sender is told to hold back).
   */
  #admitTo(m: Port): boolean | null {
    const c = m.counters;
    let congested: boolean;
    try {
      congested = m.sink.isCongested?.() === true;
    } catch {
      c.txErrors++;
      return null;
    }
    const aware = this.#aware;
    if (congested && (aware ? m.awareOvershoot >= this.reentrantBytes : m.overshoot >= m.queueBytes)) {
      c.txDropped++;
      if (aware) this.#holdOn(m);
      return null;
    }
    return congested;
  }

  /**
   * Hands the current frame, in the form chosen for `m`, to its egress hook,
   * or to its sink: by commitFrame when `cut` (built in its output), else by
   * sendFrame; counts it, and tells an aware sender to hold back when `m`
   * is (or now turned) congested.
   */
  #hand(m: Port, buf: Uint8Array, view: DataView, off: number, len: number, congested: boolean, cut: boolean): void {
    const c = m.counters;
    let r: unknown;
    try {
      if (m.egressHook !== null) {
        m.egressHook(buf, view, off, len);
      } else if (cut) {
        r = m.sink.commitFrame!(len);
        this.counters.cutThrough++;
      } else {
        r = m.sink.sendFrame(buf, off, len, view, this.#in!);
      }
    } catch {
      c.txErrors++;
      return;
    }
    c.txFrames++;
    c.txBytes += len;
    if (congested) {
      m.overshoot += len;
      if (this.#aware) m.awareOvershoot += len;
    }
    if (this.#aware && (congested || r === false)) this.#holdOn(m);
  }

  /** The current (aware) sender holds back until `m` drains. */
  #holdOn(m: Port): void {
    this.#heldBack = true;
    this.#bp.holdOn(m, this.#in!);
  }
}

function positive(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new VmnetError('E_USAGE', `bad switch ${what} ${v}: give a positive number`);
  return v;
}
