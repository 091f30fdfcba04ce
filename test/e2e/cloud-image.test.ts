/**
 * The cloud image stand-in (test/cloud-image/build.sh) behaves like Debian
 * 12's genericcloud image on vmnet's own network, under TCG, in one boot:
 * `vmnet run IMAGE --snapshot` boots it from its own disk (SeaBIOS, no
 * --kernel); its cloud-init finds the NoCloud seed named by the SMBIOS
 * serial and fetches it from a test HTTP server on the host's 127.0.0.1
 * through the gateway address (10.0.2.2); the user and key from user-data
 * log in with plain `ssh` over a port forward, and `hostname` prints the
 * seed's local-hostname. The image file is unchanged afterwards, and the
 * guest sent nothing beyond its own network (read off the gateway's pcap).
 *
 * Boot-to-SSH time is printed, not asserted (TCG on a shared machine).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCloudImage, type CloudImage } from '../helpers/cloud-image.js';
import { metaData, serveNoCloudSeed, userDataWithUser, type NoCloudSeed } from '../helpers/nocloud-seed.js';
import { freePort } from '../helpers/ports.js';
import { ssh, sshKeyPair, type SshKeyPair, type SshResult } from '../helpers/ssh.js';
import { privateTmp } from '../helpers/tmp.js';
import { vmnet } from './launcher-helpers.js';

const NAME = 'cloud-smoke';
/** Not the VM name: the hostname can only have come from the seed. */
const HOSTNAME = `stand-in-${randomBytes(3).toString('hex')}`;
const USER = 'tester';

let image: CloudImage;
let dir: string;
let env: NodeJS.ProcessEnv;
let seed: NoCloudSeed;
let keys: SshKeyPair;
let sshPort: number;
let shaBefore: string;
let login: SshResult;
let running = false;

const consoleLog = () => join(dir, 'console.log');
const pcap = () => join(dir, 'gateway.pcap');
/** The end of the guest's serial console, for failure messages. */
const consoleTail = () => (existsSync(consoleLog()) ? readFileSync(consoleLog(), 'utf8').slice(-4000) : '(no console log)');

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

beforeAll(async () => {
  image = findCloudImage();
  dir = privateTmp('vmnet-cloud-');
  env = { ...process.env, XDG_RUNTIME_DIR: dir, VMNET_DEBUG: '' };
  delete env.VMNET_RUNTIME_DIR;
  shaBefore = await sha256(image.qcow2);
  keys = await sshKeyPair(dir);
  seed = await serveNoCloudSeed({ metaData: metaData(`iid-${HOSTNAME}`, HOSTNAME), userData: userDataWithUser(USER, [keys.publicKey]) });
  sshPort = await freePort();

  const t0 = performance.now();
  const run = await vmnet(
    [
      'run', image.qcow2, '--snapshot', '--detach', '--name', NAME, '--accel', 'tcg', '--cpus', '1', '-m', '1G',
      '--console', `file:${consoleLog()}`, '--pcap', pcap(), '--stop-timeout', '90',
      // DNS answers never come from outside; the seed and SSH are on loopback.
      '--dns-upstream', '127.0.0.1:9', '-p', `127.0.0.1:${sshPort}:22`,
      '--', ...seed.qemuArgs,
    ],
    env,
  );
  expect(run.code, run.stderr).toBe(0);
  running = true;
  const wait = await vmnet(['wait', NAME, '--port', '22', '--timeout', '480'], env);
  expect(wait.code, `${wait.stderr}\nseed requests: ${seed.requests.join(' ')}\nconsole:\n${consoleTail()}`).toBe(0);
  // Port 22 answering is sshd up; cloud-init orders the user's creation
  // before sshd, but give a slow first login a few tries.
  for (let i = 0; i < 10; i++) {
    login = await ssh({ key: keys.key, user: USER, port: sshPort }, 'hostname; sudo -n id -u', 30);
    if (login.code === 0) break;
    await new Promise((r) => setTimeout(r, 3000));
  }
  const bootToSsh = (performance.now() - t0) / 1000;
  console.log(`cloud image stand-in (kernel ${image.manifest.kernelVersion}, cloud-init ${image.manifest.cloudInit}): boot to SSH login ${bootToSsh.toFixed(1)} s under TCG, 1 vCPU`);
}, 600_000);

afterAll(async () => {
  if (running) await vmnet(['stop', NAME, '--force'], env);
  await seed?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the Debian 12 genericcloud stand-in on vmnet, seeded by NoCloud over HTTP', () => {
  it('fetches meta-data, user-data and vendor-data from the seed the SMBIOS serial names', () => {
    expect(seed.requests).toEqual(expect.arrayContaining(['/meta-data', '/user-data', '/vendor-data']));
  });

  it("logs in with the user-data's key over the forward; hostname prints the seed's local-hostname; sudo needs no password", () => {
    expect(login.code, `${login.stderr}\nconsole:\n${consoleTail()}`).toBe(0);
    expect(login.stdout.split('\n')).toEqual([HOSTNAME, '0', '']);
  });

  it('refuses a key that user-data did not name (none is in the image)', async () => {
    const stranger = await sshKeyPair(dir, 'stranger');
    const r = await ssh({ key: stranger.key, user: USER, port: sshPort }, 'true');
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    const root = await ssh({ key: keys.key, user: 'root', port: sshPort }, 'true');
    expect(root.code).toBe(255);
  });

  it('powers off on vmnet stop and leaves the --snapshot image file byte for byte as it was', async () => {
    const stop = await vmnet(['stop', NAME], env);
    expect(stop.code, `${stop.stderr}\nconsole:\n${consoleTail()}`).toBe(0);
    running = false;
    expect(stop.stdout).toMatch(/powered off/);
    expect(await sha256(image.qcow2)).toBe(shaBefore);
  });

  it('sent nothing beyond its own network (every IPv4 destination in the pcap is on 10.0.2.0/24, broadcast or multicast)', () => {
    const out = execFileSync('tshark', ['-r', pcap(), '-Y', 'ip', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const pairs = out.trim().split('\n').map((l) => l.split('\t'));
    expect(pairs.length).toBeGreaterThan(10);
    const fromGuest = pairs.filter(([src]) => src === '0.0.0.0' || (/^10\.0\.2\.\d+$/.test(src!) && src !== '10.0.2.2' && src !== '10.0.2.3')).map(([, dst]) => dst!);
    expect(fromGuest.length).toBeGreaterThan(0);
    const outside = [...new Set(fromGuest)].filter((d) => !/^10\.0\.2\.\d+$/.test(d) && d !== '255.255.255.255' && !/^22[4-9]\.|^23\d\./.test(d));
    expect(outside).toEqual([]);
  });
});
