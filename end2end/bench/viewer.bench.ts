// Viewer benchmark in headless Chromium against the release build (`.ci/bench-viewer`):
// time from opening a case to its first slice drawn and to the whole volume in, Niivue opening
// the same files side by side, repaint time during a brush stroke on a
// 512×512 slice (three views and one), the 3-D tools on the 512×512×300 volume (fill between
// slices over 60 slices, region growing of 1 M voxels, islands, holes, closing), and the WASM
// bundle size. Figures go to stdout and target/bench/viewer.json.
import { expect, Page, test } from "@playwright/test";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { canvasPoint, int16Volume, logIn, openCase } from "../tests/helpers";

/** Durations of the 3-D tool runs named `name` recorded since the page opened. */
async function opTimes(page: Page, name: string): Promise<number[]> {
  return page.evaluate((name) => (window as any).__seglab.ops.filter((op: any) => op.name === name).map((op: any) => op.ms), name);
}

/** The voxels the newest run of `name` found or changed. */
async function opVoxels(page: Page, name: string): Promise<number> {
  return page.evaluate((name) => (window as any).__seglab.ops.filter((op: any) => op.name === name).pop().voxels, name);
}

/**
 * While dragging the brush across the active view: the viewer's own work per pointer move
 * (render + hand-over to the canvas, `renderMs`), and the intervals between the frames the
 * browser presented meanwhile (requestAnimationFrame), which include its compositing.
 */
async function strokeRepaints(page: Page, from: [number, number], to: [number, number]) {
  await page.evaluate(() => {
    const stats = (window as any).__seglab;
    stats.renderMs = [];
    stats.frames = [];
    stats.framing = true;
    const frame = (at: number) => {
      stats.frames.push(at);
      if (stats.framing) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  const start = await canvasPoint(page, ...from);
  const end = await canvasPoint(page, ...to);
  await page.mouse.move(start.x, start.y);
  await page.mouse.down();
  await page.mouse.move(end.x, end.y, { steps: 120 });
  await page.mouse.up();
  const { repaint, frames } = await page.evaluate(() => {
    const stats = (window as any).__seglab;
    stats.framing = false;
    return { repaint: stats.renderMs as number[], frames: stats.frames as number[] };
  });
  expect(repaint.length).toBeGreaterThan(100);
  const intervals = frames.slice(1).map((at, n) => at - frames[n]);
  return { repaint: summary(repaint), frame_interval: summary(intervals) };
}

/** Runs a toolbar button `RUNS` times and summarises the tool's recorded durations. */
async function timeButton(page: Page, button: string, op: string, after?: () => Promise<void>) {
  const before = (await opTimes(page, op)).length;
  for (let run = 0; run < RUNS; run++) {
    await page.getByRole("button", { name: button, exact: true }).click();
    await expect.poll(async () => (await opTimes(page, op)).length).toBe(before + run + 1);
    if (after) await after();
  }
  return summary((await opTimes(page, op)).slice(before));
}

const RUNS = 7;

function quantile(values: number[], q: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * q))];
}

const summary = (values: number[]) => ({
  p50: +quantile(values, 0.5).toFixed(1),
  p95: +quantile(values, 0.95).toFixed(1),
  max: +Math.max(...values).toFixed(1),
  runs: values.length,
});

/** A 512×512×300 int16 CT-like volume (body ellipse, organs, noise) as `.nii.gz`. */
function largeCt(): Buffer {
  const [ni, nj, nk] = [512, 512, 300];
  const voxels = new Int16Array(ni * nj * nk);
  let seed = 1;
  for (let k = 0; k < nk; k++) {
    for (let j = 0; j < nj; j++) {
      for (let i = 0; i < ni; i++) {
        const [x, y] = [(i - 256) / 230, (j - 256) / 190];
        let hu = -1000;
        if (x * x + y * y <= 1) {
          hu = (x + 0.35) ** 2 / 0.1 + (y + 0.1) ** 2 / 0.08 <= 1 ? 60 : 40;
          seed = (seed * 1103515245 + 12345) & 0x7fffffff;
          hu += (seed % 17) - 8;
        }
        voxels[i + ni * (j + nj * k)] = hu;
      }
    }
  }
  const sform = [[-0.7, 0, 0, 179], [0, -0.7, 0, 179], [0, 0, 1, -150]];
  return int16Volume([ni, nj, nk], [0.7, 0.7, 1.0], voxels, sform);
}

