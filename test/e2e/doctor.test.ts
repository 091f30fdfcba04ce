/**
 * `vmnet doctor` against real QEMU: its KVM verdict agrees with what a real
 * `vmnet run --accel kvm` does on this host, and `vmnet run` after it uses
 * what it found; the probe's other outcomes (KVM works, KVM stalls, the
 * probe itself broken) through QEMU wrappers that change only the
 * accelerator; missing tools named with their packages; sysctls read as the
 * kernel has them (in a private network namespace).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { chooseAccel } from '../../src/qemu/binary.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor/doctor.js';
import { readKvmVerdict, writeKvmVerdict } from '../../src/vm/accel-verdict.js';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { findOnPath } from '../../src/qemu/binary.js';
import { privateTmp } from '../helpers/tmp.js';
import { BIN, vmnet } from './launcher-helpers.js';

const QEMU = findOnPath('qemu-system-x86_64')!;
const asRoot = process.getuid?.() === 0;
/** /dev/kvm opens for this user: the probe boots run (the wrappers below decide what "KVM" does). */
const kvmOpens = chooseAccel('auto').accel === 'kvm';

/** A qemu-system wrapper: `--version` passes through; a boot with `-accel kvm` runs `onKvm` (shell), others run QEMU. */
function wrapper(dir: string, onKvm: string, onOther = `exec ${QEMU} "$@"`): string {
  const p = join(dir, 'qemu-system-x86_64');
  writeFileSync(
    p,
    `#!/bin/sh
case " $* " in
  *" --version "*) exec ${QEMU} --version ;;
  *" -accel kvm "*) ${onKvm} ;;
  *) ${onOther} ;;
esac
`,
  );
  chmodSync(p, 0o755);
  return p;
}

const kvmOf = (r: Awaited<ReturnType<typeof runDoctor>>) => r.checks.find((c) => c.id === 'kvm')!;

