/**
 * `vmnet doctor [--json]`: what works on this host and what to run about
 * what does not. Exit 0 when vmnet can run VMs here (warnings included),
 * 1 when a check failed.
 */
import type { CommandModule } from 'yargs';
import type { CliIo } from '../io.js';
import { toJson } from '../../config/printable.js';

interface DoctorArgs {
  json: boolean;
  qemu?: string;
}

export function doctorCommand(io: CliIo, setExit: (code: number) => void): CommandModule<object, DoctorArgs> {
  return {
    command: 'doctor',
    describe: 'check this host: QEMU, KVM (a real probe boot), directories, the test guest, sysctls, IPv6, ssh',
    builder: (y) =>
      y
        .usage('$0 doctor [--json]\n\nEvery check with a verdict (ok, warn, fail, info) and what to run. A failed KVM probe is remembered for this boot, so vmnet run goes straight to TCG.')
        .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
        .option('qemu', { type: 'string', describe: 'QEMU binary (default: qemu-system-<host arch> on PATH)' }) as never,
    handler: async (a) => {
      const { runDoctor } = await import('../../doctor/doctor.js');
      const { formatReport } = await import('../../doctor/report.js');
      const report = await runDoctor({ env: io.env, ...(a.qemu !== undefined ? { qemu: a.qemu } : {}) });
      io.stdout.write(a.json ? toJson(report, 2) + '\n' : formatReport(report).join('\n') + '\n');
      setExit(report.ok ? 0 : 1);
    },
  };
}