/**
 * A 1024×1024×400 int16 volume (800 MB of voxels, 0.4×0.4×1 mm) as `.nii.gz`: a disc on a
 * gradient whose radius steps every 100 slices.
 */
function hugeVolume(): Buffer {
  const [ni, nj, nk] = [1024, 1024, 400];
  const slices = [0, 1, 2, 3].map((step) => {
    const slice = new Int16Array(ni * nj);
    for (let j = 0; j < nj; j++) {
      for (let i = 0; i < ni; i++) {
        const inside = (i - 512) ** 2 + (j - 512) ** 2 < (300 + 40 * step) ** 2;
        slice[i + ni * j] = inside ? 700 + ((i + j) % 40) : ((i * 3 + j) % 300) - 100;
      }
    }
    return slice;
  });
  const voxels = new Int16Array(ni * nj * nk);
  for (let k = 0; k < nk; k++) voxels.set(slices[Math.floor(k / 100)], k * ni * nj);
  return int16Volume([ni, nj, nk], [0.4, 0.4, 1.0], voxels);
}

/** Process ids of Chromium's renderer processes now running. */
function rendererPids(): string[] {
  return readdirSync("/proc").filter((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("--type=renderer");
    } catch {
      return false;
    }
  });
}

/** The largest peak resident memory (VmHWM) of the renderer processes `pids`, in MB. */
function peakResidentMb(pids: string[]): number {
  let peak = 0;
  for (const pid of pids) {
    try {
      const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
      if (kb) peak = Math.max(peak, +kb[1] / 1024);
    } catch {}
  }
  return Math.round(peak);
}

async function importCase(page: Page, name: string, image: Buffer) {
  const response = await page.request.post("/cases", {
    headers: { Origin: new URL(page.url()).origin },
    multipart: { name, image: { name: `${name}.nii.gz`, mimeType: "application/gzip", buffer: image } },
    timeout: 300_000,
  });
  expect(response.status()).toBe(201);
  return (await response.json()).id as string;
}

const MILESTONES = ["openStartMs", "firstSlabMs", "downloadedMs", "decodedMs", "firstSliceMs"] as const;
const LOADING_WORK = ["waitingMs", "inflatingMs", "fillingMs", "drawingMs"] as const;

/**
 * Per page load, the time from navigation start to each milestone of opening the case: the
 * first slice drawn (the middle slice's slabs in), and the whole volume in and browsable.
 */
async function openingTimes(page: Page, caseId: string) {
  const times: Record<string, number[]> = Object.fromEntries(MILESTONES.map((m) => [m, []]));
  const work: Record<string, number[]> = Object.fromEntries(LOADING_WORK.map((w) => [w, []]));
  for (let run = 0; run < RUNS; run++) {
    await openCase(page, caseId);
    const stats = await page.evaluate(() => (window as any).__seglab);
    MILESTONES.forEach((m) => times[m].push(stats[m]));
    LOADING_WORK.forEach((w) => work[w].push(stats.loading[w]));
  }
  const p50 = (values: number[]) => +quantile(values, 0.5).toFixed(1);
  return {
    first_slice: summary(times.firstSliceMs),
    whole_volume_browsable: summary(times.decodedMs),
    // Medians of the phases: page + WASM start, then (from there) the first slice drawn and
    // every slab arrived; slabs are fetched and inflated in Web Workers while the page draws.
    phases_p50: {
      page_and_wasm_start: p50(times.openStartMs),
      first_slab_after_start: p50(times.firstSlabMs.map((t, n) => t - times.openStartMs[n])),
      first_slice_after_start: p50(times.firstSliceMs.map((t, n) => t - times.openStartMs[n])),
      all_slabs_after_start: p50(times.downloadedMs.map((t, n) => t - times.openStartMs[n])),
      counts_and_window: p50(times.decodedMs.map((t, n) => t - times.downloadedMs[n])),
    },
    // Medians of where the page's own time went from the first slabs in to the last.
    page_work_while_slabs_arrive_p50: Object.fromEntries(LOADING_WORK.map((w) => [w.replace(/Ms$/, ""), p50(work[w])])),
  };
}

