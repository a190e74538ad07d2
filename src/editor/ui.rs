//! The contract between the viewer's controls (`crate::editor::panel`, rendered on the
//! server and hydrated in the browser) and the browser controller (`crate::editor::browser`)
//! that downloads, draws and edits: the settings both sides read and write, and the commands
//! the controls send. Here so that neither side imports the other.

use std::rc::Rc;

use leptos::prelude::*;

use super::overlays::{overlays_of, OverlayKind, OverlaySource};
use super::render::{OverlayStyle, Window};
use super::tools::EditableArea;
use super::Smoothing;
use crate::api::{CaseArtifacts, MaskVersion};
use crate::geometry::Plane;

/// Editing tool on the left mouse button.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    /// Brush that paints only where the image intensity is inside the threshold range.
    ThresholdBrush,
    /// 2-D flood fill on the slice.
    Fill,
    /// 3-D region growing from the clicked voxel, previewed first.
    Grow,
    /// Moves the shared crosshair; the other views follow.
    Crosshair,
}

impl Tool {
    /// Each tool with its name on the toolbar (its key is in `shortcuts`).
    pub const ALL: [(Tool, &'static str); 6] = [
        (Tool::Brush, "Brush"),
        (Tool::Eraser, "Eraser"),
        (Tool::ThresholdBrush, "Threshold brush"),
        (Tool::Fill, "Fill"),
        (Tool::Grow, "Region grow"),
        (Tool::Crosshair, "Crosshair"),
    ];

    /// Whether the tool paints with the brush (and shows its outline).
    pub fn is_brush(self) -> bool {
        matches!(self, Tool::Brush | Tool::Eraser | Tool::ThresholdBrush)
    }
}

/// How many views are on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Axial, coronal and sagittal side by side.
    Three,
    /// The active view alone, larger.
    One,
}

/// The shared crosshair: the point all three views pass through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crosshair {
    pub voxel: [usize; 3],
    /// Scanner coordinates (RAS+, mm) of the voxel's centre.
    pub scanner_mm: [f64; 3],
}

/// A proposed 3-D edit waiting for Apply or Cancel.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewInfo {
    pub what: &'static str,
    pub voxels: usize,
    pub capped: bool,
}

/// Where saving stands, as shown next to the Save button.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveStatus {
    Idle,
    Saving { attempt: u32 },
    Saved { version: usize, voxels: u64 },
    Failed(String),
}

/// Actions the controls ask of the editor.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Save,
    Undo,
    Redo,
    /// After a conflict: load the newest version and re-apply the unsaved edits on it.
    LoadNewest,
    /// Re-apply the edits kept in this browser from an earlier visit.
    RestoreKept,
    DiscardKept,
    ViewVersion(MaskVersion),
    BackToEditing,
    ResetView,
    /// Window spanning these fractions of the image's intensity distribution.
    WindowPercentiles(f64, f64),
    /// Moves the crosshair (and so every view) to this voxel, e.g. a comment's.
    JumpTo([usize; 3]),
    /// Preview filling the selected label between its painted slices along the active view's axis.
    FillBetween,
    /// Recompute the region-growing preview after its range or cap changed.
    Regrow,
    ApplyPreview,
    CancelPreview,
    KeepLargestIsland,
    /// Remove the selected label's islands smaller than the size set.
    RemoveSmallIslands,
    FillHoles,
    Smooth(Smoothing),
}

/// Edits kept in the browser from an earlier visit, offered back.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptEdits {
    pub voxels: u64,
    /// When they were kept, in milliseconds since the Unix epoch.
    pub saved_at_ms: i64,
    pub on_older_version: bool,
}

/// Windows from the image's own intensity distribution (percentile fractions), for modalities
/// without fixed units such as MR.
pub const PERCENTILE_PRESETS: [(&str, f64, f64); 3] =
    [("Auto", 0.005, 0.995), ("Full range", 0.0, 1.0), ("High contrast", 0.05, 0.95)];

/// Carries out a command; installed by the browser controller.
type CommandHandler = Rc<dyn Fn(Command)>;

