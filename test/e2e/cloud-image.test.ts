/**
 * The cloud image stand-in (test/cloud-image/build.sh, Debian 12
 * genericcloud's cloud-init 22.4.2) seeded by vmnet's own gateway, under
 * TCG, in two boots of one VM name (boots take 50-90 s each here):
 *
 * Boot 1, the CLI: `vmnet run URL --detach --name NAME --ssh-key K.pub
 * --user-data U` (the image served by a local HTTP server, so the VM gets a
 * kept overlay over the cached image); `vmnet wait NAME --ssh` reports the
 * boot's stages and returns once SSH works; the guest fetched its seed from
 * the gateway (meta-data, user-data, vendor-data: the seed service counts
 * them) and nothing else answers it; `vmnet exec` prints the VM name as the
 * hostname, keeps stdout and stderr apart and passes the exit status 7 on;
 * `vmnet cp` takes 20 MB in and back out with equal SHA-256; the `--ssh-key`
 * key logs in with plain `ssh -p PORT` and vmnet's known_hosts under
 * StrictHostKeyChecking=yes; the user-data file was merged (its write_files
 * ran, its `users: [default]` kept, vmnet's user added); a file is written;
 * after `vmnet stop`, `vmnet exec` exits 125; the pcap shows nothing sent
 * beyond 10.0.2.0/24.
 *
 * Boot 2, the library: `launch({ image: URL, name: NAME, sshKeys, userData,
 * waitFor: 'ssh' })` on the same kept disk: the file from boot 1 is there,
 * cloud-init saw the same instance (the same inputs give the same instance
 * id: nothing applied twice), `vm.exec` (input, env, cwd), `vm.copyFrom`,
 * `vm.sshArgs()` with plain ssh. Meanwhile the stand-in booted with
 * `--cloud-init off` (its cloud-init disables itself and brings no network
 * up) makes `vmnet wait --ssh` time out saying "no frame yet".
 *
 * Afterwards the cached image and the built image file are byte for byte
 * what they were. Boot-to-SSH and the cost of one warm `vmnet exec -- true`
 * are printed, not asserted (TCG on a shared machine).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, type Vm } from '../../src/index.js';
import { cloudTestDirs, findCloudImage, sha256File, type CloudImage } from '../helpers/cloud-image.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { sshKeyPair, type SshKeyPair } from '../helpers/ssh.js';
import { vmnet, type Done } from './launcher-helpers.js';

const execP = promisify(execFile);
const NAME = `cloud-${randomBytes(2).toString('hex')}`;
const OFF = `${NAME}-off`;
const MARKER = `written in boot 1 ${randomBytes(4).toString('hex')}`;
/** The user's own user-data: kept users (the image's default user), a file, a variable. */
const USER_DATA = '#cloud-config\nusers: [default]\nwrite_files:\n  - path: /etc/vmnet-user-data-marker\n    content: "from the user\'s own user-data\\n"\n';

let image: CloudImage;
let dir: string;
let env: NodeJS.ProcessEnv;
let server: ImageServer;
let url: string;
let digest: string;
let keys: SshKeyPair;
let shaBuilt: string;
const running = new Set<string>();
let vm2: Vm | null = null;

const consoleLog = (tag: string) => join(dir, `console-${tag}.log`);
const pcap = () => join(dir, 'gateway.pcap');
const tail = (tag: string) => (existsSync(consoleLog(tag)) ? readFileSync(consoleLog(tag), 'utf8').slice(-3000) : '(no console log)');

const status = async (name: string) => (JSON.parse((await vmnet(['ls', '--json'], env)).stdout) as Array<{ name: string; ssh?: { port: number; user: string; knownHosts: string } }>).find((v) => v.name === name)!;

