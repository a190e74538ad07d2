import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The viewer benchmark: the release build (optimised WASM after wasm-opt) on its own data folder.
// Playwright's trace stays off: it records every response body through the DevTools protocol,
// which tripled the time to fetch a volume's slabs (38 requests: 0.9 s with it, 0.35 s without).
const port = 3011;

export default defineConfig({
  ...base,
  testDir: "./bench",
  testMatch: "**/*.bench.ts",
  timeout: 600_000,
  use: { ...base.use, baseURL: `http://127.0.0.1:${port}`, trace: "off" },
  webServer: {
    ...base.webServer,
    command:
      "rm -rf ../target/bench-data && ../target/release/seglab --data-dir ../target/bench-data " +
      `--embedded-s3-addr 127.0.0.1:3911 serve --addr 127.0.0.1:${port} --site-root ../target/site`,
    url: `http://127.0.0.1:${port}/readyz`,
  },
});
