/**
 * `vmnet ls [--json]`: running VMs with state, pid, accelerator, addresses,
 * SSH forward, forwards and uptime. Dead VMs' leftovers are cleaned on the way, one line
 * on stderr each saying what was found and done.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { printable, toJson } from '../../config/printable.js';

interface LsArgs {
  json: boolean;
}

function uptime(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function lsCommand(io: CliIo): CommandModule<object, LsArgs> {
  return {
    command: 'ls',
    describe: 'list running VMs',
    builder: (y) => y.usage('$0 ls [--json]\n\nList running VMs (started by vmnet run or the library).').option('json', { type: 'boolean', default: false, describe: 'one JSON array' }) as never,
    handler: async (a) => {
      const { listVms } = await import('../../vm/manage.js');
      // What was cleaned goes to stderr (stdout stays the listing, JSON with --json).
      const vms = await listVms(io.env, {
        onCleaned: (c) => {
          const owner = c.ownerPid === null ? 'it named no owner' : `its vmnet process (pid ${c.ownerPid}) had died`;
          const qemu = c.qemuPid === null ? 'no QEMU had started' : `its QEMU (pid ${c.qemuPid}) ${c.qemuKilled ? 'was killed' : 'had exited'}`;
          io.stderr.write(`vmnet: cleaned up VM ${c.name}: ${owner}; ${qemu}\n`);
        },
      });
      if (a.json) {
        io.stdout.write(toJson(vms) + '\n');
        return;
      }
      if (vms.length === 0) {
        io.stdout.write('no VMs running\n');
        return;
      }
      // PID is the process serving the VM (as `pid` in --json and in `started` events), QEMU is QEMU's.
      const rows = [['NAME', 'STATE', 'PID', 'QEMU', 'ACCEL', 'ADDRESS', 'SSH', 'FORWARDS', 'UPTIME']];
      // Every cell comes from another process (a VM's control socket): escaped before it reaches the terminal.
      // SSH: the forward vmnet ssh/exec/cp use (also listed among the forwards).
      for (const v of vms) rows.push([v.name, v.state, String(v.pid || '-'), String(v.qemuPid ?? '-'), v.accel || '-', v.addresses.join(',') || '-', v.ssh ? `${v.ssh.host}:${v.ssh.port}` : '-', v.forwards.join(',') || '-', uptime(v.uptimeS)].map(printable));
      const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) io.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n');
    },
  };
}
