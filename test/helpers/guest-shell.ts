/**
 * An interactive shell in a running test guest, through its console socket
 * (`vmnet console`'s): waits for the guest's VMNET-READY (the console
 * replays what the guest printed before we connected), asks for the shell
 * (VMNET-SHELL), then runs one command at a time and returns its output
 * and exit status, read up to a marker the command prints after itself.
 */
import { connect, type Socket } from 'node:net';

export class GuestShell {
  #sock: Socket;
  #buf = '';
  #seq = 0;
  private constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (this.#buf += d));
    sock.on('error', () => undefined);
  }

  /** Connects to a guest's console socket and opens its shell. */
  static async open(path: string, timeoutMs = 120_000): Promise<GuestShell> {
    const sock = connect(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const sh = new GuestShell(sock);
    await sh.#waitFor(/VMNET-READY/, timeoutMs);
    sock.write('VMNET-SHELL\n');
    await sh.#waitFor(/interactive shell/, timeoutMs);
    sh.#buf = '';
    await sh.run('stty -echo; PS1=', 30_000);
    return sh;
  }

  async #waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.#buf);
      if (m) return m;
      if (Date.now() > end) throw new Error(`guest console: no ${re} within ${timeoutMs} ms; tail: ${JSON.stringify(this.#buf.slice(-500))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Runs one shell command line in the guest.
   * @returns its output (without the marker) and exit status
   */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
    const tag = `${++this.#seq}-${Math.random().toString(36).slice(2, 8)}`;
    this.#buf = '';
    // The marker is written split in two, so an echo of the command line never matches it.
    this.#sock.write(`${cmd}; echo "@@DONE-${tag}""=$?@@"\n`);
    const m = await this.#waitFor(new RegExp(`@@DONE-${tag}=(\\d+)@@`), timeoutMs);
    const out = this.#buf.slice(0, m.index).replace(/\r/g, '');
    this.#buf = this.#buf.slice(m.index + m[0].length);
    return { code: Number(m[1]), out };
  }

  close(): void {
    this.#sock.destroy();
  }
}
