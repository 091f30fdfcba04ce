import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HOLD_SCRIPT, runConsoleScript } from './console.js';

/** A fake guest console speaking guest/init's protocol. */
function fakeGuest(exitCode: number, prints: string[]) {
  const toHost = new PassThrough();
  const toGuest = new PassThrough();
  let received = '';
  toGuest.on('data', (c: Buffer) => {
    received += c.toString();
    if (received.includes('VMNET-END\n')) {
      const b64 = received.split('\n').filter((l) => l && l !== 'VMNET-END').join('');
      const script = Buffer.from(b64, 'base64').toString();
      toHost.write('VMNET-BEGIN\r\n');
      for (const p of prints) toHost.write(p.replace('$SCRIPT', script.trim()) + '\r\n');
      toHost.write(`VMNET-EXIT=${exitCode}\r\n`);
    }
  });
  // Boot noise, then readiness split across writes.
  toHost.write('[    0.1] kernel noise\nVMNET-NIC eth0 52:54:00:12:34:56\nVMNET-RE');
  setTimeout(() => toHost.write('ADY\n'), 5);
  return { toHost, toGuest };
}

describe('runConsoleScript', () => {
  it('sends the script after VMNET-READY and returns its output and status', async () => {
    const g = fakeGuest(3, ['got: $SCRIPT', 'line two']);
    const lines: string[] = [];
    const r = await runConsoleScript(g.toHost, g.toGuest, "echo 'quoted'; exit 3", { onLine: (l, inScript) => inScript && lines.push(l) });
    expect(r.exitCode).toBe(3);
    expect(r.output).toBe("got: echo 'quoted'; exit 3\nline two\n");
    expect(lines).toEqual(["got: echo 'quoted'; exit 3", 'line two']);
    expect(r.console).toContain('kernel noise');
  });
  it('holds the guest at VMNET-HOLD until onHold settles, then lets it finish (and power off)', async () => {
    // As guest/init: the script reads a line from the console at the hold; after VMNET-EXIT the guest is gone.
    const toHost = new PassThrough();
    const toGuest = new PassThrough();
    let up = true;
    let received = '';
    let stage: 'script' | 'held' | 'done' = 'script';
    toGuest.on('data', (c: Buffer) => {
      received += c.toString();
      if (stage === 'script' && received.includes('VMNET-END\n')) {
        stage = 'held';
        received = '';
        toHost.write('VMNET-BEGIN\r\nbefore\r\nVMNET-HOLD\r\n');
      } else if (stage === 'held' && received.includes('\n')) {
        stage = 'done';
        toHost.write('after\r\nVMNET-EXIT=0\r\n');
        up = false; // powered off
        toHost.end();
      }
    });
    toHost.write('VMNET-READY\n');
    const seen: boolean[] = [];
    const r = await runConsoleScript(toHost, toGuest, `echo before; ${HOLD_SCRIPT}; echo after`, {
      timeoutMs: 5_000,
      onHold: async () => {
        seen.push(up);
        await new Promise((res) => setTimeout(res, 20)); // the host looks at the guest for a while
        seen.push(up);
      },
    });
    expect(seen).toEqual([true, true]);
    expect(r.exitCode).toBe(0);
    expect(r.output).toBe('before\nafter\n'); // the hold is protocol, not output
    expect(up).toBe(false);
  });
  it('releases the guest and fails the run when onHold fails', async () => {
    const toHost = new PassThrough();
    const toGuest = new PassThrough();
    let received = '';
    let released = false;
    toGuest.on('data', (c: Buffer) => {
      received += c.toString();
      if (received.endsWith('VMNET-END\n')) toHost.write('VMNET-BEGIN\r\nVMNET-HOLD\r\n');
      else if (received.includes('VMNET-END\n') && received.endsWith('\n')) released = true;
    });
    toHost.write('VMNET-READY\n');
    await expect(runConsoleScript(toHost, toGuest, HOLD_SCRIPT, { timeoutMs: 5_000, onHold: () => Promise.reject(new Error('measure failed')) })).rejects.toThrow('measure failed');
    expect(released).toBe(true);
  });
  it('fails when the console closes early', async () => {
    const toHost = new PassThrough();
    const p = runConsoleScript(toHost, new PassThrough(), 'true');
    toHost.end('VMNET-READY\npanic\n');
    await expect(p).rejects.toMatchObject({ code: 'E_GUEST_PROTOCOL' });
  });
  it('times out', async () => {
    await expect(runConsoleScript(new PassThrough(), new PassThrough(), 'true', { timeoutMs: 20 })).rejects.toMatchObject({ code: 'E_TIMEOUT' });
  });
});