const NIIVUE_PAGE = `<!doctype html><html><body style="margin:0">
<canvas id="gl" width="1024" height="768"></canvas>
<script src="/niivue-bench/niivue.umd.js"></script>
<script>
  // Load and decode (fetch, inflate, parse), then the first draw (texture upload and render,
  // through SwiftShader's software WebGL2 here: no GPU), timed apart.
  window.openWithNiivue = async (url) => {
    const started = performance.now();
    const image = await niivue.NVImage.loadFromUrl({ url, name: "image.nii.gz" });
    const loaded = performance.now();
    const nv = new niivue.Niivue();
    await nv.attachToCanvas(document.getElementById("gl"));
    nv.addVolume(image);
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    const drawn = performance.now();
    return { script_ready: started, load_and_decode: loaded - started, first_draw: drawn - loaded, since_navigation: drawn };
  };
</script></body></html>`;

/**
 * Niivue (npm @niivue/niivue, in the same Chromium) opening the same image file from the same
 * storage by its presigned URL, from a page the same server serves (from its site folder: a
 * page Playwright made up would have no address, and Chromium keeps such pages from loopback
 * addresses); `runs` fresh page loads.
 */
async function niivueTimes(page: Page, caseId: string, runs: number) {
  mkdirSync("../target/site/niivue-bench", { recursive: true });
  writeFileSync("../target/site/niivue-bench/page.html", NIIVUE_PAGE);
  copyFileSync("node_modules/@niivue/niivue/dist/niivue.umd.js", "../target/site/niivue-bench/niivue.umd.js");
  const results: Record<string, number>[] = [];
  for (let run = 0; run < runs; run++) {
    const artifacts = await (await page.request.get(`/cases/${caseId}/artifacts`)).json();
    await page.goto("/niivue-bench/page.html");
    results.push(await page.evaluate((url) => (window as any).openWithNiivue(url), artifacts.artifacts[0].url));
  }
  const p50 = (key: string) => +quantile(results.map((r) => r[key]), 0.5).toFixed(1);
  return {
    runs,
    load_and_decode_p50: p50("load_and_decode"),
    first_draw_p50: p50("first_draw"),
    drawn_since_navigation_p50: p50("since_navigation"),
  };
}

