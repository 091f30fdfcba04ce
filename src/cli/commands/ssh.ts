/**
 * `vmnet ssh NAME [--wait S] [-- CMD…]`: the system's `ssh` into a VM vmnet
 * seeded, with vmnet's key, the VM's SSH forward, its login user and the
 * known_hosts vmnet wrote (strict host key checking), sharing the VM's
 * master connection. A VM still booting is waited for first (up to --wait
 * seconds, saying where the boot stands, as `vmnet wait --ssh` does), so
 * `vmnet run IMAGE --name web -d && vmnet ssh web` logs in once it can.
 * Arguments after `--` go to ssh as a remote command, as `ssh host CMD…`
 * would take them. The exit status is ssh's (the command's, or 255 when ssh
 * failed); a VM vmnet cannot log in to (no SSH forward, not seeded by
 * vmnet) exits 125, one that does not get ready in time 1.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';

interface SshArgs {
  name: string;
  wait: number;
  '--'?: string[];
}

export function sshCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, SshArgs> {
  return {
    command: 'ssh <name>',
    describe: "log in to a VM over SSH (vmnet's key, strict host key)",
    builder: (y) =>
      y
        .parserConfiguration({ 'populate--': true })
        .usage("$0 ssh NAME [--wait S] [-- CMD…]\n\nOpenSSH's ssh into VM NAME as the user its seed created, with vmnet's key and the known_hosts vmnet wrote.")
        .positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' })
        .option('wait', { type: 'number', default: 300, describe: 'seconds to wait for a VM that is still booting (0: not at all)' }) as never,
    handler: async (a) => {
      if (!(a.wait >= 0)) throw new VmnetError('E_USAGE', `bad --wait ${a.wait}: give seconds`);
      const { sshTargetOf, waitForVmSsh } = await import('../../vm/manage.js');
      const { sshArgs } = await import('../../vm/ssh.js');
      const { spawn } = await import('node:child_process');
      const { childStdio, waitChild } = await import('../child.js');
      const target = await sshTargetOf(a.name, io.env);
      if (a.wait > 0) await waitForVmSsh(a.name, { timeoutMs: a.wait * 1000, onStage: (s) => void (s.key === 'ready' || io.stderr.write(`vmnet: ${a.name}: ${s.text}\n`)) }, io.env);
      const cmd = a['--'] ?? [];
      const child = spawn('ssh', [...sshArgs(target), ...(cmd.length ? ['--', ...cmd] : [])], { stdio: childStdio(io, { stdin: true, tty: cmd.length === 0 }) });
      const { code, signal } = await waitChild(io, child);
      setExit(code ?? (signal ? 128 + 15 : 255));
    },
  };
}
