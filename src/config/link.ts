/**
 * Theory of operation: the words of `vmnet link set VM[:NIC] ...` (and the
 * library's link settings) turned into a patch for one switch port's link
 * faults (src/switch/impair.ts), shared by the CLI and the library.
 *
 *   down | up                      the link (both directions)
 *   clear                          a perfect link again (up, no faults)
 *   delay=50ms jitter=5ms          time: ms (default), s or us
 *   loss=5% [burst=4]              loss; burst = mean loss run in frames (Gilbert-Elliott)
 *   dup=1% corrupt=0.1% reorder=5% percentages (the % is required)
 *   rate=10mbit                    bit/kbit/mbit/gbit per second, or bps/kbps/mbps/gbps
 *                                  (bytes per second, as tc(8) reads them); 0: no limit
 *   limit=1000                     most frames held for a delay or the rate
 *   seed=N                         PRNG seed (0..4294967295), for reproducible faults
 *   dir=egress|ingress|both        which way the faults apply (default egress:
 *                                  from the switch to the VM, as netem on the port)
 *
 * Every error is one line naming the word and what to write instead.
 */
import { VmnetError } from '../errors.js';
import { PERFECT, type ImpairCounters, type ImpairSettings } from '../switch/impair.js';

/** Which way faults apply: egress is from the switch out of the port (to the VM). */
export type LinkDirection = 'egress' | 'ingress' | 'both';

/** A change to a port's link: fields to set, in one or both directions. */
export interface LinkPatch {
  /** Settings to change (only these). */
  set: Partial<ImpairSettings>;
  /** Faults' direction; `down`/`up` always apply to both. */
  dir: LinkDirection;
  /** Start from a perfect link (`clear`). */
  clear: boolean;
}

const bad = (word: string, hint: string) => new VmnetError('E_USAGE', `bad link setting ${JSON.stringify(word)}: ${hint}`);

function percent(word: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(v);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= 100)) throw bad(word, 'give a percentage 0%-100%, e.g. 5% or 0.1%');
  return n / 100;
}

function millis(word: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s)?$/.exec(v);
  if (!m) throw bad(word, 'give a time such as 50ms, 1.5s or 500us');
  const n = Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'us' ? 0.001 : 1);
  if (n > 60_000) throw bad(word, 'at most 60s');
  return n;
}

const RATE_UNITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9 };

function rate(word: string, v: string): number {
  if (v === '0') return 0;
  const m = /^(\d+(?:\.\d+)?)([a-z]+)$/i.exec(v);
  const unit = m ? RATE_UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!(n >= 8_000 && n <= 1e12)) throw bad(word, 'give a rate such as 10mbit, 512kbit or 1gbit (8kbit..1000gbit; 0 for none)');
  return n;
}

function integer(word: string, v: string, lo: number, hi: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= lo && n <= hi)) throw bad(word, `give a whole number ${lo}..${hi}`);
  return n;
}

/**
 * Parses the words after `vmnet link set VM[:NIC]`.
 * @param words e.g. ['loss=5%', 'delay=50ms'] or ['down']
 * @returns the patch
 * @throws VmnetError E_USAGE (one line) for an unknown or malformed word, or none at all
 */
export function parseLinkWords(words: readonly string[]): LinkPatch {
  const p: LinkPatch = { set: {}, dir: 'egress', clear: false };
  if (words.length === 0) throw new VmnetError('E_USAGE', 'no link setting given: use down, up, clear or KEY=VALUE (loss=5% delay=50ms jitter=5ms rate=10mbit dup=1% corrupt=0.1% reorder=5% seed=N)');
  for (const w of words) {
    if (w === 'down' || w === 'up') {
      p.set.down = w === 'down';
      continue;
    }
    if (w === 'clear') {
      p.clear = true;
      continue;
    }
    const eq = w.indexOf('=');
    const key = eq > 0 ? w.slice(0, eq) : w;
    const v = eq > 0 ? w.slice(eq + 1) : '';
    switch (key) {
      case 'delay':
        p.set.delayMs = millis(w, v);
        break;
      case 'jitter':
        p.set.jitterMs = millis(w, v);
        break;
      case 'loss':
        p.set.loss = percent(w, v);
        break;
      case 'burst': {
        const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
        if (!(n >= 1 && n <= 10_000)) throw bad(w, 'give the mean loss burst in frames, 1 (independent losses) to 10000');
        p.set.lossBurst = n;
        break;
      }
      case 'dup':
        p.set.dup = percent(w, v);
        break;
      case 'corrupt':
        p.set.corrupt = percent(w, v);
        break;
      case 'reorder':
        p.set.reorder = percent(w, v);
        break;
      case 'rate':
        p.set.rateBps = rate(w, v);
        break;
      case 'limit':
        p.set.limit = integer(w, v, 1, 100_000);
        break;
      case 'seed':
        p.set.seed = integer(w, v, 0, 0xffffffff);
        break;
      case 'dir':
        if (v !== 'egress' && v !== 'ingress' && v !== 'both') throw bad(w, 'give dir=egress (to the VM), dir=ingress (from the VM) or dir=both');
        p.dir = v;
        break;
      default:
        throw bad(w, 'known settings: down, up, clear, delay=, jitter=, loss=, burst=, dup=, corrupt=, reorder=, rate=, limit=, seed=, dir=');
    }
  }
  return p;
}

/**
 * Checks one direction's settings as a whole (after a patch was applied).
 * @throws VmnetError E_USAGE, one line
 */
