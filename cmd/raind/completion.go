package main

import (
	"fmt"
	"strings"
)

// Flags offered by completion, per command ("" is the global ones).
var completionFlags = map[string]string{
	"":                  "--host --tls-cert --tls-key --tls-ca",
	"container create":  createFlagWords,
	"container run":     createFlagWords + " --rm -d --detach",
	"container stop":    "--timeout",
	"container restart": "--timeout",
	"container kill":    "-s --signal",
	"container rm":      "-f --force",
	"container logs":    "-f --follow --tail --timestamps --since",
	"container ls":      "--format -a --all",
	"container stats":   "--format",
	"image pull":        "--platform",
	"image ls":          "--format",
	"image rm":          "-f --force",
}

const createFlagWords = "--name -e --environment -v --volume -p --publish -t --tty --entrypoint -w --workdir -u --user --memory --cpus --pids-limit --restart --read-only"

// words returns the top-level words and each group's subcommands.
func completionWords() (top []string, sub map[string][]string) {
	sub = map[string][]string{}
	for _, n := range commandNames() {
		group, verb, ok := strings.Cut(n, " ")
		if !ok {
			top = append(top, n)
			continue
		}
		if sub[group] == nil {
			top = append(top, group)
		}
		sub[group] = append(sub[group], verb)
	}
	return top, sub
}

func cmdCompletion(c *cli, args []string) error {
	if len(args) != 1 {
		return usagef("completion: bash or zsh")
	}
	top, sub := completionWords()
	var cases strings.Builder
	for _, g := range []string{"container", "image"} {
		fmt.Fprintf(&cases, "    %s) words=%q ;;\n", g, strings.Join(sub[g], " "))
	}
	for _, k := range commandNames() {
		if v, ok := completionFlags[k]; ok {
			fmt.Fprintf(&cases, "    %q) words=%q ;;\n", k, v)
		}
	}
	cases.WriteString("    completion) words=\"bash zsh\" ;;\n")
	switch args[0] {
	case "bash":
		fmt.Fprintf(c.out, bashScript, strings.Join(top, " "), completionFlags[""], cases.String())
	case "zsh":
		fmt.Fprintf(c.out, "#compdef raind\nautoload -U +X bashcompinit && bashcompinit\n"+bashScript, strings.Join(top, " "), completionFlags[""], cases.String())
	default:
		return usagef("completion %q: bash or zsh", args[0])
	}
	return nil
}

// bashScript completes the command words (skipping flags and their values
// loosely) then the command's flags; the rest falls back to files.
const bashScript = `# raind completion; load with: source <(raind completion bash)
_raind() {
  local cur=${COMP_WORDS[COMP_CWORD]} cmd="" w i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case $w in
      --host|-H|--tls-cert|--tls-key|--tls-ca) ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=$w; elif [[ $cmd == container || $cmd == image ]]; then cmd="$cmd $w"; fi ;;
    esac
  done
  words=""
  case $cmd in
    "") words="%s %s" ;;
%s  esac
  if [[ $cur == -* || $cmd == "" || $cmd == container || $cmd == image || $cmd == completion ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _raind raind
`
