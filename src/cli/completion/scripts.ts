/**
 * Theory of operation: the scripts `vmnet completion bash|zsh` prints. Each
 * defines one function that hands the words on the command line and the
 * cursor's index to `vmnet __complete SHELL CWORD WORDS...` (complete.ts)
 * and offers what it prints, one candidate per line; when it prints
 * nothing (a file argument) the shell's own file completion takes over.
 * The scripts call `vmnet` as found on PATH, like the completion of npm or
 * git: install vmnet globally (or put its bin directory on PATH).
 */

export const BASH = `# vmnet completion for bash.
# Load it now:      source <(vmnet completion bash)
# Or for good:      vmnet completion bash > ~/.local/share/bash-completion/completions/vmnet
_vmnet_completions() {
  local IFS=$'\\n'
  COMPREPLY=($(vmnet __complete bash "$((COMP_CWORD - 1))" "\${COMP_WORDS[@]:1}" 2>/dev/null))
  if [ \${#COMPREPLY[@]} -eq 0 ]; then
    compopt -o default 2>/dev/null
  fi
  return 0
}
complete -F _vmnet_completions vmnet
`;

export const ZSH = `#compdef vmnet
# vmnet completion for zsh (after compinit).
# Load it now:      source <(vmnet completion zsh)
# Or for good:      vmnet completion zsh > "\${fpath[1]}/_vmnet"
_vmnet() {
  local -a reply
  reply=("\${(@f)$(vmnet __complete zsh "$((CURRENT - 2))" "\${(@)words[2,-1]}" 2>/dev/null)}")
  reply=("\${(@)reply:#}")
  if (( \${#reply} )); then
    compadd -- "\${reply[@]}"
  else
    _files
  fi
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _vmnet "$@"
else
  compdef _vmnet vmnet
fi
`;