describe('vmnet doctor', () => {
  it("says whether KVM runs a guest here as vmnet run finds it, and vmnet run after it goes straight to what it found", async () => {
    const rt = join(privateTmp('vmnet-doctor-'), 'rt');
    const env = { ...process.env, VMNET_RUNTIME_DIR: rt };
    const d = await vmnet(['doctor', '--json'], env);
    expect(d.code, d.stderr).toBe(0);
    const report = JSON.parse(d.stdout) as Awaited<ReturnType<typeof runDoctor>>;
    expect(report.ok).toBe(true);
    const kvm = kvmOf(report);
    const text = await vmnet(['doctor'], env);
    expect(text.stdout).toMatch(/^ {2}(ok|warn|info) {2,}KVM {2,}/m);
    const g = findBundledGuest();
    const dry = await vmnet(['run', '--kernel', g.kernel, '--initrd', g.initrd, '--dry-run', '--json'], env);
    const plan = JSON.parse(dry.stdout) as { command: string[]; notes: string[] };
    const accel = plan.command[plan.command.indexOf('-accel') + 1];
    if (kvm.data.verdictFile) {
      // This project's machines: /dev/kvm opens, QEMU dies at start (FACTS.md: MSR 0x10a).
      expect(kvm.verdict).toBe('warn');
      expect(kvm.summary).toMatch(/^not usable: QEMU failed to start a KVM guest: /);
      expect(kvm.detail).toContain('TCG (software emulation) will be used: slower than KVM; everything else works the same');
      expect(text.stdout).toContain('TCG (software emulation) will be used');
      // The same failure, from a real vmnet run with KVM forced: QEMU's first error line is doctor's reason.
      const forced = await vmnet(['run', '--kernel', g.kernel, '--initrd', g.initrd, '--accel', 'kvm', '--net', 'none', '--console', 'none', '-m', '128M', '--cpus', '1'], env);
      expect(forced.code).toBe(1);
      const first = String(kvm.data.reason).split(' | ')[0]!.replace(/^qemu-system-x86_64: /, '');
      expect(forced.stderr).toContain(first);
      expect(readKvmVerdict(rt, QEMU)?.reason).toBe(kvm.data.reason);
      expect(accel).toBe('tcg');
      expect(plan.notes.join('\n')).toMatch(/using TCG: KVM failed when QEMU started earlier in this boot/);
    } else if (kvm.data.usable === true) {
      expect(readKvmVerdict(rt, QEMU)).toBeNull();
      expect(accel).toBe('kvm');
    } else {
      expect(kvm.summary).toMatch(/^not usable: /);
      expect(accel).toBe('tcg');
    }
  });

  it.runIf(kvmOpens)('a KVM probe that passes removes an earlier verdict; one that stalls or dies is remembered; a probe broken under TCG too decides nothing', async () => {
    const t = privateTmp('vmnet-doctor-');
    const rt = join(t, 'rt');
    mkdirSync(rt, { mode: 0o700 });
    const env = { ...process.env, VMNET_RUNTIME_DIR: rt };
    const tcgOnly = (args: string) => `exec ${QEMU} $(echo "${args}" | sed -e 's/-accel kvm/-accel tcg/' -e 's/-cpu host//')`;

    const works = wrapper(join(t, 'works') + (mkdirSync(join(t, 'works')) ?? ''), tcgOnly('$*'));
    await writeKvmVerdict(rt, works, 'an old failure');
    const ok = kvmOf(await runDoctor({ env, qemu: works }));
    expect(ok.verdict, ok.summary).toBe('ok');
    expect(ok.detail[0]).toMatch(/^removed the earlier verdict/);
    expect(readKvmVerdict(rt, works)).toBeNull();

    mkdirSync(join(t, 'stalls'));
    const stalls = wrapper(join(t, 'stalls'), 'exec sleep 600');
    const stalled = kvmOf(await runDoctor({ env, qemu: stalls, probeTimeoutMs: 3000 }));
    expect(stalled.verdict).toBe('warn');
    expect(stalled.summary).toBe('not usable: the probe guest did not finish within 3 s (QEMU started; the guest stalled)');
    expect(readKvmVerdict(rt, stalls)?.reason).toMatch(/did not finish/);

    mkdirSync(join(t, 'dies'));
    const dies = wrapper(join(t, 'dies'), 'echo "qemu-system-x86_64: failed to initialize kvm: Permission denied" >&2; exit 1');
    const died = kvmOf(await runDoctor({ env, qemu: dies }));
    expect(died.summary).toBe('not usable: QEMU failed to start a KVM guest: qemu-system-x86_64: failed to initialize kvm: Permission denied (exit status 1)');
    expect(died.fix).toBe(`nothing; to try KVM again: rm ${join(rt, 'accel-verdict.json')} (or vmnet run --accel kvm)`);

    mkdirSync(join(t, 'broken'));
    const broken = wrapper(join(t, 'broken'), 'exit 1', 'echo "no such device" >&2; exit 1');
    const unknown = kvmOf(await runDoctor({ env, qemu: broken }));
    expect(unknown.summary).toMatch(/^not probed: the probe guest fails under TCG too \(no such device \(exit status 1\)\)/);
    expect(readKvmVerdict(rt, broken)).toBeNull();
  });

  it('fails without QEMU and names every missing package with the command to run', async () => {
    const t = privateTmp('vmnet-doctor-');
    const bin = join(t, 'bin');
    mkdirSync(bin);
    for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb']) symlinkSync(findOnPath(tool)!, join(bin, tool));
    const env = { PATH: bin, HOME: join(t, 'home'), VMNET_RUNTIME_DIR: join(t, 'rt'), VMNET_GUEST_DIR: join(t, 'guest') };
    const r = await vmnet(['doctor'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {2}fail {2}QEMU {10}qemu-system-x86_64 not found on PATH/m);
    expect(r.stdout).toMatch(/to do: (sudo )?apt-get install qemu-system-x86$/m);
    expect(r.stdout).toMatch(/^ {2}warn {2}test guest {4}not built, and it cannot be built here: missing syslinux \(syslinux\), mcopy \(mtools\), qemu-img \(qemu-utils\)/m);
    expect(r.stdout).toMatch(/to do: (sudo )?apt-get install syslinux mtools qemu-utils$/m);
    expect(r.stdout).toMatch(/^ {2}warn {2}OpenSSH {7}no ssh, ssh-keygen, scp on PATH: disk images cannot be seeded/m);
    // Ping to the outside warns where the host's ping_group_range excludes the user (as by default), with the sysctl to run.
    const pingWarns = /^ {2}warn {2}ping sockets {2}/m.test(r.stdout);
    if (pingWarns) expect(r.stdout).toMatch(/to do: (sudo )?sysctl -w net\.ipv4\.ping_group_range="0 2147483647"/m);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`vmnet cannot run VMs here: 1 problem and ${pingWarns ? 4 : 3} warnings above, each with what to do`);
  });

  it('an unusable runtime directory is a failed check with what to do, not a crash; the KVM probe still reports', async () => {
    const t = privateTmp('vmnet-doctor-');
    writeFileSync(join(t, 'file'), '');
    for (const rt of ['relative/dir', join(t, 'file', 'rt')]) {
      const r = await vmnet(['doctor', '--json'], { ...process.env, VMNET_RUNTIME_DIR: rt });
      expect(r.code, r.stderr).toBe(1);
      const checks = (JSON.parse(r.stdout) as Awaited<ReturnType<typeof runDoctor>>).checks;
      expect(checks.find((c) => c.id === 'runtime-dir')).toMatchObject({ verdict: 'fail', fix: 'set XDG_RUNTIME_DIR (or VMNET_RUNTIME_DIR) to a private directory of yours' });
      const kvm = checks.find((c) => c.id === 'kvm')!;
      if (kvm.data.reason !== undefined && kvm.data.usable === false && 'verdictFile' in kvm.data) expect(kvm.data.verdictFile).toBeNull();
    }
  });

  it.runIf(asRoot)('reads the sysctls as the kernel has them, 0 included (in a private network namespace)', () => {
    const out = execFileSync(
      'unshare',
      ['-n', 'sh', '-c', `sysctl -qw net.ipv4.ip_unprivileged_port_start=0 net.ipv4.ping_group_range="0 2147483647" && exec "${process.execPath}" "${BIN}" doctor --json`],
      { env: { ...process.env, VMNET_RUNTIME_DIR: join(privateTmp('vmnet-doctor-'), 'rt') }, encoding: 'utf8' },
    );
    const checks = (JSON.parse(out) as Awaited<ReturnType<typeof runDoctor>>).checks;
    expect(checks.find((c) => c.id === 'ports')!.data.ipUnprivilegedPortStart).toBe(0);
    expect(checks.find((c) => c.id === 'ping')).toMatchObject({ verdict: 'ok', data: { pingGroupRange: [0, 2147483647], allowed: true } });
  });
});
