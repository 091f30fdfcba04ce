/**
 * Theory of operation: the shape of a topology file (`lab.yaml`), as a JSON
 * Schema (draft-07, checked by ajv in validate.ts) and the TypeScript type
 * of a document that passed it. The schema holds what a schema can say:
 * fields, types, ranges, patterns. What needs the whole file — a NIC naming
 * a switch that exists, links that close a loop, forwards that collide,
 * sizes and addresses the rest of vmnet parses — is checked after it, in
 * validate.ts, and reported the same way (file, line, field).
 *
 *   name: campus                 # optional; default: the file name
 *   switches:
 *     NAME: { subnet, gateway, isolated, host, host-loopback, mtu, dns: {NAME: IP}, vlans: [10, 20] }
 *   vms:
 *     NAME: { guest: test | image (+ format, snapshot) | kernel (+ initrd, append),
 *             memory, cpus, accel, user-data: FILE | [FILES], nics: [{ switch, vlan | trunk + native, mac, impair }], forwards: [SPEC] }
 *   links:
 *     - { between: [A, B], vlans: [10, 20], native: 1, impair }
 *
 * `impair` is a port's link faults in the words of `vmnet link set`
 * (config/link.ts), as one string (`loss=5% delay=50ms seed=7`) or as a map
 * of them (`{ loss: 5%, delay: 50ms, down: true }`); validate.ts reads both
 * with that parser.
 */

import type { LaunchOptions } from '../vm/plan.js';

/** A VLAN id (IEEE 802.1Q §9.6: 0 and 4095 are reserved). */
const vid = { type: 'integer', minimum: 1, maximum: 4094 } as const;
const vlanList = { type: 'array', items: vid, uniqueItems: true } as const;
/** Link faults: `vmnet link set` words, as a string or a map (validate.ts reads them with config/link.ts). */
const impair = { type: ['string', 'object'], additionalProperties: { type: ['string', 'number', 'boolean'] } } as const;

const switchSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    subnet: { type: 'string', pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' },
    gateway: { type: 'boolean' },
    isolated: { type: 'boolean' },
    host: { type: 'boolean' },
    'host-loopback': { type: 'boolean' },
    mtu: { type: 'integer', minimum: 68, maximum: 65520 },
    dns: { type: 'object', additionalProperties: { type: 'string' } },
    vlans: vlanList,
  },
} as const;

const nicSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['switch'],
  properties: {
    switch: { type: 'string' },
    vlan: vid,
    trunk: { ...vlanList, minItems: 1 },
    native: vid,
    mac: { type: 'string', pattern: '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$' },
    impair,
  },
} as const;

const vmSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    guest: { enum: ['test'] },
    image: { type: 'string', minLength: 1 },
    format: { enum: ['raw', 'qcow2'] },
    snapshot: { type: 'boolean' },
    kernel: { type: 'string', minLength: 1 },
    initrd: { type: 'string', minLength: 1 },
    append: { type: 'string' },
    memory: { type: ['string', 'integer'] },
    cpus: { type: 'integer', minimum: 1, maximum: 256 },
    accel: { enum: ['auto', 'kvm', 'tcg'] },
    nics: { type: 'array', items: nicSchema },
    forwards: { type: 'array', items: { type: 'string' } },
    'user-data': { type: ['string', 'array'], items: { type: 'string', minLength: 1 }, minLength: 1 },
  },
} as const;

const linkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['between'],
  properties: {
    between: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 },
    vlans: vlanList,
    native: vid,
    impair,
  },
} as const;

/** The JSON Schema of a topology file. */
export const LAB_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    switches: { type: 'object', additionalProperties: switchSchema },
    vms: { type: 'object', additionalProperties: vmSchema },
    links: { type: 'array', items: linkSchema },
  },
} as const;

/** A switch as written in the file (after the schema). */
export interface RawSwitch {
  subnet?: string;
  gateway?: boolean;
  isolated?: boolean;
  host?: boolean;
  'host-loopback'?: boolean;
  mtu?: number;
  dns?: Record<string, string>;
  vlans?: number[];
}

/** A NIC as written. */
export interface RawNic {
  switch: string;
  vlan?: number;
  trunk?: number[];
  native?: number;
  mac?: string;
  impair?: RawImpair;
}

/** A VM as written: launch()'s options of the same names, and the lab's own. */
export type RawVm = Pick<LaunchOptions, 'image' | 'format' | 'snapshot' | 'kernel' | 'initrd' | 'append' | 'memory' | 'cpus' | 'accel'> & {
  guest?: 'test';
  nics?: RawNic[];
  forwards?: string[];
  'user-data'?: string | string[];
};

/** A link as written. */
export interface RawLink {
  between: [string, string];
  vlans?: number[];
  native?: number;
  impair?: RawImpair;
}

/** Link faults as written: `loss=5% delay=50ms`, or `{ loss: 5%, delay: 50ms }`. */
export type RawImpair = string | Record<string, string | number | boolean>;

/** A topology file that passed {@link LAB_SCHEMA}. */
export interface RawLab {
  name?: string;
  switches?: Record<string, RawSwitch>;
  vms?: Record<string, RawVm>;
  links?: RawLink[];
}
