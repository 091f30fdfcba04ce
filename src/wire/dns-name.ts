/**
 * Theory of operation: lists of domain names in the wire form of RFC 1035
 * §3.1 (each label a length byte 1..63 and its bytes, a zero byte ending the
 * name), the encoding shared by the DHCPv4 domain search option (RFC 3397
 * §2, compression pointers allowed), the DHCPv6 Domain Search List option
 * (RFC 3646 §4 with RFC 8415 §10: uncompressed) and the NDP DNS Search List
 * option (RFC 8106 §5.2: uncompressed, zero padding after the last name).
 *
 * Decoding is bounded by the bytes given and never throws:
 * - a name longer than 255 bytes on the wire (RFC 1035 §3.1), a label type
 *   other than 00 (or 11 when pointers are allowed), a label running past
 *   the end, or a missing final zero byte make the whole list invalid;
 * - compression pointers (RFC 1035 §4.1.4), when allowed, are offsets from
 *   the start of the list and must point strictly backwards, each jump before
 *   the previous target, so a loop cannot hang the decoder;
 * - with `padding`, a zero byte where a name would start ends the list (the
 *   rest is padding); without it, that byte is the root name ''.
 * - a label containing a '.' byte is rejected: as text it could not be told
 *   apart from two labels, and would not encode back to the same bytes.
 * Label bytes map 1:1 to char codes (Latin-1), which round-trips every other
 * byte. Names are returned without a trailing dot.
 *
 * Encoding writes each name uncompressed: empty labels (a leading, doubled
 * or trailing dot) are dropped and labels are cut to 63 bytes. Names are
 * configuration the caller has validated; nothing here limits their total
 * length.
 *
 * Pure: no I/O, no Node runtime imports, no module state.
 */

/** Longest name on the wire, length bytes and final zero included (RFC 1035 §3.1). */
export const MAX_NAME_LEN = 255;
/** Longest label (RFC 1035 §2.3.4). */
export const MAX_LABEL_LEN = 63;

/** How `decodeNames` reads a list. */
export interface NameRules {
  /** Accept compression pointers (RFC 1035 §4.1.4), as RFC 3397 does. */
  pointers: boolean;
  /** A zero byte where a name starts ends the list (RFC 8106 §5.2 padding). */
  padding: boolean;
}

/**
 * Decodes a list of names from `v[o .. o+len)` (rules in the file comment).
 * @param v the buffer's DataView
 * @param o offset of the first name
 * @param len bytes of the list
 * @param rules pointers and padding
 * @returns the names without trailing dot, or null when malformed
 */
export function decodeNames(v: DataView, o: number, len: number, rules: NameRules): string[] | null {
  const names: string[] = [];
  const end = o + len;
  let p = o;
  while (p < end) {
    if (rules.padding && v.getUint8(p) === 0) break;
    let name = '';
    let q = p; // read position
    let next = -1; // where the following name starts, once known
    let limit = p; // a pointer must target strictly before this
    let wire = 0; // uncompressed length so far
    for (;;) {
      if (q >= end) return null;
      const l = v.getUint8(q);
      if (l === 0) {
        if (next === -1) next = q + 1;
        break;
      }
      const kind = l & 0xc0;
      if (kind === 0xc0 && rules.pointers) {
        if (q + 1 >= end) return null;
        const target = o + (((l & 0x3f) << 8) | v.getUint8(q + 1));
        if (target >= limit) return null; // forward or looping pointer
        if (next === -1) next = q + 2;
        limit = target;
        q = target;
        continue;
      }
      if (kind !== 0) return null;
      if (q + 1 + l > end) return null;
      wire += l + 1;
      if (wire > MAX_NAME_LEN - 1) return null;
      let label = '';
      for (let i = q + 1; i <= q + l; i++) {
        const c = v.getUint8(i);
        if (c === 0x2e) return null;
        label += String.fromCharCode(c);
      }
      name += name === '' ? label : '.' + label;
      q += 1 + l;
    }
    names.push(name);
    p = next;
  }
  return names;
}

/**
 * The labels a name is encoded with: empty labels dropped, each cut to 63
 * bytes (RFC 1035 §2.3.4).
 * @param name e.g. "vmnet.internal" (a trailing dot is allowed)
 */
export function labels(name: string): string[] {
  return name
    .split('.')
    .filter((l) => l !== '')
    .map((l) => l.slice(0, MAX_LABEL_LEN));
}

/**
 * Bytes `emitNames` writes for `names`.
 * @param names the names
 */
export function namesLength(names: readonly string[]): number {
  let n = 0;
  for (const name of names) {
    for (const l of labels(name)) n += 1 + l.length;
    n++;
  }
  return n;
}

/**
 * Writes `names` uncompressed (RFC 1035 §3.1).
 * @param names the names
 * @param v the buffer's DataView, with room for `namesLength(names)` bytes
 * @param o offset to write at
 * @returns bytes written
 */
export function emitNames(names: readonly string[], v: DataView, o: number): number {
  let p = o;
  for (const name of names) {
    for (const l of labels(name)) {
      v.setUint8(p++, l.length);
      for (let i = 0; i < l.length; i++) v.setUint8(p++, l.charCodeAt(i) & 0xff);
    }
    v.setUint8(p++, 0);
  }
  return p - o;
}
