/**
 * vmnet switches under real guests (TCG):
 *  1. three guests on a segment with a gateway: distinct leases, pings by
 *     address and by name (DHCP host name, FQDN, a vmnet name), HTTP to the
 *     host through NAT; one of them stopped and started again (same MAC)
 *     gets the same lease and a guest that stayed up reaches it again;
 *  2. a segment without a gateway: two guests with static addresses on
 *     access VLAN 10 talk to each other and to nothing else; a guest on
 *     VLAN 20 exchanges not a single frame with them (port counters, the
 *     switch's pcap read by tshark); a host process on a trunk port sees
 *     both VLANs tagged; meanwhile the switch is fed garbage, a hang-up
 *     mid-frame and a flood of random source MACs while the guests ping, and
 *     once it is over they reach each other again; the MAC table stays bounded;
 *  3. the CLI and daemon: `vmnet switch create / ls / rm` against a real
 *     background process, a guest on it via ensureSwitch(); `create
 *     --no-gateway` gives a LAN where DHCP finds nobody; `switch forward
 *     add / ls / rm` carries a host connection to the guest by its vmnet name.
 * The guest has no 8021q module, so the trunk is checked from the host side.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectStream, type StreamPort } from '../../src/link/stream-port.js';
import { macFromName } from '../../src/qemu/args.js';
import { startSegment } from '../../src/switch/segment.js';
import { ensureSwitch, listSwitches, registerSwitchName, switchSocketFor, switchStatus } from '../../src/switch/daemon.js';
import type { PortSnapshot } from '../../src/switch/server.js';
import { cliRunner } from '../helpers/cli.js';
import { arpFrame, ip, mac as macBytes } from '../helpers/frames.js';
import { freePort } from '../helpers/ports.js';
import { privateTmp } from '../helpers/tmp.js';
import { bootGuest, parseLease, startHttpServer, WHO_HTTPD, type TestGuestResult, type TestHttpServer } from './harness.js';
import { canConnect } from './launcher-helpers.js';

const run = promisify(execFile);

let http: TestHttpServer;
beforeAll(async () => {
  http = await startHttpServer();
});
afterAll(async () => {
  await http.close();
});

const nic = (path: string, mac?: string) => [{ backend: { kind: 'stream' as const, path }, ...(mac ? { mac } : {}) }];
/** DHCP that sends the guest's host name (option 12). */
const DHCP_NAMED = 'udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 5 -T 1 -x hostname:$(hostname) || exit 90\n';
/** Shell: retry `cmd` every 0.5 s up to `n` times. */
const retry = (cmd: string, n = 60) => `i=0; until ${cmd} >/dev/null 2>&1; do i=$((i+1)); [ $i -ge ${n} ] && break; sleep 0.5; done`;
const count = (out: string, label: string) => Number(new RegExp(`^${label} (\\d+)$`, 'm').exec(out)?.[1] ?? -1);
/** A retry loop's count (`LABEL $i`): printed, and below its cap, so it succeeded rather than gave up. */
const succeeded = (out: string, label: string, cap: number) => {
  const n = count(out, label);
  return n >= 0 && n < cap;
};

/**
 * One guest of the named segment: lease, resolve and ping every peer by
 * address and by name, HTTP to the host, then a barrier (each serves
 * /done once its checks are over and waits for every peer's) so nobody
 * powers off while a peer still pings it. Names answer AAAA too (the
 * peer's SLAAC address): RESOLVED takes the IPv4 answer, the lease.
 */
