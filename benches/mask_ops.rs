//! The editor's mask operations on a CT-sized volume (512×512×300), single threaded: fill
//! between slices, region growing, island removal, hole filling, and smoothing. The browser
//! runs them as WASM: built with the wasm-release profile (opt-level "z") they took 1.4–3.3×
//! these native figures in Node 20, and about the same as native at opt-level 3.
//!
//! Run: `cargo bench --features ssr --bench mask_ops`.

mod timing;

use seglab::mask_ops::components::{component_sizes, enclosed_holes, remove_islands, Islands};
use seglab::mask_ops::grow::grow_region;
use seglab::mask_ops::interpolate::fill_between_slices;
use seglab::mask_ops::morphology::{closing, opening};
use seglab::mask_ops::Grid;
use timing::time;

const DIMS: [usize; 3] = [512, 512, 300];

fn report(name: &str, target_ms: Option<f64>, (p50, outcome): (f64, String)) {
    let target = target_ms.map_or(String::new(), |ms| format!(" (target < {ms} ms)"));
    println!("{name:<44} p50 {p50:8.1} ms{target:<20} {outcome}");
}

/// A mask of `grid` with label 1 wherever `inside(i, j, k)` holds.
fn mask_where(grid: Grid, inside: impl Fn(f32, f32, f32) -> bool) -> Vec<u8> {
    (0..grid.len())
        .map(|v| {
            let [i, j, k] = grid.coords(v).map(|c| c as f32);
            u8::from(inside(i, j, k))
        })
        .collect()
}

/// An ellipsoid of about 10 M voxels, 20 closed cavities in it and 50 small islands around it.
fn organ_with_islands(grid: Grid) -> Vec<u8> {
    let in_organ = |i: f32, j: f32, k: f32| {
        ((i - 256.0) / 150.0).powi(2) + ((j - 256.0) / 120.0).powi(2) + ((k - 150.0) / 130.0).powi(2) <= 1.0
    };
    let mut mask = mask_where(grid, in_organ);
    let mut paint_cube = |corner: [usize; 3], size: usize, value: u8| {
        for k in corner[2]..corner[2] + size {
            for j in corner[1]..corner[1] + size {
                let row = grid.index([corner[0], j, k]);
                mask[row..row + size].fill(value);
            }
        }
    };
    for n in 0..20 {
        paint_cube([200 + 5 * n, 230 + (n % 4) * 10, 120 + (n % 5) * 10], 4, 0);
    }
    for n in 0..50 {
        // Along the volume's corners and edges, clear of the ellipsoid.
        let (a, b) = (10 + 9 * (n % 25), if n < 25 { 5 } else { 480 });
        paint_cube([a, b, 5 + (n % 7) * 40], 3, 1);
    }
    mask
}

fn main() {
    let runs = 5;
    println!("mask operations on {DIMS:?}, p50 of {runs} runs");

    let fill_grid = Grid { dims: DIMS, spacing: [0.7, 0.7, 2.5] };
    let mut two_slices = vec![0u8; fill_grid.len()];
    for (k, (ci, cj, r)) in [(100, (250.0, 260.0, 80.0)), (160, (260.0, 250.0, 120.0))] {
        for j in 0..DIMS[1] {
            for i in 0..DIMS[0] {
                if (i as f32 - ci).powi(2) + (j as f32 - cj).powi(2) <= r * r {
                    two_slices[fill_grid.index([i, j, k])] = 1;
                }
            }
        }
    }
    report(
        "fill between slices (discs r 80/120, 60 apart)",
        Some(100.0),
        time(runs, || format!("{} voxels", fill_between_slices(&two_slices, fill_grid, 1, 2).len())),
    );
    drop(two_slices);

    let grow_grid = Grid { dims: DIMS, spacing: [0.7, 0.7, 1.0] };
    let image: Vec<i16> =
        mask_where(grow_grid, |i, j, k| (i - 256.0).powi(2) + (j - 256.0).powi(2) + (k - 150.0).powi(2) <= 62.0 * 62.0)
            .iter()
            .map(|&inside| if inside == 1 { 180 } else { -50 })
            .collect();
    report(
        "region growing (sphere of 1 M voxels)",
        Some(150.0),
        time(runs, || {
            let grown = grow_region(|v| image[v] as f32, grow_grid, [256, 256, 150], (100.0, 300.0), 20_000_000);
            format!("{} voxels, capped {}", grown.voxels.len(), grown.capped)
        }),
    );
    drop(image);

    let organ_grid = Grid { dims: DIMS, spacing: [0.7, 0.7, 1.0] };
    let organ = organ_with_islands(organ_grid);
    let label_voxels = organ.iter().filter(|&&v| v == 1).count();
    println!("organ mask: {label_voxels} label voxels");
    report(
        "keep largest island",
        Some(300.0),
        time(runs, || format!("{} voxels removed", remove_islands(&organ, organ_grid, 1, Islands::KeepLargest).len())),
    );
    report(
        "component sizes",
        None,
        time(runs, || format!("{} components", component_sizes(&organ, organ_grid, 1).len())),
    );
    report(
        "enclosed holes",
        Some(400.0),
        time(runs, || format!("{} voxels", enclosed_holes(&organ, organ_grid, 1).len())),
    );
    report(
        "closing, radius 3 mm (0.7×0.7×1.0 mm)",
        None,
        time(3, || format!("{} voxels added", closing(&organ, organ_grid, 1, 3.0).len())),
    );
    report(
        "opening, radius 3 mm (0.7×0.7×1.0 mm)",
        None,
        time(3, || format!("{} voxels removed", opening(&organ, organ_grid, 1, 3.0).len())),
    );
}
