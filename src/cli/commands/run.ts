/**
 * `vmnet run [IMAGE] [options] [-- extra qemu args]`: flags → LaunchOptions
 * → the library's launch() (foreground), planLaunch() (--dry-run) or
 * startDetached() (--detach). The foreground run (run-foreground.ts) owns
 * the VM: its serial console is on the terminal (Ctrl-] stops the VM),
 * SIGINT/SIGTERM/SIGHUP power it down in order (a second one forces), and
 * the exit code says how it ended.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { kib, withNetworkOptions, type NetworkArgs } from './gateway.js';
import { VmnetError } from '../../errors.js';
import { printable, toJson } from '../../config/printable.js';
import type { LaunchOptions } from '../../vm/plan.js';
import type { Writable } from 'node:stream';
import { resolve } from 'node:path';
import type { VmEvent } from '../../vm/vm.js';

interface RunArgs extends NetworkArgs {
  image?: string;
  digest?: string;
  'disk-size'?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  snapshot: boolean;
  format?: 'raw' | 'qcow2';
  memory: string;
  cpus: number;
  name?: string;
  accel: 'auto' | 'kvm' | 'tcg' | 'hvf';
  qemu?: string;
  net: string[];
  forward: string[];
  console: string;
  detach: boolean;
  json: boolean;
  'stop-timeout': number;
  'dry-run': boolean;
  supervised: boolean;
  'cloud-init': 'auto' | 'on' | 'off';
  'cloud-init-seed'?: 'net' | 'disk';
  user?: string;
  'ssh-key': string[];
  'user-data': string[];
  ssh?: boolean;
  '--'?: string[];
}

const USAGE = `$0 run [IMAGE] [options] [-- extra qemu args]

Boot a VM on vmnet's own user-mode network (DHCP, DNS, NAT, port forwards).
IMAGE is a disk image file, or an http(s) URL: downloaded once into the cache
(resumed when cut off), never written; the VM keeps its writes in a disk of
its own (per --name) until vmnet rm NAME.
Its serial console is on this terminal: Ctrl-] stops the VM (ACPI power-down,
then quit), every other key goes to the guest. SIGINT, SIGTERM and SIGHUP sent
to vmnet also power the guest down (a second one forces it off). With --detach
the VM runs in the background: see vmnet ls, console, forward, wait, stop.
A disk image is seeded for cloud-init (a user with vmnet's key, an SSH forward):
vmnet wait NAME --ssh, then vmnet ssh / exec / cp NAME.`;

type ConsoleMode = { kind: 'terminal' } | { kind: 'none' } | { kind: 'file'; path: string };

function parseConsole(text: string): ConsoleMode {
  if (text === 'terminal' || text === 'stdio') return { kind: 'terminal' };
  if (text === 'none') return { kind: 'none' };
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new VmnetError('E_USAGE', `bad --console ${text}: use terminal (default), none or file:PATH`);
}

export function runCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, RunArgs> {
  return {
    command: 'run [image]',
    describe: 'boot a VM (raw or qcow2 disk image, its http(s) URL, or a kernel) on its own network',
    builder: (y) =>
      withNetworkOptions(
        y
          // Arguments after -- go to QEMU verbatim: never coerced to numbers (1e3, 0x100, 007 stay strings).
          .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
          .usage(USAGE)
          .positional('image', { type: 'string', describe: 'disk image (qcow2 or raw, detected from the file unless --format), or an http(s) URL of one' })
          .option('digest', { type: 'string', describe: 'sha256:HEX the image downloaded from a URL must have (from the distribution\'s SHA256SUMS); a mismatch removes the download and exits 2' })
          .option('disk-size', { type: 'string', describe: 'grow the disk kept for an image URL to this size, e.g. 20G (it never shrinks)' })
          .option('format', {
            choices: ['raw', 'qcow2'] as const,
            describe: 'the image format; without it a qcow2 image that names a backing or data file is refused (a guest could have written that header)',
          })
          .option('kernel', { type: 'string', describe: 'boot this kernel directly (with or without IMAGE)' })
          .option('initrd', { type: 'string', describe: 'initramfs for --kernel' })
          .option('append', { type: 'string', describe: 'kernel command line for --kernel' })
          .option('snapshot', { type: 'boolean', default: false, describe: 'discard all writes to the image (throwaway VM)' })
          .option('memory', { alias: 'm', type: 'string', default: '1G', describe: 'guest memory, e.g. 512M, 2G' })
          .option('cpus', { type: 'number', default: 2, describe: 'virtual CPUs' })
          .option('name', { type: 'string', describe: 'VM name (default: from the image file name, made unique)' })
          .option('accel', { choices: ['auto', 'kvm', 'tcg', 'hvf'] as const, default: 'auto' as const, describe: 'accelerator; auto tries KVM when /dev/kvm opens and starts QEMU again with TCG when KVM fails at start (remembered until the host reboots)' })
          .option('qemu', { type: 'string', describe: 'QEMU binary (default: qemu-system-<host arch> on PATH)' })
          .option('net', {
            type: 'string',
            array: true,
            default: ['user'],
            describe: "NIC: user[,mac=MAC] (vmnet's gateway, in-process), none, or switch:NAME[,vlan=N][,mac=MAC]; repeatable for several NICs",
          })
          .option('forward', { alias: 'p', type: 'string', array: true, default: [] as string[], describe: 'forward [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp]; BIND defaults to 127.0.0.1 (repeatable)' })
          .option('console', { type: 'string', default: 'terminal', describe: 'serial console: terminal (this one), none, or file:PATH (a copy; `vmnet console NAME` attaches any time)' })
          .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'run in the background under a supervisor; prints the VM name' })
          .option('json', { type: 'boolean', default: false, describe: 'report lifecycle events as NDJSON on stdout (started, lease, forward, ready, exited)' })
          .option('stop-timeout', { type: 'number', default: 30, describe: 'seconds the guest gets to power off after Ctrl-C/SIGTERM before QEMU is told to quit' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the QEMU command line and network plan, start nothing' })
          .option('cloud-init', { choices: ['auto', 'on', 'off'] as const, default: 'auto' as const, describe: 'seed cloud-init (a user with vmnet\'s key and yours, sudo, an exact host key): auto = for disk images, not --kernel boots' })
          .option('cloud-init-seed', { choices: ['net', 'disk'] as const, describe: 'how the seed reaches the guest: net (served by the VM\'s gateway, named by SMBIOS; default with --net user) or disk (a CIDATA disk)' })
          .option('user', { type: 'string', describe: 'the login user cloud-init creates (default: your user name, else vmnet)' })
          .option('ssh-key', { type: 'string', array: true, default: [] as string[], describe: 'also authorize the public keys in FILE.pub (repeatable; ~/.ssh keys are not added unless named)' })
          .option('user-data', { type: 'string', array: true, default: [] as string[], describe: 'cloud-init user-data FILE merged after vmnet\'s (#cloud-config, #!, …; repeatable; passed through untouched)' })
          .option('ssh', { type: 'boolean', describe: 'an SSH forward on a free 127.0.0.1 port for vmnet ssh/exec/cp (default for disk images and seeded VMs; --no-ssh: none)' })
          .option('supervised', { type: 'boolean', default: false, hidden: true }),
      ) as never,
    handler: async (a) => {
      if (a.supervised) {
        const { runSupervised } = await import('../../vm/supervisor.js');
        const { STOP_SIGNALS } = await import('./run-foreground.js');
        setExit(await runSupervised((h) => io.onSignal(h, STOP_SIGNALS), io.stderr));
        return;
      }
      const console = parseConsole(a.console);
      if (!(a['stop-timeout'] >= 0)) throw new VmnetError('E_USAGE', `bad --stop-timeout ${a['stop-timeout']}: give seconds, e.g. 30`);
      const { parseUpstream } = await import('../../services/dns/resolv-conf.js');
      const opts: LaunchOptions = {
        ...(a.image !== undefined ? { image: a.image } : {}),
        ...(a.digest !== undefined ? { digest: a.digest } : {}),
        ...(a['disk-size'] !== undefined ? { diskSize: a['disk-size'] } : {}),
        ...(a.kernel !== undefined ? { kernel: a.kernel } : {}),
        ...(a.initrd !== undefined ? { initrd: a.initrd } : {}),
        ...(a.append !== undefined ? { append: a.append } : {}),
        snapshot: a.snapshot,
        ...(a.format !== undefined ? { format: a.format } : {}),
        memory: a.memory,
        cpus: a.cpus,
        ...(a.name !== undefined ? { name: a.name } : {}),
        accel: a.accel,
        ...(a.qemu !== undefined ? { qemu: a.qemu } : {}),
        net: a.net,
        forwards: a.forward,
        isolated: a.isolated,
        dnsRecords: a['dns-record'],
        ...(a.pcap !== undefined ? { pcap: a.pcap } : {}),
        ...(a.mtu !== undefined ? { mtu: a.mtu } : {}),
        network: {
          subnet: a.subnet,
          ipv6: a.ipv6,
          subnet6: a.subnet6,
          gatewayIp: a['gateway-ip'],
          dnsIp: a['dns-ip'],
          hostLoopback: a['host-loopback'],
          hostAccess: a.host,
          dhcpLeasesPerLink: a['dhcp-leases-per-link'],
          ...(a['dns-upstream'].length ? { dnsUpstreams: a['dns-upstream'].map(parseUpstream) } : {}),
          resolvConf: a['resolv-conf'],
          udpIdleMs: a['udp-idle'] === undefined ? undefined : a['udp-idle'] * 1000,
          linkQueueBytes: kib(a['link-queue']),
          tcpCc: a['tcp-cc'],
        },
        ...(console.kind === 'file' ? { consoleFile: console.path } : {}),
        extraArgs: a['--'] ?? [],
        stopTimeoutMs: a['stop-timeout'] * 1000,
        cloudInit: a['cloud-init'],
        ...(a['cloud-init-seed'] !== undefined ? { cloudInitSeed: a['cloud-init-seed'] } : {}),
        ...(a.user !== undefined ? { user: a.user } : {}),
        ...(a['ssh-key'].length ? { sshKeyFiles: a['ssh-key'].map((f) => resolve(f)) } : {}),
        ...(a['user-data'].length ? { userDataFiles: a['user-data'].map((f) => resolve(f)) } : {}),
        ...(a.ssh !== undefined ? { ssh: a.ssh } : {}),
        env: io.env,
      };

      if (a['dry-run']) {
        const { planLaunch } = await import('../../vm/plan.js');
        const { shellQuote } = await import('../../qemu/args.js');
        const plan = await planLaunch(opts);
        if (a.json) {
          io.stdout.write(JSON.stringify({ name: plan.name, dir: plan.dir, command: [plan.binary, ...plan.args], network: plan.network, notes: plan.notes }) + '\n');
          return;
        }
        for (const n of plan.notes) io.stderr.write(`vmnet: ${n}\n`);
        io.stdout.write(shellQuote([plan.binary, ...plan.args]) + '\n');
        io.stdout.write(`name ${plan.name}\nstate dir ${plan.dir}\n`);
        for (const line of plan.network) io.stdout.write(line + '\n');
        return;
      }

      const json = a.json;
      const { downloadReporter } = await import('../download-report.js');
      const download = downloadReporter(io.stderr, { tty: (io.stderr as { isTTY?: boolean }).isTTY === true, json });
      /** What the user hears about the start: the download, the fallback and the notes on stderr, every event as NDJSON with --json. */
      const report = (e: VmEvent, write: (stream: Writable, text: string) => void) => {
        // QEMU's stderr (in the reason and the notes) is another program's text: escaped.
        if (e.event === 'download') {
          download(e, write);
        } else if (e.event === 'accel-fallback') {
          write(io.stderr, `vmnet: KVM failed when QEMU started (${printable(e.reason)}); started again with TCG (slower)${e.remembered ? `; later runs in this boot use TCG directly (${printable(e.remembered)})` : ''}\n`);
        } else if (e.event === 'started') {
          for (const n of e.notes) write(io.stderr, `vmnet: ${printable(n)}\n`);
        }
        if (json) write(io.stdout, toJson(e) + '\n');
      };
      if (a.detach) {
        const { startDetached } = await import('../../vm/supervisor.js');
        const { STOP_SIGNALS } = await import('./run-foreground.js');
        // A signal while the supervisor starts the VM cancels that start (nothing is left running).
        const cancel = new AbortController();
        const off = io.onSignal((sig) => cancel.abort(sig), STOP_SIGNALS);
        const { name, events } = await startDetached({ ...opts, onEvent: (e) => report(e, (stream, text) => stream.write(text)) }, undefined, cancel.signal).finally(off);
        for (const e of events) report(e, (stream, text) => stream.write(text));
        if (!json) io.stdout.write(name + '\n');
        return;
      }
      const { runForeground } = await import('./run-foreground.js');
      setExit(await runForeground(opts, { json, onTerminal: console.kind === 'terminal' && !json, stopTimeoutS: a['stop-timeout'], report }, io));
    },
  };
}
