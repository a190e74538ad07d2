import { expect, Page, test } from "@playwright/test";
import { existsSync, readFileSync } from "node:fs";
import {
  canvasPoint,
  changedVoxels,
  colourCount,
  copyDemoCase,
  currentMask,
  labelColour,
  logIn,
  openCase,
  viewCanvas,
  voxelIn,
  voxelUnder,
} from "./helpers";

const ABDOMEN = "Demo abdomen phantom (CT, int16)";
const CROSSHAIR: [number, number, number] = [0x00, 0xd0, 0xff];
const PLANES = ["axial", "coronal", "sagittal"];

/** Stamps one brush disc at a point of the active view. */
async function dab(page: Page, fx: number, fy: number) {
  const at = await canvasPoint(page, fx, fy);
  await page.mouse.click(at.x, at.y);
}

async function crosshairVoxel(page: Page) {
  return voxelIn(await page.getByTestId("crosshair").textContent());
}

/** Where the crosshair's lines cross in a view, in canvas pixels: the column and row with most crosshair pixels. */
async function crosshairLines(page: Page, plane: string) {
  return viewCanvas(page, plane).evaluate((canvas: HTMLCanvasElement, rgb) => {
    const { data, width, height } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    const columns = new Array(width).fill(0);
    const rows = new Array(height).fill(0);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const at = (y * width + x) * 4;
        if (data[at] === rgb[0] && data[at + 1] === rgb[1] && data[at + 2] === rgb[2]) {
          columns[x]++;
          rows[y]++;
        }
      }
    }
    const best = (counts: number[]) => counts.indexOf(Math.max(...counts));
    return { x: best(columns), y: best(rows), width, height, longest: Math.max(...columns, ...rows) };
  }, CROSSHAIR);
}

/** The voxel the status line reports under a canvas pixel (x, y) of a view. */
async function voxelAtPixel(page: Page, plane: string, x: number, y: number) {
  const { width, height } = await viewCanvas(page, plane).evaluate((c: HTMLCanvasElement) => ({ width: c.width, height: c.height }));
  return voxelUnder(page, (x + 0.5) / width, (y + 0.5) / height, plane);
}

test("three linked views: a crosshair click in one view moves the other two, shown in voxels and mm", async ({ page }) => {
  await logIn(page);
  const caseId = await copyDemoCase(page, ABDOMEN, "1=liver,2=kidney");
  await openCase(page, caseId);
  for (const plane of PLANES) await expect(viewCanvas(page, plane)).toBeVisible();

  // Every view's crosshair crosses at the shared point: hovering there reads that voxel.
  const checkAllViews = async () => {
    const point = await crosshairVoxel(page);
    for (const plane of PLANES) {
      const lines = await crosshairLines(page, plane);
      expect(lines.longest, `${plane} shows the crosshair`).toBeGreaterThan(50);
      const under = await voxelAtPixel(page, plane, lines.x, lines.y);
      under.forEach((value, axis) => expect(Math.abs(value - point[axis]), `${plane} axis ${axis}`).toBeLessThanOrEqual(1));
    }
    return point;
  };
  const centre = await checkAllViews();

  // Crosshair tool: a click in the axial view moves the coronal and sagittal views to that point.
  await page.keyboard.press("x");
  const target = await voxelUnder(page, 0.3, 0.35, "axial");
  const click = await canvasPoint(page, 0.3, 0.35, "axial");
  await page.mouse.click(click.x, click.y);
  await expect.poll(() => crosshairVoxel(page)).toEqual(target);
  expect(target[2]).toBe(centre[2]); // the axial slice itself did not move
  await checkAllViews();
  await expect(page.getByTestId("crosshair")).toContainText(/scanner \(-?\d+\.\d, -?\d+\.\d, -?\d+\.\d\) mm/);

  // A drag in the coronal view moves the axial slice; the coronal view becomes the active one.
  const from = await canvasPoint(page, 0.5, 0.5, "coronal");
  const to = await canvasPoint(page, 0.5, 0.3, "coronal");
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(to.x, to.y, { steps: 5 });
  await page.mouse.up();
  const moved = await crosshairVoxel(page);
  expect(moved[2]).toBeGreaterThan(target[2]); // up the screen is superior
  await expect(viewCanvas(page)).toHaveAttribute("data-testid", "view-coronal");
  await checkAllViews();

  // M maximises the active view and brings the three back.
  await page.keyboard.press("m");
  await expect(viewCanvas(page, "axial")).toBeHidden();
  await expect(viewCanvas(page, "coronal")).toBeVisible();
  await page.keyboard.press("m");
  await expect(viewCanvas(page, "axial")).toBeVisible();
});

