/**
 * The TAP <-> stream-socket relay (bench/relay/tap-relay.c): lets the Linux
 * kernel's own TCP/IP stack in a network namespace act as a guest of the
 * gateway, without QEMU. Frames on the socket carry QEMU's `-netdev stream`
 * framing (4-byte big-endian length, then the Ethernet frame).
 *
 * Contract used by bench/: buildTapRelay() and startTapRelay() keep these
 * signatures.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCE = join(ROOT, 'bench', 'relay', 'tap-relay.c');
const OUT_DIR = join(ROOT, 'build', 'relay');
const BINARY = join(OUT_DIR, 'tap-relay');
const STAMP = join(OUT_DIR, 'tap-relay.sha256');

let building: Promise<string> | undefined;

/**
 * Compiles the relay with `gcc -O2` into build/relay/tap-relay (cached: it is
 * rebuilt only when the source's SHA-256 changes) and returns its path.
 */
export function buildTapRelay(): Promise<string> {
  building ??= (async () => {
    const hash = createHash('sha256').update(readFileSync(SOURCE)).digest('hex');
    if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === hash) return BINARY;
    mkdirSync(OUT_DIR, { recursive: true });
    // Build to a private name and rename, so parallel test files never run a half-written binary.
    const tmp = `${BINARY}.${process.pid}.tmp`;
    try {
      await execFileP('gcc', ['-O2', '-Wall', '-o', tmp, SOURCE]);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`building ${SOURCE} failed: ${err.stderr || err.message}`);
    }
    renameSync(tmp, BINARY);
    writeFileSync(STAMP, `${hash}\n`);
    return BINARY;
  })();
  building.catch(() => (building = undefined));
  return building;
}

export interface TapRelayOptions {
  /** Namespace (name, as `ip netns` knows it) holding the tap device. */
  netns: string;
  /** Tap device name; it should already exist (`ip tuntap add … mode tap`). */
  tap: string;
  /** The gateway's unix stream socket. */
  socket: string;
  /**
   * Optional impairment inside the relay, each direction independently (for
   * kernels without sch_netem): loss and adjacent-reorder probabilities in
   * percent, the PRNG seed, and which direction (default both; 'to-tap' is
   * gateway -> guest, 'to-sock' guest -> gateway).
   */
  impair?: { lossPct?: number; reorderPct?: number; seed?: number; direction?: 'both' | 'to-tap' | 'to-sock' };
  /**
   * One socket write per frame, as QEMU's stream netdev writes (`-1`); by
   * default each poll round's frames go out in one batched write.
   */
  frameWrites?: boolean;
}

export interface TapRelay {
  readonly pid: number;
  /** Stops the relay (SIGTERM, then SIGKILL after 2 s); resolves when it exited. */
  stop(): Promise<void>;
  /** The relay's stderr so far (its closing counters line arrives on exit). */
  readonly stderr: () => string;
  /** Resolves with the exit code when the relay exits on its own or is stopped. */
  readonly exited: Promise<number | null>;
}

/**
 * Runs the relay inside `netns` (`ip netns exec NS tap-relay TAP SOCK`),
 * attached to the existing tap and connected to the socket. Resolves once the
 * relay has run for a short moment without failing (so a bad tap or socket
 * rejects here, with the relay's message).
 */
export async function startTapRelay(opts: TapRelayOptions): Promise<TapRelay> {
  const bin = await buildTapRelay();
  const args = ['netns', 'exec', opts.netns, bin, opts.tap, opts.socket];
  if (opts.impair?.lossPct) args.push('-l', String(opts.impair.lossPct));
  if (opts.impair?.reorderPct) args.push('-r', String(opts.impair.reorderPct));
  if (opts.impair?.seed !== undefined) args.push('-s', String(opts.impair.seed));
  if (opts.impair?.direction) args.push('-d', opts.impair.direction);
  if (opts.frameWrites) args.push('-1');
  const child: ChildProcess = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((res) => {
    child.once('exit', (code, sig) => res(code ?? (sig ? null : 0)));
    child.once('error', (e) => {
      err += String(e);
      res(1);
    });
  });
  // A relay that cannot open the tap or connect exits at once; wait briefly.
  const early = await Promise.race([exited.then((c) => ({ c })), new Promise<null>((r) => setTimeout(() => r(null), 150))]);
  if (early) throw new Error(`tap-relay exited (${early.c}) at start: ${err.trim()}`);
  if (child.pid === undefined) throw new Error('tap-relay did not start');
  const pid = child.pid;
  return {
    pid,
    stderr: () => err,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}
