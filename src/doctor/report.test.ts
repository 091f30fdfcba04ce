import { describe, expect, it } from 'vitest';
import { formatReport, makeCheck, type DoctorReport } from './report.js';
import { parseQemuVersion } from './host-checks.js';

const report = (checks: DoctorReport['checks']): DoctorReport => ({ ok: checks.every((c) => c.verdict !== 'fail'), vmnet: '0.2.0', node: '20.1.0', platform: 'linux', arch: 'x64', uid: 1000, checks });

describe('doctor report', () => {
  it('gives each check a line with its verdict, then its detail and what to do, aligned', () => {
    const lines = formatReport(
      report([
        makeCheck({ id: 'qemu', title: 'QEMU', verdict: 'ok', summary: 'qemu 7.2.0' }),
        makeCheck({ id: 'kvm', title: 'KVM', verdict: 'warn', summary: 'not usable: x', detail: ['TCG will be used'], fix: 'nothing' }),
      ]),
    );
    expect(lines).toEqual([
      'vmnet doctor: vmnet 0.2.0, Node 20.1.0, linux x64, uid 1000',
      '',
      '  ok    QEMU          qemu 7.2.0',
      '  warn  KVM           not usable: x',
      '                      TCG will be used',
      '                      to do: nothing',
      '',
      'vmnet can run VMs here; 1 warning above',
    ]);
  });

  it('ends with what failed when something did', () => {
    const lines = formatReport(report([makeCheck({ id: 'qemu', title: 'QEMU', verdict: 'fail', summary: 'no QEMU', fix: 'apt-get install qemu-system-x86' })]));
    expect(lines.at(-1)).toBe('vmnet cannot run VMs here: 1 problem above, each with what to do');
  });

  it("escapes what other programs wrote before it reaches the terminal", () => {
    const lines = formatReport(report([makeCheck({ id: 'kvm', title: 'KVM', verdict: 'warn', summary: 'QEMU said \x1b[2J', detail: ['\x07'], fix: 'rm \x1b]0;x' })]));
    expect(lines.join('\n')).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
    expect(lines).toContain('  warn  KVM           QEMU said \\x1b[2J');
  });

  it('reads QEMU versions as --version prints them', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright')).toEqual([7, 2, 22]);
    expect(parseQemuVersion('QEMU emulator version 10.0.0')).toEqual([10, 0, 0]);
    expect(parseQemuVersion('QEMU emulator version 6.2')).toEqual([6, 2, 0]);
    expect(parseQemuVersion('nonsense')).toBeNull();
  });
});
