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
 *
 * A link between two switches is a port too (kind `link`, one at each end,
 * named after the other switch): {@link setSwitchLink} finds the port of
 * switch A's end of its link to B and sets it by port id, so its egress is
 * what A sends to B and its ingress what comes from B.
 */
import { VmnetError } from '../errors.js';
import { parseLinkWords, type LinkPatch } from '../config/link.js';
import { listSwitches, switchLink, switchStatus, type PortLink } from './daemon.js';

/** One VM NIC's switch port and its link faults. */
export interface VmLink extends PortLink {
  /** The switch the NIC is on. */
  switch: string;
}

const patchOf = (change: string | readonly string[] | LinkPatch): LinkPatch =>
  typeof change === 'string' ? parseLinkWords(change.split(/\s+/).filter(Boolean)) : Array.isArray(change) ? parseLinkWords(change as readonly string[]) : (change as LinkPatch);

/** `web` or `web:1`, checked. */
function parseTarget(target: string): { vm: string; nic: number | null } {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?::(\d{1,3}))?$/.exec(target);
  if (!m) throw new VmnetError('E_USAGE', `bad link target ${JSON.stringify(target)}: give VM or VM:NIC, e.g. web or web:1`);
  return { vm: m[1]!, nic: m[2] === undefined ? null : Number(m[2]) };
}

/** Options of {@link setLink} and {@link showLink}. */
export interface LinkOptions {
  runtimeDir?: string;
  /** How long to wait for the port to appear (a VM just started: its QEMU is still connecting), ms; default 0. */
  waitMs?: number;
}

/** Pause between looks for a port that is not there yet (ms). */
const PORT_POLL_MS = 100;

/** The switches and owners of a VM's switch NICs (one NIC, or all of them), waiting up to `waitMs` for one to appear. */
async function findPorts(target: string, opts: LinkOptions): Promise<Array<{ switch: string; owner: string }>> {
  const until = Date.now() + (opts.waitMs ?? 0);
  for (;;) {
    try {
      return await findPortsNow(target, opts);
    } catch (e) {
      if (Date.now() >= until) throw e;
      await new Promise((r) => setTimeout(r, PORT_POLL_MS));
    }
  }
}

async function findPortsNow(target: string, opts: LinkOptions): Promise<Array<{ switch: string; owner: string }>> {
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
export async function setLink(target: string, change: string | readonly string[] | LinkPatch, opts: LinkOptions = {}): Promise<VmLink[]> {
  const patch = patchOf(change);
  const out: VmLink[] = [];
  for (const f of await findPorts(target, opts)) for (const l of await switchLink(f.switch, { owner: f.owner }, patch, opts)) out.push({ switch: f.switch, ...l });
  return out;
}

/**
 * The link state of a VM's switch NIC(s).
 * @param target `VM` or `VM:NIC`
 * @throws VmnetError E_USAGE when there is no such VM port
 */
export async function showLink(target: string, opts: LinkOptions = {}): Promise<VmLink[]> {
  const out: VmLink[] = [];
  for (const f of await findPorts(target, opts)) for (const l of await switchLink(f.switch, { owner: f.owner }, undefined, opts)) out.push({ switch: f.switch, ...l });
  return out;
}

/** The id of switch `name`'s end of its link to `peer`. */
async function linkPortOf(name: string, peer: string, opts: LinkOptions): Promise<number> {
  const st = await switchStatus(name, opts);
  const port = st?.snapshot.switch.ports.find((p) => p.kind === 'link' && p.peer === peer);
  if (port === undefined) throw new VmnetError('E_USAGE', `switch ${name} has no link to ${peer}${st === null ? ` (${name} does not run)` : ''}: make it with vmnet switch link ${name} ${peer}`);
  return port.id;
}

/**
 * Changes the faults of the link between switches `name` and `peer`, at
 * `name`'s end: egress (the default direction) is what `name` sends to
 * `peer`, ingress what it gets from `peer`; `down` cuts both.
 * @param change words as for `vmnet link set`, or a patch
 * @returns the port and its link state afterwards
 * @throws VmnetError E_USAGE (bad words, no such link)
 */
export async function setSwitchLink(name: string, peer: string, change: string | readonly string[] | LinkPatch, opts: LinkOptions = {}): Promise<PortLink> {
  const [l] = await switchLink(name, { port: await linkPortOf(name, peer, opts) }, patchOf(change), opts);
  return l!;
}
