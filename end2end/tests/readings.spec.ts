import { expect, Page, test } from "@playwright/test";
import { addUser, colourCount, copyDemoCase, currentMask, logIn, openCase, personOpening, stroke } from "./helpers";

/** A reader paints a stroke from `x0` to `x1` (fractions of the view's width), saves and submits. */
async function readAndSubmit(page: Page, x0: number, x1: number) {
  const review = page.getByTestId("review");
  await stroke(page, [x0, 0.4], [x1, 0.4]);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByTestId("save-status")).toContainText("Saved (version");
  await review.getByRole("button", { name: "Submit my reading" }).click();
  await expect(review.getByTestId("readings-status")).toContainText(/[12] of 2 readings submitted/);
}

test("two blinded readers read a case, the adjudicator compares their readings, starts from STAPLE, fixes and approves", async ({
  browser,
  page,
}) => {
  const suffix = Date.now().toString(36);
  const [ann, ben, rex] = [`ann-${suffix}`, `ben-${suffix}`, `rex-${suffix}`];
  addUser(ann, "labeler");
  addUser(ben, "labeler");
  addUser(rex, "reviewer");

  // A coordinator (the demo user) plans two blinded readings on a fresh case and gives one to ben.
  await logIn(page);
  // Named apart from the other tests' copies, whose snapshots select approved copies by name.
  const caseId = await copyDemoCase(page, "Demo abdomen phantom (CT, int16)", "1=liver,2=kidney", `Double read ${suffix}`);
  await openCase(page, caseId);
  const readings = page.getByTestId("readings");
  await readings.getByLabel("Readings needed").selectOption("2");
  await readings.getByLabel("readers blinded to the models").check();
  await readings.getByRole("button", { name: "Plan readings" }).click();
  await expect(readings.getByTestId("readings-status")).toHaveText(
    "0 of 2 readings submitted, 0 taken · readers do not see the models' predictions",
  );
  await expect(page.getByTestId("review")).toContainText("Read by 2 readers");
  await readings.getByLabel("Reader", { exact: true }).selectOption(ben);
  await readings.getByRole("button", { name: "Give a reading" }).click();
  await expect(readings.getByTestId("readings-status")).toContainText("1 taken");

  // ann takes the other reading from the case page; nobody can take a third.
  const annPage = await personOpening(browser, ann, caseId);
  const annReadings = annPage.getByTestId("readings");
  await expect(annPage.getByRole("button", { name: "Save" })).toHaveCount(0);
  await annReadings.getByRole("button", { name: "Take a reading" }).click();
  await expect(annReadings.getByTestId("readings-status")).toContainText("2 taken");
  await expect(annReadings.getByRole("button", { name: "Take a reading" })).toHaveCount(0);
  await readAndSubmit(annPage, 0.5, 0.7);
  // Blinded: ann sees her own reading only, and no agreement yet.
  await expect(annReadings.locator(".reading-list li")).toHaveCount(1);
  await expect(annReadings.getByTestId("agreement")).toHaveCount(0);
  await expect(annPage.getByTestId("overlays")).toHaveCount(0);

  const benPage = await personOpening(browser, ben, caseId);
  await readAndSubmit(benPage, 0.6, 0.8);
  await expect(benPage.getByTestId("readings").getByTestId("readings-status")).toContainText("2 of 2 readings submitted");
  await expect(benPage.getByTestId("case-status")).toHaveText("Submitted");

  // The adjudicator: the agreement, each reading over the mask, the slice where they differ most.
  const rexPage = await personOpening(browser, rex, caseId);
  const rexReadings = rexPage.getByTestId("readings");
  await expect(rexReadings.locator(".reading-list li")).toHaveCount(2);
  await expect(rexReadings.getByTestId("agreement")).toContainText(ann);
  await expect(rexReadings.getByTestId("agreement")).toContainText(ben);
  await expect(rexReadings.getByTestId("disagreeing-voxels")).toHaveText(/^Readers disagree on [1-9]\d* voxels$/);
  const overlays = rexPage.getByTestId("overlays");
  await expect(overlays.getByRole("heading")).toHaveText("Readings");
  // Both readings are outlined from the start, each in its reader's colour (ben's was given
  // first, so his is the first colour); hiding one leaves the other.
  await expect.poll(async () => (await colourCount(rexPage, [20, 184, 166])).total).toBeGreaterThan(20);
  await expect.poll(async () => (await colourCount(rexPage, [139, 92, 246])).total).toBeGreaterThan(20);
  await overlays.getByLabel(`Draw reading by ${ben}`).selectOption("hidden");
  await expect.poll(async () => (await colourCount(rexPage, [20, 184, 166])).total).toBe(0);
  expect((await colourCount(rexPage, [139, 92, 246])).total).toBeGreaterThan(20);
  await overlays.getByLabel("Disagreement with").selectOption({ label: `reading by ${ann}` });
  await expect(overlays.getByTestId("disagreement")).toHaveText(/^\d+ voxels only in the mask, [1-9]\d* only in the reading$/);
  const agreement = await (await page.request.get(`/cases/${caseId}/agreement`)).json();
  const [i, j, k] = agreement.most_disagreement_at;
  await rexPage.getByLabel("Slice").fill("0");
  await rexReadings.getByRole("button", { name: "Go to the most disagreement" }).click();
  await expect(rexPage.getByTestId("crosshair")).toContainText(`voxel (${i}, ${j}, ${k})`);
  // Where the readers disagree, highlighted on that slice.
  await overlays.getByLabel("Highlight where readers disagree").check();
  await expect.poll(async () => (await colourCount(rexPage, [255, 64, 129])).total).toBeGreaterThan(0);
  await overlays.getByLabel("Highlight where readers disagree").uncheck();
  await expect.poll(async () => (await colourCount(rexPage, [255, 64, 129])).total).toBe(0);

  // STAPLE's consensus (where the strokes overlap, both readers painted) replaces the case's
  // mask; the editor moves onto it; rex fixes and approves.
  const before = await currentMask(page.request, caseId);
  await rexReadings.getByRole("button", { name: "Start from STAPLE consensus" }).click();
  await expect(rexReadings.getByTestId("consensus-saved")).toContainText("voxels changed");
  const consensus = await currentMask(page.request, caseId);
  expect(consensus.ref).not.toBe(before.ref);
  // The editor moved onto it: its history holds the consensus. A long kidney stroke fixes it.
  await expect(rexPage.getByTestId("history")).toContainText(rex);
  await rexPage.getByRole("button", { name: "2 kidney" }).click();
  await stroke(rexPage, [0.2, 0.6], [0.8, 0.6]);
  await rexPage.getByRole("button", { name: "Save" }).click();
  await expect(rexPage.getByTestId("save-status")).toContainText("Saved (version");
  const fixed = await currentMask(page.request, caseId);
  // The fix was saved on the consensus, not on the mask the page opened with.
  expect(fixed.history[1].new_mask_ref).toBe(consensus.ref);
  await rexPage.getByTestId("review").getByRole("button", { name: "Approve" }).click();
  await expect(rexPage.getByTestId("case-status")).toHaveText("Approved");

  // Across cases, the readers page lists this one among those readers agree least on.
  await rexPage.goto(`/readers?q=${encodeURIComponent(`Double read ${suffix}`)}`);
  await expect(rexPage.getByTestId("agreement-counts")).toHaveText("1 case read by several readers: 1 measured, 0 being measured");
  await expect(rexPage.getByTestId("least-agreed")).toContainText(`Double read ${suffix}`);
  await expect(rexPage.getByTestId("agreement-readers")).toContainText(ann);

  // The snapshot holds the adjudicated mask and both readings.
  await page.goto("/snapshots");
  await page.getByLabel("Name", { exact: true }).fill(`double-${suffix}`);
  await page.getByLabel("Only cases whose name contains").fill(`Double read ${suffix}`);
  await page.getByRole("button", { name: "Make snapshot" }).click();
  await expect(page.getByRole("status")).toContainText(`Made double-${suffix} version 1.`);
  const datasets = await (await page.request.get("/datasets")).json();
  const dataset = datasets.find((d: { name: string }) => d.name === `double-${suffix}`);
  const manifest = await (await page.request.get(`/datasets/${dataset.id}/manifest`)).json();
  expect(manifest.cases).toHaveLength(1);
  expect(manifest.cases[0].mask.object_ref).toBe((await currentMask(page.request, caseId)).ref);
  expect(manifest.cases[0].readings.map((r: { reader: string }) => r.reader)).toEqual([ben, ann]);
});
