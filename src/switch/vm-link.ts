/**
 * Theory of operation: `vmnet link set|show VM[:NIC]` as library calls.
 *
 * A VM's NIC on a switch connects to a socket of its own that the launcher
 * asked for with the owner `VM:NIC` (launch.ts, server.ts ownerSocket), so
 * the switch knows which port is which NIC, whatever MAC the guest uses (a
 * bond moves one MAC between two NICs). These calls look through the
 * running switches for ports of that owner (every switch NIC of the VM when
 * no NIC is named) and send each switch the change (daemon.ts `link-set`,
 * `link-show`).
 */
import { VmnetError } from '../errors.js';
import { parseLinkWords, type LinkPatch } from '../config/link.js';
import { listSwitches, switchLink, type PortLink } from './daemon.js';

/** One VM NIC's switch port and its link faults. */
export interface VmLink extends PortLink {
  /** The switch the NIC is on. */
  switch: string;
}

/** `web` or `web:1`, checked. */
function parseTarget(target: string): { vm: string; nic: number | null } {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?::(\d{1,3}))?$/.exec(target);
  if (!m) throw new VmnetError('E_USAGE', `bad link target ${JSON.stringify(target)}: give VM or VM:NIC, e.g. web or web:1`);
  return { vm: m[1]!, nic: m[2] === undefined ? null : Number(m[2]) };
}

/** The switches and owners of a VM's switch NICs (one NIC, or all of them). */
async function findPorts(target: string, opts: { runtimeDir?: string }): Promise<Array<{ switch: string; owner: string }>> {
  const { vm, nic } = parseTarget(target);
  const found: Array<{ switch: string; owner: string }> = [];
  for (const s of await listSwitches(opts)) {
    if (s.state !== 'running') continue;
    const owners = new Set<string>();
    for (const p of s.snapshot.switch.ports) {
      if (p.owner === null) continue;
      const i = p.owner.lastIndexOf(':');
      if (p.owner.slice(0, i) === vm && (nic === null || Number(p.owner.slice(i + 1)) === nic)) owners.add(p.owner);
    }
    for (const owner of [...owners].sort()) found.push({ switch: s.name, owner });
  }
  if (found.length === 0) {
    throw new VmnetError('E_USAGE', `no switch port of ${target}: link faults apply to VMs started with --net switch:NAME (is ${vm} running?)`);
  }
  return found;
}

/**
 * Changes the link of a VM's switch NIC(s): `setLink('web:0', 'loss=5% delay=50ms')`,
 * `setLink('web', ['down'])`, or with a {@link LinkPatch}.
 * @param target `VM` (every switch NIC of it) or `VM:NIC`
 * @param change words as for `vmnet link set` (config/link.ts), or a patch
 * @returns each NIC's port and its link state afterwards
 * @throws VmnetError E_USAGE (bad words, no such VM port, settings that do not go together)
 */
export async function setLink(target: string, change: string | readonly string[] | LinkPatch, opts: { runtimeDir?: string } = {}): Promise<VmLink[]> {
  const patch = typeof change === 'string' ? parseLinkWords(change.split(/\s+/).filter(Boolean)) : Array.isArray(change) ? parseLinkWords(change as readonly string[]) : (change as LinkPatch);
  const out: VmLink[] = [];
  for (const f of await findPorts(target, opts)) for (const l of await switchLink(f.switch, { owner: f.owner }, patch, opts)) out.push({ switch: f.switch, ...l });
  return out;
}

/**
 * The link state of a VM's switch NIC(s).
 * @param target `VM` or `VM:NIC`
 * @throws VmnetError E_USAGE when there is no such VM port
 */
export async function showLink(target: string, opts: { runtimeDir?: string } = {}): Promise<VmLink[]> {
  const out: VmLink[] = [];
  for (const f of await findPorts(target, opts)) for (const l of await switchLink(f.switch, { owner: f.owner }, undefined, opts)) out.push({ switch: f.switch, ...l });
  return out;
}
