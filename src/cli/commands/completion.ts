/**
 * `vmnet completion [bash|zsh]`: prints the shell completion script
 * (completion/scripts.ts); the shell then asks `vmnet __complete` (main.ts)
 * for candidates on every Tab.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface CompletionArgs {
  shell?: 'bash' | 'zsh';
}

export function completionCommand(io: CliIo): CommandModule<object, CompletionArgs> {
  return {
    command: 'completion [shell]',
    describe: 'print the bash or zsh completion script (commands, flags, running VM and switch names)',
    builder: (y) =>
      y
        .usage('$0 completion [bash|zsh]\n\nbash: source <(vmnet completion bash)   zsh: source <(vmnet completion zsh)   (default: from $SHELL)')
        .positional('shell', { choices: ['bash', 'zsh'] as const, describe: 'the shell (default: from $SHELL, else bash)' }) as never,
    handler: async (a) => {
      const { BASH, ZSH } = await import('../completion/scripts.js');
      const shell = a.shell ?? (/zsh$/.test(io.env.SHELL ?? '') ? 'zsh' : 'bash');
      io.stdout.write(shell === 'zsh' ? ZSH : BASH);
    },
  };
}
