import { expect, test } from "vitest";
import { WriteGate } from "../../src/runs/write-gate.js";

/** A deferred promise: a shared section the test holds open. */
function held() {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

test("exclusive waits for shared sections in flight and holds new ones back until it is done", async () => {
  const gate = new WriteGate();
  const events: string[] = [];
  const first = held();
  const inFlight = gate.shared(async () => {
    events.push("shared 1 start");
    await first.promise;
    events.push("shared 1 end");
  });
  const exclusive = gate.exclusive(() => {
    events.push("exclusive");
  });
  const later = gate.shared(async () => {
    events.push("shared 2");
  });
  // Let every microtask run: nothing but shared 1 may have started.
  await new Promise((resolve) => setImmediate(resolve));
  expect(events).toEqual(["shared 1 start"]);
  first.release();
  await Promise.all([inFlight, exclusive, later]);
  expect(events).toEqual(["shared 1 start", "shared 1 end", "exclusive", "shared 2"]);
});

test("a shared section that throws still lets exclusive through", async () => {
  const gate = new WriteGate();
  await expect(gate.shared(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
  await expect(gate.exclusive(() => 7)).resolves.toBe(7);
  await expect(gate.shared(async () => 8)).resolves.toBe(8);
});
