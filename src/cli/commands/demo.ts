/**
 * `vmnet demo`: boots the bundled test guest and shows DHCP, DNS, an HTTP
 * fetch from the host and a port forward, live. Needs no internet.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface DemoArgs {
  qemu?: string;
}

export function demoCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, DemoArgs> {
  return {
    command: 'demo',
    describe: 'boot the bundled test guest and show DHCP, DNS, HTTP and a port forward, live',
    builder: (y) => y.option('qemu', { type: 'string', describe: 'QEMU binary (default: qemu-system-<host arch> on PATH)' }) as never,
    handler: async (a) => {
      const { runDemo } = await import('../../demo/demo.js');
      const result = await runDemo({ out: io.stdout, qemu: a.qemu, env: io.env });
      setExit(result.ok ? 0 : 1);
    },
  };
}