test("paint two slices 20 apart, fill between them, clean islands, save: exactly the interpolated voxels", async ({ page }) => {
  await logIn(page);
  const caseId = await copyDemoCase(page, ABDOMEN, "1=liver,2=kidney,3=lesion");
  await openCase(page, caseId);
  const before = await currentMask(page.request, caseId);
  await page.locator('button[data-label="3"]').click();
  await page.getByLabel("Mask opacity").fill("1");

  // A small disc on axial slice 20, a larger one at the same place on slice 40, and a stray dab.
  await page.getByLabel("Slice").fill("20");
  await page.getByLabel("Brush radius").fill("4");
  await dab(page, 0.55, 0.45);
  await page.getByLabel("Slice").fill("40");
  await page.getByLabel("Brush radius").fill("8");
  await dab(page, 0.55, 0.45);
  await page.getByLabel("Brush radius").fill("1");
  await dab(page, 0.85, 0.8);

  const lesionCount = page.getByTestId("labels").locator('tr[data-label="3"] td.count').first();
  await expect(lesionCount).not.toHaveText("0");
  const painted = Number(await lesionCount.textContent());
  await page.getByRole("button", { name: "Fill between slices" }).click();
  await expect(page.getByTestId("preview")).toContainText(/Fill between slices: \d+ voxels/);
  const previewed = Number((await page.getByTestId("preview").textContent())!.match(/(\d+) voxels/)![1]);
  await page.getByTestId("preview").getByRole("button", { name: "Apply" }).click();
  await expect(page.getByTestId("preview")).toHaveCount(0);

  // The stray dab grew a cone of its own between the slices: keep the largest island only.
  await page.getByRole("button", { name: "Keep largest island" }).click();
  await expect(page.getByTestId("tool-notice")).toContainText(/[1-9]\d* voxels changed/);
  const removed = Number((await page.getByTestId("tool-notice").textContent())!.match(/(\d+) voxels/)![1]);

  // The label list counts what is on the mask now: painted + interpolated − islands.
  await expect(lesionCount).toHaveText(String(painted + previewed - removed));
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByTestId("save-status")).toContainText("Saved (version 1");

  const after = await currentMask(page.request, caseId);
  const changed = changedVoxels(before.voxels, after.voxels, after.dims);
  expect(changed.every((v) => v.value === 3)).toBe(true);
  expect(changed).toHaveLength(painted + previewed - removed);
  const onSlice = (k: number) => new Set(changed.filter((v) => v.k === k).map((v) => `${v.i},${v.j}`));
  const small = onSlice(20);
  const large = onSlice(40);
  expect(small.size).toBeGreaterThan(10);
  expect(large.size).toBeGreaterThan(small.size * 2);
  // Every slice between holds a disc between the two: the small one inside, the large one around it.
  for (let k = 21; k < 40; k++) {
    const shape = onSlice(k);
    for (const voxel of small) expect(shape.has(voxel), `slice ${k} holds ${voxel}`).toBe(true);
    for (const voxel of shape) expect(large.has(voxel), `slice ${k}: ${voxel} lies within the large disc`).toBe(true);
  }
  expect(changed.every((v) => v.k >= 20 && v.k <= 40)).toBe(true);

  // The structure shows in the coronal and sagittal views once the crosshair is on it.
  await page.keyboard.press("x");
  await page.getByLabel("Slice").fill("30");
  await dab(page, 0.55, 0.45);
  const lesion = await labelColour(page, 3);
  for (const plane of ["coronal", "sagittal"]) {
    await expect.poll(async () => (await colourCount(page, lesion, plane)).total, `${plane} shows the lesion`).toBeGreaterThan(50);
  }
  // Hiding the label hides it everywhere.
  await page.getByLabel("Show lesion").uncheck();
  for (const plane of PLANES) await expect.poll(async () => (await colourCount(page, lesion, plane)).total).toBe(0);
});

