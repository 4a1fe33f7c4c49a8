/**
 * Lines shaped like a real CI job's output, for measurements where content matters
 * (compression ratio, bytes on disk): package downloads with hashes, compiler
 * diagnostics, test results, container build steps, timestamps and durations. A
 * seeded generator, so every run measures the same bytes.
 */

const PACKAGES = ["lodash", "react", "typescript", "esbuild", "@types/node", "zod", "vitest", "rollup", "semver", "chalk", "debug", "ws"];
const DIRS = ["src/api", "src/store", "src/ingest", "src/worker", "lib/core", "packages/web/src", "internal/server", "cmd/agent"];
const FILES = ["handler.ts", "index.ts", "server.go", "client.rs", "config.py", "store.ts", "router.tsx", "main.c"];
const WORDS = ["connection", "request", "timeout", "cache", "build", "artifact", "upload", "retry", "worker", "shard", "module"];

export function createCiLogLines(seed = 1): () => string {
  let state = seed >>> 0 || 1;
  const rand = (n: number) => {
    // xorshift32: fast and deterministic.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const pick = <T>(list: readonly T[]): T => list[rand(list.length)] as T;
  const hex = (len: number) => {
    let s = "";
    while (s.length < len) s += (rand(0x1_0000_0000) >>> 0).toString(16).padStart(8, "0");
    return s.slice(0, len);
  };
  let clock = Date.UTC(2026, 10, 22, 10, 0, 0);
  let step = 1;
  return () => {
    clock += rand(40);
    const ts = new Date(clock).toISOString();
    switch (rand(10)) {
      case 0:
        return `${ts} npm http fetch GET 200 https://registry.npmjs.org/${pick(PACKAGES)}/-/${pick(PACKAGES)}-${rand(20)}.${rand(30)}.${rand(10)}.tgz ${rand(900)}ms (cache miss)`;
      case 1:
        return `${pick(DIRS)}/${pick(FILES)}(${rand(400)},${rand(80)}): warning TS${6000 + rand(200)}: '${pick(WORDS)}${rand(10)}' is declared but its value is never read.`;
      case 2:
        return ` \u001b[32m✓\u001b[39m test/${pick(DIRS)}/${pick(FILES).replace(/\.\w+$/, "")}.test.ts > ${pick(WORDS)} > ${pick(WORDS)}s a ${pick(WORDS)} on ${pick(WORDS)} \u001b[2m(${rand(300)} ms)\u001b[22m`;
      case 3:
        return `#${step} [builder ${rand(9)}/9] RUN go build -o /out/${pick(WORDS)} ./cmd/${pick(WORDS)}`;
      case 4:
        step++;
        return `#${step} sha256:${hex(64)} ${(rand(5000) / 100).toFixed(2)}MB / ${(rand(9000) / 100).toFixed(2)}MB ${(rand(100) / 10).toFixed(1)}s`;
      case 5:
        return `[${ts}] INFO  ${pick(WORDS)}: ${pick(WORDS)} ${pick(WORDS)} completed in ${rand(5000)}ms (id=${hex(12)}, attempt ${rand(3) + 1})`;
      case 6:
        return `    at ${pick(WORDS)}${pick(["Handler", "Service", "Client"])}.${pick(WORDS)} (/home/runner/work/app/app/${pick(DIRS)}/${pick(FILES)}:${rand(500)}:${rand(60)})`;
      case 7:
        return `Compiling ${pick(WORDS)}-${pick(WORDS)} v0.${rand(30)}.${rand(10)} (/home/runner/work/app/app/crates/${pick(WORDS)})`;
      case 8:
        return `${ts} ##[group]Run ${pick(["make test", "npm ci", "cargo build --release", "pytest -q", "go test ./..."])}`;
      default:
        return `${pick(WORDS)}=${hex(8)} ${pick(WORDS)}=${rand(100000)} ${pick(WORDS)}="${pick(WORDS)} ${pick(WORDS)}" elapsed=${(rand(10000) / 1000).toFixed(3)}s`;
    }
  };
}
