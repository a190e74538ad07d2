import { defineConfig } from "@playwright/test";

// The app under test: the debug build from `cargo leptos build`, on a fresh data folder
// (embedded SQLite + in-process S3, seeded with the demo cases).
const port = 3010;

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    // Tall enough for the whole canvas: pointer events outside the viewport are not delivered.
    viewport: { width: 1280, height: 1100 },
    launchOptions: {
      // Debian's Chromium: no browser download is possible on these machines.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
  webServer: [
    {
      // The hospital's PACS (tests/pacs.spec.ts): Orthanc over DICOMweb, with basic auth.
      command: "./pacs-server.sh",
      url: "http://127.0.0.1:8043/system",
      timeout: 120_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // The hospital's identity provider (tests/sso.spec.ts): a real OpenID Connect provider.
      command:
        "node oidc-provider.mjs --port 3011 --client-id seglab --client-secret oidc-e2e-secret " +
        `--redirect-uri http://127.0.0.1:${port}/auth/oidc/callback ` +
        `--post-logout-redirect-uri http://127.0.0.1:${port}/login --users oidc-users.json`,
      url: "http://127.0.0.1:3011/.well-known/openid-configuration",
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command:
        "rm -rf ../target/e2e-data && ../target/debug/seglab --data-dir ../target/e2e-data " +
        `--embedded-s3-addr 127.0.0.1:3910 serve --addr 127.0.0.1:${port} --site-root ../target/site`,
      url: `http://127.0.0.1:${port}/readyz`,
      timeout: 120_000,
      reuseExistingServer: false,
      env: {
        SEGLAB_DEMO_PASSWORD: "demo-e2e-password",
        SEGLAB_DICOMWEB_URL: "http://127.0.0.1:8043/dicom-web",
        SEGLAB_DICOMWEB_USERNAME: "seglab",
        SEGLAB_DICOMWEB_PASSWORD: "pacs-e2e-password",
        SEGLAB_PUBLIC_URL: `http://127.0.0.1:${port}`,
        SEGLAB_OIDC_ISSUER: "http://127.0.0.1:3011",
        SEGLAB_OIDC_CLIENT_ID: "seglab",
        SEGLAB_OIDC_CLIENT_SECRET: "oidc-e2e-secret",
        SEGLAB_OIDC_ROLE_MAP: "radiology=labeler",
        SEGLAB_OIDC_DISPLAY_NAME: "Hospital SSO",
      },
      stdout: "pipe",
      stderr: "pipe",
    },
  ],
});
