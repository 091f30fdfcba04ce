/**
 * Theory of operation: what `vmnet up` and `vmnet down` must do, decided
 * without doing anything. Three inputs, all plain values:
 *
 * - want: the file, validated (validate.ts → LabSpec);
 * - record: what this lab last applied (its state.json, state.ts): the spec
 *   of every switch, VM and link it started, written before each start (so
 *   that it also covers a start that was interrupted) and after each stop;
 * - observed: which switches and VMs run now, and which links are up (a
 *   link port on switch `a` named after switch `b`).
 *
 * Ownership comes from the record: a switch or VM that runs under a name
 * the file uses but the lab never started is someone else's, and `up`
 * refuses (a conflict) instead of taking it over or stopping it.
 *
 * Idempotence is comparison by value: a running element whose recorded
 * spec equals the wanted one is left alone, so `up` on a running lab that
 * matches its file does nothing. What differs is replaced, and what depends
 * on it with it: switch options apply when a switch is created, so a
 * changed switch is removed and created again, and the VMs with a NIC on
 * it are restarted (QEMU 7.2's stream netdev does not reconnect) and its
 * links made again; so are the VMs of a switch that died and is started
 * again. A VM whose only change is its forwards keeps running
 * and gets them added and removed live. Every action carries the reason it
 * is taken, which `up` prints.
 *
 * Link faults (`impair` on a NIC or a link) are not part of what makes a VM
 * or link "changed": they are set on the running port (`impair` actions),
 * so a file whose only change is a fault changes that port and nothing else,
 * and a fault removed from the file clears its port. A VM or link started
 * (anew) is recorded without faults, and gets them from an `impair` action
 * after it, recorded when done: an up interrupted between the two sets them
 * on the next one.
 *
 * Order: stop VMs, cut links, remove switches, create switches, make
 * links, start VMs, set link faults, then change forwards — so that nothing
 * starts on a switch about to go, every VM starts on switches and links that
 * are already there, and faults go on ports that exist.
 */
import { linkKey, linkShape, vmShape, type LabLink, type LabSpec, type LabSwitch, type LabVm } from './model.js';

/** What a lab applied, as its state.json records it (state.ts). */
export interface LabRecord {
  version: 1;
  name: string;
  /** The topology file it was brought up from. */
  file: string;
  switches: Record<string, LabSwitch>;
  vms: Record<string, LabVm>;
  /** By {@link linkKey}. */
  links: Record<string, LabLink>;
}

/** What runs now. */
export interface Observed {
  switches: ReadonlySet<string>;
  vms: ReadonlySet<string>;
  /** Keys ({@link linkKey}) of the links that are up. */
  links: ReadonlySet<string>;
}

/** Whose port link faults go on: a VM's NIC (its index) or switch `a`'s end of a link. */
export type ImpairTarget = { vm: string; nic: number } | { link: LabLink };

/** One step of a plan; `why` says why, in words `up` prints. */
export type Action =
  | { op: 'stop-vm'; name: string; why: string }
  | { op: 'unlink'; link: LabLink; why: string }
  | { op: 'remove-switch'; name: string; why: string }
  | { op: 'create-switch'; sw: LabSwitch; why: string }
  | { op: 'link'; link: LabLink; why: string }
  | { op: 'start-vm'; vm: LabVm; why: string }
  /** Sets a port's faults on a cleared port (null: clears them). */
  | { op: 'impair'; target: ImpairTarget; impair: string | null; why: string }
  | { op: 'forward-rm'; vm: string; spec: string; why: string }
  | { op: 'forward-add'; vm: string; spec: string; why: string };

/** A plan for `up`. */
export interface Plan {
  actions: Action[];
  /** Names the file uses that run outside the lab: `up` refuses to start while there are any. */
  conflicts: string[];
}

const ORDER: Record<Action['op'], number> = { 'stop-vm': 0, unlink: 1, 'remove-switch': 2, 'create-switch': 3, link: 4, 'start-vm': 5, impair: 6, 'forward-rm': 7, 'forward-add': 8 };

