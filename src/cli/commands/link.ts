/**
 * `vmnet link set VM[:NIC] SETTING...` and `vmnet link show VM[:NIC]
 * [--json]`: link faults on a VM's switch port (src/switch/vm-link.ts; the
 * settings are read by src/config/link.ts). Bad settings are one line, exit 2,
 * and change nothing.
 */
import type { Argv, CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { printable, toJson } from '../../config/printable.js';

interface LinkArgs {
  action: 'set' | 'show';
  /** VM or VM:NIC (named `name` so completion offers running VMs). */
  name: string;
  settings?: Array<string | number>;
  json: boolean;
}

export function linkCommand(io: CliIo): CommandModule<object, LinkArgs> {
  const out = (s: string) => io.stdout.write(printable(s) + '\n');
  return {
    command: 'link <action> <name> [settings..]',
    describe: "make a VM's switch link misbehave (delay, loss, rate, down/up...) or show it",
    builder: (y: Argv) =>
      y
        .usage(
          '$0 link set VM[:NIC] [loss=5%] [burst=4] [delay=50ms] [jitter=5ms] [rate=10mbit] [dup=1%] [corrupt=0.1%] [reorder=5%] [seed=N] [limit=1000] [dir=egress|ingress|both]\n' +
            '$0 link set VM[:NIC] down|up|clear\n$0 link show VM[:NIC] [--json]',
        )
        .positional('action', { choices: ['set', 'show'] as const, demandOption: true })
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name, or VM:NIC for one NIC (default: all its switch NICs)' })
        .positional('settings', { type: 'string', array: true, describe: 'settings for set (faults apply egress, switch to VM, unless dir= says otherwise; down/up both ways)' })
        .option('json', { type: 'boolean', default: false, describe: 'print JSON (show)' }) as never,
    handler: async (a) => {
      const { runtimeRoot } = await import('../../config/runtime-dir.js');
      const { parseLinkWords, formatImpair, formatImpairCounters } = await import('../../config/link.js');
      const { setLink, showLink } = await import('../../switch/vm-link.js');
      const opts = { runtimeDir: runtimeRoot(io.env) };
      const links = a.action === 'set' ? await setLink(a.name, parseLinkWords((a.settings ?? []).map(String)), opts) : await showLink(a.name, opts);
      if (a.json) return void io.stdout.write(toJson(links, 2) + '\n');
      for (const l of links) {
        const eg = l.link?.egress;
        const ing = l.link?.ingress;
        const state = eg?.settings.down ? 'down' : 'up';
        out(`${l.owner ?? `port ${l.port}`}  switch ${l.switch} port ${l.port}  ${state}`);
        for (const [name, d] of [['egress (to VM)', eg], ['ingress (from VM)', ing]] as const) {
          if (d === undefined) continue;
          const faults = formatImpair({ ...d.settings, down: false });
          out(`  ${name}: ${faults}  seed ${d.settings.seed}  queued ${d.queued}`);
          out(`    ${formatImpairCounters(d.counters)}`);
        }
        if (l.link === null) out('  no faults set');
      }
    },
  };
}
