/**
 * Theory of operation: a VM's QEMU command line is a pure function of its
 * spec, so `vmnet run --dry-run` and tests can print and check it without
 * starting anything. Defaults are chosen for headless use: no default
 * devices (-nodefaults), no display, the serial console on a chardev of the
 * caller's choosing, virtio-net NICs whose backend is either a vmnet stream
 * socket (QEMU ≥ 7.2 `-netdev stream`, 4-byte big-endian length framing) or,
 * where asked, QEMU's own user net.
 *
 * Extra arguments (after `--` on vmnet's command line) are appended
 * verbatim, after checkExtraArgs() refused the few that break supervision:
 * vmnet must stay QEMU's parent and must learn when the guest powers off.
 *
 * - `-daemonize`: QEMU forks and its first process exits; vmnet would take
 *   the VM for ended while it runs on unsupervised, its network gone.
 * - `-no-shutdown`, `-action shutdown=pause`: a guest power-off leaves QEMU
 *   running, paused; vmnet would serve a VM that is gone, forever.
 *
 * Allowed, because they take nothing away from vmnet: `-nographic` (with
 * -nodefaults and vmnet's own -serial it only means no display), further
 * `-serial`, `-chardev`, `-mon`, `-qmp`, `-monitor` devices (extra ports and
 * monitors of the user's; QEMU itself refuses a second `serial0` or
 * `qmp0`), `stdio` backends (QEMU's stdio is /dev/null under vmnet). A QEMU
 * option takes one value unless it is a known flag (`QEMU_FLAGS`), so a
 * refused word that is the value of another option (`-append -daemonize`)
 * is not taken for an option.
 */
import { VmnetError } from '../errors.js';
import type { Accel } from './binary.js';
import type { ImageFormat } from './image.js';

/** A port forward in QEMU user-net terms (used only by the `qemu-user` backend). */
export interface HostForward {
  proto: 'tcp' | 'udp';
  bindAddress: string;
  hostPort: number;
  guestPort: number;
}

/** Where a NIC's frames go. */
export type NicBackend =
  | { kind: 'stream'; path: string } // vmnet gateway or switch over a unix socket
  | { kind: 'qemu-user'; forwards: HostForward[] }; // QEMU's built-in libslirp

export interface NicSpec {
  mac: string;
  backend: NicBackend;
}

/** stdio: a plain pipe for programs; terminal: stdio multiplexed with the monitor (Ctrl-A x quits, Ctrl-A c switches). */
export type SerialSpec = { kind: 'stdio' } | { kind: 'terminal' } | { kind: 'file'; path: string } | { kind: 'socket'; path: string } | { kind: 'none' };

export interface QemuSpec {
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  name: string;
  drive?: { path: string; format: ImageFormat; snapshot: boolean };
  kernel?: string;
  initrd?: string;
  append?: string;
  serial: SerialSpec;
  qmpSocket?: string;
  nics: NicSpec[];
  /** The SMBIOS system serial number (type 1), e.g. cloud-init's `ds=nocloud-net;s=URL`. */
  smbiosSerial?: string;
  /** A raw disk image attached read-only after the boot disk (cloud-init's CIDATA seed). */
  seedDisk?: string;
  /** Arguments passed through verbatim after everything else. */
  extra: string[];
}

/** QEMU's chardev/netdev option values escape ',' by doubling it. */
export const escapeOption = (s: string): string => s.replace(/,/g, ',,');
const esc = escapeOption;

/**
 * Builds QEMU's argv (without the binary itself).
 * @param spec the VM
 * @returns argument vector
 */
