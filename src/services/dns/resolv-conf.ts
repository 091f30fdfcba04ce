/**
 * Theory of operation: which upstream servers the forwarder asks.
 *
 * By default vmnet follows the host's own resolver configuration, so a VM
 * resolves exactly like the host does, including through loopback stubs such
 * as systemd-resolved's 127.0.0.53 (which a guest could never reach itself).
 * resolv.conf(5) is read for its `nameserver ADDR` lines (IPv4 or IPv6, an
 * IPv6 `%zone` kept); comments (`#`, `;`), other keywords and malformed
 * addresses are ignored, and `0.0.0.0` / `::` mean the local host as in
 * glibc. Every server listed is used, in order (glibc stops at three; the
 * forwarder's deadline bounds the cost instead). A file without nameservers
 * gives an empty list: the DNS service then answers SERVFAIL (glibc's
 * implicit 127.0.0.1 is not assumed).
 *
 * The file changes under a running VM (Wi-Fi roams, VPNs come up), and the
 * programs that rewrite it (NetworkManager, resolvconf, editors) usually
 * write a new file and rename it over the old one, which replaces the inode.
 * {@link ResolvConfWatcher} therefore watches the *directory* (fs.watch, and
 * also the directory of the symlink target when /etc/resolv.conf is a
 * symlink) and, as a fallback for platforms or filesystems where watching
 * fails, compares (dev, inode, size, mtime, ctime) from one `stat` on every
 * {@link ResolvConfWatcher.servers} call. The file is re-read only when that
 * identity changes. If it disappears, the last known servers stay in use.
 *
 * `--dns-upstream ADDR[:PORT]` (repeatable) replaces all of this with a fixed
 * list ({@link parseUpstream}, {@link fixedUpstreams}).
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { VmnetError } from '../../errors.js';
import { formatIp4, parseIp4 } from '../../wire/addr.js';
import { formatIp6, parseIp6 } from './local.js';
import { formatUpstream, type DnsLogger, type Upstream, type UpstreamSource } from './forwarder.js';

/** The standard DNS port. */
export const DNS_PORT = 53;

/**
 * Normalizes an IP literal: dotted quad, or IPv6 (RFC 5952 form) with an
 * optional `%zone`.
 * @returns the normalized text, or null when `text` is not an IP address
 */
function normalizeIp(text: string): string | null {
  const v4 = parseIp4(text);
  if (v4 !== -1) return formatIp4(v4);
  const pct = text.indexOf('%');
  const addr = pct === -1 ? text : text.slice(0, pct);
  const zone = pct === -1 ? '' : text.slice(pct + 1);
  if (pct !== -1 && !/^[A-Za-z0-9_.-]{1,64}$/.test(zone)) return null;
  const v6 = parseIp6(addr);
  return v6 === null ? null : formatIp6(v6) + (zone ? `%${zone}` : '');
}

/**
 * Extracts the nameservers of resolv.conf(5) text.
 * @param text the file's contents
 * @returns servers in file order, duplicates removed, all on port 53
 */
export function parseResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  const seen = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    let host = normalizeIp(m[1]!);
    if (host === null) continue;
    if (host === '0.0.0.0') host = '127.0.0.1';
    else if (host === '::') host = '::1';
    if (seen.has(host)) continue;
    seen.add(host);
    out.push({ host, port: DNS_PORT });
  }
  return out;
}

/**
 * Parses one `--dns-upstream` spec: `ADDR`, `ADDR:PORT`, `[IPV6]`,
 * `[IPV6]:PORT` or a bare IPv6 address (port 53). Host names are refused:
 * resolving them would need the very resolver being configured.
 * @param spec e.g. "1.1.1.1", "127.0.0.1:5353", "[2606:4700:4700::1111]:53"
 * @returns the server
 * @throws VmnetError E_USAGE with a one-line message when malformed
 */
export function parseUpstream(spec: string): Upstream {
  const bad = (why: string) =>
    new VmnetError('E_USAGE', `--dns-upstream ${JSON.stringify(spec)}: ${why} (expected ADDR[:PORT], e.g. 1.1.1.1, 127.0.0.1:5353 or [2620:fe::fe]:53)`);
  const s = spec.trim();
  let addr: string;
  let portText: string | null = null;
  const br = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (br) {
    addr = br[1]!;
    portText = br[2] ?? null;
    if (parseIp4(addr) !== -1) throw bad('brackets are for IPv6 addresses');
  } else if ((s.match(/:/g) ?? []).length === 1) {
    const c = s.indexOf(':');
    addr = s.slice(0, c);
    portText = s.slice(c + 1);
  } else {
    addr = s;
  }
  const host = normalizeIp(addr);
  if (host === null) throw bad(addr === '' ? 'missing address' : `"${addr}" is not an IP address`);
  let port = DNS_PORT;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw bad(`"${portText}" is not a port (1-65535)`);
    port = Number(portText);
  }
  return { host, port };
}

