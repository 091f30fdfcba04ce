/**
 * Example: a three-node cluster for CI, from a topology file
 * (examples/labs/cluster.yaml), as a vitest test you can copy. It brings the
 * lab up, has every node serve a page and fetch the others' by name, reads
 * the lab's status (what `vmnet status cluster.yaml --json` prints), and
 * takes it down, checking that nothing is left: no process, no socket, no
 * state directory.
 *
 * In your project, import from 'vmnet' and point `loadLab` at your file;
 * with your own images, replace the console scripts below by whatever your
 * nodes run (and `waitForVmPort` from 'vmnet' to wait for a service).
 * These nodes boot vmnet's bundled test guest, whose console takes a script.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consoleSocket, labDown, labStatus, labUp, loadLab, type LabSpec, type LabStatus } from '../src/index.js';
import { runConsoleScript } from '../src/guest/console.js';

const NODES = ['node1', 'node2', 'node3'];
// A runtime directory of the test's own: the lab's switches, VMs and state live there.
const runtime = mkdtempSync(join(tmpdir(), 'vmnet-cluster-'));
const env = { ...process.env, VMNET_RUNTIME_DIR: runtime };
let lab: LabSpec;
/** `node1 -> node2 10.0.7.16 hello from node2`, as each node reports it. */
const reached: string[] = [];
/** Each node's IPv6 address (SLAAC from the segment gateway's RA), as the node reports it. */
const own6 = new Map<string, string>();

/** Each node: a lease, its SLAAC address reported (and used once, to the gateway, so the lab's status knows it), a page naming itself, then every peer's page fetched by name (busybox wget; its -T crashes, hence timeout), and the IPv4 address its name resolves to (`ping -4`: names answer AAAA too, for the address the gateway saw the node use over IPv6). */
const script = (me: string) => `udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 20 -T 1
for i in $(seq 1 120); do a6=$(ip -6 addr show dev eth0 scope global | awk '/inet6/ && !/tentative/ {print $2}' | cut -d/ -f1 | head -1); [ -n "$a6" ] && break; sleep 0.5; done
ping -6 -c 1 -W 5 fd0d:b4b8:6ba1::2 >/dev/null
echo "OWN6 ${me} $a6"
echo "hello from ${me}" > /var/www/index.html
httpd -p 80 -h /var/www
for peer in ${NODES.filter((n) => n !== me).join(' ')}; do
  for i in $(seq 1 120); do
    page=$(timeout 5 wget -q -O - http://$peer/ 2>/dev/null) && break
    sleep 1
  done
  ip=$(ping -4 -c 1 -W 2 $peer | awk -F'[()]' '/^PING/ {print $2}')
  echo "REACHED ${me} -> $peer $ip $page"
done
sleep 3600
`;

beforeAll(async () => {
  lab = await loadLab(new URL('labs/cluster.yaml', import.meta.url).pathname);
  await labUp(lab, { env });
  for (const node of NODES) {
    const con = connect(await consoleSocket(node, env));
    void runConsoleScript(con, con, script(node), {
      timeoutMs: 600_000,
      onLine: (line) => {
        if (line.startsWith('REACHED ')) reached.push(line.slice('REACHED '.length));
        const m = /^OWN6 (\S+) (\S+)$/.exec(line);
        if (m) own6.set(m[1]!, m[2]!);
      },
    }).catch(() => undefined);
  }
}, 240_000);

afterAll(async () => {
  if (lab) await labDown(lab.name, { env });
});

it('every node reaches every other by name', async () => {
  const deadline = Date.now() + 240_000;
  while (reached.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  expect(reached.sort()).toEqual(
    NODES.flatMap((me) => NODES.filter((n) => n !== me).map((peer) => expect.stringMatching(new RegExp(`^${me} -> ${peer} 10\\.0\\.7\\.\\d+ hello from ${peer}$`)))).sort(),
  );
  expect(reached).toHaveLength(6);
}, 300_000);

it('status shows the switch, the nodes and their addresses', async () => {
  const st: LabStatus = await labStatus(lab, { env });
  expect(st.up).toBe(true);
  expect(st.switches).toEqual([expect.objectContaining({ name: 'net', state: 'running', gateway: { subnet: '10.0.7.0/24', address: '10.0.7.2', isolated: true }, ports: 3 })]);
  expect(st.vms.map((v) => v.state)).toEqual(['running', 'running', 'running']);
  const addresses = st.vms.map((v) => v.nics[0]!.ip);
  for (const a of addresses) expect(a).toMatch(/^10\.0\.7\.\d+$/);
  expect(new Set(addresses).size).toBe(3);
  // The addresses the nodes resolved for each other are the ones the lab reports.
  for (const [i, node] of NODES.entries()) for (const line of reached.filter((l) => l.includes(`-> ${node} `))) expect(line.split(' ')[3]).toBe(addresses[i]);
  // IPv6 too: each node pinged the gateway's fd0d:b4b8:6ba1::2 from its SLAAC address, which the status lists.
  for (const [i, node] of NODES.entries()) {
    expect(own6.get(node)).toMatch(/^fd0d:b4b8:6ba1:0?:/);
    expect(st.vms[i]!.nics[0]!.ip6).toEqual([own6.get(node)]);
  }
});

it('down stops everything and leaves nothing behind', async () => {
  const before = await labStatus(lab, { env });
  const pids = [...before.switches.map((s) => s.pid), ...before.vms.map((v) => v.pid)].filter((p): p is number => p !== null);
  expect(pids).toHaveLength(4);
  await labDown(lab.name, { env });
  for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  // What is left in the runtime directory: the supervisors' shared log, and no socket, no directory of the lab.
  const left = walk(runtime);
  expect(left.filter((p) => statSync(p).isSocket())).toEqual([]);
  expect(left.filter((p) => !statSync(p).isDirectory()).map((p) => p.slice(runtime.length + 1))).toEqual(['supervisor.log']);
  expect((await labStatus(lab, { env })).up).toBe(false);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); // a zombie is gone too
  } catch {
    return false;
  }
}
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}
