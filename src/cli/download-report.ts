/**
 * Theory of operation: what `vmnet run IMAGE-URL` tells the user about the
 * download (the events themselves are images/download.ts's). On a terminal
 * (stderr a TTY, no --json) progress is one line rewritten in place
 * (`\r` … erase to end of line: size, percentage, rate, ETA), closed by the
 * line that says the download is done. Elsewhere (a log, a pipe) there is
 * no progress line, only a line when a download starts, retries and ends.
 * A plain-HTTP download without --digest is warned about always (--json
 * too: the warning is on stderr, the events on stdout). URLs and reasons
 * come from the user and from the server: escaped before printing.
 */
import type { Writable } from 'node:stream';
import { printable } from '../config/printable.js';
import type { DownloadEvent } from '../images/download.js';
import { formatProgress } from '../images/progress.js';
import { formatBytes } from '../images/size.js';

/**
 * A reporter of download events for one command run.
 * @param stderr where lines go
 * @param o tty: rewrite one progress line; json: events go to stdout as NDJSON elsewhere (no progress lines here)
 * @returns a function taking each event and the writer to use
 */
export function downloadReporter(stderr: Writable, o: { tty: boolean; json: boolean }): (e: DownloadEvent, write: (stream: Writable, text: string) => void) => void {
  let lineOpen = false;
  const live = o.tty && !o.json;
  const line = (write: (stream: Writable, text: string) => void, text: string) => {
    write(stderr, `${lineOpen ? '\r\x1b[K' : ''}vmnet: ${text}\n`);
    lineOpen = false;
  };
  return (e, write) => {
    const url = printable(e.url);
    switch (e.phase) {
      case 'start':
        if (e.insecure) line(write, `warning: ${url} comes over plain HTTP and no --digest checks it: anyone on the way can change the image (pass --digest sha256:HEX)`);
        if (!live && !o.json) line(write, `${e.resumed ? `resuming ${url} at ${formatBytes(e.bytes)}` : `downloading ${url}`}${e.total !== null ? ` (${formatBytes(e.total)})` : ''}`);
        return;
      case 'progress':
        if (!live) return;
        write(stderr, `\r\x1b[Kvmnet: downloading ${url}: ${formatProgress({ bytes: e.bytes, total: e.total, rateBps: e.rateBps ?? 0, etaS: e.etaS ?? null })}`);
        lineOpen = true;
        return;
      case 'retry':
        if (!o.json) line(write, `download of ${url}: ${printable(e.reason ?? 'failed')}; ${e.retryInMs ? `retrying in ${Math.round(e.retryInMs / 100) / 10} s` : 'retrying'}`);
        return;
      case 'done':
        if (!o.json) line(write, `downloaded ${url} (${formatBytes(e.bytes)}${e.decompressed ? `, ${e.decompressed}-decompressed` : ''}), sha256:${e.sha256}`);
        return;
      case 'failed':
        // The error itself follows (main's one line): end the progress line first.
        if (lineOpen) write(stderr, '\n');
        lineOpen = false;
        return;
      case 'cached':
        return;
    }
  };
}
