/**
 * Theory of operation: the host side of the test guest's console protocol
 * (see guest/init). The guest prints VMNET-READY once its console has
 * echo turned off; the host then sends the script as base64 lines and a
 * VMNET-END line; the guest prints VMNET-BEGIN, the script's output, and
 * VMNET-EXIT=<status>, then powers off. Waiting for VMNET-READY before
 * writing matters: bytes sent earlier are echoed or lost while the tty is
 * still in its boot-time mode.
 *
 * Holding the guest. The power-off right after VMNET-EXIT closes the VM's
 * network connections (its switch ports vanish, its gateway session is
 * detached) within a few hundred milliseconds, so a host that looks at
 * them after the script returned races the guest's shutdown. A script that
 * wants the host to look while it is still up ends with {@link HOLD_SCRIPT}:
 * the guest prints VMNET-HOLD and reads one line from its console; the host
 * runs `onHold` and then writes that line (also when `onHold` fails, whose
 * error then fails the run). The script's stdin is the console (guest/init).
 *
 * The session is transport-agnostic: it reads the console from any readable
 * stream and writes to any writable one (QEMU's stdio chardev, a socket).
 */
import type { Readable, Writable } from 'node:stream';
import { VmnetError } from '../errors.js';

export interface ScriptResult {
  /** The script's exit status inside the guest. */
  exitCode: number;
  /** What the script printed (between VMNET-BEGIN and VMNET-EXIT). */
  output: string;
  /** Everything the console printed, boot messages included. */
  console: string;
}

/**
 * Script text that holds the guest until the host's `onHold` has finished
 * (see Theory of operation): the guest's network stays as it is meanwhile.
 */
export const HOLD_SCRIPT = 'echo VMNET-HOLD; read -r _';

export interface ScriptOptions {
  /** Called with each complete console line as it arrives (for live display). */
  onLine?: (line: string, inScript: boolean) => void;
  /**
   * Run while the guest waits at {@link HOLD_SCRIPT}; the guest goes on when
   * it settles. A rejection fails the run with that error.
   */
  onHold?: () => Promise<void>;
  /** Milliseconds to wait for the whole exchange. */
  timeoutMs?: number;
}

/**
 * Runs a shell script in a booting test guest over its console.
 * @param input the console's output (guest → host)
 * @param output the console's input (host → guest)
 * @param script POSIX sh script text
 * @returns exit status and output
 * @throws VmnetError E_TIMEOUT, E_GUEST_PROTOCOL when the console closes early
 */
export function runConsoleScript(input: Readable, output: Writable, script: string, opts: ScriptOptions = {}): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    let all = '';
    let partial = '';
    let inScript = false;
    let scriptOut = '';
    let settled = false;
    const finish = (err: Error | null, res?: ScriptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      input.off('data', onData);
      input.off('close', onClose);
      input.off('end', onClose);
      if (err) reject(err);
      else resolve(res!);
    };
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(
      () => finish(new VmnetError('E_TIMEOUT', `guest script did not finish within ${timeoutMs} ms; console tail:\n${all.slice(-2000)}`)),
      timeoutMs,
    );
    const onLine = (raw: string) => {
      const line = raw.replace(/\r$/, '');
      opts.onLine?.(line, inScript && !line.startsWith('VMNET-EXIT='));
      if (!inScript) {
        if (line.endsWith('VMNET-READY')) {
          const b64 = Buffer.from(script, 'utf8').toString('base64');
          const lines = b64.match(/.{1,76}/g) ?? [];
          output.write(lines.join('\n') + '\nVMNET-END\n');
        } else if (line.endsWith('VMNET-BEGIN')) {
          inScript = true;
        }
        return;
      }
      if (line.endsWith('VMNET-HOLD')) {
        const release = () => void (settled || output.write('\n')); // not after a timeout: the console may be gone
        if (opts.onHold === undefined) return release();
        opts.onHold().then(release, (e: unknown) => {
          release();
          finish(e instanceof Error ? e : new Error(String(e)));
        });
        return;
      }
      const m = /VMNET-EXIT=(\d+)$/.exec(line);
      if (m) {
        finish(null, { exitCode: Number(m[1]), output: scriptOut, console: all });
        return;
      }
      scriptOut += line + '\n';
    };
    const onData = (chunk: Buffer | string) => {
      const s = chunk.toString();
      all += s;
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        onLine(line);
        if (settled) return;
      }
    };
    const onClose = () => {
      if (partial) onLine(partial);
      finish(new VmnetError('E_GUEST_PROTOCOL', `guest console closed before the script finished; console tail:\n${all.slice(-2000)}`));
    };
    input.on('data', onData);
    input.on('close', onClose);
    input.on('end', onClose);
  });
}
