/**
 * Typed errors with stable codes (undici style). The library throws these;
 * only the CLI edge turns them into one-line messages and exit codes.
 */

export type VmnetErrorCode =
  | 'E_USAGE' // bad flag or argument value
  | 'E_NO_FILE' // a named file does not exist or cannot be read
  | 'E_BAD_IMAGE' // not a disk image QEMU can boot
  | 'E_NO_QEMU' // qemu-system binary not found
  | 'E_QEMU_FAILED' // QEMU exited with an error
  | 'E_NO_GUEST' // the bundled test guest has not been built
  | 'E_NO_TOOL' // a host tool or package a step needs is missing (the message names the package)
  | 'E_GUEST_BUILD' // building the test guest failed (the message has the failing command's words)
  | 'E_PORT_IN_USE' // a host port to bind is taken
  | 'E_PORT_PRIVILEGED' // a host port below net.ipv4.ip_unprivileged_port_start
  | 'E_TIMEOUT' // something did not happen in time
  | 'E_GUEST_PROTOCOL' // the guest console did not speak the expected protocol
  | 'E_QMP' // QEMU's monitor (QMP) answered with an error or broke the protocol
  | 'E_CLOSED' // the object was used after close
  | 'E_NAME_IN_USE' // a VM of that name is running
  | 'E_INTERRUPTED' // a signal (or an abort) cancelled a start, nothing was left running; or a DNS query was cancelled
  | 'E_NO_VM' // no running VM of that name
  | 'E_DOWNLOAD' // an image URL could not be downloaded (no answer, HTTP error, cut off)
  | 'E_DIGEST' // a downloaded image is not the one --digest names
  | 'E_UNREACHABLE' // the guest could not be reached over SSH (vmnet exec exits 125)
  | 'E_COPY'; // scp could not copy (a missing file, no permission in the guest)

export class VmnetError extends Error {
  readonly code: VmnetErrorCode;
  /** True for mistakes in the user's input: the CLI exits 2 for these. */
  readonly usage: boolean;
  constructor(code: VmnetErrorCode, message: string, options?: { cause?: unknown; usage?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VmnetError';
    this.code = code;
    this.usage = options?.usage ?? (code === 'E_USAGE' || code === 'E_NO_FILE' || code === 'E_BAD_IMAGE' || code === 'E_PORT_IN_USE' || code === 'E_PORT_PRIVILEGED' || code === 'E_NAME_IN_USE' || code === 'E_DOWNLOAD' || code === 'E_DIGEST');
  }
}

export const isVmnetError = (e: unknown): e is VmnetError => e instanceof VmnetError;
