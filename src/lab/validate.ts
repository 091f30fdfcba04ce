/**
 * Theory of operation: a topology file's text in, a {@link LabSpec} or
 * every mistake in it out, each with its file, line, column and field.
 *
 * 1. YAML (YAML 1.2 via the `yaml` package): the text is parsed into a
 *    Document whose nodes keep their source ranges, with a LineCounter that
 *    turns an offset into a line and column. Syntax errors, duplicate keys
 *    and alias bombs (more than 100 alias expansions) stop here, each
 *    reported where yaml found it.
 * 2. Schema (JSON Schema draft-07 via `ajv`, schema.ts): every error, not
 *    just the first (`allErrors`). An ajv error names the offending value
 *    by JSON Pointer (`instancePath`, RFC 6901); the pointer's segments walk
 *    the Document to the node, whose range gives the line. An unknown field
 *    points at its key; a missing one at the map that lacks it.
 * 3. Meaning: what needs the whole file or vmnet's own parsers — names
 *    vmnet accepts, NICs and links naming switches that exist, VLANs a
 *    switch declares, one way to boot, sizes, forwards (and forwards that
 *    collide), DNS records, subnets, MACs used twice, two gateways on one
 *    untagged LAN, links that close a loop (vmnet's switches run no
 *    spanning tree: a loop is cut by flap detection, not prevented, so a
 *    file may not ask for one), link faults (`impair`, read word by word
 *    by config/link.ts, the parser of `vmnet link set`, so a bad value gets
 *    that parser's message at its own line). Reported the same way, by path.
 *
 * Pure: no file system (paths are resolved against the file's directory,
 * their existence is checked by load.ts), no output. The result is
 * normalised (model.ts) so that plan.ts can compare specs by value.
 */
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { VmnetError } from '../errors.js';
import { formatForward, parseForward } from '../config/forward.js';
import { checkImpairSettings, formatLinkPatch, parseLinkWords } from '../config/link.js';
import { PERFECT } from '../switch/impair.js';
import { resolveGatewayConfig } from '../gateway/config.js';
import { parseDnsRecord } from '../services/dns/local.js';
import { validateSwitchName } from '../switch/runtime.js';
import { normaliseRole, type NormalRole } from '../switch/vlan.js';
import { parseMemory } from '../vm/run.js';
import { isImageUrl } from '../images/source.js';
import { validateName } from '../vm/state.js';
import { LAB_SCHEMA, type RawImpair, type RawLab, type RawVm } from './schema.js';
import { linkKey, type LabBoot, type LabLink, type LabNic, type LabSpec, type LabSwitch, type LabVm } from './model.js';

/** One mistake in a topology file. */
export interface LabIssue {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** The field, e.g. `vms.web.nics[0].vlan`; `(file)` for the whole document. */
  field: string;
  message: string;
}

/** A topology file with mistakes: {@link LabInvalid.issues} lists every one, in file order. */
export class LabInvalid extends VmnetError {
  readonly issues: LabIssue[];
  constructor(issues: LabIssue[]) {
    super('E_USAGE', issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}

/** `lab.yaml:12:7: vms.web.memory: must be …`: one line per issue. */
export const formatIssue = (i: LabIssue): string => `${i.file}:${i.line}:${i.col}: ${i.field}: ${i.message}`;

/** A path into the document: map keys and sequence indexes. */
type Path = Array<string | number>;

/** `vms.web.nics[0].vlan` */
export function fieldText(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s || '(file)';
}

/** Default memory of a lab VM when the file gives none (MiB): launch()'s default. */
const DEFAULT_MEMORY = '1G';
/** Default CPUs: launch()'s default. */
const DEFAULT_CPUS = 2;
/** Most alias expansions yaml performs (a billion-laughs file stops here). */
const MAX_ALIASES = 100;

let compiled: ReturnType<Ajv['compile']> | null = null;
const schemaCheck = (): ReturnType<Ajv['compile']> => (compiled ??= new Ajv({ allErrors: true, allowUnionTypes: true, strict: true, verbose: true }).compile(LAB_SCHEMA));

/** Finds where `path` is in the document: the deepest node on it, and for `key` the key node itself. */
function locate(doc: Document, lc: LineCounter, path: Path, key = false): { line: number; col: number } {
  let node: unknown = doc.contents;
  let at: Node | null = (doc.contents as Node | null) ?? null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown } | null)?.value ?? p.key) === String(seg));
      if (pair === undefined) break;
      if (key && i === path.length - 1 && pair.key && (pair.key as Node).range) {
        at = pair.key as Node;
        break;
      }
      node = pair.value;
      if ((pair.value as Node | null)?.range) at = pair.value as Node;
      else if ((pair.key as Node | null)?.range) at = pair.key as Node;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if ((node as Node | undefined)?.range) at = node as Node;
      else break;
    } else break;
  }
  const offset = at?.range?.[0] ?? 0;
  return lc.linePos(offset);
}

