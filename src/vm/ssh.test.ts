/**
 * The pure parts of ssh.ts: the remote command line (quoting, --user,
 * --workdir, --env), the OpenSSH options (strict known_hosts, vmnet's key
 * only, the master connection), scp's ends, failure classification, and the
 * master socket path kept under the unix socket path limit.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifySshFailure, controlPathFor, remoteCommand, scpArgs, shQuote, sshArgs, type SshTarget } from './ssh.js';

const t: SshTarget = { port: 41000, user: 'alice', identity: '/d/id_ed25519', knownHosts: '/r/web/known_hosts', controlPath: '/r/web/ssh.sock' };

describe('remoteCommand', () => {
  it('quotes every word so the guest shell runs exactly argv', () => {
    const argv = ['printf', '%s|', 'a b', "it's", '$HOME', '`id`', '*', ''];
    const cmd = remoteCommand(argv);
    expect(cmd).toBe(`exec printf '%s|' 'a b' 'it'\\''s' '$HOME' '\`id\`' '*' ''`);
    expect(execFileSync('sh', ['-c', cmd], { encoding: 'utf8' })).toBe('a b|it\'s|$HOME|`id`|*||');
  });

  it('adds cd, env and sudo in that order, and refuses bad input', () => {
    expect(remoteCommand(['id'], { user: 'www-data', workdir: '/srv/my app', env: { A: '1 2', B_2: '' } })).toBe(`cd -- '/srv/my app' && exec sudo -n -u www-data -- env 'A=1 2' B_2= id`);
    // A directory named like an option is a directory (cd -P alone would go home).
    expect(remoteCommand(['pwd'], { workdir: '-P' })).toBe('cd -- -P && exec pwd');
    const out = execFileSync('sh', ['-c', remoteCommand(['sh', '-c', 'echo "$A:$(pwd)"'], { workdir: '/tmp', env: { A: "x'y" } })], { encoding: 'utf8' });
    expect(out).toBe("x'y:/tmp\n");
    expect(() => remoteCommand([])).toThrow(/no command given/);
    expect(() => remoteCommand(['true'], { env: { 'A-B': '1' } })).toThrow(/bad --env A-B/);
    expect(shQuote('plain/path-1.2')).toBe('plain/path-1.2');
  });

  it('runs a command whose name contains "=" as the command, not as one more variable (env and sudo read NAME=VALUE words as assignments)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmnet-eq-'));
    try {
      const prog = join(dir, 'a=b');
      writeFileSync(prog, '#!/bin/sh\necho "ran:$A:$1"\n', { mode: 0o755 });
      const out = execFileSync('sh', ['-c', remoteCommand([prog, 'x'], { env: { A: '1' } })], { encoding: 'utf8' });
      expect(out).toBe('ran:1:x\n');
      // Without --env or --user nothing reads assignments: the command line stays plain.
      expect(remoteCommand([prog])).toBe(`exec ${prog}`);
      expect(remoteCommand(['./a=b'], { user: 'u' })).toBe(`exec sudo -n -u u -- /bin/sh -c 'exec "$@"' sh ./a=b`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('OpenSSH arguments', () => {
  it('log in with vmnet\'s key only, check the host key strictly against vmnet\'s known_hosts, share one master', () => {
    const a = sshArgs(t).join(' ');
    for (const o of ['-i /d/id_ed25519', 'IdentitiesOnly=yes', 'UserKnownHostsFile=/r/web/known_hosts', 'StrictHostKeyChecking=yes', 'HostKeyAlgorithms=ssh-ed25519', 'ControlPath=/r/web/ssh.sock', 'ControlMaster=auto']) expect(a).toContain(o);
    expect(a).not.toMatch(/StrictHostKeyChecking=no|\/dev\/null/);
    expect(a.endsWith('-p 41000 alice@127.0.0.1')).toBe(true);
  });

  it('scp: the guest end as USER@[127.0.0.1]:PATH, a host path with a colon kept local', () => {
    const a = scpArgs(t, { local: 'a:b' }, { remote: '/tmp/x y' }, true);
    expect(a.slice(-4)).toEqual(['-r', '--', './a:b', 'alice@[127.0.0.1]:/tmp/x y']);
    expect(a).toContain('-P');
    expect(scpArgs(t, { remote: 'f' }, { local: '/tmp/f' }, false).slice(-2)).toEqual(['alice@[127.0.0.1]:f', '/tmp/f']);
  });

  it('classifies why ssh could not get in', () => {
    expect(classifySshFailure('alice@127.0.0.1: Permission denied (publickey).')).toBe('key-refused');
    expect(classifySshFailure('Host key verification failed.')).toBe('host-key');
    expect(classifySshFailure('ssh: connect to host 127.0.0.1 port 4: Connection refused')).toBe('refused');
    expect(classifySshFailure('kex_exchange_identification: read: Connection reset by peer')).toBe('closed');
    expect(classifySshFailure('ssh: connect to host 127.0.0.1 port 4: Connection timed out')).toBe('timeout');
    expect(classifySshFailure('something else')).toBe('other');
  });

  it('keeps the master socket path short enough for a unix socket', () => {
    expect(controlPathFor('/run/user/1000/vmnet/web')).toBe('/run/user/1000/vmnet/web/ssh.sock');
    const long = controlPathFor(`/tmp/${'x'.repeat(90)}/vmnet/web`);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(90);
    expect(long).toMatch(/\/vmnet-ssh-\d+\/[0-9a-f]{16}$/);
  });
});
