/**
 * Theory of operation: a running VM as the library hands it out (launch.ts
 * starts it). The Vm owns QEMU's process, its QMP connection, the serial
 * hub, the control server and (for a `user` NIC) the in-process gateway.
 *
 * Events (`vm.on('event', e)`, NDJSON in `vmnet run --json`): download
 * (launch only, for an image URL: images/download.ts), accel-fallback
 * (launch only: KVM failed at start, TCG used), started, lease (a DHCP ACK
 * binding a new address to one of the VM's MACs), forward (added/removed),
 * ready (waitForPort saw the guest answer the gateway's own SYN), exited.
 * `vm.on('exit', exit)` fires once with the same status.
 *
 * Stop (stop()): ACPI power button through QMP (`system_powerdown`), wait up
 * to the timeout for the guest to power off, then QMP `quit`, then SIGKILL.
 * `force` skips the button; a second stop() with force escalates a stop in
 * progress. Whatever ends QEMU (guest power-off, stop, crash), the same
 * cleanup runs: console and QMP closed, gateway closed (its host ports
 * freed), the VM directory removed; only then does `exited` resolve, so a
 * caller that awaited it finds no socket, no directory and no port left.
 */
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { VmnetError } from '../errors.js';
import { formatForward, parseForward, type ForwardSpec } from '../config/forward.js';
import type { RunningGateway } from '../gateway/server.js';
import type { QemuProcess } from '../qemu/process.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp.js';
import { formatIp4 } from '../wire/addr.js';
import { LeaseState } from '../services/dhcp-server.js';
import type { LaunchPlan } from './plan.js';
import type { DownloadEvent } from '../images/download.js';
import type { VmState } from './state.js';
import type { SerialHub } from './serial.js';
import type { ControlServer, VmStatus } from './control.js';
import type { BootStatus } from './boot-stage.js';
import { sshArgs, unreachableWhy, type SshTarget } from './ssh.js';
import { copy, execCollect, waitForSsh, type ExecOptions, type ExecResult, type WaitForSshOptions } from './guest-session.js';

/** How QEMU ended. */
export interface VmExit {
  code: number | null;
  signal: string | null;
  /** poweroff: the guest (or someone else) shut QEMU down cleanly; stopped: stop() did; crashed: QEMU failed. */
  reason: 'poweroff' | 'stopped' | 'crashed';
  /** For reason 'stopped': acpi (the guest obeyed the power button), quit (QMP quit), kill (SIGKILL). */
  stop?: 'acpi' | 'quit' | 'kill';
  /** For reason 'stopped': what asked for the stop first (StopOptions.by: 'SIGTERM', 'Ctrl-]', 'vmnet stop', …). */
  by?: string;
  /** The tail of QEMU's stderr. */
  stderr: string;
}

export type VmEvent =
  /** launch only, for an image URL: download progress, or the cache hit. */
  | DownloadEvent
  | { event: 'accel-fallback'; time: string; from: 'kvm'; to: 'tcg'; reason: string; remembered: string | null }
  /** pid: the process serving the VM (this one), as in `vmnet ls --json`; qemuPid: QEMU's. */
  | { event: 'started'; time: string; name: string; pid: number; qemuPid: number; accel: string; dir: string; macs: string[]; forwards: string[]; notes: string[] }
  | { event: 'lease'; time: string; mac: string; address: string; hostname: string | null }
  | { event: 'forward'; time: string; action: 'add' | 'remove'; forward: string }
  | { event: 'ready'; time: string; port: number; address: string | null }
  | ({ event: 'exited'; time: string } & VmExit);

export interface StopOptions {
  /** How long the guest gets to power off after the ACPI button, ms (default: the launch's stopTimeoutMs, 30 s). */
  timeoutMs?: number;
  /** Skip the button: QMP quit at once (then SIGKILL). */
  force?: boolean;
  /** What asks for the stop, reported in the exit (`by`); the first one counts. Default 'stop()'. */
  by?: string;
}

export interface WaitOptions {
  /** Default 60 s. */
  timeoutMs?: number;
}

/** A VM's port forwards, changeable while it runs. */
export interface VmForwards {
  /** @throws VmnetError E_PORT_IN_USE, E_PORT_PRIVILEGED, E_USAGE */
  add(spec: ForwardSpec | string): Promise<ForwardSpec>;
  /** @returns false when no such forward exists */
  remove(spec: ForwardSpec | string): Promise<boolean>;
  list(): ForwardSpec[];
}

