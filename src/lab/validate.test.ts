import { describe, expect, it } from 'vitest';
import { formatIssue, LabInvalid, parseLab } from './validate.js';

/** The issues of a file that must not validate, one line each. */
function issues(text: string): string[] {
  try {
    parseLab(text, 'lab.yaml');
  } catch (e) {
    if (e instanceof LabInvalid) return e.issues.map(formatIssue);
    throw e;
  }
  throw new Error('validated');
}

const GOOD = `
name: webdb
switches:
  lan:
    subnet: 10.0.5.0/24
    dns:
      backup.lab: 10.0.5.200
vms:
  web:
    guest: test
    memory: 256M
    cpus: 1
    nics: [{ switch: lan }]
    forwards: ["8080:80"]
  db:
    kernel: ./vmlinuz
    initrd: ./initrd.gz
    nics:
      - switch: lan
        mac: 52:54:00:AA:00:01
`;

describe('parseLab', () => {
  it('normalises a good file: defaults, absolute paths, formatted forwards, roles', () => {
    const spec = parseLab(GOOD, '/labs/webdb.yaml');
    expect(spec.name).toBe('webdb');
    expect(spec.file).toBe('/labs/webdb.yaml');
    expect(spec.switches).toEqual([
      { name: 'lan', gateway: true, subnet: '10.0.5.0/24', isolated: false, hostAccess: true, hostLoopback: true, mtu: null, dns: ['backup.lab=10.0.5.200'], vlans: [] },
    ]);
    expect(spec.vms[0]).toEqual({ name: 'web', boot: { kind: 'test-guest', append: null }, memoryMiB: 256, cpus: 1, accel: 'auto', userData: [], nics: [{ switch: 'lan', role: { vlan: 1 }, mac: null, impair: null }], forwards: ['127.0.0.1:8080:80/tcp'] });
    expect(spec.vms[1]!.boot).toEqual({ kind: 'kernel', kernel: '/labs/vmlinuz', initrd: '/labs/initrd.gz', append: null });
    expect(spec.vms[1]!).toMatchObject({ memoryMiB: 1024, cpus: 2, nics: [{ mac: '52:54:00:aa:00:01' }] });
  });

  it('user-data: one file or several, relative to the lab file, with an image', () => {
    const one = parseLab('vms:\n  a: { image: disk.qcow2, user-data: init.yaml }\n', '/labs/x.yaml');
    expect(one.vms[0]!.userData).toEqual(['/labs/init.yaml']);
    const two = parseLab('vms:\n  a: { image: /i/disk.qcow2, user-data: [a.yaml, /b.sh] }\n', '/labs/x.yaml');
    expect(two.vms[0]!.userData).toEqual(['/labs/a.yaml', '/b.sh']);
  });

  it('the lab name defaults to the file name', () => {
    expect(parseLab('switches: {a: {}}', 'dir/my-lab.yml').name).toBe('my-lab');
    expect(parseLab('', 'x.yaml')).toMatchObject({ name: 'x', switches: [], vms: [], links: [] });
  });

  it('schema errors: every one, with line, column and field', () => {
    expect(
      issues(`switches:
  lan:
    subnet: 10.0.5.0
    colour: blue
vms:
  web:
    guest: test
    cpus: two
    nics:
      - vlan: 5000
`),
    ).toEqual([
      'lab.yaml:3:13: switches.lan.subnet: must be an IPv4 network such as 10.0.5.0/24',
      'lab.yaml:4:5: switches.lan.colour: unknown field "colour" (known: subnet, gateway, isolated, host, host-loopback, mtu, dns, vlans)',
      'lab.yaml:8:11: vms.web.cpus: must be integer',
      'lab.yaml:10:9: vms.web.nics[0]: missing field "switch"',
      'lab.yaml:10:15: vms.web.nics[0].vlan: must be a VLAN id 1-4094',
    ]);
  });

  it('YAML syntax errors and duplicate keys name their line', () => {
    expect(issues('switches:\n  a: {}\n  a: {}\n')).toEqual([expect.stringMatching(/^lab\.yaml:3:3: \(yaml\): Map keys must be unique/)]);
    expect(issues('vms: [\n')[0]).toMatch(/^lab\.yaml:\d+:\d+: \(yaml\): /);
  });

  it('meaning: unknown switches, VLANs not declared, bad sizes, colliding forwards and MACs, boot choices', () => {
    expect(
      issues(`switches:
  lan: { subnet: 10.0.5.0/24, vlans: [10] }
  wire: {}
vms:
  a:
    guest: test
    image: x.qcow2
    memory: 1X
    nics:
      - { switch: lna }
      - { switch: lan, vlan: 20, mac: "52:54:00:00:00:01" }
    forwards: ["8080:80"]
  b:
    kernel: k
    user-data: "#cloud-config"
    nics:
      - { switch: wire, mac: "52:54:00:00:00:01" }
    forwards: ["8080:22", "nonsense"]
  c: {}
`),
    ).toEqual([
      'lab.yaml:7:5: vms.a.image: give one of guest, image and kernel, not guest and image',
      'lab.yaml:8:13: vms.a.memory: give a size such as 512M or 2G (at least 16M)',
      'lab.yaml:10:19: vms.a.nics[0].switch: no switch "lna" in this file (switches: lan, wire)',
      'lab.yaml:11:9: vms.a.nics[1]: switch lan declares vlans [10] and not 20: add it there',
      'lab.yaml:15:5: vms.b.user-data: cloud-init runs on an image: user-data goes with image (vmnet seeds it on a disk the guest finds)',
      'lab.yaml:17:30: vms.b.nics[0].mac: 52:54:00:00:00:01 is already the MAC of vms.a.nics[1]',
      'lab.yaml:18:5: vms.b.forwards: forwards go through the gateway of the VM\'s first NIC\'s switch, and wire has none',
      'lab.yaml:18:16: vms.b.forwards[0]: host port 8080/tcp is already forwarded by vms.a.forwards[0]',
      'lab.yaml:18:27: vms.b.forwards[1]: expected [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp], e.g. 2222:22',
      'lab.yaml:19:6: vms.c: nothing to boot: give guest: test, an image or a kernel',
    ]);
  });

  it('links: default VLANs from both sides, loops and unknown switches refused, two gateways on one LAN refused', () => {
    const file = `switches:
  core: { vlans: [10, 20] }
  edge: { vlans: [30] }
vms:
  r: { guest: test, nics: [{ switch: core, vlan: 10 }, { switch: core, vlan: 20 }] }
  h: { guest: test, nics: [{ switch: edge, trunk: [30], native: 20 }] }
links:
  - between: [core, edge]
`;
    expect(issues(file)).toEqual(['lab.yaml:6:28: vms.h.nics[0]: switch edge declares vlans [30] and not 20: add it there']);
    const spec = parseLab(file.replace('edge: { vlans: [30] }', 'edge: { vlans: [20, 30] }'), 'lab.yaml');
    expect(spec.links).toEqual([{ a: 'core', b: 'edge', role: { trunk: [10, 20, 30], native: 1 }, impair: null }]);
    expect(spec.switches.map((s) => [s.name, s.vlans])).toEqual([['core', [10, 20]], ['edge', [20, 30]]]);
    // Without declarations a link would not know which VLANs to carry.
    expect(issues(file.replace('core: { vlans: [10, 20] }', 'core: {}').replace('edge: { vlans: [30] }', 'edge: {}'))).toEqual([
      'lab.yaml:8:15: links[0].between[0]: switch core has NICs on VLAN 10, 20: declare them (switches.core.vlans) or list the link\'s vlans, since a link carries the VLANs its switches declare',
      'lab.yaml:8:21: links[0].between[1]: switch edge has NICs on VLAN 20, 30: declare them (switches.edge.vlans) or list the link\'s vlans, since a link carries the VLANs its switches declare',
    ]);
    expect(
      issues(`switches:
  a: { subnet: 10.0.1.0/24 }
  b: { subnet: 10.0.2.0/24 }
  c: {}
links:
  - between: [a, b]
  - between: [b, c]
  - between: [c, a]
  - between: [a, d]
  - between: [b, a]
`),
    ).toEqual([
      'lab.yaml:6:14: links[0].between: a and b both have a gateway on VLAN 1, which this link joins: two DHCP servers on one LAN (give one gateway: false, or a native VLAN other than 1)',
      'lab.yaml:8:14: links[2].between: this link closes a loop through c and a (vmnet\'s switches run no spanning tree; cable them as a tree)',
      'lab.yaml:9:18: links[3].between[1]: no switch "d" in this file',
      'lab.yaml:10:14: links[4].between: links[0] already joins b and a (a second link would be a loop)',
    ]);
    // Schema errors come first (the checks of meaning need a file of the right shape).
    expect(issues('switches: { a: {} }\nlinks:\n  - between: [a]\n')).toEqual(['lab.yaml:3:14: links[0].between: must name exactly two switches']);
  });
});

