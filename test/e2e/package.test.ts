/**
 * vmnet as someone who never cloned it gets it: the package is packed,
 * installed from the tarball into an empty prefix (its dependencies from
 * npm's cache or the registry, vmnet itself from the file), and run by an
 * unprivileged user (`vmnet-ci`, created when missing) whose cache is empty,
 * with no VMNET_GUEST_DIR, from their home directory, in a mount namespace
 * where this repository is hidden under an empty tmpfs (so nothing can come
 * from it): `vmnet doctor`, `vmnet demo` (which builds the test guest from
 * Debian packages, showing each step), `vmnet demo` again (which reuses it).
 * Then a TypeScript project with `moduleResolution: nodenext` type-checks a
 * use of `launch` imported from the installed package, and Node imports it.
 *
 * As root (CI) only: creating the user and the namespace needs it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../helpers/tmp.js';

const USER = 'vmnet-ci';
const asRoot = process.getuid?.() === 0;
const repo = realpathSync(join(import.meta.dirname, '..', '..'));
/** Where the repository's node_modules really are (a worktree may share another checkout's). */
const modulesHome = dirname(realpathSync(join(repo, 'node_modules')));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `sh -c script` and collects everything. */
function sh(cmd: string[], script: string, env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, [...cmd.slice(1), 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

describe.runIf(asRoot)('the npm package', () => {
  it('installed from its tarball, works for an unprivileged user with an empty cache and no repository, and types a consumer project', { timeout: 600_000 }, async () => {
    const t = privateTmp('vmnet-package-');
    chmodSync(t, 0o755);
    // Pack (dist/ is built by pretest; --ignore-scripts: no rebuild under running tests) and install.
    const tgz = join(t, execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', t, '--silent'], { cwd: repo, encoding: 'utf8' }).trim().split('\n').at(-1)!);
    const prefix = join(t, 'prefix');
    const install = await sh(['env'], `npm install --global --prefix '${prefix}' --prefer-offline --no-audit --no-fund '${tgz}'`);
    expect(install.code, install.stderr).toBe(0);
    const pkgDir = join(prefix, 'lib', 'node_modules', 'vmnet');
    expect(readdirSync(pkgDir).sort()).toEqual(['CHANGELOG.md', 'LICENSE', 'README.md', 'build', 'dist', 'guest', 'native', 'node_modules', 'package.json']);
    // The postinstall built the ping helper into the package (build/native/ping-helper-<source hash>).
    expect(readdirSync(join(pkgDir, 'build', 'native'))).toEqual([expect.stringMatching(/^ping-helper-[0-9a-f]{16}$/)]);

    try {
      execFileSync('id', ['-u', USER], { stdio: 'pipe' });
    } catch {
      execFileSync('useradd', ['-m', USER], { stdio: 'pipe' });
    }
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    const home = execFileSync('sh', ['-c', `getent passwd ${USER} | cut -d: -f6`], { encoding: 'utf8' }).trim();
    rmSync(join(home, '.cache', 'vmnet'), { recursive: true, force: true }); // an empty cache
    // A Debian user's PATH (/etc/profile): no sbin directories, where mkfs.vfat lives.
    const PATH = [join(prefix, 'bin'), dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin', '/usr/games'].join(':');
    const hidden = [...new Set([repo, modulesHome])];
    /** Runs `script` as the user, in their home, with the repository hidden. */
    const asUser = (script: string) =>
      sh(
        ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${hidden.map((d) => `mount -t tmpfs -o size=1m,mode=0755 none '${d}'`).join(' && ')} && exec runuser -u ${USER} -- env -i PATH='${PATH}' HOME='${home}' LANG=C "$@"`, 'as-user'],
        `cd && ${script}`,
      );

    // Nothing of the repository is visible, and no guest is anywhere.
    const look = await asUser(`for d in ${hidden.map((d) => `'${d}'`).join(' ')}; do ls -A "$d"; done; echo "cache: $(ls -A ~/.cache/vmnet 2>&1)"; id -u; vmnet --version`);
    expect(look.code, look.stderr).toBe(0);
    expect(look.stdout).toBe(`cache: ls: cannot access '${home}/.cache/vmnet': No such file or directory\n${uid}\n0.2.0\n`);

    const doctor = await asUser('vmnet doctor');
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^ {2}ok {4}QEMU {10}\/usr\/bin\/qemu-system-x86_64 \d+\.\d+/m);
    expect(doctor.stdout).toMatch(/^ {2}(ok|warn|info) {2,}KVM {11}/m);
    if (!/^ {2}ok {4}KVM/m.test(doctor.stdout)) expect(doctor.stdout).toContain('TCG (software emulation) will be used');
    expect(doctor.stdout).toMatch(new RegExp(`^ {2}ok {4}runtime dir {3}/tmp/vmnet-${uid} \\(0700, yours; fallback: XDG_RUNTIME_DIR is unset\\)`, 'm'));
    expect(doctor.stdout).toMatch(new RegExp(`^ {2}info {2}test guest {4}not built yet: vmnet demo builds it on first use in ${home}/\\.cache/vmnet/guest/0\\.2\\.0-[0-9a-f]{12} \\(downloads \\d+ MB\\)`, 'm'));
    expect(doctor.stdout).toMatch(/^vmnet can run VMs here/m);

    const first = await asUser('vmnet demo');
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const steps = first.stdout.split('\n').filter((l) => l.startsWith('vmnet guest: '));
    expect(steps[0]).toMatch(new RegExp(`^vmnet guest: building it \\(first use: a [\\d.]+ MB download, then a few seconds\\) in ${home}/\\.cache/vmnet/guest/0\\.2\\.0-[0-9a-f]{12}$`));
    expect(steps.slice(1, 6).map((l) => /\[(\d)\/5\]/.exec(l)?.[1])).toEqual(['1', '2', '3', '4', '5']);
    expect(steps[6]).toMatch(/^vmnet guest: done in [\d.]+ s: /);
    expect(first.stdout).toContain('== result: all four steps worked');
    const cacheRoot = join(home, '.cache', 'vmnet', 'guest');
    const [guestName] = readdirSync(cacheRoot);
    for (const d of [join(home, '.cache', 'vmnet'), cacheRoot]) {
      expect(statSync(d).uid).toBe(uid);
      expect(statSync(d).mode & 0o777).toBe(0o700);
    }
    expect(readdirSync(join(cacheRoot, guestName!)).sort()).toEqual(['disk.qcow2', 'disk.raw', 'initramfs.gz', 'manifest.json', 'vmlinuz']);

    const second = await asUser('vmnet demo');
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).not.toContain('vmnet guest:');
    expect(second.stdout).toContain('== result: all four steps worked');
    expect(readdirSync(cacheRoot)).toEqual([guestName]);

    const after = await asUser('vmnet doctor --json');
    const guest = (JSON.parse(after.stdout) as { checks: Array<{ id: string; verdict: string; data: Record<string, unknown> }> }).checks.find((c) => c.id === 'guest')!;
    expect(guest).toMatchObject({ verdict: 'ok', data: { source: 'cache', built: true, upToDate: true } });
    console.log(`package e2e (ms): install ${install.ms}, doctor ${doctor.ms}, demo with the guest build ${first.ms}, demo again ${second.ms}`);

    // A consumer project: its own node_modules holds the installed package and @types/node.
    const consumer = join(t, 'consumer');
    mkdirSync(join(consumer, 'node_modules', '@types'), { recursive: true });
    symlinkSync(pkgDir, join(consumer, 'node_modules', 'vmnet'));
    symlinkSync(realpathSync(join(repo, 'node_modules', '@types', 'node')), join(consumer, 'node_modules', '@types', 'node'));
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, include: ['index.ts'] }),
    );
    writeFileSync(
      join(consumer, 'index.ts'),
      `import { launch, VmnetError, type LaunchOptions, type Vm } from 'vmnet';
const options: LaunchOptions = { image: 'disk.qcow2', snapshot: true, forwards: ['2222:22'], memory: '512M' };
export async function start(): Promise<Vm> {
  const vm = await launch(options);
  await vm.waitForPort(22);
  return vm;
}
// @ts-expect-error memory is a size string or MiB, never an object: the types are real, not any
void launch({ image: 'x', memory: { size: 1 } });
export const noQemu = (e: unknown): boolean => e instanceof VmnetError && e.code === 'E_NO_QEMU';
`,
    );
    const tsc = await sh(['env'], `cd '${consumer}' && '${process.execPath}' '${join(repo, 'node_modules', 'typescript', 'bin', 'tsc')}' -p .`);
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
    // The same import at run time; deep imports stay private (exports).
    const load = await sh(['env'], `cd '${consumer}' && '${process.execPath}' --input-type=module -e "const m = await import('vmnet'); console.log(typeof m.launch, typeof m.runDoctor); await import('vmnet/dist/index.js').catch((e) => console.log(e.code));"`);
    expect(load.stdout).toBe('function function\nERR_PACKAGE_PATH_NOT_EXPORTED\n');
    expect(existsSync(tgz)).toBe(true);
  });
});
