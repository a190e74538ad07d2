import { expect, test } from "@playwright/test";
import { addUser, colourCount, copyDemoCase, currentMask, logIn, openCase, personOpening, stroke, USER_PASSWORD } from "./helpers";

test("a labeler submits, the reviewer sends it back with a comment at a voxel, the labeler fixes it, the reviewer approves", async ({
  browser,
  page,
}) => {
  const suffix = Date.now().toString(36);
  const [labeler, reviewer] = [`lena-${suffix}`, `rex-${suffix}`];
  addUser(labeler, "labeler");
  addUser(reviewer, "reviewer");
  // An ML engineer (the demo user) assigns a fresh case to both, with the case page's form.
  await logIn(page);
  const caseId = await copyDemoCase(page, "Demo abdomen phantom (CT, int16)", "1=liver,2=kidney");
  await openCase(page, caseId);
  const assign = page.getByTestId("assign");
  await assign.getByLabel("Labeler").selectOption(labeler);
  await assign.getByLabel("Reviewer").selectOption(reviewer);
  await assign.getByRole("button", { name: "Assign" }).click();
  await expect(page.getByTestId("review")).toContainText(`Labeler: ${labeler} · reviewer: ${reviewer}`);

  // The labeler's worklist starts with their own cases; "Next case" opens the one assigned.
  const lena = await (await browser.newContext()).newPage();
  await logIn(lena, labeler, USER_PASSWORD);
  // Forms a labeler may not use are not shown: registering models is an ML engineer's.
  await lena.goto("/registry");
  await expect(lena.getByRole("heading", { name: "Models" })).toBeVisible();
  await expect(lena.getByRole("button", { name: "Register" })).toHaveCount(0);
  await lena.goto("/");
  await expect(lena.getByLabel("Assigned to")).toHaveValue("me");
  await expect(lena.locator("table.cases tbody tr")).toHaveCount(1);
  await expect(lena.locator("table.cases tbody tr")).toContainText("New");
  await lena.getByRole("button", { name: "Next case" }).click();
  await expect(lena).toHaveURL(new RegExp(`/cases/${caseId}$`));
  await lena.locator("body[data-hydrated=true]").waitFor();
  await expect(lena.getByTestId("loading")).toHaveCount(0, { timeout: 30_000 });

  // Nothing to submit before a save; a save makes the case in progress.
  const review = lena.getByTestId("review");
  await expect(lena.getByTestId("case-status")).toHaveText("New");
  await expect(review).toContainText(`Labeler: ${labeler} · reviewer: ${reviewer}`);
  await expect(review.getByRole("button", { name: "Submit for review" })).toHaveCount(0);
  await expect(lena.getByRole("button", { name: "Run models on this case" })).toHaveCount(0);
  await stroke(lena, [0.6, 0.4], [0.7, 0.4]);
  await lena.getByRole("button", { name: "Save" }).click();
  await expect(lena.getByTestId("case-status")).toHaveText("In progress");
  await review.getByRole("button", { name: "Submit for review" }).click();
  await expect(lena.getByTestId("case-status")).toHaveText("Submitted");

  // The reviewer: the comment needs words; it points at the crosshair's voxel.
  const rex = await personOpening(browser, reviewer, caseId);
  const rexReview = rex.getByTestId("review");
  await expect(rex.getByTestId("case-status")).toHaveText("Submitted");
  await expect(rex.getByRole("button", { name: "Run models on this case" })).toHaveCount(0);
  // A reviewer reviews; saving on the labeler's case is not theirs.
  await expect(rex.getByRole("button", { name: "Save" })).toHaveCount(0);
  await expect(rex.getByTestId("read-only")).toContainText("cannot save");
  await rexReview.getByRole("button", { name: "Request changes" }).click();
  await expect(rexReview.getByRole("alert")).toContainText("needs one");
  const point = (await rex.getByTestId("crosshair").textContent())!.match(/voxel \((\d+), (\d+), (\d+)\)/)!.slice(1).join(", ");
  await rexReview.getByLabel("Comment").fill("The kidney's lower pole is missing here");
  await rexReview.getByRole("button", { name: "Request changes" }).click();
  await expect(rex.getByTestId("case-status")).toHaveText("Changes requested");
  await expect(rexReview.getByTestId("comments")).toContainText("The kidney's lower pole is missing here");

  // The labeler reads it, goes to its voxel, fixes, saves and submits again.
  await lena.reload();
  await expect(lena.getByTestId("loading")).toHaveCount(0);
  await expect(lena.getByTestId("case-status")).toHaveText("Changes requested");
  await lena.getByLabel("Slice").fill("3"); // away from the comment's voxel
  await review.getByRole("button", { name: `Go to (${point})` }).click();
  await expect(lena.getByTestId("crosshair")).toContainText(`voxel (${point})`);
  await stroke(lena, [0.6, 0.5], [0.7, 0.5]);
  await lena.getByRole("button", { name: "Save" }).click();
  await expect(lena.getByTestId("case-status")).toHaveText("In progress");
  await review.getByRole("button", { name: "Submit for review" }).click();
  await expect(lena.getByTestId("case-status")).toHaveText("Submitted");

  // The reviewer sees what the labeler changed since import: added voxels in green.
  await rex.reload();
  await expect(rex.getByTestId("loading")).toHaveCount(0);
  await rexReview.getByLabel("Show changes since import").check();
  await expect(rexReview.getByTestId("changes")).toContainText(/[1-9]\d* voxels added, \d+ removed/);
  await expect.poll(async () => (await colourCount(rex, [34, 197, 94])).total).toBeGreaterThan(20);
  await rexReview.getByLabel("Show changes since import").uncheck();
  await expect.poll(async () => (await colourCount(rex, [34, 197, 94])).total).toBe(0);

  // The reviewer approves: the version reviewed is pinned.
  await rexReview.getByRole("button", { name: "Approve" }).click();
  await expect(rex.getByTestId("case-status")).toHaveText("Approved");
  const mask = await currentMask(page.request, caseId);
  const workflow = (await (await page.request.get(`/cases/${caseId}/artifacts`)).json()).workflow;
  expect(workflow).toEqual({
    status: "approved",
    assignee: labeler,
    reviewer,
    approved_mask_ref: mask.ref,
    restricted: false,
    readings_required: 1,
  });
  expect(mask.history).toHaveLength(2);

  // An ML engineer (the demo user) freezes the approved liver-and-kidney cases into a snapshot.
  await page.goto("/snapshots");
  const snapshot = `abdomen-${suffix}`;
  await page.getByLabel("Name", { exact: true }).fill(snapshot);
  await page.getByLabel("Only cases whose name contains").fill("Demo abdomen phantom (CT, int16) copy");
  await page.getByLabel("Test %").fill("0");
  await page.getByLabel("Validation %").fill("0");
  await page.getByRole("button", { name: "Make snapshot" }).click();
  await expect(page.getByRole("status")).toContainText(`Made ${snapshot} version 1.`);
  const listed = page.locator("table.datasets tbody tr", { hasText: snapshot });
  await expect(listed).toHaveCount(1);
  await expect(listed).toContainText("1 / 0 / 0");
  // The labeler sees the list but not the form.
  await lena.goto("/snapshots");
  await expect(lena.locator("table.datasets tbody tr", { hasText: snapshot })).toHaveCount(1);
  await expect(lena.getByRole("button", { name: "Make snapshot" })).toHaveCount(0);

  // The worklist shows it approved, with who saved it last.
  await page.goto("/");
  await page.getByLabel("Search by name").fill(await page.evaluate(async (id) => (await (await fetch(`/cases/${id}/artifacts`)).json()).case_name, caseId));
  await page.getByLabel("Search by name").press("Enter");
  const row = page.locator("table.cases tbody tr");
  await expect(row).toHaveCount(1);
  await expect(row).toContainText("Approved");
  await expect(row).toContainText(`${labeler}, `);
  await expect(row).toContainText(reviewer);
});
