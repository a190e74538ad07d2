//! Exact Euclidean distance transforms in mm (Felzenszwalb and Huttenlocher): one pass per
//! axis, each taking the lower envelope of parabolas rooted at the previous pass's values.

/// Squared distance in mm from every voxel to the nearest `feature` voxel: the exact
/// separable transform of Felzenszwalb and Huttenlocher, one axis at a time. Infinite
/// everywhere when there is no feature voxel.
pub fn squared_distance_transform(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    assert_eq!(feature.len(), dims.iter().product::<usize>(), "feature length does not match the dimensions");
    let mut field: Vec<f64> = feature.iter().map(|&f| if f { 0.0 } else { f64::INFINITY }).collect();
    let mut envelope = Envelope::default();
    for (axis, &step) in spacing.iter().enumerate() {
        transform_axis(&mut field, dims, axis, step, f64::INFINITY, &mut envelope);
    }
    field
}

/// Dilation of voxel sets by a ball of a radius in mm: every voxel within the radius of a set
/// voxel joins the set. The distance field is kept in f32, drops partial sums beyond the
/// radius, and is reused from one call to the next, which keeps it lean on large boxes.
pub struct BallDilation {
    spacing: [f32; 3],
    /// Squared radius in mm², with a hair of tolerance so that voxels exactly the radius away
    /// count despite rounding.
    limit: f64,
    field: Vec<f32>,
    envelope: Envelope,
}

impl BallDilation {
    /// Dilation by a ball of `radius_mm` on voxels of `spacing` mm.
    pub fn new(spacing: [f32; 3], radius_mm: f32) -> Self {
        BallDilation {
            spacing,
            limit: (radius_mm as f64).powi(2) * (1.0 + 1e-5),
            field: Vec::new(),
            envelope: Envelope::default(),
        }
    }

    /// Dilates `set`, a box of `dims` voxels in file order; nothing outside the box counts.
    pub fn dilate(&mut self, set: &mut [bool], dims: [usize; 3]) {
        assert_eq!(set.len(), dims.iter().product::<usize>(), "set length does not match the dimensions");
        self.field.clear();
        self.field.extend(set.iter().map(|&voxel| if voxel { 0.0 } else { f32::INFINITY }));
        for axis in 0..3 {
            transform_axis(&mut self.field, dims, axis, self.spacing[axis] as f64, self.limit, &mut self.envelope);
        }
        // Every pass leaves each value either within the limit or infinite.
        for (voxel, distance) in set.iter_mut().zip(&self.field) {
            *voxel = distance.is_finite();
        }
    }
}

