import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The viewer benchmark: the release build (optimised WASM after wasm-opt) on its own data folder.
const port = 3011;

export default defineConfig({
  ...base,
  testDir: "./bench",
  testMatch: "**/*.bench.ts",
  timeout: 600_000,
  use: { ...base.use, baseURL: `http://127.0.0.1:${port}` },
  webServer: {
    ...base.webServer,
    command:
      "rm -rf ../target/bench-data && ../target/release/seglab --data-dir ../target/bench-data " +
      `--embedded-s3-addr 127.0.0.1:3911 serve --addr 127.0.0.1:${port} --site-root ../target/site`,
    url: `http://127.0.0.1:${port}/readyz`,
  },
});