describe('link faults (impair)', () => {
  const LAB = (nic: string, link = '') => `switches:
  a: { subnet: 10.0.1.0/24 }
  b: {}
vms:
  n:
    guest: test
    nics:
      - switch: a
${nic}
links:
  - between: [a, b]
${link}`;

  it('a string or a map, in the words of vmnet link set, read into one order', () => {
    const s = parseLab(LAB('        impair: seed=7 delay=50ms loss=5%', '    impair: { rate: 10mbit, dir: both, down: false }'), 'lab.yaml');
    expect(s.vms[0]!.nics[0]!.impair).toBe('delay=50ms loss=5% seed=7');
    expect(s.links[0]!.impair).toBe('rate=10mbit dir=both');
    const m = parseLab(LAB('        impair:\n          loss: 5%\n          delay: 50ms\n          seed: 7'), 'lab.yaml');
    expect(m.vms[0]!.nics[0]!.impair).toBe('delay=50ms loss=5% seed=7'); // the same faults written as a map: the same spec
    expect(parseLab(LAB('        impair: { down: true }'), 'lab.yaml').vms[0]!.nics[0]!.impair).toBe('down');
    expect(parseLab(LAB('        impair: down'), 'lab.yaml').vms[0]!.nics[0]!.impair).toBe('down');
    expect(parseLab(LAB(''), 'lab.yaml').vms[0]!.nics[0]!.impair).toBeNull();
  });

  it('a bad value gets the parser\'s message at its own line; settings that do not go together, at impair', () => {
    expect(
      issues(LAB('        impair:\n          loss: 5%\n          delay: soon\n          rate: 5', '    impair: loss=150% jitter=1ms')),
    ).toEqual([
      'lab.yaml:11:18: vms.n.nics[0].impair.delay: bad link setting "delay=soon": give a time such as 50ms, 1.5s or 500us',
      'lab.yaml:12:17: vms.n.nics[0].impair.rate: bad link setting "rate=5": give a rate such as 10mbit, 512kbit or 1gbit (8kbit..1000gbit; 0 for none)',
      'lab.yaml:15:13: links[0].impair: bad link setting "loss=150%": give a percentage 0%-100%, e.g. 5% or 0.1%',
    ]);
    expect(issues(LAB('        impair: reorder=5%'))).toEqual(['lab.yaml:9:17: vms.n.nics[0].impair: reorder needs a delay (a reordered frame skips the delay others wait), as with netem: add delay=10ms']);
    expect(issues(LAB('        impair: { lose: 5% }'))).toEqual([expect.stringMatching(/^lab\.yaml:9:25: vms\.n\.nics\[0\]\.impair\.lose: bad link setting "lose=5%": known settings: /)]);
    expect(issues(LAB('        impair: clear'))).toEqual(['lab.yaml:9:17: vms.n.nics[0].impair: a file says what faults a port has: leave impair out for a perfect link, instead of clear']);
    expect(issues(LAB('        impair: ""'))).toEqual([expect.stringMatching(/^lab\.yaml:9:17: vms\.n\.nics\[0\]\.impair: no link setting given/)]);
    expect(issues(LAB('        impair: 5'))).toEqual(['lab.yaml:9:17: vms.n.nics[0].impair: must be string or object']);
    expect(issues(LAB('        impair: { loss: [5%] }'))).toEqual([expect.stringMatching(/^lab\.yaml:9:\d+: vms\.n\.nics\[0\]\.impair\.loss: must be string or number or boolean/)]);
  });
});

