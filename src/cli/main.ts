#!/usr/bin/env node
/** The `tollgate` command line. Each subcommand lives in its own module. */
import { settingsHelp } from "../config/settings.js";
import { buildInfo } from "../util/build-info.js";
import { blocksCommand } from "./blocks-command.js";
import { checkConfigCommand } from "./check-config-command.js";
import { completionCommand } from "./completion-command.js";
import { decisionsCommand } from "./decisions-command.js";
import { eventsCommand } from "./events-command.js";
import { injectCommand } from "./inject-command.js";
import { keysCommand } from "./keys-command.js";
import { ownersCommand } from "./owners-command.js";
import { SERVE_HELP, serveCommand } from "./serve-command.js";
import { settingsCommand } from "./settings-command.js";
import { usageCommand } from "./usage-command.js";

const HELP = `tollgate — API-key, rate-limit and security-event sidecar

Usage:
  tollgate serve [--config F]    run the server (settings from the environment, over file F)
  tollgate keys <command> ...    manage keys on a running server (tollgate keys --help)
  tollgate owners <command> ...  an owner's limit overrides on a running server (tollgate owners --help)
  tollgate blocks <command> ...  list or lift blocks on a running server (tollgate blocks --help)
  tollgate events list|alerts    security events and alerts of a running server (tollgate events --help)
  tollgate decisions tail        a replica's recent decisions, --follow for live ones (tollgate decisions --help)
  tollgate usage KEY_ID          a key's requests over time, with a text chart (tollgate usage --help)
  tollgate usage report          charge a cost known after the response (tollgate usage report --help)
  tollgate check-config FILE     validate a policy file and print the effective table
                                 (--server URL: beside the runtime overrides of a running server)
  tollgate inject --tls-cert F --tls-key F  serve the Kubernetes sidecar-injection webhook
  tollgate settings [--config F] each setting's effective value and where it comes from
                                 (--markdown: the settings table of the README)
  tollgate version               version, commit and Node (also --version)
  tollgate completion bash|zsh   shell completion (source <(tollgate completion bash))
  tollgate --help

Settings (environment variables):
${settingsHelp()}
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "serve":
      if (rest.includes("--help") || rest.includes("-h")) {
        process.stdout.write(SERVE_HELP);
        return 0;
      }
      // After a drain, exit even if a client library still holds a timer open:
      // the shutdown deadline is a promise to the orchestrator.
      return serveCommand(rest).then((code) => process.exit(code));
    case "keys":
      return keysCommand(rest);
    case "owners":
      return ownersCommand(rest);
    case "blocks":
      return blocksCommand(rest);
    case "events":
      return eventsCommand(rest);
    case "decisions":
      return decisionsCommand(rest);
    case "usage":
      return usageCommand(rest);
    case "inject":
      return injectCommand(rest);
    case "check-config":
      return checkConfigCommand(rest);
    case "completion":
      return completionCommand(rest);
    case "version":
    case "--version":
    case "-v": {
      const b = buildInfo();
      process.stdout.write(`tollgate ${b.version} (commit ${b.commit}, node ${b.node})\n`);
      return 0;
    }
    case "settings":
      return settingsCommand(rest);
    case undefined:
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`tollgate: unknown command "${cmd}"; see tollgate --help\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`tollgate: ${err.message}\n`);
    process.exitCode = 1;
  },
);