export const now = (): string => new Date().toISOString();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Parts {
  plan: LaunchPlan;
  /** Forwards already added on the VM's switch at launch. */
  switchForwards?: ForwardSpec[];
  qemu: QemuProcess;
  gateway: RunningGateway | null;
  stopTimeoutMs: number;
  state: VmState;
  /** The SSH forward's host port and how vmnet reaches the guest through it (null target: not seeded by vmnet). */
  ssh?: { port: number; target: SshTarget | null } | null;
  /** How cloud-init was seeded, or null. */
  seed?: 'net' | 'disk' | null;
  /** The user NIC's MAC, whose boot the gateway watches. */
  bootMac?: string | null;
}

/** How to reach a VM over SSH, as `vmnet ls --json` and the control socket report it. */
export interface VmSsh {
  host: '127.0.0.1';
  port: number;
  user: string | null;
  /** vmnet's private key, the known_hosts file vmnet wrote, the master connection's socket (null when not seeded by vmnet). */
  identity: string | null;
  knownHosts: string | null;
  controlPath: string | null;
}

/** A running VM. Create it with `launch()`. */
export class Vm extends EventEmitter {
  readonly name: string;
  /** The VM directory (sockets, serial.log, state.json); removed when the VM ends. */
  readonly dir: string;
  readonly accel: string;
  /** MAC of each NIC. */
  readonly macs: string[];
  /** Resolves once, after QEMU has exited and everything is cleaned up. Never rejects. */
  readonly exited: Promise<VmExit>;
  readonly forwards: VmForwards;
  /** The QEMU command line that was run. */
  readonly command: string[];
  /** One-line remarks about the start (why TCG, …). */
  readonly notes: string[];

  #qemu: QemuProcess;
  #gateway: RunningGateway | null;
  /** The switch whose gateway serves this VM's forwards and probes (a VM without a user NIC), or null. */
  #switchName: string | null;
  /** Forwards this VM holds on that switch (removed when the VM ends). */
  #switchForwards: ForwardSpec[];
  #qmp: QmpClient | null = null;
  #hub: SerialHub | null = null;
  #control: ControlServer | null = null;
  #stopTimeoutMs: number;
  #state: VmState;
  #shutdownEvent: QmpEvent | null = null;
  #stopping: Promise<VmExit> | null = null;
  #stopHow: VmExit['stop'] | undefined;
  #stopBy = 'stop()';
  #force: (() => void) | null = null;
  #exit: VmExit | null = null;
  #resolveExited!: (e: VmExit) => void;
  #leased = new Map<string, string>();
  #ssh: { port: number; target: SshTarget | null } | null;
  #seed: 'net' | 'disk' | null;
  #bootMac: string | null;

