/**
 * `vmnet cp [-r] SRC DST`: copies between the host and a VM vmnet seeded,
 * with OpenSSH's scp (SFTP underneath) over the VM's master connection.
 * Exactly one side is `NAME:PATH` (a VM name, a colon, a path in the guest;
 * a relative guest path is relative to the login user's home); the other is
 * a host path (write `./a:b` for a host file whose name has a colon). Exit
 * 125 when the guest cannot be reached, 1 when the copy fails.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface CpArgs {
  src: string;
  dst: string;
  recursive: boolean;
}

const REMOTE = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,39}):(.*)$/;

/** A side of the copy: `NAME:PATH` names a VM (a path starting with / or . never does). */
function side(text: string): { vm: string; path: string } | { local: string } {
  const m = text.startsWith('/') || text.startsWith('.') ? null : REMOTE.exec(text);
  return m ? { vm: m[1]!, path: m[2] || '.' } : { local: text };
}

export function cpCommand(io: CliIo): CommandModule<object, CpArgs> {
  return {
    command: 'cp <src> <dst>',
    describe: 'copy files between the host and a VM (NAME:PATH on one side)',
    builder: (y) =>
      y
        .usage('$0 cp [-r] SRC DST\n\nOne of SRC and DST is NAME:PATH (in VM NAME), the other a host path.')
        .positional('src', { type: 'string', demandOption: true })
        .positional('dst', { type: 'string', demandOption: true })
        .option('recursive', { alias: 'r', type: 'boolean', default: false, describe: 'copy directories' }) as never,
    handler: async (a) => {
      const from = side(a.src);
      const to = side(a.dst);
      if ('vm' in from && 'vm' in to) throw new VmnetError('E_USAGE', 'both sides name a VM; copy through a host file (vmnet cp A:PATH FILE, then vmnet cp FILE B:PATH)');
      if (!('vm' in from) && !('vm' in to)) throw new VmnetError('E_USAGE', 'neither side names a VM: write NAME:PATH on one side');
      const name = 'vm' in from ? from.vm : (to as { vm: string }).vm;
      const { sshTargetOf } = await import('../../vm/manage.js');
      const { copy } = await import('../../vm/guest-session.js');
      const target = await sshTargetOf(name, io.env).catch((e: unknown) => {
        throw e instanceof VmnetError && e.code === 'E_NO_VM' ? new VmnetError('E_UNREACHABLE', e.message) : e;
      });
      const end = (s: ReturnType<typeof side>) => ('vm' in s ? { remote: s.path } : { local: s.local });
      await copy(name, target, end(from), end(to), a.recursive);
    },
  };
}
