import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";

let fixture: LeaderFixture;

beforeAll(async () => {
  fixture = await startTestLeader();
});

afterAll(async () => {
  await fixture?.dispose();
});

describe("the UI's files", () => {
  test("hashed assets are cached for good, index.html is revalidated, unknown assets are 404", async () => {
    const index = await fetch(`${fixture.url}/`);
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(`${fixture.url}${script}`, { headers: { "accept-encoding": "gzip" } });
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(js.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect((await fetch(`${fixture.url}/assets/nothing-here.js`)).status).toBe(404);
  });

  test("with ui.enabled false only the API answers", async () => {
    const headless = await startTestLeader({ ui: { enabled: false } });
    try {
      expect((await fetch(`${headless.url}/`)).status).toBe(404);
      const api = await fetch(`${headless.url}/api/jobs/x/steps/y/logs`);
      expect(await api.json()).toEqual({ error: "run x not found" });
    } finally {
      await headless.dispose();
    }
  });
});
