/**
 * `vmnet console NAME`: attach this terminal to a running VM's serial
 * console (the last 64 KiB of output first). Ctrl-] detaches; the VM keeps
 * running. Without a terminal, stdin and stdout are piped as they are, so
 * scripts can drive the console; a closed stdout detaches.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';

interface ConsoleArgs {
  name: string;
}

export function consoleCommand(io: CliIo): CommandModule<object, ConsoleArgs> {
  return {
    command: 'console <name>',
    describe: "attach to a running VM's serial console (Ctrl-] detaches)",
    builder: (y) => y.usage('$0 console NAME\n\nAttach to the serial console of a running VM. Ctrl-] detaches.').positional('name', { type: 'string', demandOption: true, describe: 'VM name (vmnet ls)' }) as never,
    handler: async (a) => {
      const { consoleSocket } = await import('../../vm/manage.js');
      const { attachTerminal } = await import('../../vm/terminal.js');
      const net = await import('node:net');
      const path = await consoleSocket(a.name, io.env);
      const sock = net.createConnection(path);
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
      sock.on('error', () => undefined);
      if (io.isTty) io.stderr.write(`vmnet: attached to ${a.name}'s console; Ctrl-] detaches\r\n`);
      // Without a terminal, stdin is still forwarded (scripts); EOF on it detaches, after a moment for the answer.
      const t = attachTerminal(sock, { stdin: io.stdin, stdout: io.stdout, interactive: io.stdin !== undefined });
      const onEnd = () => setTimeout(() => t.detach(), 1000).unref();
      io.stdin?.once('end', onEnd);
      // stdout closed (`vmnet console NAME | head`): detach instead of writing into the void.
      const onOutError = () => t.detach();
      io.stdout.on('error', onOutError);
      const why = await t.done;
      io.stdout.off('error', onOutError);
      io.stdin?.off('end', onEnd);
      sock.end();
      if (io.isTty) io.stderr.write(why === 'escape' ? '\r\nvmnet: detached\r\n' : '\r\nvmnet: the console closed (the VM stopped)\r\n');
    },
  };
}