/// The editor's state as the page shows it; the canvas reads the settings when drawing.
#[derive(Clone, Copy)]
pub struct ViewerUi {
    pub case: StoredValue<CaseArtifacts>,
    /// Download progress: bytes received and expected (0 when unknown).
    pub progress: RwSignal<(f64, f64)>,
    pub ready: RwSignal<bool>,
    /// The first slices are drawn while the rest of the volume arrives.
    pub streaming: RwSignal<bool>,
    pub failure: RwSignal<Option<String>>,
    pub layout: RwSignal<Layout>,
    /// The active view's plane: the slice slider, keys and wheel act on it.
    pub plane: RwSignal<Plane>,
    pub slice: RwSignal<usize>,
    pub slice_count: RwSignal<usize>,
    pub window: RwSignal<Window>,
    pub tool: RwSignal<Tool>,
    pub label: RwSignal<u8>,
    pub radius_mm: RwSignal<f32>,
    pub threshold: RwSignal<(f32, f32)>,
    pub opacity: RwSignal<f32>,
    pub outline: RwSignal<bool>,
    pub cursor: RwSignal<String>,
    pub crosshair: RwSignal<Option<Crosshair>>,
    pub area: RwSignal<EditableArea>,
    /// Label values not drawn.
    pub hidden: RwSignal<Vec<u8>>,
    /// Voxels per label value (256 entries) and the volume of one voxel in mL.
    pub counts: RwSignal<Vec<u64>>,
    pub voxel_ml: RwSignal<f64>,
    pub preview: RwSignal<Option<PreviewInfo>>,
    /// Region growing's intensity range and voxel cap.
    pub grow_range: RwSignal<(f32, f32)>,
    pub grow_cap: RwSignal<usize>,
    /// Islands smaller than this many voxels are removed.
    pub island_min: RwSignal<usize>,
    pub smooth_mm: RwSignal<f32>,
    /// What the last 3-D tool did, or why it did nothing.
    pub notice: RwSignal<String>,
    pub unsaved: RwSignal<u64>,
    pub can_undo: RwSignal<bool>,
    pub can_redo: RwSignal<bool>,
    pub status: RwSignal<SaveStatus>,
    pub conflict: RwSignal<Option<String>>,
    pub kept: RwSignal<Option<KeptEdits>>,
    pub viewing: RwSignal<Option<MaskVersion>>,
    pub history: RwSignal<Vec<MaskVersion>>,
    pub help: RwSignal<bool>,
    /// Whether this person may save on the case (its labeler, or an admin); the review panel
    /// sets it from the server's answer.
    pub may_save: RwSignal<bool>,
    /// Show what changed against the review base (the last approved or the imported version).
    pub compare: RwSignal<bool>,
    /// Voxels added and removed against the review base, once compared.
    pub changes: RwSignal<Option<(u64, u64)>>,
    /// The predictions and readings the viewer can draw over the mask.
    pub overlays: StoredValue<Vec<OverlaySource>>,
    /// How each overlay (same order) is drawn over the mask; `None`: not drawn.
    pub overlay_styles: RwSignal<Vec<Option<OverlayStyle>>>,
    /// The overlay compared with the mask; turning one on moves the views to the slice where
    /// they disagree most (about `focus_label`, else any label).
    pub disagreement: RwSignal<Option<usize>>,
    pub focus_label: RwSignal<Option<u8>>,
    /// Highlight the voxels where the readings differ.
    pub readers_disagree: RwSignal<bool>,
    /// Voxels only the mask labels (that way) and only the compared overlay labels.
    pub disagreement_counts: RwSignal<Option<(u64, u64)>>,
    /// Where [`ViewerUi::send`] delivers commands, once the controller has opened the case.
    /// Made in the browser build only: the handler holds browser objects, so it is a local
    /// value, and the server may drop a page's values on another thread than the one that made
    /// them, which a local value does not survive.
    command_handler: Option<StoredValue<Option<CommandHandler>, LocalStorage>>,
}

impl ViewerUi {
    pub fn new(case: CaseArtifacts) -> ViewerUi {
        let first_label = case.labels.first().map_or(1, |label| label.value);
        let history = case.history.clone();
        let overlays = overlays_of(&case);
        ViewerUi {
            case: StoredValue::new(case),
            progress: RwSignal::new((0.0, 0.0)),
            ready: RwSignal::new(false),
            streaming: RwSignal::new(false),
            failure: RwSignal::new(None),
            layout: RwSignal::new(Layout::Three),
            plane: RwSignal::new(Plane::Axial),
            slice: RwSignal::new(0),
            slice_count: RwSignal::new(1),
            window: RwSignal::new(Window::spanning(0.0, 1.0)),
            tool: RwSignal::new(Tool::Brush),
            label: RwSignal::new(first_label),
            radius_mm: RwSignal::new(3.0),
            threshold: RwSignal::new((0.0, 1.0)),
            opacity: RwSignal::new(0.5),
            outline: RwSignal::new(false),
            cursor: RwSignal::new(String::new()),
            crosshair: RwSignal::new(None),
            area: RwSignal::new(EditableArea::Everywhere),
            hidden: RwSignal::new(Vec::new()),
            counts: RwSignal::new(vec![0; 256]),
            voxel_ml: RwSignal::new(0.0),
            preview: RwSignal::new(None),
            grow_range: RwSignal::new((0.0, 1.0)),
            grow_cap: RwSignal::new(2_000_000),
            island_min: RwSignal::new(100),
            smooth_mm: RwSignal::new(2.0),
            notice: RwSignal::new(String::new()),
            unsaved: RwSignal::new(0),
            can_undo: RwSignal::new(false),
            can_redo: RwSignal::new(false),
            status: RwSignal::new(SaveStatus::Idle),
            conflict: RwSignal::new(None),
            kept: RwSignal::new(None),
            viewing: RwSignal::new(None),
            history: RwSignal::new(history),
            help: RwSignal::new(false),
            may_save: RwSignal::new(true),
            compare: RwSignal::new(false),
            changes: RwSignal::new(None),
            // The readings outlined from the start: the adjudicator opens the case to compare them.
            overlay_styles: RwSignal::new(
                overlays
                    .iter()
                    .map(|overlay| (overlay.kind == OverlayKind::Reading).then_some(OverlayStyle::Outline))
                    .collect(),
            ),
            readers_disagree: RwSignal::new(false),
            overlays: StoredValue::new(overlays),
            disagreement: RwSignal::new(None),
            focus_label: RwSignal::new(None),
            disagreement_counts: RwSignal::new(None),
            command_handler: cfg!(feature = "hydrate").then(|| StoredValue::new_local(None)),
        }
    }

    /// Asks the controller to carry out `command`. Dropped while the case is not open yet, and
    /// after the page is left.
    pub fn send(&self, command: Command) {
        // A copy of the handler, so the stored value is not borrowed while the command runs.
        if let Some(handler) = self.command_handler.and_then(|stored| stored.try_get_value().flatten()) {
            handler(command);
        }
    }

    /// Makes `handler` carry out every command sent from now on; the controller calls it once
    /// the case is open.
    pub fn receive_commands(&self, handler: impl Fn(Command) + 'static) {
        if let Some(stored) = self.command_handler {
            let handler: CommandHandler = Rc::new(handler);
            stored.set_value(Some(handler));
        }
    }
}