/** `ssh` as a user would type it: the given key, vmnet's known_hosts, strict checking, no other identity. */
function plainSsh(key: string, port: number, user: string, knownHosts: string, command: string): Promise<Done> {
  const args = ['-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-p', String(port), `${user}@127.0.0.1`, command];
  return execP('ssh', args, { timeout: 60_000 }).then(
    (r) => ({ code: 0, signal: null, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: typeof e.code === 'number' ? e.code : 255, signal: null, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

const BOOT1 = {} as { viaSsh: Done; concurrent: Done[]; masters: string[]; wait: Done; bootS: number; hostname: Done; mixed: Done; cpIn: Done; cpOut: Done; guestSha: Done; plain: Done; merged: Done; trueMs: number[]; seed: Done; afterStop: Done; stop: Done; blobSha: string; backSha: string };

beforeAll(async () => {
  image = findCloudImage();
  ({ dir, env } = cloudTestDirs('vmnet-cloud-'));
  shaBuilt = await sha256File(image.qcow2);
  const body = readFileSync(image.qcow2);
  server = await startImageServer({ '/debian-12-genericcloud-amd64.qcow2': { body } });
  url = server.url('/debian-12-genericcloud-amd64.qcow2');
  digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  keys = await sshKeyPair(dir);
  writeFileSync(join(dir, 'user-data.yaml'), USER_DATA);

  // Boot 1: the CLI.
  const t0 = performance.now();
  const run = await vmnet(
    [
      'run', url, '--digest', digest, '--detach', '--name', NAME, '--accel', 'tcg', '--cpus', '1', '-m', '1G',
      '--console', `file:${consoleLog('1')}`, '--pcap', pcap(), '--stop-timeout', '90', '--dns-upstream', '127.0.0.1:9',
      '--ssh-key', `${keys.key}.pub`, '--user-data', join(dir, 'user-data.yaml'),
    ],
    env,
  );
  expect(run.code, run.stderr).toBe(0);
  running.add(NAME);
  BOOT1.wait = await vmnet(['wait', NAME, '--ssh', '--timeout', '480'], env);
  BOOT1.bootS = (performance.now() - t0) / 1000;
  expect(BOOT1.wait.code, `${BOOT1.wait.stderr}\nconsole:\n${tail('1')}`).toBe(0);
  BOOT1.hostname = await vmnet(['exec', NAME, '--', 'hostname'], env);
  BOOT1.mixed = await vmnet(['exec', NAME, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'], env);
  const blob = join(dir, 'blob');
  writeFileSync(blob, randomBytes(20 * 1024 * 1024));
  BOOT1.cpIn = await vmnet(['cp', blob, `${NAME}:blob`], env);
  BOOT1.guestSha = await vmnet(['exec', NAME, '--', 'sha256sum', 'blob'], env);
  BOOT1.cpOut = await vmnet(['cp', `${NAME}:blob`, join(dir, 'back')], env);
  BOOT1.blobSha = await sha256File(blob);
  BOOT1.backSha = existsSync(join(dir, 'back')) ? await sha256File(join(dir, 'back')) : '';
  const s = await status(NAME);
  BOOT1.plain = await plainSsh(keys.key, s.ssh!.port, s.ssh!.user, s.ssh!.knownHosts, 'echo plain ssh as $(id -un)');
  BOOT1.merged = await vmnet(['exec', NAME, '--', 'sh', '-c', 'cat /etc/vmnet-user-data-marker; id -un debian; cat /var/lib/cloud/data/instance-id'], env);
  BOOT1.seed = await vmnet(['exec', NAME, '--user', 'root', '--', 'cloud-init', 'query', 'ds.meta_data'], env);
  BOOT1.viaSsh = await vmnet(['ssh', NAME, '--', 'echo', 'via', 'vmnet', 'ssh'], env);
  // Four first execs at once on a cold master: all run, and one master is left (no stray connection).
  execFileSync('ssh', ['-o', `ControlPath=${join(env.XDG_RUNTIME_DIR!, 'vmnet', NAME, 'ssh.sock')}`, '-O', 'exit', 'x'], { stdio: 'ignore' });
  BOOT1.concurrent = await Promise.all([0, 1, 2, 3].map((i) => vmnet(['exec', NAME, '--', 'echo', String(i)], env)));
  BOOT1.masters = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('ssh') && l.includes(join(env.XDG_RUNTIME_DIR!, 'vmnet', NAME)));
  BOOT1.trueMs = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await vmnet(['exec', NAME, '--', 'true'], env);
    BOOT1.trueMs.push(performance.now() - t);
  }
  const write = await vmnet(['exec', NAME, '--', 'sh', '-c', `echo '${MARKER}' > kept.txt && sync`], env);
  expect(write.code, write.stderr).toBe(0);
  BOOT1.stop = await vmnet(['stop', NAME], env);
  running.delete(NAME);
  BOOT1.afterStop = await vmnet(['exec', NAME, '--', 'true'], env);
  console.log(
    `cloud image stand-in (kernel ${image.manifest.kernelVersion}, cloud-init ${image.manifest.cloudInit}), TCG, 1 vCPU: boot to SSH ${BOOT1.bootS.toFixed(1)} s (vmnet run --detach + vmnet wait --ssh); ` +
      `vmnet exec -- true with the master warm: ${BOOT1.trueMs.map((x) => x.toFixed(0)).join(', ')} ms`,
  );
}, 900_000);

afterAll(async () => {
  await vm2?.stop({ force: true });
  for (const name of running) await vmnet(['stop', name, '--force'], env);
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('boot 1: vmnet run URL, wait --ssh, exec, cp, plain ssh with the known_hosts vmnet wrote', () => {
  it('vmnet wait --ssh says each stage as the gateway saw it, then ready', () => {
    const lines = BOOT1.wait.stderr.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^vmnet: ${NAME}: no frame yet`));
    expect(BOOT1.wait.stderr).toMatch(/DHCP lease 10\.0\.2\.15 [\d.]+ s after start/);
    expect(BOOT1.wait.stderr).toMatch(/seed fetched [\d.]+ s after start \(meta-data, user-data, vendor-data\)/);
    expect(BOOT1.wait.stdout).toBe(`${NAME}: ssh ready\n`);
  });

  it('cloud-init read the seed vmnet served: instance and host name from meta-data', () => {
    expect(BOOT1.seed.code, BOOT1.seed.stderr).toBe(0);
    const meta = JSON.parse(BOOT1.seed.stdout) as Record<string, string>;
    expect(meta['local-hostname']).toBe(NAME);
    expect(meta['instance-id']).toMatch(new RegExp(`^vmnet-${NAME}-[0-9a-f]{16}$`));
  });

  it('vmnet exec NAME -- hostname prints NAME', () => {
    expect(BOOT1.hostname).toMatchObject({ code: 0, stdout: `${NAME}\n`, stderr: '' });
  });

  it("vmnet exec keeps stdout and stderr apart and exits with the command's status", () => {
    expect(BOOT1.mixed).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
  });

  it('vmnet cp takes 20 MB in and back out unchanged', () => {
    expect(BOOT1.cpIn.code, BOOT1.cpIn.stderr).toBe(0);
    expect(BOOT1.cpOut.code, BOOT1.cpOut.stderr).toBe(0);
    expect(BOOT1.guestSha.stdout).toBe(`${BOOT1.blobSha}  blob\n`);
    expect(BOOT1.backSha).toBe(BOOT1.blobSha);
  });

  it('vmnet ssh NAME -- CMD runs it; four first execs at once all run and leave one master connection', () => {
    expect(BOOT1.viaSsh).toMatchObject({ code: 0, stdout: 'via vmnet ssh\n' });
    expect(BOOT1.concurrent.map((r) => [r.code, r.stdout])).toEqual([0, 1, 2, 3].map((i) => [0, `${i}\n`]));
    expect(BOOT1.masters, BOOT1.masters.join('\n')).toHaveLength(1);
    expect(BOOT1.masters[0]).toMatch(/\[mux\]/);
  });

  it('the --ssh-key key logs in with plain ssh -p PORT and the known_hosts vmnet wrote, strict checking on', () => {
    expect(BOOT1.plain.code, BOOT1.plain.stderr).toBe(0);
    expect(BOOT1.plain.stdout).toMatch(/^plain ssh as \S+\n$/);
  });

  it("merged the user's user-data: its file written, its users kept, vmnet's user added", () => {
    expect(BOOT1.merged.code, BOOT1.merged.stderr).toBe(0);
    const [marker, debian] = BOOT1.merged.stdout.split('\n');
    expect(marker).toBe("from the user's own user-data");
    expect(debian).toBe('debian');
  });

  it('powers off on vmnet stop; vmnet exec then exits 125 saying the VM is not running', () => {
    expect(BOOT1.stop.code, BOOT1.stop.stderr).toBe(0);
    expect(BOOT1.stop.stdout).toMatch(/powered off/);
    expect(BOOT1.afterStop.code).toBe(125);
    expect(BOOT1.afterStop.stderr).toMatch(new RegExp(`^vmnet: no VM named ${NAME} is running`));
  });

  it('sent nothing beyond its own network (every IPv4 destination in the pcap is on 10.0.2.0/24, broadcast or multicast)', () => {
    const out = execFileSync('tshark', ['-r', pcap(), '-Y', 'ip', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'tcp.dstport'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rows = out.trim().split('\n').map((l) => l.split('\t'));
    const fromGuest = rows.filter(([src]) => src === '0.0.0.0' || (/^10\.0\.2\.\d+$/.test(src!) && src !== '10.0.2.2' && src !== '10.0.2.3'));
    expect(fromGuest.length).toBeGreaterThan(10);
    const outside = [...new Set(fromGuest.map(([, dst]) => dst!))].filter((d) => !/^10\.0\.2\.\d+$/.test(d) && d !== '255.255.255.255' && !/^22[4-9]\.|^23\d\./.test(d));
    expect(outside).toEqual([]);
    // The seed came from the gateway's DNS address, port 80.
    expect(fromGuest.some(([, dst, port]) => dst === '10.0.2.3' && port === '80')).toBe(true);
  });
});

describe('boot 2: launch() of the same name on its kept disk; a VM with --cloud-init off meanwhile', () => {
  const got = {} as { kept: string; id: string; exec: { code: number; stdout: string; stderr: string }; copied: string; viaArgs: string; off: Done };

  beforeAll(async () => {
    // --cloud-init off: the stand-in's cloud-init disables itself and brings no network up.
    const offRun = await vmnet(['run', image.qcow2, '--snapshot', '--cloud-init', 'off', '--detach', '--name', OFF, '--accel', 'tcg', '--cpus', '1', '-m', '512M', '--console', `file:${consoleLog('off')}`], env);
    expect(offRun.code, offRun.stderr).toBe(0);
    running.add(OFF);
    const offWait = vmnet(['wait', OFF, '--ssh', '--timeout', '90'], env);
    vm2 = await launch({
      image: url,
      name: NAME,
      accel: 'tcg',
      cpus: 1,
      memory: '1G',
      consoleFile: consoleLog('2'),
      network: { dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] },
      sshKeys: [keys.publicKey],
      userData: USER_DATA,
      waitFor: 'ssh',
      waitTimeoutMs: 480_000,
      env,
    });
    got.kept = (await vm2.exec(['cat', 'kept.txt'])).stdout;
    got.id = (await vm2.exec('cat /var/lib/cloud/data/previous-instance-id /var/lib/cloud/data/instance-id')).stdout;
    got.exec = await vm2.exec(['sh', '-c', 'printf "%s|%s|" "$(pwd)" "$GREETING"; cat'], { input: 'from stdin', env: { GREETING: 'hello there' }, cwd: '/etc' });
    await vm2.copyFrom('/etc/hostname', join(dir, 'hostname'));
    got.copied = readFileSync(join(dir, 'hostname'), 'utf8');
    got.viaArgs = (await execP('ssh', [...vm2.sshArgs(), 'echo', 'via sshArgs'])).stdout;
    got.off = await offWait;
    await vmnet(['stop', OFF, '--force'], env);
    running.delete(OFF);
    await vm2.stop();
    vm2 = null;
  }, 900_000);

  it("keeps the file boot 1 wrote; cloud-init saw the same instance (nothing applied twice)", () => {
    expect(got.kept).toBe(`${MARKER}\n`);
    const [previous, current] = got.id.trim().split('\n');
    expect(current).toMatch(new RegExp(`^vmnet-${NAME}-[0-9a-f]{16}$`));
    expect(previous).toBe(current);
  });

  it('vm.exec takes input, env and cwd; vm.copyFrom and vm.sshArgs() work', () => {
    expect(got.exec).toEqual({ code: 0, stdout: '/etc|hello there|from stdin', stderr: '' });
    expect(got.copied).toBe(`${NAME}\n`);
    expect(got.viaArgs).toBe('via sshArgs\n');
  });

  it('vmnet wait --ssh on a guest with --cloud-init off times out saying no frame came', () => {
    expect(got.off.code, got.off.stderr).toBe(1);
    expect(got.off.stderr).toMatch(new RegExp(`vmnet: VM ${OFF}: SSH not ready within 90 s: no frame yet`));
  });

  it('left the cached image and the built image file byte for byte as they were', async () => {
    const cached = readdirSync(join(dir, 'cache', 'vmnet', 'images')).filter((f) => f.startsWith('sha256-'));
    expect(cached).toEqual([`sha256-${digest.slice('sha256:'.length)}`]);
    expect(`sha256:${await sha256File(join(dir, 'cache', 'vmnet', 'images', cached[0]!))}`).toBe(digest);
    expect(await sha256File(image.qcow2)).toBe(shaBuilt);
  });
});
