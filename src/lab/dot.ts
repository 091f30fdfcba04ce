/**
 * Theory of operation: a lab as a Graphviz graph (`vmnet status --dot`), so
 * a lab can be looked at: `vmnet status lab.yaml --dot | dot -Tsvg > lab.svg`.
 *
 * Each switch is a cluster: a box for the switch (its gateway's network and
 * address, or "no gateway") and an ellipse per VLAN in use on it, joined to
 * the box. A VM is a node of its own (name, state, addresses); each NIC is
 * an edge to the VLAN it is an access port of, or to the switch box for a
 * trunk (labelled with the trunk's VLANs), labelled with its MAC. A link
 * between switches is a bold edge between their boxes, labelled with what it
 * carries, dashed while it is down. Stopped elements are grey. An edge
 * whose port has link faults in the file is labelled with them and red, or
 * dotted when they take it down.
 *
 * The output is an undirected `graph` in the DOT language
 * (https://graphviz.org/doc/info/lang.html); every ID and label is a quoted
 * string with `"` and `\` escaped, so no name, address or DHCP-provided
 * text can end a string early. Pure: status in, text out.
 */
import type { LabStatus } from './apply.js';

/**
 * A DOT quoted string: `"` and `\` escaped, a newline written as Graphviz's
 * `\n` line break, other control characters dropped.
 */
export const q = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n').replace(/[\x00-\x1f\x7f]/g, '')}"`;

/**
 * The lab as DOT.
 * @param st what {@link labStatus} found
 * @returns a `graph` with one cluster per switch
 */
export function labDot(st: LabStatus): string {
  const out: string[] = [];
  const line = (s: string) => out.push(s);
  const grey = (running: boolean) => (running ? '' : ', color=grey, fontcolor=grey');
  /** A label's faults line, and whether they take the port down, for a port's `impair`. */
  const faults = (impair: string | null, head = 'faults'): { text: string; down: boolean; red: string } => {
    const down = impair !== null && /(^| )down( |$)/.test(impair);
    return { text: impair === null ? '' : `\n${head}: ${impair}`, down, red: impair !== null && !down ? ', color=red' : '' };
  };
  const vlanNode = (sw: string, v: number) => q(`${sw}/vlan${v}`);
  line(`graph ${q(`lab ${st.name}`)} {`);
  line(`  label=${q(`lab ${st.name}${st.up ? '' : ' (down)'}`)}; labelloc=t; fontname=sans; node [fontname=sans]; edge [fontname=sans, fontsize=10];`);
  const used = new Map<string, Set<number>>();
  for (const vm of st.vms) for (const n of vm.nics) if (/^access /.test(n.role)) (used.get(n.switch) ?? used.set(n.switch, new Set()).get(n.switch)!).add(Number(n.role.slice(7)));
  for (const sw of st.switches) {
    const running = sw.state === 'running';
    line(`  subgraph ${q(`cluster_${sw.name}`)} {`);
    line(`    label=${q(`switch ${sw.name}`)}; style=rounded${running ? '' : '; color=grey; fontcolor=grey'};`);
    const gw = sw.gateway === null ? 'no gateway' : `gateway ${sw.gateway.address}\n${sw.gateway.subnet}${sw.gateway.isolated ? ' (isolated)' : ''}`;
    line(`    ${q(`sw/${sw.name}`)} [shape=box, label=${q(`${sw.name}\n${gw}`)}${grey(running)}];`);
    for (const v of [...(used.get(sw.name) ?? [])].sort((a, b) => a - b)) {
      line(`    ${vlanNode(sw.name, v)} [shape=ellipse, label=${q(v === 1 ? 'VLAN 1 (untagged)' : `VLAN ${v}`)}${grey(running)}];`);
      line(`    ${q(`sw/${sw.name}`)} -- ${vlanNode(sw.name, v)};`);
    }
    line('  }');
  }
  for (const vm of st.vms) {
    const running = vm.state === 'running';
    const addrs = vm.nics.map((n) => n.ip).filter((ip): ip is string => ip !== null);
    const label = [vm.name, running ? (addrs.length ? addrs.join(', ') : 'no address known') : vm.state].join('\n');
    line(`  ${q(`vm/${vm.name}`)} [shape=component, label=${q(label)}${grey(running)}];`);
    vm.nics.forEach((n, i) => {
      const to = /^access /.test(n.role) ? vlanNode(n.switch, Number(n.role.slice(7))) : q(`sw/${n.switch}`);
      const f = faults(n.impair);
      const text = `eth${i}${n.mac !== null ? ` ${n.mac}` : ''}${/^access /.test(n.role) ? '' : `\n${n.role}`}${f.text}`;
      line(`  ${q(`vm/${vm.name}`)} -- ${to} [label=${q(text)}${f.down ? ', style=dotted' : f.red}${grey(running)}];`);
    });
  }
  for (const l of st.links) {
    const f = faults(l.impair, `faults ${l.a} → ${l.b}`);
    line(`  ${q(`sw/${l.a}`)} -- ${q(`sw/${l.b}`)} [style=${l.up && !f.down ? 'bold' : 'dashed'}, label=${q(`link: ${l.role}${l.up ? '' : ' (down)'}${f.text}`)}${f.red}];`);
  }
  line('}');
  return out.join('\n') + '\n';
}
