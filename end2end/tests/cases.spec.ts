import { expect, Page, test } from "@playwright/test";

async function logIn(page: Page) {
  await page.goto("/login");
  await page.getByLabel("Username").fill("demo");
  await page.getByLabel("Password").fill("demo-e2e-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("heading", { name: "Cases" })).toBeVisible();
}

test("without a login the pages show nothing but the way to log in", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByText("authentication required")).toBeVisible();
  await expect(page.locator("table.cases")).toHaveCount(0);
  await page.getByRole("link", { name: "Log in" }).click();
  await page.getByLabel("Username").fill("demo");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByText("wrong username or password")).toBeVisible();
});

test("the case list shows the demo cases", async ({ page }) => {
  await logIn(page);
  await expect(page.getByRole("heading", { name: "Cases" })).toBeVisible();
  const rows = page.locator("table.cases tbody tr");
  await expect(rows).toHaveCount(3);
  await expect(page.getByRole("link", { name: "Demo head phantom (MR, int16)" })).toBeVisible();
  await expect(rows.first()).toContainText("128 × 128 × 96");
});

test("a case opens with its artifacts, downloadable from storage by the browser", async ({ page }) => {
  await logIn(page);
  await page.getByRole("link", { name: "Demo abdomen phantom (CT, int16)" }).click();
  await expect(page).toHaveURL(/\/cases\/[0-9a-f-]{36}$/);
  await expect(page.getByRole("heading", { name: "Demo abdomen phantom (CT, int16)" })).toBeVisible();
  await expect(page.locator("p.labels .label")).toHaveText(["1 liver", "2 kidney"]);

  // The presigned URL works cross-origin from the page, as the viewer will use it.
  const imageUrl = await page.locator('a[data-kind="Image"]').getAttribute("href");
  expect(imageUrl).toContain("X-Amz-Signature=");
  const download = await page.evaluate(async (url) => {
    const response = await fetch(url!);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { ok: response.ok, gzip: bytes[0] === 0x1f && bytes[1] === 0x8b, size: bytes.length };
  }, imageUrl);
  expect(download.ok).toBe(true);
  expect(download.gzip).toBe(true);
  expect(download.size).toBeGreaterThan(1000);
});

test("the case page is hydrated: its controls respond", async ({ page }) => {
  await logIn(page);
  await page.getByRole("link", { name: "Demo blob (float32, unlabelled)" }).click();
  await expect(page.getByRole("heading", { name: "Demo blob (float32, unlabelled)" })).toBeVisible();
  const before = await page.locator('a[data-kind="Mask"]').getAttribute("href");
  // Wait for the WASM to take over before clicking.
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByTestId("refresh-links").click();
  await expect(page.getByTestId("refresh-count")).toHaveText("Links refreshed (1×)");
  await page.getByTestId("refresh-links").click();
  await expect(page.getByTestId("refresh-count")).toHaveText("Links refreshed (2×)");
  await expect(page.locator('a[data-kind="Mask"]')).toHaveAttribute("href", /X-Amz-Signature=/);
  expect(before).toContain("X-Amz-Signature=");
});

test("logging out ends the session", async ({ page }) => {
  await logIn(page);
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto("/");
  await expect(page.getByText("authentication required")).toBeVisible();
});
