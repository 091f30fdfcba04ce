/**
 * vmnet's SSH keys (ssh-keys.ts) with the real ssh-keygen in a private
 * data directory: made once (concurrent first uses end with one key), 0600
 * in 0700 directories, a loose key refused; a host key per VM name; what
 * --ssh-key accepts and refuses; the known_hosts line.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { clientKey, hostKey, knownHostsLine, readPublicKeys } from './ssh-keys.js';

const envIn = (dir: string): NodeJS.ProcessEnv => ({ ...process.env, XDG_DATA_HOME: dir });

describe('vmnet ssh keys', () => {
  it('makes its client key once, private, even when first asked by several at once', async () => {
    const dir = privateTmp('vmnet-keys-');
    const env = envIn(dir);
    const all = await Promise.all([clientKey(env), clientKey(env), clientKey(env), clientKey(env)]);
    expect(new Set(all.map((k) => k.publicKey)).size).toBe(1);
    const k = all[0]!;
    expect(k.key).toBe(join(dir, 'vmnet', 'ssh', 'id_ed25519'));
    expect(k.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+$/);
    expect(statSync(k.key).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'vmnet', 'ssh')).mode & 0o777).toBe(0o700);
    expect(readFileSync(`${k.key}.pub`, 'utf8')).toContain(k.publicKey);
    expect((await clientKey(env)).publicKey).toBe(k.publicKey);
    chmodSync(k.key, 0o644);
    await expect(clientKey(env)).rejects.toThrow(/not a private key file of yours/);
  });

  it('gives each VM name its own host key, kept', async () => {
    const env = envIn(privateTmp('vmnet-keys-'));
    const web = await hostKey('web', env);
    const db = await hostKey('db', env);
    expect(web.publicKey).not.toBe(db.publicKey);
    expect(web.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect((await hostKey('web', env)).publicKey).toBe(web.publicKey);
    expect(knownHostsLine(2222, web.publicKey)).toBe(`[127.0.0.1]:2222 ${web.publicKey}\n`);
  });

  it('--ssh-key: public key lines only, each file at least one', async () => {
    const dir = privateTmp('vmnet-keys-');
    const f = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const good = f('a.pub', '# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 me@h\u00f4st\n\nssh-rsa AAAAB3NzaC1yc2E= \n');
    expect(await readPublicKeys([good])).toEqual(['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 me@h\u00f4st', 'ssh-rsa AAAAB3NzaC1yc2E=']);
    await expect(readPublicKeys([f('id', '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n')])).rejects.toThrow(/is a private key; give its public key/);
    await expect(readPublicKeys([f('b.pub', 'ssh-ed25519 AAAA\nnot a key\n')])).rejects.toThrow(/b\.pub line 2 is not an OpenSSH public key/);
    await expect(readPublicKeys([f('c.pub', '\n# nothing\n')])).rejects.toThrow(/holds no public key/);
    await expect(readPublicKeys([join(dir, 'missing.pub')])).rejects.toThrow(/does not exist/);
    mkdirSync(join(dir, 'd.pub'));
    await expect(readPublicKeys([join(dir, 'd.pub')])).rejects.toThrow(/not readable/);
  });
});
