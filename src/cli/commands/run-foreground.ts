/**
 * Theory of operation: `vmnet run` in the foreground. This process owns the
 * VM (its gateway runs here), so it must end it in order whatever ends
 * this process's usefulness.
 *
 * Stop requests: Ctrl-] on the console, SIGINT, SIGTERM, SIGHUP (the
 * terminal closed), and an output stream that broke (stdout or stderr
 * closed: `vmnet run … | head -c 20`). The first request presses the ACPI
 * button and waits `--stop-timeout`, then QMP quit, then SIGKILL; every
 * later request forces (quit now, then SIGKILL). After Ctrl-] the console
 * is detached and the terminal back in cooked mode, so Ctrl-C (SIGINT) is
 * the second request. The last line names the request that started the
 * stop.
 *
 * The signal handlers are installed before launch() starts anything: a
 * request during start-up cancels the start (launch's AbortSignal), which
 * undoes everything (QEMU killed, ports freed, the directory removed) and
 * exits 1.
 *
 * Output: every write to stdout and stderr goes through `out()`, which
 * stops writing to a stream once it failed; the failure itself is a stop
 * request, but only when no stop was asked for yet (a closed terminal sends
 * SIGHUP and then fails every write: that must not count as a second
 * request and force the stop). Guest output follows stdout's pace
 * (terminal.ts). Exit code: 0 when the guest powered off or the VM was
 * stopped, 1 when QEMU failed or the start was cancelled.
 */
import type { Writable } from 'node:stream';
import type { CliIo } from '../io.js';
import { isVmnetError } from '../../errors.js';
import { printable } from '../../config/printable.js';
import type { LaunchOptions } from '../../vm/plan.js';
import type { Vm, VmEvent } from '../../vm/vm.js';

export interface ForegroundOptions {
  json: boolean;
  /** The serial console on this terminal (else none, or a file copy). */
  onTerminal: boolean;
  stopTimeoutS: number;
  /** What the user hears about an event (stderr lines, NDJSON with --json), written with the given writer. */
  report: (e: VmEvent, write: (stream: Writable, text: string) => void) => void;
}

/** The signals that stop a foreground VM (SIGHUP: its terminal went away). */
export const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs a VM in the foreground until it ends.
 * @returns the exit code
 * @throws what launch() throws, except a cancelled start (reported here)
 */
export async function runForeground(opts: LaunchOptions, o: ForegroundOptions, io: CliIo): Promise<number> {
  const broken = new Set<Writable>();
  let rawTerminal = false;
  const out = (stream: Writable, text: string) => {
    if (broken.has(stream) || stream.destroyed) return;
    stream.write(rawTerminal ? text.replace(/\n/g, '\r\n') : text);
  };
  const say = (line: string) => out(io.stderr, `${rawTerminal ? '\n' : ''}vmnet: ${line}\n`);

  const cancel = new AbortController();
  let vm: Vm | null = null;
  let term: { done: Promise<'escape' | 'closed'>; detach(): void } | null = null;
  let requests = 0;
  const requestStop = (by: string) => {
    requests++;
    if (!vm) {
      if (requests === 1) cancel.abort(by);
      return;
    }
    if (!vm.running) return;
    if (requests === 1) {
      const again = by === 'Ctrl-]' ? 'Ctrl-C forces it off' : 'send it again to force';
      say(`${by}: powering ${vm.name} down through ACPI (up to ${o.stopTimeoutS} s; ${again})`);
      void vm.stop({ by });
    } else {
      say(`${by}: forcing ${vm.name} off`);
      void vm.stop({ force: true, by });
    }
  };
  const offSignals = io.onSignal((sig) => requestStop(sig), STOP_SIGNALS);
  const onBroken = (stream: Writable, what: string) => () => {
    if (broken.has(stream)) return;
    broken.add(stream);
    if (stream === io.stdout) term?.detach();
    // Only as the first request: a closed terminal sends SIGHUP and then fails every write (EIO), which must not force the stop.
    if (requests === 0) requestStop(`${what} closed`);
  };
  const onStdoutError = onBroken(io.stdout, 'stdout');
  const onStderrError = onBroken(io.stderr, 'stderr');
  io.stdout.on('error', onStdoutError);
  io.stderr.on('error', onStderrError);
  const done = () => {
    offSignals();
    term?.detach();
    rawTerminal = false;
    io.stdout.off('error', onStdoutError);
    io.stderr.off('error', onStderrError);
    // Late write errors (EPIPE after we finished) must not crash the process.
    io.stdout.on('error', () => undefined);
    io.stderr.on('error', () => undefined);
  };

  try {
    const { launch } = await import('../../vm/launch.js');
    vm = await launch({ ...opts, onEvent: (e) => o.report(e, out), signal: cancel.signal });
  } catch (e) {
    done();
    if (isVmnetError(e) && e.code === 'E_INTERRUPTED') {
      say(printable(e.message));
      return 1;
    }
    throw e;
  }
  const theVm = vm;
  const interactive = o.onTerminal && io.isTty && io.stdin !== undefined;
  if (!o.json) {
    const fw = vm.forwards.list();
    const { formatForward } = await import('../../config/forward.js');
    say(`VM ${vm.name} running (QEMU pid ${vm.pid}, ${vm.accel})${fw.length ? `, forwards ${fw.map(formatForward).join(' ')}` : ''}; ${interactive ? 'Ctrl-] stops it' : 'Ctrl-C stops it'}`);
  }
  if (o.onTerminal && !broken.has(io.stdout)) {
    const { attachTerminal } = await import('../../vm/terminal.js');
    term = attachTerminal(vm.serial, { stdin: io.stdin, stdout: io.stdout, interactive });
    rawTerminal = interactive && Boolean(io.stdin?.isTTY);
    void term.done.then((why) => {
      rawTerminal = false;
      if (why === 'escape') requestStop('Ctrl-]');
    });
  }
  if (cancel.signal.aborted && theVm.running) void theVm.stop({ by: String(cancel.signal.reason) }); // a request raced the end of the start
  const exit = await theVm.exited;
  done();
  if (exit.reason === 'crashed') {
    say(`QEMU exited with ${exit.signal ?? `code ${exit.code}`}: ${printable(exit.stderr.trim().split('\n').slice(-3).join(' | ')) || 'no error output'}`);
    return 1;
  }
  if (!o.json && exit.reason === 'stopped') {
    const how =
      exit.stop === 'acpi'
        ? 'the guest powered off'
        : exit.stop === 'quit'
          ? requests > 1
            ? 'forced: QEMU was told to quit'
            : `the guest did not power off within ${o.stopTimeoutS} s; QEMU was told to quit`
          : 'QEMU did not quit; it was killed';
    say(`VM ${theVm.name} stopped (${exit.by ?? 'stop'}): ${how}`);
  }
  return 0;
}
