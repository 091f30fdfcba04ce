/**
 * A VM's cloud-init seed on a switch segment, where several guests share one
 * gateway: the seed is served to the guest whose MAC it names, and another
 * guest on the same segment that has the seed's URL (token and all) gets
 * 403. The guests are Linux's own TCP/IP stacks in two network namespaces
 * (their taps relayed to the switch by the C tap relay) fetching with HTTP,
 * each on its own switch port: the gateway's Session per port, as for VMs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSegment, type RunningSegment } from '../../src/switch/segment.js';
import { addTap, createNetns, ipCmd, runInNetns, type Netns } from '../helpers/netns.js';
import { startTapRelay, type TapRelay } from '../helpers/tap-relay.js';
import { privateTmp } from '../helpers/tmp.js';

const enc = (s: string) => new TextEncoder().encode(s);
let seg: RunningSegment;
const guests: Array<{ ns: Netns; relay: TapRelay }> = [];

async function guest(mac: string, ip: string): Promise<Netns> {
  const ns = createNetns('vmnet-seedseg');
  await runInNetns(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await addTap(ns, 'vmnet0');
  await ipCmd('-n', ns.name, 'link', 'set', 'vmnet0', 'address', mac);
  const relay = await startTapRelay({ netns: ns.name, tap: 'vmnet0', socket: seg.socket });
  guests.push({ ns, relay });
  await ipCmd('-n', ns.name, 'addr', 'add', `${ip}/24`, 'dev', 'vmnet0');
  return ns;
}

/** An HTTP GET from inside the namespace (Node's own client: nothing to install): "BODY STATUS". */
const GET = `require('node:http').get(process.argv[1], { timeout: 20000 }, (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(b + ' ' + r.statusCode)); }).on('error', (e) => { console.error(e.message); process.exit(1); });`;
const fetchIn = (ns: Netns, url: string) => runInNetns(ns, process.execPath, ['-e', GET, url], 30_000);

beforeAll(async () => {
  seg = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
});

afterAll(async () => {
  for (const g of guests) {
    await g.relay.stop();
    g.ns.delete();
  }
  await seg?.close();
});

describe("a VM's seed on a shared segment", () => {
  it('is served to the VM whose MAC it names; another guest with the URL gets 403', { timeout: 120_000 }, async () => {
    const vm = await guest('52:54:00:5e:ed:01', '10.0.2.21');
    const other = await guest('52:54:00:5e:ed:02', '10.0.2.22');
    const url = seg.gateway!.seeds.add('52:54:00:5e:ed:01', { 'meta-data': enc('instance-id: seg-1\n'), 'user-data': enc('#cloud-config\n{}\n'), 'vendor-data': new Uint8Array(0) });
    expect(url).toMatch(/^http:\/\/10\.0\.2\.3\/vmnet\/[0-9a-f]{32}\/$/);
    expect(await fetchIn(vm, `${url}meta-data`)).toBe('instance-id: seg-1\n 200');
    expect(await fetchIn(other, `${url}user-data`)).toBe(' 403');
    expect(await fetchIn(other, `${url}meta-data`)).toBe(' 403');
    expect(await fetchIn(vm, `${url}user-data`)).toBe('#cloud-config\n{}\n 200');
    const seen = seg.gateway!.bootSeen('52:54:00:5e:ed:01').seed!;
    expect(seen).toMatchObject({ count: 2, refused: 2, documents: ['meta-data', 'user-data'] });
    expect(seg.gateway!.seeds.counters).toMatchObject({ served: 2, forbidden: 2 });
  });
});
