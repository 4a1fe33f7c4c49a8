import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { NodeServerRequest, NodeServerResponse } from "./http-routes.js";

/**
 * The browser UI: the files Vite built into `dist/ui`, read into memory when
 * the leader starts (a few hundred KiB) and served with a strict
 * Content-Security-Policy. Paths that are not files are the UI's own routes
 * (`/runs/r-1/tasks/build`) and get `index.html`.
 */

type Request = NodeServerRequest;
type Response = NodeServerResponse;

interface Asset {
  body: Buffer;
  gzipped: Buffer | undefined;
  type: string;
  /** Vite names built assets after their content hash: they never change under the same name. */
  immutable: boolean;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/**
 * Scripts and styles only from the leader itself, no inline script, no eval,
 * nothing framed, no plugins: even a log line that got into the DOM as markup
 * could not run. Styles set through the DOM (the virtual list's positions, a
 * 256-colour span) are CSSOM writes, which CSP does not restrict.
 */
export const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
    "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/** The package's root: the first directory above this module holding package.json (src/ in development, dist/src/ when built). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot find joblog's package.json above the leader's modules");
}

export const DEFAULT_UI_DIR = (): string => join(packageRoot(), "dist", "ui");

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const body = readFileSync(path);
        const type = TYPES[extname(entry.name)] ?? "application/octet-stream";
        const compressible = /^(text|application\/json|image\/svg)/.test(type) && body.length > 1024;
        const urlPath = `/${relative(dir, path).split(sep).join("/")}`;
        assets.set(urlPath, { body, gzipped: compressible ? gzipSync(body) : undefined, type, immutable: urlPath.startsWith("/assets/") });
      }
    }
  };
  walk(dir);
  return assets;
}

export interface UiAssets {
  /** Answers a GET or HEAD for the UI. */
  serve(req: Request, res: Response): void;
}

/** Loads the built UI from `dir`; without a build, `/` explains how to make one. */
export function createUiAssets(dir: string, warn: (message: string) => void): UiAssets {
  const assets = existsSync(join(dir, "index.html")) ? loadAssets(dir) : undefined;
  if (!assets) warn(`the browser UI is not built (no ${join(dir, "index.html")}); run npm run build`);

  return {
    serve(req, res) {
      const path = new URL(req.url ?? "/", "http://leader").pathname;
      if (!assets) {
        send(res, 503, "text/plain; charset=utf-8", Buffer.from("joblog: the browser UI is not built; run npm run build\n"));
        return;
      }
      let asset = assets.get(path);
      // Anything that is not a file and not under /assets/ is a route of the UI itself.
      if (!asset && !path.startsWith("/assets/")) asset = assets.get("/index.html");
      if (!asset) {
        send(res, 404, "text/plain; charset=utf-8", Buffer.from(`not found: ${path}\n`));
        return;
      }
      const gzip = asset.gzipped !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
      res.setHeader("cache-control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache");
      res.setHeader("vary", "accept-encoding");
      if (gzip) res.setHeader("content-encoding", "gzip");
      send(res, 200, asset.type, gzip ? (asset.gzipped as Buffer) : asset.body, req.method === "HEAD");
    },
  };
}

function send(res: Response, status: number, type: string, body: Buffer, headOnly = false): void {
  for (const [name, value] of Object.entries(UI_SECURITY_HEADERS)) res.setHeader(name, value);
  res.setHeader("content-type", type);
  res.setHeader("content-length", body.length);
  res.statusCode = status;
  if (headOnly) res.end();
  else res.end(body);
}
