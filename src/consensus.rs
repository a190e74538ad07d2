//! The consensus of several readers' masks of one image: majority vote, and STAPLE (Warfield,
//! Zou and Wells 2004), which estimates by expectation–maximisation, per label, each reader's
//! sensitivity and specificity and the probability that each voxel truly holds the label.
//!
//! The estimates are ITK's `STAPLEImageFilter`'s: the same start (the readers' mean as the
//! first probability map, its mean as the prior), the same updates, the same stopping rule
//! (every estimate moved less than 1e-7 since the last iteration); `tests/api/consensus_parity.rs`
//! checks them against SimpleITK. They are computed over the readers' patterns of agreement
//! instead of every voxel: a voxel's probability depends only on which readers gave it the
//! label, so one pass counts the voxels of each of the 2^N patterns and each iteration costs
//! 2^N·N, whatever the volume's size. Pure code, shared by both builds.

/// Most readings combined at once: 2^N patterns are counted per label.
pub const MAX_READINGS: usize = 8;

/// ITK's stopping rule: every squared change of a sensitivity or specificity at most this.
const CONVERGED: f64 = 1e-14;
/// A bound ITK does not set. Masks that agree converge in tens of iterations; readers who
/// agree no better than noise take tens of thousands (each costs 2^N·N, under 0.4 s in all).
const MAX_ITERATIONS: u32 = 100_000;

/// For each voxel, the value most readers gave it. A tie leaves the voxel background: the
/// consensus gives a voxel a label only when no other answer (background included) got as
/// many votes, so two readers who disagree leave it unlabelled for the adjudicator to decide.
pub fn majority_vote(readings: &[&[u8]]) -> Vec<u8> {
    let voxels = readings.first().map_or(0, |first| first.len());
    let mut votes: Vec<(u8, usize)> = Vec::with_capacity(readings.len());
    (0..voxels)
        .map(|voxel| {
            let first = readings[0][voxel];
            if readings.iter().all(|reading| reading[voxel] == first) {
                return first;
            }
            votes.clear();
            for reading in readings {
                let value = reading[voxel];
                match votes.iter_mut().find(|(voted, _)| *voted == value) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((value, 1)),
                }
            }
            let most = votes.iter().map(|(_, count)| *count).max().unwrap_or(0);
            let mut winners = votes.iter().filter(|(_, count)| *count == most);
            match (winners.next(), winners.next()) {
                (Some((value, _)), None) => *value,
                _ => 0,
            }
        })
        .collect()
}

/// STAPLE's estimates for one label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelStaple {
    pub label: u8,
    /// Per reader, in the order the readings were given: the share of the label's true voxels
    /// the reader labelled.
    pub sensitivity: Vec<f64>,
    /// Per reader: the share of the voxels truly without the label the reader left without it.
    pub specificity: Vec<f64>,
    pub iterations: u32,
    /// The probability of the label for each pattern of agreement (bit r set: reader r gave it).
    by_pattern: Vec<f64>,
}

impl LabelStaple {
    /// The probability that a voxel truly holds the label, from which readers gave it the label
    /// (bit r of `pattern` for reader r).
    pub fn probability(&self, pattern: usize) -> f64 {
        self.by_pattern[pattern]
    }

    /// The probability of the label at every voxel of `readings` (the ones it was estimated on).
    pub fn probability_map(&self, readings: &[&[u8]]) -> Vec<f64> {
        let voxels = readings.first().map_or(0, |first| first.len());
        (0..voxels).map(|voxel| self.probability(pattern_at(readings, self.label, voxel))).collect()
    }
}

/// Which readers gave `label` to `voxel`, as bits.
fn pattern_at(readings: &[&[u8]], label: u8, voxel: usize) -> usize {
    readings.iter().enumerate().filter(|(_, reading)| reading[voxel] == label).map(|(r, _)| 1 << r).sum()
}

