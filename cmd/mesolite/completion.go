package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

const completionUsage = `usage: mesolite completion bash|zsh

Prints a shell completion script for mesolite's commands, options, files
and, from a running agent ($MESOLITE_URL), application and task ids.

  bash:  source <(mesolite completion bash)        (in ~/.bashrc)
  zsh:   source <(mesolite completion zsh)         (in ~/.zshrc, after compinit)
`

// agentOptions are the options of "mesolite agent" (runAgent's flags).
var agentOptions = []string{"--config", "--listen", "--work-dir", "--log-level", "--log-format", "--help"}

// completionArg is what a command's positional arguments are.
func completionArg(cmd *cliCommand) string {
	switch {
	case strings.HasPrefix(cmd.name, "group"):
		return "none"
	case strings.Contains(cmd.args, "FILE"):
		return "file"
	case strings.Contains(cmd.args, "TASK"):
		return "task"
	case strings.Contains(cmd.args, "ID"), strings.Contains(cmd.args, "APP"):
		return "app"
	}
	return "none"
}

// completionTable is the data both scripts are made of: for each command
// line of words ("", "app", "app add"), the words or options that may
// follow and what its arguments are.
type completionEntry struct {
	key     string // the command's words, space-separated
	words   []string
	options []string
	arg     string // none, file, app, task
}

func completionTable() []completionEntry {
	top := []string{"agent", "version", "completion", "help", "marathon"}
	subs := map[string][]string{}
	var out []completionEntry
	for _, c := range cliCommands {
		first, rest, ok := strings.Cut(c.name, " ")
		if ok {
			subs[first] = append(subs[first], rest)
		} else {
			top = append(top, first)
		}
		opts := []string{"--help", "--url"}
		for _, b := range c.bools {
			opts = append(opts, "--"+b)
		}
		for _, v := range c.values {
			opts = append(opts, "--"+v)
		}
		out = append(out, completionEntry{key: c.name, options: opts, arg: completionArg(c)})
	}
	for g, ws := range subs {
		top = append(top, g)
		out = append(out, completionEntry{key: g, words: ws})
	}
	sort.Strings(top)
	out = append(out,
		completionEntry{key: "", words: top},
		completionEntry{key: "agent", options: agentOptions},
		completionEntry{key: "completion", words: []string{"bash", "zsh"}},
	)
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// valueOptionPattern are the options that take the next word as value.
const valueOptionPattern = "--url|--lines|--type|--config|--listen|--work-dir|--log-level|--log-format"

func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, completionUsage)
		return 2
	}
	switch args[0] {
	case "bash":
		writeBashCompletion(stdout)
	case "zsh":
		writeZshCompletion(stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, completionUsage)
	default:
		fmt.Fprintf(stderr, "mesolite completion: unknown shell %q: bash or zsh\n", args[0])
		return 2
	}
	return 0
}

// The scripts find the command's words (positional words before the
// cursor, without "marathon" and without options and their values), then
// offer what the table says for them.

func writeBashCompletion(w io.Writer) {
	fmt.Fprint(w, `# bash completion for mesolite: source <(mesolite completion bash)
_mesolite_ids() {
  command mesolite "$1" list --quiet 2>/dev/null
}
_mesolite() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local -a pos=()
  local i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in
      marathon) ;;
      `+valueOptionPattern+`) ((i++)) ;;
      -*) ;;
      *) pos+=("$w") ;;
    esac
  done
  case "$prev" in
    --config|--work-dir) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "auto console json" -- "$cur")); return ;;
    --url|--lines|--type|--listen) COMPREPLY=(); return ;;
  esac
  local key="${pos[*]:0:2}" words="" opts="" arg=none
  [[ ${#pos[@]} -ge 1 && "${pos[0]}" != app && "${pos[0]}" != task && "${pos[0]}" != group && "${pos[0]}" != volume ]] && key="${pos[0]}"
  [[ ${#pos[@]} -eq 0 ]] && key=""
  case "$key" in
`)
	for _, e := range completionTable() {
		fmt.Fprintf(w, "    %q) words=%q; opts=%q; arg=%s ;;\n", e.key, strings.Join(e.words, " "), strings.Join(e.options, " "), e.arg)
	}
	fmt.Fprint(w, `  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  local n=${#pos[@]}
  if [[ -n "$words" && ( $n -eq 0 || ( $n -eq 1 && "$key" == "${pos[0]}" ) ) ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return
  fi
  case "$arg" in
    file) COMPREPLY=($(compgen -f -- "$cur")) ;;
    app) COMPREPLY=($(compgen -W "$(_mesolite_ids app)" -- "$cur")) ;;
    task) COMPREPLY=($(compgen -W "$(_mesolite_ids task)" -- "$cur")) ;;
    *) COMPREPLY=() ;;
  esac
}
complete -F _mesolite mesolite
`)
}

func writeZshCompletion(w io.Writer) {
	fmt.Fprint(w, `#compdef mesolite
# zsh completion for mesolite: source <(mesolite completion zsh)
_mesolite() {
  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}"
  local -a pos
  local i w
  for ((i = 2; i < CURRENT; i++)); do
    w="${words[i]}"
    case "$w" in
      marathon) ;;
      `+valueOptionPattern+`) ((i++)) ;;
      -*) ;;
      *) pos+=("$w") ;;
    esac
  done
  case "$prev" in
    --config|--work-dir) _files; return ;;
    --log-level) compadd -- debug info warn error; return ;;
    --log-format) compadd -- auto console json; return ;;
    --url|--lines|--type|--listen) return ;;
  esac
  local key="" words_="" opts="" arg=none
  if (( ${#pos} >= 1 )); then
    case "${pos[1]}" in
      app|task|group|volume) key="${pos[1]}"; (( ${#pos} >= 2 )) && key="${pos[1]} ${pos[2]}" ;;
      *) key="${pos[1]}" ;;
    esac
  fi
  case "$key" in
`)
	for _, e := range completionTable() {
		fmt.Fprintf(w, "    %q) words_=%q; opts=%q; arg=%s ;;\n", e.key, strings.Join(e.words, " "), strings.Join(e.options, " "), e.arg)
	}
	fmt.Fprint(w, `  esac
  if [[ "$cur" == -* ]]; then
    compadd -- ${=opts}
    return
  fi
  if [[ -n "$words_" ]] && (( ${#pos} == 0 || ( ${#pos} == 1 ) )) && [[ ${#pos} -eq 0 || "$key" == "${pos[1]}" ]]; then
    compadd -- ${=words_}
    return
  fi
  case "$arg" in
    file) _files ;;
    app) compadd -- ${(f)"$(command mesolite app list --quiet 2>/dev/null)"} ;;
    task) compadd -- ${(f)"$(command mesolite task list --quiet 2>/dev/null)"} ;;
  esac
}
if (( $+functions[compdef] )); then
  compdef _mesolite mesolite
fi
`)
}