/**
 * A fixed server list (from `--dns-upstream`).
 * @param servers used as given, in order
 */
export function fixedUpstreams(servers: readonly Upstream[]): UpstreamSource {
  const list = servers.map((s) => ({ ...s }));
  return { servers: () => list };
}

/** Options of {@link ResolvConfWatcher}. */
export interface ResolvConfWatcherOptions {
  /** Use fs.watch (default true); the per-call stat check works without it. */
  watch?: boolean | undefined;
  /** Called after the server list changed. */
  onChange?: ((servers: readonly Upstream[]) => void) | undefined;
  logger?: DnsLogger | null | undefined;
}

/**
 * Follows a resolv.conf file; see the module comment. Call {@link close}
 * when done (the fs watchers are unref'd, so a forgotten one does not keep
 * the process alive).
 */
export class ResolvConfWatcher implements UpstreamSource {
  /** The watched file. */
  readonly path: string;
  private list: Upstream[] = [];
  private identity = '';
  private readonly watchers: fs.FSWatcher[] = [];
  private readonly onChange: ((servers: readonly Upstream[]) => void) | null;
  private readonly logger: DnsLogger | null;
  private missingLogged = false;
  private closed = false;

  /**
   * Reads the file at once (synchronously) and starts watching.
   * @param file default /etc/resolv.conf
   */
  constructor(file = '/etc/resolv.conf', opts: ResolvConfWatcherOptions = {}) {
    this.path = path.resolve(file);
    this.onChange = opts.onChange ?? null;
    this.logger = opts.logger ?? null;
    this.check();
    if (opts.watch ?? true) {
      const dirs = new Map<string, Set<string>>();
      const addDir = (p: string) => {
        const d = path.dirname(p);
        const names = dirs.get(d) ?? new Set<string>();
        names.add(path.basename(p));
        dirs.set(d, names);
      };
      addDir(this.path);
      try {
        const real = fs.realpathSync(this.path);
        if (real !== this.path) addDir(real);
      } catch {
        // file missing for now: the directory watch will see it appear
      }
      for (const [dir, names] of dirs) this.watchDir(dir, names);
    }
  }

  /**
   * The current servers. Costs one `stat` (and a re-read when the file
   * changed), which catches changes fs.watch missed.
   */
  servers(): readonly Upstream[] {
    if (!this.closed) this.check();
    return this.list;
  }

  /** Stops watching; {@link servers} then returns the last list. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers.splice(0)) w.close();
  }

  private watchDir(dir: string, names: Set<string>): void {
    try {
      const w = fs.watch(dir, { persistent: false }, (_event, filename) => {
        if (filename === null || names.has(filename.toString())) this.check();
      });
      w.on('error', (e) => {
        this.logger?.debug(`dns: watching ${dir} failed (${(e as NodeJS.ErrnoException).code ?? e.message}); using per-query checks`);
        w.close();
      });
      w.unref();
      this.watchers.push(w);
    } catch (e) {
      this.logger?.debug(`dns: cannot watch ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}); using per-query checks`);
    }
  }

  /** Re-reads the file when its identity changed. */
  private check(): void {
    let st: fs.BigIntStats | undefined;
    try {
      st = fs.statSync(this.path, { bigint: true, throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (!st) {
      if (!this.missingLogged) this.logger?.warn(`dns: ${this.path} is missing; keeping ${this.list.length} known server(s)`);
      this.missingLogged = true;
      this.identity = '';
      return;
    }
    this.missingLogged = false;
    const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    if (id === this.identity) return;
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (e) {
      this.logger?.warn(`dns: cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      return;
    }
    this.identity = id;
    const next = parseResolvConf(text);
    const same = next.length === this.list.length && next.every((s, i) => s.host === this.list[i]!.host && s.port === this.list[i]!.port);
    if (same) return;
    this.list = next;
    this.logger?.debug(`dns: upstream servers from ${this.path}: ${next.map(formatUpstream).join(', ') || '(none)'}`);
    this.onChange?.(next);
  }
}