/// STAPLE of one label from the number of voxels of each pattern of agreement; `None` when no
/// reader gave the label anywhere (nothing to estimate).
fn estimate(label: u8, readers: usize, counts: &[u64]) -> Option<LabelStaple> {
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let counts: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
    // The first probability map: the share of readers who gave the label.
    let mut by_pattern: Vec<f64> =
        (0..counts.len()).map(|pattern| f64::from((pattern as u32).count_ones()) / readers as f64).collect();
    let prior = counts.iter().zip(&by_pattern).map(|(c, w)| c * w).sum::<f64>() / total;
    if prior == 0.0 {
        return None;
    }
    let (mut sensitivity, mut specificity) = (vec![0.0; readers], vec![0.0; readers]);
    let (mut last_sensitivity, mut last_specificity) = (vec![-10.0; readers], vec![-10.0; readers]);
    let mut iteration = 0;
    while iteration < MAX_ITERATIONS {
        for reader in 0..readers {
            let (mut true_positive, mut positive, mut true_negative, mut negative) = (0.0, 0.0, 0.0, 0.0);
            for (pattern, (&count, &w)) in counts.iter().zip(&by_pattern).enumerate() {
                if pattern & (1 << reader) != 0 {
                    true_positive += count * w;
                } else {
                    true_negative += count * (1.0 - w);
                }
                positive += count * w;
                negative += count * (1.0 - w);
            }
            // Undefined where every voxel is (or none is) the label: call the reader perfect.
            sensitivity[reader] = if positive > 0.0 { true_positive / positive } else { 1.0 };
            specificity[reader] = if negative > 0.0 { true_negative / negative } else { 1.0 };
        }
        for (pattern, w) in by_pattern.iter_mut().enumerate() {
            let (mut alpha, mut beta) = (1.0, 1.0);
            for reader in 0..readers {
                if pattern & (1 << reader) != 0 {
                    alpha *= sensitivity[reader];
                    beta *= 1.0 - specificity[reader];
                } else {
                    alpha *= 1.0 - sensitivity[reader];
                    beta *= specificity[reader];
                }
            }
            let denominator = prior * alpha + (1.0 - prior) * beta;
            *w = if denominator > 0.0 { prior * alpha / denominator } else { 0.0 };
        }
        let moved = |now: &[f64], before: &[f64]| now.iter().zip(before).any(|(a, b)| (a - b) * (a - b) > CONVERGED);
        let converged =
            iteration != 0 && !moved(&sensitivity, &last_sensitivity) && !moved(&specificity, &last_specificity);
        last_sensitivity.clone_from(&sensitivity);
        last_specificity.clone_from(&specificity);
        if converged {
            break;
        }
        iteration += 1;
    }
    Some(LabelStaple { label, sensitivity, specificity, iterations: iteration, by_pattern })
}

/// STAPLE of one label of `readings` (at most [`MAX_READINGS`], all the same size); `None` when
/// no reader gave the label anywhere.
pub fn staple(readings: &[&[u8]], label: u8) -> Option<LabelStaple> {
    assert!((1..=MAX_READINGS).contains(&readings.len()), "STAPLE takes 1 to {MAX_READINGS} readings");
    let voxels = readings[0].len();
    let mut counts = vec![0u64; 1 << readings.len()];
    for voxel in 0..voxels {
        counts[pattern_at(readings, label, voxel)] += 1;
    }
    estimate(label, readings.len(), &counts)
}

/// The STAPLE consensus of every label the readers gave.
#[derive(Clone, Debug)]
pub struct Consensus {
    /// Each voxel's most probable label of those with a probability of at least one half (the
    /// lower value on a tie), else background.
    pub mask: Vec<u8>,
    /// Per label, in increasing value.
    pub labels: Vec<LabelStaple>,
}

