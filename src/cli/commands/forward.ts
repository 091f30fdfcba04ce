/**
 * `vmnet forward add|rm|ls NAME [SPEC]`: change a running VM's port
 * forwards. A taken host port is an error (exit 2) and changes nothing.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface ForwardArgs {
  action: 'add' | 'rm' | 'ls';
  name: string;
  spec?: string;
}

export function forwardCommand(io: CliIo): CommandModule<object, ForwardArgs> {
  return {
    command: 'forward <action> <name> [spec]',
    describe: "add, remove or list a running VM's port forwards",
    builder: (y) =>
      y
        .usage('$0 forward add|rm|ls NAME [[BIND:]HOSTPORT:GUESTPORT[/tcp|/udp]]')
        .positional('action', { choices: ['add', 'rm', 'ls'] as const, demandOption: true })
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .positional('spec', { type: 'string', describe: 'forward spec; BIND defaults to 127.0.0.1' }) as never,
    handler: async (a) => {
      const m = await import('../../vm/manage.js');
      if (a.action === 'ls') {
        for (const f of await m.listForwards(a.name, io.env)) io.stdout.write(f + '\n');
        return;
      }
      if (!a.spec) throw new VmnetError('E_USAGE', `vmnet forward ${a.action} needs a SPEC, e.g. 8080:80`);
      const { parseForward, formatForward } = await import('../../config/forward.js');
      const spec = formatForward(parseForward(a.spec)); // usage errors before touching the VM
      if (a.action === 'add') io.stdout.write(`${await m.addForward(a.name, spec, io.env)}\n`);
      else await m.removeForward(a.name, spec, io.env);
    },
  };
}
