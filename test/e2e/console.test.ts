/**
 * The web console in a real browser (Debian's chromium driven by
 * playwright-core) against the built server: log in, create a key (its secret
 * shown once), see it authorize in the live tail, revoke it with a reason, see
 * the denial. With TOLLGATE_CONSOLE_SCREENSHOTS=write it also saves a
 * screenshot of every page into docs/console/ (the CI run leaves them alone,
 * so the work tree stays clean).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "console-e2e-management-token";
const SHOTS = process.env.TOLLGATE_CONSOLE_SCREENSHOTS === "write";
const SHOT_DIR = new URL("../../docs/console/", import.meta.url).pathname;

let server: TollgateProcess;
let browser: BrowserContext;
let page: Page;
let profile: string;

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
    TOLLGATE_CONSOLE: "true",
  });
  profile = mkdtempSync(join(tmpdir(), "tollgate-console-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 800 },
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
  page = browser.pages()[0] ?? (await browser.newPage());
  // No request may leave the console's origin (fonts, scripts, charts are bundled).
  page.on("request", (r) => {
    if (!r.url().startsWith(server.httpUrl)) foreign.push(r.url());
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
}, 60_000);

const foreign: string[] = [];
const pageErrors: string[] = [];

afterAll(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  expect(await server?.stop()).toBe(0);
});

async function shot(name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(SHOT_DIR, `${name}.png`), fullPage: true });
}

/** Authorize through Connect JSON, as an application would. */
async function authorize(secret: string): Promise<{ allowed?: boolean; reason?: string }> {
  const r = await fetch(`${server.httpUrl}/tollgate.v1.TollgateService/Authorize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      apiKey: secret,
      method: "GET",
      path: "/v1/widgets",
      clientIp: "203.0.113.7",
    }),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as { allowed?: boolean; reason?: string };
}

describe.skipIf(!existsSync(CHROMIUM))("the web console", () => {
  it("logs in, creates a key, sees it authorize live, revokes it and sees the denial", async () => {
    await page.goto(`${server.httpUrl}/console/`);
    await page.fill("input[name=token]", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector("text=Decisions per second");
    await shot("overview");

    await page.click("nav >> text=Keys");
    await page.fill("#create-key input[name=owner]", "console-e2e");
    await page.click("#create-key button[type=submit]");
    const secret = (await page.textContent("#new-secret", { timeout: 10_000 }))?.trim() ?? "";
    expect(secret).toMatch(/^tg_[a-z0-9]+_[0-9A-Za-z]+$/);
    await page.waitForSelector("#keys >> text=console-e2e");
    await shot("keys");
    const keyId = (await page.textContent("#keys tr:nth-child(2) a"))?.trim() ?? "";
    expect(keyId).not.toBe("");
    // Shown once: reloading the page does not show it again.
    await page.reload();
    await page.waitForSelector("#keys >> text=console-e2e");
    expect(await page.content()).not.toContain(secret);

    await page.click("nav >> text=Live tail");
    await page.waitForSelector("#tail-status >> text=live");
    expect((await authorize(secret)).allowed).toBe(true);
    await page.waitForSelector(`#tail tr.allowed >> text=${keyId}`);
    await shot("tail");

    await page.goto(`${server.httpUrl}/console/#/key/${keyId}`);
    await page.waitForSelector("#key-status >> text=ACTIVE");
    await page.fill("#revoke input[name=reason]", "leaked in a test");
    await page.click("#revoke button[type=submit]");
    await page.waitForSelector("#key-status >> text=REVOKED");
    await shot("key");

    await page.click("nav >> text=Live tail");
    await page.waitForSelector("#tail-status >> text=live");
    const denied = await authorize(secret);
    expect(denied.allowed ?? false).toBe(false);
    expect(denied.reason).toBe("REASON_REVOKED_KEY");
    await page.waitForSelector("#tail tr.denied >> text=REVOKED_KEY");
    // The tail never shows a secret.
    expect(await page.content()).not.toContain(secret);

    await page.click("nav >> text=Alerts and blocks");
    await page.waitForSelector("text=Active blocks");
    await shot("blocks");
    await page.click("nav >> text=Overview");
    await page.waitForSelector("text=REVOKED_KEY");

    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
