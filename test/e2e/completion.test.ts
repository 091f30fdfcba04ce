/**
 * Shell completion as the shells run it: bash with the script from
 * `vmnet completion bash` loaded and COMP_WORDS/COMP_CWORD set the way
 * readline sets them (split at COMP_WORDBREAKS, so `switch:l` is three
 * words), and zsh (when installed; the README's install block installs it)
 * with the script from `vmnet completion zsh` and compadd/_files recording
 * what they are given. The names come from a real switch and a real VM.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBundledGuest } from '../../src/guest/bundled.js';
import { findOnPath } from '../../src/qemu/binary.js';
import { privateTmp } from '../helpers/tmp.js';
import { BIN, vmnet } from './launcher-helpers.js';

const t = privateTmp('vmnet-completion-');
const shim = join(t, 'bin');
const env: NodeJS.ProcessEnv = { PATH: `${shim}:${process.env.PATH}`, HOME: t, VMNET_RUNTIME_DIR: join(t, 'rt'), LANG: 'C' };

/** COMPREPLY after bash completes `words` with the cursor on word `cword` (0 = vmnet). */
function bash(words: string[], cword = words.length - 1): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', `source <(vmnet completion bash); COMP_WORDS=(${quoted}); COMP_CWORD=${cword}; _vmnet_completions; printf '%s\\n' "\${COMPREPLY[@]}"`], { env, encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

/** What zsh's completion function hands to compadd (or FILES for _files), for `words` with the cursor on the last one. */
function zsh(words: string[]): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `compdef() { :; }; source <(vmnet completion zsh); compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }; _files() { print FILES; }; words=(${quoted}); CURRENT=${words.length}; _vmnet`;
  return execFileSync('zsh', ['-f', '-c', script], { env, encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('shell completion', () => {
  beforeAll(async () => {
    mkdirSync(shim);
    writeFileSync(join(shim, 'vmnet'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    chmodSync(join(shim, 'vmnet'), 0o755);
    const sw = await vmnet(['switch', 'create', 'lab'], env);
    expect(sw.code, sw.stderr).toBe(0);
    const g = findBundledGuest();
    const vm = await vmnet(['run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', g.append, '--name', 'web', '--net', 'none', '--console', 'none', '--accel', 'tcg', '-m', '128M', '--cpus', '1', '--detach'], env);
    expect(vm.code, vm.stderr).toBe(0);
  });
  afterAll(async () => {
    await vmnet(['stop', 'web', '--force'], env);
    await vmnet(['switch', 'rm', 'lab', '--force'], env);
  });

  it('bash: commands, subcommands, flags, choices', () => {
    expect(bash(['vmnet', 'st'])).toEqual(['stop', 'status']);
    expect(bash(['vmnet', 's'])).toEqual(['stop', 'ssh', 'switch', 'status']);
    expect(bash(['vmnet', ''])).toEqual(expect.arrayContaining(['run', 'demo', 'doctor', 'guest', 'completion', 'switch', 'ls']));
    expect(bash(['vmnet', 'switch', ''])).toEqual(['create', 'ls', 'rm', 'socket', 'forward', 'link', 'unlink', 'unblock']); // not the hidden serve
    expect(bash(['vmnet', 'run', '--ac'])).toEqual(['--accel']);
    expect(bash(['vmnet', 'run', '--accel', ''])).toEqual(['auto', 'kvm', 'tcg', 'hvf']);
    expect(bash(['vmnet', 'run', '--sup'])).toEqual([]); // hidden
    expect(bash(['vmnet', 'switch', 'create', 'x', '--no-h'])).toEqual(['--no-host-loopback', '--no-host']);
    expect(bash(['vmnet', 'forward', ''])).toEqual(['add', 'rm', 'ls']);
    expect(bash(['vmnet', 'completion', ''])).toEqual(['bash', 'zsh']);
    expect(bash(['vmnet', 'stop', '-'])).toEqual(['--force', '-f', '--timeout', '-t', '--help', '-h', '--version']);
  });

  it('bash: running VM and switch names where a name goes, switch:NAME after --net', () => {
    expect(bash(['vmnet', 'stop', ''])).toEqual(['web']);
    expect(bash(['vmnet', 'console', 'w'])).toEqual(['web']);
    expect(bash(['vmnet', 'ssh', ''])).toEqual(['web']);
    expect(bash(['vmnet', 'exec', 'w'])).toEqual(['web']);
    expect(bash(['vmnet', 'forward', 'add', ''])).toEqual(['web']);
    expect(bash(['vmnet', 'stop', '--timeout', '5', ''])).toEqual(['web']); // a flag's value is not the name
    expect(bash(['vmnet', 'switch', 'rm', ''])).toEqual(['lab']);
    expect(bash(['vmnet', 'run', '--net', ''])).toEqual(['user', 'none', 'switch:lab']);
    // readline splits at ':' (COMP_WORDBREAKS): what replaces the last piece is the rest of the name.
    expect(bash(['vmnet', 'run', '--net', 'switch', ':', 'l'])).toEqual(['lab']);
    expect(bash(['vmnet', 'run', '--net', 'switch', ':'])).toEqual(['lab']);
  });

  it('bash: nothing where a file goes or after --, so the shell completes file names', () => {
    expect(bash(['vmnet', 'run', ''])).toEqual([]);
    expect(bash(['vmnet', 'run', '--kernel', ''])).toEqual([]);
    expect(bash(['vmnet', 'run', 'disk.img', '--', '-m'])).toEqual([]);
  });

  it.runIf(findOnPath('zsh') !== null)('zsh: the same candidates through compadd, files through _files', () => {
    expect(zsh(['vmnet', 'st'])).toEqual(['stop', 'status']);
    expect(zsh(['vmnet', 'run', '--accel', ''])).toEqual(['auto', 'kvm', 'tcg', 'hvf']);
    expect(zsh(['vmnet', 'stop', ''])).toEqual(['web']);
    expect(zsh(['vmnet', 'run', '--net', 'switch:l'])).toEqual(['switch:lab']); // zsh keeps the word whole
    expect(zsh(['vmnet', 'run', ''])).toEqual(['FILES']);
  });

  it('completion never prints an error, whatever it is given', async () => {
    for (const args of [['__complete'], ['__complete', 'fish', '0', 'x'], ['__complete', 'bash', 'x'], ['__complete', 'bash', '99', 'run']]) {
      const r = await vmnet(args, { ...env, VMNET_RUNTIME_DIR: 'relative' });
      expect([r.code, r.stderr]).toEqual([0, '']);
    }
    const def = await vmnet(['completion'], { ...env, SHELL: '/usr/bin/zsh' });
    expect(def.stdout).toMatch(/^#compdef vmnet/);
    expect((await vmnet(['completion'], { ...env, SHELL: '/bin/bash' })).stdout).toMatch(/complete -F _vmnet_completions vmnet/);
  });
});
