/**
 * Theory of operation: the host's own IPv4 addresses, for `--no-host`
 * (gateway.ts refuses NAT to them). Read from os.networkInterfaces() at
 * start and again on every `refresh()` (the gateway server calls it once a
 * second, with its sweep: Node has no event for address changes, so an
 * address added to the host is refused at most about a second later). The
 * set is replaced, never edited, so a reader holds a consistent one.
 */
import { networkInterfaces } from 'node:os';
import { parseIp4, type Ip4 } from '../wire/addr.js';

export class HostAddresses {
  #current: ReadonlySet<Ip4> = new Set();

  constructor(private readonly read: () => ReturnType<typeof networkInterfaces> = networkInterfaces) {
    this.refresh();
  }

  /** The addresses as last read. */
  current(): ReadonlySet<Ip4> {
    return this.#current;
  }

  /** Reads the interfaces again. */
  refresh(): void {
    const next = new Set<Ip4>();
    for (const list of Object.values(this.read())) {
      for (const a of list ?? []) {
        if (a.family !== 'IPv4' && (a.family as unknown) !== 4) continue;
        const ip = parseIp4(a.address);
        if (ip !== -1) next.add(ip);
      }
    }
    this.#current = next;
  }
}
