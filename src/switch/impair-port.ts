/**
 * Theory of operation: link faults on one stream port of a running switch
 * (server.ts), the I/O edge of impair.ts: it owns one {@link Impairment} per
 * direction, reads the clock and runs the timer that lets held frames go.
 *
 *   VM ── StreamPort ──ingress──▶ [Impairment in]  ──▶ switch engine
 *   VM ◀── StreamPort ◀─egress─── [Impairment out] ◀── switch engine
 *
 * Egress (the switch to the VM, where netem sits on an interface) is hooked
 * in the engine: a port with an egress hook gets its frames through the
 * hook instead of its sink (switch.ts, "Link faults"); the hook offers them
 * to the egress Impairment, which sends them to the StreamPort at once or
 * later. Ingress (the VM to the switch) is hooked by swapping the
 * StreamPort's onFrame: frames go to the ingress Impairment and from there
 * into the engine, as if the VM had sent them then.
 *
 * The fast path stays as it was. A port that never had faults has no hook
 * (the engine tests one field per egress frame) and its own onFrame. Hooks
 * are installed when a direction gets a setting that does something, and
 * removed once its settings are back to a perfect link and nothing is held.
 *
 * Held frames leave from one unref'd timer per port, armed for the earliest
 * due frame of either direction; each firing sends everything due by then
 * (impair.ts keeps the rate from the link's own clock, so a late timer
 * batches frames without lowering the rate). A frame that leaves for a port
 * whose StreamPort is congested is dropped and counted (`congested`), as the
 * engine drops frames for a congested port. Backpressure is not passed
 * through the faults: an in-process sender (the gateway) is never told to
 * hold back by an impaired port, it sees loss instead, as over a real
 * rate-limited link.
 */
import { performance } from 'node:perf_hooks';
import { checkImpairSettings, type LinkPatch } from '../config/link.js';
import { Impairment, isPerfect, newImpairCounters, PERFECT, type ImpairCounters, type ImpairSettings } from './impair.js';
import type { Switch } from './switch.js';
import type { SwitchPort } from './types.js';

/** One direction of a port's link, as snapshots show it. */
export interface LinkDirectionSnapshot {
  settings: ImpairSettings;
  counters: ImpairCounters;
  /** Frames held now. */
  queued: number;
}

/** A port's link faults, both ways. */
export interface LinkSnapshot {
  /** From the switch to the port's peer (the VM). */
  egress: LinkDirectionSnapshot;
  /** From the peer into the switch. */
  ingress: LinkDirectionSnapshot;
}

/** What the driver needs of the stream port. */
export interface ImpairableSink {
  sendFrame(buf: Uint8Array, off: number, len: number): unknown;
  isCongested(): boolean;
  onFrame: (buf: Uint8Array, view: DataView, off: number, len: number) => void;
}

/** Link faults on one stream port. See Theory of operation. */
export class ImpairedPort {
  readonly #sw: Switch;
  readonly #port: SwitchPort;
  readonly #sink: ImpairableSink;
  /** The port's own onFrame (straight into the engine). */
  readonly #direct: ImpairableSink['onFrame'];
  readonly #now: () => number;
  #out: Impairment | null = null;
  #in: Impairment | null = null;
  /** Settings kept while a direction has no Impairment (seed, limit, down). */
  #outSettings: ImpairSettings = { ...PERFECT };
  #inSettings: ImpairSettings = { ...PERFECT };
  /** Counters of a direction whose Impairment was let go (so show keeps them). */
  #outLast = newImpairCounters();
  #inLast = newImpairCounters();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #closed = false;

