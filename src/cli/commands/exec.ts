/**
 * `vmnet exec NAME [-i] [-t] [--user U] [--workdir D] [--env K=V] -- CMD ARGS…`:
 * runs one command in a VM vmnet seeded, over SSH (the VM's master
 * connection, so a warm exec costs no key exchange). Its stdout and stderr
 * stay apart and vmnet exits with its exit status. When the guest cannot be
 * reached at all (VM not running, no SSH forward, SSH not up, key refused,
 * connection lost) vmnet says so in one line and exits 125, as podman and
 * docker do for their own failures; 126 and 127 come from the guest's shell
 * (not executable, not found). Usage mistakes exit 2, as for every command.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { isVmnetError, VmnetError } from '../../errors.js';

interface ExecArgs {
  name: string;
  cmd: string[];
  interactive: boolean;
  tty: boolean;
  user?: string;
  workdir?: string;
  env: string[];
  '--'?: string[];
}

export function execCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, ExecArgs> {
  return {
    command: 'exec <name> [cmd..]',
    describe: 'run a command in a VM over SSH; exits with its status (125: the guest could not be reached)',
    builder: (y) =>
      y
        .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
        .usage('$0 exec NAME [-i] [-t] [--user U] [--workdir D] [--env K=V] -- CMD ARGS…')
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .positional('cmd', { type: 'string', array: true, describe: 'the command and its arguments (after --)' })
        .option('interactive', { alias: 'i', type: 'boolean', default: false, describe: "pass this process's stdin to the command" })
        .option('tty', { alias: 't', type: 'boolean', default: false, describe: 'give the command a terminal (stdout and stderr then mix)' })
        .option('user', { alias: 'u', type: 'string', describe: 'run as this guest user (sudo -n -u)' })
        .option('workdir', { alias: 'w', type: 'string', describe: 'run in this guest directory' })
        .option('env', { alias: 'e', type: 'string', array: true, default: [] as string[], describe: 'set K=V for the command (repeatable)' }) as never,
    handler: async (a) => {
      const argv = [...(a.cmd ?? []).map(String), ...(a['--'] ?? [])];
      const env: Record<string, string> = {};
      for (const kv of a.env) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new VmnetError('E_USAGE', `bad --env ${kv}: give K=V`);
        env[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const { remoteCommand } = await import('../../vm/ssh.js');
      const command = remoteCommand(argv, { ...(a.user !== undefined ? { user: a.user } : {}), ...(a.workdir !== undefined ? { workdir: a.workdir } : {}), env });
      const { sshTargetOf } = await import('../../vm/manage.js');
      const { ensureMaster, spawnSsh, commandStatus } = await import('../../vm/ssh.js');
      const { childStdio, waitChild } = await import('../child.js');
      try {
        const target = await sshTargetOf(a.name, io.env);
        await ensureMaster(a.name, target);
        const child = spawnSsh(target, command, { tty: a.tty, stdin: a.interactive, stdio: childStdio(io, { stdin: a.interactive, tty: a.tty }) });
        const { code, signal } = await waitChild(io, child);
        setExit(await commandStatus(a.name, target, code, signal));
      } catch (e) {
        // Every way of not reaching the guest is 125 (a VM not running too); the command's own status passes through.
        if (isVmnetError(e) && e.code === 'E_NO_VM') throw new VmnetError('E_UNREACHABLE', e.message);
        throw e;
      }
    },
  };
}
