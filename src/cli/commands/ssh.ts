/**
 * `vmnet ssh NAME [-- CMD…]`: the system's `ssh` into a VM vmnet seeded,
 * with vmnet's key, the VM's SSH forward, its login user and the
 * known_hosts vmnet wrote (strict host key checking), sharing the VM's
 * master connection. Arguments after `--` go to ssh as a remote command,
 * as `ssh host CMD…` would take them. The exit status is ssh's (the
 * command's, or 255 when ssh failed).
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface SshArgs {
  name: string;
  '--'?: string[];
}

export function sshCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, SshArgs> {
  return {
    command: 'ssh <name>',
    describe: 'log in to a VM over SSH (vmnet\'s key, strict host key)',
    builder: (y) =>
      y
        .parserConfiguration({ 'populate--': true })
        .usage("$0 ssh NAME [-- CMD…]\n\nOpenSSH's ssh into VM NAME as the user its seed created, with vmnet's key and the known_hosts vmnet wrote.")
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' }) as never,
    handler: async (a) => {
      const { sshTargetOf } = await import('../../vm/manage.js');
      const { sshArgs } = await import('../../vm/ssh.js');
      const { spawn } = await import('node:child_process');
      const { childStdio, waitChild } = await import('../child.js');
      const target = await sshTargetOf(a.name, io.env);
      const cmd = a['--'] ?? [];
      const child = spawn('ssh', [...sshArgs(target), ...(cmd.length ? ['--', ...cmd] : [])], { stdio: childStdio(io, { stdin: true, tty: cmd.length === 0 }) });
      const { code, signal } = await waitChild(io, child);
      setExit(code ?? (signal ? 128 + 15 : 255));
    },
  };
}
