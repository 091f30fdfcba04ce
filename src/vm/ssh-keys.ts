/**
 * Theory of operation: the SSH keys of vmnet's guests, made by OpenSSH's own
 * `ssh-keygen` (ed25519, RFC 8709), kept in the user's data directory
 * (config/user-dirs.ts), directories 0700, private keys 0600:
 *
 * - vmnet's own client key pair, `$XDG_DATA_HOME/vmnet/ssh/id_ed25519`,
 *   made at first use: every seeded VM authorizes it, so `vmnet ssh`,
 *   `exec` and `cp` need no flag. The user's own keys (`~/.ssh/*.pub`) are
 *   never added unless named with `--ssh-key`.
 * - each VM name's SSH host key, `$XDG_DATA_HOME/vmnet/vms/NAME/
 *   ssh_host_ed25519_key`, next to its kept disk: the seed hands it to the
 *   guest (cloud-init `ssh_keys`), so the known_hosts entry vmnet writes is
 *   exact from the first connection (StrictHostKeyChecking=yes), and it
 *   stays the same on a disk kept across runs (cloud-init applies
 *   `ssh_keys` once per instance). `vmnet rm NAME` removes it with the disk.
 *
 * A key is generated into a private temporary directory and linked into
 * place (link(2) fails when the name exists), so two first uses at once
 * end with one key, and nobody ever reads half a key. A key file that is not
 * a regular file of the user's, or that others can read, is refused.
 *
 * `--ssh-key FILE` takes public keys only: each non-empty, non-comment line
 * must be an OpenSSH public key line (type, base64, optional comment); a
 * private key is refused with a hint to give its `.pub`.
 */
import { execFile } from 'node:child_process';
import { link, lstat, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VmnetError } from '../errors.js';
import { dataRoot } from '../config/user-dirs.js';
import { ensurePrivateDirSync } from '../switch/runtime.js';
import { vmDiskDir } from '../images/vm-disk.js';

const exec = promisify(execFile);

/** A key pair on disk. */
export interface KeyPair {
  /** The private key's path (0600). */
  key: string;
  /** The public key line, without its comment (`ssh-ed25519 AAAA…`). */
  publicKey: string;
}

/** The private key's text too: what a seed carries. */
export interface HostKey extends KeyPair {
  privateKey: string;
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}(?: [^\x00-\x1f\x7f]*)?$/;
/** Largest --ssh-key file read. */
const MAX_KEY_FILE = 64 * 1024;

/** `ssh-keygen` failed or is missing: one line saying so. */
function keygenError(e: unknown): VmnetError {
  const x = e as NodeJS.ErrnoException & { stderr?: string };
  if (x.code === 'ENOENT') return new VmnetError('E_NO_FILE', 'ssh-keygen is not on PATH; install OpenSSH\'s client (Debian: apt-get install openssh-client)');
  return new VmnetError('E_NO_FILE', `ssh-keygen failed: ${(x.stderr ?? x.message).trim()}`);
}

/** Checks that `path` is a regular file of the user's that nobody else can read. */
async function checkPrivate(path: string): Promise<void> {
  const st = await lstat(path);
  const uid = process.getuid?.();
  if (!st.isFile() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new VmnetError('E_NO_FILE', `${path} is not a private key file of yours (a regular file, mode 0600): remove it and vmnet makes a new one`);
  }
}

/** The public key line (type and base64) of a private key file: its .pub when there, else ssh-keygen -y. */
async function publicOf(key: string): Promise<string> {
  let line: string;
  try {
    line = await readFile(`${key}.pub`, 'utf8');
  } catch {
    line = await exec('ssh-keygen', ['-y', '-f', key]).then((r) => r.stdout, (e) => Promise.reject(keygenError(e)));
  }
  const [type, data] = line.trim().split(/\s+/);
  if (!type || !data || !KEY_TYPES.test(`${type} ${data}`)) throw new VmnetError('E_NO_FILE', `${key}.pub is not an OpenSSH public key; remove ${key} and its .pub, and vmnet makes new ones`);
  return `${type} ${data}`;
}

/**
 * The ed25519 key at `key`, made now when it does not exist (see the file comment).
 * @param comment the comment of a new key
 */
async function ensureKey(key: string, dir: string, comment: string): Promise<KeyPair> {
  ensurePrivateDirSync(dir);
  try {
    await checkPrivate(key);
    return { key, publicKey: await publicOf(key) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = await mkdtemp(join(dir, '.keygen-'));
  try {
    const t = join(tmp, 'key');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', t]).catch((e) => Promise.reject(keygenError(e)));
    await rename(`${t}.pub`, `${key}.pub.${process.pid}`);
    try {
      await link(t, key);
      await rename(`${key}.pub.${process.pid}`, `${key}.pub`);
    } catch (e) {
      await rm(`${key}.pub.${process.pid}`, { force: true });
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // Another process made it first: use that one (its .pub may still be on its way: publicOf derives it).
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  await checkPrivate(key);
  return { key, publicKey: await publicOf(key) };
}

/**
 * vmnet's own client key pair, made at first use.
 * @param env environment holding XDG_DATA_HOME / HOME
 */
export function clientKey(env: NodeJS.ProcessEnv = process.env): Promise<KeyPair> {
  const dir = join(dataRoot(env), 'ssh');
  ensurePrivateDirSync(dataRoot(env));
  return ensureKey(join(dir, 'id_ed25519'), dir, 'vmnet');
}

/**
 * VM `name`'s SSH host key, made at its first seeded run.
 * @param env environment holding XDG_DATA_HOME / HOME
 */
export async function hostKey(name: string, env: NodeJS.ProcessEnv = process.env): Promise<HostKey> {
  const root = dataRoot(env);
  ensurePrivateDirSync(root);
  ensurePrivateDirSync(join(root, 'vms'));
  const dir = vmDiskDir(name, env);
  const pair = await ensureKey(join(dir, 'ssh_host_ed25519_key'), dir, `vmnet-host-${name}`);
  return { ...pair, privateKey: await readFile(pair.key, 'utf8') };
}

/**
 * The public keys in `--ssh-key` files.
 * @returns every key line, in order
 * @throws VmnetError E_NO_FILE (unreadable), E_USAGE (not public keys) naming the file and line
 */
export async function readPublicKeys(files: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      const st = await lstat(f).catch(() => null);
      if (st !== null && st.size > MAX_KEY_FILE) throw new VmnetError('E_USAGE', `--ssh-key ${f} is ${st.size} bytes: not a public key file`);
      text = await readFile(f, 'utf8');
    } catch (e) {
      if (e instanceof VmnetError) throw e;
      throw new VmnetError('E_NO_FILE', `--ssh-key ${f} does not exist or is not readable`);
    }
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new VmnetError('E_USAGE', `--ssh-key ${f} is a private key; give its public key (${f}.pub)`);
    let found = 0;
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      if (!KEY_TYPES.test(line)) throw new VmnetError('E_USAGE', `--ssh-key ${f} line ${i + 1} is not an OpenSSH public key (ssh-ed25519 AAAA… comment)`);
      keys.push(line);
      found++;
    });
    if (found === 0) throw new VmnetError('E_USAGE', `--ssh-key ${f} holds no public key`);
  }
  return keys;
}

/** The known_hosts line for a guest's SSH on 127.0.0.1:port. */
export function knownHostsLine(port: number, publicKey: string): string {
  return `[127.0.0.1]:${port} ${publicKey}\n`;
}

/** Writes a known_hosts file (0600) holding `line`. */
export async function writeKnownHosts(path: string, line: string): Promise<void> {
  await writeFile(path, line, { mode: 0o600 });
}
