/**
 * A VXLAN lab in network namespaces, never leaving the machine: an underlay
 * bridge `ubr` (192.168.77.0/24) in namespace A joins A (.1), B (.2) and C
 * (.3). A and B each run a vmnet switch (background processes started by
 * the CLI inside the namespace, B's as the unprivileged test user); C runs
 * the Linux kernel's own VTEP: `vx0` (VNI 77, head-end replication to .1
 * and .2) in bridge `br0` with a veth `h1` whose peer `h0` has
 * 10.77.0.200/24 (this kernel has no VLAN devices and no VLAN filtering:
 * br0 passes tagged frames through untouched). "Guests" are Linux
 * in namespaces of their own, their TAP relayed to a switch socket
 * (tap-relay.ts), taking DHCP leases with busybox udhcpc.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addTap, createNetns, ipCmd, runInNetns, type Netns } from './netns.js';
import { startTapRelay, type TapRelay } from './tap-relay.js';
import { ensureTestUser, TEST_USER } from './test-user.js';

const run = promisify(execFile);
const BIN = join(new URL('../..', import.meta.url).pathname, 'dist/cli/bin.js');
export const VNI = 77;

export interface SwitchHandle {
  ns: Netns;
  name: string;
  env: NodeJS.ProcessEnv;
  /** Runs `vmnet ARGS` in the switch's namespace (as its user). */
  vmnet(...args: string[]): Promise<string>;
}

export interface Lab {
  a: Netns;
  b: Netns;
  c: Netns;
  swA: SwitchHandle;
  swB: SwitchHandle;
  close(): Promise<void>;
}

/** Starts `vmnet switch create NAME ARGS` inside `ns` (as `user`, or root), in a runtime directory of its own. */
export async function startSwitch(ns: Netns, name: string, user: string | null, args: string[]): Promise<SwitchHandle> {
  const rt = mkdtempSync(join(tmpdir(), `vmnet-vx-${name}-`));
  if (user !== null) {
    const { uid, gid } = ensureTestUser();
    chownSync(rt, uid, gid);
  }
  chmodSync(rt, 0o700);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: user ? `/home/${user}` : process.env.HOME, LANG: 'C', VMNET_RUNTIME_DIR: rt };
  const prefix = ['netns', 'exec', ns.name, ...(user ? ['runuser', '-u', user, '--'] : []), process.execPath, BIN];
  const vmnet = async (...a: string[]): Promise<string> => {
    try {
      return (await run('ip', [...prefix, ...a], { env, encoding: 'utf8' })).stdout;
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`vmnet ${a.join(' ')} in ${ns.name}: ${x.message}\n${x.stdout ?? ''}${x.stderr ?? ''}`);
    }
  };
  await vmnet('switch', 'create', name, ...args);
  return { ns, name, env, vmnet };
}

