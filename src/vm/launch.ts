/**
 * Theory of operation: `launch()` starts one VM on vmnet's own network and
 * hands back a `Vm` (vm.ts).
 *
 * Start, in order, undoing everything on any failure:
 * 1. validate options (plan.ts); for an image URL, fetch the base image
 *    (remote-image.ts: `download` events); claim the VM directory
 *    (state.ts): it appears with state.json naming this process as the
 *    owner; for an image URL, make or check the VM's kept disk;
 * 2. start the gateway in-process on `net0.sock` with the port forwards: a
 *    taken host port fails here, before QEMU exists; `--net switch:NAME`
 *    NICs get a port on that switch (src/switch/daemon.ts starts the switch
 *    in the background when it is not running);
 * 3. spawn QEMU paused (-S) in its own session (a terminal's Ctrl-C reaches
 *    vmnet, never QEMU directly) and tied to this process's life
 *    (process.ts: setpriv --pdeathsig), connect its serial socket and QMP, record
 *    its pid in state.json, then `cont`: no boot output and no event is
 *    missed. When `--accel auto` chose KVM and QEMU dies in this step with a
 *    KVM error (binary.ts kvmStartFailure), the step runs once more with TCG:
 *    an `accel-fallback` event says so and accel-verdict.ts remembers it for
 *    this boot of the host, so later auto runs go straight to TCG;
 * 4. serve `console.sock` (serial.ts) and `control.sock` (control.ts), write
 *    state.json as running, emit `started`.
 *
 * QEMU's pid reaches state.json right after the spawn, before anything
 * waits on QEMU, so a launcher killed at any point leaves a directory the
 * stale cleaner can finish (and QEMU dies with it anyway: process.ts). A
 * cancel (`signal`) at any point undoes the start the same way a failure
 * does; an abort while QEMU exists kills it at once.
 */
import { closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { VmnetError } from '../errors.js';
import { formatForward, type ForwardSpec } from '../config/forward.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { isDnsLabel } from '../gateway/names.js';
import { openUserFile } from '../link/user-file.js';
import { kvmStartFailure } from '../qemu/binary.js';
import { findSetpriv, QemuProcess } from '../qemu/process.js';
import { QmpClient, type QmpEvent } from '../qemu/qmp.js';
import { writeKvmVerdict } from './accel-verdict.js';
import { buildPlan, claimPlan, nicRole, resolveLaunch, type LaunchOptions, type LaunchPlan, type ResolvedLaunch } from './plan.js';
import { fetchRemoteBase, remoteDrive } from './remote-image.js';
import { FILES, processStartTime, runtimeRoot, writeState, type VmState } from './state.js';
import { SERIAL_LOG_CAP, SerialHub } from './serial.js';
import { serveControl, type ControlServer } from './control.js';
import { now, Vm, type VmEvent } from './vm.js';
import { prepareSeed, type PreparedSeed } from './seeding.js';
import { knownHostsLine, writeKnownHosts } from './ssh-keys.js';
import { controlPathFor, SSH_HOST, type SshTarget } from './ssh.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connects to a unix socket QEMU is about to create, retrying until it exists. */
async function dialUnix(path: string, deadline: number, gone: () => boolean): Promise<net.Socket> {
  let wait = 10;
  for (;;) {
    if (gone()) throw new VmnetError('E_QEMU_FAILED', 'QEMU exited during start');
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.createConnection(path);
        s.once('connect', () => {
          s.removeAllListeners('error');
          // QEMU may die before anyone reads (KVM failing at start resets the connection): never an unhandled 'error'.
          s.on('error', () => undefined);
          resolve(s);
        });
        s.once('error', (e) => {
          s.destroy();
          reject(e);
        });
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw new VmnetError('E_QEMU_FAILED', `cannot connect to ${path}: ${(e as Error).message}`);
      if (Date.now() > deadline) throw new VmnetError('E_TIMEOUT', `QEMU did not create ${path} in time`);
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 100);
  }
}

