/**
 * `vmnet wait NAME --port P [--timeout S]`: exit 0 once the guest accepts
 * connections on P — the gateway's own SYN got a SYN-ACK, so it is the guest
 * that answers, not a host-side listener.
 *
 * `vmnet wait NAME --ssh [--timeout S]`: exit 0 once a command runs in the
 * guest over SSH with vmnet's key (its master connection is up). While it
 * waits it says, on stderr, each stage the boot reaches as the gateway saw
 * it (no frame yet, DHCP lease, seed fetched, port 22, key refused), and
 * its timeout message names the last one.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface WaitArgs {
  name: string;
  port?: number;
  ssh: boolean;
  timeout?: number;
  quiet: boolean;
}

export function waitCommand(io: CliIo): CommandModule<object, WaitArgs> {
  return {
    command: 'wait <name>',
    describe: 'wait until a guest port accepts connections, or until SSH works',
    builder: (y) =>
      y
        .usage('$0 wait NAME --port P [--timeout S]\n$0 wait NAME --ssh [--timeout S]')
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .option('port', { type: 'number', describe: 'guest TCP port' })
        .option('ssh', { type: 'boolean', default: false, describe: "until a command runs over SSH with vmnet's key, saying where the boot stands" })
        .option('timeout', { alias: 't', type: 'number', describe: 'seconds to wait (default 60 for --port, 300 for --ssh)' })
        .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'with --ssh: no stage lines while waiting' }) as never,
    handler: async (a) => {
      if ((a.port === undefined) === !a.ssh) throw new VmnetError('E_USAGE', 'give one of --port P or --ssh');
      const timeout = a.timeout ?? (a.ssh ? 300 : 60);
      if (!(timeout > 0)) throw new VmnetError('E_USAGE', `bad --timeout ${a.timeout}: give seconds`);
      if (a.ssh) {
        const { waitForVmSsh } = await import('../../vm/manage.js');
        await waitForVmSsh(a.name, { timeoutMs: timeout * 1000, onStage: (s) => (a.quiet || s.key === 'ready' ? undefined : io.stderr.write(`vmnet: ${a.name}: ${s.text}\n`)) }, io.env);
        io.stdout.write(`${a.name}: ssh ready\n`);
        return;
      }
      const port = a.port!;
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new VmnetError('E_USAGE', `bad --port ${port}: 1-65535`);
      const { waitForVmPort } = await import('../../vm/manage.js');
      const address = await waitForVmPort(a.name, port, timeout * 1000, io.env);
      io.stdout.write(`${a.name}: port ${port} ready${address ? ` on ${address}` : ''}\n`);
    },
  };
}
