import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runtimeRoot } from './runtime-dir.js';
import { runtimeRoot as vmRoot } from '../vm/state.js';
import { runtimeDir as switchRoot } from '../switch/runtime.js';

const uid = process.getuid?.();

describe('runtimeRoot', () => {
  it('VMs and switches resolve the same directory for every environment', () => {
    const envs: NodeJS.ProcessEnv[] = [
      {},
      { XDG_RUNTIME_DIR: '/run/user/1000' },
      { XDG_RUNTIME_DIR: 'relative/dir' },
      { XDG_RUNTIME_DIR: '' },
      { VMNET_RUNTIME_DIR: '/srv/vmnet', XDG_RUNTIME_DIR: '/run/user/1000' },
      { VMNET_RUNTIME_DIR: '', XDG_RUNTIME_DIR: '/run/user/1000' },
      { XDG_RUNTIME_DIR: '/run/user/1000/' },
    ];
    for (const env of envs) expect(switchRoot(env), JSON.stringify(env)).toBe(vmRoot(env));
  });
  it('follows the XDG rules: a relative XDG_RUNTIME_DIR is ignored; VMNET_RUNTIME_DIR wins and must be absolute', () => {
    expect(runtimeRoot({ XDG_RUNTIME_DIR: '/run/user/1000/' })).toBe('/run/user/1000/vmnet');
    expect(runtimeRoot({ XDG_RUNTIME_DIR: 'relative/dir' })).toBe(join(tmpdir(), `vmnet-${uid}`));
    expect(runtimeRoot({})).toBe(join(tmpdir(), `vmnet-${uid}`));
    expect(runtimeRoot({ VMNET_RUNTIME_DIR: '/srv/vmnet', XDG_RUNTIME_DIR: '/run/user/1' })).toBe('/srv/vmnet');
    expect(() => runtimeRoot({ VMNET_RUNTIME_DIR: 'rel' })).toThrow(/VMNET_RUNTIME_DIR must be an absolute path/);
  });
});

describe('pidIsSwitch without /proc', () => {
  // Needs the build (dist/) and root for a mount namespace in which /proc is unmounted.
  const dist = join(import.meta.dirname, '../../dist/switch/runtime.js');
  it('does not take a live process that cannot be checked for a switch', () => {
    expect(existsSync(dist), 'npm run build first').toBe(true);
    const out = execFileSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', `umount -l /proc && test ! -e /proc/self && node -e 'import(process.argv[1]).then((m) => console.log(m.pidIsSwitch(process.pid, "sw1")))' ${dist}`],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe('false');
  });
});
