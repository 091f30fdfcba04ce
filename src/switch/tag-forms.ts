/**
 * Theory of operation: the two forms a switched frame leaves in (IEEE
 * 802.1Q-2018 §8.8.2, §6.9.2: tagged on a trunk's VLANs, untagged on an
 * access port or a trunk's native VLAN).
 *
 * Zero copy. Every egress port receives either the frame's untagged or its
 * tagged form. Whichever form equals the ingress bytes is passed as is (the
 * same buffer and offset to every port; `sendFrame` must copy, as
 * StreamPort's does, or finish with the bytes before returning). The other
 * form is written once per frame, on first need, into a scratch buffer
 * preallocated at construction; later ports reuse it. A priority-tagged
 * frame matches neither form, so both may be written (two scratch halves).
 * The tagged form keeps the received PCP and DEI (else 0) and carries the
 * frame's VLAN; the untagged form is only asked of a tagged frame, and drops
 * its one tag (switch.ts never removes a tag to expose another: "VLAN
 * hopping", ingress.ts).
 *
 * Pure: no I/O; no allocation after construction.
 */
import * as eth from '../wire/ethernet.js';
import { copyBytes } from '../link/stream-framer.js';
import { TPID_CTAG } from './vlan.js';

export class TagForms {
  /** Scratch: the tagged form at [0, half), the untagged form at [half, 2·half). */
  readonly scratch: Uint8Array;
  readonly view: DataView;
  /** Offset of the untagged form in {@link scratch}. */
  readonly half: number;
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  #len = 0;
  #tagged = false;
  #tci = 0;
  #vlan = 0;
  #haveTagged = false;
  #haveUntagged = false;

  /** @param maxFrame largest ingress frame (header, tags and payload) */
  constructor(maxFrame: number) {
    this.half = maxFrame + eth.VLAN_TAG_LEN;
    this.scratch = new Uint8Array(2 * this.half);
    this.view = new DataView(this.scratch.buffer);
  }

  /** Starts a frame: neither form is written yet. */
  begin(buf: Uint8Array, off: number, len: number, tagged: boolean, tci: number, vlan: number): void {
    this.#buf = buf;
    this.#off = off;
    this.#len = len;
    this.#tagged = tagged;
    this.#tci = tci;
    this.#vlan = vlan;
    this.#haveTagged = false;
    this.#haveUntagged = false;
  }

  /** Lets go of the frame's buffer (between frames). */
  release(): void {
    this.#buf = this.scratch;
  }

  /** Writes the tagged form into scratch[0..) once per frame; returns its length. */
  tagged(): number {
    const len = this.#tagged ? this.#len : this.#len + eth.VLAN_TAG_LEN;
    if (this.#haveTagged) return len;
    const d = this.scratch;
    const b = this.#buf;
    const o = this.#off;
    for (let i = 0; i < 12; i++) d[i] = b[o + i]!;
    this.view.setUint16(12, TPID_CTAG);
    this.view.setUint16(14, (this.#tci & 0xf000) | this.#vlan);
    const from = this.#tagged ? o + 16 : o + 12;
    copyBytes(d, 16, b, from, o + this.#len - from);
    this.#haveTagged = true;
    return len;
  }

  /** Writes the untagged form of a tagged frame into scratch[half..) once per frame; returns its length. */
  untagged(): number {
    const len = this.#len - eth.VLAN_TAG_LEN;
    if (this.#haveUntagged) return len;
    const d = this.scratch;
    const b = this.#buf;
    const o = this.#off;
    const h = this.half;
    for (let i = 0; i < 12; i++) d[h + i] = b[o + i]!;
    copyBytes(d, h + 12, b, o + 16, this.#len - 16);
    this.#haveUntagged = true;
    return len;
  }
}
