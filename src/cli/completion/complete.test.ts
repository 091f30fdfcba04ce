import type { Argv } from 'yargs';
import { describe, expect, it } from 'vitest';
import { completeFor, completions, joinBashWords } from './complete.js';
import { programSpec } from './spec.js';

const root = programSpec('tool', [
  {
    command: 'run [image]',
    describe: 'run',
    builder: (y: Argv) =>
      y
        .positional('image', { type: 'string' })
        .option('net', { type: 'string', array: true })
        .option('memory', { alias: 'm', type: 'string' })
        .option('detach', { alias: 'd', type: 'boolean', default: false })
        .option('host', { type: 'boolean', default: true })
        .option('secret', { type: 'boolean', hidden: true }),
  },
  { command: 'stop <name>', describe: 'stop', builder: (y: Argv) => y.positional('name', { type: 'string' }) },
  {
    command: 'switch <command>',
    describe: 'switches',
    builder: (y: Argv) =>
      y
        .command({ command: ['ls', 'list'], describe: 'list', handler: () => {} })
        .command({ command: 'rm <name>', describe: 'rm', handler: () => {} })
        .command({ command: 'serve <name>', describe: false, handler: () => {} }),
  },
]);
const names = { vms: ['web', 'db'], switches: ['lab'] };

describe('completion candidates', () => {
  it('reads commands, aliases, positionals and flags from the builders', () => {
    const sw = root.commands.find((c) => c.name === 'switch')!;
    expect(sw.commands.map((c) => [c.name, c.aliases, c.hidden])).toEqual([['ls', ['list'], false], ['rm', [], false], ['serve', [], true]]);
    expect(root.commands[0]!.flags.map((f) => f.names)).toEqual([['net'], ['memory', 'm'], ['detach', 'd'], ['host'], ['secret']]);
  });

  it('follows subcommands, flag values and positionals up to the cursor', () => {
    expect(completions(root, ['s'], 0, names)).toEqual(['stop', 'switch']);
    expect(completions(root, ['switch', 'list', ''], 2, names)).toEqual([]); // an alias descends too
    expect(completions(root, ['switch', 'rm', ''], 2, names)).toEqual(['lab']);
    expect(completions(root, ['stop', '-m', ''], 2, names)).toEqual(['web', 'db']); // -m is no flag of stop: a positional
    expect(completions(root, ['run', '-m', '1G', '-d', ''], 4, names)).toEqual([]); // the image: files
    expect(completions(root, ['run', '--memory=1G', '--net', ''], 3, names)).toEqual(['user', 'none', 'switch:lab']);
    expect(completions(root, ['run', '--no-host', '--net', 'sw'], 3, names)).toEqual(['switch:lab']);
    expect(completions(root, ['run', '--', '--net', ''], 3, names)).toEqual([]);
    expect(completions(root, ['run', '--'], 1, names)).toEqual(['--net', '--memory', '--detach', '--host', '--no-host', '--help', '--version']);
    expect(completions(root, ['run', '-'], 1, names)).toContain('-m');
  });

  it("glues bash's ':' and '=' pieces and cuts the candidates after the last one", () => {
    expect(joinBashWords(['run', '--net', 'switch', ':', 'l'], 4)).toEqual({ words: ['run', '--net', 'switch:l'], cword: 2 });
    expect(joinBashWords(['run', '--net', 'switch', ':'], 3)).toEqual({ words: ['run', '--net', 'switch:'], cword: 2 });
    expect(joinBashWords(['st'], 1)).toEqual({ words: ['st', ''], cword: 1 });
    expect(completeFor('bash', root, ['run', '--net', 'switch', ':', 'l'], 4, names)).toEqual(['lab']);
    expect(completeFor('zsh', root, ['run', '--net', 'switch:l'], 2, names)).toEqual(['switch:lab']);
  });
});
