/**
 * Theory of operation: a topology file after validation (validate.ts) —
 * every default filled in, every path absolute, every role normalised — so
 * that two files meaning the same lab give equal specs, and plan.ts can
 * compare what a file asks for with what a lab runs by comparing values.
 * Types and two pure helpers only.
 */
import type { Accel } from '../qemu/binary.js';
import type { NormalRole } from '../switch/vlan.js';

/** A switch of a lab. */
export interface LabSwitch {
  name: string;
  gateway: boolean;
  /** The gateway's network; null without a gateway. */
  subnet: string | null;
  isolated: boolean;
  hostAccess: boolean;
  hostLoopback: boolean;
  mtu: number | null;
  /** Local DNS records, `NAME=IP`, sorted. */
  dns: string[];
  /**
   * VLANs declared in the file (NICs and links may use only these and 1
   * when any are declared), sorted. The switch needs no list: it opens a
   * VLAN's socket when a port asks for it; so the VLANs merely used are
   * not part of the spec (a NIC moved to another VLAN changes the VM, not the switch).
   */
  vlans: number[];
}

/** How a VM boots. */
export type LabBoot =
  | { kind: 'test-guest'; append: string | null }
  | { kind: 'image'; image: string; format: 'raw' | 'qcow2' | null; snapshot: boolean }
  | { kind: 'kernel'; kernel: string; initrd: string | null; append: string | null };

/** A VM's NIC: a port on a lab switch. */
export interface LabNic {
  switch: string;
  role: NormalRole;
  mac: string | null;
  /**
   * The port's link faults as config/link.ts formatLinkPatch() says them
   * (one order, so equal faults are equal text), applied on a cleared port;
   * null for a perfect link. Changed on a running VM without a restart.
   */
  impair: string | null;
}

/** A VM of a lab. */
export interface LabVm {
  name: string;
  boot: LabBoot;
  memoryMiB: number;
  cpus: number;
  accel: Accel | 'auto';
  /** cloud-init user-data files (absolute paths), merged after vmnet's seed: vm/seeding.ts. */
  userData: string[];
  nics: LabNic[];
  /** Port forwards as formatted by config/forward.ts, sorted. */
  forwards: string[];
}

/** A link between two lab switches: `a` connects to `b`'s socket for `role`. */
export interface LabLink {
  a: string;
  b: string;
  role: NormalRole;
  /** Faults of `a`'s end of the link (egress: from `a` to `b`), as {@link LabNic.impair}; changed without cutting the link. */
  impair: string | null;
}

/** A validated topology file. */
export interface LabSpec {
  name: string;
  /** The file's absolute path. */
  file: string;
  switches: LabSwitch[];
  vms: LabVm[];
  links: LabLink[];
}

/** The key a link is known by: its two switches, sorted (`core~edge`). */
export const linkKey = (l: Pick<LabLink, 'a' | 'b'>): string => [l.a, l.b].sort().join('~');

/** A VM's spec without its forwards and its NICs' faults (those change on a running VM without a restart). */
export const vmShape = (v: LabVm): object => ({ name: v.name, boot: v.boot, memoryMiB: v.memoryMiB, cpus: v.cpus, accel: v.accel, userData: v.userData, nics: v.nics.map((n) => ({ switch: n.switch, role: n.role, mac: n.mac })) });

/** A link's spec without its faults (those change on a running link without cutting it). */
export const linkShape = (l: LabLink): object => ({ a: l.a, b: l.b, role: l.role });
