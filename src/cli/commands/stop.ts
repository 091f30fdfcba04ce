/**
 * `vmnet stop NAME [--force] [--timeout S]`: ACPI power-down through QMP,
 * wait, then quit, then kill; exit 0 once the VM is gone (its directory
 * removed, its ports free).
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface StopArgs {
  name: string;
  force: boolean;
  timeout: number;
}

export function stopCommand(io: CliIo): CommandModule<object, StopArgs> {
  return {
    command: 'stop <name>',
    describe: 'stop a running VM (ACPI power-down, then quit, then kill)',
    builder: (y) =>
      y
        .usage('$0 stop NAME [--force] [--timeout S]\n\nPress the VM\'s ACPI power button, wait for the guest to power off, then make QEMU quit (and kill it if it must).')
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'skip the power button: quit QEMU now' })
        .option('timeout', { alias: 't', type: 'number', default: 30, describe: 'seconds the guest gets to power off' }) as never,
    handler: async (a) => {
      if (!(a.timeout >= 0)) throw new VmnetError('E_USAGE', `bad --timeout ${a.timeout}: give seconds`);
      const { stopVm } = await import('../../vm/manage.js');
      const exit = await stopVm(a.name, { force: a.force, timeoutMs: a.timeout * 1000 }, io.env);
      const how = exit.reason !== 'stopped' ? 'it had already powered off' : exit.stop === 'acpi' ? 'the guest powered off' : exit.stop === 'quit' ? (a.force ? 'QEMU quit' : `the guest did not power off within ${a.timeout} s; QEMU quit`) : 'QEMU was killed';
      io.stdout.write(`${a.name} stopped: ${how}\n`);
    },
  };
}
