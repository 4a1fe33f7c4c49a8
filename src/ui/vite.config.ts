import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// The leader serves dist/ui at `/` (src/api/ui-assets.ts) under a CSP that allows
// scripts and styles from its own origin only, so the build must not inline any.
export default defineConfig({
  root: here("."),
  base: "/",
  plugins: [react()],
  build: {
    outDir: here("../../dist/ui"),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: true,
    target: "es2022",
    chunkSizeWarningLimit: 1024,
  },
});
