/**
 * Theory of operation: a census of a V8 heap snapshot (the `.heapsnapshot`
 * JSON that `v8.writeHeapSnapshot()` writes), and the difference between
 * two, for "what does each connection cost, by kind of object".
 *
 * The snapshot is a flat graph: `nodes` is one array of integers, each node
 * `node_fields.length` integers (type, name, id, self_size, edge_count, …),
 * names index `strings`. The census groups nodes by type and name — the
 * constructor for objects ("TcpConn", "Socket"), the function name for
 * closures, "(string)" for every string, the name V8 gives internal nodes
 * ("system / Context", "(object properties)", …) — counting nodes and
 * summing their self sizes (shallow bytes: an object's own fields, not what
 * it points to). Native nodes (type "native": C++ objects such as TCPWrap
 * that Node reports to the snapshot) are included with the size Node
 * reports, which may be less than what malloc holds for them.
 */
import { readFileSync } from 'node:fs';

/** One group of the census: nodes of one type and name. */
export interface CensusRow {
  key: string;
  count: number;
  bytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Groups a snapshot file's nodes by type and name (see the file comment). */
export function census(file: string): Map<string, CensusRow> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, CensusRow>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    let name: string;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)';
    else if (type === 'number') name = '(heap number)';
    else if (type === 'code') name = '(code)';
    else name = s.strings[s.nodes[i + iName]!]!.slice(0, 60);
    const key = `${type}: ${name}`;
    let r = out.get(key);
    if (r === undefined) out.set(key, (r = { key, count: 0, bytes: 0 }));
    r.count++;
    r.bytes += s.nodes[i + iSize]!;
  }
  return out;
}

/** after − before per group, largest growth in bytes first. */
export function censusDiff(before: Map<string, CensusRow>, after: Map<string, CensusRow>): CensusRow[] {
  const rows: CensusRow[] = [];
  for (const [key, a] of after) {
    const b = before.get(key);
    rows.push({ key, count: a.count - (b?.count ?? 0), bytes: a.bytes - (b?.bytes ?? 0) });
  }
  for (const [key, b] of before) if (!after.has(key)) rows.push({ key, count: -b.count, bytes: -b.bytes });
  return rows.sort((x, y) => y.bytes - x.bytes);
}

/**
 * A markdown table of a census difference per unit (connection): the `top`
 * largest groups, then the rest summed.
 */
export function censusTable(rows: CensusRow[], per: number, top = 30): string {
  const lines = ['| object (type: constructor or name) | per connection: count | bytes |', '|---|---:|---:|'];
  let restCount = 0;
  let restBytes = 0;
  let total = 0;
  rows.forEach((r, i) => {
    total += r.bytes;
    if (i < top) lines.push(`| ${r.key.replace(/\|/g, '\\|')} | ${(r.count / per).toFixed(2)} | ${(r.bytes / per).toFixed(0)} |`);
    else {
      restCount += r.count;
      restBytes += r.bytes;
    }
  });
  lines.push(`| (all others) | ${(restCount / per).toFixed(2)} | ${(restBytes / per).toFixed(0)} |`);
  lines.push(`| **total** | | **${(total / per).toFixed(0)}** |`);
  return lines.join('\n') + '\n';
}

interface Graph extends Snapshot {
  snapshot: Snapshot['snapshot'] & { meta: Snapshot['snapshot']['meta'] & { edge_fields: string[] } };
  edges: number[];
}

/**
 * Who holds the heap numbers: for every `number` node (V8's HeapNumber box,
 * 16 bytes, made for each object field that holds a double — a non-integer,
 * an integer outside the signed 32-bit range, `Infinity`, `NaN`, `-0` — and
 * then for that field in every object of the same shape, whatever it
 * holds), the retaining object's constructor, counted. A snapshot does not
 * name the field (the edge is "hidden"); `%DebugPrint(obj)` under
 * `node --allow-natives-syntax` does (`<HeapNumber …>` beside the field).
 */
export function numberHolders(file: string): Map<string, CensusRow> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Graph;
  const nf = s.snapshot.meta.node_fields;
  const ef = s.snapshot.meta.edge_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = nf.length;
  const ew = ef.length;
  const iType = nf.indexOf('type');
  const iName = nf.indexOf('name');
  const iSize = nf.indexOf('self_size');
  const iCount = nf.indexOf('edge_count');
  const eTo = ef.indexOf('to_node');
  const numberType = types.indexOf('number');
  const out = new Map<string, CensusRow>();
  let e = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const key = `boxes held by: ${s.strings[s.nodes[i + iName]!]!.slice(0, 40)}`;
    const end = e + s.nodes[i + iCount]! * ew;
    for (; e < end; e += ew) {
      const to = s.edges[e + eTo]!;
      if (s.nodes[to + iType] !== numberType) continue;
      let r = out.get(key);
      if (r === undefined) out.set(key, (r = { key, count: 0, bytes: 0 }));
      r.count++;
      r.bytes += s.nodes[to + iSize]!;
    }
  }
  return out;
}
