import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { colourCount, copyDemoCase, logIn, openCase, stroke } from "./helpers";

const FIXTURES = "../tests/fixtures/models";

function sha256Of(file: string) {
  const line = readFileSync(`${FIXTURES}/SHA256SUMS`, "utf8").split("\n").find((l) => l.endsWith(` ${file}`))!;
  return line.split(/\s+/)[0];
}

test("register a model, shadow it, run it on a labelled case, read the evaluation, promote it, roll back", async ({ page }) => {
  // Two registrations and two runs of real inference.
  test.setTimeout(150_000);
  await logIn(page);
  // A case a person has labelled: the evaluation compares against it.
  const caseId = await copyDemoCase(page, "Demo abdomen phantom (CT, int16)", "1=liver,2=kidney");
  await openCase(page, caseId);
  await stroke(page, [0.6, 0.4], [0.7, 0.4]);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByTestId("save-status")).toContainText("Saved");

  const name = `e2e-seg-${Date.now()}`;
  const card = {
    name,
    version: "1.0.0",
    task: "segmentation",
    modality: "CT",
    label_map: { "1": "liver" },
    input_spec: { voxel_type: "int16", orientation: "LPS", intensity_normalisation: "zscore" },
    output_channels: [0, 1],
    intended_use: "end-to-end test",
    limitations: "a smoothed threshold",
    license: "Apache-2.0",
    metrics: [],
    artifact: { format: "onnx", sha256: sha256Of("segmenter_v1.onnx") },
  };
  await page.goto("/registry");
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByLabel("Model card (JSON)").fill(JSON.stringify(card, null, 2));
  await page.getByLabel("Model file (ONNX)").setInputFiles(`${FIXTURES}/segmenter_v1.onnx`);
  await page.getByRole("button", { name: "Register" }).click();
  await expect(page).toHaveURL(/\/registry\/[0-9a-f-]{36}$/);
  const modelUrl = page.url();
  await expect(page.getByRole("heading", { level: 1 })).toContainText(`${name} 1.0.0 registered`);
  await expect(page.getByText("end-to-end test")).toBeVisible();

  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Promote to shadow" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("shadow");

  // Run the active models on the case; the job list follows the job to the end.
  await openCase(page, caseId);
  await page.getByRole("button", { name: "Run models on this case" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("Jobs queued: 1");
  const job = page.getByTestId("jobs").locator("tr", { hasText: name });
  await expect(job).toContainText("shadow");
  await expect(job).toContainText("succeeded", { timeout: 30_000 });

  // The evaluation against the person's label is on the model page, beside the promote button.
  await page.goto(modelUrl);
  const evaluation = page.getByTestId("evaluation");
  const row = evaluation.locator("tr", { hasText: "Shadow 1.0.0" });
  await expect(row).toContainText("1 liver");
  await expect(row.locator("td").nth(2)).toHaveText("1");
  await expect(row.locator("td").nth(3)).toHaveText(/0\.\d{3} \/ 0\.\d{3}/);
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Promote to production" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("production");
  await expect(page.getByText("Production 1.0.0")).toBeVisible();

  // Version 2 in shadow: both run on the case, and the chart shows the paired Dice.
  await page.goto("/registry");
  await page.locator("body[data-hydrated=true]").waitFor();
  const v2 = { ...card, version: "2.0.0", artifact: { format: "onnx", sha256: sha256Of("segmenter_v2.onnx") } };
  await page.getByLabel("Model card (JSON)").fill(JSON.stringify(v2, null, 2));
  await page.getByLabel("Model file (ONNX)").setInputFiles(`${FIXTURES}/segmenter_v2.onnx`);
  await page.getByRole("button", { name: "Register" }).click();
  await expect(page).toHaveURL(/\/registry\/[0-9a-f-]{36}$/);
  const v2Url = page.url();
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Promote to shadow" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("shadow");
  await openCase(page, caseId);
  await page.getByRole("button", { name: "Run models on this case" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("Jobs queued: 2");
  await expect(page.getByTestId("jobs").locator("tr", { hasText: "2.0.0" })).toContainText("succeeded", { timeout: 30_000 });
  await expect(page.getByTestId("jobs").locator("tr", { hasText: "succeeded" })).toHaveCount(3, { timeout: 30_000 });
  await page.goto(v2Url);
  await expect(page.getByTestId("dice-chart").locator("circle.pair")).toHaveCount(1);

  // The disagreements table opens the case comparing the shadow prediction with the person's
  // mask, on the slice where they disagree most.
  await page.getByTestId("evaluation").locator("a[href*='compare=shadow']").first().click();
  await expect(page).toHaveURL(/compare=shadow&label=1/);
  await page.locator("body[data-hydrated=true]").waitFor();
  await expect(page.getByTestId("loading")).toHaveCount(0, { timeout: 30_000 });
  await expect(page.getByTestId("disagreement")).toHaveText(/^\d+ voxels only in the mask, \d+ only in the prediction$/);
  const [humanOnly, modelOnly] = (await page.getByTestId("disagreement").textContent())!.match(/\d+/g)!.map(Number);
  expect(humanOnly + modelOnly).toBeGreaterThan(0);
  await expect
    .poll(async () => (await colourCount(page, [250, 204, 21])).total + (await colourCount(page, [217, 70, 239])).total)
    .toBeGreaterThan(0);
  // Without the comparison, the shadow prediction outlined in orange over the mask.
  await page.getByLabel("Disagreement with").selectOption({ label: "none" });
  await page.getByLabel(`Draw shadow ${name} 2.0.0`).selectOption("outline");
  await expect.poll(async () => (await colourCount(page, [249, 115, 22])).total).toBeGreaterThan(0);

  // Promote version 2, then roll back in one step: 1.0.0 returns, 2.0.0 is archived.
  await page.goto(v2Url);
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Promote to production" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("2.0.0 production");
  await page.getByRole("button", { name: "Roll back to 1.0.0" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("2.0.0 archived");
  const timeline = page.getByTestId("timeline").locator("tbody tr");
  await expect(timeline.nth(0)).toContainText("archived → production");
  await expect(timeline.nth(0)).toContainText("rollback from 2.0.0");
  await expect(timeline.nth(1)).toContainText("rolled back to 1.0.0");

  // Archive 1.0.0, so cases imported by later tests are not pre-labelled by it.
  await page.goto(modelUrl);
  await expect(page.getByRole("heading", { level: 1 })).toContainText("1.0.0 production");
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Archive" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText("archived");
});