/** Why a port's faults change from `was` to `now` (both as formatLinkPatch says them; null: none). */
const impairWhy = (was: string | null, now: string | null): string => (now === null ? 'no longer in the file' : was === null ? 'new' : `changed: ${was} → ${now}`);

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The fields in which two specs differ, in words: `memoryMiB 256 → 512, cpus 1 → 2`.
 * @returns '' when they are equal
 */
export function differences(was: object, now: object): string {
  const out: string[] = [];
  const keys = new Set([...Object.keys(was), ...Object.keys(now)]);
  const show = (v: unknown): string => (v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));
  for (const k of keys) {
    const a = (was as Record<string, unknown>)[k];
    const b = (now as Record<string, unknown>)[k];
    if (!same(a, b)) out.push(`${k} ${show(a)} → ${show(b)}`);
  }
  return out.join(', ');
}

/**
 * Plans `vmnet up`: the actions that take what runs to what the file says.
 * @param want the validated file
 * @param rec what the lab last applied, or null for a lab never brought up
 * @param obs what runs now
 */
export function planUp(want: LabSpec, rec: LabRecord | null, obs: Observed): Plan {
  const actions: Action[] = [];
  const conflicts: string[] = [];
  const recSw = rec?.switches ?? {};
  const recVm = rec?.vms ?? {};
  const recLink = rec?.links ?? {};
  if (rec !== null && rec.file !== want.file) {
    conflicts.push(`lab ${want.name} is up from ${rec.file}; take it down first (vmnet down ${rec.file}), or give ${want.file} another name`);
    return { actions: [], conflicts };
  }

  // Switches: kept, replaced, created, removed.
  const gone = new Set<string>(); // switches this plan removes (their links and VMs' ports go with them)
  const restarted = new Set<string>(); // switches of the lab that died: VMs still running on them have a NIC on nothing
  for (const s of want.switches) {
    const r = recSw[s.name];
    const running = obs.switches.has(s.name);
    if (r === undefined && running) {
      conflicts.push(`switch ${s.name} runs but is not part of lab ${want.name} (remove it with vmnet switch rm ${s.name}, or rename it in ${want.file})`);
      continue;
    }
    if (running && same(r, s)) continue;
    if (running) {
      actions.push({ op: 'remove-switch', name: s.name, why: `changed: ${differences(r!, s)}` });
      gone.add(s.name);
      actions.push({ op: 'create-switch', sw: s, why: `changed: ${differences(r!, s)}` });
    } else {
      actions.push({ op: 'create-switch', sw: s, why: r === undefined ? 'new' : 'was not running' });
      if (r !== undefined) restarted.add(s.name); // its VMs lost their ports with it
    }
  }
  const wantedSw = new Set(want.switches.map((s) => s.name));
  for (const name of Object.keys(recSw)) {
    if (wantedSw.has(name) || !obs.switches.has(name)) continue;
    actions.push({ op: 'remove-switch', name, why: 'no longer in the file' });
    gone.add(name);
  }

  // VMs.
  const wantedVm = new Set(want.vms.map((v) => v.name));
  for (const name of Object.keys(recVm)) {
    if (!wantedVm.has(name) && obs.vms.has(name)) actions.push({ op: 'stop-vm', name, why: 'no longer in the file' });
  }
  for (const v of want.vms) {
    const r = recVm[v.name];
    const running = obs.vms.has(v.name);
    if (r === undefined && running) {
      conflicts.push(`VM ${v.name} runs but is not part of lab ${want.name} (stop it with vmnet stop ${v.name}, or rename it in ${want.file})`);
      continue;
    }
    const faults = (started: boolean) => v.nics.forEach((n, nic) => {
      const was = started ? null : (r!.nics[nic]?.impair ?? null);
      if (was !== n.impair) actions.push({ op: 'impair', target: { vm: v.name, nic }, impair: n.impair, why: impairWhy(was, n.impair) });
    });
    if (!running) {
      actions.push({ op: 'start-vm', vm: v, why: r === undefined ? 'new' : 'was not running' });
      faults(true);
      continue;
    }
    const lost = [...new Set([...r!.nics, ...v.nics].map((n) => n.switch))].filter((s) => gone.has(s) || restarted.has(s));
    const shape = differences(vmShape(r!), vmShape(v));
    if (shape !== '' || lost.length > 0) {
      const why = shape !== '' ? `changed: ${shape}` : `its switch ${lost.join(', ')} ${lost.some((s) => gone.has(s)) ? 'is replaced' : 'had stopped, and QEMU does not reconnect a NIC'}`;
      actions.push({ op: 'stop-vm', name: v.name, why });
      actions.push({ op: 'start-vm', vm: v, why });
      faults(true);
      continue;
    }
    faults(false);
    for (const f of r!.forwards) if (!v.forwards.includes(f)) actions.push({ op: 'forward-rm', vm: v.name, spec: f, why: 'no longer in the file' });
    for (const f of v.forwards) if (!r!.forwards.includes(f)) actions.push({ op: 'forward-add', vm: v.name, spec: f, why: 'new' });
  }

  // Links.
  const wantedLinks = new Set<string>();
  for (const l of want.links) {
    const key = linkKey(l);
    wantedLinks.add(key);
    const r = recLink[key];
    const up = obs.links.has(key) && !gone.has(l.a) && !gone.has(l.b);
    const changed = r !== undefined ? differences(linkShape(r), linkShape(l)) : '';
    if (up && r !== undefined && changed === '') {
      const was = r.impair ?? null;
      if (was !== l.impair) actions.push({ op: 'impair', target: { link: l }, impair: l.impair, why: impairWhy(was, l.impair) });
      continue;
    }
    if (up && r !== undefined) actions.push({ op: 'unlink', link: r, why: `changed: ${changed}` });
    const why = changed !== '' ? `changed: ${changed}` : gone.has(l.a) || gone.has(l.b) ? `${gone.has(l.a) ? l.a : l.b} is replaced` : r === undefined ? 'new' : 'was down';
    actions.push({ op: 'link', link: l, why });
    if (l.impair !== null) actions.push({ op: 'impair', target: { link: l }, impair: l.impair, why: impairWhy(null, l.impair) });
  }
  for (const [key, r] of Object.entries(recLink)) {
    if (!wantedLinks.has(key) && obs.links.has(key) && !gone.has(r.a) && !gone.has(r.b)) actions.push({ op: 'unlink', link: r, why: 'no longer in the file' });
  }
  return { actions: actions.sort((x, y) => ORDER[x.op] - ORDER[y.op]), conflicts };
}

