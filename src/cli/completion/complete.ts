/**
 * Theory of operation: the candidates for the word under the cursor, from
 * the command tree (spec.ts) and the names of running VMs and switches.
 * Pure: the shell scripts (scripts.ts) hand over the words and the cursor's
 * index, the edge (names.ts) reads the names.
 *
 * Walking the words before the cursor: a subcommand's name descends into
 * it, a flag that takes a value swallows the next word, `--flag=value` is
 * one word, any other word is the next positional, and `--` ends vmnet's
 * arguments (what follows goes to QEMU verbatim: nothing to offer). At the
 * cursor: a word starting with `-` gets the flags of the command and the
 * global ones (`--no-NAME` for booleans that default to true); after a flag
 * that takes a value, its choices or its names; elsewhere the subcommands,
 * or the positional's choices or names. Nothing to offer means "a file":
 * the scripts fall back to the shell's file completion.
 *
 * Names: a positional called `name` is a running VM's name, or a switch's
 * under `vmnet switch`; `--net` takes `user`, `none` or `switch:NAME`.
 *
 * bash splits words at the characters in COMP_WORDBREAKS, `:` and `=`
 * among them, so `switch:la` arrives as `switch`, `:`, `la`, and whatever
 * bash inserts replaces only the part after the last `:`. joinBashWords()
 * glues such pieces back together, and the bash candidates are cut after
 * the last `:` or `=` of the word being completed (what bash-completion's
 * __ltrim_colon_completions does).
 */
import type { CommandSpec, FlagSpec } from './spec.js';

export type Shell = 'bash' | 'zsh';

/** Names that running things have, read on demand. */
export interface Names {
  vms: string[];
  switches: string[];
}

/**
 * Glues words bash split at `:` and `=` back together.
 * @param words the words after the program name
 * @param cword the index of the word under the cursor in `words`
 */
export function joinBashWords(words: string[], cword: number): { words: string[]; cword: number } {
  const out: string[] = [];
  let at = -1;
  let glue = false;
  words.forEach((w, i) => {
    if ((w === ':' || w === '=') && out.length > 0) {
      out[out.length - 1] += w;
      glue = true;
    } else if (glue) {
      out[out.length - 1] += w;
      glue = false;
    } else out.push(w);
    if (i === cword) at = out.length - 1;
  });
  if (at < 0) {
    out.push('');
    at = out.length - 1;
  }
  return { words: out, cword: at };
}

const dashed = (n: string) => (n.length === 1 ? `-${n}` : `--${n}`);

function findFlag(flags: FlagSpec[], word: string): FlagSpec | undefined {
  const name = word.replace(/^--?/, '');
  return flags.find((f) => f.names.includes(name) || (f.negatable && name === `no-${f.names[0]}`));
}

/** What goes where a value of `flag` is asked for, at `path`. */
function flagValues(flag: FlagSpec, names: Names): string[] {
  if (flag.choices) return flag.choices;
  if (flag.names[0] === 'net') return ['user', 'none', ...names.switches.map((s) => `switch:${s}`)];
  return [];
}

/** What goes in positional `name` of the command at `path`. */
function positionalValues(path: string[], name: string, choices: string[] | null, names: Names): string[] {
  if (choices) return choices;
  if (name !== 'name') return [];
  return path[0] === 'switch' ? names.switches : names.vms;
}

/**
 * The candidates for the word under the cursor.
 * @param root the program's command tree
 * @param words the words after the program name (bash: already joined)
 * @param cword index of the word under the cursor
 * @param names running VMs and switches
 * @returns the candidates that start with the word under the cursor; empty means files
 */
export function completions(root: CommandSpec, words: string[], cword: number, names: Names): string[] {
  let spec = root;
  const path: string[] = [];
  let pos = 0;
  let pending: FlagSpec | null = null;
  const flagsHere = () => [...spec.flags, ...(spec === root ? [] : root.flags)];
  for (const w of words.slice(0, cword)) {
    if (pending) {
      pending = null;
      continue;
    }
    if (w === '--') return [];
    if (w.startsWith('-') && w !== '-') {
      const f = w.includes('=') ? undefined : findFlag(flagsHere(), w);
      if (f?.takesValue && !w.startsWith('--no-')) pending = f;
      continue;
    }
    const sub = spec.commands.find((c) => c.name === w || c.aliases.includes(w));
    if (sub) {
      spec = sub;
      path.push(sub.name);
      pos = 0;
    } else pos++;
  }
  const cur = words[cword] ?? '';
  let all: string[];
  if (pending) all = flagValues(pending, names);
  else if (cur.startsWith('-')) {
    all = flagsHere()
      .filter((f) => !f.hidden)
      .flatMap((f) => (f.negatable ? [dashed(f.names[0]!), `--no-${f.names[0]}`] : f.names.map(dashed)));
  } else if (spec.commands.some((c) => !c.hidden)) {
    all = spec.commands.filter((c) => !c.hidden).map((c) => c.name);
  } else {
    const ps = spec.positionals;
    const p = ps[Math.min(pos, ps.length - 1)];
    all = p && (pos < ps.length || p.variadic) ? positionalValues(path, p.name, p.choices, names) : [];
  }
  return [...new Set(all)].filter((c) => c.startsWith(cur));
}

/**
 * The candidates as the shell wants them.
 * @param shell bash gets the part after the last `:` or `=` of the current word (see the theory)
 */
export function completeFor(shell: Shell, root: CommandSpec, rawWords: string[], rawCword: number, names: Names): string[] {
  const { words, cword } = shell === 'bash' ? joinBashWords(rawWords, rawCword) : { words: rawWords, cword: rawCword };
  const out = completions(root, words, cword, names);
  if (shell !== 'bash') return out;
  const cur = words[cword] ?? '';
  const cut = Math.max(cur.lastIndexOf(':'), cur.lastIndexOf('='));
  return cut < 0 ? out : out.map((c) => c.slice(cut + 1));
}
