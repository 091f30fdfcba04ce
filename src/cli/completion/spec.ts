/**
 * Theory of operation: shell completion needs vmnet's commands, their
 * positionals and their flags, which live in the yargs command modules
 * (src/cli/commands). Rather than keep a second copy that would drift, each
 * module's builder is run against a recorder: an object that answers every
 * yargs method by returning itself and writes down what `.command()`,
 * `.option()`, `.options()`, `.positional()` and `.alias()` declare. Command
 * strings (`'forward <action> <name> [spec]'`, `['ls', 'list']`) give the
 * names, aliases and positional order. Hidden commands (`describe: false`)
 * and hidden options are recorded as such and never offered.
 */

/** One flag as completion sees it. */
export interface FlagSpec {
  /** Long name first, then aliases (`['memory', 'm']`). */
  names: string[];
  /** Takes a value (`--memory 1G`); false for booleans and counts. */
  takesValue: boolean;
  choices: string[] | null;
  /** A boolean whose default is true: `--no-NAME` is the useful spelling. */
  negatable: boolean;
  hidden: boolean;
}

export interface PositionalSpec {
  name: string;
  variadic: boolean;
  choices: string[] | null;
}

/** A command (the root is the program itself). */
export interface CommandSpec {
  name: string;
  aliases: string[];
  hidden: boolean;
  positionals: PositionalSpec[];
  flags: FlagSpec[];
  commands: CommandSpec[];
}

/** What completion reads of a yargs CommandModule. */
export interface ModuleLike {
  command?: string | readonly string[];
  describe?: string | false;
  builder?: unknown;
}

type OptionLike = { alias?: string | readonly string[]; type?: string; choices?: readonly unknown[]; default?: unknown; hidden?: boolean; count?: boolean; boolean?: boolean };

function parseCommandString(cmd: string | readonly string[]): { name: string; aliases: string[]; positionals: PositionalSpec[] } {
  const all = (typeof cmd === 'string' ? [cmd] : [...cmd]).map((c) => c.trim().split(/\s+/));
  const first = all[0] ?? [''];
  const positionals = first.slice(1).map((p) => {
    const inner = p.replace(/^[<[]|[>\]]$/g, '');
    return { name: inner.replace(/\.\.$/, ''), variadic: inner.endsWith('..'), choices: null };
  });
  return { name: first[0] ?? '', aliases: all.slice(1).map((a) => a[0] ?? '').filter(Boolean), positionals };
}

/** Records what a builder declares into `spec`. */
function recorder(spec: CommandSpec): unknown {
  const flag = (name: string, o: OptionLike = {}) => {
    const aliases = o.alias === undefined ? [] : typeof o.alias === 'string' ? [o.alias] : [...o.alias];
    const isBool = o.type === 'boolean' || o.boolean === true || o.count === true || o.type === 'count';
    spec.flags.push({
      names: [name, ...aliases],
      takesValue: !isBool,
      choices: o.choices ? o.choices.map(String) : null,
      negatable: isBool && o.default === true,
      hidden: o.hidden === true,
    });
  };
  const self: unknown = new Proxy(
    {},
    {
      get(_t, prop) {
        switch (prop) {
          case 'option':
            return (name: string, o?: OptionLike) => (flag(name, o), self);
          case 'options':
            return (map: Record<string, OptionLike>) => {
              for (const [k, o] of Object.entries(map)) flag(k, o);
              return self;
            };
          case 'positional':
            return (name: string, o: OptionLike = {}) => {
              const p = spec.positionals.find((x) => x.name === name);
              if (p && o.choices) p.choices = o.choices.map(String);
              return self;
            };
          case 'alias':
            return (key: string, alias: string | string[]) => {
              const f = spec.flags.find((x) => x.names[0] === key);
              if (f) f.names.push(...(typeof alias === 'string' ? [alias] : alias));
              return self;
            };
          case 'command':
            return (...args: unknown[]) => {
              spec.commands.push(commandSpecOf(typeof args[0] === 'object' && !Array.isArray(args[0]) ? (args[0] as ModuleLike) : ({ command: args[0], describe: args[1], builder: args[2] } as ModuleLike)));
              return self;
            };
          case 'then':
            return undefined; // not a thenable
          default:
            return () => self;
        }
      },
    },
  );
  return self;
}

/**
 * What one command module declares, its subcommands included.
 * @param m a yargs command module (its handler is never called)
 */
export function commandSpecOf(m: ModuleLike): CommandSpec {
  const { name, aliases, positionals } = parseCommandString(m.command ?? '');
  const spec: CommandSpec = { name, aliases, hidden: m.describe === false, positionals, flags: [], commands: [] };
  const b = m.builder;
  if (typeof b === 'function') (b as (y: unknown) => unknown)(recorder(spec));
  else if (b && typeof b === 'object') for (const [k, o] of Object.entries(b as Record<string, OptionLike>)) (recorder(spec) as { option: (n: string, o: OptionLike) => unknown }).option(k, o);
  return spec;
}

/**
 * The program's tree: its commands and the global flags (--help/-h, --version).
 * @param modules the top-level command modules, as main() registers them
 */
export function programSpec(name: string, modules: readonly ModuleLike[]): CommandSpec {
  return {
    name,
    aliases: [],
    hidden: false,
    positionals: [],
    flags: [
      { names: ['help', 'h'], takesValue: false, choices: null, negatable: false, hidden: false },
      { names: ['version'], takesValue: false, choices: null, negatable: false, hidden: false },
    ],
    commands: modules.map(commandSpecOf),
  };
}
