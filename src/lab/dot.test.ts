import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { LabStatus } from './apply.js';
import { labDot, q } from './dot.js';

const ST: LabStatus = {
  name: 'campus',
  file: '/l/campus.yaml',
  up: true,
  switches: [
    { name: 'core', state: 'running', pid: 1, gateway: null, vlans: [10, 20], links: ['edge'], ports: 3, names: [] },
    { name: 'edge', state: 'running', pid: 2, gateway: { subnet: '10.0.9.0/24', address: '10.0.9.2', isolated: true }, vlans: [1, 10], links: [], ports: 2, names: [] },
  ],
  vms: [
    { name: 'r', state: 'running', pid: 3, accel: 'tcg', memoryMiB: 256, cpus: 1, forwards: [], nics: [{ switch: 'core', role: 'access 10', mac: '52:54:00:00:00:01', ip: null, ip6: [], impair: 'delay=50ms loss=5%', link: null }, { switch: 'core', role: 'trunk 20,30 native 1', mac: null, ip: null, ip6: [], impair: null, link: null }] },
    { name: 'h"x', state: 'stopped', pid: null, accel: null, memoryMiB: 256, cpus: 1, forwards: [], nics: [{ switch: 'edge', role: 'access 1', mac: '52:54:00:00:00:02', ip: '10.0.9.15', ip6: [], impair: 'down', link: null }] },
  ],
  links: [{ a: 'core', b: 'edge', role: 'trunk 10 native 1', up: false, impair: 'rate=10mbit', link: null }],
};

describe('labDot', () => {
  it('switch clusters with VLAN nodes, VMs with addresses, NICs and links as edges', () => {
    const dot = labDot(ST);
    expect(dot).toContain('subgraph "cluster_core" {');
    expect(dot).toContain('"core/vlan10" [shape=ellipse, label="VLAN 10"];');
    expect(dot).toContain('"sw/edge" [shape=box, label="edge\\ngateway 10.0.9.2\\n10.0.9.0/24 (isolated)"];');
    expect(dot).toContain('"vm/r" -- "core/vlan10" [label="eth0 52:54:00:00:00:01\\nfaults: delay=50ms loss=5%", color=red];');
    expect(dot).toContain('"vm/r" -- "sw/core" [label="eth1\\ntrunk 20,30 native 1"];');
    expect(dot).toContain('"vm/h\\"x" [shape=component, label="h\\"x\\nstopped", color=grey, fontcolor=grey];');
    expect(dot).toContain('"vm/h\\"x" -- "edge/vlan1" [label="eth0 52:54:00:00:00:02\\nfaults: down", style=dotted, color=grey, fontcolor=grey];');
    expect(dot).toContain('"sw/core" -- "sw/edge" [style=dashed, label="link: trunk 10 native 1 (down)\\nfaults core → edge: rate=10mbit", color=red];');
  });

  it('quotes: no string can end early; control characters dropped', () => {
    expect(q('a"b\\c\nd\x1be')).toBe('"a\\"b\\\\c\\nde"');
  });

  it('Graphviz reads it (dot -Tsvg)', () => {
    let svg: string;
    try {
      svg = execFileSync('dot', ['-Tsvg'], { input: labDot(ST), encoding: 'utf8' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('graphviz is not installed: apt-get install graphviz');
      throw e;
    }
    expect(svg).toMatch(/<svg/);
    expect(svg).toContain('VLAN 10');
    expect(svg).toContain('gateway 10.0.9.2');
  });
});
