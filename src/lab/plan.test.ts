import { describe, expect, it } from 'vitest';
import { actionText, planDown, planUp, pruneRecord, recordAction, type Action, type LabRecord, type Observed } from './plan.js';
import { parseLab } from './validate.js';
import type { LabSpec } from './model.js';

const FILE = `
switches:
  core: { vlans: [10, 20] }
  edge: { subnet: 10.0.9.0/24 }
vms:
  r: { guest: test, memory: 256M, nics: [{ switch: core, vlan: 10 }, { switch: core, vlan: 20 }] }
  h: { guest: test, memory: 256M, nics: [{ switch: edge }], forwards: ["8080:80"] }
links:
  - between: [core, edge]
    native: 30
`;
const spec = (text = FILE): LabSpec => parseLab(text, '/l/lab.yaml');
const none: Observed = { switches: new Set(), vms: new Set(), links: new Set() };

/** Applies a plan to a record the way apply.ts does, and returns what would then run. */
function applied(want: LabSpec, rec: LabRecord | null): { rec: LabRecord; obs: Observed; lines: string[] } {
  const plan = planUp(want, rec, none);
  let r: LabRecord = rec ?? { version: 1, name: want.name, file: want.file, switches: {}, vms: {}, links: {} };
  for (const a of plan.actions) r = recordAction(r, a);
  r = pruneRecord(r, want);
  return { rec: r, obs: { switches: new Set(Object.keys(r.switches)), vms: new Set(Object.keys(r.vms)), links: new Set(Object.keys(r.links)) }, lines: plan.actions.map(actionText) };
}

