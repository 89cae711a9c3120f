/** `tollgate completion bash` completes commands, subcommands and flags in a real bash. */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CLI } from "../helpers/tollgate-process.js";

const script = execFileSync(process.execPath, [CLI, "completion", "bash"]).toString();

function complete(words: string[]): string[] {
  const out = execFileSync("bash", [
    "-c",
    `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _tollgate; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]).toString();
  return out.split("\n").filter(Boolean);
}

describe("tollgate completion bash", () => {
  it("completes commands, subcommands and flags", () => {
    expect(complete(["tollgate", "ke"])).toEqual(["keys"]);
    expect(complete(["tollgate", "keys", "re"])).toEqual(["revoke"]);
    expect(complete(["tollgate", "keys", "create", "--ow"])).toEqual(["--owner"]);
    expect(complete(["tollgate", "keys", "list", "--se"])).toEqual(["--server"]);
    expect(complete(["tollgate", "serve", "--con"])).toEqual(["--config"]);
  });

  it("refuses an unknown shell with usage (exit 2)", () => {
    let code = 0;
    try {
      execFileSync(process.execPath, [CLI, "completion", "fish"], { stdio: "pipe" });
    } catch (err) {
      code = (err as { status: number }).status;
    }
    expect(code).toBe(2);
  });
});
