/**
 * Reads the "effective limits" section back out of `tollgate check-config`'s
 * text: one [tier, endpoint, limit] row per limit, the blank tier and
 * endpoint cells of a pair's later limits filled in. Columns are found from
 * the dashed line under the header, so cells holding single spaces survive.
 */
export function checkConfigLimitRows(stdout: string): [string, string, string][] {
  const lines = stdout.split("\n");
  const head = lines.indexOf("effective limits (tier × endpoint):");
  if (head < 0) throw new Error("no effective limits section");
  const dashes = lines[head + 2] ?? "";
  const starts = [...dashes.matchAll(/-+/g)].map((m) => m.index ?? 0);
  if (starts.length !== 3) throw new Error(`expected 3 columns, found: ${dashes}`);
  const rows: [string, string, string][] = [];
  for (const line of lines.slice(head + 3)) {
    if (line.trim() === "") break;
    const cell = (i: number) => line.slice(starts[i], starts[i + 1]).trim();
    const prev = rows.at(-1);
    const tier = cell(0) || (prev?.[0] ?? "");
    const endpoint = cell(1) || (prev?.[1] ?? "");
    rows.push([tier, endpoint, cell(2)]);
  }
  return rows;
}
