/**
 * Theory of operation: the guest names a gateway answers (at its DNS, for
 * `NAME` and `NAME.<domain>`) and port forwards resolve (`guest`), from two
 * sources in this order:
 *  1. vmnet names: the name vmnet gave a VM, registered with the VM's MAC
 *     by whoever started it (`vmnet run` for its own in-process gateway, the
 *     launcher through the switch daemon for a VM on a switch). The name
 *     resolves to that MAC's bound DHCP lease, else to the address the
 *     gateway sees the link holding that MAC use (a static guest), else to
 *     nothing: the name exists with no address (DNS NODATA) and is never
 *     passed on to the DHCP names below. So a guest cannot take a vmnet name
 *     by sending it as its DHCP host name, not even while the VM is between
 *     leases or stopped; vmnet names always win.
 *  2. DHCP host names (option 12), through the DHCP server's own table,
 *     where a name stays with the first client that sent it (dhcp-server.ts,
 *     "Host names").
 * Names are DNS labels, compared without case; a trailing dot and the
 * gateway's domain are ignored. A vmnet name is registered for one MAC at a
 * time (registering it again moves it; a MAC has one name). Sans-IO.
 */
import { VmnetError } from '../errors.js';
import { formatMac, parseMac, type Ip4 } from '../wire/addr.js';

export interface GuestNamesDeps {
  /** The address the guest with this MAC ("52:54:00:…") has now, or null. */
  addressOf(mac: string): Ip4 | null;
  /** The DHCP host name lookup (a bare, lower-case label). */
  dhcpLookup(label: string): Ip4 | null;
  /** The gateway's DNS domain, e.g. "vmnet.internal". */
  domain: string;
}

/** One vmnet name, as {@link GuestNames.list} reports it. */
export interface VmName {
  name: string;
  mac: string;
  ip: Ip4 | null;
}

/** A DNS label: what a vmnet name must be to be answered. */
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** True when `name` can be a vmnet name (a DNS label: letters, digits, inner dashes). */
export const isDnsLabel = (name: string): boolean => LABEL_RE.test(name);

export class GuestNames {
  readonly #macByName = new Map<string, string>();
  readonly #nameByMac = new Map<string, string>();
  readonly #suffix: string;

  constructor(private readonly deps: GuestNamesDeps) {
    this.#suffix = '.' + deps.domain.toLowerCase().replace(/\.+$/, '');
  }

  /**
   * Registers a vmnet name for a MAC (moving it from any other MAC).
   * @throws VmnetError E_USAGE for a bad MAC or a name that is not a DNS label
   */
  set(mac: string, name: string): void {
    const m = parseMac(mac);
    if (m === null) throw new VmnetError('E_USAGE', `bad MAC address ${JSON.stringify(mac)}`);
    if (!isDnsLabel(name)) throw new VmnetError('E_USAGE', `bad VM name ${JSON.stringify(name)} for DNS: use letters, digits and inner dashes`);
    const key = formatMac(m);
    const n = name.toLowerCase();
    const oldMac = this.#macByName.get(n);
    if (oldMac !== undefined) this.#nameByMac.delete(oldMac);
    const oldName = this.#nameByMac.get(key);
    if (oldName !== undefined) this.#macByName.delete(oldName);
    this.#macByName.set(n, key);
    this.#nameByMac.set(key, n);
  }

  /** Forgets the vmnet name of a MAC. */
  remove(mac: string): void {
    const m = parseMac(mac);
    if (m === null) return;
    const key = formatMac(m);
    const n = this.#nameByMac.get(key);
    if (n !== undefined) this.#macByName.delete(n);
    this.#nameByMac.delete(key);
  }

  /**
   * What the DNS answers for a label: the address, [] for a vmnet name with
   * no address now (NODATA, never a DHCP name), null when no guest has it.
   */
  resolve(name: string): Ip4[] | null {
    const n = this.#bare(name);
    const mac = this.#macByName.get(n);
    if (mac !== undefined) {
      const ip = this.deps.addressOf(mac);
      return ip === null ? [] : [ip];
    }
    const ip = this.deps.dhcpLookup(n);
    return ip === null ? null : [ip];
  }

  /** The address `name` resolves to, or null (port forwards, probes). */
  lookup(name: string): Ip4 | null {
    return this.resolve(name)?.[0] ?? null;
  }

  /** The vmnet names with their current addresses. */
  list(): VmName[] {
    return [...this.#nameByMac].map(([mac, name]) => ({ name, mac, ip: this.deps.addressOf(mac) }));
  }

  #bare(name: string): string {
    let n = name.toLowerCase().replace(/\.+$/, '');
    if (n.endsWith(this.#suffix)) n = n.slice(0, -this.#suffix.length);
    return n;
  }
}
