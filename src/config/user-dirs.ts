/**
 * Theory of operation: where vmnet keeps per-user files that outlive a
 * boot of the host, following the XDG Base Directory specification (the
 * runtime directory is config/runtime-dir.ts):
 *
 * - cache (`$XDG_CACHE_HOME/vmnet`, else `$HOME/.cache/vmnet`): downloaded
 *   disk images. Deleting it loses nothing but bandwidth: a VM whose base
 *   image is gone has it downloaded again (pinned to the same SHA-256).
 * - data (`$XDG_DATA_HOME/vmnet`, else `$HOME/.local/share/vmnet`): what
 *   must be kept, such as each VM's disk overlay (`vms/NAME/`).
 *
 * The spec says a relative XDG_* value is invalid and must be ignored; so
 * it is, here, in favour of the HOME default. Only the paths are decided
 * here; creating them as private (0700) directories of the user is done by
 * the callers (images/cache-fs.ts, images/vm-disk.ts).
 */
import { isAbsolute, join } from 'node:path';
import { VmnetError } from '../errors.js';

/** The first usable base: the absolute XDG variable, else $HOME/fallback. */
function xdgBase(env: NodeJS.ProcessEnv, variable: 'XDG_CACHE_HOME' | 'XDG_DATA_HOME', fallback: string): string {
  const xdg = env[variable];
  if (xdg && isAbsolute(xdg)) return xdg;
  const home = env.HOME;
  if (home && isAbsolute(home)) return join(home, fallback);
  throw new VmnetError('E_USAGE', `cannot tell where to keep vmnet's files: neither ${variable} nor HOME is an absolute path; set one of them`);
}

/**
 * vmnet's cache directory (not created).
 * @param env environment holding XDG_CACHE_HOME / HOME
 * @throws VmnetError E_USAGE when neither is an absolute path
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(xdgBase(env, 'XDG_CACHE_HOME', '.cache'), 'vmnet');
}

/**
 * vmnet's data directory (not created).
 * @param env environment holding XDG_DATA_HOME / HOME
 * @throws VmnetError E_USAGE when neither is an absolute path
 */
export function dataRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(xdgBase(env, 'XDG_DATA_HOME', join('.local', 'share')), 'vmnet');
}
