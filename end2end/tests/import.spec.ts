import { expect, test } from "@playwright/test";
import { readdirSync } from "node:fs";
import { logIn, openCase } from "./helpers";

// Series written by pacs-server.sh (playwright.config.ts) from the MNI152 template.
const series = (name: string) => readdirSync(`../target/e2e-dicom/${name}`).map((file) => `../target/e2e-dicom/${name}/${file}`);

test("a coordinator imports a DICOM series on the Import page, and a defective one is refused with the reason", async ({ page }) => {
  await logIn(page);
  await page.getByRole("link", { name: "Import", exact: true }).click();
  await page.locator("body[data-hydrated=true]").waitFor();
  const form = page.getByTestId("import-dicom");

  // A series missing a slice: the reason, and no case.
  await page.getByTestId("dicom-files").setInputFiles(series("missing_slice"));
  await expect(page.getByText("23 files chosen")).toBeVisible();
  await form.getByRole("button", { name: "Import" }).click();
  await expect(page.getByRole("alert")).toContainText("1 slice is missing between");

  // The coronal series: a case, opened from the link, with its series and pseudonym.
  await page.getByTestId("dicom-files").setInputFiles(series("coronal"));
  await expect(page.getByText("24 files chosen")).toBeVisible();
  await form.getByLabel("Labels").fill("1=brain");
  await form.getByRole("button", { name: "Import" }).click();
  const imported = page.getByTestId("imported");
  await expect(imported).toContainText("CT coronal");
  await imported.getByRole("link").click();
  const caseId = page.url().split("/").pop()!;
  await openCase(page, caseId);
  await expect(page.getByTestId("series")).toContainText("CT · coronal");
  await expect(page.getByTestId("pseudonym")).toHaveText(/^P-[0-9A-Z]{10}$/);
});
