/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { haveChromium, launchChromium, openPage } from "../helpers/browser.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { makeTestTokens, pushWith } from "../helpers/test-tokens.js";
import { waitForLine } from "../helpers/ui-page.js";

const tokens = makeTestTokens();
let fixture: LeaderFixture;
let browser: Browser;

describe.skipIf(!haveChromium)("signing in to the UI", () => {
  beforeAll(async () => {
    fixture = await startTestLeader({ auth: { tokens: tokens.entries } } as Parameters<typeof startTestLeader>[0]);
    browser = await launchChromium();
    await pushWith(fixture.url, { token: tokens.plain.worker }, { runId: "login-run" }, ["visible after sign-in"]);
  });

  afterAll(async () => {
    await browser?.close();
    await fixture?.dispose();
  });

  test("asks for a reader token, keeps it in sessionStorage and sends it as a header, never in a URL; signs out", async () => {
    const { page, problems } = await openPage(browser, `${fixture.url}/`);
    const urls: string[] = [];
    const authorized: string[] = [];
    page.on("request", (req) => {
      urls.push(req.url());
      const header = req.headers().authorization;
      if (header) authorized.push(header);
    });
    const field = page.getByLabel("Reader token");
    await field.waitFor();

    await field.fill("jl_not-a-real-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "did not accept that token" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("joblog.token"))).toBeNull();

    await page.getByLabel("Reader token").fill(tokens.plain.reader);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "login-run" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("joblog.token"))).toBe(tokens.plain.reader);

    // A log streams with the header too (Tail), and the token survives loading another page in the tab.
    await page.goto(`${fixture.url}/runs/login-run/tasks/build`);
    expect(await waitForLine(page, 1)).toBe("visible after sign-in");
    expect(authorized).toContain(`Bearer ${tokens.plain.reader}`);
    for (const url of [...urls, page.url()]) {
      expect(url).not.toContain(tokens.plain.reader);
      expect(url).not.toContain("token");
    }

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Reader token").waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("joblog.token"))).toBeNull();
    // The refused calls are the leader's 401s; nothing else went wrong on the page.
    expect(problems.errors.filter((e) => !e.includes("401"))).toEqual([]);
    expect(problems.dialogs).toEqual([]);
    await page.context().close();
  });

  test("another tab of the same browser starts signed out: sessionStorage is per tab", async () => {
    const { page } = await openPage(browser, `${fixture.url}/`);
    await page.getByLabel("Reader token").fill(tokens.plain.reader);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "login-run" }).waitFor();
    const other = await page.context().newPage();
    await other.goto(`${fixture.url}/runs/login-run`);
    await other.getByLabel("Reader token").waitFor();
    await page.context().close();
  });
});