test("region growing on the MNI152 T1 from one click, previewed, applied, undone and redone", async ({ page }) => {
  const template = "../target/testdata/mni152_t1.nii.gz";
  test.skip(!existsSync(template), "run .ci/setup test to fetch the MNI152 template");
  await logIn(page);
  const response = await page.request.post("/cases", {
    headers: { Origin: new URL(page.url()).origin },
    multipart: {
      name: `MNI152 grow ${Date.now()}`,
      image: { name: "mni152_t1.nii.gz", mimeType: "application/gzip", buffer: readFileSync(template) },
      labels: "1=white matter",
    },
  });
  expect(response.status()).toBe(201);
  await openCase(page, (await response.json()).id);
  await page.keyboard.press("g");
  await expect(page.getByLabel("Grow low")).toBeVisible();
  // The centre of the brain (the crosshair's point) is white matter on the template.
  const seed = await crosshairLines(page, "axial");
  const at = await canvasPoint(page, (seed.x + 0.5) / seed.width, (seed.y + 0.5) / seed.height, "axial");
  await page.mouse.click(at.x, at.y);
  await expect(page.getByTestId("preview")).toContainText(/Region growing: \d+ voxels/);
  const grown = Number((await page.getByTestId("preview").textContent())!.match(/(\d+) voxels/)![1]);
  expect(grown).toBeGreaterThan(10_000);
  await expect(page.getByTestId("preview")).not.toContainText("cap");
  // The range defaults from the clicked value and the window; narrowing it grows less.
  const low = Number(await page.getByLabel("Grow low").inputValue());
  const high = Number(await page.getByLabel("Grow high").inputValue());
  expect(high).toBeGreaterThan(low);
  await page.getByLabel("Grow cap").fill("5000");
  await page.getByLabel("Grow cap").press("Tab");
  await expect(page.getByTestId("preview")).toContainText("5000 voxels (stopped at the voxel cap)");
  await page.getByLabel("Grow cap").fill("2000000");
  await page.getByLabel("Grow cap").press("Tab");
  await expect(page.getByTestId("preview")).toContainText(`${grown} voxels`);

  await page.keyboard.press("Enter");
  const count = page.getByTestId("labels").locator('tr[data-label="1"] td.count').first();
  await expect(count).toHaveText(String(grown));
  await page.keyboard.press("Control+z");
  await expect(count).toHaveText("0");
  await page.keyboard.press("Control+y");
  await expect(count).toHaveText(String(grown));
  await expect(page.getByTestId("unsaved")).toContainText(`${grown} unsaved voxel edits`);
});

test("paint rules: only inside the liver, then only over background", async ({ page }) => {
  await logIn(page);
  const caseId = await copyDemoCase(page, ABDOMEN, "1=liver,2=kidney,3=lesion");
  await openCase(page, caseId);
  await page.getByRole("button", { name: "1 view" }).click();
  await page.locator('button[data-label="3"]').click();
  await page.getByLabel("Brush radius").fill("20");
  const wide = async (fy: number) => {
    const from = await canvasPoint(page, 0.15, fy);
    const to = await canvasPoint(page, 0.85, fy);
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(to.x, to.y, { steps: 20 });
    await page.mouse.up();
  };
  const saveAndCompare = async (before: Awaited<ReturnType<typeof currentMask>>, version: number) => {
    await page.getByRole("button", { name: "Save" }).click();
    await expect(page.getByTestId("save-status")).toContainText(`Saved (version ${version}`);
    const after = await currentMask(page.request, caseId);
    const changed = changedVoxels(before.voxels, after.voxels, after.dims);
    const [ni, nj] = after.dims;
    return { after, was: changed.map((v) => before.voxels[v.i + ni * (v.j + nj * v.k)]) };
  };

  // A wide stroke across the whole body, allowed only inside the liver.
  await page.getByLabel("Paint rule").selectOption({ label: "only inside 1 liver" });
  const start = await currentMask(page.request, caseId);
  await wide(0.42);
  const inside = await saveAndCompare(start, 1);
  expect(inside.was.length).toBeGreaterThan(100);
  expect(inside.was.every((value) => value === 1)).toBe(true);

  // The same stroke only over background: nothing labelled is overwritten.
  await page.getByLabel("Paint rule").selectOption({ label: "only over background" });
  await wide(0.5);
  const outside = await saveAndCompare(inside.after, 2);
  expect(outside.was.length).toBeGreaterThan(100);
  expect(outside.was.every((value) => value === 0)).toBe(true);
});
