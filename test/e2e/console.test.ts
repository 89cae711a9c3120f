/**
 * The web console in a real browser (Debian's chromium driven by
 * playwright-core) against the built server: log in, create a key (its secret
 * shown once, copied with the Copy button), see it authorize in the live
 * tail, watch its limits' usage go up on its page, revoke it with a reason,
 * see the denial; lift a block; compare the policy page with what
 * `tollgate check-config` prints for the same file.
 *
 * Every page is photographed on every run, after its main heading and its
 * content are on screen and no error is shown: into a temp dir normally, into
 * docs/console/<page>.png with TOLLGATE_CONSOLE_SCREENSHOTS=write (how the
 * committed pictures are made; CI leaves the work tree alone).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkConfigLimitRows } from "../helpers/check-config-table.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "console-e2e-management-token";
/** A named read-only token (TOLLGATE_MANAGEMENT_TOKENS_FILE): may look, may not change. */
const VIEWER_TOKEN = "console-e2e-viewer-token-0123";
const POLICY = "examples/policy.yaml";
const WRITE_SHOTS = process.env.TOLLGATE_CONSOLE_SCREENSHOTS === "write";
/** A fixed viewport keeps every picture the same size, and small. */
const VIEWPORT = { width: 1280, height: 800 };

let server: TollgateProcess;
let browser: BrowserContext;
let page: Page;
let profile: string;
let shotDir: string;

let tokensDir: string;

beforeAll(async () => {
  tokensDir = mkdtempSync(join(tmpdir(), "tollgate-console-tokens-"));
  writeFileSync(join(tokensDir, "tokens"), `viewer:${VIEWER_TOKEN} read-only\n`);
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_MANAGEMENT_TOKENS_FILE: join(tokensDir, "tokens"),
    TOLLGATE_POLICY_FILE: POLICY,
    TOLLGATE_CONSOLE: "true",
  });
  profile = mkdtempSync(join(tmpdir(), "tollgate-console-chromium-"));
  shotDir = WRITE_SHOTS
    ? new URL("../../docs/console/", import.meta.url).pathname
    : mkdtempSync(join(tmpdir(), "tollgate-console-shots-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: VIEWPORT,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  await browser.grantPermissions(["clipboard-read", "clipboard-write"], {
    origin: server.httpUrl,
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  // No request may leave the console's origin (fonts, scripts, charts are bundled).
  page.on("request", (r) => {
    if (!r.url().startsWith(server.httpUrl)) foreign.push(r.url());
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // Chromium reports what the CSP refused (an inline script or style, a foreign fetch) on the console.
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) pageErrors.push(m.text());
  });
}, 60_000);

const foreign: string[] = [];
const pageErrors: string[] = [];

afterAll(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (shotDir && !WRITE_SHOTS) rmSync(shotDir, { recursive: true, force: true });
  if (tokensDir) rmSync(tokensDir, { recursive: true, force: true });
  expect(await server?.stop()).toBe(0);
});

/**
 * Photographs the page once its main heading says `heading`, `ready` (a
 * selector of its content) is visible and no error is on screen; asserts the
 * picture is a real one (a blank or half-drawn page fails here).
 */
async function shot(name: string, heading: string, ready: string): Promise<void> {
  await page.locator("h1", { hasText: heading }).first().waitFor({ state: "visible" });
  await page.locator(ready).first().waitFor({ state: "visible" });
  const errors = await page.locator(".error").allTextContents();
  expect(errors.map((e) => e.trim()).filter(Boolean), `errors on the ${name} page`).toEqual([]);
  const png = await page.screenshot({ path: join(shotDir, `${name}.png`) });
  // A blank 1280×800 page compresses to a few kB; a drawn one is far larger.
  expect(png.length, `${name}.png`).toBeGreaterThan(20_000);
}

/**
 * Opens a console page (`#/blocks`), logging in first if this browser has no
 * session yet, so each test also runs on its own (`-t`).
 */
async function open(hash: string): Promise<void> {
  await page.goto(`${server.httpUrl}/console/${hash}`);
  const token = page.locator("input[name=token]");
  await Promise.race([
    token.waitFor({ state: "visible" }),
    page.locator("nav").waitFor({ state: "visible" }),
  ]);
  if (await token.isVisible()) {
    await token.fill(TOKEN);
    await page.click("button[type=submit]");
    await page.locator("nav").waitFor({ state: "visible" });
    await page.goto(`${server.httpUrl}/console/${hash}`);
  }
}

