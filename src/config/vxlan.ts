/**
 * Theory of operation: the VXLAN settings of a switch (`vmnet switch create
 * NAME --vxlan VNI --vxlan-remote HOST[:PORT]... [--vxlan-local
 * ADDR[:PORT]] [--vxlan-underlay-mtu N]`), parsed and checked here, shared
 * by the CLI, the daemon and the library (switch/vxlan-socket.ts uses them).
 * Ports default to 4789 (RFC 7348 §5). A remote is an IPv4 address or a
 * host name (resolved once, when the switch starts); the local address is
 * an IPv4 address to bind. Parsing is pure and throws one-line usage
 * errors.
 */
import { VmnetError } from '../errors.js';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import * as vxlan from '../wire/vxlan.js';

/** An underlay end point: host (IPv4 address or name) and UDP port. */
export interface VxlanEndpoint {
  host: string;
  port: number;
}

/** A switch's VXLAN segment. */
export interface VxlanConfig {
  /** VXLAN network identifier, 0..16777215. */
  vni: number;
  /** Remote VTEPs (head-end replication to each); at least one. */
  remotes: VxlanEndpoint[];
  /** Where to bind: default the address the routing table uses toward the remotes, port 4789. */
  local?: { host?: string; port?: number };
  /** IP MTU of the underlay (default 1500); the segment's MTU defaults to this − 50. */
  underlayMtu?: number;
}

/** Smallest underlay MTU: an inner frame must still carry a 68-byte IPv4 MTU (RFC 791). */
export const MIN_UNDERLAY_MTU = 68 + vxlan.OVERHEAD_IP4;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * Parses a VNI.
 * @throws VmnetError E_USAGE unless a whole number 0..16777215
 */
export function parseVni(text: string | number): number {
  const s = String(text).trim();
  const n = /^\d{1,8}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= vxlan.MAX_VNI)) throw new VmnetError('E_USAGE', `bad --vxlan ${text}: give a VNI from 0 to ${vxlan.MAX_VNI}`);
  return n;
}

/**
 * Parses `HOST[:PORT]` (remote) or `ADDR[:PORT]` (local, `addressOnly`).
 * @param flag the flag, for the message
 * @throws VmnetError E_USAGE naming the problem
 */
export function parseVxlanEndpoint(text: string, flag: string, addressOnly = false): VxlanEndpoint {
  const m = /^([^:\s]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const what = addressOnly ? 'ADDR[:PORT] with an IPv4 address' : 'HOST[:PORT] with an IPv4 address or a host name';
  if (!m) throw new VmnetError('E_USAGE', `bad ${flag} ${text}: expected ${what}, e.g. 192.0.2.10:4789`);
  const host = m[1]!;
  const port = m[2] === undefined ? vxlan.PORT : Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw new VmnetError('E_USAGE', `bad ${flag} ${text}: the port must be 1-65535`);
  const ip = parseIp4(host);
  if (ip === -1 && (addressOnly || !HOST_NAME.test(host))) throw new VmnetError('E_USAGE', `bad ${flag} ${text}: expected ${what}`);
  return { host: ip === -1 ? host : formatIp4(ip), port };
}

/**
 * Parses `--vxlan-local`: `ADDR[:PORT]`, or `:PORT` for the default address.
 * @throws VmnetError E_USAGE naming the problem
 */
export function parseVxlanLocal(text: string): { host?: string; port?: number } {
  const t = text.trim();
  if (t.startsWith(':')) return { port: parseVxlanEndpoint(`0.0.0.0${t}`, '--vxlan-local', true).port };
  const e = parseVxlanEndpoint(t, '--vxlan-local', true);
  return /:\d+$/.test(t) ? e : { host: e.host };
}

/** `--vxlan-local` text of a local setting: `ADDR[:PORT]` or `:PORT`. */
export const formatVxlanLocal = (l: { host?: string; port?: number }): string => `${l.host ?? ''}${l.port !== undefined ? `:${l.port}` : ''}`;

/** `HOST:PORT`. */
export const formatVxlanEndpoint = (e: VxlanEndpoint): string => `${e.host}:${e.port}`;

/**
 * Checks a config that came from the library or JSON.
 * @throws VmnetError E_USAGE naming the problem
 */
export function checkVxlan(c: VxlanConfig): void {
  parseVni(c.vni);
  if (!Array.isArray(c.remotes) || c.remotes.length === 0) throw new VmnetError('E_USAGE', '--vxlan needs at least one --vxlan-remote HOST[:PORT]');
  for (const r of c.remotes) {
    parseVxlanEndpoint(formatVxlanEndpoint(r), '--vxlan-remote');
    const a = parseIp4(r.host);
    // Replies come from unicast addresses: a group or "any" remote would never be heard back.
    if (a !== -1 && (a === 0 || a === 0xffffffff || a >>> 28 === 0xe)) throw new VmnetError('E_USAGE', `bad --vxlan-remote ${r.host}: give a unicast address (multicast groups are not supported)`);
  }
  if (c.local?.host !== undefined) parseVxlanEndpoint(c.local.host, '--vxlan-local', true);
  if (c.local?.port !== undefined && !(Number.isInteger(c.local.port) && c.local.port >= 1 && c.local.port <= 65535)) throw new VmnetError('E_USAGE', `bad --vxlan-local port ${c.local.port}: give 1-65535`);
  const m = c.underlayMtu;
  if (m !== undefined && !(Number.isInteger(m) && m >= MIN_UNDERLAY_MTU && m <= 65535)) throw new VmnetError('E_USAGE', `bad --vxlan-underlay-mtu ${m}: give ${MIN_UNDERLAY_MTU}-65535`);
}

/** The segment MTU a VXLAN switch gets unless told otherwise: underlay − 50 (1450). */
export const defaultVxlanMtu = (c: VxlanConfig): number => (c.underlayMtu ?? 1500) - vxlan.OVERHEAD_IP4;
