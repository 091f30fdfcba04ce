/**
 * Theory of operation: what the gateway saw of a booting VM, for the MACs a
 * launcher asks it to watch: when the first frame with that source MAC came
 * (the guest's network driver is up), and which address its DHCP lease
 * binds (RFC 2131 ACK) and since when (a renewal, or a guest asking again for
 * the same address after a network restart, keeps the first time). Together with the seed's fetch record
 * (services/metadata/seeds.ts) and a probe of port 22 this tells `vmnet wait
 * --ssh` where a boot stands.
 *
 * Only watched MACs are recorded (at most MAX_WATCHED: a launcher watches its
 * VM's NICs), so guests cannot grow the table; while no watched MAC lacks its
 * first frame, the per-frame check is one integer comparison. Sans-IO: the
 * caller passes wall-clock ms.
 */
import { formatIp4, macKey, parseMac, type Ip4 } from '../wire/addr.js';

export interface GuestSeen {
  /** Wall-clock ms of the first frame from the MAC, or null. */
  firstFrameAt: number | null;
  /** Its lease: the address bound last, and when it was first bound to it (renewals and re-requests of the same address do not move the time), or null. */
  lease: { at: number; address: string } | null;
}

/** MACs watched at once at most. */
export const MAX_WATCHED = 1024;

export class GuestWatch {
  readonly #seen = new Map<number, GuestSeen>();
  /** Watched MACs without a first frame yet. */
  #waiting = 0;

  /** True while some watched MAC has sent nothing yet (the data path checks this first). */
  get waiting(): boolean {
    return this.#waiting > 0;
  }

  /**
   * Starts watching `mac` (again from nothing).
   * @returns false when MAX_WATCHED are watched already or the MAC is malformed
   */
  watch(mac: string): boolean {
    const m = parseMac(mac);
    if (m === null) return false;
    const key = macKey(m);
    this.unwatchKey(key);
    if (this.#seen.size >= MAX_WATCHED) return false;
    this.#seen.set(key, { firstFrameAt: null, lease: null });
    this.#waiting++;
    return true;
  }

  /** Stops watching `mac`. */
  unwatch(mac: string): void {
    const m = parseMac(mac);
    if (m !== null) this.unwatchKey(macKey(m));
  }

  private unwatchKey(key: number): void {
    const s = this.#seen.get(key);
    if (s === undefined) return;
    if (s.firstFrameAt === null) this.#waiting--;
    this.#seen.delete(key);
  }

  /** A frame came from `src` (its MAC at offset `o`). */
  frame(src: Uint8Array, now: number, o = 0): void {
    const s = this.#seen.get(macKey(src, o));
    if (s === undefined || s.firstFrameAt !== null) return;
    s.firstFrameAt = now;
    this.#waiting--;
  }

  /** A lease on `ip` was bound to `mac` (an ACK: a new lease, a renewal, or the same address asked for again). */
  lease(mac: Uint8Array, ip: Ip4, now: number): void {
    const s = this.#seen.get(macKey(mac));
    const address = formatIp4(ip);
    if (s !== undefined && s.lease?.address !== address) s.lease = { at: now, address };
  }

  /** What was seen of `mac` (a copy), or null when it is not watched. */
  seen(mac: string): GuestSeen | null {
    const m = parseMac(mac);
    const s = m === null ? undefined : this.#seen.get(macKey(m));
    return s === undefined ? null : { firstFrameAt: s.firstFrameAt, lease: s.lease && { ...s.lease } };
  }
}