/** The words of a VmnetError from a parser shared with the CLI, without the flag it names. */
const why = (e: unknown): string => {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/^bad --[a-z-]+ ("[^"]*"|\S+): /, '').replace(/^--[a-z-]+ "[^"]*": /, '');
};

/** An ajv error in words a lab author reads. */
function ajvMessage(e: ErrorObject, path: Path): string {
  const last = path[path.length - 1];
  switch (e.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys(((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      const extra = String((e.params as { additionalProperty: string }).additionalProperty);
      return `unknown field "${extra}"${allowed.length ? ` (known: ${allowed.join(', ')})` : ''}`;
    }
    case 'required':
      return `missing field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      if (last === 'subnet') return 'must be an IPv4 network such as 10.0.5.0/24';
      if (last === 'mac') return 'must be a MAC address such as 52:54:00:12:34:56';
      return e.message ?? 'bad value';
    case 'minItems':
    case 'maxItems':
      if (last === 'between') return 'must name exactly two switches';
      if (last === 'trunk') return 'must list at least one VLAN';
      return e.message ?? 'bad value';
    case 'minimum':
    case 'maximum':
      if (path.includes('vlans') || last === 'vlan' || last === 'native' || path.includes('trunk')) return 'must be a VLAN id 1-4094';
      return e.message ?? 'bad value';
    case 'type':
      return `must be ${String((e.params as { type: string | string[] }).type).replaceAll(',', ' or ')}`;
    default:
      return e.message ?? 'bad value';
  }
}

const pointerPath = (pointer: string, value: unknown): Path => {
  const out: Path = [];
  let v = value;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(v) && /^\d+$/.test(seg)) {
      out.push(Number(seg));
      v = v[Number(seg)];
    } else {
      out.push(seg);
      v = (v as Record<string, unknown> | null)?.[seg];
    }
  }
  return out;
};

/**
 * A lab's name from its file, leniently (for `vmnet down` of a file that no
 * longer validates, or is gone): a string `name` at the top, else the file
 * name without .yaml/.yml.
 */
export function labName(text: string | null, file: string): string {
  let name: unknown;
  try {
    name = text === null ? undefined : (parseDocument(text).toJS({ maxAliasCount: MAX_ALIASES }) as { name?: unknown } | null)?.name;
  } catch {
    name = undefined;
  }
  const n = typeof name === 'string' ? name : (file.split('/').pop() ?? 'lab').replace(/\.ya?ml$/i, '');
  validateSwitchName(n);
  return n;
}

/**
 * Where fields of a topology file are, for issues found after validation
 * (load.ts: a file the lab names that does not exist).
 * @returns a function from a field's path to its line and column
 */
export function labLocator(text: string): (path: Path) => { line: number; col: number } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  return (path) => locate(doc, lc, path, true);
}

/**
 * Parses and validates a topology file.
 * @param text the file's contents
 * @param file its path as the user named it (shown in messages; relative
 *   paths in the file are resolved against its directory)
 * @param fallbackName the lab's name when the file has no `name` (default: the file name without .yaml/.yml)
 * @returns the normalised lab
 * @throws LabInvalid with every issue found (exit 2 at the CLI)
 */
export function parseLab(text: string, file: string, fallbackName?: string): LabSpec {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const issues: LabIssue[] = [];
  const at = (path: Path, message: string, key = false): void => {
    issues.push({ file, ...locate(doc, lc, path, key), field: fieldText(path), message });
  };
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
      issues.push({ file, line: pos.line, col: pos.col, field: '(yaml)', message: e.message.split('\n')[0]! });
    }
    throw new LabInvalid(issues);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    at([], `cannot expand the document: ${why(e)}`);
    throw new LabInvalid(issues);
  }
  if (data === null || data === undefined) data = {};
  const check = schemaCheck();
  if (!check(data)) {
    for (const e of check.errors ?? []) {
      const path = pointerPath(e.instancePath, data);
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        at([...path, extra], ajvMessage(e, path), true);
      } else at(path, ajvMessage(e, path));
    }
    throw new LabInvalid(sorted(issues));
  }
  const spec = meaning(data as RawLab, file, fallbackName, at);
  if (issues.length > 0) throw new LabInvalid(sorted(issues));
  return spec;
}

const sorted = (issues: LabIssue[]): LabIssue[] => issues.sort((a, b) => a.line - b.line || a.col - b.col);

/** Step 3: the checks that need the whole file, and normalisation. */
function meaning(raw: RawLab, file: string, fallbackName: string | undefined, at: (path: Path, message: string, key?: boolean) => void): LabSpec {
  const dir = dirname(resolve(file));
  const tryOr = <T>(path: Path, f: () => T, key = false): T | null => {
    try {
      return f();
    } catch (e) {
      at(path, why(e), key);
      return null;
    }
  };
  const name = raw.name ?? fallbackName ?? (file.split('/').pop() ?? 'lab').replace(/\.ya?ml$/i, '');
  // the same rule as labName(), which `down` uses on files that no longer validate
  tryOr(raw.name !== undefined ? ['name'] : [], () => validateSwitchName(name));

  const rawSwitches = raw.switches ?? {};
  const rawVms = raw.vms ?? {};
  const used = new Map<string, Set<number>>(); // VLANs each switch's NICs and links use
  const use = (sw: string, role: NormalRole): void => {
    const s = used.get(sw) ?? new Set<number>();
    used.set(sw, s);
    if ('vlan' in role) s.add(role.vlan);
    else {
      for (const v of role.trunk) s.add(v);
      if (role.native !== undefined) s.add(role.native);
    }
  };

  // Switches.
  const switches: LabSwitch[] = [];
  for (const [sw, s] of Object.entries(rawSwitches)) {
    const p = ['switches', sw];
    tryOr(p, () => validateSwitchName(sw), true);
    const gateway = s.gateway ?? s.subnet !== undefined;
    if (s.gateway === false && s.subnet !== undefined) at([...p, 'subnet'], 'a subnet is the gateway\'s network, and gateway: false asks for none: drop one of them');
    if (!gateway) {
      for (const f of ['isolated', 'host', 'host-loopback', 'dns'] as const) if (s[f] !== undefined) at([...p, f], `needs a gateway on the switch (give it a subnet or gateway: true)`, true);
    }
    if (gateway) tryOr([...p, s.subnet !== undefined ? 'subnet' : 'mtu'], () => resolveGatewayConfig({ subnet: s.subnet ?? '10.0.2.0/24', ...(s.mtu !== undefined ? { mtu: s.mtu } : {}) }));
    const dns: string[] = [];
    for (const [host, ip] of Object.entries(s.dns ?? {})) {
      if (tryOr([...p, 'dns', host], () => parseDnsRecord(`${host}=${ip}`)) !== null) dns.push(`${host.toLowerCase()}=${ip}`);
    }
    switches.push({
      name: sw,
      gateway,
      subnet: gateway ? (s.subnet ?? '10.0.2.0/24') : null,
      isolated: gateway && (s.isolated ?? false),
      hostAccess: s.host ?? true,
      hostLoopback: s['host-loopback'] ?? true,
      mtu: s.mtu ?? null,
      dns: dns.sort(),
      vlans: [...(s.vlans ?? [])].sort((a, b) => a - b),
    });
  }
  const known = new Set(Object.keys(rawSwitches));
  const declared = (sw: string): number[] | undefined => rawSwitches[sw]?.vlans;
  const checkVlans = (path: Path, sw: string, role: NormalRole): void => {
    const d = declared(sw);
    if (d === undefined) return;
    const vids = 'vlan' in role ? [role.vlan] : [...role.trunk, ...(role.native !== undefined ? [role.native] : [])];
    for (const v of vids) if (v !== 1 && !d.includes(v)) at(path, `switch ${sw} declares vlans [${d.join(', ')}] and not ${v}: add it there`);
  };

  // VMs.
  const vms: LabVm[] = [];
  const macs = new Map<string, string>();
  const forwardsSeen = new Map<string, string>();
  for (const [vm, v] of Object.entries(rawVms)) {
    const p = ['vms', vm];
    tryOr(p, () => validateName(vm), true);
    const userData = v['user-data'] === undefined ? [] : (Array.isArray(v['user-data']) ? v['user-data'] : [v['user-data']]).map((f) => resolve(dir, f));
    if (userData.length > 0 && v.image === undefined) at([...p, 'user-data'], 'cloud-init runs on an image: user-data goes with image (vmnet seeds it on a disk the guest finds)', true);
    const boot = bootOf(v, dir, p, at);
    const memoryMiB = tryOr([...p, 'memory'], () => parseMemory(String(v.memory ?? DEFAULT_MEMORY))) ?? 0;
    const nics: LabNic[] = [];
    (v.nics ?? []).forEach((n, i) => {
      const np = [...p, 'nics', i];
      if (!known.has(n.switch)) at([...np, 'switch'], `no switch ${JSON.stringify(n.switch)} in this file${known.size ? ` (switches: ${[...known].join(', ')})` : ''}`);
      if (n.vlan !== undefined && (n.trunk !== undefined || n.native !== undefined)) at([...np, 'vlan'], 'a NIC is an access port (vlan) or a trunk (trunk, native), not both');
      if (n.native !== undefined && n.trunk === undefined) at([...np, 'native'], 'native goes with trunk');
      const role = tryOr(np, () => normaliseRole(n.trunk !== undefined ? { trunk: n.trunk, ...(n.native !== undefined ? { native: n.native } : {}) } : { vlan: n.vlan ?? 1 }));
      if (role === null) return;
      if (known.has(n.switch)) {
        checkVlans(np, n.switch, role);
        use(n.switch, role);
      }
      if (n.mac !== undefined) {
        const mac = n.mac.toLowerCase();
        if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) at([...np, 'mac'], 'must be a unicast MAC (the first byte even)');
        const other = macs.get(mac);
        if (other !== undefined) at([...np, 'mac'], `${mac} is already the MAC of ${other}`);
        macs.set(mac, `vms.${vm}.nics[${i}]`);
      }
      nics.push({ switch: n.switch, role, mac: n.mac?.toLowerCase() ?? null, impair: impairOf(n.impair, [...np, 'impair'], at) });
    });
    const forwards: string[] = [];
    (v.forwards ?? []).forEach((f, i) => {
      const spec = tryOr([...p, 'forwards', i], () => parseForward(f));
      if (spec === null) return;
      const text = formatForward(spec);
      const key = `${spec.proto}:${spec.hostPort}`;
      const other = forwardsSeen.get(key);
      if (other !== undefined) at([...p, 'forwards', i], `host port ${spec.hostPort}/${spec.proto} is already forwarded by ${other}`);
      forwardsSeen.set(key, `vms.${vm}.forwards[${i}]`);
      forwards.push(text);
    });
    if (forwards.length > 0) {
      const first = nics[0];
      const sw = first === undefined ? undefined : rawSwitches[first.switch];
      if (first === undefined) at([...p, 'forwards'], 'forwards go through the gateway of the VM\'s first NIC\'s switch, and this VM has no NIC', true);
      else if (sw !== undefined && !(sw.gateway ?? sw.subnet !== undefined)) at([...p, 'forwards'], `forwards go through the gateway of the VM's first NIC's switch, and ${first.switch} has none`, true);
      else if (!('vlan' in first.role) || first.role.vlan !== 1) at([...p, 'forwards'], 'forwards go through the gateway, which is on VLAN 1: put the VM\'s first NIC on VLAN 1', true);
    }
    vms.push({ name: vm, boot, memoryMiB, cpus: v.cpus ?? DEFAULT_CPUS, accel: v.accel ?? 'auto', userData, nics, forwards: forwards.sort() });
  }

  // Links.
  const links: LabLink[] = [];
  const seen = new Map<string, number>();
  const parent = new Map<string, string>(); // union-find over switches: a link inside one tree closes a loop
  const root = (s: string): string => {
    let r = s;
    while (parent.has(r)) r = parent.get(r)!;
    return r;
  };
  (raw.links ?? []).forEach((l, i) => {
    const p = ['links', i];
    const impair = impairOf(l.impair, [...p, 'impair'], at);
    const [a, b] = l.between;
    let ok = true;
    for (const [j, s] of [a, b].entries()) {
      if (!known.has(s)) {
        at([...p, 'between', j], `no switch ${JSON.stringify(s)} in this file`);
        ok = false;
      }
    }
    if (!ok) return;
    if (a === b) return void at([...p, 'between'], 'a link joins two different switches');
    const key = linkKey({ a, b });
    if (seen.has(key)) return void at([...p, 'between'], `links[${seen.get(key)}] already joins ${a} and ${b} (a second link would be a loop)`);
    seen.set(key, i);
    if (root(a) === root(b)) return void at([...p, 'between'], `this link closes a loop through ${a} and ${b} (vmnet's switches run no spanning tree; cable them as a tree)`);
    parent.set(root(a), root(b));
    const native = l.native ?? 1;
    if (l.vlans === undefined) {
      // The default is what both switches declare, so that a NIC moved to another VLAN never changes a link.
      for (const [j, s] of [a, b].entries()) {
        const undeclared = [...(used.get(s) ?? [])].filter((v) => v !== 1 && v !== native);
        if (declared(s) === undefined && undeclared.length > 0) at([...p, 'between', j], `switch ${s} has NICs on VLAN ${undeclared.sort((x, y) => x - y).join(', ')}: declare them (switches.${s}.vlans) or list the link's vlans, since a link carries the VLANs its switches declare`);
      }
    }
    const vlans = (l.vlans ?? [...(declared(a) ?? []), ...(declared(b) ?? [])]).filter((v) => v !== native);
    const role = tryOr(p, () => normaliseRole({ trunk: vlans, native }));
    if (role === null) return;
    const ga = rawSwitches[a]!;
    const gb = rawSwitches[b]!;
    if ((ga.gateway ?? ga.subnet !== undefined) && (gb.gateway ?? gb.subnet !== undefined)) {
      at([...p, 'between'], `${a} and ${b} both have a gateway on VLAN 1, which this link joins: two DHCP servers on one LAN (give one gateway: false, or a native VLAN other than 1)`);
    }
    links.push({ a, b, role, impair });
  });
  return { name, file: resolve(file), switches, vms, links };
}

/**
 * A port's `impair` as the words config/link.ts reads, in its one order
 * (formatLinkPatch). A string is words (`loss=5% delay=50ms`); a map is a
 * word per key (`loss: 5%` is `loss=5%`, `down: true` is `down`), each read
 * alone first so that a bad one is reported at its own line. `clear` has no
 * place in a file, which says what a port has: no impair is a perfect link.
 * @returns null when there is none (or it had mistakes, reported through `at`)
 */
function impairOf(raw: RawImpair | undefined, path: Path, at: (path: Path, message: string, key?: boolean) => void): string | null {
  if (raw === undefined) return null;
  const words: Array<[Path, string]> = typeof raw === 'string'
    ? raw.split(/\s+/).filter(Boolean).map((w) => [path, w])
    : Object.entries(raw).map(([k, v]) => [[...path, k], (k === 'down' || k === 'up') && typeof v === 'boolean' ? ((k === 'down') === v ? 'down' : 'up') : `${k}=${String(v)}`]);
  let ok = true;
  for (const [p, w] of words) {
    try {
      if (w === 'clear' || w.startsWith('clear=')) throw new Error('a file says what faults a port has: leave impair out for a perfect link, instead of clear');
      parseLinkWords([w]);
    } catch (e) {
      at(p, why(e));
      ok = false;
    }
  }
  if (!ok) return null;
  try {
    const text = formatLinkPatch(parseLinkWords(words.map(([, w]) => w)));
    if (text === '') return null;
    // What up applies is the text: check it, on a cleared port (the direction(s) faulted get exactly these settings).
    checkImpairSettings({ ...PERFECT, ...parseLinkWords(text.split(' ')).set });
    return text;
  } catch (e) {
    at(path, why(e));
    return null;
  }
}

/** How a VM boots: exactly one of guest, image and kernel. */
function bootOf(v: RawVm, dir: string, p: Path, at: (path: Path, message: string, key?: boolean) => void): LabBoot {
  const ways = (['guest', 'image', 'kernel'] as const).filter((k) => v[k] !== undefined);
  if (ways.length !== 1) {
    at(ways.length > 1 ? [...p, ways[1]!] : p, ways.length > 1 ? `give one of guest, image and kernel, not ${ways.join(' and ')}` : 'nothing to boot: give guest: test, an image or a kernel', ways.length > 1);
  }
  if (v.image === undefined) {
    for (const k of ['format', 'snapshot'] as const) if (v[k] !== undefined) at([...p, k], 'goes with image', true);
  }
  if (v.kernel === undefined && v.initrd !== undefined) at([...p, 'initrd'], 'goes with kernel', true);
  if (v.kernel === undefined && v.guest === undefined && v.append !== undefined) at([...p, 'append'], 'goes with kernel or guest: test', true);
  if (v.guest !== undefined) return { kind: 'test-guest', append: v.append ?? null };
  if (v.image !== undefined) return { kind: 'image', image: isImageUrl(v.image) ? v.image : resolve(dir, v.image), format: v.format ?? null, snapshot: v.snapshot ?? false };
  return { kind: 'kernel', kernel: resolve(dir, v.kernel ?? ''), initrd: v.initrd !== undefined ? resolve(dir, v.initrd) : null, append: v.append ?? null };
}
