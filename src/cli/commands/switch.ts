/**
 * `vmnet switch create|ls|rm|socket NAME`: private L2 switches that run in
 * the background (src/switch/daemon.ts), `vmnet switch forward add|rm|ls
 * SWITCH [VM] SPEC` for port forwards through a switch's gateway to one of
 * its VMs, `vmnet switch unblock SWITCH PORT` to lift a loop-protection
 * block, `vmnet switch link|unlink A B` to cable two switches, plus the hidden `switch serve NAME` that is the background process
 * itself.
 */
import type { Argv, CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { VmnetError } from '../../errors.js';
import { printable, toJson } from '../../config/printable.js';
import { parseVlanList } from '../../switch/vlan.js';

interface CreateArgs {
  name: string;
  subnet?: string;
  gateway?: boolean;
  isolated: boolean;
  'host-loopback': boolean;
  host: boolean;
  pcap?: string;
  mtu?: number;
  'storm-limit'?: number;
  'dns-upstream': string[];
  'dns-record': string[];
  vxlan?: string;
  'vxlan-remote': string[];
  'vxlan-local'?: string;
  'vxlan-underlay-mtu'?: number;
  ipv6: boolean;
  subnet6?: string;
}

const withCreateOptions = <T>(y: Argv<T>): Argv<T & CreateArgs> =>
  y
    .positional('name', { type: 'string', demandOption: true, describe: 'switch name (letters, digits, - and _)' })
    .option('subnet', { type: 'string', describe: 'network for the gateway, e.g. 10.7.0.0/24 (implies --gateway)' })
    .option('gateway', { type: 'boolean', describe: 'put a gateway (DHCP, DNS, NAT) on the switch; default: on with --subnet (--no-gateway: a private LAN)' })
    .option('isolated', { type: 'boolean', default: false, describe: 'the gateway lets nothing out: no NAT, no DNS forwarding, no host access' })
    .option('host-loopback', { type: 'boolean', default: true, describe: "the gateway address reaches the host's 127.0.0.1 (--no-host-loopback turns it off)" })
    .option('host', { type: 'boolean', default: true, describe: "NAT reaches the host's own addresses (--no-host refuses every one of them; the outside stays reachable)" })
    .option('pcap', { type: 'string', describe: 'capture every frame entering the switch to FILE (802.1Q-tagged)' })
    .option('mtu', { type: 'number', describe: 'link MTU (default 1500)' })
    .option('ipv6', { type: 'boolean', default: true, describe: 'the gateway serves IPv6 (--no-ipv6 turns it off)' })
    .option('subnet6', { type: 'string', describe: "the gateway's IPv6 /64 (default fd0d:b4b8:6ba1::/64)" })
    .option('storm-limit', { type: 'number', describe: 'broadcast/multicast frames per second each port may send (default 1000; 0: no limit)' })
    .option('dns-upstream', { type: 'string', array: true, default: [] as string[], describe: "the gateway's upstream DNS ADDR[:PORT], repeatable" })
    .option('dns-record', { type: 'string', array: true, default: [] as string[], describe: 'local DNS record NAME=IP, repeatable' })
    .option('vxlan', { type: 'string', describe: 'join VXLAN segment VNI (RFC 7348) over UDP; the MTU then defaults to 1450' })
    .option('vxlan-remote', { type: 'string', array: true, default: [] as string[], describe: 'remote VTEP HOST[:PORT] (default port 4789), repeatable: broadcasts are sent to each' })
    .option('vxlan-local', { type: 'string', describe: 'local ADDR[:PORT] (or :PORT) to bind; default: the address that routes to the remotes, port 4789' })
    .option('vxlan-underlay-mtu', { type: 'number', describe: 'IP MTU between the hosts (default 1500); larger frames are dropped and counted' }) as Argv<T & CreateArgs>;

async function createOptions(a: CreateArgs) {
  const { resolve } = await import('node:path');
  const { parseDnsRecord } = await import('../../services/dns/local.js');
  const { parseUpstream } = await import('../../services/dns/resolv-conf.js');
  return {
    subnet: a.subnet,
    gateway: a.gateway,
    isolated: a.isolated,
    hostLoopback: a['host-loopback'],
    hostAccess: a.host,
    pcap: a.pcap === undefined ? undefined : resolve(a.pcap),
    mtu: a.mtu,
    ipv6: a.ipv6,
    subnet6: a.subnet6,
    stormRate: a['storm-limit'],
    dnsUpstreams: a['dns-upstream'].map(parseUpstream),
    dnsRecords: a['dns-record'].map(parseDnsRecord),
    vxlan: await vxlanOptions(a),
  };
}

/** `--vxlan VNI --vxlan-remote …` → the switch's VXLAN settings (undefined without --vxlan). */
async function vxlanOptions(a: CreateArgs) {
  const v = await import('../../config/vxlan.js');
  const given = a['vxlan-remote'].length > 0 || a['vxlan-local'] !== undefined || a['vxlan-underlay-mtu'] !== undefined;
  if (a.vxlan === undefined) {
    if (given) throw new VmnetError('E_USAGE', '--vxlan-remote, --vxlan-local and --vxlan-underlay-mtu go with --vxlan VNI');
    return undefined;
  }
  const cfg = {
    vni: v.parseVni(a.vxlan),
    remotes: a['vxlan-remote'].map((r) => v.parseVxlanEndpoint(r, '--vxlan-remote')),
    local: a['vxlan-local'] === undefined ? undefined : v.parseVxlanLocal(a['vxlan-local']),
    underlayMtu: a['vxlan-underlay-mtu'],
  };
  v.checkVxlan(cfg);
  return cfg;
}

const parseVlan = (text: string, flag: string): number => {
  const [v, ...more] = parseVlanList(text, flag);
  if (v === undefined || more.length > 0 || text.includes('-')) throw new VmnetError('E_USAGE', `bad ${flag} ${text}: give one VLAN id 1-4094`);
  return v;
};

/** `--vlan N` or `--trunk 10,20[-22] [--native N]` → a port role. */
function roleOf(a: { vlan?: number; trunk?: string; native?: number }) {
  if (a.trunk !== undefined) {
    const vlans = parseVlanList(a.trunk, '--trunk');
    return a.native === undefined ? { trunk: vlans } : { trunk: vlans, native: parseVlan(String(a.native), '--native') };
  }
  if (a.native !== undefined) throw new VmnetError('E_USAGE', '--native goes with --trunk');
  return { vlan: a.vlan === undefined ? 1 : parseVlan(String(a.vlan), '--vlan') };
}

const netdev = (path: string) => `-netdev stream,id=net0,server=off,addr.type=unix,addr.path=${path.replaceAll(',', ',,')} -device virtio-net-pci,netdev=net0`;

/** The drops of a port worth a look, e.g. `storm 12 nested-tag 1`. */
function dropsText(d: Record<string, number>): string {
  const shown = Object.entries(d).filter(([k, n]) => n > 0 && k !== 'filtered');
  return shown.map(([k, n]) => `${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${n}`).join(' ');
}

function human(bytes: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (bytes >= 1000 && i < u.length - 1) {
    bytes /= 1000;
    i++;
  }
  return `${i === 0 ? bytes : bytes.toFixed(1)}${u[i]}`;
}

/** `VXLAN VNI 42 on 192.0.2.1:4789 → 192.0.2.2:4789, …, inner frames ≤ 1464 B`. */
function vxlanText(v: { vni: number; local: string; remotes: Array<{ remote: string }>; maxInnerFrame: number }): string {
  return `VXLAN VNI ${v.vni} on ${v.local} -> ${v.remotes.map((r) => r.remote).join(', ')}, inner frames up to ${v.maxInnerFrame} B`;
}

/** ` (isolated)`, ` (no host loopback)`, ` (no host)`: how far the gateway lets guests out. */
function gatewayNotes(gw: { isolated: boolean; hostLoopback?: boolean; hostAccess?: boolean }): string {
  if (gw.isolated) return ' (isolated)';
  return `${gw.hostAccess === false ? ' (no host)' : gw.hostLoopback === false ? ' (no host loopback)' : ''}`;
}

export function switchCommand(io: CliIo): CommandModule<object, object> {
  // Everything shown may hold guest-set text (DHCP host names): escaped, one record per line.
  const out = (s: string) => io.stdout.write(printable(s.endsWith('\n') ? s.slice(0, -1) : s) + '\n');
  return {
    command: 'switch <command>',
    describe: 'private L2 switches that VMs share (background processes of your user)',
    builder: (y) =>
      y
        .usage('$0 switch <create|ls|rm|socket|forward|link|unlink|unblock> ...')
        .command({
          command: 'create <name>',
          describe: 'start a switch in the background; prints its socket and the QEMU arguments',
          builder: (b: Argv) => withCreateOptions(b),
          handler: async (a: CreateArgs) => {
            const { createSwitch } = await import('../../switch/daemon.js');
            const info = await createSwitch(a.name, await createOptions(a));
            out(`vmnet switch: ${info.name} running (pid ${info.pid}), ${info.gateway ? `gateway on ${info.subnet}${info.isolated ? ' (isolated)' : ''}` : 'no gateway (private LAN)'}`);
            out(`  socket (access VLAN 1): ${info.socket}`);
            out(`  QEMU: ${netdev(info.socket)}`);
            out(`  other VLANs: vmnet switch socket ${info.name} --vlan N | --trunk 10,20 [--native N]`);
            if (info.vxlan !== null) out(`  ${vxlanText(info.vxlan)}`);
          },
        } as CommandModule<object, CreateArgs>)
        .command({
          command: ['ls', 'list'],
          describe: 'list switches: ports, MACs, VLANs, counters',
          builder: (b: Argv) => b.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
          handler: async (a: { json: boolean }) => {
            const { listSwitches } = await import('../../switch/daemon.js');
            const all = await listSwitches();
            if (a.json) return void io.stdout.write(toJson(all, 2) + '\n');
            if (all.length === 0) return out('no switches');
            for (const s of all) {
              if (s.state !== 'running') {
                out(`${s.name}  ${s.state}${s.pid !== null ? ` (pid ${s.pid})` : ''}`);
                continue;
              }
              const sw = s.snapshot.switch;
              const gw = s.snapshot.gateway;
              out(`${s.name}  pid ${s.info.pid}  ${gw ? `gateway ${gw.gatewayIp} on ${gw.subnet}${gatewayNotes(gw)}` : 'no gateway'}  ports ${sw.ports.length}  macs ${sw.macs}  frames ${sw.counters.frames}  ${sw.pcap ? `pcap ${sw.pcap.path}` : ''}`.trimEnd());
              for (const p of sw.ports) {
                const c = p.counters;
                const macs = p.macs.map((m) => m.mac).join(',') || '-';
                const drops = dropsText({ ...c.drops, tooLong: p.framer?.tooLong ?? 0 });
                out(
                  `  port ${p.id}  ${p.kind === 'internal' ? p.name : p.kind === 'link' ? `link to ${p.peer}` : `vm${p.owner !== null ? ` ${p.owner}` : ''}${p.link?.egress.settings.down ? ' (link down)' : ''}`}  ${p.roleText}  macs ${macs}  rx ${c.rxFrames}/${human(c.rxBytes)}  tx ${c.txFrames}/${human(c.txBytes)}${c.txDropped ? `  txdrop ${c.txDropped}` : ''}${drops ? `  drops: ${drops}` : ''}`,
                );
                if (p.blocked !== null) {
                  out(`    BLOCKED (loop protection): MAC ${p.blocked.mac} on VLAN ${p.blocked.vlan} kept moving between this port and port ${p.blocked.otherPort}; vmnet switch unblock ${s.name} ${p.id}`);
                }
                for (const b of p.macBlocks) {
                  out(`    MAC BLOCKED here (loop protection): ${b.mac} on VLAN ${b.vlan} lives on port ${b.homePort}; frames with that source from any other port are dropped; vmnet switch unblock ${s.name} ${p.id}`);
                }
              }
              for (const l of gw?.leases ?? []) out(`  lease ${l.ip}  ${l.mac}${l.hostname ? `  ${l.hostname}` : ''}`);
              const vx = s.snapshot.vxlan;
              if (vx) {
                const c = vx.counters;
                out(`  ${vxlanText(vx)}  macs ${vx.macs.length}  rx ${c.rxDatagrams}  tx ${c.txDatagrams}  drops: unknown-remote ${c.unknownRemote} bad-vni ${c.badVni} malformed ${c.malformed} too-big ${c.tooBig} tx-busy ${c.txBusy}`);
                for (const r of vx.remotes) out(`    remote ${r.remote}  macs ${r.macs}  rx ${r.counters.rxDatagrams}  tx ${r.counters.txDatagrams}${r.counters.learnRefused ? `  learn-refused ${r.counters.learnRefused}` : ''}`);
              }
            }
          },
        } as CommandModule<object, { json: boolean }>)
        .command({
          command: 'rm <name>',
          describe: 'stop a switch and remove it (refuses while VMs are attached)',
          builder: (b: Argv) =>
            b.positional('name', { type: 'string', demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'stop it even with VMs attached' }),
          handler: async (a: { name: string; force: boolean }) => {
            const { removeSwitch } = await import('../../switch/daemon.js');
            const r = await removeSwitch(a.name, { force: a.force });
            out(`vmnet switch: ${a.name} ${r === 'stale' ? 'was not running; removed its remains' : 'stopped and removed'}`);
          },
        } as CommandModule<object, { name: string; force: boolean }>)
        .command({
          command: 'socket <name>',
          describe: 'print the socket (and QEMU arguments) for a VLAN role on a running switch',
          builder: (b: Argv) =>
            b
              .positional('name', { type: 'string', demandOption: true })
              .option('vlan', { type: 'number', describe: 'access VLAN (default 1)' })
              .option('trunk', { type: 'string', describe: 'trunk VLANs, e.g. 10,20-22' })
              .option('native', { type: 'number', describe: 'untagged VLAN of the trunk' })
              .conflicts('vlan', 'trunk'),
          handler: async (a: { name: string; vlan?: number; trunk?: string; native?: number }) => {
            const { switchSocketFor } = await import('../../switch/daemon.js');
            const path = await switchSocketFor(a.name, roleOf(a));
            out(path);
            out(`  QEMU: ${netdev(path)}`);
          },
        } as CommandModule<object, { name: string; vlan?: number; trunk?: string; native?: number }>)
        .command({
          command: 'forward <action> <name> [args..]',
          describe: "add, remove or list port forwards through a switch's gateway: add SWITCH [VM] SPEC, rm SWITCH SPEC, ls SWITCH",
          builder: (b: Argv) =>
            b
              .usage('$0 switch forward add SWITCH [VM] [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp]\n$0 switch forward rm SWITCH SPEC\n$0 switch forward ls SWITCH')
              .positional('action', { choices: ['add', 'rm', 'ls'] as const, demandOption: true })
              .positional('name', { type: 'string', demandOption: true, describe: 'switch name' })
              .positional('args', { type: 'string', array: true, describe: 'VM (name or IPv4 address; default: the first guest) and SPEC' }),
          handler: async (a: { action: 'add' | 'rm' | 'ls'; name: string; args?: Array<string | number> }) => {
            const d = await import('../../switch/daemon.js');
            const { parseForward, formatForward } = await import('../../config/forward.js');
            const rest = (a.args ?? []).map(String);
            if (a.action === 'ls') {
              if (rest.length) throw new VmnetError('E_USAGE', 'vmnet switch forward ls takes only the switch name');
              for (const f of await d.switchForwardList(a.name)) out(`${formatForward(f)}${f.guest !== undefined ? ` -> ${f.guest}` : ''}`);
              return;
            }
            const max = a.action === 'add' ? 2 : 1;
            if (rest.length < 1 || rest.length > max) throw new VmnetError('E_USAGE', a.action === 'add' ? 'give vmnet switch forward add SWITCH [VM] SPEC, e.g. add lab db 5432:5432' : 'give vmnet switch forward rm SWITCH SPEC');
            const spec = parseForward(rest[rest.length - 1]!);
            if (a.action === 'add') {
              if (rest.length === 2) spec.guest = rest[0]!;
              await d.switchForwardAdd(a.name, spec);
              out(`${formatForward(spec)}${spec.guest !== undefined ? ` -> ${spec.guest}` : ''}`);
            } else if (!(await d.switchForwardRemove(a.name, spec))) {
              throw new VmnetError('E_USAGE', `switch ${a.name} has no forward ${formatForward(spec)}`);
            }
          },
        } as CommandModule<object, { action: 'add' | 'rm' | 'ls'; name: string; args?: Array<string | number> }>)
        .command({
          command: 'link <name> <peer>',
          describe: 'cable switch NAME to switch PEER: a trunk carrying --trunk VLANs tagged (and --native untagged) between them',
          builder: (b: Argv) =>
            b
              .positional('name', { type: 'string', demandOption: true })
              .positional('peer', { type: 'string', demandOption: true })
              .option('trunk', { type: 'string', demandOption: true, describe: 'VLANs the link carries tagged, e.g. 10,20-22' })
              .option('native', { type: 'number', describe: 'the VLAN it carries untagged' }),
          handler: async (a: { name: string; peer: string; trunk: string; native?: number }) => {
            const { linkSwitches } = await import('../../switch/daemon.js');
            const made = await linkSwitches(a.name, a.peer, roleOf(a));
            out(`vmnet switch: ${a.name} ${made ? 'linked to' : 'was already linked to'} ${a.peer}`);
          },
        } as CommandModule<object, { name: string; peer: string; trunk: string; native?: number }>)
        .command({
          command: 'unlink <name> <peer>',
          describe: 'cut the link from switch NAME to switch PEER',
          builder: (b: Argv) => b.positional('name', { type: 'string', demandOption: true }).positional('peer', { type: 'string', demandOption: true }),
          handler: async (a: { name: string; peer: string }) => {
            const { unlinkSwitches } = await import('../../switch/daemon.js');
            if (!(await unlinkSwitches(a.name, a.peer))) throw new VmnetError('E_USAGE', `switch ${a.name} has no link to ${a.peer}`);
            out(`vmnet switch: ${a.name} unlinked from ${a.peer}`);
          },
        } as CommandModule<object, { name: string; peer: string }>)
        .command({
          command: 'unblock <name> <port>',
          describe: 'lift a loop-protection block from a port (port ids: vmnet switch ls)',
          builder: (b: Argv) =>
            b.positional('name', { type: 'string', demandOption: true }).positional('port', { type: 'number', demandOption: true, describe: 'port id' }),
          handler: async (a: { name: string; port: number }) => {
            if (!Number.isInteger(a.port) || a.port < 1) throw new VmnetError('E_USAGE', 'bad port: give a port id (a number) from vmnet switch ls');
            const { unblockSwitchPort } = await import('../../switch/daemon.js');
            const done = await unblockSwitchPort(a.name, a.port);
            out(`vmnet switch: ${a.name} port ${a.port} ${done ? 'unblocked' : 'was not blocked'}`);
          },
        } as CommandModule<object, { name: string; port: number }>)
        .command({
          command: 'serve <name>',
          describe: false,
          builder: (b: Argv) => withCreateOptions(b),
          handler: async (a: CreateArgs) => {
            const { serveSwitch } = await import('../../switch/daemon.js');
            await serveSwitch(a.name, {
              ...(await createOptions(a)),
              log: (line) => out(`${new Date().toISOString()} ${line}`),
              onSignal: (h) => io.onSignal(h),
            });
          },
        } as CommandModule<object, CreateArgs>)
        .demandCommand(1, 'give a switch command: create, ls, rm, socket, forward, link, unlink or unblock'),
    handler: () => {},
  };
}
