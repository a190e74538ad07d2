import { expect, test } from "@playwright/test";

test("the case list shows the demo cases", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Cases" })).toBeVisible();
  const rows = page.locator("table.cases tbody tr");
  await expect(rows).toHaveCount(3);
  await expect(page.getByRole("link", { name: "Demo head phantom (MR, int16)" })).toBeVisible();
  await expect(rows.first()).toContainText("128 × 128 × 96");
});

test("a case opens with its artifacts, downloadable from storage by the browser", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("link", { name: "Demo abdomen phantom (CT, int16)" }).click();
  await expect(page).toHaveURL(/\/cases\/[0-9a-f-]{36}$/);
  await expect(page.getByRole("heading", { name: "Demo abdomen phantom (CT, int16)" })).toBeVisible();
  await expect(page.locator(".label")).toHaveText(["1 liver", "2 kidney"]);

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
  await page.goto("/");
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