/** Calls a Tollgate RPC through Connect JSON, as an application would. */
async function call(method: string, body: unknown, token = ""): Promise<Record<string, unknown>> {
  const r = await fetch(`${server.httpUrl}/tollgate.v1.TollgateService/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token && { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  expect(r.status, `${method}: ${text}`).toBe(200);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Authorize with the key, as an application would; `applyLimits` charges its limits. */
function authorize(secret: string, applyLimits = false) {
  return call("Authorize", {
    apiKey: secret,
    method: "GET",
    path: "/v1/widgets",
    clientIp: "203.0.113.7",
    applyLimits,
  }) as Promise<{ allowed?: boolean; reason?: string }>;
}

/**
 * The use of a key's limit as its page shows it, e.g. `3 / 100000`: the row
 * of the limit named `limit` that counts requests matching no endpoint (an
 * endpoint may override a limit of the same name, in a bucket of its own).
 */
function usedOf(limit: string) {
  return page.locator(`#key-limits tr[data-limit="${limit}"]:has-text("(no match)") td.used`);
}

describe.skipIf(!existsSync(CHROMIUM))("the web console", () => {
  it("logs in, creates a key, sees it authorize live, watches its usage, revokes it and sees the denial", async () => {
    await page.goto(`${server.httpUrl}/console/`);
    await page.fill("input[name=token]", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector("text=Decisions per second");

    // Create: the secret is shown once, and Copy puts it on the clipboard.
    await page.click("nav >> text=Keys");
    await page.fill("#create-key input[name=owner]", "console-e2e");
    await page.click("#create-key button[type=submit]");
    const secret = (await page.textContent("#new-secret", { timeout: 10_000 }))?.trim() ?? "";
    expect(secret).toMatch(/^tg_[a-z0-9]+_[0-9A-Za-z]+$/);
    await page.click("#copy-secret");
    await page.waitForSelector("#copy-secret >> text=Copied");
    // Runs in the page (this file is type-checked without the DOM library).
    const clipboard = "navigator.clipboard.readText()";
    expect(await page.evaluate(clipboard)).toBe(secret);
    await page.waitForSelector("#keys >> text=console-e2e");
    const keyId = (await page.textContent("#keys tr:nth-child(2) a"))?.trim() ?? "";
    expect(keyId).toMatch(/^key_/);
    // Shown once: reloading the page does not show it again.
    await page.reload();
    await page.waitForSelector("#keys >> text=console-e2e");
    expect(await page.content()).not.toContain(secret);
    await shot("keys", "Keys", "#keys >> text=console-e2e");

    // The live tail shows the application's Authorize with the new key.
    await page.click("nav >> text=Live tail");
    await page.waitForSelector("#tail-status >> text=live");
    expect((await authorize(secret)).allowed).toBe(true);
    await page.waitForSelector(`#tail tr.allowed >> text=${keyId}`);

    // The key's page: its limits, and their use going up with Authorize + apply_limits.
    await page.goto(`${server.httpUrl}/console/#/key/${keyId}`);
    await page.waitForSelector("#key-status >> text=ACTIVE");
    // vitest polls for 1 s by default; a loaded CI machine may need longer.
    await expect
      .poll(() => usedOf("monthly").textContent(), { timeout: 10_000 })
      .toBe("0 / 100000");
    expect(await page.textContent('#key-limits tr[data-limit="monthly"]')).toContain(
      "owner console-e2e",
    );
    for (let i = 0; i < 3; i++) expect((await authorize(secret, true)).allowed).toBe(true);
    // The page re-reads every 2 s; reading charges nothing, so it settles at 3.
    await expect
      .poll(() => usedOf("monthly").textContent(), { timeout: 10_000 })
      .toBe("3 / 100000");
    const perKey = (await usedOf("per-key").textContent()) ?? "";
    expect(perKey).toMatch(/^\d+ \/ 20$/);
    // Two readings or more: the usage chart has a line to draw.
    await page.waitForSelector(".chart canvas");
    await page.waitForTimeout(2_500);
    await shot("key", `Key ${keyId}`, "#key-limits");

    // Revoke with a reason; the page says so.
    await page.fill("#revoke input[name=reason]", "leaked in a test");
    await page.click("#revoke button[type=submit]");
    await page.waitForSelector("#key-status >> text=REVOKED");
    expect(await page.textContent("#key-fields")).toContain("leaked in a test");

    // The next Authorize is denied, and the tail shows the denial — never the secret.
    await page.click("nav >> text=Live tail");
    await page.waitForSelector("#tail-status >> text=live");
    const denied = await authorize(secret);
    expect(denied.allowed ?? false).toBe(false);
    expect(denied.reason).toBe("REASON_REVOKED_KEY");
    await page.waitForSelector("#tail tr.denied >> text=REVOKED_KEY");
    expect(await page.content()).not.toContain(secret);
    await shot("tail", "Live decisions", "#tail tr.denied");

    await page.click("nav >> text=Overview");
    await page.waitForSelector("text=REVOKED_KEY");
    await shot("overview", "Overview", "#policy-version");

    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it("shows an alert and its block, and lifts the block", async () => {
    // 20 requests without a key from one IP: 20 auth_failure events, and the
    // example policy's brute-force rule alerts and blocks that IP.
    const ip = "198.51.100.9";
    for (let i = 0; i < 20; i++) {
      const r = await call("Authorize", {
        apiKey: "",
        method: "GET",
        path: "/v1/orders",
        clientIp: ip,
      });
      expect(r.reason).toBe("REASON_MISSING_KEY");
    }
    // Detection runs as the recorder flushes: wait for the block to be listed.
    await expect
      .poll(
        async () => {
          const r = await fetch(`${server.httpUrl}/tollgate.v1.KeyService/ListBlocks`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
            body: "{}",
          });
          return JSON.stringify(await r.json());
        },
        { timeout: 15_000 },
      )
      .toContain(ip);
    await open("#/blocks");
    await page.waitForSelector(`#blocks >> text=${ip}`);
    await page.waitForSelector("#alerts >> text=brute-force");
    await shot("blocks", "Alerts and blocks", `#blocks >> text=${ip}`);
    await page.click(`#blocks tr:has-text("${ip}") button`);
    await expect
      .poll(() => page.locator(`#blocks >> text=${ip}`).count(), { timeout: 10_000 })
      .toBe(0);
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("shows the effective policy: the rows check-config prints for the same file", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, "check-config", POLICY]);
    const printed = checkConfigLimitRows(stdout);
    expect(printed.length).toBeGreaterThan(10);
    await open("#/overview");
    await page.click("nav >> text=Policy");
    await page.waitForSelector("#policy-limits td");
    const shown = await page
      .locator("#policy-limits tr:has(td)")
      .evaluateAll((rows) =>
        rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent?.trim() ?? "")),
      );
    expect(shown).toEqual(printed);
    expect(await page.textContent("#policy-blocking")).toBe(stdout.match(/^blocking: (.*)$/m)?.[1]);
    // The notifications section as check-config words it ("none" without one).
    expect(await page.textContent("#policy-notifications")).toBe(
      stdout.match(/^notifications: (.*)$/m)?.[1],
    );
    await shot("policy", "Effective policy", "#policy-limits");
    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("lets a read-only token look at every page and offers it no change", async () => {
    const made = await fetch(`${server.httpUrl}/tollgate.v1.KeyService/CreateKey`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ owner: "console-viewer" }),
    });
    expect(made.status).toBe(200);
    // A page of its own: its session storage holds the viewer's token, not the operator's.
    const viewer = await browser.newPage();
    viewer.on("pageerror", (e) => pageErrors.push(e.message));
    try {
      await viewer.goto(`${server.httpUrl}/console/#/keys`);
      await viewer.fill("input[name=token]", VIEWER_TOKEN);
      await viewer.click("button[type=submit]");
      await viewer.waitForSelector("nav >> text=viewer (read-only)");
      await viewer.waitForSelector("#keys >> text=console-viewer");
      expect(await viewer.isDisabled("#create-key button[type=submit]")).toBe(true);
      await viewer.click('#keys tr:has-text("console-viewer") a');
      await viewer.waitForSelector("#key-limits td.used");
      expect(await viewer.isDisabled("#revoke button[type=submit]")).toBe(true);
      await viewer.click("nav >> text=Policy");
      await viewer.waitForSelector("#policy-limits td");
    } finally {
      await viewer.close();
    }
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