export function qemuArgs(spec: QemuSpec): string[] {
  const a: string[] = ['-name', esc(spec.name), '-nodefaults', '-display', 'none', '-no-user-config'];
  a.push('-accel', spec.accel, '-m', `${spec.memoryMiB}M`, '-smp', String(spec.cpus));
  if (spec.accel === 'kvm' || spec.accel === 'hvf') a.push('-cpu', 'host');
  if (spec.drive) {
    a.push('-drive', `file=${esc(spec.drive.path)},format=${spec.drive.format},if=virtio${spec.drive.snapshot ? ',snapshot=on' : ''}`);
  }
  if (spec.seedDisk) a.push('-drive', `file=${esc(spec.seedDisk)},format=raw,if=virtio,readonly=on`);
  if (spec.smbiosSerial !== undefined) a.push('-smbios', `type=1,serial=${esc(spec.smbiosSerial)}`);
  if (spec.kernel) a.push('-kernel', spec.kernel);
  if (spec.initrd) a.push('-initrd', spec.initrd);
  if (spec.append !== undefined) a.push('-append', spec.append);
  switch (spec.serial.kind) {
    case 'stdio':
      a.push('-chardev', 'stdio,id=serial0,signal=off', '-serial', 'chardev:serial0');
      break;
    case 'terminal':
      a.push('-chardev', 'stdio,id=serial0,mux=on,signal=off', '-serial', 'chardev:serial0', '-mon', 'chardev=serial0,mode=readline');
      break;
    case 'file':
      a.push('-chardev', `file,id=serial0,path=${esc(spec.serial.path)}`, '-serial', 'chardev:serial0');
      break;
    case 'socket':
      a.push('-chardev', `socket,id=serial0,path=${esc(spec.serial.path)},server=on,wait=off`, '-serial', 'chardev:serial0');
      break;
    case 'none':
      break;
  }
  if (spec.qmpSocket) a.push('-chardev', `socket,id=qmp0,path=${esc(spec.qmpSocket)},server=on,wait=off`, '-mon', 'chardev=qmp0,mode=control');
  spec.nics.forEach((nic, i) => {
    const id = `net${i}`;
    if (nic.backend.kind === 'stream') {
      a.push('-netdev', `stream,id=${id},server=off,addr.type=unix,addr.path=${esc(nic.backend.path)}`);
    } else {
      const fwd = nic.backend.forwards.map((f) => `,hostfwd=${f.proto}:${f.bindAddress}:${f.hostPort}-:${f.guestPort}`).join('');
      a.push('-netdev', `user,id=${id}${fwd}`);
    }
    a.push('-device', `virtio-net-pci,netdev=${id},mac=${nic.mac}`);
  });
  a.push(...spec.extra);
  return a;
}

/**
 * A stable, locally administered unicast MAC derived from a VM name and NIC
 * index (52:54:00 is QEMU's prefix; the rest is an FNV-1a hash).
 */
export function macFromName(name: string, index = 0): string {
  let h = 0x811c9dc5;
  for (const ch of `${name}#${index}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const b = [0x52, 0x54, 0x00, (h >>> 16) & 255, (h >>> 8) & 255, h & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Quotes an argv for display as a shell command line. */
export function shellQuote(argv: string[]): string {
  return argv.map((s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** QEMU options that take no value (qemu-options.hx, QEMU 7.2); every other option takes one. */
const QEMU_FLAGS = new Set([
  'S', 's', 'daemonize', 'no-shutdown', 'no-reboot', 'nographic', 'snapshot', 'enable-kvm', 'nodefaults', 'no-user-config',
  'full-screen', 'no-quit', 'no-acpi', 'no-hpet', 'no-fd-bootchk', 'win2k-hack', 'old-param', 'only-migratable', 'preconfig',
  'xen-attach', 'semihosting', 'enable-sync-profile', 'alt-grab', 'ctrl-grab', 'no-frame', 'curses', 'portrait', 'h', 'help', 'version',
]);

/**
 * Refuses extra QEMU arguments that would take QEMU away from vmnet's
 * supervision (see the theory of operation).
 * @param extra arguments to append to QEMU's command line
 * @throws VmnetError E_USAGE naming the option and why
 */
export function checkExtraArgs(extra: string[]): void {
  for (let i = 0; i < extra.length; i++) {
    const arg = extra[i]!;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') continue; // a bare value (QEMU's legacy disk image)
    const name = arg.replace(/^--?/, '');
    if (name === 'daemonize') throw new VmnetError('E_USAGE', `${arg}: QEMU would leave vmnet (it forks and exits), so vmnet could neither serve nor stop the VM; drop it (use vmnet run --detach)`);
    if (name === 'no-shutdown') throw new VmnetError('E_USAGE', `${arg}: a guest power-off would leave QEMU paused and vmnet serving a VM that is gone; drop it`);
    if (name === 'action' && /(^|,)shutdown=pause(,|$)/.test(extra[i + 1] ?? '')) {
      throw new VmnetError('E_USAGE', `-action shutdown=pause: a guest power-off would leave QEMU paused and vmnet serving a VM that is gone; drop it`);
    }
    if (!QEMU_FLAGS.has(name)) i++; // skip its value
  }
}
