/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import type { Page } from "playwright-core";

/**
 * What the UI tests read from a page: counts and rows of the log view, read
 * from the DOM the way a person sees them.
 */

/** The line count the log view's status bar shows. */
export async function shownLineCount(page: Page, scope = ".main-log"): Promise<number> {
  const text = (await page.locator(`${scope} [data-testid="line-count"]`).textContent()) ?? "";
  return Number(text.replace(/[^0-9]/g, ""));
}

/** Waits until the status bar shows `n` lines. */
export async function waitForLineCount(page: Page, n: number, scope = ".main-log"): Promise<void> {
  await page.waitForFunction(
    ([sel, want]) => {
      const text = document.querySelector(`${sel} [data-testid="line-count"]`)?.textContent ?? "";
      return Number(text.replace(/[^0-9]/g, "")) === want;
    },
    [scope, n] as const,
  );
}

/** Waits until line `n` is rendered with its text (not a placeholder) and returns that text. */
export async function waitForLine(page: Page, n: number, scope = ".main-log"): Promise<string> {
  const row = page.locator(`${scope} .log-line[data-line="${n}"]:not(.pending) .text`);
  await row.waitFor();
  return (await row.textContent()) ?? "";
}

/**
 * Scrolls the log view from top to bottom and returns every line's text by
 * line number, as rendered: a virtualized list shows only part of the log at a
 * time. Bounded: at most `maxSteps` screens.
 */
export async function collectRenderedLines(page: Page, scope = ".main-log", maxSteps = 200): Promise<Map<number, string[]>> {
  const seen = new Map<number, string[]>();
  await page.locator(`${scope} [data-testid="log-scroller"]`).evaluate((el) => {
    el.scrollTop = 0;
  });
  for (let step = 0; step < maxSteps; step++) {
    // Wait until the virtual list has rendered the rows of this scroll position (the first one
    // visible included: right after a scroll the previous window may still be on screen) and
    // they hold their text, then read them.
    await page.waitForFunction((sel) => {
      const scroller = document.querySelector(`${sel} [data-testid="log-scroller"]`);
      const first = document.querySelector(`${sel} .log-line`);
      if (!scroller || !first) return false;
      const rowHeight = first.getBoundingClientRect().height || 20;
      const topLine = Math.floor(scroller.scrollTop / rowHeight) + 1;
      return (
        document.querySelector(`${sel} .log-line[data-line="${topLine}"]`) !== null &&
        document.querySelectorAll(`${sel} .log-line.pending`).length === 0
      );
    }, scope);
    const rows = await page
      .locator(`${scope} .log-line`)
      .evaluateAll((els) => els.map((el) => [Number(el.getAttribute("data-line")), el.querySelector(".text")?.textContent ?? ""] as const));
    for (const [n, text] of rows) {
      const texts = seen.get(n) ?? [];
      // The same row is rendered on consecutive screens; count it once per screen position.
      if (!texts.includes(text)) texts.push(text);
      seen.set(n, texts);
    }
    const atEnd = await page.locator(`${scope} [data-testid="log-scroller"]`).evaluate((el) => {
      if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) return true;
      el.scrollTop += el.clientHeight;
      return false;
    });
    if (atEnd) return seen;
  }
  throw new Error(`the log did not end within ${maxSteps} screens`);
}
