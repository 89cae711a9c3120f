/**
 * `tollgate completion bash|zsh`: a shell completion script for the commands,
 * their subcommands and flags. Install with
 * `source <(tollgate completion bash)` (or add that line to ~/.bashrc);
 * zsh: `source <(tollgate completion zsh)`.
 */

import { KEYS_FLAGS } from "./keys-flags.js";
import { OVERRIDE_FLAGS } from "./override-flags.js";
import { USAGE_REPORT_FLAGS } from "./usage-report-command.js";

/** Commands → subcommands → flags (kept beside the commands' own help). */
export const COMMANDS: Record<string, Record<string, string[]>> = {
  serve: { "": ["--config", "--help"] },
  // The keys subcommands' own tables: completion offers exactly what each parser takes.
  keys: Object.fromEntries(
    Object.entries(KEYS_FLAGS).map(([sub, flags]) => [
      sub,
      Object.keys(flags).map((f) => `--${f}`),
    ]),
  ),
  owners: {
    override: Object.keys(OVERRIDE_FLAGS).map((f) => `--${f}`),
    overrides: ["--limit"],
  },
  blocks: { list: ["--limit"], lift: ["--key", "--ip", "--subject"] },
  events: {
    list: ["--subject", "--kind", "--type", "--since", "--limit", "--page-token", "--follow"],
    alerts: ["--rule", "--subject", "--since", "--limit", "--page-token"],
  },
  decisions: { tail: ["--follow", "--key", "--denied", "--lines", "--limit"] },
  usage: {
    "": ["--since", "--granularity", "--endpoint"],
    report: USAGE_REPORT_FLAGS.map((f) => `--${f}`),
  },
  "check-config": { "": ["--server", "--token-file"] },
  inject: { "": ["--tls-cert", "--tls-key"] },
  settings: { "": ["--config", "--markdown"] },
  version: { "": [] },
  completion: { bash: [], zsh: [] },
};

/** Flags every client command takes. */
const COMMON = ["--server", "--token-file", "--json", "--help"];

function bash(): string {
  const cases = Object.entries(COMMANDS)
    .map(([cmd, subs]) => {
      const names = Object.keys(subs).filter(Boolean).join(" ");
      const flagCases = Object.entries(subs)
        .map(
          ([sub, flags]) => `        ${sub || "*"}) flags="${[...flags, ...COMMON].join(" ")}" ;;`,
        )
        .join("\n");
      return `    ${cmd})
      if [[ $COMP_CWORD -eq 2 && -n "${names}" ]]; then
        COMPREPLY=($(compgen -W "${names}" -- "$cur")); return
      fi
      case "\${COMP_WORDS[2]}" in
${flagCases}
        *) flags="${COMMON.join(" ")}" ;;
      esac ;;`;
    })
    .join("\n");
  return `# bash completion for tollgate: source <(tollgate completion bash)
_tollgate() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" flags=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${Object.keys(COMMANDS).join(" ")} --help --version" -- "$cur")); return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -o default -F _tollgate tollgate
`;
}

function zsh(): string {
  // zsh runs bash completions through bashcompinit: one definition to keep.
  return `# zsh completion for tollgate: source <(tollgate completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash()}`;
}

/** Runs the command; returns the exit code. */
export function completionCommand(args: string[]): number {
  const shell = args[0];
  if (shell === "bash" || shell === "zsh") {
    process.stdout.write(shell === "bash" ? bash() : zsh());
    return 0;
  }
  process.stderr.write(
    "Usage: tollgate completion bash|zsh\n  e.g. add `source <(tollgate completion bash)` to ~/.bashrc\n",
  );
  return 2;
}