export interface LaunchHooks {
  /** Receives every event, `accel-fallback` and `started` included (attached before the VM starts). */
  onEvent?: (e: VmEvent) => void;
  /**
   * Cancels the start: whatever was started is undone (QEMU killed, ports
   * freed, the directory removed) and launch() rejects with E_INTERRUPTED.
   * Once launch() has returned, stop the VM instead.
   */
  signal?: AbortSignal;
}

/** The error of a cancelled start. */
function interrupted(signal: AbortSignal, name: string): VmnetError {
  const why = typeof signal.reason === 'string' ? signal.reason : 'aborted';
  return new VmnetError('E_INTERRUPTED', `${why}: the start of VM ${name} was cancelled; nothing is left running`);
}

/** QEMU up to `cont`: its process, serial connection and QMP. */
interface QemuStarted {
  qemu: QemuProcess;
  serialSock: net.Socket;
  qmp: QmpClient;
  /** QMP events that arrived before the Vm existed. */
  events: QmpEvent[];
}

/** QEMU did not get as far as running the guest; `stderr` is its tail (complete: QEMU has exited). */
class QemuStartError extends Error {
  constructor(
    readonly failure: unknown,
    readonly stderr: string,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

/**
 * Starts QEMU paused, connects its serial socket and QMP, records its pid in
 * state.json, then `cont`. On any failure QEMU is killed and reaped and
 * everything this attempt opened is closed.
 * @throws QemuStartError with QEMU's complete stderr
 */
async function startQemu(plan: LaunchPlan, state: VmState, setpriv: string | null, cancel: AbortSignal | undefined, onQmpEvent: (e: QmpEvent) => void): Promise<QemuStarted> {
  const { dir } = plan;
  // A QEMU that died (e.g. SIGABRT) leaves its listening sockets behind.
  await Promise.all([FILES.serial, FILES.qmp].map((f) => rm(join(dir, f), { force: true })));
  if (cancel?.aborted) throw new QemuStartError(interrupted(cancel, plan.name), '');
  const q = new QemuProcess(plan.binary, plan.args, 'ignore', { detached: true, dieWithParent: setpriv });
  // A cancel from here on kills QEMU, which ends every wait below at once.
  const onCancel = () => q.child.kill('SIGKILL');
  cancel?.addEventListener('abort', onCancel, { once: true });
  let serialSock: net.Socket | null = null;
  let qmp: QmpClient | null = null;
  const events: QmpEvent[] = [];
  let forward: ((e: QmpEvent) => void) | null = null;
  try {
    // The pid goes to state.json at once: if this process dies now, the stale cleaner finds QEMU.
    state.qemuPid = q.pid ?? null;
    await writeState(dir, state);
    const abort = new AbortController();
    void q.exited.then(
      () => abort.abort(),
      () => abort.abort(),
    );
    const deadline = Date.now() + 15_000;
    serialSock = await dialUnix(join(dir, FILES.serial), deadline, () => !q.running);
    qmp = await QmpClient.connect(join(dir, FILES.qmp), { timeoutMs: Math.max(1000, deadline - Date.now()), signal: abort.signal, onEvent: (e) => (forward ? forward(e) : events.push(e)) });
    await qmp.cont();
    if (cancel?.aborted) throw interrupted(cancel, plan.name);
    cancel?.removeEventListener('abort', onCancel);
    forward = onQmpEvent;
    return { qemu: q, serialSock, qmp, events };
  } catch (e) {
    cancel?.removeEventListener('abort', onCancel);
    serialSock?.destroy();
    await qmp?.close().catch(() => undefined);
    await q.kill(2000).catch(() => undefined);
    const stderr = await q.exited.then((x) => x.stderr, () => '');
    throw new QemuStartError(cancel?.aborted ? interrupted(cancel, plan.name) : e, stderr);
  }
}

/** The last lines of QEMU's stderr, on one line. */
const stderrTail = (stderr: string): string => stderr.trim().split('\n').slice(-3).join(' | ');

/**
 * Launches a VM on vmnet's own network.
 * @param o what to boot and how to wire it
 * @returns the running VM (QEMU started, guest running)
 * @throws VmnetError usage errors (E_USAGE, E_NO_FILE, E_BAD_IMAGE, E_PORT_IN_USE, E_NAME_IN_USE, …) before QEMU starts; E_QEMU_FAILED with QEMU's stderr when it fails to start
 */
export async function launch(o: LaunchOptions & LaunchHooks): Promise<Vm> {
  let r = await resolveLaunch(o);
  const cancel = o.signal;
  if (cancel?.aborted) throw interrupted(cancel, r.baseName);
  const remote = r.remote;
  const base = remote ? await fetchRemoteBase({ ...r, remote }, { ...(o.onEvent ? { onEvent: o.onEvent } : {}), ...(cancel ? { signal: cancel } : {}) }) : null;
  if (cancel?.aborted) throw interrupted(cancel, r.baseName);
  const state: VmState = {
    version: 1,
    name: r.baseName,
    pid: process.pid,
    pidStart: processStartTime(process.pid),
    qemuPid: null,
    state: 'starting',
    accel: r.accel,
    startedAt: Date.now(),
    image: r.drive?.path ?? remote?.url ?? null,
    kernel: r.kernel ?? null,
    macs: [],
  };
  let plan = await claimPlan(r, (name) => ({ ...state, name }));
  const { dir } = plan;
  state.name = plan.name;
  state.macs = plan.nics.map((n) => n.mac);
  try {
    if (remote && base) {
      r = { ...r, drive: await remoteDrive({ ...r, remote }, plan.name, base) };
      plan = buildPlan(r, plan.name, dir);
    }
    if (plan.nics.some((n) => n.net.kind === 'switch')) plan = await switchPlan(r, plan);
    if (cancel?.aborted) throw interrupted(cancel, plan.name);
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  const switchSockets = plan.nics.map((n) => (n.net.kind === 'switch' ? n.socket : undefined));
  const setpriv = findSetpriv(r.env);
  let gateway: RunningGateway | null = null;
  let consoleFd: number | null = null;
  let started: QemuStarted | null = null;
  let hub: SerialHub | null = null;
  let control: ControlServer | null = null;
  let vm: Vm | null = null;
  let switchFwd: { name: string; added: ForwardSpec[] } | null = null;
  let seed: PreparedSeed | null = null;
  let ssh: { port: number; target: SshTarget | null } | null = null;
  const onQmpEvent = (e: QmpEvent) => vm?._onQmpEvent(e);
  try {
    await writeState(dir, state);
    // Files the user named are opened before anything starts (no symlink followed: user-file.ts).
    if (r.consoleFile) consoleFd = await openUserFile(r.consoleFile, 'append', 'console file');
    const userNic = plan.nics.find((n) => n.net.kind === 'user');
    if (userNic) {
      gateway = await startGateway({ ...r.gateway, socket: userNic.socket, forwards: r.forwards });
      // The VM's own name at its gateway's DNS, ahead of any DHCP host name (a name that is no DNS label is not answered).
      if (isDnsLabel(plan.name)) gateway.names.set(userNic.mac, plan.name);
    } else if (r.forwards.length) {
      // No user NIC: the forwards go to the first switch's gateway, by this VM's name (before QEMU starts, so a taken port fails first).
      const swNic = plan.nics.find((n) => n.net.kind === 'switch');
      if (swNic && swNic.net.kind === 'switch') {
        const { switchForwardAdd } = await import('../switch/daemon.js');
        switchFwd = { name: swNic.net.switch, added: [] };
        for (const f of r.forwards) {
          await switchForwardAdd(swNic.net.switch, { ...f, guest: plan.name }, { runtimeDir: dirname(dir) });
          switchFwd.added.push(f);
        }
      }
    }
    if (userNic && gateway) gateway.watchBoot(userNic.mac);
    if (r.cloudInit) {
      seed = await prepareSeed(r.cloudInit, plan.name, dir, userNic && gateway ? { gateway, mac: userNic.mac } : null, r.env);
      r = { ...r, seedQemu: seed.qemu };
      plan = buildPlan(r, plan.name, dir, switchSockets);
    }
    if (r.sshForward && gateway) ssh = await sshForward(gateway, seed, dir);
    if (cancel?.aborted) throw interrupted(cancel, plan.name);
    try {
      started = await startQemu(plan, state, setpriv, o.signal, onQmpEvent);
    } catch (e) {
      // --accel auto chose KVM, and QEMU died of it during start-up: once more with TCG, and remember.
      if (!(e instanceof QemuStartError) || !r.accelAuto || !kvmStartFailure(e.stderr) || o.signal?.aborted) throw e;
      const reason = stderrTail(e.stderr);
      const remembered = await writeKvmVerdict(dirname(dir), r.binary, reason).catch(() => null);
      o.onEvent?.({ event: 'accel-fallback', time: now(), from: 'kvm', to: 'tcg', reason, remembered });
      plan = buildPlan({ ...r, accel: 'tcg' }, plan.name, dir, switchSockets);
      state.accel = 'tcg';
      started = await startQemu(plan, state, setpriv, o.signal, onQmpEvent);
    }
    const { qemu, serialSock, qmp, events } = started;
    hub = new SerialHub(serialSock, [{ path: join(dir, FILES.serialLog), rotateAt: SERIAL_LOG_CAP }, ...(consoleFd !== null ? [consoleFd] : [])]);
    consoleFd = null; // the hub owns it
    vm = new Vm({ plan, qemu, gateway, stopTimeoutMs: r.stopTimeoutMs, state, switchForwards: switchFwd?.added ?? [], ssh, seed: r.cloudInit?.seed ?? null, bootMac: userNic?.mac ?? null });
    for (const e of events) vm._onQmpEvent(e);
    if (o.onEvent) vm.on('event', o.onEvent);
    vm._attach(qmp, hub, null);
    await hub.listen(join(dir, FILES.console));
    const theVm = vm;
    control = await serveControl(join(dir, FILES.control), async (req) => {
      switch (req.op) {
        case 'status':
          return { status: theVm.status() };
        case 'forward-add':
          return { forward: formatForward(await theVm.forwards.add(String(req.spec))) };
        case 'forward-rm': {
          const removed = await theVm.forwards.remove(String(req.spec));
          if (!removed) throw new VmnetError('E_USAGE', `VM ${theVm.name} has no forward ${req.spec}`);
          return { removed: true };
        }
        case 'forward-ls':
          return { forwards: theVm.forwards.list().map(formatForward) };
        case 'wait-port':
          await theVm.waitForPort(Number(req.port), { timeoutMs: Number(req.timeoutMs) || undefined });
          return { port: req.port, address: theVm.address };
        case 'boot-status':
          return { boot: await theVm.bootStatus() };
        case 'stop':
          return { exit: await theVm.stop({ force: Boolean(req.force), by: 'vmnet stop', ...(req.timeoutMs !== undefined ? { timeoutMs: Number(req.timeoutMs) } : {}) }) };
        default:
          throw new VmnetError('E_USAGE', `unknown control op ${(req as { op: string }).op}`);
      }
    });
    vm._attach(qmp, hub, control);
    await registerSwitchNames(plan, r.env);
    if (cancel?.aborted) throw interrupted(cancel, plan.name);
    state.state = 'running';
    await writeState(dir, state);
  } catch (e) {
    if (vm) {
      // QEMU is running (or ran): the Vm's own exit path cleans up.
      const x = await vm.stop({ force: true, by: 'start failed' });
      throw cancel?.aborted ? interrupted(cancel, plan.name) : startError(e, x.stderr);
    }
    if (started) {
      started.serialSock.destroy();
      await started.qmp.close().catch(() => undefined);
      await started.qemu.kill(2000).catch(() => undefined);
    }
    if (switchFwd) {
      const { switchForwardRemove } = await import('../switch/daemon.js');
      for (const f of switchFwd.added) await switchForwardRemove(switchFwd.name, f, { runtimeDir: dirname(dir) }).catch(() => false);
    }
    if (consoleFd !== null) closeSync(consoleFd);
    await hub?.close().catch(() => undefined);
    await control?.close().catch(() => undefined);
    await gateway?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e instanceof QemuStartError ? startError(e.failure, e.stderr) : startError(e, '');
  }
  vm._started();
  if (r.waitFor === 'ssh') {
    try {
      await vm.waitForSsh({ timeoutMs: r.waitTimeoutMs });
    } catch (e) {
      await vm.stop({ force: true, by: "launch()'s waitFor" });
      throw e;
    }
  }
  return vm;
}

/**
 * Adds the VM's SSH forward (a free 127.0.0.1 port to guest port 22) and,
 * for a VM vmnet seeded, writes the known_hosts file holding the exact host
 * key it gave the guest.
 */
async function sshForward(gateway: RunningGateway, seed: PreparedSeed | null, dir: string): Promise<{ port: number; target: SshTarget | null }> {
  const f = await gateway.forwards.add({ proto: 'tcp', bindAddress: SSH_HOST, hostPort: 0, guestPort: 22 });
  if (seed === null) return { port: f.hostPort, target: null };
  const knownHosts = join(dir, FILES.knownHosts);
  await writeKnownHosts(knownHosts, knownHostsLine(f.hostPort, seed.hostPublicKey));
  return { port: f.hostPort, target: { port: f.hostPort, user: seed.user, identity: seed.client.key, knownHosts, controlPath: controlPathFor(dir) } };
}

/** Starts (or finds) the switches of `--net switch:NAME` NICs and plans with their port sockets. */
async function switchPlan(r: ResolvedLaunch, plan: LaunchPlan): Promise<LaunchPlan> {
  const { ensureSwitch, switchSocketFor } = await import('../switch/daemon.js');
  const runtimeDir = runtimeRoot(r.env);
  const sockets: Array<string | undefined> = [];
  for (const n of plan.nics) {
    if (n.net.kind !== 'switch') continue;
    await ensureSwitch(n.net.switch, { runtimeDir });
    sockets[n.index] = await switchSocketFor(n.net.switch, nicRole(n.net), { runtimeDir, owner: `${plan.name}:${n.index}` }); // its own socket: link faults find the port by VM:NIC
  }
  return buildPlan(r, plan.name, plan.dir, sockets);
}

/** Tells each switch's gateway DNS the VM's name for its MAC (best effort). */
async function registerSwitchNames(plan: LaunchPlan, env: NodeJS.ProcessEnv): Promise<void> {
  const nics = plan.nics.filter((n) => n.net.kind === 'switch');
  if (!nics.length) return;
  const { registerSwitchName } = await import('../switch/daemon.js');
  for (const n of nics) {
    if (n.net.kind !== 'switch') continue;
    await registerSwitchName(n.net.switch, n.mac, plan.name, { runtimeDir: runtimeRoot(env) }).catch(() => undefined);
  }
}

function startError(e: unknown, stderr: string): Error {
  const tail = stderrTail(stderr);
  if (e instanceof VmnetError && e.code === 'E_INTERRUPTED') return e;
  if (e instanceof VmnetError && e.code !== 'E_QEMU_FAILED' && e.code !== 'E_CLOSED' && e.code !== 'E_TIMEOUT' && e.code !== 'E_QMP') return e;
  if (tail) return new VmnetError('E_QEMU_FAILED', `QEMU failed to start: ${tail}`, { cause: e });
  return e instanceof Error ? e : new Error(String(e));
}

export type { LaunchOptions, LaunchPlan };
export { Vm, type VmExit, type VmEvent, type VmForwards, type StopOptions, type WaitOptions } from './vm.js';
