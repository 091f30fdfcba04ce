/**
 * `vmnet rm NAME`: removes what vmnet keeps for a VM name
 * (`$XDG_DATA_HOME/vmnet/vms/NAME/`): the disk of a VM run from an image URL
 * and the SSH host key of a seeded VM; refused while that VM runs. The
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
    describe: 'remove the disk and SSH host key kept for a VM name',
    builder: (y) =>
      y
        .usage("$0 rm NAME\n\nRemove what vmnet keeps for VM NAME: the disk of a VM run from an image URL (its writes, in an overlay) and a seeded VM's SSH host key. Refused while the VM runs. The downloaded image stays cached.")
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name' }) as never,
    handler: async (a) => {
      const { removeVm } = await import('../../vm/manage.js');
      const dir = await removeVm(a.name, io.env);
      io.stdout.write(`${a.name} removed (${dir})\n`);
    },
  };
}
