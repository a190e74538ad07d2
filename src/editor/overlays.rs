//! The segmentations the viewer can draw over the mask and compare with it, in one list: the
//! models' latest predictions (for ML engineers and admins) and, once every reading of a case
//! read by several readers is submitted, each reading (for whoever may compare them: the
//! adjudicator first). Each keeps one colour, whatever its labels, so they tell apart; the
//! readings are outlined from the start, and the voxels where they differ can be highlighted.

use crate::api::{CaseArtifacts, ModelState};

/// One segmentation offered over the mask.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlaySource {
    pub kind: OverlayKind,
    /// How the controls name it.
    pub name: String,
    /// The stored object: how a fresh URL is found for it when it is first drawn.
    pub object_ref: String,
    pub color: [u8; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayKind {
    Prediction,
    Reading,
}

impl OverlayKind {
    /// What the comparison's counts call the voxels only this segmentation labels.
    pub fn only_in(self) -> &'static str {
        match self {
            OverlayKind::Prediction => "only in the prediction",
            OverlayKind::Reading => "only in the reading",
        }
    }
}

/// Production's sky blue, a shadow's orange.
fn prediction_color(role: ModelState) -> [u8; 3] {
    match role {
        ModelState::Production => [56, 189, 248],
        _ => [249, 115, 22],
    }
}

/// One colour per reader (a case has at most eight readings), unlike the predictions', the
/// labels' defaults and the comparison's.
const READER_COLORS: [[u8; 3]; 8] = [
    [20, 184, 166],
    [139, 92, 246],
    [236, 72, 153],
    [132, 204, 22],
    [245, 158, 11],
    [99, 102, 241],
    [6, 182, 212],
    [244, 63, 94],
];

/// The case's overlays: its predictions first (production, then shadows), then its readings in
/// the order they were taken.
pub fn overlays_of(case: &CaseArtifacts) -> Vec<OverlaySource> {
    let predictions = case.predictions.iter().map(|p| OverlaySource {
        kind: OverlayKind::Prediction,
        name: format!("{} {} {}", p.role, p.model_name, p.model_version),
        object_ref: p.object_ref.clone(),
        color: prediction_color(p.role),
    });
    let readings = case.readings.iter().zip(READER_COLORS.iter().cycle()).map(|(reading, &color)| OverlaySource {
        kind: OverlayKind::Reading,
        name: format!("reading by {}", reading.reader),
        object_ref: reading.mask_ref.to_string(),
        color,
    });
    predictions.chain(readings).collect()
}

/// The voxels where the readings do not all give the same value: what the adjudicator settles.
pub fn contested(readings: &[&[u8]]) -> Vec<bool> {
    let Some((first, others)) = readings.split_first() else {
        return Vec::new();
    };
    (0..first.len()).map(|voxel| others.iter().any(|reading| reading[voxel] != first[voxel])).collect()
}

/// Where `overlay` downloads now, from a fresh answer of the case's artifacts.
pub fn url_of(fresh: &CaseArtifacts, overlay: &OverlaySource) -> Option<String> {
    match overlay.kind {
        OverlayKind::Prediction => {
            fresh.predictions.iter().find(|p| p.object_ref == overlay.object_ref).map(|p| p.url.clone())
        }
        OverlayKind::Reading => {
            fresh.readings.iter().find(|r| r.mask_ref.as_str() == overlay.object_ref).map(|r| r.url.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voxel_is_contested_when_any_reading_differs() {
        let (a, b, c) = ([0u8, 1, 1, 2], [0u8, 1, 0, 2], [0u8, 1, 1, 1]);
        assert_eq!(contested(&[&a, &b, &c]), [false, false, true, true]);
        assert_eq!(contested(&[&a]), [false; 4]);
        assert!(contested(&[]).is_empty());
    }
}