/// STAPLE of every label of `readings` (1 to [`MAX_READINGS`], all the same size), in two passes
/// over the volume: one counts each label's patterns of agreement, one writes the consensus.
pub fn staple_consensus(readings: &[&[u8]]) -> Consensus {
    assert!((1..=MAX_READINGS).contains(&readings.len()), "STAPLE takes 1 to {MAX_READINGS} readings");
    let (readers, voxels) = (readings.len(), readings[0].len());
    let patterns = 1usize << readers;
    // Counts of the patterns other than "nobody": those follow from the voxel count.
    let mut counts: Vec<Vec<u64>> = vec![Vec::new(); 256];
    let mut at_voxel: Vec<u8> = Vec::with_capacity(readers);
    for voxel in 0..voxels {
        if readings.iter().all(|reading| reading[voxel] == 0) {
            continue;
        }
        distinct_labels(readings, voxel, &mut at_voxel);
        for &label in &at_voxel {
            let label_counts = &mut counts[usize::from(label)];
            if label_counts.is_empty() {
                label_counts.resize(patterns, 0);
            }
            label_counts[pattern_at(readings, label, voxel)] += 1;
        }
    }
    let labels: Vec<LabelStaple> = (1..=255u8)
        .filter_map(|label| {
            let mut label_counts = std::mem::take(&mut counts[usize::from(label)]);
            if label_counts.is_empty() {
                return None;
            }
            label_counts[0] = voxels as u64 - label_counts.iter().sum::<u64>();
            estimate(label, readers, &label_counts)
        })
        .collect();
    // Labels probable even where no reader gave them (only with very unreliable readers).
    let probable_unvoted: Vec<&LabelStaple> = labels.iter().filter(|s| s.probability(0) >= 0.5).collect();
    let mut by_label: Vec<Option<&LabelStaple>> = vec![None; 256];
    for estimate in &labels {
        by_label[usize::from(estimate.label)] = Some(estimate);
    }
    let mask = (0..voxels)
        .map(|voxel| {
            distinct_labels(readings, voxel, &mut at_voxel);
            let voted = at_voxel.iter().filter_map(|&label| by_label[usize::from(label)]);
            let mut best: Option<(f64, u8)> = None;
            for estimate in voted.chain(probable_unvoted.iter().copied()) {
                let probability = estimate.probability(pattern_at(readings, estimate.label, voxel));
                let better = match best {
                    None => true,
                    Some((p, label)) => probability > p || (probability == p && estimate.label < label),
                };
                if probability >= 0.5 && better {
                    best = Some((probability, estimate.label));
                }
            }
            best.map_or(0, |(_, label)| label)
        })
        .collect();
    Consensus { mask, labels }
}

/// Where masks (of `dims`, i fastest) disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// Voxels the masks do not all give the same value.
    pub voxels: u64,
    /// In the slice with the most such voxels, the one nearest their centre: where a person
    /// looks first.
    pub most_at: Option<[usize; 3]>,
}

/// Where the readers disagree, looking first across k (axial slices).
pub fn disagreement(readings: &[&[u8]], dims: [usize; 3]) -> Disagreement {
    most_differing(dims, 2, |voxel| readings.iter().any(|reading| reading[voxel] != readings[0][voxel]))
}

/// Where the voxels for which `differs` holds lie: how many there are, and in the slice across
/// `axis` holding the most of them (the first on a tie), the one nearest their centre. Also
/// the editor's way to the voxel where a prediction and the mask disagree most.
pub fn most_differing(dims: [usize; 3], axis: usize, differs: impl Fn(usize) -> bool) -> Disagreement {
    let voxel_count: usize = dims.iter().product();
    let coordinates = |voxel: usize| [voxel % dims[0], (voxel / dims[0]) % dims[1], voxel / (dims[0] * dims[1])];
    let mut per_slice = vec![0u64; dims[axis]];
    for voxel in (0..voxel_count).filter(|&v| differs(v)) {
        per_slice[coordinates(voxel)[axis]] += 1;
    }
    let most = per_slice.iter().enumerate().max_by_key(|(slice, count)| (**count, std::cmp::Reverse(*slice)));
    let most_at = most.filter(|(_, count)| **count > 0).and_then(|(slice, _)| {
        let in_slice: Vec<[usize; 3]> =
            (0..voxel_count).filter(|&v| differs(v)).map(coordinates).filter(|at| at[axis] == slice).collect();
        let centre = [0, 1, 2].map(|a| in_slice.iter().map(|at| at[a] as f64).sum::<f64>() / in_slice.len() as f64);
        let distance = |at: &[usize; 3]| (0..3).map(|a| (at[a] as f64 - centre[a]).powi(2)).sum::<f64>();
        in_slice.into_iter().min_by(|a, b| distance(a).total_cmp(&distance(b)))
    });
    Disagreement { voxels: per_slice.iter().sum(), most_at }
}