function namedGuestScript(peers: string[], gatewayIp: string, extra = ''): string {
  const perPeer = peers
    .map(
      (p) => `${retry(`nslookup ${p}.vmnet.internal`)}
ip=$(nslookup ${p}.vmnet.internal | awk '/^Address: *[0-9.]+$/ {a=$2} END {print a}')
echo "RESOLVED ${p} $ip"
ping -c 2 -W 2 "$ip" | grep -c 'bytes from' | sed 's/^/PINGADDR-${p} /'
ping -c 2 -W 2 ${p} | grep -c 'bytes from' | sed 's/^/PINGNAME-${p} /'
ping -c 1 -W 2 ${p}.vmnet.internal | grep -c 'bytes from' | sed 's/^/PINGFQDN-${p} /'
`,
    )
    .join('');
  const barrier = peers.map((p) => `${retry(`wget -q -O /dev/null http://${p}:8080/done`, 120)}\necho "BARRIER ${p} $i"\n`).join('');
  return `${DHCP_NAMED}${perPeer}wget -q -O - http://${gatewayIp}:${http.port}/ | sed 's/^/HTTP /'
echo done > /var/www/done
httpd -p 8080 -h /var/www
${barrier}${extra}sleep 2
`;
}

describe('switch e2e', () => {
  it('three guests on a switch with a gateway: leases, names, NAT; a restarted guest keeps its lease', async () => {
    const dir = privateTmp();
    const seg = await startSegment({ dir, gateway: { subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    try {
      const sock = seg.socket;
      // A vmnet name (what the launcher registers) for db's MAC, besides the DHCP host name.
      seg.setName(macFromName('db'), 'postgres');
      const names = ['web', 'db', 'cache'];
      // cache stays up while db stops and starts again, then pings it.
      const cacheExtra = `i=0; while ping -c 1 -W 1 db >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 120 ] && break; sleep 0.3; done
echo "DB-DOWN $i"
${retry('ping -c 1 -W 1 db', 120)}
echo "DB-BACK $i"
ping -c 2 -W 2 db | grep -c 'bytes from' | sed 's/^/PINGAGAIN /'
echo again > /var/www/again
`;
      const webExtra = `ping -c 2 -W 2 postgres | grep -c 'bytes from' | sed 's/^/PINGVMNAME /'\n`;
      const boot = (name: string) =>
        bootGuest({
          name,
          nics: nic(sock),
          script: namedGuestScript(
            names.filter((n) => n !== name),
            '10.7.0.2',
            name === 'cache' ? cacheExtra : name === 'web' ? webExtra : '',
          ),
        });
      const dbAgain = boot('db').then(async (first) => {
        const second = await bootGuest({
          name: 'db',
          nics: nic(sock),
          script: `${DHCP_NAMED}ping -c 2 -W 2 cache | grep -c 'bytes from' | sed 's/^/PINGCACHE /'
${retry('wget -q -O /dev/null http://cache:8080/again', 120)}
echo "AGAIN $i"
`,
        });
        return [first, second] as const;
      });
      const [web, cache, [db, db2]] = await Promise.all([boot('web'), boot('cache'), dbAgain]);
      const guests: Record<string, TestGuestResult> = { web, db, cache };
      const leases: Record<string, string> = {};
      for (const [name, r] of Object.entries(guests)) {
        expect(r.exitCode, `${name}: ${r.console}`).toBe(0);
        const lease = parseLease(r.output);
        expect(lease, r.console).toMatchObject({ router: '10.7.0.2', dns: '10.7.0.3', domain: 'vmnet.internal' });
        leases[name] = lease!.ip!;
      }
      // One lease per MAC, all distinct.
      expect(new Set(Object.values(leases)).size).toBe(3);
      for (const [name, r] of Object.entries(guests)) {
        for (const peer of names.filter((n) => n !== name)) {
          expect(r.output, `${name} → ${peer}: ${r.console}`).toContain(`RESOLVED ${peer} ${leases[peer]}`);
          expect(count(r.output, `PINGADDR-${peer}`), `${name} → ${peer}`).toBeGreaterThanOrEqual(1);
          expect(count(r.output, `PINGNAME-${peer}`), `${name} → ${peer}`).toBeGreaterThanOrEqual(1);
          expect(count(r.output, `PINGFQDN-${peer}`), `${name} → ${peer}`).toBe(1);
          expect(r.output).toMatch(new RegExp(`^BARRIER ${peer} \\d+$`, 'm'));
        }
        expect(r.output, `${name} HTTP through NAT`).toContain('HTTP hello from the host');
      }
      expect(count(web.output, 'PINGVMNAME'), web.console).toBeGreaterThanOrEqual(1);
      // db again, same MAC: same lease; cache (up all along) reaches it again and it reaches cache.
      expect(db2.exitCode, db2.console).toBe(0);
      expect(parseLease(db2.output)?.ip).toBe(leases.db);
      expect(count(db2.output, 'PINGCACHE'), db2.console).toBeGreaterThanOrEqual(1);
      expect(succeeded(cache.output, 'DB-DOWN', 120), cache.console).toBe(true);
      expect(succeeded(cache.output, 'DB-BACK', 120), cache.console).toBe(true);
      expect(count(cache.output, 'PINGAGAIN'), cache.console).toBeGreaterThanOrEqual(1);

      const snap = seg.snapshot();
      expect(snap.gateway!.leases.map((l) => l.ip).sort()).toEqual(Object.values(leases).sort());
      expect(snap.names).toEqual(
        expect.arrayContaining([
          { name: 'postgres', mac: macFromName('db'), ip: leases.db, source: 'vmnet' },
          ...names.map((n) => ({ name: n, mac: macFromName(n), ip: leases[n], source: 'dhcp' })),
        ]),
      );
      // Every guest has gone: only the gateway's internal port is left.
      expect(snap.switch.ports.map((p) => p.kind)).toEqual(['internal']);
    } finally {
      await seg.close();
    }
  });

  it('no gateway, VLANs 10 and 20, a trunk, and a switch that survives garbage, hang-ups and a MAC flood', async () => {
    const dir = privateTmp();
    const pcap = join(dir, 'switch.pcap');
    const seg = await startSegment({ dir, pcap });
    let trunk: StreamPort | null = null;
    let flood: ReturnType<typeof connect> | null = null;
    let signal: NodeJS.Timeout | null = null;
    const stopSignal = () => {
      if (signal) clearInterval(signal);
      signal = null;
    };
    try {
      const [s10, s20, sTrunk] = await Promise.all([seg.socketFor({ vlan: 10 }), seg.socketFor({ vlan: 20 }), seg.socketFor({ trunk: [10, 20] })]);
      const mac = { a: macFromName('lan-a'), b: macFromName('lan-b'), c: macFromName('lan-c') };
      const seen = new Set<string>();
      trunk = await connectStream({ path: sTrunk });
      trunk.onFrame = (buf, _v, off, len) => {
        if (len < 18 || buf[off + 12] !== 0x81 || buf[off + 13] !== 0) return void seen.add('untagged');
        const vid = ((buf[off + 14]! << 8) | buf[off + 15]!) & 0xfff;
        const src = [...buf.subarray(off + 6, off + 12)].map((x) => x.toString(16).padStart(2, '0')).join(':');
        seen.add(`${vid} ${src}`);
      };

      // Abuse, started once lan-a is pinging lan-b: each step on its own connection to VLAN 10.
      let abuse: Promise<{ floodMacs: number; floodRefused: number; totalMacs: number }> | null = null;
      const FLOOD = 5000;
      const startAbuse = async () => {
        const write = (data: Uint8Array, end = true) =>
          new Promise<void>((resolve) => {
            const s = connect(s10, () => {
              s.write(data, () => (end ? s.end() : undefined));
            });
            s.on('error', () => {});
            s.on('close', () => resolve());
            if (!end) resolve();
          });
        // 1. Frames with valid prefixes but junk inside: runts, group sources, tags on an access port.
        const junk: number[] = [];
        const frame = (bytes: number[]) => junk.push(0, 0, bytes.length >> 8, bytes.length & 255, ...bytes);
        for (let n = 1; n < 14; n++) frame(Array(n).fill(0xab));
        frame([...Array(6).fill(0xff), 0x01, 0, 0x5e, 0, 0, 1, 0x08, 0x00, ...Array(46).fill(0)]);
        frame([...Array(6).fill(0xff), 0x02, 1, 2, 3, 4, 5, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00, ...Array(46).fill(0)]);
        // ... then plain random bytes (an absurd length prefix, sooner or later).
        await write(Uint8Array.from([...junk, ...randomBytes(64 * 1024)]));
        // 2. A hang-up mid-frame.
        await write(Uint8Array.from([0, 0, 3, 232, ...randomBytes(100)]));
        // 3. A flood of random source MACs (unknown unicast destinations: flooded to the VLAN).
        const all = new Uint8Array(FLOOD * 64);
        const r = randomBytes(FLOOD * 12);
        for (let i = 0; i < FLOOD; i++) {
          const o = i * 64;
          all[o + 3] = 60;
          all.set(r.subarray(i * 12, i * 12 + 12), o + 4);
          all[o + 4] = (all[o + 4]! & 0xfe) | 0x02; // dst: unicast, locally administered
          all[o + 10] = (all[o + 10]! & 0xfe) | 0x02; // src likewise
          all[o + 16] = 0x88;
          all[o + 17] = 0xb5;
        }
        flood = connect(s10);
        flood.on('error', () => {});
        await new Promise<void>((resolve) => flood!.once('connect', resolve));
        flood.write(all);
        const t0 = Date.now();
        let fport = seg.snapshot().switch.ports.find((p) => p.counters.rxFrames >= FLOOD);
        while (fport === undefined && Date.now() - t0 < 10_000) {
          await new Promise((res) => setTimeout(res, 50));
          fport = seg.snapshot().switch.ports.find((p) => p.counters.rxFrames >= FLOOD);
        }
        const snap = seg.snapshot().switch;
        const result = { floodMacs: fport?.macs.length ?? -1, floodRefused: fport?.counters.learnRefused ?? -1, totalMacs: snap.macs };
        flood.destroy();
        return result;
      };
      let cPort: PortSnapshot | null = null;
      // Once the abuse is over, the host tells the VLAN 10 guests so through
      // the trunk: ARP requests from 10.9.0.99 leave a neighbour entry in each.
      const signalAbuseOver = () => {
        const from = { src: macBytes('02:00:00:00:00:99'), vlan: 10, spa: ip('10.9.0.99') };
        const send = () => {
          for (const tpa of ['10.9.0.1', '10.9.0.2']) {
            const f = arpFrame({ ...from, tpa: ip(tpa) });
            trunk?.sendFrame(f, 0, f.length);
          }
        };
        send();
        signal = setInterval(send, 500);
      };
      const onLine = (line: string) => {
        if (line.trim() === 'PINGING' && abuse === null) {
          abuse = startAbuse();
          abuse.then(signalAbuseOver, () => {});
        }
      };
      // Each pings its peer throughout the abuse, then, told it is over, must
      // reach the peer again: outcome and order, not a share of timed pings.
      const pair = (me: string, peer: string, label: boolean) => `ip addr add ${me}/24 dev eth0
${retry(`ping -c 1 -W 1 ${peer}`, 60)}
echo "REACHED $i"
${label ? 'echo PINGING\n' : ''}ping -i 0.2 ${peer} > /tmp/ping.txt &
p=$!
${retry("grep -q '^10\\.9\\.0\\.99 ' /proc/net/arp", 120)}
echo "SIGNALLED $i"
${retry(`ping -c 1 -W 1 ${peer}`, 60)}
echo "AFTER $i"
kill $p
grep -c 'bytes from' /tmp/ping.txt | sed 's/^/PINGS /'
ping -c 2 -W 1 10.9.0.3 | grep -c 'bytes from' | sed 's/^/CROSSVLAN /'
ip route add default via 10.9.0.254
wget -T 3 -q -O - http://10.0.2.2:${http.port}/ || echo "NO-HOST"
wget -T 3 -q -O - http://10.9.0.254:${http.port}/ || echo "NO-ROUTER"
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 2 -T 1 || echo "NO-DHCP"
sleep 2
`;
      const [a, b, c] = await Promise.all([
        // Room for every retry loop to run out, so a broken switch fails an assertion, not the harness timeout.
        bootGuest({ name: 'lan-a', nics: nic(s10, mac.a), script: pair('10.9.0.1', '10.9.0.2', true), onLine, timeoutMs: 240_000 }),
        bootGuest({ name: 'lan-b', nics: nic(s10, mac.b), script: pair('10.9.0.2', '10.9.0.1', false), timeoutMs: 240_000 }),
        bootGuest({
          name: 'lan-c',
          nics: nic(s20, mac.c),
          script: `ip addr add 10.9.0.3/24 dev eth0
ping -c 6 -W 1 10.9.0.1 | grep -c 'bytes from' | sed 's/^/CROSS-A /'
ping -c 6 -W 1 10.9.0.2 | grep -c 'bytes from' | sed 's/^/CROSS-B /'
echo CDONE
sleep 2
`,
          onLine: (line) => {
            if (line.trim() === 'CDONE') cPort = seg.snapshot().switch.ports.find((p) => p.macs.some((m) => m.mac === mac.c)) ?? null;
          },
        }),
      ]);
      stopSignal();
      // Port counters before the guests' ports go away are gone with them; read the pcap and the trunk.
      for (const [name, r] of [['lan-a', a], ['lan-b', b], ['lan-c', c]] as const) expect(r.exitCode, `${name}: ${r.console}`).toBe(0);
      // VLAN 10 pair: they talk, all through the abuse, and to nothing else.
      expect(abuse, a.console).not.toBeNull();
      const abused = await abuse!;
      for (const r of [a, b]) {
        expect(succeeded(r.output, 'REACHED', 60), r.console).toBe(true);
        expect(count(r.output, 'PINGS'), r.console).toBeGreaterThanOrEqual(1);
        // Told the abuse was over (not tired of waiting), then reached the peer again.
        expect(succeeded(r.output, 'SIGNALLED', 120), r.console).toBe(true);
        expect(succeeded(r.output, 'AFTER', 60), r.console).toBe(true);
        expect(count(r.output, 'CROSSVLAN'), r.console).toBe(0);
        expect(r.output).toContain('NO-HOST');
        expect(r.output).toContain('NO-ROUTER');
        expect(r.output).toContain('NO-DHCP');
        expect(r.output).not.toContain('hello from the host');
      }
      expect(count(c.output, 'CROSS-A'), c.console).toBe(0);
      expect(count(c.output, 'CROSS-B'), c.console).toBe(0);
      // lan-c's port, read while it was up: VLAN 20 has no other speaker, so not one frame went to it.
      expect(cPort, c.console).not.toBeNull();
      expect(cPort!.role).toEqual({ vlan: 20 });
      expect(cPort!.counters.rxFrames).toBeGreaterThan(0);
      expect(cPort!.counters.txFrames).toBe(0);

      // The abuse: each bad connection closed alone, the table bounded.
      const snap = seg.snapshot().switch;
      expect(snap.connectionsClosed.oversize ?? 0).toBeGreaterThanOrEqual(1);
      expect(snap.connectionsClosed['mid-frame'] ?? 0).toBeGreaterThanOrEqual(1);
      expect(snap.counters.drops.runt).toBeGreaterThanOrEqual(13);
      expect(snap.counters.drops.badSource).toBeGreaterThanOrEqual(1);
      expect(snap.counters.drops.taggedOnAccess).toBeGreaterThanOrEqual(1);
      expect(abused.floodMacs).toBeLessThanOrEqual(snap.maxMacsPerPort);
      expect(abused.floodRefused).toBeGreaterThanOrEqual(FLOOD - snap.maxMacsPerPort);
      expect(abused.totalMacs).toBeLessThanOrEqual(snap.maxEntries);
      expect(snap.counters.portLimit).toBeGreaterThan(0);
      expect(seg.gateway).toBeNull();
      expect(snap.ports.filter((p) => p.kind === 'internal')).toEqual([]);

      // The trunk saw both VLANs, tagged, and each guest only on its own VLAN.
      expect(seen.has(`10 ${mac.a}`) || seen.has(`10 ${mac.b}`), [...seen].slice(0, 20).join(' | ')).toBe(true);
      expect(seen.has(`20 ${mac.c}`), [...seen].slice(0, 20).join(' | ')).toBe(true);
      expect(seen.has(`20 ${mac.a}`) || seen.has(`20 ${mac.b}`) || seen.has(`10 ${mac.c}`)).toBe(false);
      expect(seen.has('untagged')).toBe(false);

      // The pcap: every frame tagged with its VLAN; nothing crossed between VLAN 10 and 20.
      await seg.close();
      const { stdout } = await run('tshark', ['-r', pcap, '-T', 'fields', '-E', 'separator=,', '-e', 'vlan.id', '-e', 'eth.src', '-e', 'eth.dst'], { maxBuffer: 64 << 20 });
      const rows = stdout.trim().split('\n').map((l) => l.split(','));
      const vlanOf = (m: string) => (m === mac.c ? '20' : m === mac.a || m === mac.b ? '10' : null);
      let fromC = 0;
      let fromA = 0;
      let fromB = 0;
      for (const [vid, src, dst] of rows) {
        const sv = vlanOf(src!);
        const dv = vlanOf(dst!);
        if (sv !== null) expect(vid, `${src} → ${dst}`).toBe(sv);
        if (dv !== null) expect(vid, `${src} → ${dst}`).toBe(dv);
        if (vid === '20') expect(src, 'only lan-c speaks on VLAN 20').toBe(mac.c);
        if (src === mac.c) fromC++;
        if (src === mac.a) fromA++;
        if (src === mac.b) fromB++;
      }
      expect(fromC).toBeGreaterThan(0);
      expect(fromA).toBeGreaterThan(0);
      expect(fromB).toBeGreaterThan(0);
    } finally {
      stopSignal();
      trunk?.close();
      (flood as ReturnType<typeof connect> | null)?.destroy();
      await seg.close();
    }
  });
  it('CLI and daemon: create (with and --no-gateway), ls, a guest via ensureSwitch with its vmnet name, forward add/ls/rm, rm refusing then forced, stale cleanup', async () => {
    const rt = privateTmp();
    const env = { ...process.env, VMNET_RUNTIME_DIR: rt };
    const cli = cliRunner(env);
    try {
      // The CLI creates two switches while the library (the launcher's path) starts another.
      const [created, wired, lan] = await Promise.all([
        cli('switch', 'create', 'lab', '--subnet', '10.8.0.0/24', '--dns-upstream', '127.0.0.1:9'),
        cli('switch', 'create', 'wire', '--no-gateway'),
        ensureSwitch('lan', { runtimeDir: rt, gateway: false }),
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain(`addr.path=${rt}/switches/lab/ports/access-1.sock`);
      expect(wired.code, wired.stderr).toBe(0);
      expect(wired.stdout).toMatch(/^vmnet switch: wire running \(pid \d+\), no gateway \(private LAN\)$/m);
      const wireSock = `${rt}/switches/wire/ports/access-1.sock`;
      expect(wired.stdout).toContain(`socket (access VLAN 1): ${wireSock}`);
      expect(lan).toMatchObject({ started: true, gateway: false });
      // An existing switch is found, not started again.
      const lab = await ensureSwitch('lab', { runtimeDir: rt });
      expect(lab).toMatchObject({ name: 'lab', started: false, gateway: true, subnet: '10.8.0.0/24' });
      const sock = await switchSocketFor('lab', { vlan: 1 }, { runtimeDir: rt });
      expect(sock).toBe(lab.socket);
      expect(await switchSocketFor('lab', { trunk: [10, 20] }, { runtimeDir: rt })).toBe(`${rt}/switches/lab/ports/trunk-10_20.sock`);
      await registerSwitchName('lab', macFromName('vm-one'), 'frontend', { runtimeDir: rt });
      // One-line usage errors, exit 2 (checked while the guest boots).
      const usage = Promise.all([cli('switch', 'create', 'lab'), cli('switch', 'create', '../x')]);

      // While the guest is attached: `switch rm` refuses; a forward added
      // through the CLI to the guest's vmnet name carries a host connection to
      // its httpd (the CGI prints the client address it saw and releases the guest).
      const fport = await freePort();
      const attached = async () => {
        const refused = await cli('switch', 'rm', 'lab');
        const add = await cli('switch', 'forward', 'add', 'lab', 'frontend', `${fport}:80`);
        const body = await fetch(`http://127.0.0.1:${fport}/cgi-bin/who`, { signal: AbortSignal.timeout(30_000) }).then(
          (res) => res.text(),
          (e: unknown) => `fetch failed: ${String(e)} ${String((e as { cause?: unknown }).cause)}`,
        );
        const ls = await cli('switch', 'forward', 'ls', 'lab');
        const rm = await cli('switch', 'forward', 'rm', 'lab', `${fport}:80`);
        const rmAgain = await cli('switch', 'forward', 'rm', 'lab', `${fport}:80`);
        return { refused, add, body, ls, rm, rmAgain, openAfterRm: await canConnect(fport) };
      };
      let host: ReturnType<typeof attached> | null = null;
      const r = await bootGuest({
        name: 'vm-one',
        // eth0 on lab; eth1 on wire, where nobody answers DHCP.
        nics: [...nic(sock), ...nic(wireSock)],
        script: `${DHCP_NAMED}ping -c 2 -W 2 frontend | grep -c 'bytes from' | sed 's/^/PINGVMNAME /'
wget -q -O - http://10.8.0.2:${http.port}/ | sed 's/^/HTTP /'
udhcpc -i eth1 -s /etc/udhcpc.script -n -q -t 2 -T 1 >/dev/null 2>&1 && echo "WIRE-LEASE" || echo "WIRE-NO-DHCP"
${WHO_HTTPD}echo ATTACHED
${retry('[ -f /tmp/seen ]', 240)}
echo "SEEN $i"
`,
        timeoutMs: 240_000,
        onLine: (line) => {
          if (line.trim() === 'ATTACHED') host ??= attached();
        },
      });
      expect(r.exitCode, r.console).toBe(0);
      const [again, bad] = await usage;
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/^vmnet: switch lab already exists \(pid \d+\); remove it with vmnet switch rm lab\n$/);
      expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/^vmnet: bad switch name "..\/x".*\n$/)]);
      expect(parseLease(r.output)?.ip).toBe('10.8.0.15');
      expect(count(r.output, 'PINGVMNAME'), r.console).toBeGreaterThanOrEqual(1);
      expect(r.output).toContain('HTTP hello from the host');
      expect(r.output).toContain('WIRE-NO-DHCP');
      expect(host, r.console).not.toBeNull();
      const h = await host!;
      expect(h.refused.code).toBe(2);
      expect(h.refused.stderr).toMatch(/^vmnet: switch lab has 1 port\(s\) attached \(access 1 52:54:00:[0-9a-f:]+\); stop those VMs or use --force\n$/);
      expect([h.add.code, h.add.stdout, h.add.stderr]).toEqual([0, `127.0.0.1:${fport}:80/tcp -> frontend\n`, '']);
      // A loopback client shows up as the switch gateway's address.
      expect(h.body).toBe('from 10.8.0.2\n');
      expect(succeeded(r.output, 'SEEN', 240), r.console).toBe(true);
      expect(h.ls.stdout).toBe(`127.0.0.1:${fport}:80/tcp -> frontend\n`);
      expect(h.rm.code, h.rm.stderr).toBe(0);
      expect(h.rmAgain.code).toBe(2);
      expect(h.rmAgain.stderr).toMatch(/^vmnet: switch lab has no forward 127\.0\.0\.1:\d+:80\/tcp\n$/);
      expect(h.openAfterRm).toBe(false);

      const ls = await cli('switch', 'ls', '--json');
      const listed = JSON.parse(ls.stdout) as Awaited<ReturnType<typeof listSwitches>>;
      expect(listed.map((s) => s.name)).toEqual(['lab', 'lan', 'wire']);
      const wireSnap = listed[2]!.state === 'running' ? listed[2]!.snapshot : null;
      expect(wireSnap).not.toBeNull();
      expect(wireSnap!.gateway).toBeNull();
      expect(wireSnap!.switch.ports.filter((p) => p.kind === 'internal')).toEqual([]);
      const labSnap = listed[0]!.state === 'running' ? listed[0]!.snapshot : null;
      expect(labSnap?.gateway?.leases).toEqual([{ mac: macFromName('vm-one'), ip: '10.8.0.15', hostname: 'vm-one' }]);
      expect(labSnap?.names).toEqual(expect.arrayContaining([{ name: 'frontend', mac: macFromName('vm-one'), ip: '10.8.0.15', source: 'vmnet' }]));
      const human = await cli('switch', 'ls');
      expect(human.stdout).toMatch(/^lab {2}pid \d+ {2}gateway 10\.8\.0\.2 on 10\.8\.0\.0\/24/m);
      expect(human.stdout).toMatch(/^lan {2}pid \d+ {2}no gateway/m);
      expect(human.stdout).toMatch(/^wire {2}pid \d+ {2}no gateway/m);
      expect((await cli('switch', 'rm', 'wire')).code).toBe(0);

      // A VM attached: rm refuses, --force stops it.
      const hold = await connectStream({ path: sock });
      expect((await cli('switch', 'rm', 'lab')).code).toBe(2);
      const forced = await cli('switch', 'rm', 'lab', '--force');
      expect(forced.code, forced.stderr).toBe(0);
      hold.close();
      expect(existsSync(`${rt}/switches/lab`)).toBe(false);
      expect(await switchStatus('lab', { runtimeDir: rt })).toBeNull();

      // A switch killed without cleaning up is recognised as stale and removed by whoever looks next.
      process.kill(lan.pid, 'SIGKILL');
      await new Promise((res) => setTimeout(res, 300));
      expect(await listSwitches({ runtimeDir: rt })).toEqual([]);
      expect(existsSync(`${rt}/switches/lan`)).toBe(false);
      // ... and ensureSwitch starts a fresh one.
      const fresh = await ensureSwitch('lan', { runtimeDir: rt });
      expect(fresh.started).toBe(true);
      expect((await cli('switch', 'rm', 'lan')).code).toBe(0);
    } finally {
      for (const n of ['lab', 'lan', 'wire']) await cli('switch', 'rm', n, '--force');
    }
  });
});
