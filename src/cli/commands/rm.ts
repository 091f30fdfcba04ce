/**
 * `vmnet rm NAME`: removes the disk vmnet keeps for a VM run from an image
 * URL (`$XDG_DATA_HOME/vmnet/vms/NAME/`); refused while that VM runs. The
 * downloaded image stays in the cache for other VMs.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface RmArgs {
  name: string;
}

export function rmCommand(io: CliIo): CommandModule<object, RmArgs> {
  return {
    command: 'rm <name>',
    describe: 'remove the disk kept for a VM run from an image URL',
    builder: (y) =>
      y
        .usage("$0 rm NAME\n\nRemove the disk vmnet keeps for VM NAME (a VM run from an image URL keeps its writes in an overlay until this). Refused while the VM runs. The downloaded image stays cached.")
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name' }) as never,
    handler: async (a) => {
      const { removeVm } = await import('../../vm/manage.js');
      const dir = await removeVm(a.name, io.env);
      io.stdout.write(`${a.name} removed (${dir})\n`);
    },
  };
}