/** Builds the lab; switch A gets a gateway on 10.77.0.0/24 (isolated), B none. */
export async function startLab(): Promise<Lab> {
  const a = createNetns('vmnet-vxa');
  const b = createNetns('vmnet-vxb');
  const c = createNetns('vmnet-vxc');
  const started: SwitchHandle[] = [];
  const close = async () => {
    for (const s of started) await s.vmnet('switch', 'rm', s.name, '--force').catch(() => {});
    for (const ns of [a, b, c]) ns.delete();
  };
  try {
    await ipCmd('-n', a.name, 'link', 'add', 'ubr', 'type', 'bridge');
    await ipCmd('-n', a.name, 'addr', 'add', '192.168.77.1/24', 'dev', 'ubr');
    await ipCmd('-n', a.name, 'link', 'set', 'ubr', 'up');
    for (const [ns, dev, addr] of [[b, 'b0', '192.168.77.2/24'], [c, 'c0', '192.168.77.3/24']] as const) {
      const peer = `u-${dev}`;
      await ipCmd('-n', ns.name, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', peer, 'netns', a.name);
      await ipCmd('-n', a.name, 'link', 'set', peer, 'master', 'ubr', 'up');
      await ipCmd('-n', ns.name, 'addr', 'add', addr, 'dev', dev);
      await ipCmd('-n', ns.name, 'link', 'set', dev, 'up');
    }
    // The kernel's VTEP in C, bridged to a veth with an address.
    await ipCmd('-n', c.name, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'local', '192.168.77.3', 'dstport', '4789', 'dev', 'c0');
    for (const dst of ['192.168.77.1', '192.168.77.2']) await run('bridge', ['-n', c.name, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', dst]);
    await ipCmd('-n', c.name, 'link', 'add', 'br0', 'type', 'bridge');
    await ipCmd('-n', c.name, 'link', 'add', 'h0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'h1', 'mtu', '1450');
    for (const d of ['vx0', 'h1']) await ipCmd('-n', c.name, 'link', 'set', d, 'master', 'br0', 'up');
    await ipCmd('-n', c.name, 'link', 'set', 'br0', 'up');
    await ipCmd('-n', c.name, 'addr', 'add', '10.77.0.200/24', 'dev', 'h0');
    await ipCmd('-n', c.name, 'link', 'set', 'h0', 'up');
    // A veth hands its TCP segments on with the checksum left to "hardware" that never comes: through
    // br0 and vx0 they would reach the underlay (another veth) and vmnet's UDP socket unfinished. A real
    // NIC finishes them; here h0 must sum them itself.
    await runInNetns(c, 'ethtool', ['-K', 'h0', 'tx', 'off']);
    await runInNetns(c, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    const swA = await startSwitch(a, 'vxa', null, ['--subnet', '10.77.0.0/24', '--isolated', '--vxlan', String(VNI), '--vxlan-remote', '192.168.77.2', '--vxlan-remote', '192.168.77.3']);
    started.push(swA);
    // B rootless: its daemon runs as the unprivileged test user.
    const swB = await startSwitch(b, 'vxb', TEST_USER, ['--no-gateway', '--vxlan', String(VNI), '--vxlan-remote', '192.168.77.1', '--vxlan-remote', '192.168.77.3']);
    started.push(swB);
    return { a, b, c, swA, swB, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The udhcpc hook of the namespace guests: applies the lease (MTU included) and prints it. */
const UDHCPC_SCRIPT = `#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/\${mask:-24}" dev "$interface"
[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
[ -n "$router" ] && ip route add default via "$router" dev "$interface"
echo "LEASE ip=$ip router=$router mtu=$mtu"
`;

export interface NsGuest {
  ns: Netns;
  relay: TapRelay;
  /** The lease: address, router and MTU as the gateway sent them. */
  lease: { ip: string; router: string; mtu: string };
  close(): Promise<void>;
}

/** Linux in a namespace as a guest on a switch socket: TAP `tap0` relayed to `socket`, a DHCP lease on it. */
export async function nsGuest(prefix: string, socket: string): Promise<NsGuest> {
  const ns = createNetns(prefix);
  let relay: TapRelay | null = null;
  try {
    await runInNetns(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await addTap(ns, 'tap0');
    relay = await startTapRelay({ netns: ns.name, tap: 'tap0', socket });
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-vx-guest-'));
    const script = join(dir, 'udhcpc.sh');
    writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
    const out = await runInNetns(ns, 'busybox', ['udhcpc', '-i', 'tap0', '-s', script, '-n', '-q', '-t', '20', '-T', '1'], 60_000);
    const m = /LEASE ip=(\S+) router=(\S*) mtu=(\S*)/.exec(out);
    if (!m) throw new Error(`no lease in ${ns.name}: ${out}`);
    const r = relay;
    return {
      ns,
      relay: r,
      lease: { ip: m[1]!, router: m[2]!, mtu: m[3]! },
      async close() {
        await r.stop();
        ns.delete();
      },
    };
  } catch (e) {
    await relay?.stop();
    ns.delete();
    throw e;
  }
}
