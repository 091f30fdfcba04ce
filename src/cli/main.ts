/**
 * Theory of operation: the CLI is wiring. yargs parses; each command module
 * (commands/*.ts) declares its flags and hands a typed config to the library.
 * Errors are VmnetError values from the library or yargs' own validation
 * messages; both become one line on stderr here — usage mistakes exit 2,
 * runtime failures exit 1, and nobody sees a stack trace unless VMNET_DEBUG
 * is set. main() returns the exit code instead of calling process.exit, so it
 * is testable in-process.
 */
import yargs from 'yargs';
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
import { sshCommand } from './commands/ssh.js';
import { execCommand } from './commands/exec.js';
import { cpCommand } from './commands/cp.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** The guest could not be reached over SSH (vmnet exec, cp, ssh's own checks), as podman and docker exit for their own failures. */
export const EXIT_UNREACHABLE = 125;

/** Thrown by command handlers to report an exit code without an error message. */
export class ExitCode {
  constructor(readonly code: number) {}
}

/**
 * Runs the CLI.
 * @param argv arguments after the program name
 * @param io streams, environment and signals
 * @returns the process exit code
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  let exit = EXIT_OK;
  const cli = yargs(argv)
    .scriptName('vmnet')
    .usage('$0 <command> [options]\n\nRootless user-mode networking for QEMU virtual machines.')
    .command(runCommand(io, (c) => (exit = c)))
    .command(demoCommand(io, (c) => (exit = c)))
    .command(lsCommand(io))
    .command(stopCommand(io))
    .command(rmCommand(io))
    .command(forwardCommand(io))
    .command(waitCommand(io))
    .command(consoleCommand(io))
    .command(sshCommand(io, (c) => (exit = c)))
    .command(execCommand(io, (c) => (exit = c)))
    .command(cpCommand(io))
    .command(gatewayCommand(io))
    .command(switchCommand(io))
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
