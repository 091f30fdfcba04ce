/**
 * Theory of operation: 802.1Q ingress classification for the switch
 * (IEEE 802.1Q-2018 §8.6.1 "Active topology enforcement" aside, §8.6.2
 * "Ingress": the VLAN a frame belongs to, decided once, before it is
 * learned or forwarded; switch.ts does the rest).
 *
 * VLAN hopping. The switch is a C-VLAN component: it classifies a frame by
 * the one C-TAG in front (§6.9, §9.5) and everything behind that tag is data.
 * It removes that tag on the way out of an access port or a trunk's native
 * VLAN (the port is an untagged member, §8.8.2, §6.9.2). If what the removal
 * exposes is itself a VLAN tag (TPID 0x8100, 0x88a8 or 0x9100, vlan.ts), the
 * next device reads it as the frame's VLAN, and the frame has changed VLAN
 * without any port being configured for that: the classic double-tagging
 * attack ([8100 VID 0][8100 VID 20][ARP] sent on access 10 leaves a trunk
 * with native 10 as [8100 VID 20][ARP], and the next switch puts it in
 * VLAN 20). 802.1Q gives a port no way to move a frame to another VLAN, so
 * the rule is: the switch never removes a tag to expose another one.
 * - Ingress: a frame whose classifying tag is a priority tag (VID 0) or
 *   carries the port's own PVID (a trunk's native VID), and whose next
 *   EtherType is a TPID, is dropped (`nestedTag`): its sender sits on the
 *   untagged side and has no business sending tags at all.
 * - Egress: a frame that arrived tagged for a trunk VLAN and carries a second
 *   tag (Q-in-Q) goes out tagged, both tags intact, to trunks carrying that
 *   VLAN; it is not sent to the VLAN's untagged members, where its inner tag
 *   would become its outer one (counted per port, `txNestedTag`).
 * Untagged frames whose EtherType is 0x88a8 or 0x9100 are plain data to a
 * C-VLAN component: they enter the port's VLAN and leave unchanged (no tag
 * is removed in front of them), so they cannot change VLAN in vmnet.
 *
 * Ingress checks, in order, each drop counted on the ingress port and the
 * switch: shorter than 14 bytes, or 18 when tagged (`runt`); received on a
 * port blocked by loop protection (`blocked`); a payload over the MTU once
 * the Ethernet header and at most two tags are set aside, the second only
 * where it directly follows a C-TAG or stands first as an S-TAG or 0x9100
 * tag (`oversize`; so the largest frame, Q-in-Q, is MTU + 22: {@link
 * Switch.maxFrame}); the VLAN rules above; a group (multicast or broadcast)
 * or all-zero source MAC (`badSource`; such a source can never be a
 * destination, so it is not learned and the frame is dropped, as the Linux
 * bridge does); a reserved link-local destination (`reserved`, below); a
 * source MAC that is another port's static entry (`staticSource`, fdb.ts);
 * the storm limit (`storm`, loop-guard.ts). Nothing here throws on guest
 * bytes.
 *
 * Reserved addresses (§8.6.3, Table 8-1). A C-VLAN component never relays
 * the link-local group addresses 01-80-C2-00-00-00 to -0F: MAC control
 * (PAUSE, -01), slow protocols (LACP, -02), 802.1X (-03), LLDP (-0E) and the
 * rest are meant for the one link they were sent on. vmnet drops -01 to -0F
 * (`reserved`) and never learns from them. It relays -00, the bridge group
 * address that carries STP BPDUs, as a Linux bridge without STP does: vmnet
 * runs no spanning tree, and a bridge inside a guest that does still sees
 * loops closed through vmnet. Other group addresses (01-80-C2-00-00-10 and
 * up) are ordinary multicast.
 *
 * Pure: no I/O, no allocation (the result goes into a caller's object).
 */
import { isBadSourceMac, isGroupMac } from '../wire/addr.js';
import * as eth from '../wire/ethernet.js';
import type { DropCounters } from './counters.js';
import { isTpid, TPID_CTAG } from './vlan.js';

/** What {@link classify} found out about an admitted frame. */
export interface Classified {
  /** The VLAN the frame belongs to. */
  vlan: number;
  /** It arrived with a C-TAG in front (a priority tag included). */
  tagged: boolean;
  /** The received TCI (VID ≠ 0, or a priority tag); 0 when untagged. */
  tci: number;
  /** A VLAN tag follows the classifying tag (Q-in-Q). */
  nested: boolean;
  /** The destination is a group (multicast or broadcast) address. */
  group: boolean;
}

/** The VLAN role a frame is classified against (port.ts). */
export interface IngressRole {
  /** Untagged frames' VLAN; 0 on a trunk without a native VLAN. */
  readonly pvid: number;
  /** Trunk: allowed[vid] === 1 for carried VLANs. Access: null. */
  readonly allowed: Uint8Array | null;
}

/**
 * Classifies a frame of at least an Ethernet header's length received on a
 * port with `role`, by the checks above from the tagged runt on (the
 * caller has checked the header's length and the port's block).
 * @param mtu largest payload behind the header and up to two tags
 * @param out receives the classification when the frame is admitted
 * @returns null when admitted, else the drop counter the frame counts under
 */
export function classify(buf: Uint8Array, view: DataView, off: number, len: number, mtu: number, role: IngressRole, out: Classified): keyof DropCounters | null {
  let type = view.getUint16(off + eth.TYPE);
  let tagged = false;
  let nested = false;
  let tci = 0;
  let tags = 0;
  if (type === TPID_CTAG) {
    if (len < eth.HEADER_LEN + eth.VLAN_TAG_LEN) return 'runt';
    tagged = true;
    tci = view.getUint16(off + eth.TYPE + 2);
    type = view.getUint16(off + eth.TYPE + 4);
    nested = isTpid(type);
    tags = nested ? 2 : 1;
  } else if (isTpid(type)) {
    tags = 1;
  }
  if (len - eth.HEADER_LEN - tags * eth.VLAN_TAG_LEN > mtu) return 'oversize';
  let vlan: number;
  if (tagged) {
    const vid = tci & 0x0fff;
    if (vid === 0) {
      // Priority tag: untagged for VLAN purposes.
      vlan = role.pvid;
      if (vlan === 0) return 'untaggedOnTrunk';
      if (nested) return 'nestedTag';
    } else if (role.allowed === null) {
      return 'taggedOnAccess';
    } else if (role.allowed[vid] !== 1) {
      return 'vlanNotAllowed';
    } else {
      vlan = vid;
      if (nested && vid === role.pvid) return 'nestedTag';
    }
  } else {
    vlan = role.pvid;
    if (vlan === 0) return 'untaggedOnTrunk';
  }
  if (isBadSourceMac(buf, off + eth.SRC)) return 'badSource';
  const group = isGroupMac(buf, off);
  // 01-80-C2-00-00-01..0F: link-local, never relayed (Table 8-1); -00 is relayed (see above).
  if (group && buf[off] === 0x01 && buf[off + 1] === 0x80 && buf[off + 2] === 0xc2 && (buf[off + 3]! | buf[off + 4]!) === 0 && buf[off + 5]! <= 0x0f && buf[off + 5] !== 0) return 'reserved';
  out.vlan = vlan;
  out.tagged = tagged;
  out.tci = tci;
  out.nested = nested;
  out.group = group;
  return null;
}
