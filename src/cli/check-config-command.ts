import { parseArgs } from "node:util";
import { loadPolicyFile, type Policy, PolicyError } from "../policy/policy.js";
import { batchedBounds, policyTable } from "../policy/policy-table.js";
import { createClients, reportRpcError } from "./client.js";
import { overrideRows, PRECEDENCE } from "./override-flags.js";

const HELP = `Usage: tollgate check-config FILE [--replicas N] [--server URL [--token-file F]]
  Validates a policy file; prints the effective table or every error, and how
  runtime overrides apply. --replicas (default 3): the replica count the
  admission bounds of sync: batched limits are computed for. With --server (alias --url), also the runtime
  overrides active on that running server (needs the management token, as
  for tollgate keys: TOLLGATE_MANAGEMENT_TOKEN, _FILE or --token-file).
`;

/** `tollgate check-config FILE`: validates a policy and prints its effective table. */
export async function checkConfigCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCheckConfig>;
  try {
    parsed = parseCheckConfig(args);
  } catch (err) {
    process.stderr.write(`tollgate check-config: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  if (o.help || positionals.length !== 1) {
    process.stdout.write(HELP);
    return o.help ? 0 : 2;
  }
  let policy: Policy;
  try {
    policy = await loadPolicyFile(positionals[0] as string);
  } catch (err) {
    if (err instanceof PolicyError) {
      // One problem per line, each with its field's path.
      const n = err.issues.length;
      process.stderr.write(
        n === 0
          ? `invalid policy: ${err.message}\n`
          : `invalid policy: ${err.source}: ${n} ${n === 1 ? "error" : "errors"}\n${err.issues.map((i) => `  ${i}\n`).join("")}`,
      );
      return 1;
    }
    throw err;
  }
  const replicas = Number(o.replicas ?? "3");
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 10_000) {
    process.stderr.write(
      "tollgate check-config: --replicas must be a whole number from 1 to 10000\n",
    );
    return 2;
  }
  process.stdout.write(
    `${formatPolicy(policy)}\n${batchedText(policy, replicas)}${overridesText()}`,
  );
  const server = o.server ?? o.url;
  if (server === undefined) return 0;
  const { keys, baseUrl } = createClients({
    server,
    ...(o["token-file"] !== undefined && { tokenFile: o["token-file"] }),
  });
  try {
    const res = await keys.listLimitOverrides({ pageSize: 1000 });
    const rows = overrideRows(res.limitOverrides);
    process.stdout.write(
      `\nruntime overrides active at ${baseUrl}:\n${rows.length > 0 ? rows.map((r) => `  ${r}\n`).join("") : "  none\n"}${res.truncated ? "  (more not shown)\n" : ""}`,
    );
    return 0;
  } catch (err) {
    return reportRpcError("tollgate check-config", err, baseUrl);
  }
}

/** The admission bounds of the batched limits, when the policy has any. */
function batchedText(p: Policy, replicas: number): string {
  const lines = batchedBounds(p, replicas);
  if (lines.length === 0) return "";
  return `batched limits (sync: batched; R replicas on one store):\n${lines.map((l) => `  ${l}\n`).join("")}\n`;
}

/**
 * How overrides apply, printed under every valid policy's table (a function:
 * override-flags.ts imports this module's `table`, so no value of it is read
 * while the modules load).
 */
const overridesText =
  () => `overrides (runtime, per key or per owner: tollgate keys override, tollgate owners override):
  ${PRECEDENCE}
  a raise or a lower keeps the limit's bucket (the usage counted); a new rate period starts a fresh one
  seen by every replica at once (invalidation bus), at worst after TOLLGATE_CACHE_TTL_MS
`;

function parseCheckConfig(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      server: { type: "string" },
      url: { type: "string" },
      replicas: { type: "string" },
      "token-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

/**
 * The effective policy as text: the rows of policyTable (policy/policy-table.ts,
 * which the console's policy page shows too) laid out in columns.
 */
export function formatPolicy(p: Policy): string {
  const t = policyTable(p);
  const indent = (rows: string[]) => rows.map((l) => `  ${l}`);
  const lines = [`policy ${t.source}: OK`, "", `tiers (default ${t.defaultTier}):`];
  for (const tier of t.tiers) {
    lines.push(`  ${tier.name}${tier.description ? `  — ${tier.description}` : ""}`);
    // A key's own plan (CreateKey / UpdateKey) wins over this one.
    if (tier.credits) lines.push(`    credits: ${tier.credits}`);
  }
  lines.push("", "endpoints (first match wins; paths matched after normalisation):");
  lines.push(
    ...indent(
      table(
        ["name", "method", "path", "scopes", "cost", "fail"],
        t.endpoints.map((e) => [e.name, e.method, e.path, e.scopes, e.cost, e.fail]),
      ),
    ),
  );
  lines.push("", "effective limits (tier × endpoint):");
  // A pair's second and later limits leave the tier and endpoint columns blank.
  const limits = t.limits.map((r, i) => {
    const prev = t.limits[i - 1];
    const same = prev !== undefined && prev.tier === r.tier && prev.endpoint === r.endpoint;
    return same ? ["", "", r.limit] : [r.tier, r.endpoint, r.limit];
  });
  lines.push(...indent(table(["tier", "endpoint", "limits"], limits)));
  lines.push("", `blocking: ${t.blocking}`, "");
  if (t.envoy.length === 0) lines.push("envoy_ratelimit: no domains");
  else
    lines.push(
      "envoy_ratelimit (descriptors; key without a value: one bucket per value):",
      ...indent(
        table(
          ["domain", "descriptor", "limit"],
          t.envoy.map((e) => [e.domain, e.descriptor, e.limit]),
        ),
      ),
    );
  lines.push("");
  if (!t.rlqs) lines.push("rlqs: no buckets");
  else
    lines.push(
      "rlqs (Envoy rate_limit_quota; each Envoy admits at most the units of its assignment):",
      ...indent(
        table(
          ["domain", "match", "limit", "per assignment"],
          t.rlqs.map((r) => [r.domain, r.match, r.limit, r.assignment]),
        ),
      ),
    );
  lines.push("");
  if (t.detection.length === 0) lines.push("detection: no rules");
  else
    lines.push(
      "detection rules:",
      ...indent(
        table(
          ["name", "kind", "fires when", "events", "severity", "cool-down", "action"],
          t.detection.map((r) => [
            r.name,
            r.kind,
            r.firesWhen,
            r.events,
            r.severity,
            r.cooldown,
            r.action,
          ]),
        ),
      ),
      `webhooks: ${t.webhooks}`,
    );
  lines.push("");
  if (t.notifications.length === 0) lines.push("notifications: none");
  else lines.push("notifications:", ...indent(t.notifications));
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