/**
 * Plans `vmnet down`: stop every VM and remove every switch the lab
 * started that still runs (links go with their switches).
 */
export function planDown(rec: LabRecord, obs: Observed): Action[] {
  const actions: Action[] = [];
  for (const name of Object.keys(rec.vms)) if (obs.vms.has(name)) actions.push({ op: 'stop-vm', name, why: 'down' });
  for (const name of Object.keys(rec.switches)) if (obs.switches.has(name)) actions.push({ op: 'remove-switch', name, why: 'down' });
  return actions;
}

/**
 * The record after an action (apply.ts writes it before a start, after a stop).
 * @returns a new record; `rec` is not changed
 */
export function recordAction(rec: LabRecord, a: Action): LabRecord {
  const next: LabRecord = { ...rec, switches: { ...rec.switches }, vms: { ...rec.vms }, links: { ...rec.links } };
  switch (a.op) {
    case 'create-switch':
      next.switches[a.sw.name] = a.sw;
      break;
    case 'remove-switch':
      delete next.switches[a.name];
      for (const [k, l] of Object.entries(next.links)) if (l.a === a.name || l.b === a.name) delete next.links[k];
      break;
    case 'start-vm':
      next.vms[a.vm.name] = { ...a.vm, nics: a.vm.nics.map((n) => ({ ...n, impair: null })) }; // a new port is a perfect link until an impair action
      break;
    case 'stop-vm':
      delete next.vms[a.name];
      break;
    case 'link':
      next.links[linkKey(a.link)] = { ...a.link, impair: null };
      break;
    case 'impair': {
      const t = a.target;
      if ('link' in t) {
        const l = next.links[linkKey(t.link)];
        if (l !== undefined) next.links[linkKey(t.link)] = { ...l, impair: a.impair };
      } else {
        const v = next.vms[t.vm];
        if (v !== undefined) next.vms[t.vm] = { ...v, nics: v.nics.map((n, i) => (i === t.nic ? { ...n, impair: a.impair } : n)) };
      }
      break;
    }
    case 'unlink':
      delete next.links[linkKey(a.link)];
      break;
    case 'forward-add':
    case 'forward-rm': {
      const v = next.vms[a.vm];
      if (v !== undefined) next.vms[a.vm] = { ...v, forwards: a.op === 'forward-add' ? [...v.forwards, a.spec].sort() : v.forwards.filter((f) => f !== a.spec) };
      break;
    }
  }
  return next;
}

