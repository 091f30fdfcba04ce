import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../../test/helpers/tmp.js';
import { guestCacheRoot, guestDir, installBuild, makeBuildDir, prepareGuestParent, removeLeftovers } from './cache.js';
import { vmnetVersion } from './recipe.js';

/** A fake finished build: every file holds the same tag. */
function fakeBuild(tmp: string, tag: string): void {
  for (const f of ['vmlinuz', 'initramfs.gz', 'disk.raw', 'disk.qcow2', 'manifest.json']) writeFileSync(join(tmp, f), tag.repeat(1000));
}
const tagsIn = (dir: string) => new Set(readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8').slice(0, 1)));

describe('guest cache', () => {
  it('puts the guest in VMNET_GUEST_DIR, else a clone\'s build/guest, else the XDG cache by version and recipe', () => {
    const t = privateTmp('vmnet-cache-');
    expect(guestDir({ VMNET_GUEST_DIR: '/x/y', HOME: t })).toEqual({ dir: '/x/y', source: 'VMNET_GUEST_DIR' });
    mkdirSync(join(t, 'clone'));
    expect(guestDir({ HOME: t }, join(t, 'clone'))).toEqual({ dir: join(t, 'clone'), source: 'clone' });
    const cached = guestDir({ HOME: t }, join(t, 'no-clone'));
    expect(cached.source).toBe('cache');
    expect(cached.dir).toMatch(new RegExp(`^${t}/\\.cache/vmnet/guest/${vmnetVersion().replace(/\./g, '\\.')}-[0-9a-f]{12}$`));
    expect(guestDir({ HOME: t, XDG_CACHE_HOME: join(t, 'xdg') }, join(t, 'no-clone')).dir.startsWith(join(t, 'xdg', 'vmnet', 'guest') + '/')).toBe(true);
    // A relative XDG_CACHE_HOME is ignored (XDG Base Directory spec); without HOME there is no cache at all.
    expect(guestCacheRoot({ HOME: t, XDG_CACHE_HOME: 'rel' })).toBe(join(t, '.cache', 'vmnet', 'guest'));
    expect(() => guestCacheRoot({})).toThrow(/neither XDG_CACHE_HOME nor HOME is an absolute path/);
  });

  it('makes the cache private and refuses one another user can write', async () => {
    const t = privateTmp('vmnet-cache-');
    const env = { XDG_CACHE_HOME: join(t, 'c') };
    const dir = join(guestCacheRoot(env), 'v-key');
    await prepareGuestParent(dir, 'cache', env);
    for (const d of [join(t, 'c', 'vmnet'), guestCacheRoot(env)]) expect(statSync(d).mode & 0o777).toBe(0o700);
    chmodSync(guestCacheRoot(env), 0o777);
    await prepareGuestParent(dir, 'cache', env);
    expect(statSync(guestCacheRoot(env)).mode & 0o777).toBe(0o700);
    if (process.getuid?.() === 0) {
      const other = { XDG_CACHE_HOME: join(t, 'o') };
      mkdirSync(join(t, 'o', 'vmnet'), { recursive: true });
      execFileSync('chown', ['65534', join(t, 'o', 'vmnet')]);
      await expect(prepareGuestParent(join(guestCacheRoot(other), 'v-key'), 'cache', other)).rejects.toThrow(/owned by uid 65534/);
    }
  });

  it('two builds finishing at once: one is installed whole, the other is thrown away and uses it', async () => {
    const dir = join(privateTmp('vmnet-cache-'), 'guest');
    const [a, b] = [await makeBuildDir(dir), await makeBuildDir(dir)];
    fakeBuild(a, 'a');
    fakeBuild(b, 'b');
    const outcomes = await Promise.all([installBuild(a, dir, false), installBuild(b, dir, false)]);
    expect(outcomes.sort()).toEqual(['installed', 'lost']);
    const tags = tagsIn(dir);
    expect(tags.size).toBe(1); // never a mix of both
    expect(readdirSync(join(dir, '..'))).toEqual(['guest']); // the loser's directory is gone
  });

  it('a rebuild replaces the old guest whole, also through a symlink, and leaves nothing beside it', async () => {
    const t = privateTmp('vmnet-cache-');
    const real = join(t, 'real', 'guest');
    mkdirSync(real, { recursive: true });
    fakeBuild(real, 'o');
    const link = join(t, 'guest');
    symlinkSync(real, link);
    const target = await prepareGuestParent(link, 'clone');
    expect(target).toBe(real);
    const tmp = await makeBuildDir(target);
    fakeBuild(tmp, 'n');
    expect(await installBuild(tmp, target, true)).toBe('installed');
    expect(tagsIn(link)).toEqual(new Set(['n']));
    expect(readdirSync(join(t, 'real'))).toEqual(['guest']);
  });

  it('removes the leftovers of builds whose process is gone, and only those', async () => {
    const dir = join(privateTmp('vmnet-cache-'), 'guest');
    const mine = await makeBuildDir(dir);
    const dead = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    for (const n of [`.vmnet-guest-build-${dead}-x`, `.vmnet-guest-old-${dead}-y`]) mkdirSync(join(dir, '..', n));
    mkdirSync(join(dir, '..', `.build-${dead}-users-own`)); // not ours: never touched
    await removeLeftovers(dir);
    expect(existsSync(mine)).toBe(true);
    expect(readdirSync(join(dir, '..')).sort()).toEqual([`.build-${dead}-users-own`, mine.split('/').pop()]);
  });
});
