/**
 * The verdict of .ci/run (.ci/check-report.mjs), run as CI runs it — `node
 * .ci/check-report.mjs REPORT STATUS CI_DIR` — against fabricated vitest
 * reports and against reports the real vitest writes for tiny fixture
 * suites (a skip, a stray .only under CI=true), so the reader and vitest's
 * JSON cannot drift apart.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateTmp } from '../helpers/tmp.js';

const repo = join(import.meta.dirname, '../..');
const CHECK = join(repo, '.ci/check-report.mjs');
const VITEST = join(repo, 'node_modules/vitest/vitest.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A scratch repository root with .ci/expected-tests and .ci/allowed-skips. */
function scratch(expected: number | string, skips: string[] = []): { root: string; ci: string } {
  const root = privateTmp('vmnet-ci-');
  const ci = join(root, '.ci');
  mkdirSync(ci);
  writeFileSync(join(ci, 'expected-tests'), `# minimum number of tests that must run\n${expected}\n`);
  writeFileSync(join(ci, 'allowed-skips'), `# one test name per line\n${skips.join('\n')}\n`);
  return { root, ci };
}

type Status = 'passed' | 'failed' | 'skipped' | 'pending' | 'todo';

/** A report shaped like vitest 4's JSON reporter output. */
function report(root: string, tests: Array<[file: string, titles: string[], status: Status]>, suitesFailed = 0) {
  const files = new Map<string, Array<{ ancestorTitles: string[]; title: string; fullName: string; status: Status }>>();
  for (const [file, titles, status] of tests) {
    const list = files.get(file) ?? [];
    list.push({ ancestorTitles: titles.slice(0, -1), title: titles.at(-1)!, fullName: titles.join(' '), status });
    files.set(file, list);
  }
  const n = (s: Status[]) => tests.filter((t) => s.includes(t[2])).length;
  return {
    numTotalTests: tests.length,
    numPassedTests: n(['passed']),
    numFailedTests: n(['failed']),
    numPendingTests: n(['skipped', 'pending']),
    numTodoTests: n(['todo']),
    numFailedTestSuites: suitesFailed,
    testResults: [...files].map(([file, assertionResults]) => ({ name: join(root, file), assertionResults: assertionResults.map((a) => ({ ...a, failureMessages: [] as string[] })) })),
  };
}

async function check(ci: string, rep: object | null, status = 0): Promise<Run> {
  const path = join(ci, 'report.json');
  if (rep) writeFileSync(path, JSON.stringify(rep));
  return exec(process.execPath, [CHECK, path, String(status), ci]);
}

const lastLine = (s: string) => s.trimEnd().split('\n').at(-1);
const PASS3: Array<[string, string[], Status]> = [
  ['src/a.test.ts', ['codec', 'parses'], 'passed'],
  ['src/a.test.ts', ['codec', 'emits'], 'passed'],
  ['test/e2e/b.test.ts', ['boots'], 'passed'],
];

