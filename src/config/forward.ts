/**
 * Theory of operation: port-forward specs in the syntax docker and podman
 * users know, `[BIND:]HOSTPORT:GUESTPORT[/tcp|/udp]`. The bind address
 * defaults to 127.0.0.1 (safer than QEMU's hostfwd, which binds every
 * interface); an IPv6 bind address is written in brackets. Parsing is pure
 * and throws a one-line usage error.
 */
import { isIP } from 'node:net';
import { VmnetError } from '../errors.js';

export interface ForwardSpec {
  proto: 'tcp' | 'udp';
  bindAddress: string;
  hostPort: number;
  guestPort: number;
  /**
   * The guest to forward to: a VM name (resolved at the gateway to its
   * lease) or an IPv4 address; for TCP also an IPv6 address of the guest,
   * which the gateway then reaches over IPv6. Omitted: the gateway's
   * primary guest (over IPv4).
   * parseForward never sets it.
   */
  guest?: string;
}

function port(text: string, spec: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new VmnetError('E_USAGE', `bad --forward ${spec}: ${what} port must be 1-65535 (format [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp])`);
  }
  return Number(text);
}

/**
 * Parses one --forward value.
 * @param spec e.g. "2222:22", "0.0.0.0:8080:80/tcp", "[::1]:5353:53/udp"
 * @throws VmnetError E_USAGE naming the problem
 */
export function parseForward(spec: string): ForwardSpec {
  const m = /^(?:(\[[^\]]*\]|[^:/]+):)?([^:/]+):([^:/]+)(?:\/(\w+))?$/.exec(spec.trim());
  if (!m) throw new VmnetError('E_USAGE', `bad --forward ${spec}: expected [BIND:]HOSTPORT:GUESTPORT[/tcp|/udp], e.g. 2222:22`);
  const [, bindRaw, hostText, guestText, protoText] = m;
  const proto = (protoText ?? 'tcp').toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp') throw new VmnetError('E_USAGE', `bad --forward ${spec}: protocol must be tcp or udp`);
  const bindAddress = bindRaw === undefined ? '127.0.0.1' : bindRaw.replace(/^\[(.*)\]$/, '$1');
  if (!isIP(bindAddress)) throw new VmnetError('E_USAGE', `bad --forward ${spec}: bind address ${bindAddress} is not an IP address`);
  return { proto, bindAddress, hostPort: port(hostText!, spec, 'host'), guestPort: port(guestText!, spec, 'guest') };
}

/** Formats a forward back into its spec text. */
export function formatForward(f: ForwardSpec): string {
  const bind = f.bindAddress.includes(':') ? `[${f.bindAddress}]` : f.bindAddress;
  return `${bind}:${f.hostPort}:${f.guestPort}/${f.proto}`;
}
