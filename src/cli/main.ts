/**
 * Theory of operation: the CLI is wiring. yargs parses; each command module
 * (commands/*.ts) declares its flags and hands a typed config to the library.
 * Errors are VmnetError values from the library or yargs' own validation
 * messages; both become one line on stderr here — usage mistakes exit 2,
 * runtime failures exit 1, and nobody sees a stack trace unless VMNET_DEBUG
 * is set. main() returns the exit code instead of calling process.exit, so it
 * is testable in-process.
 */
import yargs, { type CommandModule } from 'yargs';
import { isVmnetError, VmnetError } from '../errors.js';
import { printable } from '../config/printable.js';
import type { CliIo } from './io.js';
import { runCommand } from './commands/run.js';
import { demoCommand } from './commands/demo.js';
import { gatewayCommand } from './commands/gateway.js';
import { lsCommand } from './commands/ls.js';
import { stopCommand } from './commands/stop.js';
import { rmCommand } from './commands/rm.js';
import { forwardCommand } from './commands/forward.js';
import { consoleCommand } from './commands/console.js';
import { waitCommand } from './commands/wait.js';
import { switchCommand } from './commands/switch.js';
import { linkCommand } from './commands/link.js';
import { sshCommand } from './commands/ssh.js';
import { execCommand } from './commands/exec.js';
import { cpCommand } from './commands/cp.js';
import { guestCommand } from './commands/guest.js';
import { doctorCommand } from './commands/doctor.js';
import { completionCommand } from './commands/completion.js';
import { upCommand, downCommand, statusCommand } from './commands/lab.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** The guest could not be reached over SSH (vmnet exec, cp, ssh's own checks), as podman and docker exit for their own failures. */
export const EXIT_UNREACHABLE = 125;

/** Thrown by command handlers to report an exit code without an error message. */
export class ExitCode {
  constructor(readonly code: number) {}
}

/** The hidden command the completion scripts call: `vmnet __complete SHELL CWORD WORDS...`. */
const COMPLETE = '__complete';

/** Every command, in the order help lists them. */
function commands(io: CliIo, setExit: (code: number) => void): CommandModule<object, never>[] {
  const all = [
    runCommand(io, setExit),
    demoCommand(io, setExit),
    lsCommand(io),
    stopCommand(io),
    rmCommand(io),
    forwardCommand(io),
    waitCommand(io),
    consoleCommand(io),
    sshCommand(io, setExit),
    execCommand(io, setExit),
    cpCommand(io),
    gatewayCommand(io),
    switchCommand(io),
    upCommand(io, setExit),
    downCommand(io),
    statusCommand(io, setExit),
    linkCommand(io),
    guestCommand(io),
    doctorCommand(io, setExit),
    completionCommand(io),
  ];
  return all as unknown as CommandModule<object, never>[];
}

/**
 * Prints the completion candidates for the words the shell script passes;
 * prints nothing (never an error) when anything is wrong.
 * @returns always 0
 */
async function complete(args: string[], io: CliIo): Promise<number> {
  const [shell, cwordText, ...words] = args;
  if ((shell !== 'bash' && shell !== 'zsh') || !/^\d+$/.test(cwordText ?? '')) return EXIT_OK;
  try {
    const { programSpec } = await import('./completion/spec.js');
    const { completeFor } = await import('./completion/complete.js');
    const { runningNames } = await import('./completion/names.js');
    const out = completeFor(shell, programSpec('vmnet', commands(io, () => undefined)), words, Number(cwordText), await runningNames(io.env));
    if (out.length) io.stdout.write(out.join('\n') + '\n');
  } catch (e) {
    if (io.env.VMNET_DEBUG) io.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  }
  return EXIT_OK;
}

/**
 * Runs the CLI.
 * @param argv arguments after the program name
 * @param io streams, environment and signals
 * @returns the process exit code
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === COMPLETE) return complete(argv.slice(1), io);
  let exit = EXIT_OK;
  const cli = yargs(argv)
    .scriptName('vmnet')
    .usage('$0 <command> [options]\n\nRootless user-mode networking for QEMU virtual machines.');
  for (const m of commands(io, (c) => (exit = c))) cli.command(m);
  cli
    .demandCommand(1, 'no command given; try vmnet demo or vmnet run IMAGE')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(100, process.stdout.columns || 100))
    // Validation failures arrive with a message; handler errors with the error itself.
    .fail((msg, err) => {
      throw err ?? new VmnetError('E_USAGE', `${msg.split('\n')[0]} (see vmnet --help)`);
    })
    .exitProcess(false);
  let helpOrVersion = '';
  let parseError: Error | null = null;
  try {
    await cli.parseAsync(argv, {}, (err, _argv, output) => {
      if (err) parseError = err;
      else if (output) helpOrVersion = output;
    });
    if (parseError) throw parseError;
    if (helpOrVersion) io.stdout.write(helpOrVersion.endsWith('\n') ? helpOrVersion : helpOrVersion + '\n');
    return exit;
  } catch (e) {
    if (e instanceof ExitCode) return e.code;
    if (io.env.VMNET_DEBUG) io.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    if (isVmnetError(e)) {
      io.stderr.write(`vmnet: ${printable(e.message)}\n`);
      return e.usage ? EXIT_USAGE : e.code === 'E_UNREACHABLE' ? EXIT_UNREACHABLE : EXIT_FAILURE;
    }
    io.stderr.write(`vmnet: internal error: ${printable(e instanceof Error ? e.message : String(e))} (set VMNET_DEBUG=1 for details)\n`);
    return EXIT_FAILURE;
  }
}
