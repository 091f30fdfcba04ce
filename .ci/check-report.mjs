#!/usr/bin/env node
// Theory of operation: the verdict of .ci/run, kept in a file of its own so
// test/ci/check-report.test.ts can feed it fabricated reports. It reads the
// JSON report vitest wrote (VMNET_TEST_REPORT, see vitest.config.ts) and the
// exit status of the test command, and fails the run when
//   - there is no report, or it holds no test at all;
//   - the test command failed, or any test or test file failed;
//   - fewer tests ran (passed + failed) than the minimum in .ci/expected-tests,
//     so a file that stops being collected, a describe that returns early or
//     a test deleted by mistake cannot pass unnoticed;
//   - a test was skipped or left as todo without being listed, by name, in
//     .ci/allowed-skips (`it.skip`, `skipIf`, `ctx.skip()`, and the tests a
//     stray `.only` turns off; .ci/run also exports CI=true, under which
//     vitest fails a `.only` itself).
// Problems go to stderr, one line each; the last line on stdout is the
// summary, printed whatever the verdict. Exit 0 = pass, 1 = fail.
//
// Usage: node .ci/check-report.mjs REPORT STATUS [CI_DIR]
//   REPORT  path of vitest's JSON report (may be missing)
//   STATUS  exit status of the test command
//   CI_DIR  where expected-tests and allowed-skips live (default: this directory)
//
// A test's name, as .ci/allowed-skips lists it: its file relative to the
// repository root, then its describe blocks and its title, joined by " > ",
// e.g. `test/e2e/gateway.test.ts > gateway e2e > writes a pcap`.
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lines of a list file without comment lines (starting with #) and blank lines; a missing file is an empty list. */
function listFile(path) {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * Judges one run.
 * @param {object|null} report vitest's JSON report, or null when missing or unreadable
 * @param {number} status the test command's exit status
 * @param {{ expected: number, allowedSkips: string[], root: string }} rules
 * @returns {{ ok: boolean, problems: string[], notes: string[], summary: string }}
 */
export function judge(report, status, rules) {
  const problems = [];
  const notes = [];
  const r = report ?? {};
  const passed = r.numPassedTests ?? 0;
  const failed = r.numFailedTests ?? 0;
  const skipped = [];
  for (const file of r.testResults ?? []) {
    const rel = relative(rules.root, file.name ?? '');
    for (const t of file.assertionResults ?? []) {
      if (t.status === 'passed' || t.status === 'failed') continue;
      skipped.push({ name: [rel, ...(t.ancestorTitles ?? []), t.title].join(' > '), status: t.status });
    }
  }
  const countKnown = Number.isInteger(rules.expected) && rules.expected > 0;
  if (!countKnown) problems.push('.ci/expected-tests holds no test count');
  if (report === null) problems.push('no test report was written (did the test command run vitest?)');
  else if (!r.numTotalTests) problems.push('the test report holds no tests');
  if (status !== 0) problems.push(`the test command exited with status ${status}`);
  if (failed > 0) problems.push(`${failed} test(s) failed`);
  if ((r.numFailedTestSuites ?? 0) > 0) problems.push(`${r.numFailedTestSuites} test file(s) or suite(s) failed`);
  const ran = passed + failed;
  if (report !== null && countKnown && ran < rules.expected) problems.push(`${ran} tests ran, fewer than the ${rules.expected} recorded in .ci/expected-tests`);
  if (report !== null && countKnown && ran > rules.expected) notes.push(`${ran} tests ran, more than the ${rules.expected} in .ci/expected-tests: raise it to ${ran}`);
  const allowed = new Set(rules.allowedSkips);
  const seen = new Set();
  for (const t of skipped) {
    seen.add(t.name);
    if (!allowed.has(t.name)) problems.push(`${t.status} but not listed in .ci/allowed-skips: ${t.name}`);
  }
  for (const name of allowed) if (!seen.has(name)) notes.push(`listed in .ci/allowed-skips but not skipped: ${name}`);
  const ok = problems.length === 0;
  const summary = `tests: ${passed} passed, ${failed} failed, ${skipped.length} skipped (at least ${countKnown ? rules.expected : '?'} must run): ${ok ? 'pass' : 'FAIL'}`;
  return { ok, problems, notes, summary };
}

/** Reads the report and the rules, prints problems and the summary; returns the exit code. */
export function main(argv) {
  const [reportPath, statusText, ciDir = dirname(fileURLToPath(import.meta.url))] = argv;
  let report = null;
  try {
    report = JSON.parse(readFileSync(reportPath ?? '', 'utf8'));
  } catch {
    report = null;
  }
  const rules = {
    expected: Number(listFile(join(ciDir, 'expected-tests'))[0]),
    allowedSkips: listFile(join(ciDir, 'allowed-skips')),
    root: join(ciDir, '..'),
  };
  const v = judge(report, Number(statusText), rules);
  for (const n of v.notes) console.error(`CI: note: ${n}`);
  for (const p of v.problems) console.error(`CI: FAIL: ${p}`);
  console.log(v.summary);
  return v.ok ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
