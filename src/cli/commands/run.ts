/**
 * `vmnet run [IMAGE] [options] [-- extra qemu args]`: flags → RunOptions →
 * the library's planRun/runVm.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { parseForward } from '../../config/forward.js';

interface RunArgs {
  image?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  snapshot: boolean;
  memory: string;
  cpus: number;
  name?: string;
  accel: 'auto' | 'kvm' | 'tcg' | 'hvf';
  qemu?: string;
  net: 'user' | 'none';
  forward: string[];
  console: string;
  'dry-run': boolean;
  '--'?: Array<string | number>;
}

export function runCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, RunArgs> {
  return {
    command: 'run [image]',
    describe: 'boot a VM (raw or qcow2 disk image, or a kernel) with its own network',
    builder: (y) =>
      y
        .parserConfiguration({ 'populate--': true })
        .usage('$0 run [IMAGE] [options] [-- extra qemu args]\n\nBoot a VM. Its serial console is on this terminal: Ctrl-A x quits, Ctrl-A c toggles the QEMU monitor.')
        .positional('image', { type: 'string', describe: 'disk image (qcow2 or raw, detected from the file)' })
        .option('kernel', { type: 'string', describe: 'boot this kernel directly (with or without IMAGE)' })
        .option('initrd', { type: 'string', describe: 'initramfs for --kernel' })
        .option('append', { type: 'string', describe: 'kernel command line for --kernel' })
        .option('snapshot', { type: 'boolean', default: false, describe: 'discard all writes to the image (throwaway VM)' })
        .option('memory', { alias: 'm', type: 'string', default: '1G', describe: 'guest memory, e.g. 512M, 2G' })
        .option('cpus', { type: 'number', default: 2, describe: 'virtual CPUs' })
        .option('name', { type: 'string', describe: 'VM name (default: from the image file name)' })
        .option('accel', { choices: ['auto', 'kvm', 'tcg', 'hvf'] as const, default: 'auto' as const, describe: 'accelerator; auto uses KVM only when /dev/kvm can be opened, else TCG' })
        .option('qemu', { type: 'string', describe: 'QEMU binary (default: qemu-system-<host arch> on PATH)' })
        .option('net', { choices: ['user', 'none'] as const, default: 'user' as const, describe: 'network: user (NAT with DHCP/DNS) or none' })
        .option('forward', { alias: 'p', type: 'string', array: true, default: [] as string[], describe: 'forward [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp]; BIND defaults to 127.0.0.1 (repeatable)' })
        .option('console', { type: 'string', default: 'stdio', describe: 'serial console: stdio (this terminal), none, or file:PATH' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the QEMU command line and network plan, start nothing' }) as never,
    handler: async (a) => {
      const { planRun, runVm } = await import('../../vm/run.js');
      const { shellQuote } = await import('../../qemu/args.js');
      const plan = await planRun({
        image: a.image,
        kernel: a.kernel,
        initrd: a.initrd,
        append: a.append,
        snapshot: a.snapshot,
        memory: a.memory,
        cpus: a.cpus,
        name: a.name,
        accel: a.accel,
        qemu: a.qemu,
        net: a.net,
        forwards: a.forward.map(parseForward),
        console: a.console,
        extraArgs: (a['--'] ?? []).map(String),
      });
      for (const n of plan.notes) io.stderr.write(`vmnet: ${n}\n`);
      if (a['dry-run']) {
        io.stdout.write(shellQuote([plan.binary, ...plan.args]) + '\n');
        for (const nic of plan.spec.nics) {
          const fw = nic.backend.kind === 'qemu-user' ? nic.backend.forwards.map((f) => ` ${f.bindAddress}:${f.hostPort}->${f.guestPort}/${f.proto}`).join('') : '';
          io.stdout.write(`nic ${nic.mac}: ${nic.backend.kind}${fw}\n`);
        }
        return;
      }
      let stopRequested = false;
      let off = () => {};
      const exit = await runVm(plan, (stop) => {
        off = io.onSignal(() => {
          stopRequested = true;
          stop();
        });
      });
      off();
      if (exit.code === 0 || stopRequested) return;
      io.stderr.write(`vmnet: QEMU exited with ${exit.signal ?? `code ${exit.code}`}: ${exit.stderr.trim().split('\n').slice(-3).join(' | ')}\n`);
      setExit(1);
    },
  };
}
