/**
 * `vmnet guest build [--force] [--dir DIR]`: builds the bundled test guest
 * (what `vmnet demo` does on first use), or says it is up to date.
 */
import type { Argv, CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface BuildArgs {
  force: boolean;
  dir?: string;
}

export function guestCommand(io: CliIo): CommandModule<object, object> {
  return {
    command: 'guest <command>',
    describe: 'the bundled test guest (Debian cloud kernel + busybox), built from Debian packages into your cache',
    builder: (y) =>
      y
        .usage('$0 guest build [--force] [--dir DIR]')
        .command({
          command: 'build',
          describe: 'build the test guest now (vmnet demo does on first use); a no-op when it is up to date',
          builder: (b: Argv) =>
            b
              .option('force', { type: 'boolean', default: false, describe: 'rebuild even when up to date' })
              .option('dir', { type: 'string', describe: 'build into DIR (default: $VMNET_GUEST_DIR, else ~/.cache/vmnet/guest/<version>-<recipe>)' }),
          handler: async (a: BuildArgs) => {
            const { buildGuest } = await import('../../guest/build.js');
            await buildGuest({ force: a.force, env: io.env, onProgress: (line) => io.stdout.write(line + '\n'), ...(a.dir !== undefined ? { dir: a.dir } : {}) });
          },
        } as CommandModule<object, BuildArgs>)
        .demandCommand(1, 'give a guest command: build'),
    handler: () => {},
  };
}
