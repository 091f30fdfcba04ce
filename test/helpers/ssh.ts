/**
 * OpenSSH's own client for tests that log in to a guest: a fresh key pair
 * made by ssh-keygen in a private directory, and `ssh` runs that never ask
 * anything (BatchMode), use only that key, and time out.
 *
 * Host keys are not checked here (the guest makes new ones at each first
 * boot); tests of vmnet's own known_hosts handling use their own options.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface SshKeyPair {
  /** Path of the private key (0600). */
  key: string;
  /** The public key line (`ssh-ed25519 AAAA… comment`). */
  publicKey: string;
}

/**
 * Makes an ed25519 key pair without a passphrase.
 * @param dir a private directory of the test's
 * @param name the private key's file name there (the public key gets `.pub`); must not exist yet
 */
export async function sshKeyPair(dir: string, name = 'id_ed25519'): Promise<SshKeyPair> {
  const key = join(dir, name);
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `vmnet-test-${name}`, '-f', key]);
  return { key, publicKey: readFileSync(`${key}.pub`, 'utf8').trim() };
}

export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one command over `ssh -p PORT USER@HOST`.
 * @returns the exit status (255: ssh itself failed) and output; never rejects on a failing command
 */
export async function ssh(target: { key: string; user: string; port: number; host?: string }, command: string, timeoutS = 20): Promise<SshResult> {
  const args = [
    '-i', target.key, '-p', String(target.port),
    '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
    '-o', `ConnectTimeout=${timeoutS}`,
    `${target.user}@${target.host ?? '127.0.0.1'}`, command,
  ];
  try {
    const r = await exec('ssh', args, { timeout: (timeoutS + 10) * 1000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 255, stdout: x.stdout ?? '', stderr: x.stderr ?? String(e) };
  }
}
