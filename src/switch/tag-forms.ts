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
 * its one tag: a frame with a second tag behind its first has no untagged
 * form ({@link TagForms.select} answers false; the switch never removes a tag
 * to expose another: "VLAN hopping", ingress.ts).
 *
 * Pure: no I/O; no allocation after construction.
 */
import * as eth from '../wire/ethernet.js';
import { copyBytes } from '../link/stream-framer.js';
import type { Classified } from './ingress.js';
import { TPID_CTAG } from './vlan.js';

export class TagForms {
  /** Scratch: the tagged form at [0, half), the untagged form at [half, 2·half). */
  readonly scratch: Uint8Array;
  readonly view: DataView;
  /** Offset of the untagged form in {@link scratch}. */
  readonly half: number;
  /** The form the last {@link select} chose: its bytes at outBuf[outOff, outOff + outLen), outView covering outBuf. */
  outBuf: Uint8Array;
  outView: DataView;
  outOff = 0;
  outLen = 0;
  // The frame (begin).
  #buf: Uint8Array;
  #view: DataView;
  #off = 0;
  #len = 0;
  #tagged = false;
  #tci = 0;
  #vlan = 0;
  #nested = false;
  #haveTagged = false;
  #haveUntagged = false;

  /** @param maxFrame largest ingress frame (header, tags and payload) */
  constructor(maxFrame: number) {
    this.half = maxFrame + eth.VLAN_TAG_LEN;
    this.scratch = new Uint8Array(2 * this.half);
    this.view = new DataView(this.scratch.buffer);
    this.outBuf = this.#buf = this.scratch;
    this.outView = this.#view = this.view;
  }

  /**
   * Starts a frame: neither form is written yet.
   * @param view a DataView covering all of `buf`
   * @param k its ingress classification (ingress.ts): VLAN, received tag, Q-in-Q
   */
  begin(buf: Uint8Array, view: DataView, off: number, len: number, k: Classified): void {
    this.#buf = buf;
    this.#view = view;
    this.#off = off;
    this.#len = len;
    this.#tagged = k.tagged;
    this.#tci = k.tci;
    this.#vlan = k.vlan;
    this.#nested = k.nested;
    this.#haveTagged = false;
    this.#haveUntagged = false;
  }

  /** The frame's VLAN. */
  get vlan(): number {
    return this.#vlan;
  }

  /**
   * Chooses the frame's tagged or untagged form (outBuf, outView, outOff,
   * outLen): the received bytes when they are that form, else the form
   * written into scratch once per frame.
   * @returns false when the untagged form is asked of a frame with a second tag behind its first (it has none)
   */
  select(tagged: boolean): boolean {
    if (tagged ? !this.#tagged || (this.#tci & 0x0fff) !== this.#vlan : this.#tagged) {
      if (tagged) {
        this.outLen = this.tagged();
        this.outOff = 0;
      } else {
        if (this.#nested) return false;
        this.outLen = this.untagged();
        this.outOff = this.half;
      }
      this.outBuf = this.scratch;
      this.outView = this.view;
      return true;
    }
    this.outBuf = this.#buf;
    this.outView = this.#view;
    this.outOff = this.#off;
    this.outLen = this.#len;
    return true;
  }

  /** The form {@link select} chose is the received bytes themselves. */
  get asReceived(): boolean {
    return this.outBuf !== this.scratch;
  }

  /** Lets go of the frame's buffer (between frames). */
  release(): void {
    this.outBuf = this.#buf = this.scratch;
    this.outView = this.#view = this.view;
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