/// How a field stores squared distances; the envelope computes in f64 either way.
trait Squared: Copy {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

impl Squared for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

impl Squared for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

/// Lines along j and k are copied out this many at a time (consecutive i), so that memory is
/// read in whole cache lines rather than one value per line.
const BLOCK: usize = 16;

/// One pass of the transform along `axis`; values beyond `limit` become infinite.
fn transform_axis<T: Squared>(
    field: &mut [T],
    dims: [usize; 3],
    axis: usize,
    spacing: f64,
    limit: f64,
    envelope: &mut Envelope,
) {
    let n = dims[axis];
    if n <= 1 || field.is_empty() {
        return;
    }
    if axis == 0 {
        for line in field.chunks_exact_mut(n) {
            envelope.apply(line, spacing, limit);
        }
        return;
    }
    let strides = [1, dims[0], dims[0] * dims[1]];
    let stride = strides[axis];
    // The axis that is neither i nor `axis`.
    let other = 3 - axis;
    let mut block = vec![T::from_f64(0.0); n * BLOCK];
    for c in 0..dims[other] {
        for i in (0..dims[0]).step_by(BLOCK) {
            let (base, width) = (i + c * strides[other], BLOCK.min(dims[0] - i));
            for p in 0..n {
                for (b, &value) in field[base + p * stride..][..width].iter().enumerate() {
                    block[b * n + p] = value;
                }
            }
            let mut changed = false;
            for line in block.chunks_exact_mut(n).take(width) {
                changed |= envelope.apply(line, spacing, limit);
            }
            if changed {
                for p in 0..n {
                    for (b, value) in field[base + p * stride..][..width].iter_mut().enumerate() {
                        *value = block[b * n + p];
                    }
                }
            }
        }
    }
}

/// Scratch space for lower envelopes, reused from line to line: the parabolas of the lower
/// envelope, each with its site, the site's value and where along the line it starts to be
/// the lowest.
#[derive(Default)]
struct Envelope {
    sites: Vec<usize>,
    heights: Vec<f64>,
    starts: Vec<f64>,
}

impl Envelope {
    /// Replaces `f` by `min_q (spacing·(p − q))² + f[q]` over the finite `f[q]`, with values
    /// beyond `limit` made infinite. False when that leaves the line as it was (no finite
    /// value, or all zero), so the caller can skip writing it back.
    fn apply<T: Squared>(&mut self, f: &mut [T], spacing: f64, limit: f64) -> bool {
        let x = |q: usize| q as f64 * spacing;
        let n = f.len();
        let (sites, heights, starts) = (&mut self.sites, &mut self.heights, &mut self.starts);
        sites.clear();
        heights.clear();
        starts.clear();
        let mut push = |q: usize, height: f64| {
            loop {
                let (Some(&p), Some(&p_height)) = (sites.last(), heights.last()) else {
                    starts.push(f64::NEG_INFINITY);
                    break;
                };
                // Where q's parabola starts to lie below p's.
                let cross = ((height + x(q) * x(q)) - (p_height + x(p) * x(p))) / (2.0 * (x(q) - x(p)));
                if cross <= *starts.last().expect("one start per parabola") {
                    sites.pop();
                    heights.pop();
                    starts.pop();
                } else {
                    starts.push(cross);
                    break;
                }
            }
            sites.push(q);
            heights.push(height);
        };
        let mut q = 0;
        while q < n {
            let height = f[q].to_f64();
            if height == 0.0 {
                // Inside a run of zeros, the run's ends are nearer every position outside it,
                // and positions inside it stay zero: only the ends need a parabola.
                let end = f[q..].iter().position(|v| v.to_f64() != 0.0).map_or(n, |length| q + length);
                if q == 0 && end == n {
                    return false;
                }
                push(q, 0.0);
                if end - 1 > q {
                    push(end - 1, 0.0);
                }
                q = end;
            } else if height.is_finite() {
                push(q, height);
                q += 1;
            } else {
                q = f[q..].iter().position(|v| v.to_f64().is_finite()).map_or(n, |length| q + length);
            }
        }
        if sites.is_empty() {
            return false;
        }
        // Out of every parabola's reach within `limit`, values are and stay infinite (a finite
        // one would be a site).
        let (mut first, mut end) = (n, 0);
        for (&q, &height) in sites.iter().zip(heights.iter()) {
            let reach = ((limit - height).sqrt() / spacing) as usize;
            first = first.min(q.saturating_sub(reach));
            end = end.max(q.saturating_add(reach).saturating_add(1).min(n));
        }
        // Each parabola is lowest from its start to the next one's: fill that stretch in one go.
        let mut from = first;
        for (parabola, (&q, &height)) in sites.iter().zip(heights.iter()).enumerate() {
            let to = starts
                .get(parabola + 1)
                .map_or(end, |&next| ((next / spacing).ceil().max(0.0) as usize).clamp(from, end));
            for (p, value) in f[from..to].iter_mut().enumerate().map(|(offset, value)| (from + offset, value)) {
                let squared = ((p as f64 - q as f64) * spacing).powi(2) + height;
                // A value of zero is a feature voxel (or a run of zeros left out of the sites).
                *value = if value.to_f64() == 0.0 {
                    T::from_f64(0.0)
                } else if squared <= limit {
                    T::from_f64(squared)
                } else {
                    T::from_f64(f64::INFINITY)
                };
            }
            from = to;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
        let coords = |i: usize| [i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1])];
        (0..feature.len())
            .map(|p| {
                (0..feature.len())
                    .filter(|&q| feature[q])
                    .map(|q| {
                        (0..3).map(|a| ((coords(p)[a] as f64 - coords(q)[a] as f64) * spacing[a]).powi(2)).sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        // Wider than one block along i, so blocks of lines and a partial block are both used.
        let dims = [21, 5, 4];
        let feature: Vec<bool> = (0..420).map(|i| i % 37 == 3 || i == 100).collect();
        let spacing = [0.8, 1.5, 2.5];
        let field = squared_distance_transform(&feature, dims, spacing);
        for (p, (computed, brute)) in field.iter().zip(brute_force(&feature, dims, spacing)).enumerate() {
            assert!((computed - brute).abs() < 1e-9, "voxel {p}: {computed} vs {brute}");
        }
    }

    #[test]
    fn distance_transform_without_features_is_infinite() {
        assert!(squared_distance_transform(&[false; 24], [2, 3, 4], [1.0; 3]).iter().all(|d| d.is_infinite()));
    }

    #[test]
    fn ball_dilation_matches_brute_force() {
        let dims = [19, 9, 7];
        let feature: Vec<bool> =
            (0..dims.iter().product()).map(|i: usize| i % 53 == 7 || (200..206).contains(&i)).collect();
        let spacing = [0.7, 0.9, 2.0];
        let exact = brute_force(&feature, dims, spacing.map(|s| s as f64));
        for radius in [0.0, 0.7, 1.4, 2.0, 3.3] {
            let mut dilated = feature.clone();
            BallDilation::new(spacing, radius).dilate(&mut dilated, dims);
            for (p, (&inside, d2)) in dilated.iter().zip(&exact).enumerate() {
                // Leave out distances within rounding of the radius, which may go either way.
                if (d2.sqrt() - radius as f64).abs() > 1e-4 {
                    assert_eq!(inside, d2.sqrt() <= radius as f64, "voxel {p} at {} mm, radius {radius}", d2.sqrt());
                }
            }
        }
        // A voxel exactly the radius away counts: two 0.7 mm steps from a lone voxel.
        let mut lone: Vec<bool> = (0..5).map(|i| i == 0).collect();
        BallDilation::new([0.7, 1.0, 1.0], 1.4).dilate(&mut lone, [5, 1, 1]);
        assert_eq!(lone, [true, true, true, false, false]);
    }
}
