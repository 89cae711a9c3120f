import { loadPolicyFile, type Policy, PolicyError } from "../policy/policy.js";

/** `tollgate check-config FILE`: validates a policy and prints its effective table. */
export async function checkConfigCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h") || args.length !== 1) {
    process.stdout.write(
      "Usage: tollgate check-config FILE\n  Validates a policy file; prints the effective table or every error.\n",
    );
    return args.length === 1 ? 0 : 2;
  }
  try {
    const policy = await loadPolicyFile(args[0] as string);
    process.stdout.write(formatPolicy(policy));
    return 0;
  } catch (err) {
    if (err instanceof PolicyError) {
      process.stderr.write(`invalid policy: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** The effective policy as a readable table. */
export function formatPolicy(p: Policy): string {
  const lines = [`policy ${p.source}: OK`, "", `tiers (default ${p.defaultTier}):`];
  for (const [name, t] of p.tiers)
    lines.push(`  ${name}${t.description ? `  — ${t.description}` : ""}`);
  lines.push("", "endpoints (first match wins):");
  const rows = p.endpoints.map((e) => [
    e.name,
    e.methods ? [...e.methods].join(",") : "*",
    e.pattern,
    e.scopes.join(" ") || "-",
  ]);
  lines.push(...table(["name", "method", "path", "scopes"], rows).map((l) => `  ${l}`));
  if (rows.length === 0) lines.push("  (none: no scopes are required by path)");
  return `${lines.join("\n")}\n`;
}

/** Left-aligned columns. */
export function table(head: string[], rows: string[][]): string[] {
  if (rows.length === 0) return [];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)];
}
