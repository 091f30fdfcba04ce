import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DownloadEvent } from '../images/download.js';
import { downloadReporter } from './download-report.js';

const MiB = 2 ** 20;
const url = 'http://mirror.example/debian.qcow2';
const ev = (phase: DownloadEvent['phase'], more: Partial<DownloadEvent> = {}): DownloadEvent => ({ event: 'download', time: 't', phase, url, bytes: 0, total: 300 * MiB, ...more });
const events = [
  ev('start', { insecure: true, resumed: false }),
  ev('progress', { bytes: 12 * MiB, rateBps: 4 * MiB, etaS: 72 }),
  ev('progress', { bytes: 150 * MiB, rateBps: 5 * MiB, etaS: 30 }),
  ev('retry', { bytes: 150 * MiB, reason: 'mirror.example reset the connection', retryInMs: 1000 }),
  ev('start', { bytes: 150 * MiB, resumed: true }),
  ev('progress', { bytes: 300 * MiB, rateBps: 5 * MiB, etaS: 0 }),
  ev('done', { bytes: 300 * MiB, sha256: 'ab'.repeat(32) }),
];

function render(o: { tty: boolean; json: boolean }): string {
  let out = '';
  const stderr = {} as Writable;
  const report = downloadReporter(stderr, o);
  for (const e of events) report(e, (_s, text) => (out += text));
  return out;
}

describe('download reporting', () => {
  it('on a terminal: one progress line rewritten in place, closed by the lines that follow', () => {
    expect(render({ tty: true, json: false })).toBe(
      'vmnet: warning: http://mirror.example/debian.qcow2 comes over plain HTTP and no --digest checks it: anyone on the way can change the image (pass --digest sha256:HEX)\n' +
        '\r\x1b[Kvmnet: downloading http://mirror.example/debian.qcow2: 12.0 MiB / 300 MiB (4%), 4.0 MiB/s, ETA 1:12' +
        '\r\x1b[Kvmnet: downloading http://mirror.example/debian.qcow2: 150 MiB / 300 MiB (50%), 5.0 MiB/s, ETA 0:30' +
        '\r\x1b[Kvmnet: download of http://mirror.example/debian.qcow2: mirror.example reset the connection; retrying in 1 s\n' +
        '\r\x1b[Kvmnet: downloading http://mirror.example/debian.qcow2: 300 MiB / 300 MiB (100%), 5.0 MiB/s, ETA 0:00' +
        `\r\x1b[Kvmnet: downloaded http://mirror.example/debian.qcow2 (300 MiB), sha256:${'ab'.repeat(32)}\n`,
    );
  });
  it('in a log: a line per start, retry and end, no progress line; with --json only the warning', () => {
    expect(render({ tty: false, json: false }).split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^vmnet: warning: /),
      'vmnet: downloading http://mirror.example/debian.qcow2 (300 MiB)',
      'vmnet: download of http://mirror.example/debian.qcow2: mirror.example reset the connection; retrying in 1 s',
      'vmnet: resuming http://mirror.example/debian.qcow2 at 150 MiB (300 MiB)',
      `vmnet: downloaded http://mirror.example/debian.qcow2 (300 MiB), sha256:${'ab'.repeat(32)}`,
    ]);
    expect(render({ tty: true, json: true }).split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^vmnet: warning: /)]);
  });
  it('a failed download ends the progress line, so the error that follows starts a line of its own', () => {
    let out = '';
    const report = downloadReporter({} as Writable, { tty: true, json: false });
    report(ev('progress', { bytes: MiB }), (_s, t) => (out += t));
    report(ev('failed', { reason: 'x' }), (_s, t) => (out += t));
    expect(out.endsWith('\n')).toBe(true);
    out = '';
    report(ev('failed', { reason: 'x' }), (_s, t) => (out += t));
    expect(out).toBe('');
  });
  it('escapes what the server and the user wrote', () => {
    let out = '';
    downloadReporter({} as Writable, { tty: false, json: false })(ev('retry', { reason: 'HTTP 503 \x1b[2J', retryInMs: 0 }), (_s, t) => (out += t));
    expect(out).not.toContain('\x1b');
  });
});