/// The distinct non-zero values the readers gave `voxel`, into `out`.
fn distinct_labels(readings: &[&[u8]], voxel: usize, out: &mut Vec<u8>) {
    out.clear();
    for reading in readings {
        let value = reading[voxel];
        if value != 0 && !out.contains(&value) {
            out.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_vote_takes_the_most_votes_and_leaves_ties_background() {
        let (a, b, c) = ([0, 1, 1, 2, 1, 3], [0, 1, 0, 2, 2, 3], [0, 1, 0, 1, 0, 0]);
        // Unanimous, 2 of 3, 2 of 3 for background, 2 of 3 against 1, a three-way tie, 2 of 3.
        assert_eq!(majority_vote(&[&a, &b, &c]), vec![0, 1, 0, 2, 0, 3]);
        // Two readers who disagree leave the voxel to the adjudicator.
        assert_eq!(majority_vote(&[&a, &b]), vec![0, 1, 0, 2, 0, 3]);
        // A 2–2 tie, background's 2 votes against 1 and 1, three of four.
        assert_eq!(majority_vote(&[&[1, 2, 0], &[1, 0, 2], &[2, 0, 2], &[2, 1, 2]]), vec![0, 0, 2]);
    }

    #[test]
    fn disagreement_points_at_the_slice_where_readers_differ_most() {
        let dims = [3, 3, 3];
        let a = vec![0u8; 27];
        let mut b = a.clone();
        b[9 + 4] = 1; // one voxel in slice 1
        b[18..21].fill(1); // three in slice 2, the middle one at (1, 0, 2)
        let found = disagreement(&[&a, &b, &a], dims);
        assert_eq!(found, Disagreement { voxels: 4, most_at: Some([1, 0, 2]) });
        assert_eq!(disagreement(&[&a, &a], dims), Disagreement { voxels: 0, most_at: None });
    }

    #[test]
    fn staple_of_identical_readers_is_their_mask_with_perfect_readers() {
        let reading = [0u8, 1, 1, 0, 1, 0, 0, 0];
        let estimate = staple(&[&reading, &reading, &reading], 1).unwrap();
        assert!(estimate.sensitivity.iter().chain(&estimate.specificity).all(|&v| (v - 1.0).abs() < 1e-9));
        let map = estimate.probability_map(&[&reading, &reading, &reading]);
        assert_eq!(map.iter().map(|&p| u8::from(p >= 0.5)).collect::<Vec<_>>(), reading.to_vec());
        assert!(staple(&[&reading, &reading], 2).is_none());
    }

    #[test]
    fn a_careless_reader_weighs_less_than_two_who_agree() {
        // Readers a and b agree on a block; c labels half of it and some voxels outside.
        let a: Vec<u8> = (0..1000).map(|v| u8::from(v < 300)).collect();
        let b = a.clone();
        let c: Vec<u8> = (0..1000).map(|v| u8::from(v < 150 || (600..700).contains(&v))).collect();
        let consensus = staple_consensus(&[&a, &b, &c]);
        assert_eq!(consensus.mask, a);
        let estimate = &consensus.labels[0];
        assert!(estimate.sensitivity[2] < 0.6 && estimate.specificity[2] < 0.9, "{estimate:?}");
        assert!(estimate.sensitivity[0] > 0.99 && estimate.specificity[0] > 0.99, "{estimate:?}");
    }

    #[test]
    fn the_consensus_of_several_labels_matches_each_labels_own_estimate() {
        let a = [0u8, 1, 1, 2, 2, 0, 3, 3, 0, 1];
        let b = [0u8, 1, 0, 2, 2, 2, 3, 0, 0, 1];
        let c = [0u8, 1, 1, 2, 0, 2, 3, 3, 1, 0];
        let readings: [&[u8]; 3] = [&a, &b, &c];
        let consensus = staple_consensus(&readings);
        assert_eq!(consensus.labels.iter().map(|s| s.label).collect::<Vec<_>>(), vec![1, 2, 3]);
        for estimate in &consensus.labels {
            assert_eq!(Some(estimate), staple(&readings, estimate.label).as_ref());
        }
        assert_eq!(consensus.mask, majority_vote(&readings));
    }
}
