/**
 * Theory of operation: binding the host side of a port forward, with the
 * errors a user can act on. EADDRINUSE names the port; EACCES on a port
 * below the kernel's unprivileged limit names the sysctl that sets it
 * (`net.ipv4.ip_unprivileged_port_start`, read from /proc when available);
 * EADDRNOTAVAIL says the bind address is not one of this host's.
 */
import { readFileSync } from 'node:fs';
import { VmnetError } from '../../errors.js';
import { formatForward, type ForwardSpec } from '../../config/forward.js';

/** The lowest port an unprivileged user may bind (Linux sysctl; 1024 when unknown). */
export function unprivilegedPortStart(): number {
  try {
    // 0 is a real value (every port is unprivileged), not "unknown".
    const text = readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Turns a bind failure into a VmnetError the CLI prints as one line.
 * @param err the error from listen()/bind()
 * @param spec the forward being bound
 */
export function bindError(err: NodeJS.ErrnoException, spec: ForwardSpec): VmnetError {
  const where = `${spec.bindAddress}:${spec.hostPort}/${spec.proto}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new VmnetError('E_PORT_IN_USE', `cannot forward ${formatForward(spec)}: host port ${where} is already in use; pick another host port`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new VmnetError(
        'E_PORT_PRIVILEGED',
        `cannot forward ${formatForward(spec)}: port ${spec.hostPort} is privileged (below net.ipv4.ip_unprivileged_port_start = ${unprivilegedPortStart()}); use a higher host port or lower that sysctl`,
        { cause: err },
      );
    case 'EADDRNOTAVAIL':
      return new VmnetError('E_USAGE', `cannot forward ${formatForward(spec)}: ${spec.bindAddress} is not an address of this host`, { cause: err });
    default:
      return new VmnetError('E_USAGE', `cannot forward ${formatForward(spec)}: ${err.code ?? err.message}`, { cause: err });
  }
}
