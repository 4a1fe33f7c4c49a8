/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { haveChromium, launchChromium, openPage, saveScreenshot } from "../helpers/browser.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { createGrpcLogClient, type GrpcLogClient } from "../helpers/log-service-client.js";
import { collectRenderedLines, shownLineCount, waitForLine, waitForLineCount } from "../helpers/ui-page.js";

let fixture: LeaderFixture;
let browser: Browser;
let grpc: GrpcLogClient;

// A real leader, a real worker (the TaskLogWriter library) and headless chromium.
describe.skipIf(!haveChromium)("the browser UI", () => {
  beforeAll(async () => {
    fixture = await startTestLeader();
    browser = await launchChromium();
    grpc = createGrpcLogClient(fixture.url);
  });

  afterAll(async () => {
    grpc?.close();
    await browser?.close();
    await fixture?.dispose();
  });

  const writer = (runId: string, task: string, workflow = "default") =>
    TaskLogWriter.open({ leader: fixture.url, runId, task, workflow, settings: { batchMaxIntervalMs: 10 } });

  test("lines appear live; paused, the count stays while the worker pushes; resumed, every line is there once, in order", async () => {
    const w = writer("live-1", "build");
    let written = 0;
    const write = async (count: number) => {
      for (let i = 0; i < count; i++) w.write("stdout", `line ${++written}`);
      await w.flush();
    };
    await write(50);
    const { page, problems } = await openPage(browser, `${fixture.url}/runs/live-1/tasks/build`);
    await waitForLineCount(page, 50);
    expect(await waitForLine(page, 50)).toBe("line 50");

    await write(30);
    await waitForLineCount(page, 80);
    expect(await waitForLine(page, 80)).toBe("line 80");

    await page.getByRole("button", { name: "Pause" }).click();
    await page.locator('.main-log [data-testid="log-state"]', { hasText: "Paused" }).waitFor();
    await write(40);
    // A second page, live on the same log, shows the new lines: they reached browsers, the paused page took none.
    const witness = await openPage(browser, `${fixture.url}/runs/live-1/tasks/build`);
    await waitForLineCount(witness.page, 120);
    expect(await shownLineCount(page)).toBe(80);
    expect(await page.locator('.main-log .log-line[data-line="81"]').count()).toBe(0);
    await witness.page.context().close();

    await page.getByRole("button", { name: "Live" }).click();
    await waitForLineCount(page, 120);
    await write(20);
    await w.complete({ result: "succeeded", exitCode: 0 });
    await waitForLineCount(page, 140);
    await page.locator('.main-log [data-testid="log-state"]', { hasText: "Complete" }).waitFor();

    const lines = await collectRenderedLines(page);
    expect(lines.size).toBe(140);
    for (let n = 1; n <= 140; n++) expect(lines.get(n), `line ${n}`).toEqual([`line ${n}`]);
    expect(problems.errors).toEqual([]);
    await page.context().close();
  });

  test("ANSI red renders red, bold renders bold, other control sequences are stripped; markup in a line stays text", async () => {
    const w = writer("ansi-1", "build");
    const hostile = [
      `<script>alert("script")</script>`,
      `<img src=x onerror="alert('img')">`,
      `javascript:alert("link")`,
      `<a href="javascript:alert('a')">click</a>`,
    ];
    w.write("stdout", "\x1b[31mRED\x1b[0m plain \x1b[1mBOLD\x1b[0m");
    w.write("stdout", "\x1b]0;window title\x07\x1b[2Kcleared\x1b[?25l\x08 done");
    for (const line of hostile) w.write("stdout", line);
    await w.complete({ result: "succeeded", exitCode: 0 });

    const { page, problems } = await openPage(browser, `${fixture.url}/runs/ansi-1/tasks/build`);
    await waitForLine(page, 6);

    const red = page.locator('.main-log .log-line[data-line="1"] .text span', { hasText: "RED" });
    const [r, g, b] = (await red.evaluate((el) => getComputedStyle(el).color)).match(/\d+/g)?.map(Number) ?? [];
    expect(r).toBeGreaterThan(150);
    expect(g).toBeLessThan(80);
    expect(b).toBeLessThan(80);
    const bold = page.locator('.main-log .log-line[data-line="1"] .text span', { hasText: "BOLD" });
    expect(Number(await bold.evaluate((el) => getComputedStyle(el).fontWeight))).toBeGreaterThanOrEqual(700);
    expect(await waitForLine(page, 1)).toBe("RED plain BOLD");
    expect(await waitForLine(page, 2)).toBe("cleared done");

    for (const [i, line] of hostile.entries()) expect(await waitForLine(page, i + 3)).toBe(line);
    expect(await page.locator(".log-lines script, .log-lines img, .log-lines a:not(.ln), .log-lines iframe").count()).toBe(0);
    expect(problems.dialogs).toEqual([]);
    expect(problems.errors).toEqual([]);
    await page.context().close();
  });

  test("the leader sends a strict Content-Security-Policy with the UI", async () => {
    for (const path of ["/", "/runs/any/tasks/build"]) {
      const res = await fetch(`${fixture.url}${path}`);
      expect(res.status).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).not.toContain("unsafe-eval");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(await res.text()).toContain('<div id="root">');
    }
  });

  test("the run page shows tasks, the run log's lifecycle and the Server Events panel with its count", async () => {
    const runId = "page-1";
    const build = writer(runId, "build", "deploy");
    build.write("stdout", "\x1b[32m✓\x1b[0m compiled 42 modules");
    build.write("stderr", "warning: \x1b[33mdeprecated\x1b[0m option --legacy");
    build.write("stdout", "\x1b[1mdone\x1b[0m in 1.2 s");
    await build.complete({ result: "succeeded", exitCode: 0 });
    const test = writer(runId, "test", "deploy");
    for (let i = 1; i <= 60; i++) test.write(i % 10 === 0 ? "stderr" : "stdout", `test ${i} \x1b[32mpassed\x1b[0m`);
    await test.flush();
    const deployTask = writer(runId, "deploy", "deploy");
    deployTask.write("stdout", "uploading artifacts…");
    await deployTask.flush();
    // Completing the run while `deploy` still runs closes it with a server event.
    await grpc.client.completeRun({ runId, result: Result.FAILED });
    await Promise.all([test.abort(), deployTask.abort()]);

    const { page, problems } = await openPage(browser, `${fixture.url}/runs/${runId}`);
    await page.locator('[data-testid="server-events-count"]', { hasText: /^[1-9]/ }).waitFor();
    const events = page.locator(".events-log");
    const firstEvent = await waitForLine(page, 1, ".events-log");
    expect(firstEvent).toMatch(/deploy|test/);
    expect(await events.locator(".log-line.stderr").count()).toBeGreaterThan(0);

    const runLog = await collectRenderedLines(page);
    const text = [...runLog.values()].flat().join("\n");
    expect(text).toContain(`run ${runId} started`);
    expect(text).toContain("task build started");
    expect(text).toMatch(/task build (completed|succeeded)/);
    expect(await page.locator('tr[data-task="build"]').textContent()).toContain("succeeded");
    expect(await page.locator('tr[data-task="deploy"]').textContent()).toContain("failed");

    await page.locator('tr[data-task="test"] a').click();
    await waitForLineCount(page, 60);
    expect(await waitForLine(page, 60)).toBe("test 60 passed");
    await page.locator(".main-log").getByRole("checkbox", { name: "Timestamps" }).check();
    await page.locator('.main-log .log-line[data-line="60"] .ts').waitFor();
    const screenshot = await saveScreenshot(page, "run-page.png");
    console.log(`run page screenshot: ${screenshot}`);
    expect(problems.errors).toEqual([]);
    await page.context().close();
  });

  test("a #L link opens the log at that line and marks it", async () => {
    const w = writer("link-1", "build");
    for (let i = 1; i <= 500; i++) w.write("stdout", `row ${i}`);
    await w.complete({ result: "succeeded", exitCode: 0 });
    const { page } = await openPage(browser, `${fixture.url}/runs/link-1/tasks/build#L123`);
    expect(await waitForLine(page, 123)).toBe("row 123");
    await page.locator('.main-log .log-line.selected[data-line="123"]').waitFor();
    await page.locator('.main-log .log-line[data-line="130"] a.ln').click();
    await page.locator('.main-log .log-line.selected[data-line="130"]').waitFor();
    expect(new URL(page.url()).hash).toBe("#L130");
    await page.context().close();
  });

  test("the runs list: newest first, filters, states that change while it is open", async () => {
    const a = writer("list-a", "build", "nightly");
    a.write("stdout", "a");
    await a.flush();
    const b = writer("list-b", "build", "release");
    b.write("stdout", "b");
    await b.flush();

    const { page } = await openPage(browser, `${fixture.url}/?workflow=release`);
    await page.locator('tr[data-run="list-b"]').waitFor();
    expect(await page.locator('tr[data-run="list-a"]').count()).toBe(0);

    await page.getByLabel("Workflow").fill("");
    await page.getByLabel("Workflow").press("Enter");
    await page.locator('tr[data-run="list-a"]').waitFor();
    const order = await page.locator("tr[data-run]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-run")));
    expect(order.indexOf("list-b")).toBeLessThan(order.indexOf("list-a"));

    await b.complete({ result: "succeeded", exitCode: 0 });
    await grpc.client.completeRun({ runId: "list-b", result: Result.SUCCEEDED });
    await page.locator('tr[data-run="list-b"] .badge', { hasText: "succeeded" }).waitFor();

    await page.getByLabel("State").selectOption("running");
    await page.locator('tr[data-run="list-b"]').waitFor({ state: "detached" });
    expect(await page.locator('tr[data-run="list-a"]').count()).toBe(1);

    await page.locator('tr[data-run="list-a"] a').click();
    await page.locator("h1", { hasText: "list-a" }).waitFor();
    await a.abort();
    await page.context().close();
  });
});
