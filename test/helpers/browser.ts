import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

/**
 * Headless Debian chromium for the UI tests (`apt-get install chromium`).
 * Without it the UI tests are skipped on a developer's machine, but under
 * CI=true a missing browser fails the run: CI installs it, so its absence
 * means the tests did not run.
 */

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Screenshots and other artifacts of the UI tests (gitignored). */
export const ARTIFACTS_DIR = join(import.meta.dirname, "..", "..", "test-artifacts");

export const haveChromium = existsSync(CHROMIUM_PATH);

if (!haveChromium && process.env.CI === "true") {
  throw new Error(`${CHROMIUM_PATH} is missing: CI must install Debian's chromium (apt-get install -y chromium) for the UI tests`);
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

export interface PageProblems {
  /** Uncaught errors and console errors, CSP violations included. */
  errors: string[];
  /** Dialogs the page opened (alert/confirm/prompt): an injected script would. */
  dialogs: string[];
}

/** A new page that records every error, console error and dialog. */
export async function openPage(
  browser: Browser,
  url: string,
  colorScheme: "light" | "dark" = "light",
): Promise<{ page: Page; problems: PageProblems }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: PageProblems = { errors: [], dialogs: [] };
  page.on("pageerror", (err) => problems.errors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.errors.push(msg.text());
  });
  page.on("dialog", (dialog) => {
    problems.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await page.goto(url);
  return { page, problems };
}

export async function saveScreenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
