/**
 * Theory of operation: what `vmnet doctor` found, as data (one Check per
 * subject, with a verdict and what to run) and as text. Pure: the checks
 * themselves live in host-checks.ts and vmnet-checks.ts. Text that came
 * from other programs (QEMU's error lines, versions) is escaped for the
 * terminal here (config/printable.ts); JSON carries it as it was.
 *
 * Verdicts: `ok` works; `warn` works in a lesser way or needs attention
 * (KVM unusable, so TCG; a tool the guest build needs is missing); `fail`
 * stops vmnet from running VMs (no QEMU, QEMU older than 7.2, an unusable
 * runtime directory); `info` a fact about the host with nothing to fix.
 * The report is ok when nothing failed.
 */
import { printable } from '../config/printable.js';

export type Verdict = 'ok' | 'warn' | 'fail' | 'info';

/** One subject `vmnet doctor` looked at. */
export interface Check {
  /** Stable identifier: 'qemu', 'kvm', 'runtime-dir', … */
  id: string;
  /** What is shown in the first column. */
  title: string;
  verdict: Verdict;
  /** One line: what was found. */
  summary: string;
  /** Further lines: what it means. */
  detail: string[];
  /** What to run about it, or null when nothing is to be done. */
  fix: string | null;
  /** Machine-readable facts (in --json). */
  data: Record<string, unknown>;
}

/** A Check with no detail, no data and nothing to do unless given. */
export const makeCheck = (c: Omit<Check, 'detail' | 'data' | 'fix'> & Partial<Pick<Check, 'detail' | 'data' | 'fix'>>): Check => ({
  id: c.id,
  title: c.title,
  verdict: c.verdict,
  summary: c.summary,
  detail: c.detail ?? [],
  fix: c.fix ?? null,
  data: c.data ?? {},
});

export interface DoctorReport {
  /** True when no check failed. */
  ok: boolean;
  vmnet: string;
  node: string;
  platform: string;
  arch: string;
  uid: number | null;
  checks: Check[];
}

/**
 * Renders the report for a terminal.
 * @returns lines, the last one the verdict
 */
export function formatReport(r: DoctorReport): string[] {
  const lines = [`vmnet doctor: vmnet ${r.vmnet}, Node ${r.node}, ${r.platform} ${r.arch}${r.uid === null ? '' : `, uid ${r.uid}`}`, ''];
  const indent = ' '.repeat(2 + 6 + 14);
  for (const c of r.checks) {
    lines.push(`  ${c.verdict.padEnd(6)}${c.title.padEnd(14)}${printable(c.summary)}`);
    for (const d of c.detail) lines.push(indent + printable(d));
    if (c.fix !== null) lines.push(`${indent}to do: ${printable(c.fix)}`);
  }
  const count = (v: Verdict) => r.checks.filter((c) => c.verdict === v).length;
  const [fails, warns] = [count('fail'), count('warn')];
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  lines.push('', r.ok ? `vmnet can run VMs here${warns ? `; ${plural(warns, 'warning')} above` : ''}` : `vmnet cannot run VMs here: ${plural(fails, 'problem')}${warns ? ` and ${plural(warns, 'warning')}` : ''} above, each with what to do`);
  return lines;
}