describe('.ci/check-report.mjs on fabricated reports', () => {
  it('passes a clean run at the recorded count, summary last', async () => {
    const { root, ci } = scratch(3);
    const r = await check(ci, report(root, PASS3));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(lastLine(r.stdout)).toBe('tests: 3 passed, 0 failed, 0 skipped (at least 3 must run): pass');
  });

  it('fails when fewer tests ran than recorded', async () => {
    const { root, ci } = scratch(4);
    const r = await check(ci, report(root, PASS3));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CI: FAIL: 3 tests ran, fewer than the 4 recorded in .ci/expected-tests');
    expect(lastLine(r.stdout)).toMatch(/: FAIL$/);
  });

  it('passes more tests than recorded, with a note to raise the count', async () => {
    const { root, ci } = scratch(2);
    const r = await check(ci, report(root, PASS3));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('raise it to 3');
  });

  it('fails on an unlisted skip or todo, naming each', async () => {
    const { root, ci } = scratch(3);
    const r = await check(ci, report(root, [...PASS3, ['src/a.test.ts', ['codec', 'later'], 'skipped'], ['src/c.test.ts', ['some day'], 'todo']]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CI: FAIL: skipped but not listed in .ci/allowed-skips: src/a.test.ts > codec > later');
    expect(r.stderr).toContain('CI: FAIL: todo but not listed in .ci/allowed-skips: src/c.test.ts > some day');
    expect(lastLine(r.stdout)).toBe('tests: 3 passed, 0 failed, 2 skipped (at least 3 must run): FAIL');
  });

  it('passes a listed skip; a listed test that ran is only a note', async () => {
    const { root, ci } = scratch(3, ['src/a.test.ts > codec > later', 'src/a.test.ts > codec > parses']);
    const r = await check(ci, report(root, [...PASS3, ['src/a.test.ts', ['codec', 'later'], 'skipped']]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('note: listed in .ci/allowed-skips but not skipped: src/a.test.ts > codec > parses');
  });

  it('fails on a failed test, a failed file, or a failing test command', async () => {
    const { root, ci } = scratch(3);
    const failedTest = await check(ci, report(root, [...PASS3.slice(0, 2), ['test/e2e/b.test.ts', ['boots'], 'failed']]), 1);
    expect(failedTest.code).toBe(1);
    expect(failedTest.stderr).toContain('CI: FAIL: 1 test(s) failed');
    const failedFile = await check(ci, report(root, PASS3, 1), 1);
    expect(failedFile.code).toBe(1);
    expect(failedFile.stderr).toContain('1 test file(s) or suite(s) failed');
    // E.g. an unhandled error after the tests: every test passed, vitest still exits 1.
    const badStatus = await check(ci, report(root, PASS3), 1);
    expect(badStatus.code).toBe(1);
    expect(badStatus.stderr).toContain('the test command exited with status 1');
  });

  it('fails without a report, with an empty report, and without a recorded count', async () => {
    const { root, ci } = scratch(3);
    const none = await check(ci, null);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no test report was written');
    expect(lastLine(none.stdout)).toMatch(/^tests: 0 passed, 0 failed, 0 skipped .*: FAIL$/);
    const empty = await check(ci, report(root, []));
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('the test report holds no tests');
    const noCount = scratch('');
    const r = await check(noCount.ci, report(noCount.root, PASS3));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('.ci/expected-tests holds no test count');
  });
});

describe('.ci/check-report.mjs on reports the real vitest writes', () => {
  /**
   * Runs vitest on `files` in a scratch root and checks its report. `ci`:
   * CI=true, as .ci/run exports it; else --allowOnly, what vitest does on a
   * developer's machine (its default is allowOnly = !CI).
   */
  async function vitestThenCheck(files: Record<string, string>, expected: number, skips: string[], ci: boolean) {
    const s = scratch(expected, skips);
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(s.root, name, '..'), { recursive: true });
      writeFileSync(join(s.root, name), text);
    }
    const out = join(s.ci, 'report.json');
    const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
    delete env.VITEST;
    delete env.VITEST_WORKER_ID;
    delete env.VMNET_TEST_REPORT;
    const v = await exec(process.execPath, [VITEST, 'run', '--root', s.root, '--globals', '--reporter=json', `--outputFile=${out}`, ...(ci ? [] : ['--allowOnly'])], env);
    const r = await exec(process.execPath, [CHECK, out, String(v.code), s.ci]);
    return { vitest: v, check: r, report: JSON.parse(readFileSync(out, 'utf8')) as ReturnType<typeof report> };
  }

  it('names a skipped test as .ci/allowed-skips lists it', async () => {
    const files = { 't/a.test.ts': "describe('outer', () => { it('runs', () => {}); it.skip('waits', () => {}); });\n" };
    const unlisted = await vitestThenCheck(files, 1, [], true);
    expect(unlisted.vitest.code).toBe(0);
    expect(unlisted.check.code).toBe(1);
    expect(unlisted.check.stderr).toContain('skipped but not listed in .ci/allowed-skips: t/a.test.ts > outer > waits');
    const listed = await vitestThenCheck(files, 1, ['t/a.test.ts > outer > waits'], true);
    expect(listed.check.code, listed.check.stderr).toBe(0);
  });

  it('a stray .only: under CI=true vitest fails it; without CI it would pass, and the count and skip checks still catch it', async () => {
    const files = { 't/a.test.ts': "it.only('focused', () => {});\nit('other', () => {});\n", 't/b.test.ts': "it('elsewhere', () => {});\n" };
    const inCi = await vitestThenCheck(files, 3, [], true);
    expect(inCi.vitest.code).toBe(1);
    const focused = inCi.report.testResults.flatMap((f) => f.assertionResults).find((t) => t.title === 'focused') as { status: string; failureMessages: string[] };
    expect(focused.status).toBe('failed');
    expect(focused.failureMessages.join('\n')).toContain('Unexpected .only modifier');
    expect(inCi.check.code).toBe(1);
    expect(inCi.check.stderr).toContain('CI: FAIL: 1 test(s) failed');
    // What vitest does without CI: the .only passes, its neighbour is skipped, exit 0.
    const outside = await vitestThenCheck(files, 3, [], false);
    expect(outside.vitest.code).toBe(0);
    expect(outside.report.numPassedTests).toBe(2);
    expect(outside.check.code).toBe(1);
    expect(outside.check.stderr).toContain('2 tests ran, fewer than the 3 recorded');
    expect(outside.check.stderr).toContain('skipped but not listed in .ci/allowed-skips: t/a.test.ts > other');
  });
});

describe('the repository\'s own CI files', () => {
  it('.ci/expected-tests holds a positive count and .ci/run exports CI=true to the test command', () => {
    const lines = readFileSync(join(repo, '.ci/expected-tests'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    expect(lines).toHaveLength(1);
    expect(Number(lines[0])).toBeGreaterThan(0);
    expect(readFileSync(join(repo, '.ci/run'), 'utf8')).toMatch(/^CI=true VMNET_TEST_REPORT="\$report" bash .*"\$test_cmd"/m);
  });
});