  /** @internal use launch() */
  constructor(p: Parts) {
    super();
    this.name = p.plan.name;
    this.dir = p.plan.dir;
    this.accel = p.plan.spec.accel;
    this.macs = p.plan.nics.map((n) => n.mac);
    this.command = [p.plan.binary, ...p.plan.args];
    this.notes = [...p.plan.notes];
    this.#qemu = p.qemu;
    this.#gateway = p.gateway;
    this.#stopTimeoutMs = p.stopTimeoutMs;
    this.#state = p.state;
    this.exited = new Promise((r) => (this.#resolveExited = r));
    this.#ssh = p.ssh ?? null;
    this.#seed = p.seed ?? null;
    this.#bootMac = p.bootMac ?? null;
    const gw = this.#gateway;
    const swNic = p.plan.nics.find((n) => n.net.kind === 'switch');
    this.#switchName = !gw && swNic && swNic.net.kind === 'switch' ? swNic.net.switch : null;
    this.#switchForwards = [...(this.#switchName ? p.switchForwards ?? [] : [])];
    const noNet = () => new VmnetError('E_USAGE', `VM ${this.name} has no --net user or switch NIC: no forwards`);
    const runtimeDir = dirname(p.plan.dir);
    this.forwards = {
      add: async (spec) => {
        const f = typeof spec === 'string' ? parseForward(spec) : spec;
        if (gw) await gw.forwards.add(f);
        else if (this.#switchName) {
          // On a switch: the switch's gateway forwards to this VM by name (its lease).
          const { switchForwardAdd } = await import('../switch/daemon.js');
          await switchForwardAdd(this.#switchName, { ...f, guest: this.name }, { runtimeDir });
          this.#switchForwards.push(f);
        } else throw noNet();
        this.#emit({ event: 'forward', time: now(), action: 'add', forward: formatForward(f) });
        return f;
      },
      remove: async (spec) => {
        const f = typeof spec === 'string' ? parseForward(spec) : spec;
        let ok: boolean;
        if (gw) ok = await gw.forwards.remove(f);
        else if (this.#switchName) {
          const i = this.#switchForwards.findIndex((x) => x.proto === f.proto && x.hostPort === f.hostPort);
          ok = i >= 0;
          if (ok) {
            const { switchForwardRemove } = await import('../switch/daemon.js');
            await switchForwardRemove(this.#switchName, this.#switchForwards[i]!, { runtimeDir });
            this.#switchForwards.splice(i, 1);
          }
        } else throw noNet();
        if (ok) this.#emit({ event: 'forward', time: now(), action: 'remove', forward: formatForward(f) });
        return ok;
      },
      // The SSH forward is shown as `ssh` (status, vmnet ls), not among the user's forwards.
      list: () => gw?.forwards.list().filter((f) => !(this.#ssh !== null && f.proto === 'tcp' && f.hostPort === this.#ssh.port && f.guestPort === 22)) ?? [...this.#switchForwards],
    };
    if (gw) {
      const previous = gw.gateway.dhcp.onLease;
      gw.gateway.dhcp.onLease = (lease) => {
        previous?.(lease);
        if (lease.state !== LeaseState.BOUND || !this.macs.includes(lease.mac)) return;
        const address = formatIp4(lease.ip);
        if (this.#leased.get(lease.mac) === address) return;
        this.#leased.set(lease.mac, address);
        this.#emit({ event: 'lease', time: now(), mac: lease.mac, address, hostname: lease.hostname });
      };
    }
    void this.#qemu.exited.then(
      (x) => this.#onQemuExit(x.code, x.signal, x.stderr),
      (e: Error) => this.#onQemuExit(null, null, e.message),
    );
  }

  /** QEMU's pid. */
  get pid(): number | null {
    return this.#qemu.pid ?? null;
  }

  /** True until QEMU has exited. */
  get running(): boolean {
    return this.#exit === null;
  }

  /** The guest's IPv4 address on the `user` network (its DHCP lease), or null before it has one. */
  get address(): string | null {
    const mac = this.macs[0];
    if (mac && this.#leased.has(mac)) return this.#leased.get(mac)!;
    const ip = this.#gateway?.gateway.primaryGuest();
    return ip === null || ip === undefined ? null : formatIp4(ip);
  }

  /** The guest's serial console: read its output, write to type into it. */
  get serial(): Duplex {
    return this.#hub!.stream;
  }

  /** The last 64 KiB of console output. */
  consoleTail(): string {
    return this.#hub?.tail() ?? '';
  }

  /** The gateway of the `user` NIC (counters, leases), or null. */
  get gateway(): RunningGateway | null {
    return this.#gateway;
  }

  /** What `vmnet ls` shows. */
  status(): VmStatus {
    return {
      name: this.name,
      state: this.#stopping ? 'stopping' : 'running',
      pid: process.pid,
      qemuPid: this.pid,
      accel: this.accel,
      macs: this.macs,
      addresses: [...new Set([...this.#leased.values(), ...(this.address ? [this.address] : [])])],
      forwards: this.forwards.list().map(formatForward),
      startedAt: this.#state.startedAt,
      uptimeS: Math.round((Date.now() - this.#state.startedAt) / 1000),
      dir: this.dir,
      image: this.#state.image,
      kernel: this.#state.kernel,
      ...(this.#hub ? { console: this.#hub.counters } : {}),
      ...(this.#ssh ? { ssh: this.sshInfo()! } : {}),
    };
  }

  /** How to reach the guest over SSH, or null without an SSH forward. */
  sshInfo(): VmSsh | null {
    const s = this.#ssh;
    if (s === null) return null;
    const t = s.target;
    return { host: '127.0.0.1', port: s.port, user: t?.user ?? null, identity: t?.identity ?? null, knownHosts: t?.knownHosts ?? null, controlPath: t?.controlPath ?? null };
  }

  /** The SSH target (port, user, key, known_hosts, master socket). @throws VmnetError E_UNREACHABLE when vmnet cannot log in to this VM */
  #sshTarget(): SshTarget {
    const t = this.#ssh?.target;
    if (!t) throw new VmnetError('E_UNREACHABLE', unreachableWhy(this.name, this.#ssh?.port ?? null));
    return t;
  }

  /**
   * `ssh` arguments that log in to the guest (options, port, USER@127.0.0.1):
   * `spawn('ssh', [...vm.sshArgs(), 'uname', '-a'])`.
   */
  sshArgs(): string[] {
    return sshArgs(this.#sshTarget());
  }

  /** What vmnet knows of the guest's boot: first frame, lease, seed fetches, port 22 (probed once it has a lease). */
  async bootStatus(): Promise<BootStatus> {
    const gw = this.#gateway;
    const seen = gw && this.#bootMac ? gw.bootSeen(this.#bootMac) : null;
    const lease = seen?.guest?.lease ?? null;
    const port22 = gw && lease ? await gw.probeGuestPort(22, 1000, lease.address) : null;
    return { name: this.name, startedAt: this.#state.startedAt, seed: this.#seed, firstFrameAt: seen?.guest?.firstFrameAt ?? null, lease, seedFetch: seen?.seed ?? null, port22 };
  }

  /**
   * Waits until a command runs in the guest over SSH, saying on the way where the boot stands.
   * @throws VmnetError E_TIMEOUT naming the stage; E_CLOSED when the VM exits first; E_UNREACHABLE without an SSH forward, or when port 22 answers a VM vmnet did not seed
   */
  async waitForSsh(opts: WaitForSshOptions = {}): Promise<void> {
    if (this.#ssh === null) this.#sshTarget(); // throws: no forward, nothing to wait for
    const target = this.#ssh!.target;
    await waitForSsh(this.name, target, async () => {
      if (this.#exit) throw new VmnetError('E_CLOSED', `VM ${this.name} exited before SSH was ready`);
      return this.bootStatus();
    }, opts);
    this.#emit({ event: 'ready', time: now(), port: 22, address: this.address });
  }

  /**
   * Runs a command in the guest over SSH (vmnet's master connection).
   * @param cmd argv (quoted for the guest's shell) or a shell command line
   * @returns its exit status and output
   * @throws VmnetError E_UNREACHABLE when the guest cannot be reached
   */
  exec(cmd: string[] | string, opts: ExecOptions & { cwd?: string } = {}): Promise<ExecResult> {
    const { cwd, ...rest } = opts;
    return execCollect(this.name, this.#sshTarget(), cmd, { ...rest, ...(cwd !== undefined ? { workdir: cwd } : {}) });
  }

  /** Copies a host file (or directory, with recursive) into the guest. */
  copyTo(local: string, remote: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return copy(this.name, this.#sshTarget(), { local }, { remote }, opts.recursive ?? false);
  }

  /** Copies a guest file (or directory, with recursive) to the host. */
  copyFrom(remote: string, local: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return copy(this.name, this.#sshTarget(), { remote }, { local }, opts.recursive ?? false);
  }

  /**
   * Waits until the guest accepts TCP connections on `port`: the gateway
   * sends its own SYN and gets a SYN-ACK (no host socket is involved).
   * @throws VmnetError E_TIMEOUT, E_CLOSED when the VM exits first, E_USAGE without a user NIC
   */
  async waitForPort(port: number, opts: WaitOptions = {}): Promise<void> {
    const gw = this.#gateway;
    const sw = this.#switchName;
    if (!gw && !sw) throw new VmnetError('E_USAGE', `VM ${this.name} has no --net user or switch NIC to probe through`);
    const probe = async (t: number): Promise<string> => {
      if (gw) return gw.probeGuestPort(port, t);
      const { switchProbe } = await import('../switch/daemon.js');
      return switchProbe(sw!, this.name, port, t, { runtimeDir: dirname(this.dir) });
    };
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new VmnetError('E_USAGE', `bad port ${port}: 1-65535`);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    let last = 'no-guest';
    for (;;) {
      if (this.#exit) throw new VmnetError('E_CLOSED', `VM ${this.name} exited before port ${port} was ready`);
      last = await probe(Math.max(200, Math.min(1000, deadline - Date.now())));
      if (last === 'open') break;
      if (Date.now() >= deadline) {
        const why = last === 'no-guest' ? 'the guest has no address on the network yet' : last === 'closed' ? 'the guest refuses connections (nothing listens)' : 'the guest does not answer';
        throw new VmnetError('E_TIMEOUT', `port ${port} of VM ${this.name} not ready within ${Math.round(timeoutMs / 1000)} s: ${why}`);
      }
      await sleep(200);
    }
    this.#emit({ event: 'ready', time: now(), port, address: this.address });
  }

  /**
   * Stops the VM: ACPI power button, wait, QMP quit, SIGKILL.
   * @returns how QEMU ended (after cleanup)
   */
  stop(opts: StopOptions = {}): Promise<VmExit> {
    if (this.#exit) return Promise.resolve(this.#exit);
    if (this.#stopping) {
      if (opts.force) this.#force?.();
      return this.#stopping;
    }
    const timeoutMs = opts.timeoutMs ?? this.#stopTimeoutMs;
    if (opts.by) this.#stopBy = opts.by;
    this.#stopping = (async () => {
      const qemuGone = this.#qemu.exited.then(() => true, () => true);
      if (!opts.force) {
        let forceNow!: () => void;
        const forced = new Promise<boolean>((r) => (forceNow = () => r(false)));
        this.#force = forceNow;
        this.#stopHow = 'acpi';
        try {
          await this.#qmp?.systemPowerdown({ timeoutMs: 2000 });
        } catch {
          /* QMP gone: escalate below */
        }
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
        const done = await Promise.race([qemuGone, late, forced]);
        clearTimeout(timer);
        if (done) return this.exited;
      }
      this.#stopHow = 'quit';
      try {
        await this.#qmp?.quit(3000);
      } catch {
        /* escalate */
      }
      let timer: NodeJS.Timeout | undefined;
      const quitDone = await Promise.race([qemuGone, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 3000)))]);
      clearTimeout(timer);
      if (!quitDone) {
        this.#stopHow = 'kill';
        this.#qemu.child.kill('SIGKILL');
      }
      return this.exited;
    })();
    return this.#stopping;
  }

  /** @internal */
  _attach(qmp: QmpClient, hub: SerialHub, control: ControlServer | null): void {
    this.#qmp = qmp;
    this.#hub = hub;
    this.#control = control;
  }

  /** @internal */
  _started(): void {
    this.#emit({ event: 'started', time: now(), name: this.name, pid: process.pid, qemuPid: this.pid ?? 0, accel: this.accel, dir: this.dir, macs: this.macs, forwards: this.forwards.list().map(formatForward), notes: this.notes });
  }

  /** @internal */
  _onQmpEvent(e: QmpEvent): void {
    if (e.event === 'SHUTDOWN') this.#shutdownEvent = e;
  }

  #emit(e: VmEvent): void {
    this.emit('event', e);
    this.emit(e.event === 'exited' ? 'exit' : e.event, e.event === 'exited' ? this.#exit : e);
  }

  async #onQemuExit(code: number | null, signal: string | null, stderr: string): Promise<void> {
    const stopped = this.#stopping !== null;
    const clean = code === 0 && signal === null;
    const exit: VmExit = {
      code,
      signal,
      reason: stopped ? 'stopped' : clean ? 'poweroff' : 'crashed',
      ...(stopped ? { stop: this.#stopHow ?? 'quit', by: this.#stopBy } : {}),
      stderr,
    };
    if (stopped && this.#stopHow === 'acpi' && !(this.#shutdownEvent?.data.guest === true || clean)) exit.stop = 'quit';
    this.#exit = exit;
    this.#force?.();
    await this.#qmp?.close().catch(() => undefined);
    await this.#hub?.close().catch(() => undefined);
    await this.#gateway?.close().catch(() => undefined);
    if (this.#switchName && this.#switchForwards.length) {
      const { switchForwardRemove } = await import('../switch/daemon.js');
      for (const f of this.#switchForwards.splice(0)) await switchForwardRemove(this.#switchName, f, { runtimeDir: dirname(this.dir) }).catch(() => false);
    }
    await this.#control?.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    this.#resolveExited(exit);
    this.#emit({ event: 'exited', time: now(), ...exit });
  }
}
