/**
 * Theory of operation: the host names DHCP clients send (option 12, RFC 2132
 * §3.14) as a table the gateway's DNS can trust a little: a name belongs to
 * the first client that sent it, for as long as the DHCP server says that
 * client still holds it (`holds`: its binding is active, or ended less than
 * the hold time ago — dhcp-server.ts, "Host names"). A later client sending
 * a held name is refused the name (it keeps its lease); once the holder
 * lets go, the next client to send the name gets it. Names are compared
 * without case, a trailing dot and the domain suffix ignored. Pure.
 */

/** Lower case, no trailing dot. */
export const normName = (n: string): string => n.toLowerCase().replace(/\.+$/, '');

export class HostNames<B> {
  readonly #byName = new Map<string, B>();
  readonly #domain: string;

  /**
   * @param domain the DHCP domain (option 15), stripped from names; '' for none
   * @param holds whether a client still holds its name at `now`
   */
  constructor(
    domain: string,
    private readonly holds: (client: B, now: number) => boolean,
  ) {
    this.#domain = normName(domain);
  }

  /** A name as the table keys it: normalised, the domain suffix stripped. */
  key(name: string): string {
    const n = normName(name);
    const d = this.#domain;
    return d !== '' && n.endsWith('.' + d) ? n.slice(0, -d.length - 1) : n;
  }

  /** The client holding `name` (whether or not it still holds it now), or undefined. */
  holder(name: string): B | undefined {
    return this.#byName.get(this.key(name));
  }

  /**
   * `client` sent `name`, having sent `previous` before: gives up the old
   * name and takes the new one unless another client holds it.
   * @returns false when another client holds `name`
   */
  claim(client: B, previous: string | null, name: string, now: number): boolean {
    const n = this.key(name);
    if (previous !== null && this.key(previous) !== n) this.release(client, previous);
    if (n === '') return true;
    const holder = this.#byName.get(n);
    if (holder !== undefined && holder !== client && this.holds(holder, now)) return false;
    this.#byName.set(n, client);
    return true;
  }

  /** `client` is forgotten: its name is free. */
  release(client: B, name: string | null): void {
    if (name === null) return;
    const n = this.key(name);
    if (this.#byName.get(n) === client) this.#byName.delete(n);
  }
}
