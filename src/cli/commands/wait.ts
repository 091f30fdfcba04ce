/**
 * `vmnet wait NAME --port P [--timeout S]`: exit 0 once the guest accepts
 * connections on P — the gateway's own SYN got a SYN-ACK, so it is the guest
 * that answers, not a host-side listener.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface WaitArgs {
  name: string;
  port: number;
  timeout: number;
}

export function waitCommand(io: CliIo): CommandModule<object, WaitArgs> {
  return {
    command: 'wait <name>',
    describe: 'wait until a guest port accepts connections',
    builder: (y) =>
      y
        .usage('$0 wait NAME --port P [--timeout S]')
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .option('port', { type: 'number', demandOption: true, describe: 'guest TCP port' })
        .option('timeout', { alias: 't', type: 'number', default: 60, describe: 'seconds to wait' }) as never,
    handler: async (a) => {
      if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new VmnetError('E_USAGE', `bad --port ${a.port}: 1-65535`);
      if (!(a.timeout > 0)) throw new VmnetError('E_USAGE', `bad --timeout ${a.timeout}: give seconds`);
      const { waitForVmPort } = await import('../../vm/manage.js');
      const address = await waitForVmPort(a.name, a.port, a.timeout * 1000, io.env);
      io.stdout.write(`${a.name}: port ${a.port} ready${address ? ` on ${address}` : ''}\n`);
    },
  };
}
