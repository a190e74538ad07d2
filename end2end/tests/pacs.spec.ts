import { expect, test } from "@playwright/test";
import { readdirSync, readFileSync } from "node:fs";
import { addUser, logIn, openCase, personOpening, stroke } from "./helpers";

// The PACS started by playwright.config.ts (pacs-server.sh).
const ORTHANC = "http://127.0.0.1:8043";
const ORTHANC_AUTH = { Authorization: `Basic ${Buffer.from("seglab:pacs-e2e-password").toString("base64")}` };
const SERIES = "../target/e2e-dicom/oblique";

test("an ML engineer imports a series from the PACS, it is painted and approved, and its segmentation goes back to the PACS", async ({
  browser,
  page,
}) => {
  // The hospital's PACS holds the study.
  for (const file of readdirSync(SERIES)) {
    const stored = await page.request.post(`${ORTHANC}/instances`, { headers: ORTHANC_AUTH, data: readFileSync(`${SERIES}/${file}`) });
    expect(stored.ok()).toBeTruthy();
  }

  // Search by PatientID; the patient shows by pseudonym; import the oblique series.
  await logIn(page);
  await page.getByRole("link", { name: "PACS" }).click();
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByLabel("Patient ID or pseudonym").fill("SEGLAB-TEST-1");
  await page.getByTestId("pacs-labels").fill("1=liver,2=tumour");
  await page.getByTestId("pacs-search").click();
  const studies = page.getByTestId("pacs-studies");
  await expect(studies).toContainText("CT oblique");
  await expect(studies).toContainText(/P-[0-9A-Z]{10}/);
  await expect(studies).not.toContainText("Test^Patient");
  await studies.getByRole("row", { name: /CT oblique/ }).getByTestId("pacs-import").click();
  const imported = page.getByTestId("pacs-imported");
  await expect(imported).toContainText("Imported:");
  await imported.getByRole("link").click();
  await expect(page).toHaveURL(/\/cases\/[0-9a-f-]+$/);
  const caseId = page.url().split("/").pop()!;
  await openCase(page, caseId);
  await expect(page.getByTestId("series")).toContainText("CT · oblique");

  // Painted and saved, submitted; a reviewer approves.
  await stroke(page, [0.4, 0.4], [0.6, 0.5]);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByTestId("case-status")).toHaveText("In progress");
  await page.getByTestId("review").getByRole("button", { name: "Submit for review" }).click();
  await expect(page.getByTestId("case-status")).toHaveText("Submitted");
  const reviewer = `pat-${Date.now().toString(36)}`;
  addUser(reviewer, "reviewer");
  const rev = await personOpening(browser, reviewer, caseId);
  await rev.getByTestId("review").getByRole("button", { name: "Approve" }).click();
  await expect(rev.getByTestId("case-status")).toHaveText("Approved");

  // Back to the PACS, where the study now holds the segmentation.
  await openCase(page, caseId);
  await page.getByTestId("send-to-pacs").click();
  await expect(page.getByTestId("sent-to-pacs")).toContainText("Stored in the PACS as 2.25.");
  const uid = (await page.getByTestId("sent-to-pacs").textContent())!.split(" ").pop()!;
  const found = await (await page.request.post(`${ORTHANC}/tools/lookup`, { headers: ORTHANC_AUTH, data: uid })).json();
  expect(found).toHaveLength(1);
  const tags = await (await page.request.get(`${ORTHANC}/instances/${found[0].ID}/simplified-tags`, { headers: ORTHANC_AUTH })).json();
  expect(tags.Modality).toBe("SEG");
  expect(tags.PatientID).toBe("SEGLAB-TEST-1");

  // And the labelled mask downloads as a DICOM SEG.
  const download = page.waitForEvent("download");
  await page.getByTestId("download-seg").click();
  expect((await download).suggestedFilename()).toMatch(/\.seg\.dcm$/);
});