/** `VM web eth0` or `link core → edge` (the link's end at `core`: its egress goes to `edge`). */
const impairTargetText = (t: ImpairTarget): string => ('link' in t ? `link ${t.link.a} → ${t.link.b}` : `VM ${t.vm} eth${t.nic}`);

/** What an action was for, for an error: `start VM web`. */
export function actionGoal(a: Action): string {
  switch (a.op) {
    case 'stop-vm':
      return `stop VM ${a.name}`;
    case 'unlink':
      return `cut link ${a.link.a} — ${a.link.b}`;
    case 'remove-switch':
      return `remove switch ${a.name}`;
    case 'create-switch':
      return `create switch ${a.sw.name}`;
    case 'link':
      return `link ${a.link.a} — ${a.link.b}`;
    case 'start-vm':
      return `start VM ${a.vm.name}`;
    case 'impair':
      return `${a.impair === null ? 'clear' : 'set'} link faults on ${impairTargetText(a.target)}`;
    case 'forward-rm':
      return `remove forward ${a.spec} from VM ${a.vm}`;
    case 'forward-add':
      return `add forward ${a.spec} to VM ${a.vm}`;
  }
}

/** One line for an action, as `up` and `down` print it: `started VM web (new)`. */
export function actionText(a: Action): string {
  switch (a.op) {
    case 'stop-vm':
      return `stopped VM ${a.name} (${a.why})`;
    case 'unlink':
      return `cut link ${a.link.a} — ${a.link.b} (${a.why})`;
    case 'remove-switch':
      return `removed switch ${a.name} (${a.why})`;
    case 'create-switch':
      return `created switch ${a.sw.name} (${a.why})`;
    case 'link':
      return `linked ${a.link.a} — ${a.link.b} (${a.why})`;
    case 'start-vm':
      return `started VM ${a.vm.name} (${a.why})`;
    case 'impair':
      return a.impair === null ? `cleared link faults on ${impairTargetText(a.target)} (${a.why})` : `set link faults on ${impairTargetText(a.target)}: ${a.impair} (${a.why})`;
    case 'forward-rm':
      return `removed forward ${a.spec} from VM ${a.vm} (${a.why})`;
    case 'forward-add':
      return `added forward ${a.spec} to VM ${a.vm} (${a.why})`;
  }
}

/** The record after a successful `up`: entries the file no longer has are dropped (they were stopped, or were not running). */
export function pruneRecord(rec: LabRecord, want: LabSpec): LabRecord {
  const sw = new Set(want.switches.map((s) => s.name));
  const vm = new Set(want.vms.map((v) => v.name));
  const ln = new Set(want.links.map(linkKey));
  const keep = <T>(o: Record<string, T>, s: Set<string>) => Object.fromEntries(Object.entries(o).filter(([k]) => s.has(k)));
  return { ...rec, file: want.file, switches: keep(rec.switches, sw), vms: keep(rec.vms, vm), links: keep(rec.links, ln) };
}
