/**
 * Linux bonding in a real guest across a vmnet link failure: the bundled
 * busybox guest under TCG (its Debian kernel's bonding.ko added, see
 * test/helpers/bonding-guest.ts) with two NICs on one switch bonds them in
 * active-backup mode with ARP monitoring of the gateway (QEMU's NIC keeps
 * its carrier when a switch port goes down, as a cable to a dead upstream
 * would: MII monitoring would not notice). While it downloads a file from
 * the host through the switch's gateway, `setLink('bond:0', 'down')` takes
 * its active port down: the bond fails over to eth1, whose first frames
 * (gratuitous ARP, ARP probes) move its MAC to the other port at once, and
 * the TCP transfer completes with the same SHA-256 as the host's file.
 *
 * The relearn time (link down → MAC on the new port) is printed, not
 * asserted: it is the guest's ARP monitor (200 ms interval, 6 missed: a
 * TCG guest on a loaded host can miss a few intervals, and a monitor that
 * fails over before the link goes down fails the test) under TCG.
 *
 * The switch is looked at while the guest holds at the end of its script
 * (console.ts, HOLD_SCRIPT): the guest powers off right after the script,
 * and its ports close with it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { expect, it } from 'vitest';
import { launch, setLink, showLink } from '../../src/index.js';
import { HOLD_SCRIPT, runConsoleScript } from '../../src/guest/console.js';
import { ensureSwitch, removeSwitch, switchStatus } from '../../src/switch/daemon.js';
import type { PortSnapshot, SwitchSnapshot } from '../../src/switch/server.js';
import type { VmLink } from '../../src/switch/vm-link.js';
import { bondingGuest } from '../helpers/bonding-guest.js';

const GW = '10.0.12.2';
const SIZE = 6 * 1024 * 1024;

it('active-backup bond: the active port goes down mid-transfer, the bond fails over, the switch relearns its MAC, the download completes intact', async () => {
  const guest = bondingGuest();
  const blob = randomBytes(SIZE);
  const want = createHash('sha256').update(blob).digest('hex');
  let written = 0;
  let onProgress = (_n: number) => {};
  // Served in 64 KiB pieces every 40 ms (about 1.6 MB/s): the transfer is still going when the link drops.
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(SIZE) });
    const tick = setInterval(() => {
      if (written >= SIZE) {
        clearInterval(tick);
        return void res.end();
      }
      const n = Math.min(64 * 1024, SIZE - written);
      res.write(blob.subarray(written, written + n));
      written += n;
      onProgress(written);
    }, 40);
    res.on('close', () => clearInterval(tick));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;

  const runtimeDir = mkdtempSync(join(tmpdir(), 'vmnet-bond-'));
  const env = { ...process.env, VMNET_RUNTIME_DIR: runtimeDir, XDG_RUNTIME_DIR: '' };
  const opts = { runtimeDir };
  await ensureSwitch('bondlab', { subnet: '10.0.12.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }], runtimeDir });
  const vm = await launch({ kernel: guest.kernel, initrd: guest.initrd, append: guest.append, accel: 'tcg', memory: '256M', cpus: 1, name: 'bond', net: ['switch:bondlab', 'switch:bondlab'], env });
  try {
    const B = '/sys/class/net/bond0/bonding';
    const script = `insmod /lib/modules/tls.ko && insmod /lib/modules/bonding.ko max_bonds=0 || exit 3
echo +bond0 > /sys/class/net/bonding_masters
echo active-backup > ${B}/mode
echo 100 > ${B}/miimon
ip link set eth0 down; ip link set eth1 down
echo +eth0 > ${B}/slaves; echo +eth1 > ${B}/slaves
ip link set bond0 up
udhcpc -i bond0 -s /etc/udhcpc.script -n -q -t 10 -T 1 || exit 4
echo 0 > ${B}/miimon
echo +${GW} > ${B}/arp_ip_target
echo 6 > ${B}/arp_missed_max
echo 200 > ${B}/arp_interval
sleep 1
echo "STEP-ACTIVE $(cat ${B}/active_slave) mac $(cat /sys/class/net/bond0/address)"
wget -q -O - http://${GW}:${port}/blob | sha256sum > /tmp/sum
echo "STEP-DONE $(cat ${B}/active_slave)"
echo "SUM $(cut -d' ' -f1 /tmp/sum)"
echo "BOND-STATE $(grep -E 'Slave Interface|Link Failure Count' /proc/net/bonding/bond0 | tr '\\n' ' ')"
${HOLD_SCRIPT}
`;
    let bondMac = '';
    const lines: string[] = [];
    const onLine = (line: string) => {
      if (process.env.VMNET_TEST_CONSOLE) appendFileSync(process.env.VMNET_TEST_CONSOLE, line + '\n');
      const m = /^STEP-ACTIVE (\S+) mac (\S+)/.exec(line.trim());
      if (m) bondMac = m[2]!;
      if (/^STEP-|^SUM /.test(line.trim())) lines.push(line.trim());
    };
    // The active port goes down once 1.5 MB were sent; then watch where the bond's MAC is learned.
    let downAt = 0;
    let movedAfterMs = -1;
    const failed = new Promise<void>((resolve, reject) => {
      onProgress = (n) => {
        if (n < 1.5 * 1024 * 1024 || downAt !== 0) return;
        downAt = performance.now();
        setLink('bond:0', 'down', opts)
          .then(async () => {
            for (let i = 0; i < 500 && movedAfterMs < 0; i++) {
              const s = await switchStatus('bondlab', opts);
              const p1 = s?.snapshot.switch.ports.find((p) => p.owner === 'bond:1');
              if (p1?.macs.some((x) => x.mac === bondMac)) movedAfterMs = performance.now() - downAt;
              else await new Promise((r) => setTimeout(r, 20));
            }
          })
          .then(resolve, reject);
      };
    });
    failed.catch(() => {}); // awaited at the hold (or reported through it)
    // The guest's ports as they are at the end of the transfer, taken while it holds (it powers off after the script).
    const atEnd: { ports?: PortSnapshot[]; closed?: SwitchSnapshot['connectionsClosed']; l0?: VmLink } = {};
    const onHold = async () => {
      if (downAt !== 0) await failed; // (never set off when the download ended early: the checks below say so)
      const sw = (await switchStatus('bondlab', opts))?.snapshot.switch;
      atEnd.ports = sw?.ports;
      atEnd.closed = sw?.connectionsClosed;
      [atEnd.l0] = await showLink('bond:0', opts);
    };
    const r = await runConsoleScript(vm.serial, vm.serial, script, { onLine, onHold, timeoutMs: 200_000 });
    expect(r.exitCode, r.output).toBe(0);
    expect(lines[0], r.output).toMatch(/^STEP-ACTIVE eth0 mac /); // (output: BOND-STATE counts each NIC's link failures)
    expect(lines[1], r.output).toBe('STEP-DONE eth1'); // failed over
    expect(lines[2], r.output).toBe(`SUM ${want}`); // the whole file, intact, across the failover
    expect(downAt).toBeGreaterThan(0);
    expect(movedAfterMs).toBeGreaterThanOrEqual(0); // the switch moved the MAC to the backup's port
    const { ports = [], closed, l0 } = atEnd;
    expect(closed).toEqual({}); // neither NIC's connection closed or came back during the run
    const p0 = ports.find((p) => p.owner === 'bond:0');
    const p1 = ports.find((p) => p.owner === 'bond:1');
    expect(p0).toBeDefined();
    expect(p1).toBeDefined();
    expect(p1!.macs.map((x) => x.mac)).toContain(bondMac);
    expect(p0!.macs.map((x) => x.mac)).not.toContain(bondMac);
    expect(p1!.counters.moves).toBeGreaterThanOrEqual(1);
    expect(l0!.link!.egress.settings.down).toBe(true);
    console.log(`bonding e2e: link down after ${(1.5).toFixed(1)} MB; bond MAC ${bondMac} on the backup's port ${movedAfterMs.toFixed(0)} ms later; port 0 dropped ${l0!.link!.egress.counters.down} frames out, ${l0!.link!.ingress.counters.down} in; SHA-256 ${want.slice(0, 16)}… intact; ${/BOND-STATE (.*)/.exec(r.output)?.[1]?.trim()}`);
  } finally {
    await vm.stop({ timeoutMs: 2000 });
    await removeSwitch('bondlab', { force: true, runtimeDir });
    server.close();
  }
});
