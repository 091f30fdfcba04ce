import { describe, expect, it } from 'vitest';
import { nicRole, parseNet } from './plan.js';
import { parseVlanList } from '../switch/vlan.js';

describe('parseNet: switch NICs as access ports or trunks', () => {
  it('reads vlan=, trunk= and native=', () => {
    expect(parseNet('switch:lab,vlan=10')).toEqual({ kind: 'switch', switch: 'lab', vlan: 10 });
    const t = parseNet('switch:lab,trunk=10+20-22,native=1,mac=52:54:00:00:00:0A');
    expect(t).toEqual({ kind: 'switch', switch: 'lab', trunk: [10, 20, 21, 22], native: 1, mac: '52:54:00:00:00:0a' });
    expect(nicRole(t as never)).toEqual({ trunk: [10, 20, 21, 22], native: 1 });
    expect(nicRole({ kind: 'switch', switch: 'x' })).toEqual({ vlan: 1 });
  });
  it('refuses mixed or bad roles in one line', () => {
    expect(() => parseNet('switch:lab,vlan=10,trunk=20')).toThrow(/not both/);
    expect(() => parseNet('switch:lab,native=3')).toThrow(/native= goes with trunk=/);
    expect(() => parseNet('switch:lab,trunk=0+5')).toThrow(/trunk takes VLAN ids/);
    expect(() => parseNet('user,trunk=5')).toThrow(/unknown option/);
  });
});

describe('parseVlanList', () => {
  it('expands ranges, takes , or +', () => {
    expect(parseVlanList('10,20-22', 'x')).toEqual([10, 20, 21, 22]);
    expect(parseVlanList('4094+1', 'x')).toEqual([4094, 1]);
  });
  it('refuses out-of-range ids, backwards ranges and junk', () => {
    for (const bad of ['0', '4095', '5-3', '1e3', 'ten', '10-']) expect(() => parseVlanList(bad, '--trunk')).toThrow(/--trunk/);
  });
});