describe('parseLab on hostile files', () => {
  it('an alias bomb stops at yaml\'s alias limit with one line; __proto__ is a name like any other (refused)', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`)].join('\n');
    const got = issues(bomb);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^lab\.yaml:1:1: \(file\): cannot expand the document: /);
    expect(issues('switches:\n  __proto__: {}\n')).toEqual([expect.stringMatching(/^lab\.yaml:2:3: switches\.__proto__: bad switch name "__proto__"/)]);
    expect(Object.prototype).not.toHaveProperty('subnet');
  });

  it('control characters in keys are reported as data (the CLI escapes them)', () => {
    expect(issues('switches:\n  lan:\n    "\\u001b[31mred": 1\n')[0]).toContain('unknown field "\u001b[31mred"');
  });
});

describe('the examples in examples/labs', () => {
  it('every one validates, with the shape the README describes', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const dir = new URL('../../examples/labs/', import.meta.url).pathname;
    const names = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    expect(names).toEqual(['cluster.yaml', 'partition.yaml', 'vlans.yaml', 'web-db.yaml']);
    const spec = Object.fromEntries(names.map((f) => [f, parseLab(readFileSync(dir + f, 'utf8'), dir + f)]));
    expect(spec['web-db.yaml']!.vms.map((v) => [v.name, v.forwards])).toEqual([['web', ['127.0.0.1:8080:80/tcp']], ['db', []]]);
    expect(spec['vlans.yaml']!.links).toEqual([{ a: 'core', b: 'edge', role: { trunk: [10, 20], native: 1 }, impair: null }]);
    expect(spec['vlans.yaml']!.switches.find((s) => s.name === 'quarantine')).toMatchObject({ gateway: true, isolated: true });
    expect(spec['cluster.yaml']!.vms.map((v) => v.name)).toEqual(['node1', 'node2', 'node3']);
    expect(spec['partition.yaml']!.vms.map((v) => [v.name, v.nics[0]!.impair])).toEqual([['node1', null], ['node2', null], ['node3', 'down']]);
  });
});