  readonly #deliverOut = (buf: Uint8Array, _view: DataView, off: number, len: number): void => {
    const c = this.#out!.counters;
    try {
      if (this.#sink.isCongested()) {
        c.congested++;
        return;
      }
      this.#sink.sendFrame(buf, off, len);
    } catch {
      this.#port.counters.txErrors++;
    }
  };

  readonly #deliverIn = (buf: Uint8Array, view: DataView, off: number, len: number): void => {
    this.#sw.input(this.#port, buf, view, off, len);
  };

  readonly #egressHook = (buf: Uint8Array, view: DataView, off: number, len: number): void => {
    this.#out!.offer(buf, view, off, len, this.#now(), this.#deliverOut);
    this.#arm();
  };

  readonly #ingressHook = (buf: Uint8Array, view: DataView, off: number, len: number): void => {
    this.#in!.offer(buf, view, off, len, this.#now(), this.#deliverIn);
    this.#arm();
  };

  /**
   * @param direct the port's onFrame without faults (what it is given back)
   * @param now monotonic ms; default performance.now
   */
  constructor(sw: Switch, port: SwitchPort, sink: ImpairableSink, direct: ImpairableSink['onFrame'], now: () => number = () => performance.now()) {
    this.#sw = sw;
    this.#port = port;
    this.#sink = sink;
    this.#direct = direct;
    this.#now = now;
    this.#outSettings.seed = this.#inSettings.seed = (Math.random() * 0x100000000) >>> 0;
  }

  /**
   * Applies a patch (config/link.ts): `down`/`up` to both directions, other
   * settings to `patch.dir`.
   * @throws VmnetError E_USAGE when the resulting settings do not go together
   */
  apply(patch: LinkPatch): void {
    const next = (cur: ImpairSettings, faults: boolean): ImpairSettings => {
      const base = patch.clear ? { ...PERFECT, seed: cur.seed, limit: cur.limit } : { ...cur };
      const { down, ...rest } = patch.set;
      return { ...base, ...(faults ? rest : {}), ...(down !== undefined ? { down } : {}) };
    };
    const out = next(this.#outSettings, patch.dir !== 'ingress');
    const inn = next(this.#inSettings, patch.dir !== 'egress');
    checkImpairSettings(out);
    checkImpairSettings(inn);
    const reseed = patch.set.seed !== undefined;
    this.#outSettings = out;
    this.#inSettings = inn;
    this.#out = this.#configure(this.#out, out, reseed && patch.dir !== 'ingress', this.#outLast);
    this.#in = this.#configure(this.#in, inn, reseed && patch.dir !== 'egress', this.#inLast);
    this.#hooks();
  }

  /** The link's state in both directions. */
  snapshot(): LinkSnapshot {
    const dir = (imp: Impairment | null, s: ImpairSettings, last: ImpairCounters): LinkDirectionSnapshot => ({
      settings: { ...s },
      counters: { ...(imp?.counters ?? last) },
      queued: imp?.queued ?? 0,
    });
    return { egress: dir(this.#out, this.#outSettings, this.#outLast), ingress: dir(this.#in, this.#inSettings, this.#inLast) };
  }

  /** True while anything is set or held (the port is not a perfect link). */
  get active(): boolean {
    return this.#out !== null || this.#in !== null;
  }

  /** Stops the timer and drops what is held (the port is gone). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#out = this.#in = null;
    this.#hooks();
  }

  /** A direction's Impairment for settings `s`: made when needed (carrying on the counters `last`), else updated. */
  #configure(imp: Impairment | null, s: ImpairSettings, reseed: boolean, last: ImpairCounters): Impairment | null {
    if (imp === null) {
      if (isPerfect(s)) return null;
      const fresh = new Impairment(this.#sw.maxFrame, s);
      Object.assign(fresh.counters, last);
      return fresh;
    }
    imp.configure(s, reseed);
    return imp;
  }

  /** Installs or removes the hooks to match what is set and held. */
  #hooks(): void {
    if (this.#out !== null && isPerfect(this.#outSettings) && this.#out.queued === 0) {
      this.#outLast = { ...this.#out.counters };
      this.#out = null;
    }
    if (this.#in !== null && isPerfect(this.#inSettings) && this.#in.queued === 0) {
      this.#inLast = { ...this.#in.counters };
      this.#in = null;
    }
    this.#sw.setEgressHook(this.#port, this.#out === null || this.#closed ? null : this.#egressHook);
    this.#sink.onFrame = this.#in === null || this.#closed ? this.#direct : this.#ingressHook;
  }

  #arm(): void {
    if (this.#closed) return;
    const due = Math.min(this.#out?.nextDue() ?? Infinity, this.#in?.nextDue() ?? Infinity);
    if (due === Infinity || (this.#timer !== null && due >= this.#timerAt)) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = due;
    this.#timer = setTimeout(this.#fire, Math.max(0, due - this.#now()));
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#now();
    this.#out?.poll(now, this.#deliverOut);
    this.#in?.poll(now, this.#deliverIn);
    this.#hooks();
    this.#arm();
  };
}