describe('planUp', () => {
  it('a new lab: switches, then links, then VMs', () => {
    const p = planUp(spec(), null, none);
    expect(p.conflicts).toEqual([]);
    expect(p.actions.map(actionText)).toEqual(['created switch core (new)', 'created switch edge (new)', 'linked core — edge (new)', 'started VM r (new)', 'started VM h (new)']);
  });

  it('up on a running lab that matches its file does nothing', () => {
    const { rec, obs } = applied(spec(), null);
    expect(planUp(spec(), rec, obs)).toEqual({ actions: [], conflicts: [] });
  });

  it('an edited file changes only what differs, and says what', () => {
    const { rec, obs } = applied(spec(), null);
    // Memory of one VM: that VM restarts, nothing else.
    expect(planUp(spec(FILE.replace('r: { guest: test, memory: 256M', 'r: { guest: test, memory: 512M')), rec, obs).actions.map(actionText)).toEqual([
      'stopped VM r (changed: memoryMiB 256 → 512)',
      'started VM r (changed: memoryMiB 256 → 512)',
    ]);
    // Forwards only: changed live.
    expect(planUp(spec(FILE.replace('"8080:80"', '"8081:80"')), rec, obs).actions.map(actionText)).toEqual([
      'removed forward 127.0.0.1:8080:80/tcp from VM h (no longer in the file)',
      'added forward 127.0.0.1:8081:80/tcp to VM h (new)',
    ]);
    // A switch's options: it is replaced, with its VMs and its link.
    expect(planUp(spec(FILE.replace('10.0.9.0/24', '10.0.8.0/24')), rec, obs).actions.map(actionText)).toEqual([
      'stopped VM h (its switch edge is replaced)',
      'removed switch edge (changed: subnet 10.0.9.0/24 → 10.0.8.0/24)',
      'created switch edge (changed: subnet 10.0.9.0/24 → 10.0.8.0/24)',
      'linked core — edge (edge is replaced)',
      'started VM h (its switch edge is replaced)',
    ]);
    // A link's VLANs: cut and made again.
    expect(planUp(spec(FILE.replace('native: 30', 'native: 30\n    vlans: [10]')), rec, obs).actions.map(actionText)).toEqual([
      'cut link core — edge (changed: role {"trunk":[10,20],"native":30} → {"trunk":[10],"native":30})',
      'linked core — edge (changed: role {"trunk":[10,20],"native":30} → {"trunk":[10],"native":30})',
    ]);
  });

  it('what died is started again; what left the file is stopped; others\' names are conflicts', () => {
    const { rec, obs } = applied(spec(), null);
    const died: Observed = { ...obs, vms: new Set(['h']), links: new Set() };
    expect(planUp(spec(), rec, died).actions.map(actionText)).toEqual(['linked core — edge (was down)', 'started VM r (was not running)']);
    // A switch that died: started again, and the VMs still running on it restarted (their NICs are on nothing).
    const swDied: Observed = { ...obs, switches: new Set(['core']), links: new Set() };
    expect(planUp(spec(), rec, swDied).actions.map(actionText)).toEqual([
      'stopped VM h (its switch edge had stopped, and QEMU does not reconnect a NIC)',
      'created switch edge (was not running)',
      'linked core — edge (was down)',
      'started VM h (its switch edge had stopped, and QEMU does not reconnect a NIC)',
    ]);
    const smaller = spec(FILE.replace(/  h: .*\n/, ''));
    expect(planUp(smaller, rec, obs).actions.map(actionText)).toEqual(['stopped VM h (no longer in the file)']);
    const foreign: Observed = { switches: new Set(['core']), vms: new Set(['h']), links: new Set() };
    expect(planUp(spec(), null, foreign).conflicts).toEqual([
      'switch core runs but is not part of lab lab (remove it with vmnet switch rm core, or rename it in /l/lab.yaml)',
      'VM h runs but is not part of lab lab (stop it with vmnet stop h, or rename it in /l/lab.yaml)',
    ]);
  });

  it('a lab of the same name up from another file is a conflict: nothing is planned', () => {
    const { rec, obs } = applied(spec(), null);
    expect(planUp(parseLab(FILE, '/elsewhere/lab.yaml'), rec, obs)).toEqual({
      actions: [],
      conflicts: ['lab lab is up from /l/lab.yaml; take it down first (vmnet down /l/lab.yaml), or give /elsewhere/lab.yaml another name'],
    });
  });

  it('the record is written before each action: an interrupted up is still owned, and down finds it all', () => {
    const want = spec();
    let rec: LabRecord = { version: 1, name: 'lab', file: want.file, switches: {}, vms: {}, links: {} };
    const acts = planUp(want, null, none).actions;
    for (const a of acts.slice(0, 3)) rec = recordAction(rec, a); // switches and link recorded, crash before the VMs
    const obs: Observed = { switches: new Set(['core', 'edge']), vms: new Set(), links: new Set(['core~edge']) };
    expect(planUp(want, rec, obs).actions.map((a: Action) => a.op)).toEqual(['start-vm', 'start-vm']);
    expect(planDown(rec, obs).map(actionText)).toEqual(['removed switch core (down)', 'removed switch edge (down)']);
    const all = applied(want, null);
    expect(planDown(all.rec, all.obs).map((a) => a.op)).toEqual(['stop-vm', 'stop-vm', 'remove-switch', 'remove-switch']);
  });

  it('link faults: set after a start, changed and cleared live (no restart, nothing else), old records without them', () => {
    const faulty = FILE.replace('nics: [{ switch: edge }]', 'nics: [{ switch: edge, impair: loss=5% seed=7 }]').replace('native: 30', 'native: 30\n    impair: { delay: 20ms }');
    // A new lab: the faults go on after their VM and link exist.
    expect(planUp(spec(faulty), null, none).actions.map(actionText)).toEqual([
      'created switch core (new)',
      'created switch edge (new)',
      'linked core — edge (new)',
      'started VM r (new)',
      'started VM h (new)',
      'set link faults on VM h eth0: loss=5% seed=7 (new)',
      'set link faults on link core → edge: delay=20ms (new)',
    ]);
    const { rec, obs } = applied(spec(faulty), null);
    expect(rec.vms.h!.nics[0]!.impair).toBe('loss=5% seed=7');
    expect(planUp(spec(faulty), rec, obs)).toEqual({ actions: [], conflicts: [] });
    // Only the faults changed: that one change, live.
    expect(planUp(spec(faulty.replace('loss=5% seed=7', 'seed=7 loss=20%')), rec, obs).actions.map(actionText)).toEqual(['set link faults on VM h eth0: loss=20% seed=7 (changed: loss=5% seed=7 → loss=20% seed=7)']);
    expect(planUp(spec(faulty.replace('{ delay: 20ms }', 'down')), rec, obs).actions.map(actionText)).toEqual(['set link faults on link core → edge: down (changed: delay=20ms → down)']);
    // Faults removed from the file: the ports are cleared.
    expect(planUp(spec(), rec, obs).actions.map(actionText)).toEqual(['cleared link faults on VM h eth0 (no longer in the file)', 'cleared link faults on link core → edge (no longer in the file)']);
    // A VM restarted for another change gets its faults again on its new port.
    expect(planUp(spec(faulty.replace('h: { guest: test, memory: 256M', 'h: { guest: test, memory: 512M')), rec, obs).actions.map(actionText)).toEqual([
      'stopped VM h (changed: memoryMiB 256 → 512)',
      'started VM h (changed: memoryMiB 256 → 512)',
      'set link faults on VM h eth0: loss=5% seed=7 (new)',
    ]);
    // An up interrupted after the start, before the faults: the record says none, so the next up sets them.
    let half: LabRecord = { version: 1, name: 'lab', file: spec(faulty).file, switches: {}, vms: {}, links: {} };
    for (const a of planUp(spec(faulty), null, none).actions.filter((a) => a.op !== 'impair')) half = recordAction(half, a);
    expect(planUp(spec(faulty), half, obs).actions.map((a) => a.op)).toEqual(['impair', 'impair']);
    // A record written before faults existed (no impair field) is a lab without faults.
    const old = JSON.parse(JSON.stringify(applied(spec(), null).rec).replaceAll(',"impair":null', '')) as LabRecord;
    expect(JSON.stringify(old)).not.toContain('impair');
    expect(planUp(spec(), old, obs)).toEqual({ actions: [], conflicts: [] });
  });
});