test("viewer benchmark", async ({ page }) => {
  await logIn(page);
  const mni = await importCase(page, "MNI152 T1 1 mm", readFileSync("../target/testdata/mni152_t1.nii.gz"));
  const largeFile = largeCt();
  const large = await importCase(page, "CT 512x512x300 int16", largeFile);

  const mniOpening = await openingTimes(page, mni);
  const largeOpening = await openingTimes(page, large);
  const niivue = {
    mni152_197x233x189_uint8: await niivueTimes(page, mni, 3),
    ct_512x512x300_int16: await niivueTimes(page, large, 2),
  };
  await openCase(page, large);

  // Repaint during a brush stroke on the 512×512 axial slice, with three views and with one.
  const threeViews = await strokeRepaints(page, [0.35, 0.4], [0.65, 0.6]);
  await page.getByRole("button", { name: "1 view" }).click();
  const oneView = await strokeRepaints(page, [0.35, 0.6], [0.65, 0.4]);
  await page.getByRole("button", { name: "3 views" }).click();
  await page.getByRole("button", { name: "Undo" }).click();
  await page.getByRole("button", { name: "Undo" }).click();

  // Fill between slices: discs on axial slices 100 and 160, 60 slices apart.
  const centre = await canvasPoint(page, 0.5, 0.5);
  await page.getByLabel("Brush radius").fill("30");
  for (const slice of ["100", "160"]) {
    await page.getByLabel("Slice").fill(slice);
    await page.mouse.click(centre.x, centre.y);
  }
  const cancel = async () => {
    await page.getByTestId("preview").getByRole("button", { name: "Cancel" }).click();
  };
  const fillBetween = await timeButton(page, "Fill between slices", "fill_between", cancel);
  const interpolated = await opVoxels(page, "fill_between");
  await page.getByRole("button", { name: "Fill between slices" }).click();
  await page.getByTestId("preview").getByRole("button", { name: "Apply" }).click();

  // Islands, holes and closing on the whole 512×512×300 mask.
  const islands = await timeButton(page, "Keep largest island", "islands");
  const holes = await timeButton(page, "Fill holes", "holes");
  const closing = await timeButton(page, "Close", "closing");

  // Region growing from one click inside the body, capped at 1,000,000 voxels.
  await page.keyboard.press("g");
  await page.getByLabel("Grow cap").fill("1000000");
  await page.getByLabel("Grow cap").press("Tab");
  const body = await canvasPoint(page, 0.3, 0.5);
  for (let run = 0; run < RUNS; run++) {
    await page.mouse.click(body.x, body.y);
    await expect(page.getByTestId("preview")).toContainText("Region growing");
    await cancel();
  }
  const grow = summary(await opTimes(page, "grow"));
  const grown = await opVoxels(page, "grow");

  // Islands and holes again on a label spread through most of the volume: 20 M voxels grown.
  await page.getByLabel("Grow cap").fill("20000000");
  await page.getByLabel("Grow cap").press("Tab");
  await page.mouse.click(body.x, body.y);
  await expect(page.getByTestId("preview")).toContainText("20000000 voxels");
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("preview")).toHaveCount(0);
  const largeIslands = await timeButton(page, "Keep largest island", "islands");
  const largeHoles = await timeButton(page, "Fill holes", "holes");

  // A 1024×1024×400 int16 volume, 3 times, each in a tab of its own: opened, browsed through
  // every slice of the active view, and the tab's peak memory read from /proc.
  const hugeFile = hugeVolume();
  const huge = await importCase(page, "CT 1024x1024x400 int16", hugeFile);
  const hugeRuns: { first: number; whole: number; browsing: number[]; peakMb: number }[] = [];
  for (let run = 0; run < 3; run++) {
    const others = new Set(rendererPids());
    const context = await page.context().browser()!.newContext({ baseURL: new URL(page.url()).origin });
    const tab = await context.newPage();
    await logIn(tab);
    await tab.goto(`/cases/${huge}`);
    await tab.locator("body[data-hydrated=true]").waitFor();
    await expect(tab.getByTestId("loading")).toHaveCount(0, { timeout: 300_000 });
    const stats = await tab.evaluate(() => (window as any).__seglab);
    await tab.evaluate(() => ((window as any).__seglab.renderMs = []));
    for (const slice of [0, 99, 199, 299, 399, 249]) {
      await tab.getByLabel("Slice").fill(`${slice}`);
      await expect(tab.getByTestId("slice")).toHaveText(`${slice + 1} / 400`);
    }
    const browsing = await tab.evaluate(() => (window as any).__seglab.renderMs as number[]);
    const peakMb = peakResidentMb(rendererPids().filter((pid) => !others.has(pid)));
    hugeRuns.push({ first: stats.firstSliceMs, whole: stats.decodedMs, browsing, peakMb });
    await context.close();
  }
  const hugeOpening = {
    first_slice: summary(hugeRuns.map((r) => r.first)),
    whole_volume_browsable: summary(hugeRuns.map((r) => r.whole)),
    redraw_while_browsing: summary(hugeRuns.flatMap((r) => r.browsing)),
    tab_peak_resident_mb: Math.max(...hugeRuns.map((r) => r.peakMb)),
    file_mb: +(hugeFile.length / 1e6).toFixed(1),
  };

  const wasm = readFileSync("../target/site/pkg/seglab.wasm");
  const results = {
    machine: "2 cores, headless Debian Chromium, release build (wasm-opt)",
    opening_ms: { mni152_197x233x189_uint8: mniOpening, ct_512x512x300_int16: largeOpening },
    niivue_opening_ms: niivue,
    ct_1024x1024x400_int16: hugeOpening,
    large_file_mb: +(largeFile.length / 1e6).toFixed(1),
    brush_repaint_ms_512x512: { three_views: threeViews, one_view: oneView },
    tools_ms_512x512x300: {
      fill_between_60_slices: { ...fillBetween, voxels: interpolated },
      region_growing: { ...grow, voxels: grown },
      keep_largest_island: islands,
      fill_holes: holes,
      keep_largest_island_20m_voxel_label: largeIslands,
      fill_holes_20m_voxel_label: largeHoles,
      closing_2mm: closing,
    },
    wasm_bytes: wasm.length,
    wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
  };
  console.log(JSON.stringify(results, null, 2));
  mkdirSync("../target/bench", { recursive: true });
  writeFileSync("../target/bench/viewer.json", JSON.stringify(results, null, 2));
});
