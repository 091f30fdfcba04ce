/**
 * Theory of operation: port roles and the VLAN tags a switch port knows
 * (IEEE 802.1Q-2018).
 *
 * A role is access VLAN N (frames untagged on the wire, all in VLAN N) or a
 * trunk (an allowed set of VLANs carried tagged, plus optionally a native
 * VLAN carried untagged, the port's PVID, §6.9.1). VLAN ids are 1..4094:
 * VID 0 means "priority tag, no VLAN" and 4095 is reserved (§9.6, Table 9-2).
 *
 * Tag protocol identifiers. vmnet's switch is a C-VLAN component: the only
 * tag it classifies by is the C-TAG, TPID 0x8100 (§9.5, Table 9-1). Three
 * TPIDs count as "a VLAN tag" when the switch checks what lies behind the
 * tag it classified by (switch.ts, "VLAN hopping"): 0x8100 (C-TAG), 0x88a8
 * (S-TAG, 802.1ad provider bridging) and 0x9100 (the pre-standard Q-in-Q
 * TPID some switches still use). Any of them, exposed at the front of a
 * frame, is read as a VLAN tag by some device downstream.
 *
 * Pure: no I/O.
 */
import { VmnetError } from '../errors.js';

/** Highest usable VLAN id (4095 is reserved). */
export const MAX_VID = 4094;
/** C-TAG: the 802.1Q tag this switch classifies by. */
export const TPID_CTAG = 0x8100;
/** S-TAG (802.1ad). */
export const TPID_STAG = 0x88a8;
/** The pre-standard Q-in-Q TPID. */
export const TPID_QINQ_OLD = 0x9100;

/** True for an EtherType that some device reads as a VLAN tag. */
export const isTpid = (type: number): boolean => type === TPID_CTAG || type === TPID_STAG || type === TPID_QINQ_OLD;

/** The VLAN role of a port: access (untagged) VLAN, or a trunk. */
export type PortRole = { vlan: number } | { trunk: readonly number[]; native?: number };

/** A normalised role: trunk VLANs sorted and unique. */
export type NormalRole = { vlan: number } | { trunk: number[]; native?: number };

const isVid = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_VID;

/**
 * Validates and normalises a role.
 * @param role access `{ vlan }` or trunk `{ trunk, native? }`; undefined means access VLAN 1
 * @returns the role with trunk VLANs sorted and unique
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

/**
 * Formats a role as text; runs of three or more VLANs become ranges.
 * @returns e.g. `access 10`, `trunk 10,20 native 1`, `trunk 1-4094 native 1`
 */
export function formatRole(role: NormalRole): string {
  if ('vlan' in role) return `access ${role.vlan}`;
  const parts: string[] = [];
  const t = role.trunk;
  for (let i = 0; i < t.length; ) {
    let j = i;
    while (j + 1 < t.length && t[j + 1] === t[j]! + 1) j++;
    parts.push(j - i >= 2 ? `${t[i]}-${t[j]}` : t.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return `trunk ${parts.join(',') || '-'}${role.native !== undefined ? ` native ${role.native}` : ''}`;
}

/**
 * Parses a VLAN list as users write it: ids and ranges separated by `,` or
 * `+` (`10,20-22`, or `10+20-22` where a comma would split an option).
 * @param what the option's name, for the message
 * @returns the ids in the order given, ranges expanded
 * @throws VmnetError E_USAGE for anything but ids 1..4094 and ranges of them
 */
export function parseVlanList(text: string, what: string): number[] {
  const out: number[] = [];
  const id = (t: string): number => {
    const n = /^\d{1,4}$/.test(t) ? Number(t) : NaN;
    if (!isVid(n)) throw new VmnetError('E_USAGE', `bad ${what} ${text}: give VLAN ids 1-4094, e.g. 10,20-22`);
    return n;
  };
  for (const part of text.split(/[,+]/).filter(Boolean)) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m === null) {
      out.push(id(part));
      continue;
    }
    const [lo, hi] = [id(m[1]!), id(m[2]!)];
    if (lo > hi) throw new VmnetError('E_USAGE', `bad ${what} ${text}: range ${part} runs backwards`);
    for (let v = lo; v <= hi; v++) out.push(v);
  }
  return out;
}
