import { expect, test } from "@playwright/test";
import { int16Volume, logIn } from "./helpers";

test("the worklist pages through more cases than fit on one page", async ({ page }) => {
  await logIn(page);
  // Cases of their own, found by a name no other test uses: 55 of them make two pages of 50.
  const prefix = `Paging ${Date.now()}`;
  const tiny = int16Volume([4, 4, 4], [1, 1, 1], new Int16Array(64));
  for (let n = 1; n <= 55; n++) {
    const response = await page.request.post("/cases", {
      headers: { Origin: new URL(page.url()).origin },
      multipart: {
        name: `${prefix} ${String(n).padStart(2, "0")}`,
        labels: "1=lesion",
        image: { name: "tiny.nii.gz", mimeType: "application/gzip", buffer: tiny },
      },
    });
    expect(response.status()).toBe(201);
  }

  await page.goto("/");
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByLabel("Search by name").fill(prefix);
  await page.getByLabel("Search by name").press("Tab");
  const rows = page.locator("table.cases tbody tr");
  const previous = page.getByRole("button", { name: "Previous", exact: true });
  const next = page.getByRole("button", { name: "Next", exact: true });
  await expect(page.getByTestId("page")).toHaveText("Page 1 of 2 · 55 cases");
  await expect(rows).toHaveCount(50);
  await expect(previous).toBeDisabled();
  await expect(next).toBeEnabled();

  await next.click();
  await expect(page.getByTestId("page")).toHaveText("Page 2 of 2 · 55 cases");
  await expect(rows).toHaveCount(5);
  await expect(rows.first()).toContainText(`${prefix} 51`);
  await expect(next).toBeDisabled();

  await previous.click();
  await expect(page.getByTestId("page")).toHaveText("Page 1 of 2 · 55 cases");
  await expect(rows.first()).toContainText(`${prefix} 01`);
});

test("no server-rendered page shows the source of its view", async ({ page }) => {
  await logIn(page);
  const cases = await (await page.request.get("/cases")).json();
  const models = await (await page.request.get("/models")).json();
  const paths = ["/", "/login", "/registry", "/snapshots", `/cases/${cases[0].id}`];
  if (models.length > 0) paths.push(`/registry/${models[0].id}`);
  // What `view!` source looks like when a tag closes early and the rest becomes text.
  const source = /\bmove \||on:[a-z]+ ?=|prop:[a-z]+ ?=|class:[a-z-]+ ?=|\.get_value\(\)|\bSome\(|=>|`/;
  for (const path of paths) {
    const response = await page.request.get(path);
    expect(response.status(), path).toBe(200);
    const html = await response.text();
    // Only what a person reads: the text between tags, without scripts and styles.
    const text = html
      .replace(/<script[\s\S]*?<\/script>/g, "")
      .replace(/<style[\s\S]*?<\/style>/g, "")
      .replace(/<[^>]*>/g, "\n");
    expect(text, path).not.toMatch(source);
  }
});
