/**
 * Theory of operation: the host's own IPv4 and IPv6 addresses, for
 * `--no-host` (gateway.ts and gateway6.ts refuse NAT to them; IPv6 ones as
 * RFC 5952 text, without a zone). Read from os.networkInterfaces() at
 * start and again on every `refresh()` (the gateway server calls it once a
 * second, with its sweep: Node has no event for address changes, so an
 * address added to the host is refused at most about a second later). The
 * set is replaced, never edited, so a reader holds a consistent one.
 */
import { networkInterfaces } from 'node:os';
import { formatIp6, parseIp4, parseIp6, type Ip4 } from '../wire/addr.js';

export class HostAddresses {
  #current: ReadonlySet<Ip4> = new Set();
  #current6: ReadonlySet<string> = new Set();

  constructor(private readonly read: () => ReturnType<typeof networkInterfaces> = networkInterfaces) {
    this.refresh();
  }

  /** The addresses as last read. */
  current(): ReadonlySet<Ip4> {
    return this.#current;
  }

  /** The IPv6 addresses as last read (RFC 5952 text). */
  current6(): ReadonlySet<string> {
    return this.#current6;
  }

  /** Reads the interfaces again. */
  refresh(): void {
    const next = new Set<Ip4>();
    const next6 = new Set<string>();
    for (const list of Object.values(this.read())) {
      for (const a of list ?? []) {
        if (a.family === 'IPv4' || (a.family as unknown) === 4) {
          const ip = parseIp4(a.address);
          if (ip !== -1) next.add(ip);
        } else {
          const ip6 = parseIp6(a.address.replace(/%.*$/, ''));
          if (ip6 !== null) next6.add(formatIp6(ip6));
        }
      }
    }
    this.#current = next;
    this.#current6 = next6;
  }
}
