/**
 * `vmnet up LAB.yaml`, `vmnet down LAB.yaml`, `vmnet status LAB.yaml
 * [--json] [--dot]`: labs from topology files (src/lab/). A file with
 * mistakes gets one line per mistake on stderr, `FILE:LINE:COL: FIELD:
 * MESSAGE`, and exit 2, before anything starts.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { printable, toJson } from '../../config/printable.js';
import { VmnetError } from '../../errors.js';
import type { LinkSnapshot } from '../../switch/impair-port.js';

interface FileArgs {
  file: string;
}

/** Loads a lab file; its mistakes become lines on stderr and exit 2 (then null). */
async function load(io: CliIo, setExit: (code: number) => void, file: string) {
  const { loadLab, LabInvalid, formatIssue } = await import('../../lab/index.js');
  try {
    return await loadLab(file);
  } catch (e) {
    if (!(e instanceof LabInvalid)) throw e;
    for (const i of e.issues) io.stderr.write(printable(formatIssue(i)) + '\n');
    setExit(2);
    return null;
  }
}

export function upCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, FileArgs> {
  return {
    command: 'up <file>',
    describe: 'start the lab a topology file describes, or change a running one to match it',
    builder: (y) =>
      y
        .usage('$0 up LAB.yaml\n\nStarts the switches, links and VMs of LAB.yaml. On a lab that runs, changes only what differs from the file, and says what.')
        .positional('file', { type: 'string', demandOption: true, describe: 'topology file (YAML)' }) as never,
    handler: async (a) => {
      const spec = await load(io, setExit, a.file);
      if (spec === null) return;
      const { labUp } = await import('../../lab/index.js');
      const done = await labUp(spec, {
        env: io.env,
        onAction: (line) => io.stdout.write(`${spec.name}: ${printable(line)}\n`),
        onGuestBuild: (line) => io.stderr.write(`vmnet: test guest: ${printable(line)}\n`),
      });
      io.stdout.write(done.length === 0 ? `${spec.name}: up to date, nothing changed\n` : `${spec.name}: up (${done.length} change${done.length === 1 ? '' : 's'})\n`);
    },
  };
}

export function downCommand(io: CliIo): CommandModule<object, FileArgs> {
  return {
    command: 'down <file>',
    describe: 'stop every VM and switch of a lab and remove what it left',
    builder: (y) =>
      y
        .usage('$0 down LAB.yaml\n\nStops the lab\'s VMs, removes its switches and links, and its state. Works on a file that no longer validates (the lab is found by name).')
        .positional('file', { type: 'string', demandOption: true, describe: 'topology file (YAML)' }) as never,
    handler: async (a) => {
      const { readFile } = await import('node:fs/promises');
      const { labDown, labName } = await import('../../lab/index.js');
      const name = labName(await readFile(a.file, 'utf8').catch(() => null), a.file);
      const done = await labDown(name, { env: io.env, onAction: (line) => io.stdout.write(`${name}: ${printable(line)}\n`) });
      io.stdout.write(done === null ? `${name}: was not up\n` : `${name}: down\n`);
    },
  };
}

export function statusCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, FileArgs & { json?: boolean; dot?: boolean }> {
  return {
    command: 'status <file>',
    describe: 'show a lab: its switches, VMs (with addresses) and links, running or not',
    builder: (y) =>
      y
        .usage('$0 status LAB.yaml [--json | --dot]')
        .positional('file', { type: 'string', demandOption: true, describe: 'topology file (YAML)' })
        .option('json', { type: 'boolean', describe: 'print JSON' })
        .option('dot', { type: 'boolean', describe: 'print the lab as a Graphviz graph (dot -Tsvg)' }) as never,
    handler: async (a) => {
      if (a.json && a.dot) throw new VmnetError('E_USAGE', 'give --json or --dot, not both');
      const spec = await load(io, setExit, a.file);
      if (spec === null) return;
      const { labStatus, labDot } = await import('../../lab/index.js');
      const { formatImpairCounters } = await import('../../config/link.js');
      const st = await labStatus(spec, { env: io.env });
      if (a.json) return void io.stdout.write(toJson(st, 2) + '\n');
      if (a.dot) return void io.stdout.write(labDot(st));
      const out = (s: string) => io.stdout.write(printable(s) + '\n');
      /** A port's faults (what the file asks) and, when the switch has any, what each direction did. */
      const faults = (impair: string | null, link: LinkSnapshot | null, egress: string, ingress: string) => {
        if (impair !== null) out(`    faults ${impair}`);
        if (link === null) return;
        out(`    egress (${egress}): ${formatImpairCounters(link.egress.counters)}`);
        out(`    ingress (${ingress}): ${formatImpairCounters(link.ingress.counters)}`);
      };
      out(`lab ${st.name} ${st.up ? 'up' : 'down'} (${st.file})`);
      for (const s of st.switches) {
        const gw = s.gateway === null ? 'no gateway' : `gateway ${s.gateway.address} on ${s.gateway.subnet}${s.gateway.isolated ? ' (isolated)' : ''}`;
        out(`switch ${s.name}  ${s.state}${s.pid !== null ? ` pid ${s.pid}` : ''}  ${gw}  vlans ${s.vlans.join(',') || '-'}  ports ${s.ports}${s.links.length ? `  links ${s.links.join(',')}` : ''}`);
      }
      for (const v of st.vms) {
        out(`vm ${v.name}  ${v.state}${v.pid !== null ? ` pid ${v.pid}` : ''}${v.accel ? ` ${v.accel}` : ''}  ${v.memoryMiB}M ${v.cpus} cpu${v.forwards.length ? `  forwards ${v.forwards.join(' ')}` : ''}`);
        v.nics.forEach((n, i) => {
          out(`  eth${i}  ${n.switch} ${n.role}  ${n.mac ?? '-'}  ${n.ip ?? '-'}${n.ip6.length ? `  ${n.ip6.join(' ')}` : ''}`);
          faults(n.impair, n.link, 'to the VM', 'from the VM');
        });
      }
      for (const l of st.links) {
        out(`link ${l.a} — ${l.b}  ${l.up ? 'up' : 'down'}  ${l.role}`);
        faults(l.impair, l.link, `${l.a} → ${l.b}`, `${l.b} → ${l.a}`);
      }
    },
  };
}
