import { APIRequestContext, Browser, expect, Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { gunzipSync, gzipSync } from "node:zlib";

export const DEMO_PASSWORD = "demo-e2e-password";
/** The password of every user a test adds. */
export const USER_PASSWORD = "user-e2e-password";

/** A user of the running app, made with the command line as an operator would. */
export function addUser(username: string, role: string) {
  execFileSync("../target/debug/seglab", ["--data-dir", "../target/e2e-data", "user", "add", username, "--role", role, "--password-stdin"], {
    input: `${USER_PASSWORD}\n`,
  });
}

/** A browser of its own for `username` (added with `addUser`), logged in, on the page of `caseId`. */
export async function personOpening(browser: Browser, username: string, caseId: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await logIn(page, username, USER_PASSWORD);
  await openCase(page, caseId);
  return page;
}

export async function logIn(page: Page, username = "demo", password = DEMO_PASSWORD) {
  await page.goto("/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("heading", { name: "Cases" })).toBeVisible();
}

/** Imports a copy of a demo case under a fresh name (or `name`), so each test edits its own case. */
export async function copyDemoCase(page: Page, demoName: string, labels: string, name?: string): Promise<string> {
  name ??= `${demoName} copy ${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
  return page.evaluate(
    async ({ demoName, name, labels }) => {
      const cases = await (await fetch("/cases")).json();
      const demo = cases.find((c: { name: string }) => c.name === demoName);
      const artifacts = await (await fetch(`/cases/${demo.id}/artifacts`)).json();
      const file = async (kind: string) =>
        (await fetch(artifacts.artifacts.find((a: { kind: string }) => a.kind === kind).url)).blob();
      const form = new FormData();
      form.append("name", name);
      form.append("image", await file("image"), "image.nii.gz");
      form.append("mask", await file("mask"), "mask.nii.gz");
      form.append("labels", labels);
      const response = await fetch("/cases", { method: "POST", body: form });
      if (response.status !== 201) throw new Error(`import failed: ${response.status} ${await response.text()}`);
      return (await response.json()).id as string;
    },
    { demoName, name, labels },
  );
}

/** Opens a case page and waits until the volumes are downloaded and the first slice drawn. */
export async function openCase(page: Page, caseId: string) {
  await page.goto(`/cases/${caseId}`);
  await page.locator("body[data-hydrated=true]").waitFor();
  await expect(page.getByTestId("loading")).toHaveCount(0, { timeout: 30_000 });
}

export type Mask = { dims: [number, number, number]; voxels: Uint8Array };

export function parseNifti(file: Buffer): { dims: [number, number, number]; data: Buffer } {
  const raw = file[0] === 0x1f && file[1] === 0x8b ? gunzipSync(file) : file;
  const dims: [number, number, number] = [raw.readInt16LE(42), raw.readInt16LE(44), raw.readInt16LE(46)];
  const voxOffset = raw.readFloatLE(108);
  return { dims, data: raw.subarray(voxOffset) };
}

/** The case's current mask, fetched through the API and object storage as a script would. */
export async function currentMask(request: APIRequestContext, caseId: string) {
  const case_ = await (await request.get(`/cases/${caseId}/artifacts?history=true`)).json();
  const mask = case_.artifacts.find((a: { kind: string }) => a.kind === "mask");
  const { dims, data } = parseNifti(await (await request.get(mask.url)).body());
  return { dims, voxels: new Uint8Array(data), ref: case_.current_mask_ref as string, history: case_.history as any[] };
}

export function changedVoxels(before: Uint8Array, after: Uint8Array, dims: [number, number, number]) {
  const changed: { i: number; j: number; k: number; value: number }[] = [];
  for (let index = 0; index < after.length; index++) {
    if (before[index] !== after[index]) {
      const i = index % dims[0];
      const j = Math.floor(index / dims[0]) % dims[1];
      const k = Math.floor(index / (dims[0] * dims[1]));
      changed.push({ i, j, k, value: after[index] });
    }
  }
  return changed;
}

/** The active view's canvas, or the view of `plane` ("axial", "coronal", "sagittal"). */
export function viewCanvas(page: Page, plane?: string) {
  return plane ? page.getByTestId(`view-${plane}`) : page.locator('canvas[data-active="true"]');
}

/** Canvas pixels equal to `rgb`, counted per half of the canvas. */
export async function colourCount(page: Page, rgb: [number, number, number], plane?: string) {
  return viewCanvas(page, plane).evaluate((canvas: HTMLCanvasElement, rgb) => {
    const { data, width, height } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    const counts = { left: 0, right: 0, top: 0, bottom: 0, total: 0 };
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const at = (y * width + x) * 4;
        if (data[at] === rgb[0] && data[at + 1] === rgb[1] && data[at + 2] === rgb[2]) {
          counts.total++;
          counts[x < width / 2 ? "left" : "right"]++;
          counts[y < height / 2 ? "top" : "bottom"]++;
        }
      }
    }
    return counts;
  }, rgb);
}

/** The RGB of a canvas point given as fractions of its width and height. */
export async function pixelAt(page: Page, fx: number, fy: number, plane?: string): Promise<[number, number, number]> {
  return viewCanvas(page, plane).evaluate(
    (canvas: HTMLCanvasElement, [fx, fy]) => {
      const d = canvas.getContext("2d")!.getImageData(Math.floor(canvas.width * fx), Math.floor(canvas.height * fy), 1, 1).data;
      return [d[0], d[1], d[2]] as [number, number, number];
    },
    [fx, fy],
  );
}

export async function labelColour(page: Page, value: number): Promise<[number, number, number]> {
  const style = (await page.locator(`button[data-label="${value}"]`).getAttribute("style")) ?? "";
  const hex = style.match(/#([0-9a-f]{6})/i)![1];
  return [0, 2, 4].map((at) => parseInt(hex.slice(at, at + 2), 16)) as [number, number, number];
}

/** Page coordinates of a canvas point given as fractions of its size. */
export async function canvasPoint(page: Page, fx: number, fy: number, plane?: string) {
  await viewCanvas(page, plane).scrollIntoViewIfNeeded();
  const box = (await viewCanvas(page, plane).boundingBox())!;
  return { x: box.x + box.width * fx, y: box.y + box.height * fy };
}

/** The voxel (i, j, k) the status line reports under a canvas point. */
export async function voxelUnder(page: Page, fx: number, fy: number, plane?: string): Promise<[number, number, number]> {
  const { x, y } = await canvasPoint(page, fx, fy, plane);
  await page.mouse.move(x, y);
  return voxelIn(await page.getByTestId("cursor").textContent());
}

/** The first "(i, j, k)" voxel in a status text. */
export function voxelIn(text: string | null): [number, number, number] {
  const match = text!.match(/voxel \((\d+), (\d+), (\d+)\)/)!;
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Drags the left button between two canvas points (fractions of its size). */
export async function stroke(page: Page, from: [number, number], to: [number, number]) {
  const start = await canvasPoint(page, ...from);
  const end = await canvasPoint(page, ...to);
  await page.mouse.move(start.x, start.y);
  await page.mouse.down();
  await page.mouse.move(end.x, end.y, { steps: 12 });
  await page.mouse.up();
}

/**
 * An int16 NIfTI-1 volume as `.nii.gz` (gzip level 1): `voxels` in file order (i fastest),
 * `spacing` in mm, and an sform row per axis when given (else none).
 */
export function int16Volume(dims: [number, number, number], spacing: [number, number, number], voxels: Int16Array, sform?: number[][]): Buffer {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  [3, ...dims, 1, 1, 1, 1].forEach((d, n) => header.writeInt16LE(d, 40 + 2 * n));
  header.writeInt16LE(4, 70); // int16
  header.writeInt16LE(16, 72);
  [1, ...spacing, 1, 1, 1, 1].forEach((p, n) => header.writeFloatLE(p, 76 + 4 * n));
  header.writeFloatLE(352, 108); // vox_offset
  header.writeFloatLE(1, 112); // scl_slope
  if (sform) {
    header.writeInt16LE(1, 254); // sform_code
    sform.forEach((row, r) => row.forEach((v, c) => header.writeFloatLE(v, 280 + 16 * r + 4 * c)));
  }
  header.write("n+1\0", 344, "latin1");
  return gzipSync(Buffer.concat([header, Buffer.from(voxels.buffer, voxels.byteOffset, voxels.byteLength)]), { level: 1 });
}
