/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { haveChromium, launchChromium, openPage } from "../helpers/browser.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { batchOf, createGrpcLogClient, messages, type PushMessage, type TestLine } from "../helpers/log-service-client.js";
import { waitForLine } from "../helpers/ui-page.js";

const LINES = 1_000_000;
const PER_BATCH = 10_000;
const PER_STREAM = 100_000;
const NEEDLE = "needle-only-on-line-ten";
const RUN = "huge-1";
const TASK = "build";

const textOf = (n: number) => (n === 10 ? `line 10 holds the ${NEEDLE}` : `line ${n} of a long build log`);

let fixture: LeaderFixture;
let browser: Browser;

describe.skipIf(!haveChromium)("a 1,000,000-line log in the browser", () => {
  beforeAll(async () => {
    fixture = await startTestLeader();
    browser = await launchChromium();
    const grpc = createGrpcLogClient(fixture.url);
    try {
      const base = Date.now();
      for (let first = 1; first <= LINES; first += PER_STREAM) {
        const stream: PushMessage[] = [];
        for (let b = first; b < first + PER_STREAM; b += PER_BATCH) {
          const lines: TestLine[] = Array.from({ length: PER_BATCH }, (_, i) => ({ text: textOf(b + i), stream: "stdout", tsOffsetMs: 0 }));
          stream.push({ task: { runId: RUN, task: TASK }, batch: batchOf(b, base, lines) });
        }
        if (first + PER_STREAM > LINES) stream.push({ complete: { result: Result.SUCCEEDED, exitCode: 0 } });
        await grpc.client.push(messages(...stream));
      }
    } finally {
      grpc.close();
    }
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await fixture?.dispose();
  });

  test("opens at its end with few rows in the DOM, loads earlier lines on scrolling up, and a search finds line 10", async () => {
    const started = performance.now();
    const { page, problems } = await openPage(browser, `${fixture.url}/runs/${RUN}/tasks/${TASK}`);
    await page.locator(".main-log .log-line:not(.pending)").first().waitFor();
    const firstLineMs = performance.now() - started;
    expect(await waitForLine(page, LINES)).toBe(textOf(LINES));
    const lastLineMs = performance.now() - started;
    console.log(
      `1,000,000-line log (times from opening a new browser tab): first line after ${firstLineMs.toFixed(0)} ms, last line after ${lastLineMs.toFixed(0)} ms`,
    );

    const rows = await page.locator(".log-line").count();
    expect(rows).toBeGreaterThan(10);
    expect(rows).toBeLessThan(300);
    expect(await page.locator(".main-log [data-testid='line-count']").textContent()).toContain("1,000,000");

    // Scrolling up past what the tail-first read brought loads the lines above it.
    const scroller = page.locator(".main-log [data-testid='log-scroller']");
    for (let i = 0; i < 10; i++) await scroller.evaluate((el) => el.scrollBy(0, -400 * 20));
    const top = await scroller.evaluate((el) => Math.floor(el.scrollTop / 20) + 1);
    expect(top).toBeLessThan(LINES - 3_900);
    expect(await waitForLine(page, top + 1)).toBe(textOf(top + 1));
    expect(await page.locator(".log-line").count()).toBeLessThan(300);

    // A jump into the middle (a dragged scrollbar) loads there, by asking the leader where the line starts.
    await scroller.evaluate((el) => {
      el.scrollTop = 500_000 * 20;
    });
    expect(await waitForLine(page, 500_010)).toBe(textOf(500_010));

    // The search covers the whole log on the leader, not what the page holds.
    const search = page.getByRole("searchbox", { name: "Search the whole log" });
    await search.fill(NEEDLE);
    await search.press("Enter");
    await page.locator(".main-log .log-line.current-match[data-line='10']").waitFor();
    expect(await waitForLine(page, 10)).toBe(textOf(10));
    await page.locator(".main-log .search-status", { hasText: "1/1 match" }).waitFor();
    expect(await page.locator(".log-line").count()).toBeLessThan(300);
    expect(problems.errors).toEqual([]);
    await page.context().close();
  }, 180_000);
});
