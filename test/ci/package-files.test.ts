/**
 * What the npm tarball holds, from `npm pack --dry-run --json` on the built
 * tree: exactly what runs (dist/ JavaScript and declarations, one of each
 * per source module, no tests, no source maps), the test guest's assets, the
 * ping helper's C source and install hook, and the package's documents; and every entry point package.json names is in it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** Source modules of the package (src/, tests excluded), as dist/ names them without extension. */
function sourceModules(dir = join(root, 'src')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceModules(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [relative(join(root, 'src'), p).slice(0, -3)] : [];
  });
}

it('the tarball holds what runs and nothing else: dist without tests or maps, the guest assets, the ping helper source, the documents', () => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })) as Array<{ files: Array<{ path: string; mode: number }> }>;
  const files = pack!.files.map((f) => f.path).sort();
  const dist = sourceModules().flatMap((m) => [`dist/${m}.js`, `dist/${m}.d.ts`]);
  expect(files).toEqual([...dist, 'CHANGELOG.md', 'LICENSE', 'README.md', 'guest/init', 'guest/udhcpc.script', 'native/install.mjs', 'native/ping-helper.c', 'package.json'].sort());
  expect(files.filter((f) => /\.test\.|\.map$|^test\/|^src\//.test(f))).toEqual([]);
  expect(pack!.files.find((f) => f.path === 'dist/cli/bin.js')!.mode & 0o111).not.toBe(0);

  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; main: string; types: string; exports: Record<string, string | Record<string, string>> };
  const named = [...Object.values(pkg.bin), pkg.main, pkg.types, ...Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e)))];
  for (const p of named) expect(files, p).toContain(p.replace(/^\.\//, ''));
});