export function checkImpairSettings(s: ImpairSettings): void {
  if (s.reorder > 0 && s.delayMs === 0 && s.jitterMs === 0) throw new VmnetError('E_USAGE', 'reorder needs a delay (a reordered frame skips the delay others wait), as with netem: add delay=10ms');
  if (s.loss < 1 && s.lossBurst > 1 && (s.loss / s.lossBurst) / (1 - s.loss) > 1) throw new VmnetError('E_USAGE', `loss=${s.loss * 100}% cannot come in bursts of ${s.lossBurst}: lower the loss or raise burst`);
}

/**
 * Checks a patch that came as JSON (control socket, library) by its shape
 * and ranges: the same rules as the words.
 * @throws VmnetError E_USAGE
 */
export function linkPatchFromJson(raw: unknown): LinkPatch {
  const r = raw as Partial<LinkPatch> | null;
  if (typeof r !== 'object' || r === null || typeof r.set !== 'object' || r.set === null) throw new VmnetError('E_USAGE', 'bad link patch: expected {set, dir, clear}');
  const words: string[] = [];
  const s = r.set as Record<string, unknown>;
  const num = (k: string): number => {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new VmnetError('E_USAGE', `bad link patch: ${k} must be a number`);
    return v;
  };
  for (const k of Object.keys(s)) {
    switch (k) {
      case 'down':
        if (typeof s.down !== 'boolean') throw new VmnetError('E_USAGE', 'bad link patch: down must be a boolean');
        words.push(s.down ? 'down' : 'up');
        break;
      case 'delayMs':
      case 'jitterMs':
        words.push(`${k === 'delayMs' ? 'delay' : 'jitter'}=${num(k)}ms`);
        break;
      case 'loss':
      case 'dup':
      case 'corrupt':
      case 'reorder':
        words.push(`${k}=${num(k) * 100}%`);
        break;
      case 'lossBurst':
        words.push(`burst=${num(k)}`);
        break;
      case 'rateBps':
        words.push(`rate=${num(k) === 0 ? '0' : `${num(k)}bit`}`);
        break;
      case 'limit':
      case 'seed':
        words.push(`${k}=${num(k)}`);
        break;
      default:
        throw new VmnetError('E_USAGE', `bad link patch: unknown setting ${JSON.stringify(k)}`);
    }
  }
  const dir = r.dir ?? 'egress';
  if (dir !== 'egress' && dir !== 'ingress' && dir !== 'both') throw new VmnetError('E_USAGE', 'bad link patch: dir must be egress, ingress or both');
  const p = words.length > 0 ? parseLinkWords(words) : { set: {}, dir, clear: false };
  return { set: p.set, dir, clear: r.clear === true };
}

/** `delay=50ms loss=5% ...` for one direction's settings (what `link show` prints); `ok` for a perfect link. */
export function formatImpair(s: ImpairSettings): string {
  const w: string[] = [];
  if (s.down) w.push('down');
  // to the microsecond (the finest unit the words take), so a tiny value is never written as 1e-7ms, which they do not read
  if (s.delayMs > 0) w.push(`delay=${+s.delayMs.toFixed(3)}ms`);
  if (s.jitterMs > 0) w.push(`jitter=${+s.jitterMs.toFixed(3)}ms`);
  if (s.loss > 0) w.push(`loss=${+(s.loss * 100).toFixed(4)}%`);
  if (s.loss > 0 && s.lossBurst > 1) w.push(`burst=${s.lossBurst}`);
  if (s.dup > 0) w.push(`dup=${+(s.dup * 100).toFixed(4)}%`);
  if (s.corrupt > 0) w.push(`corrupt=${+(s.corrupt * 100).toFixed(4)}%`);
  if (s.reorder > 0) w.push(`reorder=${+(s.reorder * 100).toFixed(4)}%`);
  if (s.rateBps > 0) w.push(`rate=${formatRate(s.rateBps)}`);
  return w.length === 0 ? 'ok' : w.join(' ');
}

/**
 * A patch as the words that say it, in one order whatever order it was
 * written in, so that two patches meaning the same compare equal as text
 * (labs record a port's faults this way): `parseLinkWords` of the result
 * sets the same fields (`up` and a `seed`/`limit` left at their default
 * aside, which say nothing on a cleared port).
 * @returns '' for a patch that sets nothing
 */
export function formatLinkPatch(p: LinkPatch): string {
  const s = { ...PERFECT, ...p.set };
  const faults = formatImpair({ ...s, down: false });
  const w = faults === 'ok' ? [] : faults.split(' ');
  if (s.down) w.unshift('down');
  if (p.set.seed !== undefined) w.push(`seed=${s.seed}`);
  if (p.set.limit !== undefined) w.push(`limit=${s.limit}`);
  if (p.dir !== 'egress' && faults !== 'ok') w.push(`dir=${p.dir}`);
  return w.join(' ');
}

/** One direction's counters in one line, as `link show` and `status` print them. */
export function formatImpairCounters(c: ImpairCounters): string {
  return `offered ${c.offered} delivered ${c.delivered} lost ${c.lost} down ${c.down} dup ${c.duplicated} corrupt ${c.corrupted} reordered ${c.reordered} held ${c.held} queue-full ${c.queueFull} flushed ${c.flushed} congested ${c.congested}`;
}

function formatRate(bps: number): string {
  for (const [u, f] of [['gbit', 1e9], ['mbit', 1e6], ['kbit', 1e3]] as const) if (bps >= f && Number.isInteger(bps / f)) return `${bps / f}${u}`;
  return `${bps}bit`;
}
